"""Reconciliation tolerances: one typed config, a default plus per-symbol overrides, units in names."""

from __future__ import annotations

from typing import Self

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator


class Tolerance(BaseModel):
    """Thresholds for one symbol. Matching windows are deliberately wider than divergence thresholds:
    a 5-pip slip or a 50 % partial fill must be a matched pair with a divergence, never a false
    unknown + missing pair."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    slippage_pips: float = Field(default=5.0, ge=0)
    volume_pct: float = Field(default=10.0, ge=0)
    sl_pips: float = Field(default=10.0, ge=0)
    tp_pips: float = Field(default=10.0, ge=0)
    match_window_pips: float = Field(default=100.0, gt=0)
    match_volume_ratio: float = Field(
        default=10.0, gt=1, description="fuzzy match accepts volume within x/ratio..x*ratio"
    )
    match_window_secs: float = Field(default=3600.0, gt=0, description="fuzzy match: open-time distance")
    grace_secs: float = Field(
        default=15.0, ge=0, description="no missing/unknown verdict this soon after the bot acted"
    )

    @model_validator(mode="after")
    def _match_wider_than_thresholds(self) -> Self:
        if self.match_window_pips <= max(self.slippage_pips, self.sl_pips, self.tp_pips):
            raise ValueError(
                f"match_window_pips ({self.match_window_pips}) must be wider than the slippage/SL/TP "
                "thresholds, or slipped trades surface as false unknown + missing pairs"
            )
        if (self.match_volume_ratio - 1) * 100 <= self.volume_pct:
            raise ValueError(
                f"match_volume_ratio ({self.match_volume_ratio}) must admit more than volume_pct "
                f"({self.volume_pct} %), or partial fills surface as false unknown + missing pairs"
            )
        return self


TOLERANCE_COLUMNS = tuple(Tolerance.model_fields)


class Tolerances(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    default: Tolerance = Tolerance()
    symbols: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="normalized symbol -> fields overriding the default"
    )

    @model_validator(mode="after")
    def _overrides_valid(self) -> Self:
        for symbol in self.symbols:
            self.for_symbol(symbol)
        return self

    def for_symbol(self, symbol: str) -> Tolerance:
        override = self.symbols.get(symbol)
        if not override:
            return self.default
        return Tolerance.model_validate({**self.default.model_dump(), **override})

    def widest_grace_secs(self) -> float:
        """The longest grace of any symbol: a trade closed longer ago than this is history for all."""
        return max([self.default.grace_secs, *(self.for_symbol(s).grace_secs for s in self.symbols)])

    def frame(self, symbols: list[str]) -> pl.DataFrame:
        """One row per symbol with every tolerance column, for vectorized joins."""
        rows = [{"norm_symbol": s, **self.for_symbol(s).model_dump()} for s in sorted(set(symbols))]
        schema = {"norm_symbol": pl.String(), **{k: pl.Float64() for k in Tolerance.model_fields}}
        return pl.DataFrame(rows, schema=schema)


class BreakPolicy(BaseModel):
    """How divergences become breaks: confirmation before accusing, and when data is too old."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    confirm_observations: int = Field(
        default=2, ge=1, description="consecutive good snapshots before a missing/unknown break opens"
    )
    stale_after_secs: float = Field(
        default=30.0, gt=0, description="a snapshot older than this at the cycle's time is stale, not reconciled"
    )
    stale_data_after_secs: float | None = Field(
        default=300.0,
        gt=0,
        description="a terminal whose newest quote is older than this is stale, not reconciled; "
        "null turns the check off (e.g. for a fleet that must reconcile while its markets are closed)",
    )
