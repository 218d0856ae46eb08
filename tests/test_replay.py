"""Tests of tradekit.feeds.replay: formats, timestamps, bad-row reports (FILE:LINE, header = line
1), strict mode, venues, merging, time windows and chunked streaming."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from tradekit.errors import ConfigError, DataError
from tradekit.feeds import ReplayFile, ReplaySource, load_frame, write_frame
from tradekit.feeds.replay import fmt_ns, infer_kind
from tradekit.model import Bar, Quote, Trade
from tradekit.timeutil import NS_PER_S, parse_iso_ns

T0 = parse_iso_ns("2026-11-24T14:30:00Z")
HEADER = "ts,symbol,bid,bid_size,ask,ask_size"


def write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def qrow(sec: int, bid: str = "10.00", ask: str = "10.01", sym: str = "AAPL") -> str:
    return f"{T0 + sec * NS_PER_S},{sym},{bid},100,{ask},200"


def collect(
    rf: ReplayFile | ReplaySource, *args: int | None
) -> tuple[list[Quote | Trade | Bar], list[str]]:
    msgs: list[str] = []
    if isinstance(rf, ReplayFile):
        rf.report = msgs.append
    return list(rf.events(*args)), msgs


# ------------------------------------------------------------------------------- good rows


def test_good_rows_kept_in_order(tmp_path: Path) -> None:
    path = write(tmp_path, "q.csv", [HEADER, qrow(0), qrow(1, "10.01", "10.02"), qrow(1)])
    events, msgs = collect(ReplayFile(path))
    assert msgs == []
    assert events == [
        Quote(T0, "AAPL", 10.0, 100.0, 10.01, 200.0, ""),
        Quote(T0 + NS_PER_S, "AAPL", 10.01, 100.0, 10.02, 200.0, ""),
        Quote(T0 + NS_PER_S, "AAPL", 10.0, 100.0, 10.01, 200.0, ""),
    ]
    assert all(
        isinstance(e, Quote) and type(e.bid_size) is float and type(e.ts) is int for e in events
    )


def test_locked_quote_and_one_sided_quote_are_kept(tmp_path: Path) -> None:
    path = write(tmp_path, "q.csv", [HEADER, qrow(0, "10.01", "10.01"), qrow(1, "10.05", "0")])
    events, msgs = collect(ReplayFile(path))
    assert msgs == [] and len(events) == 2


# ------------------------------------------------------------------------------- bad rows

BAD_ROWS = [
    ("crossed", qrow(2, "10.02", "10.01"), "crossed quote: bid 10.02 > ask 10.01"),
    ("negative price", qrow(2, "-1.5", "10.01"), "bid -1.5 is negative"),
    (
        "negative size",
        f"{T0 + 2 * NS_PER_S},AAPL,10.00,-100,10.01,200",
        "bid_size -100 is negative",
    ),
    ("empty cell", f"{T0 + 2 * NS_PER_S},AAPL,,100,10.01,", "missing bid, ask_size"),
    ("nan text", f"{T0 + 2 * NS_PER_S},AAPL,NaN,100,10.01,200", "missing bid"),
    ("not a number", f"{T0 + 2 * NS_PER_S},AAPL,ten,100,10.01,200", "bid 'ten' is not a number"),
    ("missing symbol", f"{T0 + 2 * NS_PER_S},,10.00,100,10.01,200", "missing symbol"),
    ("unknown symbol", qrow(2, sym="MSFT"), "unknown symbol 'MSFT' (known: AAPL)"),
    ("missing ts", ",AAPL,10.00,100,10.01,200", "missing ts"),
    (
        "unparsable ts",
        "yesterday,AAPL,10.00,100,10.01,200",
        "ts 'yesterday' is not a timestamp (integer ns since the epoch or ISO-8601 with an "
        "offset, e.g. 2026-11-24T14:30:00Z)",
    ),
    (
        "ts without offset",
        "2026-11-24T14:30:02,AAPL,10.00,100,10.01,200",
        "ts '2026-11-24T14:30:02' has no UTC offset (e.g. 2026-11-24T14:30:00Z)",
    ),
    (
        "out of order",
        qrow(0),
        "ts 2026-11-24T14:30:00Z is earlier than the previous row's 2026-11-24T14:30:01Z",
    ),
]


@pytest.mark.parametrize(("case", "row", "what"), BAD_ROWS, ids=[c[0] for c in BAD_ROWS])
def test_bad_row_reported_with_file_and_line(
    tmp_path: Path, case: str, row: str, what: str
) -> None:
    # line 1 header, 2 and 3 good, 4 bad, 5 good
    path = write(tmp_path, "quotes.csv", [HEADER, qrow(0), qrow(1), row, qrow(3)])
    rf = ReplayFile(path, symbols={"AAPL"})
    events, msgs = collect(rf)
    assert msgs == [f"{path}:4: {what}"]
    assert rf.bad_rows == 1
    assert [e.ts for e in events] == [T0, T0 + NS_PER_S, T0 + 3 * NS_PER_S]


def test_message_uses_the_path_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "quotes.csv", [HEADER, qrow(1), qrow(0), qrow(2)])
    monkeypatch.chdir(tmp_path)
    _, msgs = collect(ReplayFile("quotes.csv"))
    assert msgs == [
        "quotes.csv:3: ts 2026-11-24T14:30:00Z is earlier than the previous row's "
        "2026-11-24T14:30:01Z"
    ]


def test_order_is_checked_against_the_previous_good_row(tmp_path: Path) -> None:
    # line 3 jumps ahead and is good; lines 4-5 are earlier than it; line 4 is also crossed
    lines = [HEADER, qrow(0), qrow(5), qrow(1, "10.02", "10.01"), qrow(2), qrow(5), qrow(6)]
    path = write(tmp_path, "q.csv", lines)
    events, msgs = collect(ReplayFile(path))
    assert msgs == [
        f"{path}:4: crossed quote: bid 10.02 > ask 10.01",
        f"{path}:5: ts 2026-11-24T14:30:02Z is earlier than the previous row's "
        "2026-11-24T14:30:05Z",
    ]
    assert [(e.ts - T0) // NS_PER_S for e in events] == [0, 5, 5, 6]


def test_several_problems_in_one_row_make_one_message(tmp_path: Path) -> None:
    path = write(tmp_path, "q.csv", [HEADER, f"{T0},,-1,100,,200"])
    _, msgs = collect(ReplayFile(path))
    assert msgs == [f"{path}:2: missing symbol; bid -1 is negative; missing ask"]


def test_bad_rows_go_to_stderr_without_a_report_callable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "q.csv", [HEADER, qrow(0, "10.02", "10.01"), qrow(1)])
    assert len(list(ReplayFile(path).events())) == 1
    assert capsys.readouterr().err == f"{path}:2: crossed quote: bid 10.02 > ask 10.01\n"


def test_blank_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "q.csv", [HEADER, qrow(0), "", qrow(1, "10.02", "10.01"), qrow(2)])
    events, msgs = collect(ReplayFile(path))
    assert msgs == [f"{path}:4: crossed quote: bid 10.02 > ask 10.01"]
    assert len(events) == 2


def test_strict_raises_on_the_first_bad_row(tmp_path: Path) -> None:
    lines = [HEADER, qrow(0), qrow(1), qrow(2, "-1", "10"), qrow(0)]
    path = write(tmp_path, "q.csv", lines)
    rf = ReplayFile(path, strict=True)
    seen: list[Quote | Trade | Bar] = []
    with pytest.raises(DataError) as ei:
        for e in rf.events():
            seen.append(e)
    assert str(ei.value) == f"{path}:4: bid -1 is negative"
    assert len(seen) == 2  # the good rows before it were delivered


def test_bars_and_trades_checks(tmp_path: Path) -> None:
    bars = write(
        tmp_path,
        "bars.csv",
        [
            "ts,symbol,open,high,low,close,volume",
            f"{T0},AAPL,10,11,9,10.5,1000",
            f"{T0 + 60 * NS_PER_S},AAPL,10,9,11,10,1000",
            f"{T0 + 120 * NS_PER_S},AAPL,12,11,9,10,1000",
        ],
    )
    events, msgs = collect(ReplayFile(bars))
    assert events == [Bar(T0, "AAPL", 10.0, 11.0, 9.0, 10.5, 1000.0, "")]
    assert msgs == [
        f"{bars}:3: bar high 9 is below its low 11",
        f"{bars}:4: bar open 12 is outside its low..high 9..11",
    ]
    trades = write(tmp_path, "t.csv", ["ts,symbol,price,size", f"{T0},AAPL,0,5"])
    _, msgs = collect(ReplayFile(trades))
    assert msgs == [f"{trades}:2: trade price 0 (must be positive)"]


# ------------------------------------------------------------------------------- timestamps


def test_iso_and_int_ts_are_equal(tmp_path: Path) -> None:
    ints = [T0, T0 + 1, T0 + 1_500_000_000, T0 + 3_600 * NS_PER_S]
    isos = [
        "2026-11-24T14:30:00Z",
        "2026-11-24T14:30:00.000000001Z",
        "2026-11-24T09:30:01.5-05:00",  # another offset: mixed offsets in one file
        "2026-11-24T15:30:00+00:00",
    ]
    a = write(tmp_path, "int.csv", [HEADER] + [f"{t},AAPL,10,100,10.01,100" for t in ints])
    b = write(tmp_path, "iso.csv", [HEADER] + [f"{t},AAPL,10,100,10.01,100" for t in isos])
    same = write(tmp_path, "same.csv", [HEADER] + [f"{t},AAPL,10,100,10.01,100" for t in isos[:2]])
    ea, ma = collect(ReplayFile(a))
    eb, mb = collect(ReplayFile(b))
    assert ma == mb == []
    assert [e.ts for e in ea] == ints
    assert ea == eb
    assert [e.ts for e in ReplayFile(same).events()] == ints[:2]


def test_int_file_with_a_bad_ts_late_in_the_file(tmp_path: Path) -> None:
    # the file looks like integer ns at first; a text cell appears in a later chunk
    rows = [f"{T0 + i},AAPL,10,100,10.01,100" for i in range(10)]
    rows[7] = "soon,AAPL,10,100,10.01,100"
    path = write(tmp_path, "q.csv", [HEADER, *rows])
    rf = ReplayFile(path, chunksize=3)
    events, msgs = collect(rf)
    assert len(msgs) == 1 and msgs[0].startswith(f"{path}:9: ts 'soon' is not a timestamp")
    assert [e.ts - T0 for e in events] == [0, 1, 2, 3, 4, 5, 6, 8, 9]


def test_fmt_ns_keeps_nanoseconds() -> None:
    assert fmt_ns(T0) == "2026-11-24T14:30:00Z"
    assert fmt_ns(T0 + 1) == "2026-11-24T14:30:00.000000001Z"
    assert fmt_ns(T0 + 250_000_000) == "2026-11-24T14:30:00.25Z"


# ------------------------------------------------------------------------------- venues, kinds


def test_venue_column_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "q.csv",
        [HEADER + ",venue", qrow(0) + ",IEX", qrow(1) + ",", qrow(2) + ",NYSE"],
    )
    assert [e.venue for e in ReplayFile(path).events()] == ["IEX", "", "NYSE"]
    plain = write(tmp_path, "p.csv", [HEADER, qrow(0)])
    assert [e.venue for e in ReplayFile(plain).events()] == [""]


def test_kind_inference_and_models(tmp_path: Path) -> None:
    t = write(tmp_path, "t.csv", ["ts,symbol,price,size,venue", f"{T0},AAPL,10.5,7,X"])
    b = write(tmp_path, "b.csv", ["TS,Symbol,Open,High,Low,Close,Volume", f"{T0},AAPL,1,2,1,2,9"])
    rt, rb = ReplayFile(t), ReplayFile(b)
    assert (rt.kind, rb.kind) == ("trades", "bars")
    assert list(rt.events()) == [Trade(T0, "AAPL", 10.5, 7.0, "X")]
    assert list(rb.events()) == [Bar(T0, "AAPL", 1.0, 2.0, 1.0, 2.0, 9.0, "")]
    assert infer_kind(["ts", "symbol", "bid", "bid_size", "ask", "ask_size", "extra"]) == "quotes"
    assert infer_kind(["ts", "symbol"]) is None


def test_missing_columns_error(tmp_path: Path) -> None:
    path = write(tmp_path, "odd.csv", ["ts,symbol,bid,ask", f"{T0},AAPL,1,2"])
    with pytest.raises(DataError) as ei:
        ReplayFile(path)
    msg = str(ei.value)
    assert str(path) in msg and "bid_size, ask_size" in msg
    assert "ts, symbol, bid, bid_size, ask, ask_size" in msg  # the expected columns
    with pytest.raises(DataError, match=r"missing column\(s\) price, size for trades"):
        ReplayFile(path, kind="trades")
    with pytest.raises(ConfigError, match="unknown data kind"):
        ReplayFile(path, kind="ticks")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="unknown data file type"):
        ReplayFile(tmp_path / "x.json")
    with pytest.raises(DataError, match="no such data file"):
        ReplayFile(tmp_path / "absent.csv")


# ------------------------------------------------------------------------------- files


def _frame(n: int = 5, venue: bool = True) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "ts": T0 + np.arange(n, dtype=np.int64) * 1_000_001,
            "symbol": ["AAPL", "MSFT"] * (n // 2) + ["AAPL"] * (n % 2),
            "bid": 10.0 + np.arange(n) / 100,
            "bid_size": np.full(n, 100.0),
            "ask": 10.01 + np.arange(n) / 100,
            "ask_size": np.full(n, 300.0),
        }
    )
    if venue:
        df["venue"] = ["X", "Y", ""] * (n // 3) + ["X"] * (n % 3)
    return df


@pytest.mark.parametrize("ext", ["parquet", "pq", "csv", "csv.gz"])
def test_round_trip(tmp_path: Path, ext: str) -> None:
    df = _frame()
    path = write_frame(df, tmp_path / f"q.{ext}")
    back = load_frame(path)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    assert back["ts"].dtype == np.int64
    assert back.attrs["kind"] == "quotes"
    events = list(ReplayFile(path).events())
    assert [e.ts for e in events] == df["ts"].tolist()
    assert [e.venue for e in events] == df["venue"].tolist()


def test_write_frame_converts_datetimes_and_iso(tmp_path: Path) -> None:
    df = _frame(3, venue=False)
    aware = df.assign(ts=pd.to_datetime(df["ts"], utc=True))
    text = df.assign(ts=[fmt_ns(t) for t in df["ts"]])
    for i, frame in enumerate([aware, text]):
        back = load_frame(write_frame(frame, tmp_path / f"q{i}.parquet"))
        assert back["ts"].tolist() == df["ts"].tolist()
        assert back["venue"].tolist() == ["", "", ""]
    naive = df.assign(ts=pd.to_datetime(df["ts"]))
    with pytest.raises(DataError, match="without a time zone"):
        write_frame(naive, tmp_path / "n.csv")


def test_parquet_bad_rows_and_timestamp_columns(tmp_path: Path) -> None:
    df = _frame(4, venue=False)
    df.loc[2, "bid"] = 99.0  # crossed: row 3 -> line 4
    ts = pd.to_datetime(df["ts"], utc=True)
    table = pa.Table.from_pandas(df.assign(ts=ts), preserve_index=False)
    path = tmp_path / "q.parquet"
    pq.write_table(table, path)
    rf = ReplayFile(path)
    events, msgs = collect(rf)
    assert msgs == [f"{path}:4: crossed quote: bid 99 > ask 10.03"]
    assert [e.ts for e in events] == [df["ts"][i] for i in (0, 1, 3)]
    naive = tmp_path / "naive.parquet"
    pq.write_table(pa.Table.from_pandas(df.assign(ts=ts.dt.tz_localize(None))), naive)
    with pytest.raises(DataError, match="without a time zone"):
        list(ReplayFile(naive).events())


def test_gzip_csv(tmp_path: Path) -> None:
    path = tmp_path / "q.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join([HEADER, qrow(0), qrow(1, "10.02", "10.01")]) + "\n")
    events, msgs = collect(ReplayFile(path))
    assert len(events) == 1 and msgs == [f"{path}:3: crossed quote: bid 10.02 > ask 10.01"]


def test_symbols_attribute(tmp_path: Path) -> None:
    path = write(tmp_path, "q.csv", [HEADER, qrow(0), qrow(1, sym="MSFT"), qrow(2, sym="IBM")])
    assert ReplayFile(path).symbols == {"AAPL", "MSFT", "IBM"}
    assert ReplayFile(path, symbols={"AAPL", "TSLA"}).symbols == {"AAPL"}
    write_frame(_frame(), tmp_path / "q.parquet")
    assert ReplayFile(tmp_path / "q.parquet").symbols == {"AAPL", "MSFT"}
    rf = ReplayFile(path)
    rf.symbols = {"X"}
    assert rf.symbols == {"X"}


# ------------------------------------------------------------------------------- merge, window


def test_merge_two_files_in_ts_order(tmp_path: Path) -> None:
    a = write(tmp_path, "a.csv", [HEADER + ",venue"] + [qrow(s) + ",A" for s in (0, 2, 4, 4)])
    b = write(
        tmp_path,
        "b.csv",
        ["ts,symbol,price,size,venue"] + [f"{T0 + s * NS_PER_S},AAPL,10,1,B" for s in (1, 2, 5)],
    )
    src = ReplaySource([a, b])
    events = list(src.events())
    assert [((e.ts - T0) // NS_PER_S, e.venue) for e in events] == [
        (0, "A"),
        (1, "B"),
        (2, "A"),  # a tie: the earlier file first
        (2, "B"),
        (4, "A"),
        (4, "A"),
        (5, "B"),
    ]
    assert [type(e) for e in events[:2]] == [Quote, Trade]
    assert src.symbols == {"AAPL"}
    assert src.bad_rows == 0
    single = ReplaySource(a)
    assert len(list(single.events())) == 4


def test_start_end_window(tmp_path: Path) -> None:
    path = write(tmp_path, "q.csv", [HEADER] + [qrow(s) for s in range(10)])
    rf = ReplayFile(path)
    got = [(e.ts - T0) // NS_PER_S for e in rf.events(T0 + 3 * NS_PER_S, T0 + 7 * NS_PER_S)]
    assert got == [3, 4, 5, 6]  # start inclusive, end exclusive
    assert len(list(rf.events(start_ns=T0 + 8 * NS_PER_S))) == 2
    assert len(list(rf.events(end_ns=T0))) == 0
    src = ReplaySource([path, path])
    assert len(list(src.events(T0 + 3 * NS_PER_S, T0 + 7 * NS_PER_S))) == 8


def test_reading_stops_after_the_end(tmp_path: Path) -> None:
    # a bad row after the window is never looked at
    path = write(tmp_path, "q.csv", [HEADER, qrow(0), qrow(5), qrow(1)])
    events, msgs = collect(ReplayFile(path), None, T0 + 2 * NS_PER_S)
    assert len(events) == 1 and msgs == []


# ------------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_large_file_is_streamed_in_chunks(tmp_path: Path, ext: str) -> None:
    n = 500_000
    rng = np.random.default_rng(7)
    bid_c = 19_000 + np.cumsum(rng.integers(-1, 2, n))
    table = pa.table(
        {
            "ts": T0 + np.arange(n, dtype=np.int64) * 1_000,
            "symbol": pa.array(["AAPL"] * n),
            "bid": bid_c / 100.0,
            "bid_size": rng.integers(1, 11, n) * 100,
            "ask": (bid_c + rng.integers(1, 4, n)) / 100.0,
            "ask_size": rng.integers(1, 11, n) * 100,
        }
    )
    path = tmp_path / f"big.{ext}"
    if ext == "csv":
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path, row_group_size=100_000)
    rf = ReplayFile(path, chunksize=50_000)
    count = 0
    last = 0
    for q in rf.events():
        count += 1
        last = q.ts
    assert count == n and rf.bad_rows == 0
    assert rf.chunks_read == 10
    assert last == T0 + (n - 1) * 1_000


def test_chunked_merge_matches_a_stable_sort(tmp_path: Path) -> None:
    # many ties within and across files and chunk boundaries: the array merge must give the
    # same order as heapq.merge (ts, then file, then row)
    rng = np.random.default_rng(3)
    paths = []
    expected: list[tuple[int, int, int]] = []
    for k in range(3):
        ts = np.sort(rng.integers(0, 40, 100))
        paths.append(
            write(
                tmp_path,
                f"f{k}.csv",
                [HEADER + ",venue"] + [f"{T0 + t},AAPL,10,{i},11,1,{k}" for i, t in enumerate(ts)],
            )
        )
        expected.extend((int(t), k, i) for i, t in enumerate(ts))
    expected.sort()
    for chunksize in (1, 7, 64, 1000):
        src = ReplaySource(paths, chunksize=chunksize)
        got = [(e.ts - T0, int(e.venue), int(e.bid_size)) for e in src.events()]  # type: ignore[union-attr]
        assert got == expected
    window = [e.ts - T0 for e in ReplaySource(paths, chunksize=5).events(T0 + 10, T0 + 20)]
    assert window == [t for t, _, _ in expected if 10 <= t < 20]


def test_text_ts_column_with_integers_and_iso(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "q.csv",
        [
            HEADER,
            f"{T0},AAPL,10,1,11,1",
            "2026-11-24T14:30:00.5Z,AAPL,10,1,11,1",
            "2026-11-24,X,1,1,2,1",
        ],
    )
    events, msgs = collect(ReplayFile(path))
    assert [e.ts - T0 for e in events] == [0, 500_000_000]
    assert msgs == [f"{path}:4: ts '2026-11-24' has no UTC offset (e.g. 2026-11-24T14:30:00Z)"]
