"""The ORIGINAL service's reconciliation rules, row by row in plain Python: an oracle for tests and
the baseline the benchmark compares the vectorized engine against.

Original rules (hedging accounts only, symbol names as-is, no tag, identity or time):

* for each expected trade in input order, scan the positions in input order and take the FIRST
  unclaimed one with the same login, symbol and direction (buy = type 0, sell = type 1), volume
  within `match_volume_pct` % of the expected volume and open price within `match_price_pips`
  pips; greedy, a position is never claimed twice;
* on every matched pair: slippage beyond `slippage_pips` (adverse when a buy paid more or a sell
  received less), volume beyond `volume_pct` % (partial_fill / over_fill), SL/TP beyond
  `sl_pips`/`tp_pips` when both are set (drift), set by the bot but unset at the broker
  (missing_at_broker), or the reverse (unexpected_at_broker); 0.0 and None both mean "not set";
* an unclaimed position is unknown (manual when magic is 0, else other_ea); an unclaimed
  expected trade is missing (no cause: the original never read the deals history).

A pip is ten points on 3- and 5-digit quotes, one point otherwise. No polars in the matching loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

HEDGING_MODE = 2  # ACCOUNT_MARGIN_MODE_RETAIL_HEDGING


@dataclass(frozen=True)
class ReferenceResult:
    pairs: list[tuple[int, str, int]]  # (login, trade_id, ticket)
    # (login, kind, key, cause); key = trade_id for trade-level kinds, "pos<ticket>" for unknown
    divergences: list[tuple[int, str, str, str | None]]


def pip_of(digits: int, point: float) -> float:
    return point * 10 if digits in (3, 5) else point


def rows_from_frames(
    *,
    accounts: pl.DataFrame,
    positions: pl.DataFrame,
    symbols: pl.DataFrame,
    expected_trades: pl.DataFrame,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[tuple[int, str], float]]:
    """The engine's input frames as the original service saw them: (open expected trades of hedging
    accounts, positions of hedging accounts, pip size per (login, symbol name))."""
    hedging = set(accounts.filter(pl.col("margin_mode") == HEDGING_MODE)["login"].to_list())
    expected = [
        {
            "login": row["login"],
            "trade_id": row["trade_id"],
            "symbol": row["symbol"],
            "dir": 0 if row["side"] == "buy" else 1,
            "volume": row["volume"],
            "price": row["price"],
            "sl": row["sl"],
            "tp": row["tp"],
            "magic": row["magic"],
        }
        for row in expected_trades.iter_rows(named=True)
        if row["login"] in hedging and row["closed_at"] is None
    ]
    held = [
        {
            "login": row["login"],
            "ticket": row["ticket"],
            "symbol": row["symbol"],
            "type": row["type"],
            "volume": row["volume"],
            "price_open": row["price_open"],
            "sl": row["sl"],
            "tp": row["tp"],
            "magic": row["magic"],
        }
        for row in positions.iter_rows(named=True)
        if row["login"] in hedging
    ]
    pips: dict[tuple[int, str], float] = {}
    for row in symbols.iter_rows(named=True):
        pips.setdefault((row["login"], row["name"]), pip_of(row["digits"], row["point"]))
    return expected, held, pips


def _is_set(level: float | None) -> bool:
    return level is not None and level != 0.0


def _level(
    login: int, trade_id: str, kind: str, bot: float | None, broker: float | None, pip: float, threshold: float
) -> tuple[int, str, str, str | None] | None:
    if bot is not None and bot != 0.0 and broker is not None and broker != 0.0:
        return (login, kind, trade_id, "drift") if abs((broker - bot) / pip) > threshold else None
    if _is_set(bot):
        return (login, kind, trade_id, "missing_at_broker")
    if _is_set(broker):
        return (login, kind, trade_id, "unexpected_at_broker")
    return None


def _pair_divergences(
    trade: dict[str, Any],
    position: dict[str, Any],
    pip: float,
    *,
    slippage_pips: float,
    volume_pct: float,
    sl_pips: float,
    tp_pips: float,
) -> list[tuple[int, str, str, str | None]]:
    login, trade_id = trade["login"], trade["trade_id"]
    found: list[tuple[int, str, str, str | None]] = []
    adverse_sign = 1.0 if trade["dir"] == 0 else -1.0
    slip = (position["price_open"] - trade["price"]) * adverse_sign / pip
    if abs(slip) > slippage_pips:
        found.append((login, "slippage", trade_id, "adverse" if slip > 0 else "favourable"))
    volume_diff = (position["volume"] - trade["volume"]) / trade["volume"] * 100
    if abs(volume_diff) > volume_pct:
        found.append((login, "volume_mismatch", trade_id, "partial_fill" if volume_diff < 0 else "over_fill"))
    for level, kind, threshold in (("sl", "sl_mismatch", sl_pips), ("tp", "tp_mismatch", tp_pips)):
        verdict = _level(login, trade_id, kind, trade[level], position[level], pip, threshold)
        if verdict is not None:
            found.append(verdict)
    return found


def reconcile_row_by_row(
    expected: list[dict[str, Any]],
    positions: list[dict[str, Any]],
    pips: dict[tuple[int, str], float],
    *,
    slippage_pips: float = 5.0,
    volume_pct: float = 10.0,
    sl_pips: float = 10.0,
    tp_pips: float = 10.0,
    match_volume_pct: float = 5.0,
    match_price_pips: float = 2.0,
) -> ReferenceResult:
    """Greedy first-fit matching in input order, then the per-pair and leftover verdicts."""
    claimed = [False] * len(positions)
    # the original service reconciled one user at a time: each trade scans that account's positions
    # in order, testing symbol, direction, volume and price (no index by symbol: that is the baseline)
    by_login: dict[int, list[int]] = {}
    for index, position in enumerate(positions):
        by_login.setdefault(position["login"], []).append(index)
    pairs: list[tuple[int, str, int]] = []
    divergences: list[tuple[int, str, str, str | None]] = []
    for trade in expected:
        pip = pips.get((trade["login"], trade["symbol"]))
        if pip is None:  # no symbol spec: nothing can be compared in pips
            divergences.append((trade["login"], "missing_position", trade["trade_id"], None))
            continue
        for index in by_login.get(trade["login"], []):
            position = positions[index]
            if (
                claimed[index]
                or position["symbol"] != trade["symbol"]
                or position["type"] != trade["dir"]
                or abs(position["volume"] - trade["volume"]) / trade["volume"] * 100 > match_volume_pct
                or abs(position["price_open"] - trade["price"]) / pip > match_price_pips
            ):
                continue
            claimed[index] = True
            pairs.append((trade["login"], trade["trade_id"], position["ticket"]))
            divergences.extend(
                _pair_divergences(
                    trade,
                    position,
                    pip,
                    slippage_pips=slippage_pips,
                    volume_pct=volume_pct,
                    sl_pips=sl_pips,
                    tp_pips=tp_pips,
                )
            )
            break
        else:
            divergences.append((trade["login"], "missing_position", trade["trade_id"], None))
    for index, position in enumerate(positions):
        if not claimed[index]:
            cause = "manual" if position["magic"] == 0 else "other_ea"
            divergences.append((position["login"], "unknown_position", f"pos{position['ticket']}", cause))
    return ReferenceResult(pairs=pairs, divergences=divergences)
