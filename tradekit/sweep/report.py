"""The self-contained HTML report of a sweep (``report.html``): heatmaps of the ranking metric,
net PnL and the mark-outs over two parameters, the best sets and the errors. One file, nothing
fetched: inline CSS, plots as base64 PNG drawn with matplotlib's object API (no ``pyplot``).
Without matplotlib the report has the tables and a note where the heatmaps would be."""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._version import __version__

__all__ = ["heatmap_axes", "write_sweep_report"]

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #1d1d1f; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.sub { color: #555; margin-top: 0; }
table { border-collapse: collapse; font-size: 0.85em; }
td, th { padding: 0.2em 0.8em 0.2em 0; border-bottom: 1px solid #eee; text-align: right;
         font-variant-numeric: tabular-nums; }
th { color: #444; font-weight: 600; }
td.t, th.t { text-align: left; }
pre { font-size: 0.8em; background: #f6f6f6; padding: 0.4em; white-space: pre-wrap; }
.note { color: #8a5a00; background: #fff7e0; padding: 0.4em 0.8em; border-radius: 4px; }
figure { margin: 1em 0; display: inline-block; vertical-align: top; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
footer { color: #888; font-size: 0.8em; margin-top: 3em; }
"""
_MAX_CELLS_ANNOTATED = 300
_MAX_ERRORS = 20


def heatmap_axes(
    names: Sequence[str], x: str | None, y: str | None
) -> tuple[str | None, str | None]:
    """The parameters of the heatmaps' axes: ``x``/``y`` when given, else the first two swept
    parameters (``y`` None with a single one)."""
    rest = [n for n in names if n not in (x, y)]
    if x is None and rest:
        x = rest.pop(0)
    if y is None and rest:
        y = rest.pop(0)
    return x, y


def _plain_list(column: pd.Series) -> list[Any]:
    return [
        None if v is pd.NA or (isinstance(v, float) and math.isnan(v)) else v
        for v in column.tolist()
    ]


def _sorted_values(values: Sequence[Any]) -> list[Any]:
    uniq = list(dict.fromkeys(v for v in values if v is not None))
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in uniq):
        return sorted(uniq)
    return sorted(uniq, key=str)


def _fmt(v: Any) -> str:
    if v is None or v is pd.NA:
        return ""
    if isinstance(v, float):
        if not math.isfinite(v):
            return ""
        return f"{v:,.6g}"
    if isinstance(v, np.floating):
        return _fmt(float(v))
    return str(v)


def _grid(
    agg: pd.DataFrame, col: str, xcol: str, ycol: str | None
) -> tuple[list[Any], list[Any], np.ndarray]:
    xs = _sorted_values(_plain_list(agg[xcol]))
    ys = _sorted_values(_plain_list(agg[ycol])) if ycol else [None]
    z = np.full((len(ys), len(xs)), np.nan)
    values = pd.to_numeric(agg[col], errors="coerce").astype("float64").to_numpy()
    xv = _plain_list(agg[xcol])
    yv = _plain_list(agg[ycol]) if ycol else [None] * len(agg)
    for j, xval in enumerate(xs):
        for i, yval in enumerate(ys):
            cell = [
                values[k]
                for k in range(len(agg))
                if xv[k] == xval and (ycol is None or yv[k] == yval) and np.isfinite(values[k])
            ]
            if cell:
                z[i, j] = float(np.mean(cell))
    return xs, ys, z


def _heatmap_png(
    agg: pd.DataFrame, col: str, xcol: str, ycol: str | None, lower_better: bool
) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure

    xs, ys, z = _grid(agg, col, xcol, ycol)
    width = min(12.0, 2.5 + 0.9 * len(xs))
    height = min(9.0, 1.8 + 0.55 * len(ys))
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    finite = z[np.isfinite(z)]
    norm = None
    if finite.size and finite.min() < 0 < finite.max():
        norm = TwoSlopeNorm(vmin=float(finite.min()), vcenter=0.0, vmax=float(finite.max()))
    cmap = "RdYlGn_r" if lower_better else "RdYlGn"
    im = ax.imshow(np.ma.masked_invalid(z), cmap=cmap, norm=norm, aspect="auto", origin="lower")
    ax.set_xticks(range(len(xs)), [_fmt(v) for v in xs])
    ax.set_yticks(range(len(ys)), [_fmt(v) for v in ys] if ycol else [""])
    ax.set_xlabel(xcol)
    if ycol:
        ax.set_ylabel(ycol)
    if z.size <= _MAX_CELLS_ANNOTATED:
        for i in range(len(ys)):
            for j in range(len(xs)):
                if np.isfinite(z[i, j]):
                    ax.text(j, i, f"{z[i, j]:.4g}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=ax, shrink=0.9)
    ax.set_title(col)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _table(frame: pd.DataFrame, text_cols: Sequence[str] = ()) -> str:
    e = html.escape
    head = "".join(
        f'<th class="{"t" if c in text_cols else ""}">{e(str(c))}</th>' for c in frame.columns
    )
    rows = []
    for rec in frame.itertuples(index=False):
        cells = "".join(
            f'<td class="{"t" if c in text_cols else ""}">{e(_fmt(v))}</td>'
            for c, v in zip(frame.columns, rec, strict=True)
        )
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def write_sweep_report(
    path: Path,
    *,
    runs: pd.DataFrame,
    aggregate: pd.DataFrame,
    best: pd.DataFrame,
    param_cols: Sequence[str],
    x: str | None,
    y: str | None,
    metric: str,
    lower_better: bool,
    info: Mapping[str, Any],
) -> Path:
    """Write ``report.html`` (see the module's docstring) and return its path. ``x``/``y``:
    the heatmap axes (column names of ``aggregate``); ``metric``: the ranking column."""
    e = html.escape
    n_ok = int((runs["status"] == "ok").sum()) if len(runs) else 0
    n_err = len(runs) - n_ok
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        "<title>tradekit sweep</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<h1>tradekit sweep</h1>",
        f'<p class="sub">{len(runs)} runs: {n_ok} ok, {n_err} errors; '
        f"{len(aggregate)} parameter sets; ranked by {e(metric)}</p>",
        "<table>",
    ]
    for k, v in info.items():
        parts.append(f'<tr><th class="t">{e(str(k))}</th><td class="t">{e(_fmt(v))}</td></tr>')
    parts.append("</table>")

    parts.append("<h2>Heatmaps</h2>")
    metrics = list(
        dict.fromkeys(
            [metric, "net_pnl_mean", "markout_1s_mean", "markout_10s_mean", "markout_60s_mean"]
        )
    )
    try:
        import matplotlib  # noqa: F401

        have_mpl = True
    except ImportError:
        have_mpl = False
    if not have_mpl:
        parts.append(
            '<p class="note">matplotlib is not installed, so there are no heatmaps '
            "(pip install 'tradekit[report]').</p>"
        )
    elif x is None:
        parts.append('<p class="note">no swept parameter to draw heatmaps over</p>')
    else:
        where = f"{x} x {y}" if y else x
        others = [c for c in param_cols if c not in (x, y)]
        note = f" (mean over {', '.join(others)})" if others else ""
        parts.append(f'<p class="sub">{e(where)}{e(note)}; mean over symbols and days</p>')
        for col in metrics:
            lower = lower_better if col == metric else False
            try:
                png = _heatmap_png(aggregate, col, x, y, lower)
            except Exception as exc:  # a broken plot must not lose the report
                parts.append(f'<p class="note">{e(col)}: plot failed: {e(repr(exc))}</p>')
                continue
            data = base64.b64encode(png).decode("ascii")
            parts.append(
                f'<figure><img alt="{e(col, quote=True)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{e(col)}</figcaption></figure>"
            )

    parts.append("<h2>Best parameter sets</h2>")
    keep = [
        "rank",
        *param_cols,
        "runs",
        "ok",
        metric,
        "net_pnl_mean",
        "net_pnl_worst_day",
        "fills_mean",
        "markout_10s_mean",
        "max_drawdown_max",
    ]
    cols = [c for c in dict.fromkeys(keep) if c in best.columns]
    parts.append(_table(best[cols], text_cols=[c for c in param_cols if c in cols]))

    errors = runs[runs["status"] != "ok"] if len(runs) else runs
    if len(errors):
        parts.append(f"<h2>Errors ({len(errors)})</h2>")
        for _, row in errors.head(_MAX_ERRORS).iterrows():
            what = ", ".join(f"{c}={_fmt(row[c])}" for c in (*param_cols, "symbol", "day"))
            parts.append(
                f"<p>{e(str(row['run_id']))}: {e(what)}</p><pre>{e(str(row['error']))}</pre>"
            )
        if len(errors) > _MAX_ERRORS:
            parts.append(f'<p class="note">{len(errors) - _MAX_ERRORS} more in runs.csv</p>')
    parts.append(f"<footer>tradekit {e(__version__)}</footer>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path
