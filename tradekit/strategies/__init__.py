"""Strategies: the ``Strategy`` base class and the built-in strategies, known to configs by
``kind`` through ``registry``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from .arbitrage import Arbitrage, ArbitrageParams
from .base import Rejection, SessionChange, Strategy, StrategyContext, Timer
from .cross_exchange_market_making import CrossExchangeMarketMaking, XEMMParams
from .pure_market_making import PMMParams, PureMarketMaking

registry: dict[str, type[Strategy]] = {
    PureMarketMaking.kind: PureMarketMaking,
    Arbitrage.kind: Arbitrage,
    CrossExchangeMarketMaking.kind: CrossExchangeMarketMaking,
}


def get(kind: str) -> type[Strategy]:
    try:
        return registry[kind]
    except KeyError:
        raise ConfigError(
            f"unknown strategy kind {kind!r}; known: {', '.join(sorted(registry))}",
            key="strategy.kind",
        ) from None


def build(kind: str, params: Mapping[str, Any], *, file: str | None = None) -> Strategy:
    return get(kind).from_config(params, file=file)


__all__ = [
    "Arbitrage",
    "ArbitrageParams",
    "CrossExchangeMarketMaking",
    "PMMParams",
    "PureMarketMaking",
    "Rejection",
    "SessionChange",
    "Strategy",
    "StrategyContext",
    "Timer",
    "XEMMParams",
    "build",
    "get",
    "registry",
]
