"""Properties of matching that must hold for any input: never a double match, every position
and every open trade accounted for exactly once, and a result that does not depend on row order.

Every generated position and bot trade is older than the 15 s grace window at `fetched_at`
(builders.NOW; positions and trades sit around builders.EARLIER = NOW - 10 min), so each one
must get a verdict this cycle."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl
import pytest
from builders import EARLIER, frame, symbols_for
from hypothesis import given, settings
from hypothesis import strategies as st

from mt5recon.recon import one_to_one, tags
from mt5recon.recon.engine import ReconResult, reconcile
from mt5recon.tolerances import Tolerances

_positions = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.integers(0, 1),
            "volume": st.sampled_from([0.05, 0.1, 0.2]),
            "price_open": st.floats(1.0990, 1.1010),
            "magic": st.sampled_from([0, 777, 4242]),
            "reason": st.sampled_from([0, 3]),
            "comment": st.sampled_from(["", "t-000001", "t-000002", "t-0000"]),
        }
    ),
    max_size=12,
)
_expected = st.lists(
    st.fixed_dictionaries(
        {
            "side": st.sampled_from(["buy", "sell"]),
            "volume": st.sampled_from([0.05, 0.1, 0.2]),
            "price": st.floats(1.0990, 1.1010),
            "magic": st.sampled_from([777, None]),
            "position_id": st.one_of(st.none(), st.integers(1, 14)),
        }
    ),
    max_size=12,
)


@settings(max_examples=80, deadline=None)
@given(_positions, _expected, st.sampled_from([0, 2]))
def test_never_a_double_match_and_everything_accounted(
    positions: list[dict[str, Any]], expected: list[dict[str, Any]], mode: int
) -> None:
    pos = frame(
        "positions",
        [{"login": 1, "ticket": i + 1, "time": EARLIER - timedelta(seconds=i), **p} for i, p in enumerate(positions)],
    )
    exp = frame("expected_trades", [{"login": 1, "trade_id": f"t-{i + 1:06d}", **e} for i, e in enumerate(expected)])
    result = reconcile(
        accounts=frame("accounts", [{"login": 1, "margin_mode": mode}]),
        positions=pos,
        deals=frame("deals", []),
        symbols=symbols_for([1], ["EURUSD"]),
        expected_trades=exp,
        tolerances=Tolerances(),
    )
    matches = result.matches
    assert matches["trade_id"].n_unique() == matches.height, "a trade matched twice"
    if mode == 2:
        assert matches["ticket"].n_unique() == matches.height, "a position claimed twice"
        unknown = result.divergences.filter(pl.col("kind") == "unknown_position")
        missing = result.divergences.filter(pl.col("kind") == "missing_position")
        assert matches.height + unknown.height == pos.height, "every position is matched or unknown"
        assert matches.height + missing.height == exp.height, "every open trade is matched or missing"


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 6), st.integers(1, 6), st.floats(0, 10)), max_size=40))
def test_one_to_one_assignment_is_a_matching(pairs: list[tuple[int, int, float]]) -> None:
    candidates = pl.DataFrame(
        [{"login": 1, "trade_id": f"t{t}", "ticket": p, "score": s} for t, p, s in pairs],
        schema={"login": pl.Int64, "trade_id": pl.String, "ticket": pl.Int64, "score": pl.Float64},
    ).unique(["trade_id", "ticket"])
    chosen = one_to_one.assign(candidates)
    assert chosen["trade_id"].n_unique() == chosen.height
    assert chosen["ticket"].n_unique() == chosen.height
    # maximal: no candidate left whose both sides are still free
    free = candidates.join(chosen.select("trade_id"), on="trade_id", how="anti").join(
        chosen.select("ticket"), on="ticket", how="anti"
    )
    assert free.height == 0
    assert chosen.equals(one_to_one.assign(candidates.sample(fraction=1.0, shuffle=True, seed=1))), "deterministic"


# --- fleets of several logins and two instruments, the broker's EURUSD carrying a suffix ----------

LOGINS = [1, 2, 3]
BROKER_SYMBOL = {"EURUSD": "EURUSD.m", "USDJPY": "USDJPY"}  # bot's name -> broker's name
NORMALIZED = {broker: bot for bot, broker in BROKER_SYMBOL.items()}
PIP = {"EURUSD": 0.0001, "USDJPY": 0.01}
BASE = {"EURUSD": 1.10000, "USDJPY": 150.000}
# few distinct values, so that ties, duplicates and near-misses are common
_OFFSET_PIPS = st.sampled_from([0.0, 0.0, 0.3, 3.0, 8.0, 30.0, -50.0, 150.0])
_VOLUME = st.sampled_from([0.05, 0.1, 0.1, 0.2])
_AGE_SECS = st.sampled_from([0, 0, 0, 30, 4000])  # before EARLIER: always past grace, sometimes out of the time window
_CLOSED_AT = EARLIER + timedelta(minutes=1)  # long before NOW, outside any grace window


def _price(symbol: str, offset_pips: float) -> float:
    return round(BASE[symbol] + offset_pips * PIP[symbol], 6)


_fleet_position = st.fixed_dictionaries(
    {
        "symbol": st.sampled_from(list(BASE)),
        "type": st.integers(0, 1),
        "volume": _VOLUME,
        "offset": _OFFSET_PIPS,
        "age": _AGE_SECS,
        "magic": st.sampled_from([0, 777, 777, 4242]),
        "reason": st.sampled_from([0, 3, 3]),
        "comment": st.sampled_from(["", "", "", "t-000001", "t-000002", "t-0000"]),
    }
)
_fleet_trade = st.fixed_dictionaries(
    {
        "symbol": st.sampled_from(list(BASE)),
        "side": st.sampled_from(["buy", "sell"]),
        "volume": _VOLUME,
        "offset": _OFFSET_PIPS,
        "age": _AGE_SECS,
        "magic": st.sampled_from([777, 777, None]),
        # None, an identifier that exists on the account (1..6 when the account has positions) or not
        "position_id": st.one_of(st.none(), st.none(), st.none(), st.integers(1, 9)),
        "closed": st.sampled_from([False, False, False, True]),
    }
)


@st.composite
def fleet(draw: st.DrawFn, modes: list[int], max_per_login: int = 6) -> dict[str, pl.DataFrame]:
    """Accounts (margin mode drawn from `modes`), positions with broker symbol names and bot trades
    with the bot's names; tickets and trade ids repeat across logins on purpose."""
    logins = draw(st.lists(st.sampled_from(LOGINS), min_size=1, max_size=3, unique=True))
    accounts, positions, trades = [], [], []
    for login in logins:
        accounts.append({"login": login, "margin_mode": draw(st.sampled_from(modes))})
        for ticket, p in enumerate(draw(st.lists(_fleet_position, max_size=max_per_login)), start=1):
            positions.append(
                {
                    "login": login,
                    "ticket": ticket,
                    "symbol": BROKER_SYMBOL[p["symbol"]],
                    "type": p["type"],
                    "volume": p["volume"],
                    "price_open": _price(p["symbol"], p["offset"]),
                    "time": EARLIER - timedelta(seconds=p["age"]),
                    "magic": p["magic"],
                    "reason": p["reason"],
                    "comment": p["comment"],
                }
            )
        for index, t in enumerate(draw(st.lists(_fleet_trade, max_size=max_per_login)), start=1):
            trades.append(
                {
                    "login": login,
                    "trade_id": f"t-{index:06d}",
                    "symbol": t["symbol"],
                    "side": t["side"],
                    "volume": t["volume"],
                    "price": _price(t["symbol"], t["offset"]),
                    "opened_at": EARLIER - timedelta(seconds=t["age"]),
                    "closed_at": _CLOSED_AT if t["closed"] else None,
                    "magic": t["magic"],
                    "position_id": t["position_id"],
                }
            )
    return {
        "accounts": frame("accounts", accounts),
        "positions": frame("positions", positions),
        "symbols": symbols_for(logins, list(BROKER_SYMBOL.values())),
        "expected_trades": frame("expected_trades", trades),
    }


def _reconcile(frames: dict[str, pl.DataFrame]) -> ReconResult:
    return reconcile(**frames, deals=frame("deals", []), tolerances=Tolerances())


def _canonical(result: ReconResult) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Matches, divergences (by break id) and account stats as sorted rows, floats to 9 decimals
    (a sum over differently ordered rows may differ in the last bit, and that is not a difference)."""

    def rows(df: pl.DataFrame, key: list[str]) -> list[tuple[Any, ...]]:
        rounded = df.with_columns(pl.col(pl.Float64).round(9))
        return rounded.sort([*key, *[c for c in df.columns if c not in key]], nulls_last=True).rows()

    return (
        rows(result.matches, ["login", "trade_id", "ticket"]),
        rows(result.divergences, ["break_id"]),
        rows(result.account_stats, ["login"]),
    )


@settings(max_examples=60, deadline=None)
@given(fleet([0, 2]), st.randoms(use_true_random=False))
def test_results_do_not_depend_on_row_order(frames: dict[str, pl.DataFrame], rng: Any) -> None:
    """Shuffled positions and bot trades give the same matches and the same divergences, on hedging
    and netting accounts alike (ties are broken by documented keys, never by row position)."""
    shuffled = dict(frames)
    for name in ("positions", "expected_trades"):
        order = list(range(frames[name].height))
        rng.shuffle(order)
        shuffled[name] = frames[name][order]
    first, second = _canonical(_reconcile(frames)), _canonical(_reconcile(shuffled))
    assert first[0] == second[0], "matches depend on row order"
    assert first[1] == second[1], "divergences depend on row order"
    assert first[2] == second[2], "account stats depend on row order"


def test_exact_ties_are_broken_the_same_way_in_any_row_order() -> None:
    """Three identical positions and three identical trades (plus a tagged pair and a stray): every
    candidate scores the same, so only the documented tie-break (score, ticket, trade_id) decides."""
    positions = [{"login": 1, "ticket": t, "symbol": "EURUSD.m"} for t in (30, 10, 20)]
    positions.append({"login": 1, "ticket": 5, "symbol": "EURUSD.m", "comment": "t-000009", "price_open": 1.1003})
    positions.append({"login": 1, "ticket": 7, "symbol": "EURUSD.m", "magic": 0, "reason": 0})
    trades = [{"login": 1, "trade_id": f"t-00000{i}", "symbol": "EURUSD"} for i in (3, 1, 2, 9)]
    frames = {
        "accounts": frame("accounts", [{"login": 1}]),
        "positions": frame("positions", positions),
        "symbols": symbols_for([1], ["EURUSD.m"]),
        "expected_trades": frame("expected_trades", trades),
    }
    baseline = _canonical(_reconcile(frames))
    pairs = {(trade, ticket) for _, trade, ticket, *_ in baseline[0]}
    assert pairs == {("t-000001", 10), ("t-000002", 20), ("t-000003", 30), ("t-000009", 5)}, pairs
    for seed in range(8):
        shuffled = {
            **frames,
            "positions": frames["positions"].sample(fraction=1.0, shuffle=True, seed=seed),
            "expected_trades": frames["expected_trades"].sample(fraction=1.0, shuffle=True, seed=seed),
        }
        assert _canonical(_reconcile(shuffled)) == baseline, f"seed {seed}: tie broken differently"


@settings(max_examples=60, deadline=None)
@given(fleet([2]))
def test_hedging_every_position_and_open_trade_has_exactly_one_verdict(frames: dict[str, pl.DataFrame]) -> None:
    """On hedging accounts each broker position is matched or unknown, each open bot trade matched
    or missing — exactly one of them, across logins, the broker suffix and stale position ids."""
    result = _reconcile(frames)
    matches, found = result.matches, result.divergences
    assert set(matches["stage"].to_list()) <= {"identity", "tag", "fuzzy"}

    tickets = frames["positions"].select("login", "ticket").rows()
    verdicts_by_ticket = [
        *matches.select("login", "ticket").rows(),
        *found.filter(pl.col("kind") == "unknown_position").select("login", "ticket").rows(),
    ]
    for key in tickets:
        assert verdicts_by_ticket.count(key) == 1, f"position {key}: {verdicts_by_ticket.count(key)} verdicts"
    assert len(verdicts_by_ticket) == len(tickets), "a verdict for a position that does not exist"

    trades = frames["expected_trades"]
    open_ids = trades.filter(pl.col("closed_at").is_null()).select("login", "trade_id").rows()
    verdicts_by_trade = [
        *matches.select("login", "trade_id").rows(),
        *found.filter(pl.col("kind") == "missing_position").select("login", "trade_id").rows(),
    ]
    for key in open_ids:
        assert verdicts_by_trade.count(key) == 1, f"open trade {key}: {verdicts_by_trade.count(key)} verdicts"
    assert len(verdicts_by_trade) == len(open_ids), "a closed trade got a verdict"

    # a trade whose recorded position_id names an identifier on its account is settled by it alone
    identifiers = set(frames["positions"].select("login", "identifier").rows())
    by_identity = trades.filter(pl.col("closed_at").is_null() & pl.col("position_id").is_not_null())
    paired = dict(
        ((login, trade), ticket) for login, trade, ticket in matches.select("login", "trade_id", "ticket").rows()
    )
    for login, trade_id, position_id in by_identity.select("login", "trade_id", "position_id").rows():
        if (login, trade_id) in paired:
            assert paired[(login, trade_id)] == position_id, f"{login}/{trade_id} paired off its position_id"
        else:
            assert (login, position_id) not in identifiers or any(
                other == position_id for (lg, _), other in paired.items() if lg == login
            ), f"{login}/{trade_id}: its position {position_id} exists and is free, yet it is missing"


_netting_trade = st.fixed_dictionaries(
    {
        "symbol": st.sampled_from(list(BASE)),
        "side": st.sampled_from(["buy", "sell"]),
        "volume": _VOLUME,
        "offset": _OFFSET_PIPS,
        "magic": st.sampled_from([777, None]),
        "closed": st.sampled_from([False, False, False, True]),
    }
)
_netting_position = st.one_of(
    st.none(),
    st.fixed_dictionaries({"type": st.integers(0, 1), "volume": st.sampled_from([0.05, 0.1, 0.2, 0.3])}),
)


@st.composite
def netting_fleet(draw: st.DrawFn) -> dict[str, pl.DataFrame]:
    """Netting accounts hold at most one position per symbol; the bot's trades on a symbol may
    cancel out (a buy and a sell of the same volume)."""
    logins = draw(st.lists(st.sampled_from(LOGINS), min_size=1, max_size=3, unique=True))
    accounts, positions, trades = [], [], []
    for login in logins:
        accounts.append({"login": login, "margin_mode": 0})
        for ticket, symbol in enumerate(BASE, start=1):
            held = draw(_netting_position)
            if held is not None:
                positions.append(
                    {
                        "login": login,
                        "ticket": ticket,
                        "symbol": BROKER_SYMBOL[symbol],
                        "price_open": BASE[symbol],
                        "magic": draw(st.sampled_from([0, 777, 4242])),
                        **held,
                    }
                )
        for index, t in enumerate(draw(st.lists(_netting_trade, max_size=6)), start=1):
            trades.append(
                {
                    "login": login,
                    "trade_id": f"n-{index:06d}",
                    "symbol": t["symbol"],
                    "side": t["side"],
                    "volume": t["volume"],
                    "price": _price(t["symbol"], t["offset"]),
                    "magic": t["magic"],
                    "closed_at": _CLOSED_AT if t["closed"] else None,
                }
            )
    return {
        "accounts": frame("accounts", accounts),
        "positions": frame("positions", positions),
        "symbols": symbols_for(logins, list(BROKER_SYMBOL.values())),
        "expected_trades": frame("expected_trades", trades),
    }


@settings(max_examples=60, deadline=None)
@given(netting_fleet())
def test_netting_every_symbol_has_exactly_one_verdict(frames: dict[str, pl.DataFrame]) -> None:
    """Per login and instrument: the bot's open trades are all matched (stage netting) or the symbol
    is missing — neither only when they net to zero; the broker's symbol is matched or unknown."""
    result = _reconcile(frames)
    matches, found = result.matches, result.divergences
    assert set(matches["stage"].to_list()) <= {"netting"}
    break_ids = set(found["break_id"].to_list())
    open_trades = frames["expected_trades"].filter(pl.col("closed_at").is_null())

    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for trade in open_trades.iter_rows(named=True):
        groups.setdefault((trade["login"], trade["symbol"]), []).append(trade)
    matched_ids = set(matches.select("login", "trade_id").rows())
    matched_symbols = set()
    for (login, symbol), group in groups.items():
        net = sum((1 if t["side"] == "buy" else -1) * t["volume"] for t in group)
        in_matches = [(login, t["trade_id"]) in matched_ids for t in group]
        missing = f"{login}:missing_position:sym{symbol}" in break_ids
        where = f"login {login} {symbol} (net {net:+.2f}, matched {in_matches}, missing {missing})"
        if abs(net) < 1e-9:
            assert not any(in_matches) and not missing, f"a flat bot symbol got a verdict: {where}"
            continue
        assert all(in_matches) or not any(in_matches), f"only some trades of the symbol matched: {where}"
        assert all(in_matches) != missing, f"need exactly one of matched / missing: {where}"
        if all(in_matches):
            matched_symbols.add((login, symbol))

    held = {(login, NORMALIZED[symbol]) for login, symbol in frames["positions"].select("login", "symbol").rows()}
    assert matched_symbols <= held, "a symbol matched that the broker does not hold"
    for login, symbol in held:
        unknown = f"{login}:unknown_position:sym{symbol}" in break_ids
        assert ((login, symbol) in matched_symbols) != unknown, (
            f"broker symbol {symbol} on {login}: matched={(login, symbol) in matched_symbols}, unknown={unknown}"
        )
    unexplained = matched_ids - {(login, t["trade_id"]) for (login, _), g in groups.items() for t in g}
    assert not unexplained, f"matches for trades that are not open: {unexplained}"


# --- a difference exactly at a threshold gets the same verdict whatever the side or instrument ------

_INSTRUMENTS = {"EURUSD": (1.10000, 0.0001, 5), "USDJPY": (150.000, 0.01, 3), "XAUUSD": (2400.00, 0.01, 2)}


def _exactly_at_threshold(kind: str) -> dict[str, bool]:
    """variant -> whether a `kind` divergence came out, for a difference of exactly the default
    threshold (5 pips slippage, 10 pips SL/TP, 10 % volume) on prices and lots of the broker's grid."""
    variants: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for symbol, (base, pip, digits) in _INSTRUMENTS.items():
        for side in ("buy", "sell"):
            for sign in (1, -1):
                name = f"{symbol} {side} {'+' if sign > 0 else '-'}"
                common_pos = {"symbol": symbol, "type": 0 if side == "buy" else 1, "price_open": base}
                common_trade = {"symbol": symbol, "side": side, "price": base}
                level = {"sl_mismatch": ("sl", -50), "tp_mismatch": ("tp", 50)}
                if kind == "slippage":
                    variants[name] = ({**common_pos, "price_open": round(base + sign * 5 * pip, digits)}, common_trade)
                elif kind in level:
                    field, away = level[kind]
                    bot = round(base + away * pip, digits)
                    variants[name] = (
                        {**common_pos, field: round(bot + sign * 10 * pip, digits)},
                        {**common_trade, field: bot},
                    )
    if kind == "volume_mismatch":
        for lots in (0.1, 0.2, 0.5, 1.0):
            for sign in (1, -1):
                filled = round(lots * (1 + sign * 0.1), 2)
                variants[f"{lots} lots filled {filled}"] = ({"volume": filled}, {"volume": lots})
    verdicts = {}
    for name, (position, trade) in variants.items():
        result = reconcile(
            accounts=frame("accounts", [{"login": 1}]),
            positions=frame("positions", [{"login": 1, "ticket": 1, **position}]),
            deals=frame("deals", []),
            symbols=symbols_for([1], list(_INSTRUMENTS)),
            expected_trades=frame("expected_trades", [{"login": 1, "trade_id": "t1", **trade}]),
            tolerances=Tolerances(),
        )
        assert result.matches.height == 1, f"{name}: not matched"
        verdicts[name] = bool(result.divergences.filter(pl.col("kind") == kind).height)
    return verdicts


@pytest.mark.parametrize(
    ("kind", "description"),
    [
        ("slippage", "slippage of exactly 5 pips"),
        ("volume_mismatch", "volume off by exactly 10 %"),
        ("sl_mismatch", "SL off by exactly 10 pips"),
        ("tp_mismatch", "TP off by exactly 10 pips"),
    ],
)
def test_a_difference_exactly_at_the_threshold_is_within_tolerance(kind: str, description: str) -> None:
    """Thresholds are strict (a divergence is a difference OVER the threshold), and float noise from
    subtracting prices must not flag the exact threshold on one side or instrument and pass it on another."""
    verdicts = _exactly_at_threshold(kind)
    flagged = sorted(name for name, hit in verdicts.items() if hit)
    assert verdicts, description
    assert not flagged, f"{description}: flagged {flagged}"


_ids = st.text(alphabet="ab-0123", min_size=1, max_size=12)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 2), st.sampled_from([7, 8]), _ids), max_size=10, unique_by=lambda t: t[2]),
    st.lists(st.tuples(st.integers(1, 2), st.sampled_from([7, 8]), st.text(alphabet="ab-0123 ", max_size=16))),
)
def test_tag_pairs_equal_the_pairwise_tag_test(
    trades: list[tuple[int, int, str]], comments: list[tuple[int, int, str]]
) -> None:
    """The equality-join search finds exactly the pairs that testing every same-magic pair finds."""
    ids = pl.DataFrame(trades, schema={"login": pl.Int64, "magic": pl.Int64, "trade_id": pl.String}, orient="row")
    texts = pl.DataFrame(
        [(login, magic, comment, n) for n, (login, magic, comment) in enumerate(comments)],
        schema={"login": pl.Int64, "magic": pl.Int64, "comment": pl.String, "ticket": pl.Int64},
        orient="row",
    )
    brute = (
        ids.join(texts, on=["login", "magic"])
        .filter(tags.carries_tag(pl.col("comment"), pl.col("trade_id")))
        .select("login", "trade_id", "ticket")
    )
    found = tags.tag_pairs(ids, texts, "ticket")
    assert sorted(found.iter_rows()) == sorted(brute.iter_rows())
