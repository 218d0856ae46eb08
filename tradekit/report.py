"""The self-contained HTML report of a run (``report.html``, CONTRACT section 7).

One file, nothing fetched: inline CSS, plots embedded as base64 PNG. Plots are drawn with
matplotlib's object API (``Figure`` + ``FigureCanvasAgg``, no ``pyplot``), so writing a report
never touches the global backend or opens a window. matplotlib is an optional dependency (the
``report`` extra): without it the report still has the title and the metrics table, with a note
where the plots would be. A plot that fails to draw is replaced by a note, never an exception.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._version import __version__
from .enums import Side
from .model import Fill
from .results import MARKOUT_HORIZONS, BacktestResult, RunRecord, _fmt_value

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["MAX_POINTS", "write_report"]

#: The most points drawn per line; longer series are thinned evenly (first and last kept).
MAX_POINTS = 5000

_SAMPLE_FLOAT_COLUMNS = ("bid", "ask", "our_bid", "our_ask", "position")
_FIGSIZE = (10.0, 3.6)
_PNL_TITLE = "net PnL (after fees, open positions marked at mid)"
_MARKOUT_TITLE = "mark-out after our fills (mean per share, positive is good for us)"
_DPI = 100

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1060px; color: #1d1d1f; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.span { color: #555; margin-top: 0; }
table.metrics { border-collapse: collapse; font-size: 0.92em; }
table.metrics td { padding: 0.2em 1.2em 0.2em 0; border-bottom: 1px solid #eee;
                   vertical-align: top; }
table.metrics td.k { font-family: ui-monospace, Menlo, Consolas, monospace; color: #444; }
table.metrics td.v { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #8a5a00; background: #fff7e0; padding: 0.4em 0.8em; border-radius: 4px; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
footer { color: #888; font-size: 0.8em; margin-top: 3em; }
"""


@dataclass(slots=True)
class _Plot:
    """One rendered (or failed) plot."""

    filename: str
    title: str
    png: bytes | None
    note: str = ""


# ---- data preparation -----------------------------------------------------------------------
def _thin(n: int, limit: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most ``limit`` evenly spread points of ``n`` (first and last kept)."""
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


def _float_column(values: Any, n: int) -> np.ndarray:
    """A sample column as float64 (None -> NaN); all NaN when missing or of the wrong length."""
    if values is None:
        return np.full(n, np.nan)
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.array([_to_float(v) for v in values], dtype=np.float64)
    if arr.shape != (n,):
        return np.full(n, np.nan)
    return arr


def _to_float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _samples_by_key(samples: Mapping[str, Sequence[Any]]) -> dict[str, dict[str, np.ndarray]]:
    """``RunRecord.samples`` split per ``VENUE:SYMBOL`` key, each sorted by time: ``{key: {"ts":
    int64 ns, "bid": ..., "ask": ..., "our_bid": ..., "our_ask": ..., "position": ...}}``."""
    raw_ts = samples.get("ts")
    if raw_ts is None or len(raw_ts) == 0:
        return {}
    ts = np.asarray(raw_ts, dtype=np.int64)
    n = ts.shape[0]
    raw_keys = samples.get("key")
    if raw_keys is None or len(raw_keys) != n:
        keys = np.full(n, "", dtype=object)
    else:
        keys = np.asarray([str(k) for k in raw_keys], dtype=object)
    cols = {c: _float_column(samples.get(c), n) for c in _SAMPLE_FLOAT_COLUMNS}
    out: dict[str, dict[str, np.ndarray]] = {}
    for key in dict.fromkeys(keys.tolist()):
        mask = keys == key
        order = np.argsort(ts[mask], kind="stable")
        part = {"ts": ts[mask][order]}
        for c, arr in cols.items():
            part[c] = arr[mask][order]
        out[str(key)] = part
    return out


def _fill_key(f: Fill) -> str:
    return f"{f.venue}:{f.symbol}"


def _fills_by_key(fills: Sequence[Fill]) -> dict[str, list[Fill]]:
    out: dict[str, list[Fill]] = {}
    for f in fills:
        out.setdefault(_fill_key(f), []).append(f)
    return out


def _times(ts: np.ndarray) -> np.ndarray:
    """ns ints -> ``datetime64[ns]`` (UTC), which matplotlib plots as dates."""
    return np.asarray(ts, dtype=np.int64).astype("datetime64[ns]")


def _png_name(key: str) -> str:
    parts = [re.sub(r"[^A-Za-z0-9._-]+", "-", p) for p in key.split(":", 1)]
    return "price_" + "_".join(p for p in parts if p) + ".png"


# ---- plots ------------------------------------------------------------------------------------
def _date_axis(ax: Axes) -> None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.set_xlabel("time (UTC)")


def _empty(ax: Axes, text: str, title: str) -> None:
    ax.set_title(title)
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=13,
        color="#888888",
    )
    ax.set_xticks([])
    ax.set_yticks([])


def _legend(ax: Axes) -> None:
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="upper left", fontsize="small", framealpha=0.8)


def _plot_price(ax: Axes, key: str, data: dict[str, np.ndarray] | None, fills: list[Fill]) -> None:
    """Market bid/ask band (or mid), our bid and ask, and our fills of one key."""
    drew = False
    if data is not None and data["ts"].size:
        idx = _thin(data["ts"].size)
        t = _times(data["ts"][idx])
        bid, ask = data["bid"][idx], data["ask"][idx]
        both = np.isfinite(bid) & np.isfinite(ask)
        if both.any():
            ax.fill_between(
                t,
                bid,
                ask,
                where=both,
                step="post",
                color="#9bbbd9",
                alpha=0.55,
                linewidth=0,
                label="market bid/ask",
            )
            mid = np.where(both, (bid + ask) * 0.5, np.nan)
            ax.plot(t, mid, drawstyle="steps-post", color="#4a6f94", linewidth=0.6, label="mid")
            drew = True
        for col, color, label in (
            ("our_bid", "#1f77b4", "our bid"),
            ("our_ask", "#ff7f0e", "our ask"),
        ):
            y = data[col][idx]
            if np.isfinite(y).any():
                ax.plot(t, y, drawstyle="steps-post", color=color, linewidth=0.9, label=label)
                drew = True
    for side, marker, color, label in (
        (Side.BUY, "^", "#2ca02c", "buy fill"),
        (Side.SELL, "v", "#d62728", "sell fill"),
    ):
        mine = [f for f in fills if f.side == side]
        if not mine:
            continue
        idx = _thin(len(mine))
        ts = np.array([mine[i].ts for i in idx], dtype=np.int64)
        px = np.array([mine[i].price for i in idx], dtype=np.float64)
        ax.scatter(
            _times(ts),
            px,
            marker=marker,
            color=color,
            s=26,
            zorder=5,
            edgecolors="black",
            linewidths=0.3,
            label=label,
        )
        drew = True
    if not drew:
        _empty(ax, "no samples, no fills", f"{key}: price")
        return
    if not fills:
        ax.text(
            0.99,
            0.97,
            "no fills",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=10,
            color="#888888",
        )
    ax.set_title(f"{key}: price")
    ax.set_ylabel("price")
    ax.grid(True, alpha=0.3)
    _date_axis(ax)
    _legend(ax)


def _inventory_series(
    rec: RunRecord, by_key: dict[str, dict[str, np.ndarray]]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Position over time per key: the sampled positions where there are samples, else the
    starting inventory stepped by our fills."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for key, data in by_key.items():
        if np.isfinite(data["position"]).any():
            out[key] = (data["ts"], data["position"])
    fills = _fills_by_key(rec.fills)
    for key in dict.fromkeys([*rec.initial_positions, *fills]):
        if key in out:
            continue
        pos = float(rec.initial_positions.get(key, 0.0))
        ts_list = [int(rec.start_ns)]
        pos_list = [pos]
        for f in sorted(fills.get(key, []), key=lambda f: f.ts):
            pos += f.signed_qty
            ts_list.append(int(f.ts))
            pos_list.append(pos)
        ts_list.append(max(int(rec.end_ns), ts_list[-1]))
        pos_list.append(pos)
        out[key] = (np.array(ts_list, dtype=np.int64), np.array(pos_list, dtype=np.float64))
    return out


def _plot_inventory(
    ax: Axes, series: dict[str, tuple[np.ndarray, np.ndarray]], has_fills: bool
) -> None:
    if not series:
        _empty(ax, "no fills" if not has_fills else "no position data", "inventory")
        return
    for key, (ts, pos) in series.items():
        idx = _thin(ts.size)
        ax.plot(_times(ts[idx]), pos[idx], drawstyle="steps-post", linewidth=1.0, label=key)
    ax.axhline(0.0, color="#888888", linewidth=0.6)
    if not has_fills:
        ax.text(
            0.99,
            0.97,
            "no fills",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=10,
            color="#888888",
        )
    ax.set_title("inventory")
    ax.set_ylabel("position (shares)")
    ax.grid(True, alpha=0.3)
    _date_axis(ax)
    _legend(ax)


def _plot_pnl(ax: Axes, rec: RunRecord) -> None:
    pts = sorted(
        ((int(t), float(v)) for t, v in rec.pnl_curve if v is not None and math.isfinite(v)),
        key=lambda p: p[0],
    )
    if not pts:
        _empty(ax, "no PnL data" + ("" if rec.fills else " (no fills)"), _PNL_TITLE)
        return
    if pts[0][0] > rec.start_ns:
        pts.insert(0, (int(rec.start_ns), 0.0))
    if pts[-1][0] < rec.end_ns:
        pts.append((int(rec.end_ns), pts[-1][1]))
    ts = np.array([p[0] for p in pts], dtype=np.int64)
    vals = np.array([p[1] for p in pts], dtype=np.float64)
    idx = _thin(ts.size)
    t = _times(ts[idx])
    v = vals[idx]
    ax.plot(t, v, drawstyle="steps-post", color="#333333", linewidth=1.0, label="net PnL")
    ax.fill_between(t, v, 0.0, where=v >= 0, step="post", color="#2ca02c", alpha=0.2, linewidth=0)
    ax.fill_between(t, v, 0.0, where=v < 0, step="post", color="#d62728", alpha=0.2, linewidth=0)
    ax.axhline(0.0, color="#888888", linewidth=0.6)
    ax.set_title(_PNL_TITLE)
    ax.set_ylabel("PnL")
    ax.grid(True, alpha=0.3)
    _date_axis(ax)


def _plot_markout(ax: Axes, summary: Mapping[str, Any]) -> None:
    labels = [f"{h}s" for h in MARKOUT_HORIZONS]
    values = [summary.get(f"markout_{h}s") for h in MARKOUT_HORIZONS]
    if all(v is None for v in values):
        _empty(ax, "no fills", _MARKOUT_TITLE)
        return
    ys = [math.nan if v is None else float(v) for v in values]
    xs = np.arange(len(labels))
    colors = ["#2ca02c" if y >= 0 else "#d62728" for y in ys]
    ax.bar(xs, [0.0 if math.isnan(y) else y for y in ys], color=colors, width=0.5)
    for x, y in zip(xs, ys, strict=True):
        if math.isnan(y):
            ax.annotate(
                "no fills",
                (float(x), 0.0),
                textcoords="offset points",
                xytext=(0, 5),
                ha="center",
                fontsize=9,
                color="#888888",
            )
        else:
            below = y < 0
            ax.annotate(
                f"{y:.4g}",
                (float(x), y),
                textcoords="offset points",
                xytext=(0, -12 if below else 4),
                ha="center",
                fontsize=9,
            )
    ax.margins(y=0.15)
    ax.set_xticks(xs)
    ax.set_xticklabels(labels)
    ax.axhline(0.0, color="#888888", linewidth=0.6)
    ax.set_title(_MARKOUT_TITLE)
    ax.set_xlabel("horizon")
    ax.set_ylabel("mark-out")
    ax.grid(True, axis="y", alpha=0.3)


def _load_matplotlib() -> tuple[type[Figure], Any] | None:
    """``(Figure, FigureCanvasAgg)``, or None when matplotlib is not installed."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure, FigureCanvasAgg


def _render_plots(rec: RunRecord, summary: Mapping[str, Any]) -> list[_Plot] | None:
    """Every plot of the report as PNG bytes; None when matplotlib is missing."""
    mpl = _load_matplotlib()
    if mpl is None:
        return None
    figure_cls, canvas_cls = mpl
    by_key = _samples_by_key(rec.samples)
    fills = _fills_by_key(rec.fills)

    specs: list[tuple[str, str, Callable[[Axes], None]]] = []
    for key in dict.fromkeys([*by_key, *fills]):

        def draw_price(ax: Axes, key: str = key) -> None:
            _plot_price(ax, key, by_key.get(key), fills.get(key, []))

        specs.append((_png_name(key), f"{key}: price, our quotes and fills", draw_price))
    series = _inventory_series(rec, by_key)
    specs.append(
        ("inventory.png", "Inventory", lambda ax: _plot_inventory(ax, series, bool(rec.fills)))
    )
    specs.append(("pnl.png", "Net PnL", lambda ax: _plot_pnl(ax, rec)))
    specs.append(("markout.png", "Mark-out", lambda ax: _plot_markout(ax, summary)))

    plots: list[_Plot] = []
    for filename, title, draw in specs:
        try:
            fig = figure_cls(figsize=_FIGSIZE, dpi=_DPI, layout="constrained")
            canvas_cls(fig)
            draw(fig.add_subplot())
            buf = io.BytesIO()
            fig.savefig(buf, format="png", metadata={"Software": None})
            plots.append(_Plot(filename, title, buf.getvalue()))
        except Exception as exc:  # a broken plot must not lose the run's report
            plots.append(_Plot(filename, title, None, f"plot failed: {type(exc).__name__}: {exc}"))
    return plots


# ---- HTML -------------------------------------------------------------------------------------
def _metric_cell(value: Any) -> str:
    if isinstance(value, Mapping):
        if not value:
            return "(none)"
        return "<br>".join(
            f"{html.escape(str(k))} {html.escape(_fmt_value(v))}" for k, v in value.items()
        )
    return html.escape(_fmt_value(value))


def _html(
    summary: Mapping[str, Any], plots: list[_Plot] | None, has_fills: bool, has_samples: bool
) -> str:
    e = html.escape
    strategy = str(summary.get("strategy", ""))
    start, end = str(summary.get("start", "")), str(summary.get("end", ""))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>tradekit report: {e(strategy)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>tradekit report: {e(strategy)}</h1>",
        f'<p class="span">{e(start)} &rarr; {e(end)}</p>',
    ]
    if not has_fills:
        parts.append('<p class="note">no fills</p>')
    if not has_samples:
        parts.append('<p class="note">no market samples</p>')
    parts.append("<h2>Metrics</h2>")
    parts.append('<table class="metrics">')
    for k, v in summary.items():
        parts.append(f'<tr><td class="k">{e(str(k))}</td><td class="v">{_metric_cell(v)}</td></tr>')
    parts.append("</table>")
    parts.append("<h2>Plots</h2>")
    if plots is None:
        parts.append(
            '<p class="note">matplotlib is not installed, so there are no plots '
            "(install it with <code>pip install 'tradekit[report]'</code>).</p>"
        )
    else:
        for p in plots:
            if p.png is None:
                parts.append(f'<p class="note">{e(p.title)}: {e(p.note)}</p>')
                continue
            data = base64.b64encode(p.png).decode("ascii")
            parts.append(
                f'<figure><img alt="{e(p.title, quote=True)}" '
                f'src="data:image/png;base64,{data}">'
                f"<figcaption>{e(p.title)}</figcaption></figure>"
            )
    parts.append(f"<footer>tradekit {e(__version__)}</footer>")
    parts.append("</body>")
    parts.append("</html>")
    return "\n".join(parts) + "\n"


def write_report(
    result_or_record: BacktestResult | RunRecord,
    path: str | Path,
    *,
    png_dir: str | Path | None = None,
) -> Path:
    """Write the self-contained HTML report of a run to ``path`` (parent directories created)
    and return it; with ``png_dir``, also write each plot there as a PNG
    (``price_<VENUE>_<SYMBOL>.png``, ``inventory.png``, ``pnl.png``, ``markout.png``)."""
    if isinstance(result_or_record, BacktestResult):
        result = result_or_record
    else:
        result = BacktestResult(result_or_record)
    rec = result.record
    summary = result.summary
    plots = _render_plots(rec, summary)
    if png_dir is not None and plots:
        pdir = Path(png_dir)
        pdir.mkdir(parents=True, exist_ok=True)
        for p in plots:
            if p.png is not None:
                (pdir / p.filename).write_bytes(p.png)
    sample_ts = rec.samples.get("ts") if rec.samples else None
    has_samples = sample_ts is not None and len(sample_ts) > 0
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_html(summary, plots, bool(rec.fills), has_samples), encoding="utf-8")
    return out
