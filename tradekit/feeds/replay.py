"""Replay of recorded market data: quotes, trades or bars from CSV or Parquet files.

File format (contract, section 5): quotes ``ts, symbol, bid, bid_size, ask, ask_size``; trades
``ts, symbol, price, size``; bars ``ts, symbol, open, high, low, close, volume``; an optional
``venue`` column (a row without one goes to every replay venue: its items carry ``venue=""``).
``ts`` is integer nanoseconds since the epoch, or ISO-8601 text with a UTC offset (``Z`` allowed).
Other columns are ignored; column names are matched case-insensitively.

Bad rows are reported as ``FILE:LINE: what`` (the header is line 1, so the first data row is line
2; for Parquet the same convention: row ``k`` counting from 1 is line ``k + 1``) and skipped:
a ts that is missing, unparsable or has no UTC offset; a ts before 2000-01-01 (seconds or
milliseconds taken for nanoseconds); a ts earlier than the previous good row's; missing or
non-numeric values (NaN, inf); negative prices or sizes; a crossed quote (``bid > ask`` with
both positive; a locked quote ``bid == ask`` is kept, and so is a side with a size of zero); a
trade at a price of zero; a bar whose high is below its low or whose open/close lies outside
``[low, high]``; a symbol that is not one (over 64 characters, control characters, surrounding
spaces) or is outside ``symbols`` when that filter is given. With ``strict=True`` the first bad
row raises :class:`DataError` instead.

Whole-file problems raise :class:`DataError` naming the file: no such file, an empty file,
missing or repeated columns, text that is not UTF-8 (binary junk), CSV that cannot be tokenized,
a truncated or corrupt ``.csv.gz`` or Parquet file.

Speed: files are read in chunks (``pandas.read_csv(chunksize=...)``, Parquet
``iter_batches``), every check is a numpy expression over the chunk, and the model objects are
built with ``map(Quote, ts_list, symbol_list, ...)`` over plain Python lists, so memory stays flat
in the file length and an object costs well under a microsecond end to end.
"""

from __future__ import annotations

import math
import os
import re
import sys
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..errors import ConfigError, DataError
from ..model import Bar, Quote, Trade
from ..timeutil import NS_PER_S, parse_iso_ns

__all__ = [
    "COLUMNS",
    "Kind",
    "MarketEvent",
    "ReplayFile",
    "ReplaySource",
    "infer_kind",
    "load_frame",
    "write_frame",
]

Kind: TypeAlias = Literal["quotes", "trades", "bars"]
MarketEvent: TypeAlias = Quote | Trade | Bar
PathLike: TypeAlias = str | os.PathLike[str]

#: Required columns of each kind, in the order the model's constructor takes them.
COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "quotes": ("ts", "symbol", "bid", "bid_size", "ask", "ask_size"),
    "trades": ("ts", "symbol", "price", "size"),
    "bars": ("ts", "symbol", "open", "high", "low", "close", "volume"),
}
_MODEL: Final[dict[str, type[Quote] | type[Trade] | type[Bar]]] = {
    "quotes": Quote,
    "trades": Trade,
    "bars": Bar,
}
#: Default rows per chunk by format (measured: smaller chunks stay in cache and keep the resident
#: size low; 10,000,000 rows replay in ~180 MB (CSV) / ~210 MB (Parquet) resident).
CHUNK_ROWS: Final[dict[str, int]] = {"csv": 100_000, "parquet": 50_000}

_INT64_MIN: Final = np.iinfo(np.int64).min
#: 2000-01-01T00:00:00Z in ns: an earlier ts is seconds or milliseconds taken for nanoseconds.
MIN_TS_NS: Final = 946_684_800 * NS_PER_S
_MAX_SYMBOL: Final = 64
#: What reading a damaged file can raise besides pandas' own errors (a truncated or corrupt
#: .csv.gz: EOFError, zlib.error, gzip.BadGzipFile; text that is not UTF-8; I/O errors).
_READ_ERRORS: Final = (ValueError, TypeError, OverflowError, OSError, EOFError, zlib.error)
_TS_EXAMPLE: Final = "2026-11-24T14:30:00Z"
#: Cells read as missing in ts and numeric columns (symbol and venue: only the empty cell, so a
#: ticker such as "NA" survives).
_NA_TEXT: Final = ["", "NA", "N/A", "n/a", "NaN", "nan", "-NaN", "-nan", "NULL", "null", "None"]
_INT_RE: Final = re.compile(r"\s*[+-]?\d+\s*")
#: An ISO-8601 time of day followed by a UTC offset (``Z``, ``+HH``, ``+HHMM``, ``+HH:MM``).
_OFFSET_RE: Final = r"[T ]\d\d(?::?\d\d(?::?\d\d(?:[.,]\d+)?)?)?\s*(?:[Zz]|[+-]\d\d(?::?\d\d)?)\s*$"
_INT_PA_RE: Final = r"^\s*[+-]?\d+\s*$"

# ts problem codes
_TS_OK: Final = 0
_TS_MISSING: Final = 1
_TS_BAD: Final = 2
_TS_NAIVE: Final = 3

IntArray: TypeAlias = npt.NDArray[np.int64]
FloatArray: TypeAlias = npt.NDArray[np.float64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]
ObjArray: TypeAlias = npt.NDArray[np.object_]


# ---------------------------------------------------------------------------------------------
# small helpers


def _file_format(path: Path) -> Literal["csv", "parquet"]:
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    raise DataError(f"{path}: unknown data file type (allowed: .csv, .csv.gz, .parquet, .pq)")


def fmt_ns(ns: int) -> str:
    """ISO-8601 UTC text of ``ns`` with the fraction of a second kept to the nanosecond."""
    try:
        s, frac = divmod(int(ns), NS_PER_S)
        text = datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return f"{ns} ns"
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


def _fmt_num(x: float) -> str:
    if math.isfinite(x) and x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return repr(float(x))


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA


def _bad_symbol(v: object) -> str | None:
    """What is wrong with a (present) symbol cell, or None: a symbol is at most 64 printable
    characters without surrounding spaces."""
    s = str(v)
    if len(s) > _MAX_SYMBOL:
        return f"symbol {s[:20]!r}... is {len(s)} characters long (at most {_MAX_SYMBOL})"
    if not s.isprintable():
        return f"symbol {s!r} holds non-printable characters"
    if s != s.strip():
        return f"symbol {s!r} has surrounding spaces"
    return None


def infer_kind(columns: Iterable[str]) -> Kind | None:
    """The kind whose required columns are all in ``columns`` (case-insensitive), or ``None``.
    When several match (a file with quote and trade columns), quotes win over trades over bars."""
    have = {c.strip().lower() for c in columns}
    kinds: tuple[Kind, ...] = ("quotes", "trades", "bars")
    for kind in kinds:
        if set(COLUMNS[kind]) <= have:
            return kind
    return None


def _check_kind(kind: object) -> Kind | None:
    if kind is None or kind in COLUMNS:
        return kind  # type: ignore[return-value]
    raise ConfigError(f"unknown data kind {kind!r} (allowed: quotes, trades, bars)", key="kind")


def _resolve_columns(
    label: str, names: Sequence[str], kind: Kind | None
) -> tuple[Kind, dict[str, str]]:
    """``(kind, {contract name: name in the file})`` for the required columns (+ venue)."""
    lookup: dict[str, str] = {}
    for name in names:
        key = str(name).strip().lower()
        if key in lookup:
            raise DataError(f"{label}: column {key!r} appears twice (columns: {list(names)})")
        lookup[key] = str(name)
    if kind is None:
        found = infer_kind(lookup)
        if found is None:
            # name the kind that is closest to complete
            best = min(COLUMNS, key=lambda k: (len(set(COLUMNS[k]) - set(lookup)), k))
            missing = [c for c in COLUMNS[best] if c not in lookup]
            expected = "; ".join(f"{k}: {', '.join(cols)}" for k, cols in COLUMNS.items())
            raise DataError(
                f"{label}: missing column(s) {', '.join(missing)} (closest kind: {best}; "
                f"found columns: {', '.join(map(str, names)) or 'none'}); expected columns "
                f"for {expected} (+ optional venue)"
            )
        kind = found
    missing = [c for c in COLUMNS[kind] if c not in lookup]
    if missing:
        raise DataError(
            f"{label}: missing column(s) {', '.join(missing)} for {kind} (found columns: "
            f"{', '.join(map(str, names)) or 'none'}); expected {', '.join(COLUMNS[kind])} "
            f"(+ optional venue)"
        )
    cols = {c: lookup[c] for c in COLUMNS[kind]}
    if "venue" in lookup:
        cols["venue"] = lookup["venue"]
    return kind, cols


# ---------------------------------------------------------------------------------------------
# timestamp parsing


def _parse_ts_text(raw: ObjArray) -> tuple[IntArray, npt.NDArray[np.int8]]:
    """Text timestamps (ISO-8601 with offset, or integer ns as text) -> (ns, problem codes)."""
    n = len(raw)
    ns = np.zeros(n, dtype=np.int64)
    err = np.zeros(n, dtype=np.int8)
    if n == 0:
        return ns, err
    series = pd.Series(raw, dtype=object, copy=False)
    # fast path: every cell ISO-8601 with the same offset (or missing)
    try:
        parsed = pd.to_datetime(series, format="ISO8601", utc=False)
    except (ValueError, TypeError, OverflowError):
        parsed = None
    if parsed is not None and isinstance(parsed.dtype, pd.DatetimeTZDtype):
        idx = pd.DatetimeIndex(parsed).as_unit("ns")
        nat = idx.isna()
        ns[:] = np.where(nat, 0, idx.asi8)
        err[nat] = _TS_MISSING
        return ns, err
    return _parse_ts_text_slow(raw, ns, err)


def _parse_ts_text_slow(
    raw: ObjArray, ns: IntArray, err: npt.NDArray[np.int8]
) -> tuple[IntArray, npt.NDArray[np.int8]]:
    import pyarrow as pa
    import pyarrow.compute as pc

    missing = np.fromiter((_missing(v) for v in raw), dtype=np.bool_, count=len(raw))
    text = np.array(raw, dtype=object, copy=True)
    text[missing] = None
    for i in np.flatnonzero(~missing):
        v = text[i]
        if not isinstance(v, str):
            text[i] = str(v)
    arr = pa.array(text, type=pa.string(), from_pandas=True)
    is_int = np.asarray(pc.fill_null(pc.match_substring_regex(arr, _INT_PA_RE), False))
    has_off = np.asarray(pc.fill_null(pc.match_substring_regex(arr, _OFFSET_RE), False))
    err[missing] = _TS_MISSING
    if is_int.any():
        idx = np.flatnonzero(is_int)
        for i in idx:
            try:
                v = int(text[i])
                if not -(2**63) <= v < 2**63:
                    raise OverflowError
                ns[i] = v
            except (ValueError, OverflowError):
                err[i] = _TS_BAD
    iso = has_off & ~is_int
    if iso.any():
        idx = np.flatnonzero(iso)
        parsed = pd.to_datetime(
            pd.Series(text[idx], dtype=object), format="ISO8601", utc=True, errors="coerce"
        )
        dti = pd.DatetimeIndex(parsed).as_unit("ns")
        nat = dti.isna()
        ns[idx] = np.where(nat, 0, dti.asi8)
        for i in idx[nat]:  # pandas refused it: try the exact parser before giving up
            try:
                ns[i] = parse_iso_ns(text[i])
            except (ValueError, TypeError, OverflowError):
                err[i] = _TS_BAD
    rest = ~missing & ~is_int & ~iso
    for i in np.flatnonzero(rest):
        # no offset: tell "naive" (a valid local time) from garbage
        try:
            parse_iso_ns(text[i])
        except ValueError as e:
            err[i] = _TS_NAIVE if "no UTC offset" in str(e) else _TS_BAD
        except (TypeError, OverflowError):
            err[i] = _TS_BAD
        else:  # our parser accepts a form the regex does not know
            ns[i] = parse_iso_ns(text[i])
    return ns, err


# ---------------------------------------------------------------------------------------------
# one chunk of raw columns, whatever the file format


@dataclass(slots=True)
class _Chunk:
    """Raw columns of one chunk: ``row0`` is the 0-based index of its first data row."""

    row0: int
    n: int
    ts: IntArray
    ts_err: npt.NDArray[np.int8] | None  # None: no problem in the chunk
    ts_raw: Any  # indexable cell values for messages
    sym_codes: npt.NDArray[np.intp]  # -1: missing
    sym_uniques: list[Any]
    nums: list[FloatArray]
    nums_raw: list[Any]  # per numeric column: raw cells when some were not numbers, else None
    venue_codes: npt.NDArray[np.intp] | None
    venue_uniques: list[Any] | None


def _factorize(values: Any) -> tuple[npt.NDArray[np.intp], list[Any]]:
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return np.asarray(codes, dtype=np.intp), list(uniques)


def _numeric(values: Any) -> tuple[FloatArray, Any]:
    """A numeric column -> (float64, raw cells if some cells were not numbers else None)."""
    arr = np.asarray(values)
    if arr.dtype.kind in "fiub":
        return arr.astype(np.float64, copy=False), None
    coerced = pd.to_numeric(pd.Series(arr, dtype=object), errors="coerce")
    out = np.asarray(coerced, dtype=np.float64)
    return out, arr


class ReplayFile:
    """One CSV or Parquet file of quotes, trades or bars, replayed as model objects.

    ``kind`` is ``"quotes"``, ``"trades"``, ``"bars"`` or ``None`` (inferred from the columns);
    ``strict`` raises :class:`DataError` at the first bad row instead of reporting and skipping
    it; ``symbols`` (when given) is the set of symbols allowed (others are bad rows); ``report``
    receives each bad-row message (default: printed to stderr); ``chunksize`` rows are read and
    converted at a time. The header (column names, kind) is read and checked at construction:
    missing columns raise :class:`DataError` naming the file, the missing and the expected
    columns. ``bad_rows`` counts the bad rows of the last :meth:`events` pass and ``chunks_read``
    the chunks read since construction. ``default_venue`` is given to rows without a venue
    (when a run has a single replay venue, so no copy per venue is needed).
    """

    def __init__(
        self,
        path: PathLike,
        *,
        kind: Kind | None = None,
        strict: bool = False,
        symbols: Iterable[str] | None = None,
        report: Callable[[str], None] | None = None,
        chunksize: int | None = None,
        default_venue: str = "",
    ) -> None:
        self.default_venue = default_venue
        self.path = Path(path)
        self.label = os.fspath(path)
        self.format = _file_format(self.path)
        if chunksize is None:
            chunksize = CHUNK_ROWS[self.format]
        if isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize <= 0:
            raise ConfigError(f"chunksize must be a positive integer, not {chunksize!r}")
        self.chunksize: int = chunksize
        self.strict = bool(strict)
        self.allowed: frozenset[str] | None = None if symbols is None else frozenset(symbols)
        self.report = report
        self.bad_rows = 0
        self.chunks_read = 0
        self._symbols: set[str] | None = None
        try:
            exists = self.path.is_file()
        except (OSError, ValueError) as e:  # a name too long, a NUL in it
            raise DataError(f"{self.label}: cannot open the data file: {e}") from None
        if not exists:
            raise DataError(f"{self.label}: no such data file")
        names = self._read_names()
        self.kind: Kind
        self.kind, self._cols = _resolve_columns(self.label, names, _check_kind(kind))
        self.has_venue = "venue" in self._cols
        self._names = names
        self._ts_int_mode = self._sniff_int_ts() if self.format == "csv" else True

    def __repr__(self) -> str:
        return f"ReplayFile({self.label!r}, kind={self.kind!r})"

    # ---------------------------------------------------------------- public

    @property
    def symbols(self) -> set[str]:
        """Symbols in the file (within the ``symbols`` filter when given). The first access
        scans the symbol column; assign to set it without a scan."""
        if self._symbols is None:
            self._symbols = self._scan_symbols()
        return self._symbols

    @symbols.setter
    def symbols(self, value: set[str]) -> None:
        self._symbols = set(value)

    def __iter__(self) -> Iterator[MarketEvent]:
        return self.events()

    def events(
        self, start_ns: int | None = None, end_ns: int | None = None
    ) -> Iterator[MarketEvent]:
        """Good rows as ``Quote``/``Trade``/``Bar`` in file order (which is non-decreasing ts:
        rows out of order are bad rows), restricted to ``start_ns <= ts < end_ns``. Reading
        stops at the first good row at or after ``end_ns``."""
        model = _MODEL[self.kind]
        lo = _INT64_MIN if start_ns is None else int(start_ns)
        hi = None if end_ns is None else int(end_ns)
        # chain(map(Quote, *columns) per chunk): no Python frame per object
        return chain.from_iterable(map(model, *cols) for _keep, cols in self._clean_chunks(lo, hi))

    def frames(
        self, start_ns: int | None = None, end_ns: int | None = None
    ) -> Iterator[pd.DataFrame]:
        """Good rows chunk by chunk as DataFrames (contract columns, ts int64 ns, venue "" when
        the file has none)."""
        lo = _INT64_MIN if start_ns is None else int(start_ns)
        hi = None if end_ns is None else int(end_ns)
        names = [*COLUMNS[self.kind], "venue"]
        for _keep, cols in self._clean_chunks(lo, hi, as_lists=False):
            data = dict(zip(names, cols, strict=False))
            if "venue" not in data:
                data["venue"] = np.full(len(cols[0]), "", dtype=object)
            yield pd.DataFrame(data)

    # ---------------------------------------------------------------- reporting

    def _bad(self, line: int, what: str) -> None:
        msg = f"{self.label}:{line}: {what}"
        self.bad_rows += 1
        if self.strict:
            raise DataError(msg)
        if self.report is not None:
            self.report(msg)
        else:
            print(msg, file=sys.stderr)

    # ---------------------------------------------------------------- the pipeline

    def _clean_chunks(
        self, lo: int, hi: int | None, *, as_lists: bool = True
    ) -> Generator[tuple[Any, list[Any]], None, None]:
        """Validated chunks: ``(keep mask or None, column values)`` in the model's argument order
        (+ venue when the file has one), as lists (``as_lists``) or numpy arrays."""
        self.bad_rows = 0
        carry = _INT64_MIN  # ts of the last good row
        stop = False
        source = self._csv_chunks() if self.format == "csv" else self._parquet_chunks()
        try:
            for ch in source:
                self.chunks_read += 1
                ok, messages = self._check(ch)
                ts = ch.ts
                # time order against the previous good row (bad rows never move the bar)
                tsv = np.where(ok, ts, _INT64_MIN)
                run = np.maximum.accumulate(tsv)
                prev = np.empty_like(run)
                if ch.n:
                    prev[0] = carry
                    prev[1:] = np.maximum(run[:-1], carry)
                late = ok & (ts < prev)
                if late.any():
                    ok = ok & ~late
                    for j in np.flatnonzero(late).tolist():
                        messages[j] = (
                            f"ts {fmt_ns(int(ts[j]))} is earlier than the previous row's "
                            f"{fmt_ns(int(prev[j]))}"
                        )
                if ch.n:
                    carry = max(carry, int(run[-1]))
                keep = ok
                if lo > _INT64_MIN:
                    keep = keep & (ts >= lo)
                if hi is not None:
                    beyond = ok & (ts >= hi)
                    if beyond.any():
                        first = int(np.argmax(beyond))
                        keep = keep & (np.arange(ch.n) < first)
                        # rows after the end are not looked at: drop their messages
                        messages = {i: m for i, m in messages.items() if i < first}
                        stop = True
                if messages and self.strict:
                    # deliver the good rows before the first bad one, then raise
                    first_bad = min(messages)
                    head = keep & (np.arange(ch.n) < first_bad)
                    if head.any():
                        yield head, self._columns(ch, head, as_lists)
                    self._bad(ch.row0 + first_bad + 2, messages[first_bad])  # raises
                for i in sorted(messages):
                    self._bad(ch.row0 + i + 2, messages[i])
                if keep.any():
                    yield keep, self._columns(ch, keep, as_lists)
                if stop:
                    return
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def _columns(self, ch: _Chunk, keep: BoolArray, as_lists: bool) -> list[Any]:
        """Column values of the kept rows in the model's constructor order."""
        full = bool(keep.all())
        sel: Any = slice(None) if full else keep
        sym_table = np.empty(len(ch.sym_uniques) + 1, dtype=object)
        sym_table[:-1] = ch.sym_uniques
        sym_table[-1] = ""
        cols: list[Any] = [ch.ts[sel], sym_table[ch.sym_codes[sel]]]
        cols.extend(x[sel] for x in ch.nums)
        dv = self.default_venue
        if ch.venue_codes is not None and ch.venue_uniques is not None:
            vt = np.empty(len(ch.venue_uniques) + 1, dtype=object)
            vt[:-1] = [dv if _missing(v) or str(v) == "" else str(v) for v in ch.venue_uniques]
            vt[-1] = dv
            cols.append(vt[ch.venue_codes[sel]])
        elif dv:
            cols.append(np.full(len(cols[0]), dv, dtype=object))
        if as_lists:
            return [c.tolist() for c in cols]
        return cols

    def _check(self, ch: _Chunk) -> tuple[BoolArray, dict[int, str]]:
        """Vectorized row checks (everything but time order): ``(ok mask, {row: message})``."""
        n = ch.n
        bad = np.zeros(n, dtype=np.bool_)
        if ch.ts_err is not None:
            bad |= ch.ts_err != _TS_OK
        # symbol: missing or outside the filter
        u = ch.sym_uniques
        u_missing = np.array([_missing(s) or str(s) == "" for s in u] + [True], dtype=np.bool_)
        sym_missing = u_missing[ch.sym_codes]
        bad |= sym_missing
        # a symbol that is no symbol: too long, control characters, surrounding spaces
        u_why = [None if m else _bad_symbol(s) for s, m in zip(u, u_missing, strict=False)]
        sym_bad: BoolArray | None = None
        if any(w is not None for w in u_why):
            u_bad = np.array([w is not None for w in u_why] + [False], dtype=np.bool_)
            sym_bad = u_bad[ch.sym_codes]
            bad |= sym_bad
        sym_unknown: BoolArray | None = None
        if self.allowed is not None:
            allowed = self.allowed
            u_unknown = np.array(
                [not _missing(s) and str(s) != "" and str(s) not in allowed for s in u] + [False],
                dtype=np.bool_,
            )
            sym_unknown = u_unknown[ch.sym_codes]
            bad |= sym_unknown
        # a ts before 2000: seconds or milliseconds taken for nanoseconds
        early = ch.ts < MIN_TS_NS
        if ch.ts_err is not None:
            early &= ch.ts_err == _TS_OK
        bad |= early
        nums = ch.nums
        names = COLUMNS[self.kind][2:]
        nonfinite = np.zeros(n, dtype=np.bool_)
        negative = np.zeros(n, dtype=np.bool_)
        for x in nums:
            nonfinite |= ~np.isfinite(x)
            negative |= x < 0
        bad |= nonfinite | negative
        rule: BoolArray | None = None
        if self.kind == "quotes":
            bid, ask = nums[0], nums[2]
            rule = (bid > 0) & (ask > 0) & (bid > ask)
        elif self.kind == "trades":
            rule = nums[0] == 0
        else:
            o, h, lo_, c = nums[0], nums[1], nums[2], nums[3]
            rule = (h < lo_) | (o < lo_) | (o > h) | (c < lo_) | (c > h)
        bad |= rule
        messages: dict[int, str] = {}
        if not bad.any():
            return ~bad, messages
        report = bad
        if ch.ts_err is not None:
            # an empty line (or one of only commas) is skipped without a word
            blank = (ch.ts_err == _TS_MISSING) & sym_missing
            for x in nums:
                blank &= np.isnan(x)
            if ch.venue_codes is not None and ch.venue_uniques is not None:
                v_missing = np.array(
                    [_missing(v) or str(v) == "" for v in ch.venue_uniques] + [True], dtype=np.bool_
                )
                blank &= v_missing[ch.venue_codes]
            report = bad & ~blank
        for i in np.flatnonzero(report).tolist():
            parts: list[str] = []
            if ch.ts_err is not None and ch.ts_err[i] != _TS_OK:
                code = ch.ts_err[i]
                raw = ch.ts_raw[i] if ch.ts_raw is not None else None
                if code == _TS_MISSING:
                    parts.append("missing ts")
                elif code == _TS_NAIVE:
                    parts.append(f"ts {raw!r} has no UTC offset (e.g. {_TS_EXAMPLE})")
                else:
                    parts.append(
                        f"ts {raw!r} is not a timestamp (integer ns since the epoch or "
                        f"ISO-8601 with an offset, e.g. {_TS_EXAMPLE})"
                    )
            if early[i] and (ch.ts_err is None or ch.ts_err[i] == _TS_OK):
                parts.append(
                    f"ts {int(ch.ts[i])} is before 2000-01-01 (seconds or milliseconds "
                    f"instead of nanoseconds since the epoch?)"
                )
            if sym_missing[i]:
                parts.append("missing symbol")
            elif sym_bad is not None and sym_bad[i]:
                parts.append(str(u_why[ch.sym_codes[i]]))
            elif sym_unknown is not None and sym_unknown[i]:
                known = ", ".join(sorted(self.allowed or ())) or "none"
                parts.append(f"unknown symbol {ch.sym_uniques[ch.sym_codes[i]]!r} (known: {known})")
            missing_cols: list[str] = []
            rule_ok = True
            for name, x, raw_col in zip(names, nums, ch.nums_raw, strict=True):
                v = float(x[i])
                if math.isnan(v):
                    rule_ok = False
                    cell = None if raw_col is None else raw_col[i]
                    if cell is None or _missing(cell) or str(cell).strip() == "":
                        missing_cols.append(name)
                    else:
                        parts.append(f"{name} {str(cell)!r} is not a number")
                elif math.isinf(v):
                    rule_ok = False
                    parts.append(f"{name} {v} is not finite")
                elif v < 0:
                    parts.append(f"{name} {_fmt_num(v)} is negative")
            if missing_cols:
                parts.append(f"missing {', '.join(missing_cols)}")
            if rule_ok and rule[i]:
                parts.append(self._rule_message(nums, i))
            messages[i] = "; ".join(parts) if parts else "bad row"
        return ~bad, messages

    def _rule_message(self, nums: list[FloatArray], i: int) -> str:
        v = [float(x[i]) for x in nums]
        if self.kind == "quotes":
            return f"crossed quote: bid {_fmt_num(v[0])} > ask {_fmt_num(v[2])}"
        if self.kind == "trades":
            return "trade price 0 (must be positive)"
        o, h, lo_, c = v[0], v[1], v[2], v[3]
        if h < lo_:
            return f"bar high {_fmt_num(h)} is below its low {_fmt_num(lo_)}"
        which = "open" if not lo_ <= o <= h else "close"
        val = o if which == "open" else c
        return (
            f"bar {which} {_fmt_num(val)} is outside its low..high {_fmt_num(lo_)}..{_fmt_num(h)}"
        )

    # ---------------------------------------------------------------- CSV

    def _read_names(self) -> list[str]:
        if self.format == "parquet":
            return list(self._parquet().schema_arrow.names)
        try:
            head = pd.read_csv(self.path, nrows=0)
        except pd.errors.EmptyDataError:
            raise DataError(f"{self.label}: empty file (no header line)") from None
        except _READ_ERRORS as e:
            raise DataError(f"{self.label}: cannot read the CSV header: {_why(e)}") from None
        return [str(c) for c in head.columns]

    def _sniff_int_ts(self) -> bool:
        """True when the first rows' ts cells are all integers (or missing)."""
        try:
            head = pd.read_csv(
                self.path,
                nrows=1000,
                usecols=[self._cols["ts"]],
                dtype=object,
                keep_default_na=False,
                skip_blank_lines=False,
            )
        except _READ_ERRORS as e:
            raise DataError(f"{self.label}: cannot read the CSV file: {_why(e)}") from None
        for v in head.iloc[:, 0].tolist():
            if isinstance(v, str) and v.strip() and not _INT_RE.fullmatch(v):
                return False
        return True

    def _csv_reader(self, int_mode: bool, skip: int) -> Any:
        c = self._cols
        numeric = [c[k] for k in COLUMNS[self.kind][2:]]
        text_cols = [c["symbol"]] + ([c["venue"]] if "venue" in c else [])
        dtype: dict[str, Any] = {name: object for name in text_cols}
        dtype[c["ts"]] = "Int64" if int_mode else object
        na: dict[str, list[str]] = {name: [""] for name in text_cols}
        for name in [c["ts"], *numeric]:
            na[name] = _NA_TEXT
        kw: dict[str, Any] = {
            "usecols": list(c.values()),
            "dtype": dtype,
            "keep_default_na": False,
            "na_values": na,
            "skip_blank_lines": False,
            "chunksize": self.chunksize,
        }
        if skip:
            # resume after `skip` data rows: skip the header too and name the columns ourselves
            kw.update(header=None, names=self._names, skiprows=skip + 1)
        return pd.read_csv(self.path, **kw)

    def _csv_chunks(self) -> Iterator[_Chunk]:
        c = self._cols
        int_mode = self._ts_int_mode
        row0 = 0
        try:
            reader = self._csv_reader(int_mode, 0)
        except _READ_ERRORS as e:
            raise DataError(f"{self.label}: cannot read the CSV file: {_why(e)}") from None
        try:
            while True:
                try:
                    df = next(reader)
                except StopIteration:
                    return
                except pd.errors.ParserError as e:
                    raise DataError(f"{self.label}: malformed CSV after line {row0 + 1}: {e}")
                except (EOFError, OSError, zlib.error, UnicodeDecodeError) as e:
                    raise DataError(
                        f"{self.label}: cannot read rows after line {row0 + 1}: {_why(e)}"
                    ) from None
                except (ValueError, TypeError, OverflowError) as e:
                    if int_mode:
                        # a ts cell that is not an integer: re-read from this chunk on as text
                        reader.close()
                        int_mode = False
                        try:
                            reader = self._csv_reader(False, row0)
                        except _READ_ERRORS as e2:
                            raise DataError(
                                f"{self.label}: cannot read rows after line {row0 + 1}: {_why(e2)}"
                            ) from None
                        continue
                    raise DataError(f"{self.label}: cannot read rows after line {row0 + 1}: {e}")
                yield self._chunk_from_frame(df, row0, int_mode, c)
                row0 += len(df)
        finally:
            reader.close()

    def _chunk_from_frame(
        self, df: pd.DataFrame, row0: int, int_mode: bool, c: dict[str, str]
    ) -> _Chunk:
        n = len(df)
        ts_col = df[c["ts"]]
        ts_err: npt.NDArray[np.int8] | None = None
        ts_raw: Any = None
        if int_mode:
            na = ts_col.isna().to_numpy()
            ts = ts_col.to_numpy(dtype=np.int64, na_value=0)
            if na.any():
                ts_err = np.where(na, _TS_MISSING, _TS_OK).astype(np.int8)
        else:
            ts_raw = ts_col.to_numpy(dtype=object)
            ts, err = _parse_ts_text(ts_raw)
            if err.any():
                ts_err = err
        codes, uniq = _factorize(df[c["symbol"]].to_numpy(dtype=object))
        nums: list[FloatArray] = []
        raws: list[Any] = []
        for k in COLUMNS[self.kind][2:]:
            x, raw = _numeric(df[c[k]].to_numpy())
            nums.append(x)
            raws.append(raw)
        vcodes: npt.NDArray[np.intp] | None = None
        vuniq: list[Any] | None = None
        if "venue" in c:
            vcodes, vuniq = _factorize(df[c["venue"]].to_numpy(dtype=object))
        return _Chunk(row0, n, ts, ts_err, ts_raw, codes, uniq, nums, raws, vcodes, vuniq)

    # ---------------------------------------------------------------- Parquet

    def _parquet(self, read_dictionary: list[str] | None = None) -> Any:
        try:
            import pyarrow.parquet as pq
        except ImportError:  # pragma: no cover - pyarrow is an optional extra
            raise DataError(
                f"{self.label}: reading Parquet needs pyarrow (pip install 'tradekit[parquet]')"
            ) from None
        try:
            # pre_buffer=False: the default pre-buffering keeps ~100 MB of column chunks alive
            return pq.ParquetFile(self.path, read_dictionary=read_dictionary, pre_buffer=False)
        except Exception as e:  # pyarrow raises its own ArrowInvalid / OSError kinds
            raise DataError(f"{self.label}: cannot read the Parquet file: {e}") from None

    def _parquet_chunks(self) -> Iterator[_Chunk]:
        import pyarrow as pa

        c = self._cols
        schema = self._parquet().schema_arrow
        # symbol and venue text arrives dictionary-encoded: no string per row to build
        text = [
            c[k]
            for k in ("symbol", "venue")
            if k in c
            and (
                pa.types.is_string(schema.field(c[k]).type)
                or pa.types.is_large_string(schema.field(c[k]).type)
            )
        ]
        pf = self._parquet(read_dictionary=text or None)
        ts_type = schema.field(c["ts"]).type
        if pa.types.is_timestamp(ts_type) and ts_type.tz is None:
            raise DataError(
                f"{self.label}: column {c['ts']!r} holds timestamps without a time zone "
                f"({ts_type}); store UTC timestamps (tz='UTC') or integer ns since the epoch"
            )
        if not (
            pa.types.is_integer(ts_type)
            or pa.types.is_timestamp(ts_type)
            or pa.types.is_string(ts_type)
            or pa.types.is_large_string(ts_type)
            or pa.types.is_dictionary(ts_type)
        ):
            raise DataError(
                f"{self.label}: column {c['ts']!r} has type {ts_type}; expected integer ns "
                f"since the epoch, a UTC timestamp or ISO-8601 text"
            )
        row0 = 0
        try:
            batches = pf.iter_batches(batch_size=self.chunksize, columns=list(c.values()))
            for batch in batches:
                yield self._chunk_from_batch(batch, row0, c)
                row0 += batch.num_rows
        except DataError:
            raise
        except (pa.ArrowException, OSError) as e:
            raise DataError(f"{self.label}: cannot read rows after line {row0 + 1}: {e}") from None

    def _chunk_from_batch(self, batch: Any, row0: int, c: dict[str, str]) -> _Chunk:
        import pyarrow as pa
        import pyarrow.compute as pc

        names = batch.schema.names
        n = batch.num_rows

        def col(key: str) -> Any:
            return batch.column(names.index(c[key]))

        ts_arr = col("ts")
        ts_err: npt.NDArray[np.int8] | None = None
        ts_raw: Any = None
        t = ts_arr.type
        if pa.types.is_dictionary(t):
            ts_arr = ts_arr.cast(t.value_type)
            t = ts_arr.type
        if pa.types.is_integer(t) or pa.types.is_timestamp(t):
            if pa.types.is_timestamp(t):
                ts_arr = ts_arr.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64())
            elif t != pa.int64():
                ts_arr = ts_arr.cast(pa.int64())
            ts = np.asarray(pc.fill_null(ts_arr, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
            if ts_arr.null_count:
                ts_err = np.asarray(ts_arr.is_null().to_numpy(zero_copy_only=False)).astype(np.int8)
        else:
            ts_raw = ts_arr.to_numpy(zero_copy_only=False)
            ts, err = _parse_ts_text(ts_raw)
            if err.any():
                ts_err = err
        codes, uniq = _arrow_factorize(col("symbol"))
        nums: list[FloatArray] = []
        raws: list[Any] = []
        for k in COLUMNS[self.kind][2:]:
            a = col(k)
            if (
                pa.types.is_integer(a.type)
                or pa.types.is_floating(a.type)
                or pa.types.is_decimal(a.type)
            ):
                x = a.cast(pa.float64()).to_numpy(zero_copy_only=False)
                nums.append(np.asarray(x, dtype=np.float64))
                raws.append(None)
            else:
                x2, raw = _numeric(a.to_numpy(zero_copy_only=False))
                nums.append(x2)
                raws.append(raw)
        vcodes: npt.NDArray[np.intp] | None = None
        vuniq: list[Any] | None = None
        if "venue" in c:
            vcodes, vuniq = _arrow_factorize(col("venue"))
        return _Chunk(row0, n, ts, ts_err, ts_raw, codes, uniq, nums, raws, vcodes, vuniq)

    # ---------------------------------------------------------------- symbol scan

    def _scan_symbols(self) -> set[str]:
        try:
            found = self._scan_symbol_cells()
        except DataError:
            raise
        except Exception as e:  # pyarrow's own kinds too: a damaged file is a DataError
            raise DataError(f"{self.label}: cannot read the symbols: {_why(e)}") from None
        out = {str(s) for s in found if not _missing(s) and str(s) != "" and _bad_symbol(s) is None}
        if self.allowed is not None:
            out &= self.allowed
        return out

    def _scan_symbol_cells(self) -> set[Any]:
        found: set[Any] = set()
        name = self._cols["symbol"]
        if self.format == "csv":
            reader = pd.read_csv(
                self.path,
                usecols=[name],
                dtype=object,
                keep_default_na=False,
                na_values=[""],
                skip_blank_lines=False,
                chunksize=max(self.chunksize, 1_000_000),
            )
            with reader:
                for df in reader:
                    found.update(pd.unique(df[name].to_numpy(dtype=object)))
        else:
            import pyarrow.compute as pc

            for batch in self._parquet().iter_batches(
                batch_size=max(self.chunksize, 1_000_000), columns=[name]
            ):
                found.update(pc.unique(batch.column(0)).to_pylist())
        return found


def _why(e: BaseException) -> str:
    """An exception as text for a one-line message (its type when it says nothing)."""
    text = " ".join(str(e).split())
    return text or type(e).__name__


def _arrow_factorize(arr: Any) -> tuple[npt.NDArray[np.intp], list[Any]]:
    """An Arrow string (or dictionary) column -> (codes with -1 for null, uniques)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_dictionary(arr.type):
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            arr = arr.cast(pa.string())
        arr = pc.dictionary_encode(arr)
    codes = pc.fill_null(arr.indices, -1).to_numpy(zero_copy_only=False)
    uniques = arr.dictionary.to_pylist()
    return np.asarray(codes, dtype=np.intp), [None if u is None else str(u) for u in uniques]


# ---------------------------------------------------------------------------------------------
# several files


class ReplaySource:
    """Several replay files merged into one stream in ts order (ties: the earlier file in
    ``files`` first, then file order). Paths are opened as :class:`ReplayFile` with the keyword
    arguments given here; ready ``ReplayFile`` objects are used as they are."""

    def __init__(
        self,
        files: Sequence[PathLike | ReplayFile] | PathLike | ReplayFile,
        *,
        kind: Kind | None = None,
        strict: bool = False,
        symbols: Iterable[str] | None = None,
        report: Callable[[str], None] | None = None,
        chunksize: int | None = None,
        default_venue: str = "",
    ) -> None:
        if isinstance(files, ReplayFile | str | os.PathLike):
            files = [files]
        allowed = None if symbols is None else frozenset(symbols)
        self.files: list[ReplayFile] = [
            f
            if isinstance(f, ReplayFile)
            else ReplayFile(
                f,
                kind=kind,
                strict=strict,
                symbols=allowed,
                report=report,
                chunksize=chunksize,
                default_venue=default_venue,
            )
            for f in files
        ]
        self._symbols: set[str] | None = None

    def __repr__(self) -> str:
        return f"ReplaySource({[f.label for f in self.files]!r})"

    @property
    def symbols(self) -> set[str]:
        """Union of the files' symbols (scanned on first access; assignable)."""
        if self._symbols is None:
            self._symbols = set().union(*(f.symbols for f in self.files))
        return self._symbols

    @symbols.setter
    def symbols(self, value: set[str]) -> None:
        self._symbols = set(value)

    @property
    def bad_rows(self) -> int:
        """Bad rows seen in the files' last passes."""
        return sum(f.bad_rows for f in self.files)

    def __iter__(self) -> Iterator[MarketEvent]:
        return self.events()

    def events(
        self, start_ns: int | None = None, end_ns: int | None = None
    ) -> Iterator[MarketEvent]:
        """All files' good rows with ``start_ns <= ts < end_ns``, merged in ts order."""
        if len(self.files) == 1:
            return self.files[0].events(start_ns, end_ns)
        lo = _INT64_MIN if start_ns is None else int(start_ns)
        hi = None if end_ns is None else int(end_ns)
        return chain.from_iterable(_merge_chunks(self.files, lo, hi))


class _Buffer:
    """Validated rows of one file not yet merged: column arrays in model order."""

    __slots__ = ("bound", "cols", "done", "model", "source")

    def __init__(self, rf: ReplayFile, lo: int, hi: int | None) -> None:
        self.model = _MODEL[rf.kind]
        self.source = rf._clean_chunks(lo, hi, as_lists=False)
        self.cols: list[Any] | None = None
        self.done = False
        self.bound = _INT64_MIN  # no row of this file still to come is earlier than this

    def fill(self) -> None:
        """Append the file's next non-empty chunk (or mark the file done)."""
        for _keep, cols in self.source:
            if len(cols[0]) == 0:
                continue
            if self.cols is None or len(self.cols[0]) == 0:
                self.cols = list(cols)
            else:
                self.cols = [np.concatenate([a, b]) for a, b in zip(self.cols, cols, strict=True)]
            self.bound = int(self.cols[0][-1])
            return
        self.done = True

    def take_before(self, limit: int | None) -> list[Any] | None:
        """Remove and return the buffered rows with ``ts < limit`` (all rows for ``None``)."""
        cols = self.cols
        if cols is None or len(cols[0]) == 0:
            return None
        n = len(cols[0]) if limit is None else int(np.searchsorted(cols[0], limit, side="left"))
        if n == 0:
            return None
        if n == len(cols[0]):
            self.cols = None
            return cols
        self.cols = [c[n:] for c in cols]
        return [c[:n] for c in cols]


def _merge_chunks(files: Sequence[ReplayFile], lo: int, hi: int | None) -> Iterator[Iterable[Any]]:
    """K-way merge of the files' validated chunks, done on arrays: each round emits every
    buffered row earlier than the smallest last-buffered ts of the files still being read (no
    later row of any file can be earlier), ordered by a stable argsort on ts over the pieces
    concatenated in file order, so ties come out file by file, each in file order (the same
    order as ``heapq.merge``)."""
    bufs = [_Buffer(f, lo, hi) for f in files]
    for b in bufs:
        b.fill()
    try:
        while True:
            live = [b for b in bufs if not b.done]
            limit = min(b.bound for b in live) if live else None
            pieces: list[tuple[_Buffer, list[Any]]] = []
            for b in bufs:
                piece = b.take_before(limit)
                if piece is not None:
                    pieces.append((b, piece))
            if len(pieces) == 1:
                b, cols = pieces[0]
                yield map(b.model, *[c.tolist() for c in cols])
            elif pieces:
                objs: list[Any] = []
                for b, cols in pieces:
                    objs.extend(map(b.model, *[c.tolist() for c in cols]))
                order = np.argsort(np.concatenate([cols[0] for _b, cols in pieces]), kind="stable")
                yield map(objs.__getitem__, order.tolist())
            if not live:
                return
            for b in live:
                if b.bound == limit:
                    b.fill()
    finally:
        for b in bufs:
            b.source.close()


# ---------------------------------------------------------------------------------------------
# whole frames (small files; the `tradekit data download` command)


def load_frame(
    path: PathLike,
    *,
    kind: Kind | None = None,
    strict: bool = False,
    symbols: Iterable[str] | None = None,
    report: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """A whole (small) data file as one validated DataFrame: the kind's contract columns plus
    ``venue`` ("" where the file has none), ``ts`` as int64 ns. Bad rows are reported and
    dropped exactly as in :class:`ReplayFile`. ``df.attrs["kind"]`` is the kind."""
    rf = ReplayFile(path, kind=kind, strict=strict, symbols=symbols, report=report)
    frames = list(rf.frames())
    cols = [*COLUMNS[rf.kind], "venue"]
    if frames:
        df = pd.concat(frames, ignore_index=True)
    else:
        df = pd.DataFrame({c: pd.Series(dtype=_empty_dtype(c)) for c in cols})
    df = df[cols]
    df["ts"] = df["ts"].astype(np.int64)
    df.attrs["kind"] = rf.kind
    return df


def _empty_dtype(col: str) -> Any:
    if col == "ts":
        return np.int64
    if col in ("symbol", "venue"):
        return object
    return np.float64


def _ts_to_ns(col: pd.Series, label: str) -> IntArray:
    """A DataFrame ts column (int ns, tz-aware datetimes or ISO text with offset) -> int64 ns."""
    dtype = col.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        return np.asarray(pd.DatetimeIndex(col).as_unit("ns").asi8, dtype=np.int64)
    if pd.api.types.is_datetime64_dtype(dtype):
        raise DataError(f"{label}: ts holds datetimes without a time zone; localize them first")
    if pd.api.types.is_integer_dtype(dtype):
        if col.isna().any():
            raise DataError(f"{label}: ts has missing values")
        return col.to_numpy(dtype=np.int64)
    raw = col.to_numpy(dtype=object)
    ns, err = _parse_ts_text(raw)
    if err.any():
        i = int(np.argmax(err != 0))
        raise DataError(f"{label}: row {i}: ts {raw[i]!r} is not ISO-8601 with a UTC offset")
    return ns


def write_frame(df: pd.DataFrame, path: PathLike, *, kind: Kind | None = None) -> Path:
    """Write quotes, trades or bars in the contract format: the kind's columns in contract order
    (+ ``venue`` when present; other columns dropped), ``ts`` as integer ns since the epoch (it
    round-trips exactly), to CSV (``.csv``/``.csv.gz``) or Parquet (``.parquet``/``.pq``) by the
    extension. ``ts`` may be int ns, tz-aware datetimes or ISO-8601 text with an offset."""
    out = Path(path)
    fmt = _file_format(out)
    label = os.fspath(path)
    k, cols = _resolve_columns(label, [str(c) for c in df.columns], _check_kind(kind))
    data: dict[str, Any] = {}
    for key, name in cols.items():
        data[key] = df[name]
    frame = pd.DataFrame(data)
    frame["ts"] = _ts_to_ns(frame["ts"], label)
    order = [*COLUMNS[k], *(["venue"] if "venue" in cols else [])]
    frame = frame[order]
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        frame.to_parquet(out, index=False)
    else:
        frame.to_csv(out, index=False)
    return out
