"""The MetaTrader5 data functions, written once for every terminal that only passes calls on.

A transport (`remote.RemoteTerminal`) and a session (`session.SessionTerminal`) answer these the
same way: hand the call to whatever sits behind them. They differ only in `_forward`, and in
the session functions (initialize, login, shutdown, last_error) each defines itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from mt5recon.terminal.api import given
from mt5recon.terminal.records import (
    AccountInfo,
    OrderSendResult,
    SymbolInfo,
    TerminalInfo,
    Tick,
    TradeDeal,
    TradeOrder,
    TradePosition,
)


class ForwardedCalls:
    """Each data function as `_forward(name, args, kwargs)`, arguments as the package takes them:
    the date range positionally, filters by keyword and only when given."""

    def _forward(self, name: str, args: tuple[Any, ...] = (), kwargs: Mapping[str, Any] | None = None) -> Any:
        raise NotImplementedError

    def terminal_info(self) -> TerminalInfo | None:
        return self._forward("terminal_info")  # type: ignore[no-any-return]

    def account_info(self) -> AccountInfo | None:
        return self._forward("account_info")  # type: ignore[no-any-return]

    def positions_get(
        self, symbol: str | None = None, group: str | None = None, ticket: int | None = None
    ) -> tuple[TradePosition, ...] | None:
        return self._forward("positions_get", kwargs=given(symbol=symbol, group=group, ticket=ticket))  # type: ignore[no-any-return]

    def orders_get(
        self, symbol: str | None = None, group: str | None = None, ticket: int | None = None
    ) -> tuple[TradeOrder, ...] | None:
        return self._forward("orders_get", kwargs=given(symbol=symbol, group=group, ticket=ticket))  # type: ignore[no-any-return]

    def history_deals_get(
        self,
        date_from: datetime | int | None = None,
        date_to: datetime | int | None = None,
        group: str | None = None,
        ticket: int | None = None,
        position: int | None = None,
    ) -> tuple[TradeDeal, ...] | None:
        dates = () if date_from is None and date_to is None else (date_from, date_to)
        filters = given(group=group, ticket=ticket, position=position)
        return self._forward("history_deals_get", dates, filters)  # type: ignore[no-any-return]

    def symbol_info(self, symbol: str) -> SymbolInfo | None:
        return self._forward("symbol_info", (symbol,))  # type: ignore[no-any-return]

    def symbol_info_tick(self, symbol: str) -> Tick | None:
        return self._forward("symbol_info_tick", (symbol,))  # type: ignore[no-any-return]

    def order_send(self, request: dict[str, Any]) -> OrderSendResult | None:
        return self._forward("order_send", (request,))  # type: ignore[no-any-return]

    def version(self) -> tuple[int, int, str] | None:
        """The terminal's (version, build, release date), when what sits behind has version()."""
        return self._forward("version")  # type: ignore[no-any-return]
