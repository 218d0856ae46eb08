"""Directed-route arbitrage on an Interactive Brokers paper account (two venues, one account).

``examples/ibkr_paper_arbitrage.toml`` defines two venues on the same IB account, each an
``IBKRBroker`` with its own route (ARCA and ISLAND by default) and client id, and an
``arbitrage`` strategy between them. This script fills in where TWS or IB Gateway listens, checks
that something does, and runs the config with ``tradekit.live.run``::

    python examples/ibkr_paper_arbitrage.py                        # TWS paper on 7497
    python examples/ibkr_paper_arbitrage.py --port 4002            # IB Gateway paper
    python examples/ibkr_paper_arbitrage.py --symbol QQQ --routes ARCA BATS --duration 600

When nothing listens it says what is missing (start TWS or IB Gateway, enable the API, the
port) and exits with status 2. Ctrl-C stops the run; its open orders are cancelled and the usual
outputs (summary.json, orders.csv, fills.csv, report.html) are written to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import logging
import sys
import tomllib
from pathlib import Path
from typing import Any

log = logging.getLogger("tradekit.examples.ibkr_paper_arbitrage")

DEFAULT_TOML = Path(__file__).with_name("ibkr_paper_arbitrage.toml")

#: exit statuses (the ``tradekit`` command's convention)
EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2


def build_config(
    path: str | Path = DEFAULT_TOML,
    *,
    host: str | None = None,
    port: int | None = None,
    account: str | None = None,
    symbol: str | None = None,
    routes: tuple[str, str] | None = None,
    client_ids: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The TOML of ``path`` as a config dict, with the connection, symbol and routes given on
    the command line. Venue names follow the routes (``arca``, ``island``, ...)."""
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    doc = copy.deepcopy(doc)
    venues: dict[str, dict[str, Any]] = doc["venues"]
    strat: dict[str, Any] = doc["strategy"]
    names = [strat["venue_a"], strat["venue_b"]]
    if routes is not None:
        renamed: dict[str, dict[str, Any]] = {}
        for old, route in zip(names, routes, strict=True):
            body = venues.pop(old)
            body["route"] = route.upper()
            renamed[route.lower()] = body
        venues.update(renamed)
        names = [r.lower() for r in routes]
        strat["venue_a"], strat["venue_b"] = names
    for i, name in enumerate(names):
        v = venues[name]
        if host is not None:
            v["host"] = host
        if port is not None:
            v["port"] = port
        if account is not None:
            v["account"] = account
        if client_ids is not None:
            v["client_id"] = client_ids[i]
    if symbol is not None:
        strat["symbol"] = symbol.upper()
    return doc


async def _probe(host: str, port: int, timeout: float) -> str | None:
    """None when something accepts connections at host:port, else what went wrong."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as e:
        return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return None


def missing_message(host: str, port: int, why: str) -> str:
    return (
        f"nothing is listening at {host}:{port} ({why}).\n"
        f"  - start TWS or IB Gateway and log in to your paper account;\n"
        f"  - enable the API: TWS > Global Configuration > API > Settings > 'Enable ActiveX and "
        f"Socket Clients' (IB Gateway: Configure > Settings > API), and add 127.0.0.1 to the "
        f"trusted IPs;\n"
        f"  - check the port: TWS paper 7497, TWS live 7496, IB Gateway paper 4002, IB Gateway "
        f"live 4001 (give it with --port)."
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(DEFAULT_TOML), help="the TOML to run")
    p.add_argument("--host", default=None, help="TWS/IB Gateway host (default: the TOML's)")
    p.add_argument(
        "--port",
        type=int,
        default=None,
        help="7497 TWS paper (the TOML's default), 4002 IB Gateway paper",
    )
    p.add_argument("--account", default=None, help="IB account code (default: the only one)")
    p.add_argument("--symbol", default=None, help="the stock to arbitrage (default: the TOML's)")
    p.add_argument(
        "--routes",
        nargs=2,
        metavar=("A", "B"),
        default=None,
        help="the two directed routes (default: ARCA ISLAND)",
    )
    p.add_argument(
        "--duration", type=float, default=None, help="seconds to run (default: until Ctrl-C)"
    )
    p.add_argument("--out", default=None, help="output directory")
    p.add_argument("--timeout", type=float, default=3.0, help="connection probe timeout (s)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # this script's own messages always reach stderr, whatever logging is configured
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    log.handlers[:] = [console]
    log.propagate = False
    log.setLevel(logging.INFO)
    try:
        doc = build_config(
            args.config,
            host=args.host,
            port=args.port,
            account=args.account,
            symbol=args.symbol,
            routes=(args.routes[0], args.routes[1]) if args.routes else None,
        )
    except (OSError, KeyError, ValueError, tomllib.TOMLDecodeError) as e:
        log.error("cannot build the config from %s: %s", args.config, e)
        return EXIT_USAGE
    endpoints = sorted(
        {(v.get("host", "127.0.0.1"), int(v.get("port", 7497))) for v in doc["venues"].values()}
    )
    for host, port in endpoints:
        why = asyncio.run(_probe(host, port, args.timeout))
        if why is not None:
            log.error("%s", missing_message(host, port, why))
            return EXIT_USAGE

    from tradekit.errors import ConfigError, Disconnected, TradekitError
    from tradekit.live import run

    try:
        result = run(doc, duration=args.duration, out=args.out)
    except ConfigError as e:
        log.error("config error: %s", e)
        return EXIT_USAGE
    except Disconnected as e:
        log.error("%s", e)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    except TradekitError as e:
        log.error("run failed: %s", e)
        return EXIT_RUNTIME
    s = result.summary
    log.info(
        "done: %s orders, %s fills, net pnl %s",
        s.get("orders_submitted"),
        s.get("fills"),
        s.get("net_pnl"),
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
