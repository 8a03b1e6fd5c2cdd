"""Accounts split over shards, so several workers reconcile one fleet into one store.

An account's shard is pinned in the fleet file (`shard = 1`) or derived from a stable hash of
its login, the same on every machine and run. Each shard is its own fleet (`<name>-shard<i>of<n>`:
its own cycle ids, breaker book and market-guard state) and owns its accounts' rows; all shards
commit to one DuckLake, whose Postgres catalog arbitrates the writers.
"""

from __future__ import annotations

import zlib

import polars as pl

from mt5recon.fleet import AccountConfig, FleetConfig
from mt5recon.store.stored_state import Scope


def shard_of(account: AccountConfig, shards: int) -> int:
    """The account's shard: pinned, else crc32 of its login (stable across processes and runs)."""
    if account.shard is not None:
        if account.shard >= shards:
            raise ValueError(f"account {account.login} is pinned to shard {account.shard} of only {shards}")
        return account.shard
    return zlib.crc32(str(account.login).encode()) % shards


def shard_fleet(fleet: FleetConfig, shard: int, shards: int) -> FleetConfig:
    """The part of `fleet` that shard `shard` of `shards` reconciles."""
    if shards < 1 or not 0 <= shard < shards:
        raise ValueError(f"shard must be in 0..{shards - 1}, got {shard} of {shards}")
    if shards == 1:
        return fleet
    mine = tuple(a for a in fleet.accounts if shard_of(a, shards) == shard)
    return fleet.model_copy(update={"name": f"{fleet.name}-shard{shard}of{shards}", "accounts": mine})


def shard_scope(fleet: FleetConfig, shard: int, shards: int) -> Scope:
    """The stored state shard `shard` owns (see Scope); the whole fleet's when unsharded."""
    part = shard_fleet(fleet, shard, shards)
    if shards == 1:
        return Scope(name=fleet.name)
    if shard > 0:
        return Scope(name=part.name, trade_logins=tuple(a.login for a in part.accounts))
    others = tuple(a.login for a in fleet.accounts if shard_of(a, shards) != 0)
    return Scope(name=part.name, foreign_logins=others)


def shard_expected_trades(expected_raw: pl.DataFrame, scope: Scope) -> pl.DataFrame:
    """The bot's rows this shard owns; a row whose login cannot be read goes to the first shard,
    whose validation quarantines it (once)."""
    if "login" not in expected_raw.columns:
        return expected_raw if scope.trade_logins is None else expected_raw.clear()
    login = pl.col("login").cast(pl.Int64, strict=False)
    return scope.owns_trades(expected_raw, login)
