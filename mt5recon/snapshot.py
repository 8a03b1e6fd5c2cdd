"""A fleet snapshot: the six MT5 frames of one fetch, for any number of accounts."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import polars as pl

from mt5recon import frames


@dataclass(frozen=True)
class Snapshot:
    accounts: pl.DataFrame = field(default_factory=lambda: frames.empty("accounts"))
    positions: pl.DataFrame = field(default_factory=lambda: frames.empty("positions"))
    orders: pl.DataFrame = field(default_factory=lambda: frames.empty("orders"))
    deals: pl.DataFrame = field(default_factory=lambda: frames.empty("deals"))
    ticks: pl.DataFrame = field(default_factory=lambda: frames.empty("ticks"))
    symbols: pl.DataFrame = field(default_factory=lambda: frames.empty("symbols"))
    # login -> what failed, for operators; the *_ok flags in `accounts` carry it into the data
    errors: dict[int, str] = field(default_factory=dict)
    # login -> the terminal's last_error() code of its first failed call (see terminal.errors)
    error_codes: dict[int, int] = field(default_factory=dict)
    # per terminal: connected, latency, data age (frames.HEALTH); not one of the MT5 frames
    health: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=frames.HEALTH))

    def frames(self) -> dict[str, pl.DataFrame]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name in frames.SNAPSHOT_FRAMES}

    @classmethod
    def concat(cls, parts: list[Snapshot]) -> Snapshot:
        """Stack per-account snapshots; each frame keeps its declared dtypes even when empty."""
        if not parts:
            return cls()
        merged = {name: pl.concat([p.frames()[name] for p in parts], how="vertical") for name in frames.SNAPSHOT_FRAMES}
        errors = {login: err for p in parts for login, err in p.errors.items()}
        codes = {login: code for p in parts for login, code in p.error_codes.items()}
        health = pl.concat([p.health for p in parts], how="vertical")
        return cls(**merged, errors=errors, error_codes=codes, health=health)
