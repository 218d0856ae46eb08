"""A seeded synthetic market: one trading day of quotes and trades per symbol and venue.

Model, per symbol:

* a fundamental mid on a 100 ms grid over the session: a log random walk with Student-t
  innovations, volatility clustering (the log of the volatility is an AR(1) process on a one
  minute grid: calm and busy stretches last tens of minutes) and a U-shaped intraday profile
  (busier near the open and the close); half the volatility outside regular hours;
* venues: the first venue follows the fundamental; the second and later ones follow it
  ``lead_lag_ms`` late. Dislocations (Poisson, ``dislocation_rate`` per hour per symbol) shift one
  random venue's mid by 3-8 ticks for 1-6 seconds, so arbitrage and cross-venue market making
  have something to find;
* quotes at Poisson times (``quote_rate`` per second per venue, a quarter of it outside regular
  hours, plus one quote at the start): the spread is ``spread_ticks`` +/- 1 tick (at least 1,
  one more outside regular hours), placed so the bid is at or below the venue's mid and the ask
  at or above it, on the tick (``tick``, else Reg NMS Rule 612: $0.01 at or above $1, $0.0001
  below), never crossed; displayed sizes are positive multiples of 100 around ``size``;
* trades at Poisson times (``trade_rate`` per second per venue, a tenth of it outside regular
  hours) that hit the bid or lift the ask of that venue's quote in force at that instant, with
  lognormal sizes rounded to round lots (100s) or left as odd lots, never above the size shown.

Everything is generated with numpy (``numpy.random.default_rng``) per symbol and venue, then
merged into one time-ordered stream; objects are built lazily, chunk by chunk. The same seed gives
identical events; each symbol/venue has its own random stream (seeded from the seed, the symbol
name and the venue's position), so adding a symbol does not change the others.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date as Date
from datetime import timedelta
from decimal import Decimal
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt

from ..calendar import get_calendar
from ..enums import Session
from ..errors import ConfigError
from ..model import Quote, Trade
from ..timeutil import NS_PER_MS, NS_PER_S

__all__ = ["DEFAULTS", "Dislocation", "SymbolParams", "SyntheticMarket"]

#: Per-symbol keys and their defaults (``start_price`` has none: it is required).
DEFAULTS: Final[dict[str, float | int | None]] = {
    "start_price": None,
    "volatility": 0.25,
    "spread_ticks": 2,
    "tick": None,
    "quote_rate": 2.0,
    "trade_rate": 0.3,
    "size": 300,
    "lead_lag_ms": 250.0,
    "dislocation_rate": 2.0,
}
_ALLOWED: Final = tuple(DEFAULTS)
_KEY: Final = "market.symbols"  # where the parameters live in the TOML config

_GRID_NS: Final = 100 * NS_PER_MS  # fundamental grid step
_REGULAR_SECONDS_PER_YEAR: Final = 252 * 6.5 * 3600  # annualization of the volatility
_LOT: Final = 100
_CHUNK: Final = 65_536  # events built per chunk

# outside regular hours (extended sessions)
_OFF_HOURS_QUOTE: Final = 0.25
_OFF_HOURS_TRADE: Final = 0.10
_OFF_HOURS_VOL: Final = 0.5

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class Dislocation(NamedTuple):
    """One episode: ``venue``'s mid of ``symbol`` is shifted by ``offset_ticks`` ticks during
    ``[start_ns, end_ns)``."""

    symbol: str
    venue: str
    start_ns: int
    end_ns: int
    offset_ticks: int


@dataclass(frozen=True, slots=True)
class SymbolParams:
    """Resolved parameters of one symbol (see the module docstring)."""

    start_price: float
    volatility: float
    spread_ticks: int
    tick: float | None  # None: Rule 612 by price
    quote_rate: float
    trade_rate: float
    size: float
    lead_lag_ms: float
    dislocation_rate: float


def _number(sym: str, key: str, value: Any, *, low: float, strict_low: bool) -> float:
    where = f"{_KEY}.{sym}.{key}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{value!r} is not a number", key=where)
    v = float(value)
    if not math.isfinite(v) or v < low or (strict_low and v == low):
        need = f"> {low:g}" if strict_low else f">= {low:g}"
        raise ConfigError(f"{value!r} is out of range (must be a finite number {need})", key=where)
    return v


def _params(sym: str, raw: Mapping[str, Any]) -> SymbolParams:
    """Checked parameters of ``sym`` (``raw``: its table over the market-wide defaults)."""
    for key in raw:
        if key not in DEFAULTS:
            raise ConfigError(
                f"unknown key {key!r} (allowed: {', '.join(_ALLOWED)})", key=f"{_KEY}.{sym}"
            )
    if "start_price" not in raw:
        raise ConfigError("start_price is required (a price > 0)", key=f"{_KEY}.{sym}")
    start = _number(sym, "start_price", raw["start_price"], low=0.0, strict_low=True)
    vol = _number(sym, "volatility", raw.get("volatility", 0.25), low=0.0, strict_low=False)
    st = raw.get("spread_ticks", 2)
    if isinstance(st, bool) or not isinstance(st, int | float) or st != int(st) or st < 1:
        raise ConfigError(
            f"{st!r} is not allowed (must be a whole number of ticks >= 1)",
            key=f"{_KEY}.{sym}.spread_ticks",
        )
    tick_raw = raw.get("tick")
    tick = None
    if tick_raw is not None:
        tick = _number(sym, "tick", tick_raw, low=0.0, strict_low=True)
        if tick > start:
            raise ConfigError(
                f"{tick_raw!r} is larger than start_price {raw['start_price']!r}",
                key=f"{_KEY}.{sym}.tick",
            )
    qr = _number(sym, "quote_rate", raw.get("quote_rate", 2.0), low=0.0, strict_low=True)
    tr = _number(sym, "trade_rate", raw.get("trade_rate", 0.3), low=0.0, strict_low=False)
    size = _number(sym, "size", raw.get("size", 300), low=0.0, strict_low=True)
    lag = _number(sym, "lead_lag_ms", raw.get("lead_lag_ms", 250.0), low=0.0, strict_low=False)
    dr = _number(
        sym, "dislocation_rate", raw.get("dislocation_rate", 2.0), low=0.0, strict_low=False
    )
    return SymbolParams(start, vol, int(st), tick, qr, tr, size, lag, dr)


class _Side(NamedTuple):
    """Generated arrays of one symbol on one venue."""

    q_ts: IntArray
    q_bid: FloatArray
    q_bid_size: FloatArray
    q_ask: FloatArray
    q_ask_size: FloatArray
    t_ts: IntArray
    t_price: FloatArray
    t_size: FloatArray


class SyntheticMarket:
    """A deterministic synthetic trading day of quotes and trades (see the module docstring).

    ``symbols`` maps each symbol to its parameters (``start_price`` required; optional
    ``volatility``, ``spread_ticks``, ``tick``, ``quote_rate``, ``trade_rate``, ``size``,
    ``lead_lag_ms``, ``dislocation_rate``: see ``DEFAULTS``). Keyword arguments here
    (``lead_lag_ms``, ``dislocation_rate`` and any other per-symbol key but ``start_price``, e.g.
    from the ``[market]`` table) are defaults for every symbol. ``venues`` names the venues; the
    first one leads. ``hours`` is ``"regular"`` (the regular session of ``date``: 09:30-16:00 ET,
    13:00 on early-close days) or ``"extended"`` (pre-open to post-close). Unknown keys and
    impossible values raise ``ConfigError`` naming the key and the value, as does a date the
    market is closed (naming the next trading day). The day is generated on the first call of
    :meth:`events` (or :meth:`generate`, ``len()``, ``dislocations``) and kept.

    ``symbols`` (set of names), ``venues``, ``start_ns``/``end_ns`` (the simulated span) and
    ``params`` (resolved :class:`SymbolParams` by symbol) are attributes."""

    def __init__(
        self,
        *,
        date: Any,
        symbols: Mapping[str, Mapping[str, Any]],
        venues: Sequence[str],
        seed: int = 1,
        calendar: str = "NYSE",
        hours: str = "regular",
        lead_lag_ms: float = 250.0,
        dislocation_rate: float = 2.0,
        **defaults: Any,
    ) -> None:
        if hours not in ("regular", "extended"):
            raise ConfigError(
                f"{hours!r} is not allowed (allowed: regular, extended)", key="session.hours"
            )
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"{seed!r} is not allowed (a whole number >= 0)", key="market.seed")
        if isinstance(venues, str) or not isinstance(venues, Sequence) or not venues:
            raise ConfigError(
                f"expected a non-empty list of venue names, not {venues!r}", key="venues"
            )
        names = list(venues)
        for v in names:
            if not isinstance(v, str) or not v:
                raise ConfigError(f"venue name {v!r} must be a non-empty string", key="venues")
        if len(set(names)) != len(names):
            raise ConfigError(f"venue names repeat: {names!r}", key="venues")
        if not isinstance(symbols, Mapping) or not symbols:
            raise ConfigError(
                "expected at least one symbol with its parameters, e.g. "
                "{'AAPL': {'start_price': 190.0}}",
                key=_KEY,
            )
        shared = {"lead_lag_ms": lead_lag_ms, "dislocation_rate": dislocation_rate}
        for key, value in defaults.items():
            if key not in DEFAULTS or key == "start_price":
                allowed = ", ".join(["date", "seed", *(k for k in _ALLOWED if k != "start_price")])
                raise ConfigError(f"unknown key {key!r} (allowed: {allowed})", key="market")
            shared[key] = value
        self.params: dict[str, SymbolParams] = {}
        for sym, raw in symbols.items():
            if not isinstance(sym, str) or not sym:
                raise ConfigError(f"symbol {sym!r} must be a non-empty string", key=_KEY)
            if not isinstance(raw, Mapping):
                raise ConfigError(
                    f"expected a table of parameters (at least start_price), not {raw!r}",
                    key=f"{_KEY}.{sym}",
                )
            self.params[sym] = _params(sym, {**shared, **raw})
        self.seed = seed
        self.hours = hours
        self.venues: list[str] = names
        self.symbols: set[str] = set(self.params)
        self.calendar = get_calendar(calendar)
        try:
            day = self.calendar.day(date)
        except (ValueError, TypeError) as e:
            raise ConfigError(
                f"{date!r} is not a date (e.g. '2026-11-24'): {e}", key="market.date"
            ) from None
        self.date: Date = day.date
        if not day.is_trading_day:
            nxt = self.calendar.trading_days(day.date, day.date + timedelta(days=30))
            after = f"; the next trading day is {nxt[0].isoformat()}" if nxt else ""
            raise ConfigError(
                f"the market ({self.calendar.name}) is closed on {day.date.isoformat()} "
                f"({day.date.strftime('%A')}){after}",
                key="market.date",
            )
        assert day.open_ns is not None and day.close_ns is not None
        assert day.pre_open_ns is not None and day.post_close_ns is not None
        self.open_ns: int = day.open_ns
        self.close_ns: int = day.close_ns
        if hours == "regular":
            self.start_ns, self.end_ns = day.open_ns, day.close_ns
        else:
            self.start_ns, self.end_ns = day.pre_open_ns, day.post_close_ns
        self._dislocations_list: list[Dislocation] = []
        self._arrays: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return (
            f"SyntheticMarket(date={self.date.isoformat()!r}, symbols={sorted(self.symbols)!r}, "
            f"venues={self.venues!r}, seed={self.seed}, hours={self.hours!r})"
        )

    @property
    def dislocations(self) -> list[Dislocation]:
        """The day's dislocation episodes in start order (generates the day)."""
        self.generate()
        return self._dislocations_list

    def __len__(self) -> int:
        """Number of events of the day (generates it)."""
        return int(self.generate()["ts"].shape[0])

    def __iter__(self) -> Iterator[Quote | Trade]:
        return self.events()

    # ------------------------------------------------------------------ generation

    def _segments(self) -> list[tuple[int, int, bool]]:
        """``(start_ns, end_ns, regular)`` pieces of the simulated span."""
        out: list[tuple[int, int, bool]] = []
        for a, b, s in self.calendar.sessions(self.start_ns, self.end_ns):
            if s is Session.CLOSED:
                continue
            out.append((a, b, s is Session.REGULAR))
        return out

    def _rng(self, sym: str, k: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(sym.encode()), k])

    def _fundamental(self, sym: str, p: SymbolParams) -> FloatArray:
        """Mid on the 100 ms grid from ``start_ns``."""
        rng = self._rng(sym, 0)
        n = max(1, -(-(self.end_ns - self.start_ns) // _GRID_NS))
        minutes = n // 600 + 2
        # log-volatility: AR(1) per minute (half-life ~20 minutes), unit mean variance
        phi, s = math.exp(-1.0 / 30.0), 0.5
        eps = rng.standard_normal(minutes)
        x = np.empty(minutes)
        x[0] = eps[0] * s
        c = math.sqrt(1 - phi * phi) * s
        for m in range(1, minutes):
            x[m] = phi * x[m - 1] + c * eps[m]
        vmult = np.exp(x - s * s)[np.arange(n) // 600]
        # intraday profile: U-shaped in the regular session, halved outside it
        t = self.start_ns + np.arange(n, dtype=np.int64) * _GRID_NS
        tau = np.clip((t - self.open_ns) / max(1, self.close_ns - self.open_ns), 0.0, 1.0)
        profile = 0.85 + 0.45 * (2 * tau - 1) ** 2
        regular = (t >= self.open_ns) & (t < self.close_ns)
        profile = np.where(regular, profile, _OFF_HOURS_VOL)
        step = p.volatility * math.sqrt((_GRID_NS / NS_PER_S) / _REGULAR_SECONDS_PER_YEAR)
        df = 5.0
        shocks = rng.standard_t(df, n) * math.sqrt((df - 2) / df)
        incr = step * vmult * profile * shocks
        incr[0] = 0.0
        return np.asarray(p.start_price * np.exp(np.cumsum(incr)), dtype=np.float64)

    def _poisson_times(self, rng: np.random.Generator, rate: float, off_mult: float) -> IntArray:
        parts: list[IntArray] = []
        for a, b, regular in self._segments():
            r = rate * (1.0 if regular else off_mult)
            count = int(rng.poisson(r * (b - a) / NS_PER_S)) if r > 0 else 0
            if count:
                parts.append(a + np.sort((rng.random(count) * (b - a)).astype(np.int64)))
        if not parts:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate(parts)

    def _dislocations(self, sym: str, p: SymbolParams) -> list[Dislocation]:
        rng = self._rng(sym, 1)
        hours = (self.end_ns - self.start_ns) / (3600 * NS_PER_S)
        count = int(rng.poisson(p.dislocation_rate * hours)) if p.dislocation_rate > 0 else 0
        starts: list[int] = (
            np.sort(rng.integers(self.start_ns, self.end_ns, count)).tolist() if count else []
        )
        out: list[Dislocation] = []
        for st in starts:
            dur = int(rng.uniform(1.0, 6.0) * NS_PER_S)
            venue = self.venues[int(rng.integers(0, len(self.venues)))]
            off = int(rng.integers(3, 9)) * (1 if rng.random() < 0.5 else -1)
            out.append(Dislocation(sym, venue, int(st), min(int(st) + dur, self.end_ns), off))
        return out

    def _side(
        self, sym: str, p: SymbolParams, k: int, fund: FloatArray, dis: list[Dislocation]
    ) -> _Side:
        """Quotes and trades of ``sym`` on venue number ``k``."""
        rng = self._rng(sym, 2 + k)
        venue = self.venues[k]
        lag_ns = int(p.lead_lag_ms * NS_PER_MS) if k > 0 else 0
        q_ts = np.concatenate(
            [
                np.array([self.start_ns], dtype=np.int64),
                self._poisson_times(rng, p.quote_rate, _OFF_HOURS_QUOTE),
            ]
        )
        nq = q_ts.shape[0]
        gi = np.clip((q_ts - lag_ns - self.start_ns) // _GRID_NS, 0, fund.shape[0] - 1)
        mid = fund[gi]
        # tick per quote: fixed, or Rule 612 by price (in units of $0.0001)
        if p.tick is None:
            unit = 0.0001
            tick_units = np.where(mid >= 1.0, 100, 1).astype(np.int64)
        else:
            unit = p.tick
            tick_units = np.ones(nq, dtype=np.int64)
        tick = tick_units * unit
        shift = np.zeros(nq)
        for d in dis:
            if d.venue != venue:
                continue
            lo, hi = np.searchsorted(q_ts, [d.start_ns, d.end_ns])
            shift[lo:hi] += d.offset_ticks
        center = mid / tick + shift
        regular = (q_ts >= self.open_ns) & (q_ts < self.close_ns)
        spread = p.spread_ticks + rng.choice(
            np.array([-1, 0, 1], dtype=np.int64), size=nq, p=[0.25, 0.5, 0.25]
        )
        spread = np.maximum(spread, 1) + np.where(regular, 0, 1)
        # the quote [b, b + spread] whose centre is nearest the mid: bid <= mid <= ask
        bid_t = np.floor(center - spread / 2.0 + 0.5).astype(np.int64)
        bid_t = np.maximum(bid_t, 1)
        ask_t = bid_t + spread
        bid = _price(bid_t * tick_units, unit)
        ask = _price(ask_t * tick_units, unit)
        lots = max(1.0, p.size / _LOT)
        sigma = 0.5
        mu = math.log(lots) - sigma * sigma / 2
        bid_size = np.maximum(1, np.rint(rng.lognormal(mu, sigma, nq))) * _LOT
        ask_size = np.maximum(1, np.rint(rng.lognormal(mu, sigma, nq))) * _LOT
        # trades at the touch in force
        t_ts = self._poisson_times(rng, p.trade_rate, _OFF_HOURS_TRADE)
        nt = t_ts.shape[0]
        qi = np.searchsorted(q_ts, t_ts, side="right") - 1  # >= 0: a quote at start_ns
        buy = rng.random(nt) < 0.5
        t_price = np.where(buy, ask[qi], bid[qi])
        shown = np.where(buy, ask_size[qi], bid_size[qi])
        raw = rng.lognormal(math.log(80.0), 1.1, nt)
        t_size = np.where(raw >= 100, np.rint(raw / _LOT) * _LOT, np.ceil(raw))
        t_size = np.minimum(np.maximum(t_size, 1.0), shown)
        return _Side(
            q_ts,
            bid,
            bid_size.astype(np.float64),
            ask,
            ask_size.astype(np.float64),
            t_ts,
            t_price,
            t_size.astype(np.float64),
        )

    def generate(self) -> dict[str, Any]:
        """Generate the day (once; cached) and return its merged arrays: ``ts``, ``kind``
        (0 quote, 1 trade), ``sym``/``venue`` (indexes into ``sym_names``/``venue_names``) and
        ``f0..f3`` (bid, bid_size, ask, ask_size; or price, size, nan, nan)."""
        if self._arrays is not None:
            return self._arrays
        sym_names = list(self.params)
        quotes: list[tuple[int, int, _Side]] = []
        dislocations: list[Dislocation] = []
        for si, sym in enumerate(sym_names):
            p = self.params[sym]
            fund = self._fundamental(sym, p)
            dis = self._dislocations(sym, p)
            dislocations.extend(dis)
            for k in range(len(self.venues)):
                quotes.append((si, k, self._side(sym, p, k, fund, dis)))
        # all quotes first, then all trades: a stable sort keeps a quote before a trade at the
        # same instant (a trade happens at the touch in force, that quote included)
        ts_parts: list[IntArray] = []
        kind_parts: list[npt.NDArray[np.int8]] = []
        sym_parts: list[npt.NDArray[np.int32]] = []
        ven_parts: list[npt.NDArray[np.int32]] = []
        f_parts: list[list[FloatArray]] = [[], [], [], []]
        for is_trade in (0, 1):
            for si, k, s in quotes:
                if is_trade:
                    cols = [s.t_price, s.t_size, np.full_like(s.t_price, np.nan)]
                    cols.append(cols[2])
                    ts = s.t_ts
                else:
                    cols = [s.q_bid, s.q_bid_size, s.q_ask, s.q_ask_size]
                    ts = s.q_ts
                m = ts.shape[0]
                ts_parts.append(ts)
                kind_parts.append(np.full(m, is_trade, dtype=np.int8))
                sym_parts.append(np.full(m, si, dtype=np.int32))
                ven_parts.append(np.full(m, k, dtype=np.int32))
                for j in range(4):
                    f_parts[j].append(cols[j])
        ts_all = np.concatenate(ts_parts)
        order = np.argsort(ts_all, kind="stable")
        arrays: dict[str, Any] = {
            "ts": ts_all[order],
            "kind": np.concatenate(kind_parts)[order],
            "sym": np.concatenate(sym_parts)[order],
            "venue": np.concatenate(ven_parts)[order],
            "sym_names": np.array(sym_names, dtype=object),
            "venue_names": np.array(self.venues, dtype=object),
        }
        for j in range(4):
            arrays[f"f{j}"] = np.concatenate(f_parts[j])[order]
        self._dislocations_list = sorted(
            dislocations, key=lambda d: (d.start_ns, d.symbol, d.venue)
        )
        self._arrays = arrays
        return arrays

    # ------------------------------------------------------------------ the stream

    def events(
        self, start_ns: int | None = None, end_ns: int | None = None
    ) -> Iterator[Quote | Trade]:
        """Quotes and trades with ``start_ns <= ts < end_ns`` in ts order (a quote before a
        trade at the same instant), each with its ``venue``."""
        a = self.generate()
        ts = a["ts"]
        lo = 0 if start_ns is None else int(np.searchsorted(ts, int(start_ns), side="left"))
        hi = ts.shape[0] if end_ns is None else int(np.searchsorted(ts, int(end_ns), side="left"))
        return self._stream(a, lo, hi)

    @staticmethod
    def _stream(a: dict[str, Any], lo: int, hi: int) -> Iterator[Quote | Trade]:
        sym_names, venue_names = a["sym_names"], a["venue_names"]
        for c0 in range(lo, hi, _CHUNK):
            c1 = min(c0 + _CHUNK, hi)
            kind = a["kind"][c0:c1]
            is_q = kind == 0
            qi = np.flatnonzero(is_q)
            ti = np.flatnonzero(~is_q)
            ts = a["ts"][c0:c1]
            sym = sym_names[a["sym"][c0:c1]]
            ven = venue_names[a["venue"][c0:c1]]
            f0, f1, f2, f3 = (a[f"f{j}"][c0:c1] for j in range(4))
            quotes = list(
                map(
                    Quote,
                    ts[qi].tolist(),
                    sym[qi].tolist(),
                    f0[qi].tolist(),
                    f1[qi].tolist(),
                    f2[qi].tolist(),
                    f3[qi].tolist(),
                    ven[qi].tolist(),
                )
            )
            if ti.shape[0] == 0:
                yield from quotes
                continue
            trades = list(
                map(
                    Trade,
                    ts[ti].tolist(),
                    sym[ti].tolist(),
                    f0[ti].tolist(),
                    f1[ti].tolist(),
                    ven[ti].tolist(),
                )
            )
            both: list[Quote | Trade] = [*quotes, *trades]
            # position of each built object in the chunk -> objects in chunk order
            order = np.argsort(np.concatenate([qi, ti]), kind="stable")
            yield from map(both.__getitem__, order.tolist())


def _price(units: IntArray, unit: float) -> FloatArray:
    """Integer multiples of ``unit`` -> the nearest float prices (exact decimal text)."""
    inv = round(1.0 / unit)
    if inv > 0 and abs(inv * unit - 1.0) < 1e-9:
        return np.asarray(units / float(inv), dtype=np.float64)
    decimals = max(0, -int(Decimal(repr(unit)).normalize().as_tuple().exponent))
    return np.asarray(np.round(units * unit, decimals), dtype=np.float64)
