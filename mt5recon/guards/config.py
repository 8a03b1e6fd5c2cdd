"""The guards' settings: one `[guards]` section of the fleet file."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from mt5recon.guards.drawdown import DrawdownGuardConfig
from mt5recon.guards.market import MarketGuardConfig
from mt5recon.guards.protect import ProtectConfig


class GuardConfig(BaseModel):
    """Drawdown levels per account, market thresholds per asset class and symbol, and the
    protective close (off unless an account is listed and a mode chosen)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    drawdown: DrawdownGuardConfig = DrawdownGuardConfig()
    market: MarketGuardConfig = MarketGuardConfig()
    protect: ProtectConfig = ProtectConfig()
