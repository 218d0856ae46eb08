"""Positions, cash, realized and unrealized PnL and fees, derived from fills alone."""

from __future__ import annotations

from dataclasses import dataclass

from .model import Fill, Position

_EPS = 1e-9


@dataclass(slots=True)
class _Pos:
    qty: float = 0.0
    avg_price: float = 0.0
    realized: float = 0.0
    fees: float = 0.0
    mark: float | None = None
    basis_unknown: bool = False  # starting inventory whose cost is taken from the first mark


class Portfolio:
    """Signed positions per symbol with average-cost accounting (a flip closes at the average and
    opens the rest at the fill price). ``cash`` moves with every fill and fee."""

    __slots__ = ("_pos", "by_symbol", "cash", "currency", "fees", "start_cash")

    def __init__(
        self, cash: float = 0.0, positions: dict[str, float] | None = None, currency: str = "USD"
    ) -> None:
        self.cash = float(cash)
        self.start_cash = self.cash
        self.currency = currency
        self.fees = 0.0
        self._pos: dict[str, _Pos] = {}
        #: the symbols tracked (read-only view for fast membership tests on the hot path)
        self.by_symbol = self._pos
        for sym, qty in (positions or {}).items():
            self.set_position(sym, float(qty))

    def set_position(self, symbol: str, qty: float, avg_price: float | None = None) -> None:
        """Seed a position (starting inventory, or the broker's word on reconcile)."""
        p = self._pos.setdefault(symbol, _Pos())
        p.qty = qty
        if avg_price is None:
            p.basis_unknown = abs(qty) > _EPS
            p.avg_price = 0.0
        else:
            p.avg_price = avg_price
            p.basis_unknown = False

    def __contains__(self, symbol: object) -> bool:
        """Whether the symbol is tracked (held now or before, or seeded)."""
        return symbol in self._pos

    def qty(self, symbol: str) -> float:
        p = self._pos.get(symbol)
        return 0.0 if p is None else p.qty

    def mark(self, symbol: str, price: float) -> None:
        """The latest price of a symbol held (symbols never held are not tracked)."""
        p = self._pos.get(symbol)
        if p is None:
            return
        p.mark = price
        if p.basis_unknown:
            p.avg_price = price
            p.basis_unknown = False

    def apply(self, fill: Fill) -> None:
        p = self._pos.get(fill.symbol)
        if p is None:
            p = self._pos[fill.symbol] = _Pos()
        if p.basis_unknown:
            p.avg_price = fill.price
            p.basis_unknown = False
        dq = fill.qty if fill.side == "buy" else -fill.qty
        self.cash -= dq * fill.price + fill.fee
        self.fees += fill.fee
        p.fees += fill.fee
        q = p.qty
        if q == 0.0 or (q > 0) == (dq > 0):
            new = q + dq
            p.avg_price = (p.avg_price * q + fill.price * dq) / new if abs(new) > _EPS else 0.0
            p.qty = new
        else:
            closing = min(abs(dq), abs(q))
            sign = 1.0 if q > 0 else -1.0
            p.realized += closing * (fill.price - p.avg_price) * sign
            new = q + dq
            if abs(new) <= _EPS:
                p.qty, p.avg_price = 0.0, 0.0
            elif (new > 0) != (q > 0):  # flipped: the rest opens at the fill price
                p.qty, p.avg_price = new, fill.price
            else:
                p.qty = new
        if p.mark is None:
            p.mark = fill.price

    def position(self, symbol: str, venue: str = "") -> Position:
        p = self._pos.get(symbol) or _Pos()
        return Position(symbol, p.qty, p.avg_price, p.realized, venue)

    def positions(self, venue: str = "", *, include_flat: bool = False) -> dict[str, Position]:
        return {
            s: Position(s, p.qty, p.avg_price, p.realized, venue)
            for s, p in self._pos.items()
            if include_flat or abs(p.qty) > _EPS
        }

    def symbols(self) -> list[str]:
        return list(self._pos)

    @property
    def realized_pnl(self) -> float:
        return sum(p.realized for p in self._pos.values())

    def unrealized_pnl(self) -> float:
        return sum(
            p.qty * ((p.mark if p.mark is not None else p.avg_price) - p.avg_price)
            for p in self._pos.values()
        )

    def market_value(self) -> float:
        return sum(
            p.qty * (p.mark if p.mark is not None else p.avg_price) for p in self._pos.values()
        )

    def gross_exposure(self) -> float:
        return sum(
            abs(p.qty) * (p.mark if p.mark is not None else p.avg_price) for p in self._pos.values()
        )

    def equity_and_gross(self) -> tuple[float, float]:
        """(cash + market value, gross exposure) in one pass."""
        mv = gross = 0.0
        for p in self._pos.values():
            if p.qty:
                v = p.qty * (p.mark if p.mark is not None else p.avg_price)
                mv += v
                gross += abs(v)
        return self.cash + mv, gross

    def equity(self) -> float:
        return self.cash + self.market_value()

    def net_pnl(self) -> float:
        """Realized + unrealized (at the marks) - fees."""
        return self.realized_pnl + self.unrealized_pnl() - self.fees
