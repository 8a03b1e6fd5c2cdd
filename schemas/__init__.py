"""One Pandera DataFrameModel per frame; the domain checks each row must pass to be reconciled."""

from __future__ import annotations

import pandera.polars as pa

from schemas.accounts import AccountsModel
from schemas.deals import DealsModel
from schemas.expected_trades import ExpectedTradesModel
from schemas.orders import OrdersModel
from schemas.positions import PositionsModel
from schemas.symbols import SymbolsModel
from schemas.ticks import TicksModel

MODELS: dict[str, type[pa.DataFrameModel]] = {
    "accounts": AccountsModel,
    "positions": PositionsModel,
    "orders": OrdersModel,
    "deals": DealsModel,
    "ticks": TicksModel,
    "symbols": SymbolsModel,
    "expected_trades": ExpectedTradesModel,
}

__all__ = [
    "MODELS",
    "AccountsModel",
    "DealsModel",
    "ExpectedTradesModel",
    "OrdersModel",
    "PositionsModel",
    "SymbolsModel",
    "TicksModel",
]
