"""The per-account handle: the broker's truth of one login and every knob a test can turn.

Knobs act "now" (after bringing the world up to the clock) and leave the evidence a real
broker would: deals with the right reason, changed tickets, balance deals, and so on.
Failure knobs change only what the terminal answers. `ref` arguments take a position
ticket or identifier (int) or a bot trade id (str).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from mt5recon.terminal import constants as c
from mt5recon.terminal.records import AccountInfo, TradeDeal, TradeOrder, TradePosition
from mt5recon.terminal.simulator._sync import synced
from mt5recon.terminal.simulator.book import AccountSpec, Book, Position
from mt5recon.terminal.simulator.bot import Bot
from mt5recon.terminal.simulator.expected import expected_frame
from mt5recon.terminal.simulator.faults import (
    MALFORMED_KINDS,
    SNAPSHOT_CALLS,
    Fault,
    Faults,
)

if TYPE_CHECKING:
    from mt5recon.terminal.simulator.fleet import SimFleet

MANUAL_REASONS = (c.DEAL_REASON_CLIENT, c.DEAL_REASON_MOBILE, c.DEAL_REASON_WEB)


class SimAccount:
    def __init__(self, fleet: SimFleet, spec: AccountSpec, book: Book, bot: Bot) -> None:
        self._fleet = fleet
        self.spec = spec
        self.login = spec.login
        self.book = book
        self.bot = bot
        self.faults = Faults()

    @property
    def fleet(self) -> SimFleet:
        return self._fleet

    def __repr__(self) -> str:
        mode = "hedging" if self.spec.hedging else "netting"
        return f"SimAccount({self.login}, {self.spec.server}, {mode}, {len(self.book.positions)} open)"

    # -- broker truth (UTC times, no faults) ---------------------------------------------------
    @synced
    def info(self) -> AccountInfo:
        return self.book.account_record()

    @synced
    def positions(self) -> tuple[TradePosition, ...]:
        return tuple(self.book.position_record(p) for p in self.book.positions.values())

    @synced
    def orders(self) -> tuple[TradeOrder, ...]:
        return tuple(self.book.order_record(o) for o in self.book.orders.values())

    @synced
    def deals(self) -> tuple[TradeDeal, ...]:
        return tuple(self.book.deals)

    @synced
    def position(self, ref: int | str) -> TradePosition | None:
        pos = self._find(ref)
        return None if pos is None else self.book.position_record(pos)

    @synced
    def expected_trades(self) -> pl.DataFrame:
        return expected_frame(self.bot.trades.values())

    @property
    def symbols(self) -> list[str]:
        """The broker's symbol names on this account."""
        return list(self.book.quotes)

    def _find(self, ref: int | str) -> Position | None:
        if isinstance(ref, str):
            tr = self.bot.trades.get(ref)
            return None if tr is None else self.bot.position_of(tr)
        return self.book.by_ticket(ref) or self.book.positions.get(ref)

    def _resolve(self, ref: int | str) -> Position:
        pos = self._find(ref)
        if pos is None:
            raise KeyError(f"no open position {ref!r} on account {self.login}")
        return pos

    def _broker_symbol(self, symbol: str | None) -> str:
        quotes = self.book.quotes
        if symbol is None:
            return self._fleet.knob_rng.choice(list(quotes))
        for name in (symbol, symbol + self.spec.symbol_suffix):
            if name in quotes:
                return name
        raise KeyError(f"account {self.login} has no symbol {symbol!r}")

    # -- the bot -------------------------------------------------------------------------------
    @property
    def bot_active(self) -> bool:
        return self.bot.active

    @bot_active.setter
    def bot_active(self, active: bool) -> None:
        with self._fleet.lock:
            self._fleet.sync()
            self.bot.active = active

    def set_notice_delay(self, seconds: float | None) -> None:
        """Fix how long the bot takes to notice a broker-side close (None: its random habit)."""
        self.bot.notice_delay = seconds

    @synced
    def bot_open(
        self,
        symbol: str | None = None,
        side: str | None = None,
        volume: float | None = None,
        *,
        slippage_pips: float = 0.0,
        fill_ratio: float = 1.0,
        sl_pips: float | None = None,
        tp_pips: float | None = None,
        record_position_id: bool | None = None,
        hold_secs: float | None = None,
    ) -> str:
        """The bot opens at market; returns its trade id. sl_pips/tp_pips: 0 none, None its habit."""
        if not 0.0 < fill_ratio <= 1.0:
            raise ValueError("fill_ratio must be in (0, 1]")
        tr = self.bot.open_trade(
            self._fleet.event_ms(),
            self._fleet.knob_rng,
            symbol=symbol,
            side=side,
            volume=volume,
            slippage_pips=slippage_pips,
            fill_ratio=fill_ratio,
            sl_pips=sl_pips,
            tp_pips=tp_pips,
            record_position_id=record_position_id,
            hold_secs=hold_secs,
        )
        return tr.trade_id

    @synced
    def bot_limit(
        self,
        symbol: str | None = None,
        side: str | None = None,
        volume: float | None = None,
        *,
        distance_pips: float = 10.0,
        expiry_secs: float | None = None,
    ) -> int:
        """The bot places a limit entry; returns the pending order's ticket."""
        return self.bot.place_limit(
            self._fleet.event_ms(),
            self._fleet.knob_rng,
            symbol=symbol,
            side=side,
            volume=volume,
            distance_pips=distance_pips,
            expiry_secs=expiry_secs,
        )

    @synced
    def bot_close(self, trade_id: str) -> None:
        self.bot.close_trade(self.bot.trades[trade_id], self._fleet.event_ms())

    # -- other traders on the account ------------------------------------------------------------
    def _market_open(
        self,
        symbol: str | None,
        side: str | None,
        volume: float,
        *,
        magic: int,
        reason: int,
        sl: float,
        tp: float,
        comment: str,
    ) -> int:
        name = self._broker_symbol(symbol)
        side = side or self._fleet.knob_rng.choice(("buy", "sell"))
        q = self.book.quotes[name]
        buy = side == "buy"
        fill = self.book.open_or_net(
            name,
            c.ORDER_TYPE_BUY if buy else c.ORDER_TYPE_SELL,
            volume,
            q.ask if buy else q.bid,
            self._fleet.event_ms(),
            magic=magic,
            reason=reason,
            comment=comment,
            sl=sl,
            tp=tp,
        )
        return fill.position.ticket if fill.position is not None else fill.order

    @synced
    def manual_open(
        self,
        symbol: str | None = None,
        side: str | None = None,
        volume: float = 0.1,
        *,
        reason: int = c.DEAL_REASON_CLIENT,
        sl: float = 0.0,
        tp: float = 0.0,
        comment: str = "",
    ) -> int:
        """A human trades from desktop/mobile/web (magic 0); returns the position ticket."""
        if reason not in MANUAL_REASONS:
            raise ValueError("a manual trade's reason is CLIENT, MOBILE or WEB")
        return self._market_open(symbol, side, volume, magic=0, reason=reason, sl=sl, tp=tp, comment=comment)

    @synced
    def foreign_ea_open(
        self,
        symbol: str | None = None,
        side: str | None = None,
        volume: float = 0.1,
        *,
        magic: int = 777_001,
        comment: str = "grid EA",
    ) -> int:
        """Another EA on the same account (other magic, reason EXPERT); returns the position ticket."""
        return self._market_open(
            symbol, side, volume, magic=magic, reason=c.DEAL_REASON_EXPERT, sl=0.0, tp=0.0, comment=comment
        )

    @synced
    def manual_close(self, ref: int | str, *, reason: int = c.DEAL_REASON_CLIENT, volume: float | None = None) -> int:
        """A human closes (part of) a position; returns the exit deal ticket."""
        if reason not in MANUAL_REASONS:
            raise ValueError("a manual close's reason is CLIENT, MOBILE or WEB")
        pos = self._resolve(ref)
        fill = self.book.close(
            pos, volume or pos.volume, pos.market_exit(), self._fleet.event_ms(), reason=reason, magic=0
        )
        return fill.deal

    # -- the broker --------------------------------------------------------------------------------
    def _close_by_level(self, ref: int | str, reason: int) -> int:
        pos = self._resolve(ref)
        level = pos.sl if reason == c.DEAL_REASON_SL else pos.tp
        if not level:  # no level set: the broker's own stop at the current price
            level = pos.market_exit()
            if reason == c.DEAL_REASON_SL:
                pos.sl = level
            else:
                pos.tp = level
        return self.book.close_by_level(pos, reason, self._fleet.event_ms(), at_level=True).deal

    @synced
    def close_by_sl(self, ref: int | str) -> int:
        """The position is stopped out at its SL (reason SL, comment `[sl …]`); returns the deal."""
        return self._close_by_level(ref, c.DEAL_REASON_SL)

    @synced
    def close_by_tp(self, ref: int | str) -> int:
        return self._close_by_level(ref, c.DEAL_REASON_TP)

    @synced
    def stop_out(self, count: int | None = 1) -> list[int]:
        """Forced liquidation, biggest loser first (reason SO); count None: everything."""
        return [f.deal for f in self.book.stop_out(self._fleet.event_ms(), count)]

    @synced
    def edit_sltp(
        self, ref: int | str, *, sl: float | None = None, tp: float | None = None, shift_pips: float = 10.0
    ) -> tuple[float, float]:
        """SL/TP changed at the broker, not by the bot. Without sl/tp: the SL moves shift_pips away."""
        pos = self._resolve(ref)
        spec = pos.quote.spec
        if sl is None and tp is None:
            sign = 1.0 if pos.buy else -1.0
            anchor = pos.sl or pos.market_exit() - sign * 5 * shift_pips * spec.pip
            sl = round(anchor - sign * shift_pips * spec.pip, spec.digits)
        new_sl = pos.sl if sl is None else sl
        new_tp = pos.tp if tp is None else tp
        self.book.modify(pos, new_sl, new_tp, self._fleet.event_ms())
        return new_sl, new_tp

    @synced
    def change_ticket(self, ref: int | str) -> int:
        """The server re-opens the position under a new ticket (identifier unchanged)."""
        return self.book.change_ticket(self._resolve(ref), self._fleet.event_ms())

    @synced
    def set_comment_policy(
        self, *, max_len: int = 31, template: str = "{comment}", apply_to_open: bool = False
    ) -> None:
        """The broker cuts comments to max_len and/or rewrites them (`{comment}` is the original)."""
        self.book.comment_max_len, self.book.comment_template = max_len, template
        if apply_to_open:
            for p in self.book.positions.values():
                p.comment = self.book.broker_comment(p.comment)

    @synced
    def deposit(self, amount: float, comment: str = "Deposit") -> int:
        return self.book.balance_op(abs(amount), self._fleet.event_ms(), comment).ticket

    @synced
    def withdraw(self, amount: float, comment: str = "Withdrawal") -> int:
        return self.book.balance_op(-abs(amount), self._fleet.event_ms(), comment).ticket

    @synced
    def add_credit(self, amount: float, comment: str = "Credit") -> int:
        return self.book.balance_op(amount, self._fleet.event_ms(), comment, c.DEAL_TYPE_CREDIT).ticket

    @synced
    def drawdown(self, pct: float, *, max_move_pct: float | None = None) -> str:
        """Equity falls ~pct % through an adverse move of the symbol that needs the smallest move.

        It is a market move: every account holding that symbol feels it (and stops may fire on
        the next step). max_move_pct caps the move, so the fall may then be smaller. Returns the
        broker's name of the symbol moved.
        """
        exposure: dict[str, float] = {}
        for p in self.book.positions.values():
            q = p.quote
            signed = p.volume * q.spec.contract_size * q.profit_rate
            exposure[p.symbol] = exposure.get(p.symbol, 0.0) + (signed if p.buy else -signed)
        exposure = {s: e for s, e in exposure.items() if abs(e) > 1e-9}
        if not exposure:
            raise ValueError(f"account {self.login} has no exposure to move against")
        quotes = self.book.quotes
        name = max(exposure, key=lambda s: abs(exposure[s]) * quotes[s].mid)
        q = quotes[name]
        equity, _, _ = self.book.margin_level()
        move = equity * pct / 100.0 / abs(exposure[name])
        if max_move_pct is not None:
            move = min(move, q.mid * max_move_pct / 100.0)
        new_mid = q.mid - move if exposure[name] > 0 else q.mid + move
        self._fleet.market.set_mid(q.spec.name, max(new_mid, q.mid * 0.2), self._fleet.event_ms())
        return name

    # -- terminal failures --------------------------------------------------------------------------
    @synced
    def disconnect(self, seconds: float | None = None) -> None:
        """The terminal loses its server: calls fail with -10004, terminal_info().connected is False."""
        self.faults.disconnect(self._fleet.now_s(), seconds)

    @synced
    def reconnect(self) -> None:
        self.faults.disconnected_until = None

    def fail_timeout(self, calls: int | None = 1, *, delay_secs: float = 0.0, methods: set[str] | None = None) -> None:
        """Calls return None/False with -10005 after delay_secs (simulated time with a SimClock)."""
        self.faults.timeout = Fault(calls, frozenset(methods) if methods else None, delay_secs)

    def slow_down(self, delay_secs: float, *, calls: int | None = None, methods: set[str] | None = None) -> None:
        """Every call (or those in `methods`) answers `delay_secs` late, as over a slow IPC link or
        a busy terminal; the answer itself is right. `delay_secs=0` makes the link fast again."""
        self.faults.latency = Fault(calls, frozenset(methods) if methods else None, delay_secs) if delay_secs else None

    def fail_auth(self, calls: int | None = 1) -> None:
        """The broker refuses the account: a live session is logged out (calls fail with
        RES_E_AUTH_FAILED, -6) and initialize(login=…)/login() fail the same way."""
        self.faults.auth = Fault(calls, frozenset({"initialize", "login"}))

    def fail_snapshot(self, calls: int | None = 1, *, methods: set[str] | None = None) -> None:
        """positions_get/orders_get/history_deals_get return None with RES_E_FAIL."""
        chosen = frozenset(methods) if methods else SNAPSHOT_CALLS
        if not chosen <= SNAPSHOT_CALLS:
            raise ValueError(f"snapshot failures apply to {sorted(SNAPSHOT_CALLS)}")
        self.faults.snapshot = Fault(calls, chosen)

    def malform(self, kind: str, calls: int | None = 1) -> None:
        """positions_get rows carry a bad value: one of MALFORMED_KINDS."""
        if kind not in MALFORMED_KINDS:
            raise ValueError(f"kind must be one of {MALFORMED_KINDS}")
        if kind == "unknown_symbol" and not self.faults.unknown_ticket:
            with self._fleet.lock:
                self.faults.unknown_ticket = self._fleet.tickets.order()
                self.faults.unknown_since_ms = self._fleet.event_ms()
        self.faults.malformed[kind] = Fault(calls, frozenset({"positions_get"}))

    def clear_faults(self) -> None:
        self.faults.clear()
