"""Accounts split over shards: every account in exactly one shard, stable across processes,
pinned shards honoured, and every bot row owned by exactly one shard."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mt5recon.fleet import AccountConfig, ConnectorConfig, ExpectedTradesSource, FleetConfig
from mt5recon.sharding import shard_expected_trades, shard_fleet, shard_of, shard_scope


def _fleet(logins: list[int], pinned: dict[int, int] | None = None) -> FleetConfig:
    accounts = tuple(
        AccountConfig(login=login, server="S", connector=ConnectorConfig(kind="sim"), shard=(pinned or {}).get(login))
        for login in logins
    )
    return FleetConfig(name="desk", accounts=accounts, expected_trades=ExpectedTradesSource(kind="sim"))


@given(
    logins=st.lists(st.integers(1, 10**9), min_size=1, max_size=60, unique=True),
    shards=st.integers(1, 5),
    stray=st.lists(st.integers(1, 10**9), max_size=5),
)
def test_every_account_and_every_bot_row_in_exactly_one_shard(logins: list[int], shards: int, stray: list[int]) -> None:
    fleet = _fleet(logins)
    parts = [shard_fleet(fleet, shard, shards) for shard in range(shards)]
    assigned = [a.login for part in parts for a in part.accounts]
    assert sorted(assigned) == sorted(logins), "each account once"
    rows = pl.DataFrame({"login": [str(x) for x in logins + stray] + ["not-a-login", None], "trade_id": None})
    owned = [shard_expected_trades(rows, shard_scope(fleet, shard, shards)).height for shard in range(shards)]
    assert sum(owned) == rows.height, f"bot rows per shard {owned}: each row owned once, unknown logins too"


def test_the_shard_of_a_login_is_stable_and_pinning_wins() -> None:
    fleet = _fleet([5001, 5002, 5003], pinned={5003: 1})
    assert [shard_of(a, 4) for a in fleet.accounts][:2] == [shard_of(a, 4) for a in _fleet([5001, 5002]).accounts]
    assert shard_of(fleet.accounts[2], 2) == 1
    with pytest.raises(ValueError, match="pinned to shard 1 of only 1"):
        shard_of(fleet.accounts[2], 1)
    part = shard_fleet(fleet, 1, 2)
    assert part.name == "desk-shard1of2" and 5003 in [a.login for a in part.accounts]
    with pytest.raises(ValueError, match="shard must be in"):
        shard_fleet(fleet, 2, 2)
