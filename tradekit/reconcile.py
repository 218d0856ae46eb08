"""What reconciliation against a broker found, and the venue connection status event.

Every adapter reconciles on connect, after every reconnect and, with a journal, after a restart:
our open orders against the broker's (matched, closed meanwhile, adopted or cancelled when
unknown to us, looked up by client order id and then marked LOST when unknown to the broker),
fills we missed, and the broker's positions (which win). The outcome is one typed
:class:`ReconciliationReport`, logged, published to the broker's listeners and journaled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import msgspec

__all__ = ["ReconciliationReport", "VenueStatus", "position_mismatches"]


@dataclass(frozen=True, slots=True)
class ReconciliationReport:
    """What reconciliation against a broker found (on connect, after a reconnect or restart)."""

    venue: str
    reason: str
    ts: int
    #: our orders the broker still has open
    matched: tuple[str, ...] = ()
    #: open orders at the broker we did not know (adopted)
    adopted: tuple[str, ...] = ()
    #: open orders at the broker we did not know, cancelled (``unknown_orders = "cancel"``)
    cancelled: tuple[str, ...] = ()
    #: our open orders that the broker reports done meanwhile: (client order id, status)
    closed: tuple[tuple[str, str], ...] = ()
    #: our open orders the broker knows nothing of after the lookups (marked LOST)
    lost: tuple[str, ...] = ()
    #: fills applied that had not reached us (fill / execution ids)
    fills_recovered: tuple[str, ...] = ()
    #: the broker's positions (symbol -> signed qty)
    positions: Mapping[str, float] = field(default_factory=dict)
    #: symbol -> (local qty, broker qty) where they differ after the recovered fills
    position_mismatches: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.position_mismatches)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["positions"] = dict(self.positions)
        d["position_mismatches"] = {k: list(v) for k, v in self.position_mismatches.items()}
        d["clean"] = self.clean
        return d

    def __str__(self) -> str:
        return (
            f"reconciliation of {self.venue} ({self.reason}): {len(self.matched)} open orders "
            f"matched, {len(self.adopted)} adopted, {len(self.cancelled)} unknown cancelled, "
            f"{len(self.closed)} closed meanwhile, {len(self.lost)} lost, "
            f"{len(self.fills_recovered)} fills recovered, {len(self.positions)} positions"
            + (f", mismatches {dict(self.position_mismatches)}" if self.position_mismatches else "")
        )


def position_mismatches(
    portfolio: Any, theirs: Mapping[str, float], tolerance: float = 1e-6
) -> dict[str, tuple[float, float]]:
    """symbol -> (local qty, broker qty) where the local books (a ``Portfolio``) and the
    broker's positions differ by more than ``tolerance`` shares."""
    out: dict[str, tuple[float, float]] = {}
    for sym in set(theirs) | set(portfolio.symbols()):
        mine = portfolio.qty(sym)
        other = theirs.get(sym, 0.0)
        if abs(mine - other) > tolerance:
            out[sym] = (mine, other)
    return out


class VenueStatus(msgspec.Struct, frozen=True):
    """A broker's trading connection went down (``up`` False) or is back and reconciled."""

    venue: str
    ts: int
    up: bool
    reason: str = ""
