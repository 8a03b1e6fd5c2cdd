"""Shape validated frames into the engine's working frames: open expected trades and positions,
each with its instrument, pip size and tolerances, only for accounts whose snapshot succeeded."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from mt5recon.recon.instruments import normalized_symbol, pip_size
from mt5recon.tolerances import Tolerances

NETTING_MODES = [0, 1]  # ACCOUNT_MARGIN_MODE_RETAIL_NETTING, ACCOUNT_MARGIN_MODE_EXCHANGE
# per-instrument columns every working row carries (from the symbol spec and the tolerances)
SPEC_COLUMNS = ("pip", "contract_size", "currency_profit", "tick_value", "tick_size")


@dataclass(frozen=True)
class WorkingFrames:
    expected: pl.DataFrame
    positions: pl.DataFrame
    deals: pl.DataFrame
    reconcilable: pl.DataFrame  # login, fetched_at, margin_mode, currency, deals_ok
    unverifiable: pl.DataFrame  # login, identifier, norm_symbol of position rows quarantined this cycle
    recently_closed: pl.DataFrame  # bot trades closed within their grace window: the close may be in flight


def quarantined_positions(quarantine: pl.DataFrame | None, symbol_map: Mapping[str, str]) -> pl.DataFrame:
    """What quarantined position rows may still tell: their login, identifier and instrument."""
    schema = {"login": pl.Int64, "identifier": pl.Int64, "norm_symbol": pl.String}
    if quarantine is None or quarantine.height == 0:
        return pl.DataFrame(schema=schema)
    rows = quarantine.filter(pl.col("frame") == "positions")
    raw = pl.col("raw")
    return rows.select(
        pl.col("login"),
        raw.str.json_path_match("$.identifier").cast(pl.Int64, strict=False).alias("identifier"),
        normalized_symbol(raw.str.json_path_match("$.symbol").fill_null(""), symbol_map).alias("norm_symbol"),
    ).cast(schema)  # type: ignore[arg-type]


def reconcilable_accounts(accounts: pl.DataFrame, stale: pl.DataFrame | None = None) -> pl.DataFrame:
    """Accounts whose account and position calls succeeded and whose data is fresh: only these can
    show missing/unknown (a failed or stale snapshot is never read as a flat account)."""
    ok = accounts.filter(pl.col("account_ok") & pl.col("positions_ok")).select(
        "login", "fetched_at", "margin_mode", "currency", "deals_ok"
    )
    return ok if stale is None else ok.join(stale.select("login"), on="login", how="anti")


def _instrument_specs(symbols: pl.DataFrame, symbol_map: Mapping[str, str]) -> pl.DataFrame:
    return (
        symbols.with_columns(normalized_symbol(pl.col("name"), symbol_map).alias("norm_symbol"))
        .sort("login", "name")
        .group_by("login", "norm_symbol", maintain_order=True)
        .first()
        .select(
            "login",
            "norm_symbol",
            pip_size(pl.col("digits"), pl.col("point")).alias("pip"),
            pl.col("trade_contract_size").alias("contract_size"),
            "currency_profit",
            pl.col("trade_tick_value").alias("tick_value"),
            pl.col("trade_tick_size").alias("tick_size"),
        )
    )


def _with_tolerances(frame: pl.DataFrame, tolerances: Tolerances) -> pl.DataFrame:
    table = tolerances.frame(frame["norm_symbol"].unique().drop_nulls().to_list())
    return frame.join(table, on="norm_symbol", how="left")


@dataclass(frozen=True)
class ReconInputs:
    """The validated frames one reconciliation reads (quarantine: the rows validation set aside)."""

    accounts: pl.DataFrame
    positions: pl.DataFrame
    deals: pl.DataFrame
    symbols: pl.DataFrame
    expected_trades: pl.DataFrame
    quarantine: pl.DataFrame | None = None


def working_frames(
    inputs: ReconInputs,
    *,
    tolerances: Tolerances,
    symbol_map: Mapping[str, str] | None = None,
    stale: pl.DataFrame | None = None,
) -> WorkingFrames:
    symbol_map = symbol_map or {}
    accounts, positions, deals = inputs.accounts, inputs.positions, inputs.deals
    symbols, expected_trades, quarantine = inputs.symbols, inputs.expected_trades, inputs.quarantine
    ok = reconcilable_accounts(accounts, stale)
    specs = _instrument_specs(symbols, symbol_map)
    trades = expected_trades.join(ok, on="login", how="inner").filter(pl.col("opened_at") <= pl.col("fetched_at"))
    still_open = pl.col("closed_at").is_null() | (pl.col("closed_at") > pl.col("fetched_at"))
    expected = _working_trades(trades.filter(still_open), specs, symbol_map)
    since_close = (pl.col("fetched_at") - pl.col("closed_at")).dt.total_milliseconds() / 1000.0
    # the bot's history is mostly long closed: only trades within the widest grace can be recent
    recent = ~still_open & (since_close <= tolerances.widest_grace_secs())
    closed = _with_tolerances(_working_trades(trades.filter(recent), specs, symbol_map), tolerances)
    open_positions = (
        positions.drop("fetched_at")
        .join(ok, on="login", how="inner")
        .with_columns(
            normalized_symbol(pl.col("symbol"), symbol_map).alias("norm_symbol"),
            pl.col("type").alias("dir"),
        )
        .join(specs, on=["login", "norm_symbol"], how="left")
    )
    return WorkingFrames(
        expected=_with_tolerances(expected, tolerances),
        positions=_with_tolerances(open_positions, tolerances),
        deals=deals.join(ok.select("login"), on="login", how="semi"),
        reconcilable=ok,
        unverifiable=quarantined_positions(quarantine, symbol_map),
        recently_closed=closed.filter(since_close <= pl.col("grace_secs")),
    )


def _working_trades(trades: pl.DataFrame, specs: pl.DataFrame, symbol_map: Mapping[str, str]) -> pl.DataFrame:
    return trades.with_columns(
        normalized_symbol(pl.col("symbol"), symbol_map).alias("norm_symbol"),
        pl.when(pl.col("side") == "buy").then(0).otherwise(1).cast(pl.Int32).alias("dir"),
        pl.col("sl").fill_null(0.0),
        pl.col("tp").fill_null(0.0),
    ).join(specs, on=["login", "norm_symbol"], how="left")
