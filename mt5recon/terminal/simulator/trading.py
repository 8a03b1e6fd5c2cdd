"""`order_send` on the simulated trade server: request in, OrderSendResult out.

Only what a reconciliation pipeline and its tests need, with MT5's retcodes: market open and
close (TRADE_ACTION_DEAL, `position` = the ticket to close), SL/TP edits, pending orders.
Terminal requests carry reason EXPERT, like any program trading through the API.
"""

from __future__ import annotations

from typing import Any

from mt5recon.terminal import constants as c
from mt5recon.terminal.records import OrderSendResult, TradeRequest
from mt5recon.terminal.simulator.book import Book, Fill
from mt5recon.terminal.simulator.market import Quote

TRADE_RETCODE_INVALID_PRICE = 10015
TRADE_RETCODE_INVALID_STOPS = 10016
TRADE_RETCODE_NO_MONEY = 10019

_DEFAULTS: dict[str, Any] = {
    "action": 0,
    "magic": 0,
    "order": 0,
    "symbol": "",
    "volume": 0.0,
    "price": 0.0,
    "stoplimit": 0.0,
    "sl": 0.0,
    "tp": 0.0,
    "deviation": 0,
    "type": 0,
    "type_filling": 0,
    "type_time": 0,
    "expiration": 0,
    "comment": "",
    "position": 0,
    "position_by": 0,
}
_PENDING = (c.ORDER_TYPE_BUY_LIMIT, c.ORDER_TYPE_SELL_LIMIT, c.ORDER_TYPE_BUY_STOP, c.ORDER_TYPE_SELL_STOP)
_MESSAGES = {
    c.TRADE_RETCODE_DONE: "Request executed",
    c.TRADE_RETCODE_INVALID: "Invalid request",
    c.TRADE_RETCODE_INVALID_VOLUME: "Invalid volume",
    c.TRADE_RETCODE_POSITION_CLOSED: "Position doesn't exist",
    TRADE_RETCODE_INVALID_PRICE: "Invalid price",
    TRADE_RETCODE_INVALID_STOPS: "Invalid stops",
    TRADE_RETCODE_NO_MONEY: "No money",
}


def _request(raw: dict[str, Any]) -> TradeRequest:
    merged = {**_DEFAULTS, **{k: v for k, v in raw.items() if v is not None}}
    return TradeRequest(**merged)


def _result(
    req: TradeRequest, request_id: int, retcode: int, q: Quote | None, fill: Fill | None = None, order: int = 0
) -> OrderSendResult:
    return OrderSendResult(
        retcode=retcode,
        deal=fill.deal if fill else 0,
        order=fill.order if fill else order,
        volume=fill.volume if fill else 0.0,
        price=fill.price if fill else 0.0,
        bid=q.bid if q else 0.0,
        ask=q.ask if q else 0.0,
        comment=_MESSAGES.get(retcode, ""),
        request_id=request_id,
        retcode_external=0,
        request=req,
    )


def _bad_volume(q: Quote, volume: float) -> bool:
    spec = q.spec
    steps = volume / spec.volume_step
    return volume < spec.volume_min - 1e-9 or volume > spec.volume_max + 1e-9 or abs(steps - round(steps)) > 1e-6


def _bad_stops(buy: bool, price: float, sl: float, tp: float) -> bool:
    """SL below and TP above the closing price for a buy; the reverse for a sell."""
    if buy:
        return bool((sl and sl >= price) or (tp and tp <= price))
    return bool((sl and sl <= price) or (tp and tp >= price))


def execute(book: Book, raw: dict[str, Any], t_ms: int, request_id: int) -> OrderSendResult:
    req = _request(raw)
    action = req.action
    if action == c.TRADE_ACTION_DEAL:
        return _deal(book, req, t_ms, request_id)
    if action == c.TRADE_ACTION_SLTP:
        pos = book.by_ticket(req.position)
        if pos is None:
            return _result(req, request_id, c.TRADE_RETCODE_POSITION_CLOSED, None)
        if _bad_stops(pos.buy, pos.market_exit(), req.sl, req.tp):
            return _result(req, request_id, TRADE_RETCODE_INVALID_STOPS, pos.quote)
        book.modify(pos, req.sl, req.tp, t_ms)
        return _result(req, request_id, c.TRADE_RETCODE_DONE, pos.quote)
    if action in (c.TRADE_ACTION_PENDING, c.TRADE_ACTION_MODIFY, c.TRADE_ACTION_REMOVE):
        return _pending(book, req, t_ms, request_id)
    return _result(req, request_id, c.TRADE_RETCODE_INVALID, None)


def _deal(book: Book, req: TradeRequest, t_ms: int, request_id: int) -> OrderSendResult:
    pos = None
    if req.position:
        pos = book.by_ticket(req.position)
        if pos is None:
            return _result(req, request_id, c.TRADE_RETCODE_POSITION_CLOSED, book.quotes.get(req.symbol))
    symbol = req.symbol or (pos.symbol if pos else "")
    q = book.quotes.get(symbol)
    if q is None or req.type not in (c.ORDER_TYPE_BUY, c.ORDER_TYPE_SELL) or (pos and pos.symbol != symbol):
        return _result(req, request_id, c.TRADE_RETCODE_INVALID, q)
    if _bad_volume(q, req.volume):
        return _result(req, request_id, c.TRADE_RETCODE_INVALID_VOLUME, q)
    buy = req.type == c.ORDER_TYPE_BUY
    price = q.ask if buy else q.bid
    if pos is not None:
        if pos.buy == buy:  # closing needs the opposite side
            return _result(req, request_id, c.TRADE_RETCODE_INVALID, q)
        if req.volume > pos.volume + 1e-9:
            return _result(req, request_id, c.TRADE_RETCODE_INVALID_VOLUME, q)
        fill = book.close(
            pos,
            req.volume,
            price,
            t_ms,
            reason=c.DEAL_REASON_EXPERT,
            magic=req.magic,
            comment=book.broker_comment(req.comment),
        )
    else:
        if _bad_stops(buy, q.bid if buy else q.ask, req.sl, req.tp):
            return _result(req, request_id, TRADE_RETCODE_INVALID_STOPS, q)
        if not book.can_afford(symbol, req.type, req.volume):
            return _result(req, request_id, TRADE_RETCODE_NO_MONEY, q)
        fill = book.open_or_net(
            symbol,
            req.type,
            req.volume,
            price,
            t_ms,
            magic=req.magic,
            reason=c.DEAL_REASON_EXPERT,
            comment=req.comment,
            sl=req.sl,
            tp=req.tp,
        )
    return _result(req, request_id, c.TRADE_RETCODE_DONE, q, fill)


def _pending(book: Book, req: TradeRequest, t_ms: int, request_id: int) -> OrderSendResult:
    if req.action == c.TRADE_ACTION_REMOVE:
        o = book.remove_order(req.order)
        code = c.TRADE_RETCODE_DONE if o else c.TRADE_RETCODE_INVALID
        return _result(req, request_id, code, o.quote if o else None, order=req.order)
    if req.action == c.TRADE_ACTION_MODIFY:
        o = book.orders.get(req.order)
        if o is None:
            return _result(req, request_id, c.TRADE_RETCODE_INVALID, None)
        o.price, o.sl, o.tp = req.price or o.price, req.sl, req.tp
        return _result(req, request_id, c.TRADE_RETCODE_DONE, o.quote, order=o.ticket)
    q = book.quotes.get(req.symbol)
    if q is None or req.type not in _PENDING:
        return _result(req, request_id, c.TRADE_RETCODE_INVALID, q)
    if _bad_volume(q, req.volume):
        return _result(req, request_id, c.TRADE_RETCODE_INVALID_VOLUME, q)
    t = req.type
    wrong_side = (
        (t == c.ORDER_TYPE_BUY_LIMIT and req.price >= q.ask)
        or (t == c.ORDER_TYPE_SELL_LIMIT and req.price <= q.bid)
        or (t == c.ORDER_TYPE_BUY_STOP and req.price <= q.ask)
        or (t == c.ORDER_TYPE_SELL_STOP and req.price >= q.bid)
    )
    if req.price <= 0 or wrong_side:
        return _result(req, request_id, TRADE_RETCODE_INVALID_PRICE, q)
    o = book.place_order(
        req.symbol,
        t,
        req.volume,
        req.price,
        t_ms,
        magic=req.magic,
        reason=c.ORDER_REASON_EXPERT,
        comment=req.comment,
        sl=req.sl,
        tp=req.tp,
        expiration_msc=req.expiration * 1000,
    )
    return _result(req, request_id, c.TRADE_RETCODE_DONE, q, order=o.ticket)
