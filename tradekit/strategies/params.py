"""Typed strategy parameters read from a ``[strategy]`` table: unknown keys, wrong types and
impossible values are a ``ConfigError`` naming the key, the value and what is allowed."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from ..errors import ConfigError

P = TypeVar("P")


def _check(name: str, value: Any, tp: Any, file: str | None) -> Any:
    key = f"strategy.{name}"
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errs = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _check(name, value, a, file)
            except ConfigError as e:
                errs.append(e)
        raise errs[0]
    if tp is float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ConfigError(f"must be a number, not {value!r}", file=file, key=key)
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"must be a whole number, not {value!r}", file=file, key=key)
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"must be true or false, not {value!r}", file=file, key=key)
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"must be a string, not {value!r}", file=file, key=key)
        return value
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"must be a table, not {value!r}", file=file, key=key)
        return dict(value)
    if origin is list or origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"must be a list, not {value!r}", file=file, key=key)
        return tuple(value) if origin is tuple else list(value)
    return value


def parse_params(
    cls: type[P],
    params: Mapping[str, Any],
    *,
    file: str | None = None,
    aliases: Mapping[str, str] | None = None,
) -> P:
    """Build the dataclass ``cls`` from ``params`` with type checks; ``cls.validate()`` (if any)
    checks values. ``aliases`` maps accepted old names to field names."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for raw_key, value in params.items():
        k = (aliases or {}).get(raw_key, raw_key)
        if k not in fields:
            raise ConfigError(
                f"unknown parameter; allowed: {', '.join(sorted(fields))}",
                file=file,
                key=f"strategy.{raw_key}",
            )
        kwargs[k] = _check(k, value, hints[k], file)
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(
            f"missing required parameter(s): {', '.join(missing)}",
            file=file,
            key=f"strategy.{missing[0]}",
        )
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e), file=file, key="strategy") from None
    validate = getattr(obj, "validate", None)
    if validate is not None:
        try:
            validate()
        except ConfigError as e:
            raise ConfigError(e.message, file=file, key=e.key) from None
    return obj


def require(cond: bool, key: str, message: str) -> None:
    if not cond:
        raise ConfigError(message, key=f"strategy.{key}")
