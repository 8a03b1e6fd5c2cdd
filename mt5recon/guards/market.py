"""The market guard (issue 7): per broker symbol, each cycle, from the quotes the cycle fetched.

Three conditions, each an episode with hysteresis, judged vectorized over all symbols at once:

    gap          the mid moved more than a per-symbol threshold between two consecutive quotes
                 (defaults per asset class, overridable per symbol); it clears on the next quote
                 that does not gap. The first quote of a symbol never gaps.
    spread       the spread (in pips) is beyond `spread_multiple` x the rolling median of the
                 previous quotes' spreads (once `min_spread_samples` are known) or beyond an absolute
                 per-symbol cap; it clears when the spread is back under `rearm_fraction` of that limit.
    stale_quote  the symbol's newest quote is older than `stale_quote_secs` at the cycle's time;
                 it clears once a fresh quote comes in.

The same broker symbol is quoted to several accounts: one quote per symbol is kept, the newest.
Gap and spread are judged only on a quote newer than the last one seen (a frozen quote carries no
new information); staleness on every quote. A symbol without a quote this cycle is not judged
and keeps its state. An alert row is written when a condition starts (`raised`) and when it ends
(`cleared`), nothing while it lasts. Positions on a symbol with any active condition are at risk.

Pure and deterministic: the result depends on the inputs' contents, never on their row order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Self

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mt5recon import frames
from mt5recon.recon.instruments import normalized_symbol, pip_size

ASSET_CLASSES = ("fx", "metal", "index", "crypto", "other")
GAP, SPREAD, STALE_QUOTE = "gap", "spread", "stale_quote"
GUARDS = (GAP, SPREAD, STALE_QUOTE)
RAISED, CLEARED = "raised", "cleared"

# first segment of the broker's symbol path ("Forex\\Majors\\EURUSD") -> asset class
_CLASS_BY_PATH_ROOT = {"forex": "fx", "metals": "metal", "indices": "index", "crypto": "crypto"}
# without a path: guesses from the (normalized) symbol name
_CURRENCIES = (
    "USD|EUR|GBP|JPY|CHF|AUD|NZD|CAD|SEK|NOK|DKK|PLN|HUF|CZK|TRY|ZAR|MXN|SGD|HKD|CNH|CNY|ILS|THB|INR|KRW|BRL|RUB"
)
_FX_NAME = rf"^({_CURRENCIES})({_CURRENCIES})$"
_METAL_NAME = r"^(XAU|XAG|XPT|XPD|GOLD|SILVER)"
_CRYPTO_NAME = r"^(BTC|ETH|LTC|XRP|BCH|SOL|ADA|DOGE|DOT)"
_INDEX_NAME = r"^[A-Z]{2,6}[0-9]{2,5}$"  # US500, NAS100, GER40, JP225
_ISO = "%Y-%m-%dT%H:%M:%S%.6fZ"


class SymbolGuard(BaseModel):
    """Per broker symbol overrides: a gap threshold replacing the asset class's, a spread cap."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gap_pct: float | None = Field(default=None, gt=0)
    max_spread_pips: float | None = Field(default=None, gt=0)


def _default_gap_pct_by_class() -> dict[str, float]:
    return {"fx": 2.0, "metal": 4.0, "index": 5.0, "crypto": 10.0, "other": 5.0}


class MarketGuardConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    gap_pct_by_class: dict[str, float] = Field(
        default_factory=_default_gap_pct_by_class,
        description="asset class (fx, metal, index, crypto, other) -> gap threshold in %; a class "
        "left out falls back to `other`, and without `other` it is not gap-checked",
    )
    spread_multiple: float = Field(default=5.0, gt=1, description="spread alert beyond this x the rolling median")
    spread_window: int = Field(default=60, ge=1, description="spreads kept per symbol for the rolling median")
    min_spread_samples: int = Field(default=10, ge=1, description="no multiple-of-median check before that")
    stale_quote_secs: float = Field(default=120.0, gt=0)
    symbols: dict[str, SymbolGuard] = Field(default_factory=dict, description="broker symbol -> overrides")
    rearm_fraction: float = Field(
        default=0.8, gt=0, le=1, description="a spread alert clears under this fraction of its limit"
    )

    @model_validator(mode="after")
    def _valid(self) -> Self:
        unknown = sorted(set(self.gap_pct_by_class) - set(ASSET_CLASSES))
        if unknown:
            raise ValueError(f"unknown asset classes {unknown}: expected some of {list(ASSET_CLASSES)}")
        bad = sorted(k for k, v in self.gap_pct_by_class.items() if not v > 0)
        if bad:
            raise ValueError(f"gap thresholds must be > 0 (classes {bad})")
        if self.min_spread_samples > self.spread_window:
            raise ValueError(
                f"min_spread_samples ({self.min_spread_samples}) exceeds spread_window ({self.spread_window}): "
                "the multiple-of-median check would never run"
            )
        return self


STATE_SCHEMA = pl.Schema(
    {
        "symbol": pl.String(),
        "last_mid": pl.Float64(),
        "last_quote_at": frames.UTC_US,
        "spreads": pl.List(pl.Float64()),  # pips, most recent last, at most spread_window
        "gap_active": pl.Boolean(),
        "spread_active": pl.Boolean(),
        "stale_active": pl.Boolean(),
        "gap_since": frames.UTC_US,
        "spread_since": frames.UTC_US,
        "stale_since": frames.UTC_US,
        "updated_at": frames.UTC_US,
    }
)

ALERT_SCHEMA = pl.Schema(
    {
        "alert_id": pl.String(),  # symbol|guard|episode start: shared by an episode's raised and cleared rows
        "login": pl.Int64(),  # null: a market alert concerns every account quoting the symbol
        "symbol": pl.String(),
        "guard": pl.String(),
        "event": pl.String(),
        "value": pl.Float64(),  # gap % (absolute), spread pips, quote age secs
        "threshold": pl.Float64(),  # the raise limit; on `cleared` the level it went back under
        "detail": pl.String(),
        "since": frames.UTC_US,
        "at": frames.UTC_US,
    }
)

FLAGGED_SCHEMA = pl.Schema({"symbol": pl.String(), "reasons": pl.String()})
AT_RISK_SCHEMA = pl.Schema({"login": pl.Int64(), "ticket": pl.Int64(), "symbol": pl.String(), "reasons": pl.String()})


@dataclass(frozen=True)
class MarketResult:
    state: pl.DataFrame  # every symbol's state after the cycle (STATE_SCHEMA), one row per symbol
    alerts: pl.DataFrame  # this cycle's transitions (ALERT_SCHEMA)
    flagged: pl.DataFrame  # symbols with an active condition: symbol, reasons (comma-joined guards)
    at_risk: pl.DataFrame  # positions on flagged symbols: login, ticket, symbol, reasons


def empty_state() -> pl.DataFrame:
    return pl.DataFrame(schema=STATE_SCHEMA)


def asset_class(path: pl.Expr, name: pl.Expr) -> pl.Expr:
    """The broker's path decides (`Forex\\...` -> fx, `Metals` -> metal, `Indices` -> index,
    `Crypto` -> crypto, any other root -> other); without a path the symbol name is guessed from."""
    root = path.str.split("\\").list.first().str.strip_chars().str.to_lowercase()
    by_path = root.replace_strict(_CLASS_BY_PATH_ROOT, default="other", return_dtype=pl.String)
    norm = normalized_symbol(name)
    by_name = (
        pl.when(norm.str.contains(_METAL_NAME))
        .then(pl.lit("metal"))
        .when(norm.str.contains(_CRYPTO_NAME))
        .then(pl.lit("crypto"))
        .when(norm.str.contains(_FX_NAME))
        .then(pl.lit("fx"))
        .when(norm.str.contains(_INDEX_NAME))
        .then(pl.lit("index"))
        .otherwise(pl.lit("other"))
    )
    return pl.when(root.is_not_null() & (root != "")).then(by_path).otherwise(by_name)


def _latest_quotes(ticks: pl.DataFrame) -> pl.DataFrame:
    """One quote per broker symbol: the newest (ties broken on the values, never on row order)."""
    return (
        ticks.select(
            "symbol",
            "login",
            "bid",
            "ask",
            pl.coalesce("time_msc", "time").cast(frames.UTC_US).alias("quote_at"),
        )
        .filter(
            pl.col("symbol").is_not_null()
            & pl.col("quote_at").is_not_null()
            & (pl.col("bid") > 0)
            & (pl.col("ask") >= pl.col("bid"))
        )
        .sort("symbol", "quote_at", "login", "bid", "ask")
        .unique("symbol", keep="last", maintain_order=True)
        .select(
            "symbol",
            "quote_at",
            ((pl.col("bid") + pl.col("ask")) / 2).alias("mid"),
            (pl.col("ask") - pl.col("bid")).alias("spread_price"),
        )
    )


def _specs(symbols: pl.DataFrame) -> pl.DataFrame:
    """One spec per broker symbol name: pip size and the path (null where the frame has none)."""
    path = pl.col("path").cast(pl.String) if "path" in symbols.columns else pl.lit(None, dtype=pl.String)
    return (
        symbols.select(pl.col("name").alias("symbol"), "digits", "point", path.alias("path"), "fetched_at", "login")
        .filter(pl.col("symbol").is_not_null())
        .sort("symbol", "fetched_at", "login", "digits", "point", "path", nulls_last=False)
        .unique("symbol", keep="last", maintain_order=True)
        .select("symbol", pip_size(pl.col("digits"), pl.col("point")).alias("pip"), "path")
    )


def _overrides(config: MarketGuardConfig) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {"symbol": s, "o_gap_pct": g.gap_pct, "o_max_spread_pips": g.max_spread_pips}
            for s, g in sorted(config.symbols.items())
        ],
        schema={"symbol": pl.String(), "o_gap_pct": pl.Float64(), "o_max_spread_pips": pl.Float64()},
    )


def _since(active: str, was: str, since: str, now: pl.Expr) -> pl.Expr:
    return (
        pl.when(pl.col(active) & ~pl.col(was))
        .then(now)
        .when(pl.col(active))
        .then(pl.col(since))
        .otherwise(pl.lit(None, dtype=frames.UTC_US))
    )


def _num(expr: pl.Expr, decimals: int = 2) -> pl.Expr:
    return expr.round(decimals).cast(pl.String)


def advance_market(
    state: pl.DataFrame,
    ticks: pl.DataFrame,
    symbols: pl.DataFrame,
    positions: pl.DataFrame,
    config: MarketGuardConfig,
    *,
    at: datetime,
) -> MarketResult:
    """Advance the per-symbol `state` (STATE_SCHEMA, as stored; empty at first) by the cycle at `at`.

    `ticks`, `symbols`, `positions`: the cycle's frames (frames.TICKS, SYMBOLS, POSITIONS). A
    `path` column on `symbols`, where present, decides the asset class; otherwise it is guessed
    from the symbol name.
    """
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    now = pl.lit(at).cast(frames.UTC_US)
    observed = (
        _latest_quotes(ticks)
        .join(_specs(symbols), on="symbol", how="left")
        .join(_overrides(config), on="symbol", how="left")
        .with_columns(
            asset_class(pl.col("path"), pl.col("symbol")).alias("asset_class"),
            pl.lit(True).alias("quoted"),
        )
    )
    default_gap = config.gap_pct_by_class.get("other")
    observed = observed.with_columns(
        pl.coalesce(
            "o_gap_pct",
            pl.col("asset_class").replace_strict(config.gap_pct_by_class, default=default_gap, return_dtype=pl.Float64),
        ).alias("gap_threshold"),
        (pl.col("spread_price") / pl.col("pip")).round(6).alias("spread_pips"),
    )

    prior = state.select(list(STATE_SCHEMA)).cast(dict(STATE_SCHEMA))  # type: ignore[arg-type]
    joined = prior.join(observed, on="symbol", how="full", coalesce=True).with_columns(
        pl.col("quoted").fill_null(False),
        pl.col("gap_active").fill_null(False).alias("was_gap"),
        pl.col("spread_active").fill_null(False).alias("was_spread"),
        pl.col("stale_active").fill_null(False).alias("was_stale"),
        pl.col("spreads").fill_null(pl.lit([], dtype=pl.List(pl.Float64))),
    )
    fresh = pl.col("quoted") & (pl.col("last_quote_at").is_null() | (pl.col("quote_at") > pl.col("last_quote_at")))
    samples = pl.col("spreads").list.len()
    median = pl.col("spreads").list.median()
    judged = joined.with_columns(
        fresh.alias("fresh"),
        median.alias("median"),
        pl.when(fresh & (pl.col("last_mid") > 0))
        .then((pl.col("mid") / pl.col("last_mid") - 1) * 100)
        .alias("gap_signed"),
        pl.min_horizontal(
            pl.when((samples >= config.min_spread_samples) & (median > 0)).then(median * config.spread_multiple),
            pl.col("o_max_spread_pips"),
        ).alias("spread_limit"),
        pl.when(pl.col("quoted"))
        .then((now - pl.max_horizontal("quote_at", "last_quote_at")).dt.total_microseconds().cast(pl.Float64) / 1e6)
        .alias("quote_age_secs"),
    ).with_columns(
        pl.col("gap_signed").abs().alias("gap_pct"),
        (pl.col("spread_limit") * config.rearm_fraction).alias("spread_rearm"),
        (pl.col("fresh") & pl.col("spread_pips").is_not_null()).alias("spread_judged"),
    )
    gapping = (pl.col("gap_pct") > pl.col("gap_threshold")).fill_null(False)
    widened = (
        pl.when(pl.col("was_spread"))
        .then((pl.col("spread_pips") >= pl.col("spread_rearm")).fill_null(False))
        .otherwise((pl.col("spread_pips") > pl.col("spread_limit")).fill_null(False))
    )
    stale = (pl.col("quote_age_secs") > config.stale_quote_secs).fill_null(False)
    advanced = judged.with_columns(
        pl.when(pl.col("fresh")).then(gapping).otherwise(pl.col("was_gap")).alias("gap_active"),
        pl.when(pl.col("spread_judged")).then(widened).otherwise(pl.col("was_spread")).alias("spread_active"),
        pl.when(pl.col("quoted")).then(stale).otherwise(pl.col("was_stale")).alias("stale_active"),
        *[pl.col(f"{g}_since").alias(f"{g}_since_before") for g in ("gap", "spread", "stale")],
    ).with_columns(
        _since("gap_active", "was_gap", "gap_since", now).alias("gap_since"),
        _since("spread_active", "was_spread", "spread_since", now).alias("spread_since"),
        _since("stale_active", "was_stale", "stale_since", now).alias("stale_since"),
    )

    new_state = advanced.select(
        "symbol",
        pl.when(pl.col("fresh")).then(pl.col("mid")).otherwise(pl.col("last_mid")).alias("last_mid"),
        pl.when(pl.col("fresh")).then(pl.col("quote_at")).otherwise(pl.col("last_quote_at")).alias("last_quote_at"),
        pl.when(pl.col("spread_judged"))
        .then(pl.concat_list("spreads", "spread_pips").list.tail(config.spread_window))
        .otherwise(pl.col("spreads"))
        .alias("spreads"),
        "gap_active",
        "spread_active",
        "stale_active",
        "gap_since",
        "spread_since",
        "stale_since",
        pl.when(pl.col("quoted")).then(now).otherwise(pl.col("updated_at")).alias("updated_at"),
    ).cast(dict(STATE_SCHEMA))  # type: ignore[arg-type]

    alerts = _alerts(advanced, config, now)
    flagged = (
        new_state.select(
            "symbol",
            pl.concat_str(
                [
                    pl.when(pl.col("gap_active")).then(pl.lit(GAP)),
                    pl.when(pl.col("spread_active")).then(pl.lit(SPREAD)),
                    pl.when(pl.col("stale_active")).then(pl.lit(STALE_QUOTE)),
                ],
                separator=",",
                ignore_nulls=True,
            ).alias("reasons"),
        )
        .filter(pl.col("reasons") != "")
        .sort("symbol")
    )
    at_risk = (
        positions.select("login", "ticket", "symbol")
        .unique()
        .join(flagged, on="symbol", how="inner")
        .select(list(AT_RISK_SCHEMA))
        .cast(dict(AT_RISK_SCHEMA))  # type: ignore[arg-type]
        .sort("login", "ticket", "symbol")
    )
    return MarketResult(
        state=new_state.sort("symbol"),
        alerts=alerts,
        flagged=flagged.cast(dict(FLAGGED_SCHEMA)),  # type: ignore[arg-type]
        at_risk=at_risk,
    )


def _alerts(advanced: pl.DataFrame, config: MarketGuardConfig, now: pl.Expr) -> pl.DataFrame:
    """One row per transition: raised (inactive -> active) and cleared (active -> inactive)."""
    sym = pl.col("symbol")
    stale_secs = pl.lit(config.stale_quote_secs, dtype=pl.Float64)
    median_note = pl.when(pl.col("median").is_not_null()).then(
        pl.format(" (rolling median {} pips)", _num(pl.col("median"), 3))
    )
    # guard -> (active, was active, since before the cycle, value, raise limit, cleared level, details)
    guards: list[tuple[str, str, str, str, pl.Expr, pl.Expr, pl.Expr, pl.Expr, pl.Expr]] = [
        (
            GAP,
            "gap_active",
            "was_gap",
            "gap_since",
            pl.col("gap_pct"),
            pl.col("gap_threshold"),
            pl.col("gap_threshold"),
            pl.format(
                "{} mid moved {} % between quotes ({} -> {}), beyond {} %",
                sym,
                _num(pl.col("gap_signed"), 3),
                pl.col("last_mid").cast(pl.String),
                pl.col("mid").cast(pl.String),
                _num(pl.col("gap_threshold"), 3),
            ),
            pl.format(
                "{} quotes without a gap again ({} %, threshold {} %)",
                sym,
                _num(pl.col("gap_signed").fill_null(0.0), 3),
                _num(pl.col("gap_threshold"), 3),
            ),
        ),
        (
            SPREAD,
            "spread_active",
            "was_spread",
            "spread_since",
            pl.col("spread_pips"),
            pl.col("spread_limit"),
            pl.col("spread_rearm"),
            pl.concat_str(
                [
                    pl.format(
                        "{} spread {} pips, beyond {} pips",
                        sym,
                        _num(pl.col("spread_pips"), 3),
                        _num(pl.col("spread_limit"), 3),
                    ),
                    median_note,
                ],
                ignore_nulls=True,
            ),
            pl.concat_str(
                [
                    pl.format("{} spread back to {} pips", sym, _num(pl.col("spread_pips"), 3)),
                    pl.when(pl.col("spread_rearm").is_not_null()).then(
                        pl.format(", under {} pips", _num(pl.col("spread_rearm"), 3))
                    ),
                    median_note,
                ],
                ignore_nulls=True,
            ),
        ),
        (
            STALE_QUOTE,
            "stale_active",
            "was_stale",
            "stale_since",
            pl.col("quote_age_secs"),
            stale_secs,
            stale_secs,
            pl.format(
                "{} newest quote is {} s old, beyond {} s", sym, _num(pl.col("quote_age_secs"), 1), _num(stale_secs, 1)
            ),
            pl.format("{} quotes fresh again ({} s old)", sym, _num(pl.col("quote_age_secs"), 1)),
        ),
    ]
    parts = []
    for guard, active, was, since, value, limit, level, raised, cleared in guards:
        is_raised = pl.col(active) & ~pl.col(was)
        is_cleared = ~pl.col(active) & pl.col(was)
        # the episode start: this cycle for a raise, the stored start for a clear (at if unknown)
        start = pl.when(is_raised).then(now).otherwise(pl.coalesce(pl.col(f"{since}_before"), now))
        parts.append(
            advanced.filter(is_raised | is_cleared).select(
                pl.concat_str([sym, pl.lit(guard), start.dt.strftime(_ISO)], separator="|").alias("alert_id"),
                pl.lit(None, dtype=pl.Int64).alias("login"),
                sym,
                pl.lit(guard).alias("guard"),
                pl.when(is_raised).then(pl.lit(RAISED)).otherwise(pl.lit(CLEARED)).alias("event"),
                value.alias("value"),
                pl.when(is_raised).then(limit).otherwise(level).alias("threshold"),
                pl.when(is_raised).then(raised).otherwise(cleared).alias("detail"),
                start.alias("since"),
                now.alias("at"),
            )
        )
    return (
        pl.concat(parts, how="vertical_relaxed")
        .cast(dict(ALERT_SCHEMA))  # type: ignore[arg-type]
        .sort("symbol", "guard", "event")
    )
