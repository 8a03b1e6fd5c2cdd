"""Symbols and the random-walk market every simulated account trades on.

One `Market` per fleet: all accounts see the same quotes (a gap hits everybody), while an
account may know a symbol under a broker-specific name (`EURUSD.m`).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from mt5recon.terminal import constants as c
from mt5recon.terminal.records import SymbolInfo, Tick

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """What a broker publishes about a symbol, plus the sim's price dynamics."""

    name: str
    digits: int
    contract_size: float
    base: str
    profit: str
    margin: str
    start_mid: float
    spread_points: int
    daily_vol: float  # relative daily volatility of the mid
    commission_per_lot: float  # per side, account currency
    cfd: bool  # margin = lots * contract * price (else lots * contract in the base currency)
    description: str
    path: str
    volume_min: float = 0.01
    volume_max: float = 100.0
    volume_step: float = 0.01

    @property
    def point(self) -> float:
        return 10.0**-self.digits

    @property
    def pip(self) -> float:
        """5- and 3-digit quotes have a fractional pip: a pip is 10 points there."""
        return pip_size(self.digits, self.point)


def pip_size(digits: int, point: float) -> float:
    return point * 10 if digits in (3, 5) else point


SPECS: dict[str, SymbolSpec] = {
    s.name: s
    for s in (
        SymbolSpec(
            "EURUSD",
            5,
            100_000.0,
            "EUR",
            "USD",
            "EUR",
            1.08500,
            10,
            0.006,
            3.5,
            False,
            "Euro vs US Dollar",
            "Forex\\Majors\\EURUSD",
        ),
        SymbolSpec(
            "GBPUSD",
            5,
            100_000.0,
            "GBP",
            "USD",
            "GBP",
            1.27000,
            14,
            0.007,
            3.5,
            False,
            "Great Britain Pound vs US Dollar",
            "Forex\\Majors\\GBPUSD",
        ),
        SymbolSpec(
            "USDJPY",
            3,
            100_000.0,
            "USD",
            "JPY",
            "USD",
            151.500,
            12,
            0.007,
            3.5,
            False,
            "US Dollar vs Japanese Yen",
            "Forex\\Majors\\USDJPY",
        ),
        SymbolSpec(
            "XAUUSD",
            2,
            100.0,
            "XAU",
            "USD",
            "XAU",
            2350.00,
            25,
            0.012,
            5.0,
            True,
            "Gold vs US Dollar",
            "Metals\\XAUUSD",
        ),
        SymbolSpec(
            "US500", 2, 1.0, "USD", "USD", "USD", 5200.00, 50, 0.011, 0.0, True, "US 500 Cash Index", "Indices\\US500"
        ),
    )
}


class Quote:
    """The live state of one symbol; positions hold a reference so a step costs no lookups."""

    __slots__ = (
        "ask",
        "bid",
        "margin_per_lot",
        "mid",
        "profit_rate",
        "sigma",
        "spec",
        "spread_mult",
        "spread_until",
        "time_msc",
    )

    def __init__(self, spec: SymbolSpec, sigma: float) -> None:
        self.spec = spec
        self.mid = spec.start_mid
        self.bid = 0.0
        self.ask = 0.0
        self.time_msc = 0
        self.spread_mult = 1.0
        self.spread_until: int | None = None  # epoch s when a blow-out ends; None = until cleared
        self.profit_rate = 1.0  # USD per unit of the profit currency
        self.margin_per_lot = 0.0  # USD at leverage 1
        self.sigma = sigma  # per-second relative volatility
        self.requote(spec.spread_points)

    def requote(self, spread_points: float) -> None:
        spec = self.spec
        points = max(1, round(spread_points * self.spread_mult))
        point = spec.point
        self.bid = round(self.mid - points * point / 2, spec.digits)
        self.ask = round(self.bid + points * point, spec.digits)

    @property
    def spread(self) -> int:
        return round((self.ask - self.bid) / self.spec.point)


class Market:
    """Seeded random walk of mids with a jittered normal spread; one tick per symbol per step."""

    def __init__(self, rng: random.Random, t: int, volatility: float = 1.0) -> None:
        self._rng = rng
        self.volatility = volatility
        self.quotes: dict[str, Quote] = {
            name: Quote(spec, spec.daily_vol / math.sqrt(SECONDS_PER_DAY) * volatility) for name, spec in SPECS.items()
        }
        self._list = list(self.quotes.values())
        for q in self._list:
            q.time_msc = t * 1000
        self._refresh_rates()

    def step(self, t: int) -> None:
        """Advance every symbol to second `t` (ticks land inside the second that just ended)."""
        rng = self._rng
        gauss = rng.gauss
        moving = self.volatility > 0
        for q in self._list:
            if q.spread_until is not None and t >= q.spread_until:
                q.spread_mult, q.spread_until = 1.0, None
            base = q.spec.spread_points
            if moving:
                q.mid *= 1.0 + q.sigma * gauss(0.0, 1.0)
                q.requote(base * (0.85 + 0.3 * rng.random()))
            else:
                q.requote(base)
            q.time_msc = t * 1000 - rng.randrange(1000)
        self._refresh_rates()

    def _refresh_rates(self) -> None:
        usd = {"USD": 1.0}
        for q in self._list:
            s = q.spec
            if s.profit == "USD" and s.base != "USD":
                usd[s.base] = q.mid
            elif s.base == "USD" and s.profit != "USD":
                usd[s.profit] = 1.0 / q.mid
        for q in self._list:
            s = q.spec
            q.profit_rate = usd.get(s.profit, 1.0)
            if s.cfd:
                q.margin_per_lot = s.contract_size * q.mid * q.profit_rate
            else:
                q.margin_per_lot = s.contract_size * usd.get(s.base, 1.0)

    # -- knobs ---------------------------------------------------------------------------
    def set_mid(self, symbol: str, mid: float, t_ms: int) -> None:
        q = self.quotes[symbol]
        q.mid = mid
        q.requote(q.spec.spread_points)
        q.time_msc = t_ms
        self._refresh_rates()

    def blow_spread(self, symbol: str, multiplier: float, until: int | None) -> None:
        q = self.quotes[symbol]
        q.spread_mult, q.spread_until = multiplier, until
        q.requote(q.spec.spread_points)

    # -- records -------------------------------------------------------------------------
    @staticmethod
    def tick(q: Quote, offset_secs: int) -> Tick:
        msc = q.time_msc + offset_secs * 1000
        return Tick(
            time=msc // 1000,
            bid=q.bid,
            ask=q.ask,
            last=0.0,
            volume=0,
            time_msc=msc,
            flags=c.TICK_FLAG_BID | c.TICK_FLAG_ASK,
            volume_real=0.0,
        )

    @staticmethod
    def symbol_info(q: Quote, name: str) -> SymbolInfo:
        s = q.spec
        return SymbolInfo(
            select=True,
            visible=True,
            digits=s.digits,
            spread=q.spread,
            trade_mode=4,  # SYMBOL_TRADE_MODE_FULL
            bid=q.bid,
            ask=q.ask,
            point=s.point,
            trade_tick_value=s.point * s.contract_size * q.profit_rate,
            trade_tick_size=s.point,
            trade_contract_size=s.contract_size,
            volume_min=s.volume_min,
            volume_max=s.volume_max,
            volume_step=s.volume_step,
            currency_base=s.base,
            currency_profit=s.profit,
            currency_margin=s.margin,
            description=s.description,
            name=name,
            path=s.path.replace(s.name, name),
        )
