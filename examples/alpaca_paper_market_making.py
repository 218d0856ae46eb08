"""Pure market making on an Alpaca paper account: ``alpaca_paper_market_making.toml`` run live.

    export APCA_API_KEY_ID=...        # paper keys: https://app.alpaca.markets/paper/dashboard
    export APCA_API_SECRET_KEY=...
    python examples/alpaca_paper_market_making.py --duration 600

The same as ``tradekit run examples/alpaca_paper_market_making.toml``, with checks first: the
keys are set (else it names the missing environment variables and exits 2), alpaca-py is
installed (``pip install 'tradekit[alpaca]'``), and ``APCA_API_BASE_URL``, when set, is a paper
endpoint (this example never trades a live account). Orders, fills and the stop are logged; the
outputs (summary.json, orders.csv, fills.csv, report.html) go to ``--out``. Ctrl-C stops it
cleanly (open quotes are cancelled).

Exit codes: 0 done, 2 something is missing or the config is wrong, 1 a runtime failure.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

CONFIG = Path(__file__).with_suffix(".toml")
KEYS = ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY")
PROG = "alpaca_paper_market_making"


def missing_keys() -> list[str]:
    """The environment variables still to set."""
    return [name for name in KEYS if not os.environ.get(name)]


def _paper_endpoint(url: str) -> bool:
    host = url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return host.startswith("paper-api.") or host in ("127.0.0.1", "localhost")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(CONFIG), help="TOML config (default: %(default)s)")
    parser.add_argument("--duration", type=float, default=None, help="seconds to run")
    parser.add_argument("--out", default=None, help="output directory")
    args = parser.parse_args(argv)

    missing = missing_keys()
    if missing:
        print(
            f"{PROG}: missing {' and '.join(missing)}: set your Alpaca paper API keys in the "
            f"environment (export {'=... '.join(missing)}=...); get them at "
            f"https://app.alpaca.markets/paper/dashboard",
            file=sys.stderr,
        )
        return 2
    if importlib.util.find_spec("alpaca") is None:
        print(
            f"{PROG}: alpaca-py is not installed: pip install 'tradekit[alpaca]'", file=sys.stderr
        )
        return 2
    base = os.environ.get("APCA_API_BASE_URL", "")
    if base and not _paper_endpoint(base):
        print(
            f"{PROG}: APCA_API_BASE_URL={base} is not a paper endpoint; this example trades "
            f"paper accounts only (unset it or use https://paper-api.alpaca.markets)",
            file=sys.stderr,
        )
        return 2

    from tradekit.errors import ConfigError, DataError, TradekitError
    from tradekit.live import run
    from tradekit.results import format_summary

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        result = run(args.config, duration=args.duration, out=args.out)
    except (ConfigError, DataError) as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    except TradekitError as e:
        print(f"{PROG}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 1
    print(format_summary(result.summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
