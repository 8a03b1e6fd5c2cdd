"""Properties of matching that must hold for any input: never a double match, every position
and every open trade accounted for exactly once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl
from builders import EARLIER, frame, symbols_for
from hypothesis import given, settings
from hypothesis import strategies as st

from mt5recon.recon import one_to_one
from mt5recon.recon.engine import reconcile
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
