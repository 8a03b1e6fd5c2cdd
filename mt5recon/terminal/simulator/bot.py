"""The simulated EA of one account, and what it believes: the expected trades.

The bot trades through the same `Book` as everybody else, tags each trade with its id in the
comment and writes down what it asked for (the requested price and volume, not the fill).
It learns about broker-side closes only after a delay, so a vanished position is visible for
a while before the bot marks its trade closed.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from mt5recon.terminal import constants as c
from mt5recon.terminal.simulator.book import (
    AccountSpec,
    Book,
    Fill,
    PendingOrder,
    Position,
)
from mt5recon.terminal.simulator.config import BotConfig, ScenarioRates
from mt5recon.terminal.simulator.market import Quote

Event = tuple[int, int, Callable[[], None]]  # (t_ms, tie-break, action) for the back-fill


@dataclass(slots=True, eq=False)
class BotTrade:
    """One row of the expected-trades contract, plus what only the simulator knows."""

    trade_id: str
    login: int
    symbol: str  # the bot's own name for the symbol
    side: str
    volume: float  # requested
    price: float  # requested
    sl: float | None
    tp: float | None
    magic: int
    position_id: int | None  # what the bot wrote down (None: it did not record it)
    opened_ms: int
    closed_ms: int | None = None
    broker_symbol: str = ""
    identifier: int = 0  # the broker identifier, always known to the simulator
    filled: float = 0.0
    close_at_ms: int = 0
    notice_ms: int | None = None


@dataclass(slots=True)
class _LimitPlan:
    trade_id: str
    symbol: str
    side: str
    volume: float
    price: float
    sl: float | None
    tp: float | None
    record: bool
    hold_ms: int
    expire_ms: int


def _order_type(side: str) -> int:
    return c.ORDER_TYPE_BUY if side == "buy" else c.ORDER_TYPE_SELL


def _entry_price(q: Quote, side: str) -> float:
    return q.ask if side == "buy" else q.bid


def _exit_price(q: Quote, side: str) -> float:
    return q.bid if side == "buy" else q.ask


class Bot:
    def __init__(
        self, spec: AccountSpec, book: Book, config: BotConfig, rates: ScenarioRates, rng: random.Random
    ) -> None:
        self.login = spec.login
        self.magic = spec.bot_magic
        self.book = book
        self.config = config
        self.rates = rates
        self.rng = rng
        self._notice_rng = random.Random(rng.random())
        self.active = config.active
        self.notice_delay: float | None = None  # fixed delay override (tests)
        self.symbols: dict[str, str] = {s: s + spec.symbol_suffix for s in spec.bot_symbols}
        self._symbol_list = list(self.symbols)
        self.trades: dict[str, BotTrade] = {}  # every trade, in creation order
        self.open: dict[str, BotTrade] = {}
        self._by_identifier: dict[int, list[str]] = {}
        self._closes: list[tuple[int, str]] = []
        self._notices: list[tuple[int, str]] = []
        self._plans: dict[int, _LimitPlan] = {}
        self._seq = 0
        self._p_open = config.opens_per_hour / 3600.0
        self._size = min(2.0, max(0.1, spec.balance / 50_000.0))
        book.on_close.append(self._broker_closed)
        book.on_fill.append(self._order_filled)

    # -- helpers ---------------------------------------------------------------------------
    def _next_id(self) -> str:
        self._seq += 1
        return f"b{self.login}-{self._seq:06d}"

    def quote(self, bot_symbol: str) -> Quote:
        return self.book.quotes[self.symbols[bot_symbol]]

    def resolve_symbol(self, symbol: str | None, rng: random.Random) -> str:
        if symbol is None:
            return rng.choice(self._symbol_list)
        if symbol in self.symbols:
            return symbol
        for own, broker in self.symbols.items():
            if broker == symbol:
                return own
        raise KeyError(f"the bot of {self.login} does not trade {symbol!r}")

    def _levels(
        self, q: Quote, side: str, ref: float, sl_pips: float | None, tp_pips: float | None, rng: random.Random
    ) -> tuple[float | None, float | None]:
        """SL/TP prices: explicit pips, 0 for none, None for the bot's own habit."""
        spec = q.spec
        sign = 1.0 if side == "buy" else -1.0
        base = ref * spec.daily_vol
        sl_d: float | None
        tp_d: float | None
        if sl_pips is None:
            sl_d = (
                None
                if not self.book.hedging or rng.random() < self.config.no_sl_prob
                else (base * rng.uniform(0.25, 0.8))
            )
        else:
            sl_d = sl_pips * spec.pip or None
        if tp_pips is None:
            tp_d = (
                None
                if not self.book.hedging or rng.random() < self.config.no_tp_prob
                else ((sl_d or base * 0.5) * rng.uniform(0.8, 2.0))
            )
        else:
            tp_d = tp_pips * spec.pip or None
        sl = round(ref - sign * sl_d, spec.digits) if sl_d else None
        tp = round(ref + sign * tp_d, spec.digits) if tp_d else None
        return sl, tp

    def _hold_ms(self, hold_secs: float | None, rng: random.Random) -> int:
        return int(1000 * (hold_secs if hold_secs is not None else rng.uniform(*self.config.hold_secs)))

    # -- trading -----------------------------------------------------------------------------
    def _execute_open(
        self,
        t_ms: int,
        symbol: str,
        side: str,
        volume: float,
        req: float,
        fill_price: float,
        fill_volume: float,
        sl: float | None,
        tp: float | None,
        record: bool,
        close_at_ms: int,
    ) -> BotTrade:
        trade_id = self._next_id()
        broker_symbol = self.symbols[symbol]
        fill = self.book.open_or_net(
            broker_symbol,
            _order_type(side),
            fill_volume,
            fill_price,
            t_ms,
            magic=self.magic,
            reason=c.DEAL_REASON_EXPERT,
            comment=trade_id,
            sl=sl or 0.0,
            tp=tp or 0.0,
            by_bot=True,
        )
        return self._remember(trade_id, symbol, side, volume, req, sl, tp, record, t_ms, fill, close_at_ms)

    def _remember(
        self,
        trade_id: str,
        symbol: str,
        side: str,
        volume: float,
        price: float,
        sl: float | None,
        tp: float | None,
        record: bool,
        t_ms: int,
        fill: Fill,
        close_at_ms: int,
    ) -> BotTrade:
        tr = BotTrade(
            trade_id=trade_id,
            login=self.login,
            symbol=symbol,
            side=side,
            volume=volume,
            price=price,
            sl=sl,
            tp=tp,
            magic=self.magic,
            position_id=fill.identifier if record else None,
            opened_ms=t_ms,
            broker_symbol=self.symbols[symbol],
            identifier=fill.identifier,
            filled=fill.volume,
            close_at_ms=close_at_ms,
        )
        self.trades[trade_id] = tr
        self.open[trade_id] = tr
        self._by_identifier.setdefault(fill.identifier, []).append(trade_id)
        heapq.heappush(self._closes, (close_at_ms, trade_id))
        return tr

    def _entry(
        self, symbol: str | None, side: str | None, volume: float | None, rng: random.Random
    ) -> tuple[str, str, float, Quote]:
        """The entry's instrument, side and volume (drawn where not given) and its quote."""
        sym = self.resolve_symbol(symbol, rng)
        return (
            sym,
            side or rng.choice(("buy", "sell")),
            volume if volume is not None else self.random_volume(rng),
            self.quote(sym),
        )

    def open_trade(
        self,
        t_ms: int,
        rng: random.Random,
        *,
        symbol: str | None = None,
        side: str | None = None,
        volume: float | None = None,
        slippage_pips: float = 0.0,
        fill_ratio: float = 1.0,
        sl_pips: float | None = None,
        tp_pips: float | None = None,
        record_position_id: bool | None = None,
        hold_secs: float | None = None,
    ) -> BotTrade:
        """A market entry; positive slippage is against the bot (a buy fills higher)."""
        sym, side, volume, q = self._entry(symbol, side, volume, rng)
        spec = q.spec
        req = _entry_price(q, side)
        slip = round(slippage_pips * spec.pip / spec.point) * spec.point
        fill_price = round(req + slip if side == "buy" else req - slip, spec.digits)
        fill_volume = max(spec.volume_min, round(volume * fill_ratio / spec.volume_step) * spec.volume_step)
        sl, tp = self._levels(q, side, req, sl_pips, tp_pips, rng)
        record = (
            rng.random() < self.config.record_position_id_prob if record_position_id is None else record_position_id
        )
        return self._execute_open(
            t_ms,
            sym,
            side,
            volume,
            req,
            fill_price,
            round(fill_volume, 2),
            sl,
            tp,
            record,
            t_ms + self._hold_ms(hold_secs, rng),
        )

    def place_limit(
        self,
        t_ms: int,
        rng: random.Random,
        *,
        symbol: str | None = None,
        side: str | None = None,
        volume: float | None = None,
        distance_pips: float | None = None,
        expiry_secs: float | None = None,
        hold_secs: float | None = None,
    ) -> int:
        """A limit entry; the expected trade is written when (if) it fills."""
        sym, side, volume, q = self._entry(symbol, side, volume, rng)
        spec = q.spec
        dist = (
            distance_pips * spec.pip if distance_pips is not None else q.mid * spec.daily_vol * rng.uniform(0.02, 0.15)
        )
        price = round(q.ask - dist if side == "buy" else q.bid + dist, spec.digits)
        sl, tp = self._levels(q, side, price, None, None, rng)
        trade_id = self._next_id()
        order = self.book.place_order(
            self.symbols[sym],
            c.ORDER_TYPE_BUY_LIMIT if side == "buy" else c.ORDER_TYPE_SELL_LIMIT,
            volume,
            price,
            t_ms,
            magic=self.magic,
            reason=c.ORDER_REASON_EXPERT,
            comment=trade_id,
            sl=sl or 0.0,
            tp=tp or 0.0,
            by_bot=True,
        )
        expiry = expiry_secs if expiry_secs is not None else self.config.limit_expiry_secs
        self._plans[order.ticket] = _LimitPlan(
            trade_id,
            sym,
            side,
            volume,
            price,
            sl,
            tp,
            rng.random() < self.config.record_position_id_prob,
            self._hold_ms(hold_secs, rng),
            t_ms + int(expiry * 1000),
        )
        return order.ticket

    def position_of(self, tr: BotTrade) -> Position | None:
        if self.book.hedging:
            return self.book.positions.get(tr.identifier)
        return self.book.net.get(tr.broker_symbol)

    def close_trade(self, tr: BotTrade, t_ms: int, price: float | None = None) -> Fill | None:
        """The bot's own exit (reason EXPERT); a position already gone is noticed right away.

        Hedging: the trade's own position is closed. Netting: the bot sends the opposite fill of
        exactly what this trade added, whatever the net position looks like now. Other open trades
        of the bot may have reduced, flattened or reversed the net position (each is an intent of
        its own), so "no position on the symbol" does not mean this trade's exposure is gone: only
        a close the broker made behind the bot's back (a notice pending) does.
        """
        if tr.closed_ms is not None:
            return None
        fill: Fill | None = None
        if self.book.hedging:
            pos = self.position_of(tr)
            if pos is not None:
                px = price if price is not None else pos.market_exit()
                fill = self.book.close(
                    pos,
                    pos.volume,
                    px,
                    t_ms,
                    reason=c.DEAL_REASON_EXPERT,
                    magic=self.magic,
                    comment=self.book.broker_comment(tr.trade_id),
                    by_bot=True,
                )
        elif tr.notice_ms is None:  # netting, and the broker has not closed the symbol under the bot
            opposite = "sell" if tr.side == "buy" else "buy"
            q = self.book.quotes[tr.broker_symbol]
            px = price if price is not None else _entry_price(q, opposite)
            fill = self.book.open_or_net(
                tr.broker_symbol,
                _order_type(opposite),
                tr.filled,
                px,
                t_ms,
                magic=self.magic,
                reason=c.DEAL_REASON_EXPERT,
                comment=tr.trade_id,
                by_bot=True,
            )
        self._mark_closed(tr, t_ms)
        return fill

    def _mark_closed(self, tr: BotTrade, t_ms: int) -> None:
        tr.closed_ms = t_ms
        self.open.pop(tr.trade_id, None)
        ids = self._by_identifier.get(tr.identifier)
        if ids and tr.trade_id in ids:
            ids.remove(tr.trade_id)
            if not ids:
                del self._by_identifier[tr.identifier]

    # -- reactions ---------------------------------------------------------------------------
    def _broker_closed(self, pos: Position, reason: int, t_ms: int, by_bot: bool) -> None:
        if by_bot:
            return
        if self.book.hedging:
            tids = list(self._by_identifier.get(pos.identifier, ()))
        else:
            tids = [tid for tid, tr in self.open.items() if tr.broker_symbol == pos.symbol]
        for tid in tids:
            tr = self.open.get(tid)
            if tr is None or tr.notice_ms is not None:
                continue
            delay = (
                self.notice_delay
                if self.notice_delay is not None
                else self._notice_rng.uniform(*self.config.notice_delay_secs)
            )
            tr.notice_ms = t_ms + int(delay * 1000)
            heapq.heappush(self._notices, (tr.notice_ms, tid))

    def _order_filled(self, order: PendingOrder, fill: Fill, t_ms: int) -> None:
        plan = self._plans.pop(order.ticket, None)
        if plan is None:
            return
        self._remember(
            plan.trade_id,
            plan.symbol,
            plan.side,
            plan.volume,
            plan.price,
            plan.sl,
            plan.tp,
            plan.record,
            t_ms,
            fill,
            t_ms + plan.hold_ms,
        )

    # -- time --------------------------------------------------------------------------------
    def step(self, t: int) -> None:
        t_ms = t * 1000
        if self.active:
            if self.rng.random() < self._p_open:
                self.open_random(t_ms)
            closes = self._closes
            while closes and closes[0][0] <= t_ms:
                _, tid = heapq.heappop(closes)
                tr = self.open.get(tid)
                if tr is not None and tr.notice_ms is None:
                    self.close_trade(tr, t_ms)
        notices = self._notices
        while notices and notices[0][0] <= t_ms:
            at, tid = heapq.heappop(notices)
            tr = self.open.get(tid)
            if tr is not None:
                self._mark_closed(tr, at)
        if t % 600 == 0:
            self._forget(t_ms - int(self.config.keep_closed_secs * 1000))
        if self._plans:
            for ticket, plan in list(self._plans.items()):
                if plan.expire_ms <= t_ms:
                    self.book.remove_order(ticket)
                    del self._plans[ticket]

    def _forget(self, before_ms: int) -> None:
        """A long live run keeps only recent history of closed trades in memory."""
        old = [tid for tid, tr in self.trades.items() if tr.closed_ms is not None and tr.closed_ms < before_ms]
        for tid in old:
            del self.trades[tid]

    def random_volume(self, rng: random.Random) -> float:
        """Lot sizes scale with the account, so a small account trades small."""
        return max(0.01, round(rng.choice(self.config.volumes) * self._size, 2))

    def open_random(self, t_ms: int) -> None:
        rng = self.rng
        symbol = rng.choice(self._symbol_list)
        side = rng.choice(("buy", "sell"))
        volume = self.random_volume(rng)
        if not self.book.can_afford(self.symbols[symbol], _order_type(side), volume):
            return  # the EA checks free margin before it sends
        if rng.random() < self.config.limit_order_prob:
            self.place_limit(t_ms, rng, symbol=symbol, side=side, volume=volume)
            return
        slip = rng.choice((-1.0, 1.0)) * round(rng.uniform(1.0, 8.0), 1) if rng.random() < self.rates.slippage else 0.0
        ratio = rng.choice((0.3, 0.5, 0.8)) if rng.random() < self.rates.partial_fill else 1.0
        self.open_trade(t_ms, rng, symbol=symbol, side=side, volume=volume, slippage_pips=slip, fill_ratio=ratio)

    def backfill(self, t0: int, count: int) -> list[Event]:
        """Trades of the hour before `t0`, as events to run in time order with other accounts'."""
        rng = self.rng
        now_ms = t0 * 1000
        events: list[Event] = []
        for k in range(count):
            age = rng.uniform(20.0, 3600.0)
            open_ms = int((t0 - age) * 1000)
            close_ms = open_ms + self._hold_ms(None, rng)
            sym = rng.choice(self._symbol_list)
            side = rng.choice(("buy", "sell"))
            volume = self.random_volume(rng)
            q = self.quote(sym)
            req = self._past_price(q, side, age, rng, entry=True)
            still_open = close_ms > now_ms
            # levels of a still-open trade sit around today's price so none is already crossed
            ref = _entry_price(q, side) if still_open else req
            sl, tp = self._levels(q, side, ref, None, None, rng)
            record = rng.random() < self.config.record_position_id_prob
            holder: list[BotTrade] = []

            def do_open(
                sym: str = sym,
                side: str = side,
                volume: float = volume,
                req: float = req,
                sl: float | None = sl,
                tp: float | None = tp,
                record: bool = record,
                open_ms: int = open_ms,
                close_ms: int = close_ms,
                holder: list[BotTrade] = holder,
            ) -> None:
                holder.append(
                    self._execute_open(open_ms, sym, side, volume, req, req, volume, sl, tp, record, close_ms)
                )

            events.append((open_ms, 2 * k, do_open))
            if not still_open:
                exit_px = self._past_price(q, side, (now_ms - close_ms) / 1000, rng, entry=False)

                def do_close(close_ms: int = close_ms, px: float = exit_px, holder: list[BotTrade] = holder) -> None:
                    tr = holder[0]
                    if tr.closed_ms is None:
                        self.close_trade(tr, close_ms, px)

                events.append((close_ms, 2 * k + 1, do_close))
        return events

    @staticmethod
    def _past_price(q: Quote, side: str, age_secs: float, rng: random.Random, *, entry: bool) -> float:
        spec = q.spec
        mid = q.mid * (1.0 + q.sigma * math.sqrt(max(age_secs, 0.0)) * rng.gauss(0.0, 1.0))
        half = spec.spread_points * spec.point / 2
        buy_side = (side == "buy") == entry  # entering a buy or leaving a sell pays the ask
        return round(mid + half if buy_side else mid - half, spec.digits)
