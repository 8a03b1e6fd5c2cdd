"""One account's broker-side state: positions, pending orders, deals, balance.

This is the server's truth that a terminal reports. Every trade goes through `open_or_net`
or `close`, so deals, netting and the close reason are right whoever trades (the bot, a
human, another EA, the risk desk). Times are UTC epoch milliseconds inside; a terminal
shifts them into the server's clock on the way out.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from mt5recon.terminal import constants as c
from mt5recon.terminal.records import AccountInfo, TradeDeal, TradeOrder, TradePosition
from mt5recon.terminal.simulator.market import Quote

_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """How an account is set up at the broker (and which symbols its bot trades)."""

    login: int
    server: str = "SimBroker-Demo"
    company: str = "SimBroker Ltd"
    margin_mode: int = c.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING
    balance: float = 50_000.0
    credit: float = 0.0
    leverage: int = 100
    currency: str = "USD"
    name: str = ""
    trade_mode: int = c.ACCOUNT_TRADE_MODE_DEMO
    margin_so_call: float = 100.0
    margin_so_so: float = 50.0
    symbol_suffix: str = ""  # the broker's names: "EURUSD" is "EURUSD.m" on this account
    bot_symbols: tuple[str, ...] = ("EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "US500")
    magic: int = 0  # 0: derived from the login
    comment_max_len: int = 31
    comment_template: str = "{comment}"

    @property
    def hedging(self) -> bool:
        return self.margin_mode == c.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING

    @property
    def bot_magic(self) -> int:
        return self.magic or 100_000 + self.login


class Tickets:
    """Server-wide ticket sequences: orders (and so position identifiers) and deals."""

    def __init__(self, order_start: int = 310_000_000, deal_start: int = 205_000_000) -> None:
        self._order = order_start
        self._deal = deal_start

    def order(self) -> int:
        self._order += 1
        return self._order

    def deal(self) -> int:
        self._deal += 1
        return self._deal


@dataclass(slots=True, eq=False)
class Position:
    ticket: int
    identifier: int
    symbol: str
    quote: Quote
    type: int
    volume: float
    price_open: float
    sl: float
    tp: float
    magic: int
    reason: int
    comment: str
    time_msc: int
    time_update_msc: int
    swap: float = 0.0
    external_id: str = ""

    @property
    def buy(self) -> bool:
        return self.type == c.POSITION_TYPE_BUY

    def market_exit(self) -> float:
        """A buy closes at the bid, a sell at the ask."""
        return self.quote.bid if self.type == c.POSITION_TYPE_BUY else self.quote.ask

    def profit_at(self, price: float, volume: float | None = None) -> float:
        q = self.quote
        diff = price - self.price_open if self.type == c.POSITION_TYPE_BUY else self.price_open - price
        vol = self.volume if volume is None else volume
        return diff * vol * q.spec.contract_size * q.profit_rate


@dataclass(slots=True, eq=False)
class PendingOrder:
    ticket: int
    symbol: str
    quote: Quote
    type: int
    volume: float
    price: float
    sl: float
    tp: float
    magic: int
    reason: int
    comment: str
    time_setup_msc: int
    expiration_msc: int = 0
    request_comment: str = ""  # as sent; the fill's position gets the broker's version of it
    by_bot: bool = False  # the account's bot placed it: its fill is the bot's own action


@dataclass(frozen=True, slots=True)
class Fill:
    order: int
    deal: int
    identifier: int
    volume: float
    price: float
    entry: int
    position: Position | None  # what is open on that identifier afterwards (None: closed)


CloseListener = Callable[[Position, int, int, bool], None]  # position, reason, t_ms, by_bot
FillListener = Callable[[PendingOrder, Fill, int], None]  # order, fill, t_ms


def _vol(v: float) -> float:
    return round(v, 2)


@dataclass(eq=False)
class Book:
    spec: AccountSpec
    quotes: dict[str, Quote]  # by the broker's symbol name
    tickets: Tickets
    positions: dict[int, Position] = field(default_factory=dict)  # by identifier, open order
    net: dict[str, Position] = field(default_factory=dict)  # netting: symbol -> its one position
    orders: dict[int, PendingOrder] = field(default_factory=dict)
    deals: list[TradeDeal] = field(default_factory=list)
    deal_times: list[int] = field(default_factory=list)  # epoch s, parallel to deals (bisect)
    deals_by_position: dict[int, list[TradeDeal]] = field(default_factory=dict)
    balance: float = 0.0
    credit: float = 0.0
    on_close: list[CloseListener] = field(default_factory=list)
    on_fill: list[FillListener] = field(default_factory=list)
    comment_max_len: int = 31
    comment_template: str = "{comment}"
    # per-symbol sums, rebuilt only after a change, so a quiet second costs O(symbols)
    _dirty: bool = True
    _sums: list[tuple[Quote, float, float, float, float]] = field(default_factory=list)
    _bands: list[tuple[Quote, float, float, float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.comment_max_len = self.spec.comment_max_len
        self.comment_template = self.spec.comment_template

    def _rebuild(self) -> None:
        """Volume sums (for P/L and margin) and the SL/TP bands no price has crossed yet."""
        sums: dict[int, list[float]] = {}
        bands: dict[int, list[float]] = {}
        quotes: dict[int, Quote] = {}
        inf = math.inf
        for p in self.positions.values():
            key = id(p.quote)
            quotes[key] = p.quote
            acc = sums.setdefault(key, [0.0, 0.0, 0.0, 0.0])
            band = bands.setdefault(key, [-inf, inf, -inf, inf])
            if p.type == c.POSITION_TYPE_BUY:  # triggers on the bid: <= sl or >= tp
                acc[0] += p.volume
                acc[1] += p.volume * p.price_open
                if p.sl:
                    band[0] = max(band[0], p.sl)
                if p.tp:
                    band[1] = min(band[1], p.tp)
            else:  # triggers on the ask: <= tp or >= sl
                acc[2] += p.volume
                acc[3] += p.volume * p.price_open
                if p.tp:
                    band[2] = max(band[2], p.tp)
                if p.sl:
                    band[3] = min(band[3], p.sl)
        self._sums = [(quotes[k], a[0], a[1], a[2], a[3]) for k, a in sums.items()]
        self._bands = [(quotes[k], b[0], b[1], b[2], b[3]) for k, b in bands.items()]
        self._dirty = False

    @property
    def hedging(self) -> bool:
        return self.spec.hedging

    def broker_comment(self, comment: str) -> str:
        """Brokers cap comments (31 chars in MT5) and some bridges rewrite them."""
        if not comment:
            return ""
        return self.comment_template.format(comment=comment)[: self.comment_max_len]

    # -- lookups ---------------------------------------------------------------------------
    def by_ticket(self, ticket: int) -> Position | None:
        for p in self.positions.values():
            if p.ticket == ticket:
                return p
        return None

    # -- deals -----------------------------------------------------------------------------
    def _deal(
        self,
        *,
        order: int,
        t_ms: int,
        type_: int,
        entry: int,
        magic: int,
        position_id: int,
        reason: int,
        volume: float,
        price: float,
        profit: float,
        symbol: str,
        comment: str,
        commission: float = 0.0,
        to_balance: bool = True,
    ) -> TradeDeal:
        d = TradeDeal(
            ticket=self.tickets.deal(),
            order=order,
            time=t_ms // 1000,
            time_msc=t_ms,
            type=type_,
            entry=entry,
            magic=magic,
            position_id=position_id,
            reason=reason,
            volume=volume,
            price=price,
            commission=commission,
            swap=0.0,
            profit=round(profit, 2),
            fee=0.0,
            symbol=symbol,
            comment=comment,
            external_id="",
        )
        self._dirty = True
        self.deals.append(d)
        self.deal_times.append(d.time)
        if position_id:
            self.deals_by_position.setdefault(position_id, []).append(d)
        if to_balance:
            self.balance = round(self.balance + d.profit + commission, 2)
        return d

    def _commission(self, q: Quote, volume: float) -> float:
        return -round(q.spec.commission_per_lot * volume, 2)

    def deals_between(self, t_from: int, t_to: int) -> list[TradeDeal]:
        lo = bisect.bisect_left(self.deal_times, t_from)
        hi = bisect.bisect_right(self.deal_times, t_to)
        return self.deals[lo:hi]

    def balance_op(self, amount: float, t_ms: int, comment: str, type_: int = c.DEAL_TYPE_BALANCE) -> TradeDeal:
        """Deposits/withdrawals (and credit) are deals without a symbol, as in MT5."""
        credit = type_ == c.DEAL_TYPE_CREDIT
        d = self._deal(
            order=0,
            t_ms=t_ms,
            type_=type_,
            entry=c.DEAL_ENTRY_IN,
            magic=0,
            position_id=0,
            reason=c.DEAL_REASON_CLIENT,
            volume=0.0,
            price=0.0,
            profit=amount,
            symbol="",
            comment=comment,
            to_balance=not credit,
        )
        if credit:
            self.credit = round(self.credit + amount, 2)
        return d

    # -- trading ---------------------------------------------------------------------------
    def open_or_net(
        self,
        symbol: str,
        type_: int,
        volume: float,
        price: float,
        t_ms: int,
        *,
        magic: int,
        reason: int,
        comment: str = "",
        sl: float = 0.0,
        tp: float = 0.0,
        order: int | None = None,
        by_bot: bool = False,
    ) -> Fill:
        """A market fill without a target position: hedging opens, netting adds/reduces/reverses."""
        q = self.quotes[symbol]
        volume = _vol(volume)
        order = order or self.tickets.order()
        comment = self.broker_comment(comment)
        existing = None if self.hedging else self.net.get(symbol)
        deal_type = c.DEAL_TYPE_BUY if type_ == c.ORDER_TYPE_BUY else c.DEAL_TYPE_SELL
        if existing is None:
            pos = Position(
                ticket=order,
                identifier=order,
                symbol=symbol,
                quote=q,
                type=type_,
                volume=volume,
                price_open=price,
                sl=sl,
                tp=tp,
                magic=magic,
                reason=reason,
                comment=comment,
                time_msc=t_ms,
                time_update_msc=t_ms,
            )
            self.positions[order] = pos
            if not self.hedging:
                self.net[symbol] = pos
            d = self._deal(
                order=order,
                t_ms=t_ms,
                type_=deal_type,
                entry=c.DEAL_ENTRY_IN,
                magic=magic,
                position_id=order,
                reason=reason,
                volume=volume,
                price=price,
                profit=0.0,
                symbol=symbol,
                comment=comment,
                commission=self._commission(q, volume),
            )
            return Fill(order, d.ticket, order, volume, price, c.DEAL_ENTRY_IN, pos)
        if existing.type == type_:  # netting: add and average
            total = _vol(existing.volume + volume)
            existing.price_open = round((existing.price_open * existing.volume + price * volume) / total, 10)
            existing.volume = total
            existing.sl, existing.tp = sl or existing.sl, tp or existing.tp
            existing.time_update_msc = t_ms
            d = self._deal(
                order=order,
                t_ms=t_ms,
                type_=deal_type,
                entry=c.DEAL_ENTRY_IN,
                magic=magic,
                position_id=existing.identifier,
                reason=reason,
                volume=volume,
                price=price,
                profit=0.0,
                symbol=symbol,
                comment=comment,
                commission=self._commission(q, volume),
            )
            return Fill(order, d.ticket, existing.identifier, volume, price, c.DEAL_ENTRY_IN, existing)
        if volume <= existing.volume + _EPS:
            return self.close(
                existing, volume, price, t_ms, reason=reason, magic=magic, comment=comment, order=order, by_bot=by_bot
            )
        # netting reversal: one INOUT deal; identifier kept, ticket becomes the reversing order's
        profit = existing.profit_at(price)
        d = self._deal(
            order=order,
            t_ms=t_ms,
            type_=deal_type,
            entry=c.DEAL_ENTRY_INOUT,
            magic=magic,
            position_id=existing.identifier,
            reason=reason,
            volume=volume,
            price=price,
            profit=profit,
            symbol=symbol,
            comment=comment,
            commission=self._commission(q, volume),
        )
        existing.type = type_
        existing.volume = _vol(volume - existing.volume)
        existing.price_open = price
        existing.ticket = order
        existing.sl, existing.tp = sl, tp
        existing.magic, existing.reason, existing.comment = magic, reason, comment
        existing.time_msc = existing.time_update_msc = t_ms
        return Fill(order, d.ticket, existing.identifier, volume, price, c.DEAL_ENTRY_INOUT, existing)

    def close(
        self,
        pos: Position,
        volume: float,
        price: float,
        t_ms: int,
        *,
        reason: int,
        magic: int,
        comment: str = "",
        order: int | None = None,
        by_bot: bool = False,
    ) -> Fill:
        """Close all or part of a position with an OUT deal carrying why (reason) and the P/L."""
        volume = _vol(min(volume, pos.volume))
        order = order or self.tickets.order()
        deal_type = c.DEAL_TYPE_SELL if pos.buy else c.DEAL_TYPE_BUY
        d = self._deal(
            order=order,
            t_ms=t_ms,
            type_=deal_type,
            entry=c.DEAL_ENTRY_OUT,
            magic=magic,
            position_id=pos.identifier,
            reason=reason,
            volume=volume,
            price=price,
            profit=pos.profit_at(price, volume),
            symbol=pos.symbol,
            comment=comment,
            commission=self._commission(pos.quote, volume),
        )
        remaining = _vol(pos.volume - volume)
        if remaining > _EPS:
            pos.volume = remaining
            pos.time_update_msc = t_ms
            return Fill(order, d.ticket, pos.identifier, volume, price, c.DEAL_ENTRY_OUT, pos)
        del self.positions[pos.identifier]
        if self.net.get(pos.symbol) is pos:
            del self.net[pos.symbol]
        for listener in self.on_close:
            listener(pos, reason, t_ms, by_bot)
        return Fill(order, d.ticket, pos.identifier, volume, price, c.DEAL_ENTRY_OUT, None)

    def modify(self, pos: Position, sl: float, tp: float, t_ms: int) -> None:
        self._dirty = True
        pos.sl, pos.tp = sl, tp
        pos.time_update_msc = t_ms

    def change_ticket(self, pos: Position, t_ms: int) -> int:
        """A service re-open (e.g. swap charging): new ticket, same identifier."""
        pos.ticket = self.tickets.order()
        pos.time_update_msc = t_ms
        return pos.ticket

    def place_order(
        self,
        symbol: str,
        type_: int,
        volume: float,
        price: float,
        t_ms: int,
        *,
        magic: int,
        reason: int,
        comment: str = "",
        sl: float = 0.0,
        tp: float = 0.0,
        expiration_msc: int = 0,
        by_bot: bool = False,
    ) -> PendingOrder:
        o = PendingOrder(
            ticket=self.tickets.order(),
            symbol=symbol,
            quote=self.quotes[symbol],
            type=type_,
            volume=_vol(volume),
            price=price,
            sl=sl,
            tp=tp,
            magic=magic,
            reason=reason,
            comment=self.broker_comment(comment),
            time_setup_msc=t_ms,
            expiration_msc=expiration_msc,
            request_comment=comment,
            by_bot=by_bot,
        )
        self.orders[o.ticket] = o
        return o

    def remove_order(self, ticket: int) -> PendingOrder | None:
        return self.orders.pop(ticket, None)

    # -- what happens by itself every second -------------------------------------------------
    def check_triggers(self) -> None:
        """Pending orders fill and SL/TP close from price movement (bid for buys, ask for sells)."""
        if self.orders:
            self._check_orders()
        if self._dirty:
            self._rebuild()
        touched = {
            id(q)
            for q, blo, bhi, slo, shi in self._bands
            if q.bid <= blo or q.bid >= bhi or q.ask <= slo or q.ask >= shi
        }
        if not touched:
            return
        hits: list[tuple[Position, int]] = []
        for p in self.positions.values():
            if id(p.quote) not in touched:
                continue
            sl, tp = p.sl, p.tp
            if not (sl or tp):
                continue
            q = p.quote
            if p.type == c.POSITION_TYPE_BUY:
                if sl and q.bid <= sl:
                    hits.append((p, c.DEAL_REASON_SL))
                elif tp and q.bid >= tp:
                    hits.append((p, c.DEAL_REASON_TP))
            elif sl and q.ask >= sl:
                hits.append((p, c.DEAL_REASON_SL))
            elif tp and q.ask <= tp:
                hits.append((p, c.DEAL_REASON_TP))
        for p, reason in hits:
            self.close_by_level(p, reason, p.quote.time_msc, at_level=False)

    def close_by_level(self, p: Position, reason: int, t_ms: int, *, at_level: bool) -> Fill:
        """An SL/TP execution; the exit deal's comment is MT5's `[sl 1.08350]` / `[tp ...]`."""
        level = p.sl if reason == c.DEAL_REASON_SL else p.tp
        price = level if at_level and level else p.market_exit()
        tag = "sl" if reason == c.DEAL_REASON_SL else "tp"
        comment = f"[{tag} {level:.{p.quote.spec.digits}f}]"
        return self.close(p, p.volume, price, t_ms, reason=reason, magic=p.magic, comment=comment)

    def _check_orders(self) -> None:
        for o in list(self.orders.values()):
            q = o.quote
            t = o.type
            if t == c.ORDER_TYPE_BUY_LIMIT:
                hit = q.ask <= o.price
            elif t == c.ORDER_TYPE_SELL_LIMIT:
                hit = q.bid >= o.price
            elif t == c.ORDER_TYPE_BUY_STOP:
                hit = q.ask >= o.price
            else:
                hit = q.bid <= o.price
            if not hit:
                continue
            del self.orders[o.ticket]
            side = c.ORDER_TYPE_BUY if t in (c.ORDER_TYPE_BUY_LIMIT, c.ORDER_TYPE_BUY_STOP) else c.ORDER_TYPE_SELL
            limit = t in (c.ORDER_TYPE_BUY_LIMIT, c.ORDER_TYPE_SELL_LIMIT)
            price = o.price if limit else (q.ask if side == c.ORDER_TYPE_BUY else q.bid)
            fill = self.open_or_net(
                o.symbol,
                side,
                o.volume,
                price,
                q.time_msc,
                magic=o.magic,
                reason=o.reason,
                comment=o.request_comment,
                sl=o.sl,
                tp=o.tp,
                order=o.ticket,
                by_bot=o.by_bot,
            )
            for listener in self.on_fill:
                listener(o, fill, q.time_msc)

    def floating_and_margin(self) -> tuple[float, float]:
        """Floating P/L and used margin in the account currency, from the per-symbol sums."""
        if self._dirty:
            self._rebuild()
        profit = 0.0
        margin = 0.0
        for q, buy_vol, buy_cost, sell_vol, sell_cost in self._sums:
            scale = q.spec.contract_size * q.profit_rate
            profit += (q.bid * buy_vol - buy_cost + sell_cost - q.ask * sell_vol) * scale
            margin += (buy_vol + sell_vol) * q.margin_per_lot
        return profit, margin / self.spec.leverage

    def margin_level(self) -> tuple[float, float, float]:
        """(equity, margin, level %) with level 0.0 when nothing uses margin, as MT5 shows it."""
        profit, margin = self.floating_and_margin()
        equity = self.balance + self.credit + profit
        return equity, margin, (equity / margin * 100.0 if margin > 0 else 0.0)

    def can_afford(self, symbol: str, type_: int, volume: float) -> bool:
        """Free margin covers a new exposure (a netting fill against the position always can)."""
        existing = None if self.hedging else self.net.get(symbol)
        if existing is not None and existing.type != type_ and volume <= existing.volume + _EPS:
            return True
        equity, margin, _ = self.margin_level()
        return volume * self.quotes[symbol].margin_per_lot / self.spec.leverage <= equity - margin

    def check_stop_out(self, t_ms: int) -> list[Fill]:
        if not self.positions:
            return []
        _, margin, level = self.margin_level()
        if margin <= 0 or level >= self.spec.margin_so_so:
            return []
        return self.stop_out(t_ms, None, until_safe=True)

    def stop_out(self, t_ms: int, count: int | None, *, until_safe: bool = False) -> list[Fill]:
        """The broker liquidates the biggest loser first (reason SO), as MT5 stop-out does."""
        fills: list[Fill] = []
        while self.positions and (count is None or len(fills) < count):
            _, margin, level = self.margin_level()
            if until_safe and (margin <= 0 or level >= self.spec.margin_so_so):
                break
            worst = min(self.positions.values(), key=lambda p: p.profit_at(p.market_exit()))
            fills.append(
                self.close(
                    worst,
                    worst.volume,
                    worst.market_exit(),
                    t_ms,
                    reason=c.DEAL_REASON_SO,
                    magic=worst.magic,
                    comment=f"[so {level:.2f}%]",
                )
            )
        return fills

    # -- records -----------------------------------------------------------------------------
    def position_record(self, p: Position, off_ms: int = 0) -> TradePosition:
        """The position as `positions_get` shows it. Built from a tuple in field order: every open
        position is rebuilt on every call, and keyword construction cost twice as much."""
        cur = p.market_exit()
        time_msc, update_msc = p.time_msc + off_ms, p.time_update_msc + off_ms
        return TradePosition._make(
            (
                p.ticket,
                time_msc // 1000,
                time_msc,
                update_msc // 1000,
                update_msc,
                p.type,
                p.magic,
                p.identifier,
                p.reason,
                p.volume,
                p.price_open,
                p.sl,
                p.tp,
                cur,
                p.swap,
                round(p.profit_at(cur), 2),
                p.symbol,
                p.comment,
                p.external_id,
            )
        )

    def order_record(self, o: PendingOrder, off_ms: int = 0) -> TradeOrder:
        buy = o.type in (c.ORDER_TYPE_BUY_LIMIT, c.ORDER_TYPE_BUY_STOP)
        exp = o.expiration_msc + off_ms if o.expiration_msc else 0
        return TradeOrder(
            ticket=o.ticket,
            time_setup=(o.time_setup_msc + off_ms) // 1000,
            time_setup_msc=o.time_setup_msc + off_ms,
            time_done=0,
            time_done_msc=0,
            time_expiration=exp // 1000,
            type=o.type,
            type_time=c.ORDER_TIME_GTC,
            type_filling=c.ORDER_FILLING_RETURN,
            state=c.ORDER_STATE_PLACED,
            magic=o.magic,
            position_id=0,
            position_by_id=0,
            reason=o.reason,
            volume_initial=o.volume,
            volume_current=o.volume,
            price_open=o.price,
            sl=o.sl,
            tp=o.tp,
            price_current=o.quote.ask if buy else o.quote.bid,
            price_stoplimit=0.0,
            symbol=o.symbol,
            comment=o.comment,
            external_id="",
        )

    def account_record(self) -> AccountInfo:
        s = self.spec
        profit, margin = self.floating_and_margin()
        equity = self.balance + self.credit + profit
        return AccountInfo(
            login=s.login,
            trade_mode=s.trade_mode,
            leverage=s.leverage,
            limit_orders=200,
            margin_so_mode=c.ACCOUNT_STOPOUT_MODE_PERCENT,
            trade_allowed=True,
            trade_expert=True,
            margin_mode=s.margin_mode,
            currency_digits=2,
            fifo_close=False,
            balance=round(self.balance, 2),
            credit=round(self.credit, 2),
            profit=round(profit, 2),
            equity=round(equity, 2),
            margin=round(margin, 2),
            margin_free=round(equity - margin, 2),
            margin_level=round(equity / margin * 100.0, 2) if margin > 0 else 0.0,
            margin_so_call=s.margin_so_call,
            margin_so_so=s.margin_so_so,
            margin_initial=0.0,
            margin_maintenance=0.0,
            assets=0.0,
            liabilities=0.0,
            commission_blocked=0.0,
            name=s.name or f"Sim Trader {s.login}",
            server=s.server,
            currency=s.currency,
            company=s.company,
        )


def shift_deal(d: TradeDeal, off_secs: int) -> TradeDeal:
    """Deal times in the server's clock, as the terminal reports them."""
    if not off_secs:
        return d
    return d._replace(time=d.time + off_secs, time_msc=d.time_msc + off_secs * 1000)
