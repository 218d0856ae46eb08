"""``tradekit data download``: historical quotes, trades or bars from a broker's data service
into a replay file (CSV or Parquet, the data-file contract's columns)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import ConfigError

VENUES = ("alpaca", "ibkr")
KINDS = ("quotes", "trades", "bars")


def download(
    *,
    venue: str,
    symbol: str,
    start: Any,
    end: Any,
    kind: str,
    out: str | os.PathLike[str],
    **options: Any,
) -> Path:
    """Download ``kind`` of ``symbol`` in ``[start, end)`` from ``venue`` into ``out``.

    ``options`` go to the venue's downloader: for ``ibkr`` ``host``, ``port``, ``client_id``
    (TWS or IB Gateway); for ``alpaca`` the keys come from ``APCA_API_KEY_ID`` /
    ``APCA_API_SECRET_KEY`` and ``options`` may name ``feed`` (``iex`` or ``sip``)."""
    if venue not in VENUES:
        raise ConfigError(f"unknown data venue {venue!r}; allowed: {', '.join(VENUES)}")
    if kind not in KINDS:
        raise ConfigError(f"unknown data kind {kind!r}; allowed: {', '.join(KINDS)}")
    allowed = {
        "ibkr": ("host", "port", "client_id", "route", "currency", "timeframe"),
        "alpaca": ("feed", "timeframe", "data_url"),
    }[venue]
    opts = {k: v for k, v in options.items() if v is not None}
    wrong = sorted(set(opts) - set(allowed))
    if wrong:
        raise ConfigError(
            f"option(s) {', '.join(wrong)} do not apply to {venue}; allowed: {', '.join(allowed)}"
        )
    if venue == "ibkr":
        from .brokers.ibkr import download as ib_download

        return Path(ib_download(symbol, start, end, kind, Path(out), **opts))
    from .brokers.alpaca import download as alpaca_download

    return Path(alpaca_download(symbol=symbol, start=start, end=end, kind=kind, out=out, **opts))
