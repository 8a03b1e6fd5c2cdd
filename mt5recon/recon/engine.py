"""One reconciliation pass over validated frames: match, classify, count. Pure and vectorized."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime

import polars as pl

from mt5recon.recon import classify, entry_deals, matching, netting, snapshots
from mt5recon.recon import divergences as dv
from mt5recon.recon.causes import missing_causes, reason_text
from mt5recon.recon.inputs import NETTING_MODES, ReconInputs, WorkingFrames, working_frames
from mt5recon.recon.instruments import normalized_symbol
from mt5recon.recon.passes import ACCOUNTS_PER_PASS, Frames, by_login_range, in_accounts_order
from mt5recon.tolerances import BreakPolicy, Tolerances

# which bot trade is which broker position, by which stage, and how far apart they are
MATCH_SCHEMA = pl.Schema(
    {
        "login": pl.Int64(),
        "trade_id": pl.String(),
        "ticket": pl.Int64(),
        "identifier": pl.Int64(),
        "symbol": pl.String(),
        "stage": pl.String(),  # identity | tag | fuzzy | netting
        "price_diff_pips": pl.Float64(),
        "volume_ratio": pl.Float64(),
    }
)


@dataclass(frozen=True)
class ReconResult:
    matches: pl.DataFrame
    divergences: pl.DataFrame
    # login, positions, expected_open, matched, divergences (reconcilable accounts only)
    account_stats: pl.DataFrame
    # login, reconciled, deals_ok for every fetched account: the break lifecycle never counts a
    # failed or stale snapshot as an observation
    observed: pl.DataFrame


def _verifiable(missing: pl.DataFrame, unverifiable: pl.DataFrame) -> pl.DataFrame:
    """Drop 'missing' verdicts a quarantined position row could explain (same identifier or
    instrument on the account): bad data is reported as quarantine, never as a missing position."""
    by_id = unverifiable.select("login", pl.col("identifier").alias("position_id")).drop_nulls()
    by_symbol = unverifiable.select("login", "norm_symbol").drop_nulls()
    kept = missing.join(by_symbol, on=["login", "norm_symbol"], how="anti")
    return kept.join(by_id, on=["login", "position_id"], how="anti") if "position_id" in kept.columns else kept


def _closing(positions: pl.DataFrame, recently_closed: pl.DataFrame) -> pl.DataFrame:
    """Positions that a bot trade closed moments ago still explains (its close may be in flight)."""
    if recently_closed.height == 0 or positions.height == 0:
        return positions.clear()
    pairs = matching.match_hedging(recently_closed, positions)
    return positions.join(pairs.select("login", "ticket"), on=["login", "ticket"], how="semi")


def _hedging(
    expected: pl.DataFrame,
    positions: pl.DataFrame,
    deals: pl.DataFrame,
    deals_ok: pl.DataFrame,
    magics: pl.DataFrame,
    work: WorkingFrames,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    unverifiable = work.unverifiable
    pairs = matching.match_hedging(expected, positions)
    side_by_side = classify.paired(expected, positions, pairs)
    matches = side_by_side.select(
        "login",
        "trade_id",
        "ticket",
        "identifier",
        pl.col("symbol_pos").alias("symbol"),
        "stage",
        ((pl.col("price_open") - pl.col("price")).abs() / pl.col("pip")).alias("price_diff_pips"),
        (pl.col("volume_pos") / pl.col("volume")).alias("volume_ratio"),
    )
    leftover_positions = positions.join(pairs.select("login", "ticket"), on=["login", "ticket"], how="anti")
    leftover_positions = leftover_positions.join(
        _closing(leftover_positions, work.recently_closed.filter(~pl.col("margin_mode").is_in(NETTING_MODES))),
        on=["login", "ticket"],
        how="anti",
    )
    leftover_expected = _verifiable(
        expected.join(pairs.select("login", "trade_id"), on=["login", "trade_id"], how="anti").filter(
            (pl.col("fetched_at") - pl.col("opened_at")).dt.total_milliseconds() / 1000.0 > pl.col("grace_secs")
        ),
        unverifiable,
    )
    missing = missing_causes(leftover_expected, deals, deals_ok)
    found = [
        classify.matched_divergences(side_by_side),
        classify.unknown_positions(leftover_positions, magics),
        dv.rows(
            missing,
            kind=dv.MISSING_POSITION,
            identity=pl.col("trade_id"),
            expected=pl.col("volume"),
            cause=pl.col("cause"),
        ),
    ]
    return matches.cast(dict(MATCH_SCHEMA)), pl.concat(found, how="vertical")  # type: ignore[arg-type]


def _netting_missing(missing: pl.DataFrame, deals: pl.DataFrame, deals_ok: pl.DataFrame) -> pl.DataFrame:
    """A netting symbol the bot holds but the broker does not: cause from the latest exit deal on it."""
    last_exit = (
        deals.filter(pl.col("type").is_in([0, 1]) & pl.col("entry").is_in([1, 3]))
        .sort("time_msc")
        .group_by("login", "symbol")
        .agg(
            pl.col("reason").last().alias("exit_reason"),
            pl.col("magic").last().alias("exit_magic"),
            pl.col("position_id").last().alias("identifier"),
        )
    )
    # netting trades carry the bot's symbol; deals carry the broker's: join on the instrument
    exits = last_exit.with_columns(normalized_symbol(pl.col("symbol")).alias("norm_symbol")).drop("symbol")
    frame = missing.join(exits, on=["login", "norm_symbol"], how="left").join(deals_ok, on="login", how="left")
    cause = (
        pl.when(~pl.col("deals_ok").fill_null(False))
        .then(pl.lit("unknown_deals_unavailable"))
        .when(pl.col("exit_reason").is_not_null())
        .then(reason_text(pl.col("magic")))
        .otherwise(pl.lit("never_filled"))
    )
    return dv.rows(
        frame.with_columns(pl.col("norm_symbol").alias("symbol")),
        kind=dv.MISSING_POSITION,
        identity=pl.concat_str([pl.lit("sym"), pl.col("norm_symbol")]),
        expected=pl.col("net_expected"),
        cause=cause,
    )


def reconcile(
    *,
    accounts: pl.DataFrame,
    positions: pl.DataFrame,
    deals: pl.DataFrame,
    symbols: pl.DataFrame,
    expected_trades: pl.DataFrame,
    tolerances: Tolerances,
    symbol_map: Mapping[str, str] | None = None,
    quarantine: pl.DataFrame | None = None,
    as_of: datetime | None = None,
    policy: BreakPolicy | None = None,
    health: pl.DataFrame | None = None,
    accounts_per_pass: int = ACCOUNTS_PER_PASS,
) -> ReconResult:
    """Match and classify every account whose snapshot is complete and fresh at `as_of`.

    A failed or stale snapshot is reported as such and never read as a flat account; `health`
    (frames.HEALTH) adds the terminal's own view: disconnected from its server, or quotes too old.
    A fleet larger than `accounts_per_pass` goes through in passes over login ranges (see
    `passes`): the same result, a bounded working set.
    """
    frames: Frames = {
        "accounts": accounts,
        "positions": positions,
        "deals": deals,
        "symbols": symbols,
        "expected_trades": expected_trades,
        "quarantine": quarantine,
        "health": health,
    }
    results = [
        _reconcile_pass(part, tolerances, symbol_map=symbol_map, as_of=as_of, policy=policy or BreakPolicy())
        for part in by_login_range(frames, accounts_per_pass)
    ]
    if len(results) == 1:
        return results[0]
    joined = {f.name: pl.concat([getattr(r, f.name) for r in results], how="vertical") for f in fields(ReconResult)}
    for name in ("account_stats", "observed"):  # one row per account, in the accounts' order
        joined[name] = in_accounts_order(joined[name], accounts)
    return ReconResult(**joined)


def _reconcile_pass(
    frames: Frames,
    tolerances: Tolerances,
    *,
    symbol_map: Mapping[str, str] | None,
    as_of: datetime | None,
    policy: BreakPolicy,
) -> ReconResult:
    """One pass of `reconcile` over the frames' accounts."""
    accounts, positions, deals = _frame(frames, "accounts"), _frame(frames, "positions"), _frame(frames, "deals")
    symbols, expected_trades = _frame(frames, "symbols"), _frame(frames, "expected_trades")
    quarantine, health = frames["quarantine"], frames["health"]
    stale = snapshots.stale_accounts(
        accounts,
        as_of=as_of,
        stale_after_secs=policy.stale_after_secs,
        health=health,
        stale_data_after_secs=policy.stale_data_after_secs,
    )
    work = working_frames(
        ReconInputs(accounts, positions, deals, symbols, expected_trades, quarantine),
        tolerances=tolerances,
        symbol_map=symbol_map,
        stale=stale,
    )
    deals_ok = work.reconcilable.select("login", "deals_ok")
    magics = classify.bot_magics(expected_trades)
    is_netting = pl.col("margin_mode").is_in(NETTING_MODES)
    hedge_matches, hedge_div = _hedging(
        work.expected.filter(~is_netting), work.positions.filter(~is_netting), work.deals, deals_ok, magics, work
    )
    net_expected = work.expected.filter(is_netting)
    tagged = entry_deals.tagged_entries(net_expected, work.deals, work.reconcilable)
    net_matches, net_div, one_sided = netting.reconcile_netting(
        net_expected, work.positions.filter(is_netting), work.recently_closed.filter(is_netting), tagged
    )
    net_missing, net_unknown = netting.one_sided_divergences(one_sided, magics)
    net_missing = _verifiable(net_missing, work.unverifiable)
    matches = pl.concat([hedge_matches, net_matches.cast(dict(MATCH_SCHEMA))], how="vertical")  # type: ignore[arg-type]
    found = pl.concat(
        [
            hedge_div,
            net_div,
            entry_deals.entry_slippage(tagged),
            net_unknown,
            _netting_missing(net_missing, work.deals, deals_ok),
            snapshots.snapshot_divergences(accounts, stale),
        ],
        how="vertical",
    )
    found = found.sort("login", "kind", "break_id")
    return ReconResult(
        matches=matches.sort("login", "trade_id"),
        divergences=found,
        account_stats=_stats(work, matches, found),
        observed=_observed(accounts, work.reconcilable),
    )


def _frame(frames: Frames, name: str) -> pl.DataFrame:
    frame = frames[name]
    if frame is None:
        raise ValueError(f"the {name} frame is required")
    return frame


def _observed(accounts: pl.DataFrame, reconcilable: pl.DataFrame) -> pl.DataFrame:
    """login, reconciled, deals_ok for every account fetched this cycle."""
    flags = reconcilable.select("login", pl.lit(True).alias("reconciled"))
    return (
        accounts.select("login", pl.col("deals_ok").fill_null(False))
        .unique("login", keep="first", maintain_order=True)
        .join(flags, on="login", how="left")
        .with_columns(pl.col("reconciled").fill_null(False))
        .select("login", "reconciled", "deals_ok")
    )


def _stats(work: WorkingFrames, matches: pl.DataFrame, found: pl.DataFrame) -> pl.DataFrame:
    base = work.reconcilable.select("login")
    counts = [
        work.positions.group_by("login").len("positions"),
        work.expected.group_by("login").len("expected_open"),
        matches.group_by("login").len("matched"),
        found.group_by("login").len("divergences"),
    ]
    for frame in counts:
        base = base.join(frame, on="login", how="left")
    return base.fill_null(0).with_columns(pl.exclude("login").cast(pl.Int64))
