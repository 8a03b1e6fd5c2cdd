"""Tunable behaviour of the fleet: how the bot trades and how often each scenario happens.

Frozen dataclasses so a fleet's behaviour is a value: `ScenarioRates.zero()` gives a calm
fleet where a test turns exactly one knob; the defaults make the demo fleet show every
scenario now and then.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class BotConfig:
    """The simulated EA: how often it trades, how long it holds, what it writes down."""

    active: bool = True  # opens and closes on its own (knobs work either way)
    opens_per_hour: float = 50.0
    hold_secs: tuple[float, float] = (300.0, 5400.0)
    volumes: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.1, 0.2, 0.3, 0.5, 1.0)
    no_sl_prob: float = 0.2  # share of trades without SL (0.0 at the broker, null in the contract)
    no_tp_prob: float = 0.25
    limit_order_prob: float = 0.1  # share of entries placed as limit orders
    limit_expiry_secs: float = 900.0
    record_position_id_prob: float = 0.85  # the bot writes down the broker identifier
    notice_delay_secs: tuple[float, float] = (20.0, 90.0)  # until the bot sees a broker close
    keep_closed_secs: float = 86_400.0  # closed trades older than this leave memory (not SQLite)
    backfill_hedging: int = 55  # trades of the hour before start (most still open)
    backfill_netting: int = 12


@dataclass(frozen=True, slots=True)
class ScenarioRates:
    """How often each scenario happens on its own (per account per hour unless noted)."""

    slippage: float = 0.05  # share of bot market entries filled 1-8 pips away (either sign)
    partial_fill: float = 0.02  # share of bot market entries partially filled
    manual_trade_per_hour: float = 0.15
    foreign_ea_per_hour: float = 0.1
    manual_close_per_hour: float = 0.15  # someone closes a bot position by hand
    broker_sltp_edit_per_hour: float = 0.15
    ticket_change_per_hour: float = 0.05
    deposit_per_hour: float = 0.03
    withdrawal_per_hour: float = 0.03
    drawdown_per_hour: float = 0.01  # adverse market move costing 1-4 % of equity
    stop_out_per_hour: float = 0.01  # forced liquidation of one position (reason SO)
    disconnect_per_hour: float = 0.1  # 10 s - 3 min
    timeout_per_hour: float = 0.2  # next call times out
    none_snapshot_per_hour: float = 0.2  # next positions/orders/deals call returns None
    malformed_per_hour: float = 0.1  # next 1-3 positions_get answers carry a bad row
    gap_per_hour: float = 0.03  # per symbol: the mid jumps 0.3-2 %
    spread_blowout_per_hour: float = 0.08  # per symbol: spread x3-x10 for 10 s - 2 min

    @classmethod
    def zero(cls) -> ScenarioRates:
        return cls(**{f.name: 0.0 for f in fields(cls)})
