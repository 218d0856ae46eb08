"""What runs on a worker: one backtest of a sweep, turned into a plain record.

:func:`execute` never raises for a failing run: the error (type, message and a short traceback)
is recorded with ``status = "error"``. Replay files arrive as paths or fsspec URLs and are read
here, on the worker: a URL (``s3://...``, ``gs://...``; the filesystem's package installed on the
worker) is copied once into a per-machine cache and replayed from there.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ..backtesting import backtest
from ..config import Config
from ..errors import ConfigError, DataError
from .grid import RunSpec, run_config

__all__ = ["CACHE_ENV", "error_text", "execute", "localize"]

#: Environment variable naming the directory where workers cache files fetched from URLs.
CACHE_ENV = "TRADEKIT_SWEEP_CACHE"
_MAX_ERROR_CHARS = 4000


def _run_backtest(cfg: Config, **kwargs: Any) -> Any:
    """The backtest of one run (a seam for tests)."""
    return backtest(cfg, **kwargs)


def error_text(exc: BaseException, frames: int = 4) -> str:
    """``Type: message`` and the last ``frames`` frames of the traceback, one line each."""
    head = f"{type(exc).__name__}: {' '.join(str(exc).split()) or '(no message)'}"
    tb = traceback.extract_tb(exc.__traceback__)[-frames:]
    lines = [f"  at {Path(f.filename).name}:{f.lineno} in {f.name}" for f in tb]
    text = "\n".join([head, *lines])
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 3] + "..."


def _cache_dir() -> Path:
    base = os.environ.get(CACHE_ENV) or os.path.join(tempfile.gettempdir(), "tradekit-sweep-cache")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def localize(url: str) -> str:
    """A local path for a replay file given as a path or a URL. ``file://`` URLs are paths;
    other URLs are fetched with fsspec into the cache (once per machine and version of the file:
    the cache key holds the URL and the size and modification stamp the filesystem reports)."""
    if "://" not in url:
        return url
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return unquote(parsed.path)
    try:
        fsspec = importlib.import_module("fsspec")
    except ImportError:
        raise DataError(
            f"{url}: reading URLs needs fsspec and the filesystem's package on every worker "
            "(pip install fsspec s3fs, for s3://)"
        ) from None
    try:
        fs, path = fsspec.core.url_to_fs(url)
        info = fs.info(path)
    except (ImportError, ValueError) as e:
        raise DataError(f"{url}: no filesystem for this URL: {e}") from None
    except FileNotFoundError:
        raise DataError(f"{url}: no such data file") from None
    stamp = [info.get(k) for k in ("size", "ETag", "etag", "mtime", "LastModified", "md5Hash")]
    key = hashlib.sha256(repr((url, stamp)).encode()).hexdigest()[:20]
    suffixes = "".join(Path(parsed.path).suffixes[-2:])
    target = _cache_dir() / f"{key}{suffixes}"
    if not target.exists():
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-", suffix=suffixes)
        try:
            with os.fdopen(fd, "wb") as out, fs.open(path, "rb") as src:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
            os.replace(tmp, target)  # atomic: concurrent workers of a machine agree
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return str(target)


def execute(
    config: Config, spec: RunSpec, data: Sequence[str] = (), attempt: int = 0
) -> dict[str, Any]:
    """Run one backtest of a sweep and return its record: the spec's fields, ``status``
    (``ok``/``error``), ``error``, ``summary`` (the ``summary.json`` dict, None on error) and
    ``run_seconds`` (the whole task's wall time). ``attempt`` only tells resubmissions apart."""
    del attempt
    t0 = time.perf_counter()
    rec = spec.record()
    try:
        if spec.note:
            raise ConfigError(spec.note, key="window")
        files = [localize(f) for f in data]
        cfg = run_config(config, spec)
        result = _run_backtest(
            cfg, data=files, start=spec.start_ns, end=spec.end_ns, seed=spec.seed
        )
        rec.update(status="ok", error="", summary=dict(result.summary))
    except Exception as e:
        rec.update(status="error", error=error_text(e), summary=None)
    rec["run_seconds"] = round(time.perf_counter() - t0, 6)
    return rec
