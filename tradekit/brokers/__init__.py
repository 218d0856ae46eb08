"""Broker adapters. ``get(name)`` returns the class registered under ``name`` in the
``tradekit.brokers`` entry-point group (``paper``, ``alpaca``, ``ibkr`` and users' own); adapters
whose SDK is an optional extra are imported only when asked for."""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points

from ..errors import ConfigError
from .base import Broker, Capabilities, DataFeed

_BUILTIN = {
    "paper": "tradekit.brokers.paper:PaperBroker",
    "alpaca": "tradekit.brokers.alpaca:AlpacaBroker",
    "ibkr": "tradekit.brokers.ibkr:IBKRBroker",
}
_registered: dict[str, type[Broker]] = {}


def register(name: str, cls: type[Broker]) -> None:
    """Register a broker class under ``name`` in this process (entry points do it for installed
    packages)."""
    if not (isinstance(cls, type) and issubclass(cls, Broker)):
        raise TypeError(f"{cls!r} is not a Broker subclass")
    _registered[name] = cls


def names() -> list[str]:
    found = {ep.name for ep in entry_points(group="tradekit.brokers")}
    return sorted(found | set(_BUILTIN) | set(_registered))


def get(name: str) -> type[Broker]:
    """The broker class registered as ``name``."""
    if name in _registered:
        return _registered[name]
    target = None
    for ep in entry_points(group="tradekit.brokers"):
        if ep.name == name:
            target = ep.value
            break
    if target is None:
        target = _BUILTIN.get(name)
    if target is None:
        raise ConfigError(f"unknown broker {name!r}; registered: {', '.join(names())}")
    module, _, attr = target.partition(":")
    try:
        cls = getattr(import_module(module), attr)
    except ImportError as e:
        extra = {"alpaca": "alpaca", "ibkr": "ibkr"}.get(name)
        hint = f" (pip install 'tradekit[{extra}]')" if extra else ""
        raise ConfigError(f"broker {name!r} cannot be loaded: {e}{hint}") from e
    if not (isinstance(cls, type) and issubclass(cls, Broker)):
        raise ConfigError(f"entry point {name!r} -> {target} is not a Broker subclass")
    return cls


__all__ = ["Broker", "Capabilities", "DataFeed", "get", "names", "register"]
