"""The fleet: which accounts, reached through which connector, with which tolerances.

One TOML file (the embedded demo by default) plus environment; secrets are references
(`env:VAR` or `secret:prefect-block-name`), never values in the file.
"""

from __future__ import annotations

import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Literal, Self, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mt5recon.guards.config import GuardConfig
from mt5recon.store.housekeeping import Retention
from mt5recon.terminal.breaker import BreakerPolicy
from mt5recon.terminal.session import ReconnectPolicy
from mt5recon.tolerances import BreakPolicy, Tolerances


class ConnectorConfig(BaseModel):
    """How to reach one terminal."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["metatrader5", "bridge", "sim"]
    host: str = "127.0.0.1"
    port: int = 18812
    path: str | None = Field(default=None, description="terminal64.exe path (metatrader5 kind)")
    module: str = Field(
        default="MetaTrader5", description="metatrader5 kind: the package each terminal's worker process hosts"
    )
    connect_timeout_secs: float = 5.0
    call_timeout_secs: float = 10.0


class AccountConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    login: int = Field(gt=0)
    server: str
    password: str | None = Field(default=None, description="a reference: env:VAR or secret:block-name")
    connector: ConnectorConfig
    server_offset_secs: int = Field(default=0, description="broker server clock minus UTC, e.g. 7200 for GMT+2")
    watch_symbols: tuple[str, ...] = ()
    shard: int | None = Field(default=None, ge=0, description="pin to a shard (else a stable hash of the login)")

    @field_validator("password")
    @classmethod
    def _reference_only(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("env:", "secret:")):
            raise ValueError("password must be a reference (env:VAR or secret:block-name), never the secret itself")
        return value


class ExpectedTradesSource(BaseModel):
    """Where the bot writes what it expects.

    `store` is the pipeline's own store: the bot writes its table `expected_trades` through
    `mt5recon.store.bot_writer.write_expected_trades`, the pipeline reads it read-only. It takes
    no path, dsn or table (the store is the one the pipeline is configured with); `query`, if
    given, runs on the read-only store connection instead of reading the whole table.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["sqlite", "postgres", "parquet", "csv", "sim", "store"]
    path: str | None = None
    dsn: str | None = Field(default=None, description="postgres: a reference env:VAR or a DSN without password")
    table: str = "expected_trades"
    query: str | None = None

    @model_validator(mode="after")
    def _store_takes_no_location(self) -> Self:
        if self.kind == "store":
            given = [name for name in ("path", "dsn") if getattr(self, name) is not None]
            if self.table != "expected_trades":
                given.append("table")
            if given:
                raise ValueError(
                    f"expected_trades kind 'store' reads the pipeline's own store; drop {', '.join(given)}"
                )
        return self


class SimulatorConfig(BaseModel):
    """A simulated fleet that whoever runs the pipeline hosts behind the bridge."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    seed: int = 7
    accounts: int = 10


class FleetConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "fleet"
    accounts: tuple[AccountConfig, ...]
    expected_trades: ExpectedTradesSource
    tolerances: Tolerances = Tolerances()
    # broker symbol -> instrument, where the default suffix rules (EURUSD.m, #EURUSD, EURUSDpro) fall short
    symbol_map: dict[str, str] = Field(default_factory=dict)
    breaks: BreakPolicy = BreakPolicy()
    # per terminal: open after repeated failures, probe again after a (doubling) cooldown
    breaker: BreakerPolicy = BreakerPolicy()
    # per terminal session: wait between failed logins, doubling with jitter
    reconnect: ReconnectPolicy = ReconnectPolicy()
    # a terminal still answering after this long is this cycle's timeout, so one hung terminal
    # never holds up the others or the 10-second cadence
    fetch_deadline_secs: float = Field(default=6.0, gt=0)
    # store retention per table and time-travel window, applied by the housekeeping flow
    housekeeping: Retention = Retention()
    simulator: SimulatorConfig = SimulatorConfig()
    # risk guards: drawdown levels, market thresholds, protective close (off by default)
    guards: GuardConfig = GuardConfig()
    deals_lookback_secs: int = Field(default=6 * 3600, gt=0)
    # deals reach back to the bot's oldest open trade, but never further than this
    deals_max_lookback_secs: int = Field(default=7 * 86400, gt=0)
    # deals already fetched are kept between cycles (mt5recon.deal_cache): a terminal is asked from
    # its last answer minus this overlap, and for the whole window every `deals_full_refresh_secs`
    # (0: always the whole window)
    deals_overlap_secs: int = Field(default=60, ge=0)
    deals_full_refresh_secs: int = Field(default=3600, ge=0)


def resolve_reference(reference: str) -> str:
    """Turn `env:VAR` / `secret:block` into the secret value, at connect time only."""
    scheme, _, name = reference.partition(":")
    if scheme == "env":
        value = os.environ.get(name)
        if value is None:
            raise LookupError(f"environment variable {name} is not set")
        return value
    if scheme == "secret":
        from prefect.blocks.system import Secret  # only when the fleet uses Prefect secrets

        block = cast(Secret[str], Secret.load(name))
        return str(block.get())
    raise ValueError(f"unknown secret reference scheme {scheme!r}")


def demo_fleet_path() -> Path:
    return Path(str(resources.files("mt5recon").joinpath("demo_fleet.toml")))


def load_fleet(path: Path | None = None) -> FleetConfig:
    """Read a fleet file; relative paths inside it are resolved by the caller against the home folder."""
    source = path or demo_fleet_path()
    with open(source, "rb") as handle:
        return FleetConfig.model_validate(tomllib.load(handle))
