"""A synthetic but realistic fleet for benchmarking the reconciliation engine.

Everything is vectorized: every random draw is a seeded hash of a row index (polars `hash`), so the
same (accounts, positions_per_account, seed, netting_share) always yields the same frames, without
a Python loop per row and without numpy.

One *slot* is one bot trade or one foreign position. Per account there are `positions_per_account`
slots:

* hedging accounts (margin_mode 2): most slots are bot trades with an open position, matched by
  identity (the bot recorded the position identifier), by tag (no identifier, the broker comment
  carries the trade id, cut to 31 chars) or fuzzy only (no identifier, no tag); a few % slip 3-20
  pips, fill partially or have SL/TP drift at the broker; some slots are manual positions (magic 0,
  reason 0) or another EA's; some bot trades are gone at the broker (closed by SL/TP/stop-out/...,
  entry and exit deals in the deals frame, or never filled at all) and some are history the bot
  already knows is closed (`closed_at` set);
* netting accounts (margin_mode 0): bot trades on six FX symbols net into one broker position per
  symbol; every entry deal carries the trade id in its comment; some trades were closed at the broker
  by SL/TP (exit deals) while the bot still holds them; some accounts also hold a manual or another
  EA's position on a symbol the bot does not trade.

Broker symbol names carry per-account suffixes (`EURUSD.m`, `EURUSDpro`, `EURUSD-ECN`); the bot
records the plain instrument. All snapshots share one cycle time `NOW`; positions were opened
1-60 minutes before it (well past the 15 s grace window).
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime

import polars as pl

from bench.draws import pick, round_to_digits, uniform
from mt5recon import frames
from mt5recon.recon.instruments import pip_size

NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)

# instrument, digits, point, contract size, profit currency, reference price, share of hedging trades,
# USD per unit of the profit currency (USD accounts: MT5's tick value is in the deposit currency)
INSTRUMENTS: list[tuple[str, int, float, float, str, float, float, float]] = [
    ("EURUSD", 5, 0.00001, 100_000.0, "USD", 1.08500, 0.25, 1.0),
    ("GBPUSD", 5, 0.00001, 100_000.0, "USD", 1.27000, 0.15, 1.0),
    ("AUDUSD", 5, 0.00001, 100_000.0, "USD", 0.66000, 0.10, 1.0),
    ("USDCHF", 5, 0.00001, 100_000.0, "CHF", 0.88000, 0.08, 1 / 0.88),
    ("EURGBP", 5, 0.00001, 100_000.0, "GBP", 0.85500, 0.07, 1.27),
    ("USDJPY", 3, 0.001, 100_000.0, "JPY", 151.200, 0.15, 1 / 151.2),
    ("XAUUSD", 2, 0.01, 100.0, "USD", 2350.00, 0.15, 1.0),
    ("USDCAD", 5, 0.00001, 100_000.0, "CAD", 1.36000, 0.05, 1 / 1.36),
]
NETTING_INSTRUMENTS = 6  # netting bots trade the first six (FX incl. the JPY pair)
XAUUSD, USDCAD = 6, 7  # foreign positions on netting accounts sit on symbols the bot does not trade

# broker spellings of an instrument, by account: (suffix, share of accounts)
SUFFIXES: list[tuple[str, float]] = [("", 0.50), (".m", 0.20), ("pro", 0.15), ("-ECN", 0.15)]
LONG_ID_SUFFIX = "/grid-martingale-v2"  # some bots' trade ids exceed the broker's 31-char comment
COMMENT_CHARS = 31

LOGIN_BASE = 5_000_000
BOT_MAGIC_BASE = 7_000_000
OTHER_EA_MAGIC_BASE = 9_000_000
HEDGING_ID_BASE = 100_000_000
NETTING_ID_BASE = 200_000_000
DEAL_TICKET_BASE = 300_000_000
ORDER_BASE = 400_000_000

# slot kinds
OPEN, CLOSED, MISSING, MANUAL, OTHER_EA = 0, 1, 2, 3, 4
# hedging match modes
IDENTITY, TAG, FUZZY = 0, 1, 2

# shares (of slots, or of matched trades for the anomalies)
CLOSED_SHARE = 0.02
MISSING_SHARE = 0.02
MANUAL_SHARE = 0.01
OTHER_EA_SHARE = 0.01
IDENTITY_SHARE = 0.80
TAG_SHARE = 0.12  # the rest is fuzzy only
NEVER_FILLED_SHARE = 0.10  # of missing trades: no deal at all
SLIPPAGE_SHARE = 0.03
PARTIAL_SHARE = 0.02
LEVEL_DRIFT_SHARE = 0.02
NETTING_MANUAL_SHARE = 0.10  # of netting accounts
NETTING_OTHER_EA_SHARE = 0.05

# MT5 enums used here
REASON_CLIENT, REASON_EXPERT, REASON_SL, REASON_TP, REASON_SO = 0, 3, 4, 5, 6
ENTRY_IN, ENTRY_OUT = 0, 1

DIGITS = [spec[1] for spec in INSTRUMENTS]
FRAME_NAMES = ("accounts", "positions", "deals", "symbols", "expected_trades")


def instruments() -> pl.DataFrame:
    """One row per instrument of INSTRUMENTS with its pip size and money per price unit per lot (USD)."""
    return pl.DataFrame(
        {
            "sym": list(range(len(INSTRUMENTS))),
            "instrument": [s[0] for s in INSTRUMENTS],
            "digits": [s[1] for s in INSTRUMENTS],
            "point": [s[2] for s in INSTRUMENTS],
            "contract": [s[3] for s in INSTRUMENTS],
            "currency_profit": [s[4] for s in INSTRUMENTS],
            "base_price": [s[5] for s in INSTRUMENTS],
            "usd_rate": [s[7] for s in INSTRUMENTS],
        },
        schema_overrides={"sym": pl.Int32, "digits": pl.Int32},
    ).with_columns(
        pip_size(pl.col("digits"), pl.col("point")).alias("pip"),
        (pl.col("contract") * pl.col("usd_rate")).alias("money_per_unit"),
    )


def _ago(ms: pl.Expr) -> pl.Expr:
    return (pl.lit(NOW).cast(frames.UTC_MS) - pl.duration(milliseconds=ms)).cast(frames.UTC_MS)


def _accounts(n: int, seed: int, netting_share: float) -> pl.DataFrame:
    suffixes = pl.DataFrame({"suffix_idx": list(range(len(SUFFIXES))), "suffix": [s for s, _ in SUFFIXES]})
    return (
        pl.DataFrame({"a": pl.int_range(0, n, eager=True)})
        .with_columns(
            (pl.col("a") + LOGIN_BASE).alias("login"),
            (uniform("a", seed, 1) < netting_share).alias("netting"),
            pick(uniform("a", seed, 2), [s for _, s in SUFFIXES]).cast(pl.Int64).alias("suffix_idx"),
            (pl.col("a") + BOT_MAGIC_BASE).alias("bot_magic"),
            (pl.col("a") % 7 + OTHER_EA_MAGIC_BASE).alias("other_magic"),
            (uniform("a", seed, 3) < 0.3).alias("long_ids"),
            (uniform("a", seed, 4) >= 0.01).alias("deals_ok"),
            (1_000.0 + uniform("a", seed, 5) * 99_000.0).round(2).alias("balance"),
            uniform("a", seed, 6).alias("u_foreign"),
        )
        .join(suffixes, on="suffix_idx", how="left")
    )


def _slots(accounts: pl.DataFrame, per_account: int, seed: int) -> pl.DataFrame:
    """One row per bot trade or foreign position with every draw it needs."""
    hedging_symbols = pick(uniform("s", seed, 11), [s[6] for s in INSTRUMENTS])
    netting_symbols = (uniform("s", seed, 12) * NETTING_INSTRUMENTS).floor().cast(pl.Int32)
    hedging_kind = pick(
        uniform("s", seed, 13),
        [
            1 - CLOSED_SHARE - MISSING_SHARE - MANUAL_SHARE - OTHER_EA_SHARE,
            CLOSED_SHARE,
            MISSING_SHARE,
            MANUAL_SHARE,
            OTHER_EA_SHARE,
        ],
    )
    netting_kind = pick(uniform("s", seed, 13), [1 - CLOSED_SHARE - MISSING_SHARE, CLOSED_SHARE, MISSING_SHARE])
    base = (
        pl.DataFrame({"s": pl.int_range(0, accounts.height * per_account, eager=True)})
        .with_columns((pl.col("s") // per_account).alias("a"), (pl.col("s") % per_account).alias("k"))
        .join(accounts, on="a", how="left")
        .with_columns(
            pl.when(pl.col("netting")).then(netting_symbols).otherwise(hedging_symbols).alias("sym"),
            pl.when(pl.col("netting")).then(netting_kind).otherwise(hedging_kind).alias("kind"),
        )
        .join(instruments(), on="sym", how="left")
    )
    u = {name: uniform("s", seed, 20 + i) for i, name in enumerate(
        ["side", "vol", "open", "price", "levels", "sl", "tp", "mode", "slip", "slip_size", "slip_sign",
         "partial", "ratio", "drift", "drift_what", "drift_size", "latency", "exit", "exit_reason", "filled",
         "tag"]
    )}  # fmt: skip
    sign = pl.when(pl.col("dir") == 0).then(1.0).otherwise(-1.0)
    bot_trade = pl.col("kind").is_in([OPEN, CLOSED, MISSING])
    slots = base.with_columns(
        pl.when(u["side"] < 0.5).then(0).otherwise(1).cast(pl.Int32).alias("dir"),
        ((5 + (u["vol"].pow(2) * 196).floor()) / 100).alias("volume"),
        (60_000 + (u["open"] * 3_540_000).floor()).cast(pl.Int64).alias("open_ms"),
        round_to_digits(pl.col("base_price") * (1 + (u["price"] - 0.5) * 0.01), DIGITS).alias("price"),
        (u["levels"] < 0.7).alias("has_levels"),
        pl.when(pl.col("netting"))
        .then(pl.lit(TAG))
        .otherwise(pick(u["mode"], [IDENTITY_SHARE, TAG_SHARE, 1 - IDENTITY_SHARE - TAG_SHARE]))
        .alias("mode"),
        # signed slippage in pips, > 0 adverse: a few % slip 3-20 pips, the rest fill within 0.8 pips
        pl.when(u["slip"] < SLIPPAGE_SHARE)
        .then((3 + u["slip_size"] * 17) * pl.when(u["slip_sign"] < 0.7).then(1.0).otherwise(-1.0))
        .otherwise((u["slip_size"] - 0.5) * 1.6)
        .alias("slip_pips"),
        pl.when(u["partial"] < PARTIAL_SHARE).then(0.3 + u["ratio"] * 0.5).otherwise(1.0).alias("fill_ratio"),
        pl.when(u["drift"] < LEVEL_DRIFT_SHARE).then(pick(u["drift_what"], [0.5, 0.5])).alias("drift_what"),
        ((11 + u["drift_size"] * 19) * pl.when(u["drift_size"] < 0.5).then(1.0).otherwise(-1.0)).alias("drift_pips"),
        (50 + (u["latency"] * 1_450).floor()).cast(pl.Int64).alias("latency_ms"),
        u["exit"].alias("u_exit"),
        pick(u["exit_reason"], [0.45, 0.35, 0.05, 0.10, 0.05]).alias("exit_pick"),
        ~((pl.col("kind") == MISSING) & (u["filled"] < NEVER_FILLED_SHARE)).alias("filled"),
        pl.concat_str(
            pl.col("login").cast(pl.String),
            pl.lit("-"),
            pl.col("k").cast(pl.String).str.zfill(5),
            pl.lit("-"),
            (pl.col("s").hash(seed=seed + 99) % 100_000_000).cast(pl.String).str.zfill(8),
            pl.when(pl.col("long_ids")).then(pl.lit(LONG_ID_SUFFIX)).otherwise(pl.lit("")),
        ).alias("trade_id"),
        (u["sl"] * 30 + 20).alias("sl_dist"),
        (u["tp"] * 60 + 20).alias("tp_dist"),
    ).with_columns(
        pl.when(pl.col("has_levels"))
        .then(round_to_digits(pl.col("price") - sign * pl.col("sl_dist") * pl.col("pip"), DIGITS))
        .alias("sl"),
        pl.when(pl.col("has_levels"))
        .then(round_to_digits(pl.col("price") + sign * pl.col("tp_dist") * pl.col("pip"), DIGITS))
        .alias("tp"),
        round_to_digits(pl.col("price") + sign * pl.col("slip_pips") * pl.col("pip"), DIGITS).alias("fill_price"),
        pl.max_horizontal(pl.lit(0.01), (pl.col("volume") * pl.col("fill_ratio")).round(2)).alias("fill_volume"),
        _ago(pl.col("open_ms")).alias("opened_at"),
        _ago(pl.col("open_ms") - pl.col("latency_ms")).alias("pos_time"),
        # exit somewhere between the fill and one second before the cycle
        _ago(
            ((pl.col("open_ms") - pl.col("latency_ms") - 1_000) * (1 - pl.col("u_exit"))).floor().cast(pl.Int64)
        ).alias("exit_time"),
        pl.when(pl.col("netting"))
        .then(NETTING_ID_BASE + pl.col("a") * len(INSTRUMENTS) + pl.col("sym"))
        .otherwise(HEDGING_ID_BASE + pl.col("s"))
        .alias("identifier"),
        pl.concat_str(pl.col("instrument"), pl.col("suffix")).alias("broker_symbol"),
    )
    return slots.with_columns(
        # the bot's tag as the broker keeps it; fuzzy-only trades carry none
        pl.when(bot_trade & (pl.col("mode") != FUZZY))
        .then(pl.col("trade_id").str.slice(0, COMMENT_CHARS))
        .when(pl.col("kind") == OTHER_EA)
        .then(pl.lit("scalper v3"))
        .otherwise(pl.lit(""))
        .alias("comment"),
        pl.when(pl.col("kind") == MANUAL)
        .then(pl.lit(0, pl.Int64))
        .when(pl.col("kind") == OTHER_EA)
        .then(pl.col("other_magic"))
        .otherwise(pl.col("bot_magic"))
        .alias("magic"),
        pl.when(pl.col("kind") == MANUAL).then(REASON_CLIENT).otherwise(REASON_EXPERT).cast(pl.Int32).alias("reason"),
    )


def _cast(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    """Exactly the frame's declared columns and dtypes; a column this generator does not know yet
    (the schema grew) is left null, with a warning, so the benchmark keeps running."""
    schema = frames.ALL_FRAMES[name]
    unknown = [c for c in schema if c not in frame.columns]
    if unknown:
        warnings.warn(f"synthetic_fleet: {name} columns left null: {unknown}", stacklevel=2)
    return frame.select(
        [(pl.col(c) if c in frame.columns else pl.lit(None)).cast(t).alias(c) for c, t in schema.items()]
    )


def _accounts_frame(accounts: pl.DataFrame) -> pl.DataFrame:
    return _cast(
        accounts.with_columns(
            pl.lit(NOW).alias("fetched_at"),
            pl.lit(0).alias("trade_mode"),
            pl.lit(100).alias("leverage"),
            pl.lit(200).alias("limit_orders"),
            pl.lit(0).alias("margin_so_mode"),
            pl.lit(True).alias("trade_allowed"),
            pl.lit(True).alias("trade_expert"),
            pl.when(pl.col("netting")).then(0).otherwise(2).alias("margin_mode"),
            pl.lit(2).alias("currency_digits"),
            pl.lit(False).alias("fifo_close"),
            pl.lit(0.0).alias("credit"),
            pl.lit(0.0).alias("profit"),
            pl.col("balance").alias("equity"),
            (pl.col("balance") * 0.1).round(2).alias("margin"),
            (pl.col("balance") * 0.9).round(2).alias("margin_free"),
            pl.lit(1_000.0).alias("margin_level"),
            pl.lit(100.0).alias("margin_so_call"),
            pl.lit(50.0).alias("margin_so_so"),
            *[pl.lit(0.0).alias(c) for c in ("margin_initial", "margin_maintenance", "assets", "liabilities")],
            pl.lit(0.0).alias("commission_blocked"),
            pl.concat_str(pl.lit("bench "), pl.col("login").cast(pl.String)).alias("name"),
            pl.lit("Bench-Server").alias("server"),
            pl.lit("USD").alias("currency"),
            pl.lit("Bench Broker").alias("company"),
            pl.lit(True).alias("account_ok"),
            pl.lit(True).alias("positions_ok"),
            pl.lit(True).alias("orders_ok"),
        ),
        "accounts",
    )


def _symbols_frame(accounts: pl.DataFrame) -> pl.DataFrame:
    table = accounts.select("login", "suffix").join(instruments(), how="cross")
    return _cast(
        table.with_columns(
            pl.lit(NOW).alias("fetched_at"),
            pl.concat_str(pl.col("instrument"), pl.col("suffix")).alias("name"),
            pl.col("contract").alias("trade_contract_size"),
            (pl.col("point") * pl.col("contract") * pl.col("usd_rate")).alias("trade_tick_value"),
            pl.col("point").alias("trade_tick_size"),
            pl.lit(0.01).alias("volume_min"),
            pl.lit(0.01).alias("volume_step"),
        ),
        "symbols",
    )


def _expected_frame(slots: pl.DataFrame) -> pl.DataFrame:
    trades = slots.filter(pl.col("kind").is_in([OPEN, CLOSED, MISSING]))
    return _cast(
        trades.with_columns(
            pl.col("instrument").alias("symbol"),
            pl.when(pl.col("dir") == 0).then(pl.lit("buy")).otherwise(pl.lit("sell")).alias("side"),
            pl.col("bot_magic").alias("magic"),
            pl.when(~pl.col("netting") & (pl.col("mode") == IDENTITY) & pl.col("filled"))
            .then(pl.col("identifier"))
            .alias("position_id"),
            pl.when(pl.col("kind") == CLOSED).then(pl.col("exit_time")).alias("closed_at"),
        ),
        "expected_trades",
    )


def _position_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """Fill the snapshot columns a position row derives from its core fields."""
    return _cast(
        frame.with_columns(
            pl.lit(NOW).alias("fetched_at"),
            pl.col("identifier").alias("ticket"),
            pl.col("time").dt.truncate("1s").alias("time"),
            pl.col("time").alias("time_msc"),
            pl.col("time_update").dt.truncate("1s").alias("time_update"),
            pl.col("time_update").alias("time_update_msc"),
            pl.col("price_open").alias("price_current"),
            pl.lit(0.0).alias("swap"),
            pl.lit(0.0).alias("profit"),
            pl.lit("").alias("external_id"),
        ),
        "positions",
    )


def _hedging_positions(slots: pl.DataFrame) -> pl.DataFrame:
    held = slots.filter(~pl.col("netting") & pl.col("kind").is_in([OPEN, MANUAL, OTHER_EA]))
    foreign = pl.col("kind").is_in([MANUAL, OTHER_EA])
    level = {
        "sl": pl.when(pl.col("has_levels") & (pl.col("drift_what") == 0))
        .then(round_to_digits(pl.col("sl") + pl.col("drift_pips") * pl.col("pip"), DIGITS))
        .when(~pl.col("has_levels") & pl.col("drift_what").is_not_null())
        .then(
            round_to_digits(pl.col("fill_price") - pl.col("sl_dist") * pl.col("pip"), DIGITS)
        )  # set at the broker only
        .otherwise(pl.col("sl")),
        "tp": pl.when(pl.col("has_levels") & (pl.col("drift_what") == 1))
        .then(round_to_digits(pl.col("tp") + pl.col("drift_pips") * pl.col("pip"), DIGITS))
        .otherwise(pl.col("tp")),
    }
    return _position_columns(
        held.with_columns(
            pl.col("pos_time").alias("time"),
            pl.col("pos_time").alias("time_update"),
            pl.col("dir").alias("type"),
            pl.when(foreign).then(pl.col("volume")).otherwise(pl.col("fill_volume")).alias("volume"),
            pl.col("fill_price").alias("price_open"),
            *[pl.when(foreign).then(pl.lit(0.0)).otherwise(expr.fill_null(0.0)).alias(k) for k, expr in level.items()],
            pl.col("broker_symbol").alias("symbol"),
        )
    )


def _netting_positions(slots: pl.DataFrame, accounts: pl.DataFrame) -> pl.DataFrame:
    sign = pl.when(pl.col("dir") == 0).then(1.0).otherwise(-1.0)
    held = slots.filter(pl.col("netting") & (pl.col("kind") == OPEN))
    net = (
        held.group_by("a", "login", "sym", "identifier", "broker_symbol", "bot_magic", "digits")
        .agg(
            (sign * pl.col("fill_volume")).sum().round(2).alias("net"),
            ((pl.col("fill_price") * pl.col("fill_volume")).sum() / pl.col("fill_volume").sum()).alias("vwap"),
            pl.col("pos_time").min().alias("time"),
            pl.col("pos_time").max().alias("time_update"),
            pl.col("comment").sort_by("pos_time").first().alias("comment"),
        )
        .filter(pl.col("net").abs() >= 0.005)
        .with_columns(
            pl.when(pl.col("net") > 0).then(0).otherwise(1).alias("type"),
            pl.col("net").abs().alias("volume"),
            round_to_digits(pl.col("vwap"), DIGITS).alias("price_open"),
            pl.col("bot_magic").alias("magic"),
            pl.lit(REASON_EXPERT).alias("reason"),
            pl.lit(0.0).alias("sl"),
            pl.lit(0.0).alias("tp"),
            pl.col("broker_symbol").alias("symbol"),
        )
    )
    # a manual XAUUSD or another EA's USDCAD position on some netting accounts, where the bot trades neither
    table = instruments()
    foreign = [
        accounts.filter(pl.col("netting") & (pl.col("u_foreign") < share)).with_columns(
            pl.lit(sym, pl.Int32).alias("sym"),
            (pl.lit(0, pl.Int64) if manual else pl.col("other_magic")).alias("magic"),
            pl.lit(REASON_CLIENT if manual else REASON_EXPERT, pl.Int32).alias("reason"),
        )
        for sym, manual, share in ((XAUUSD, True, NETTING_MANUAL_SHARE), (USDCAD, False, NETTING_OTHER_EA_SHARE))
    ]
    extra = (
        pl.concat(foreign, how="vertical")
        .join(table, on="sym", how="left")
        .with_columns(
            (NETTING_ID_BASE + pl.col("a") * len(INSTRUMENTS) + pl.col("sym")).alias("identifier"),
            _ago(600_000 + (pl.col("u_foreign") * 3_000_000).floor().cast(pl.Int64)).alias("time"),
            pl.lit(0).alias("type"),
            pl.lit(0.1).alias("volume"),
            pl.col("base_price").alias("price_open"),
            pl.lit(0.0).alias("sl"),
            pl.lit(0.0).alias("tp"),
            pl.concat_str(pl.col("instrument"), pl.col("suffix")).alias("symbol"),
            pl.lit("").alias("comment"),
        )
        .with_columns(pl.col("time").alias("time_update"))
    )
    return pl.concat([_position_columns(net), _position_columns(extra)], how="vertical")


def _deals_frame(slots: pl.DataFrame) -> pl.DataFrame:
    filled = slots.filter(pl.col("filled"))
    entries = filled.select(
        "login",
        pl.col("pos_time").alias("time_msc"),
        pl.col("dir").alias("type"),
        pl.lit(ENTRY_IN).alias("entry"),
        "magic",
        pl.col("identifier").alias("position_id"),
        "reason",
        pl.col("fill_volume").alias("volume"),
        pl.col("fill_price").alias("price"),
        pl.col("broker_symbol").alias("symbol"),
        "comment",
    )
    # exits of trades the broker closed: by SL / TP / stop-out / by hand / another EA, or by the bot (history)
    exit_reason = (
        pl.when(pl.col("kind") == CLOSED)
        .then(REASON_EXPERT)
        .otherwise(
            pl.col("exit_pick").replace_strict(
                {0: REASON_SL, 1: REASON_TP, 2: REASON_SO, 3: REASON_CLIENT, 4: REASON_EXPERT}, return_dtype=pl.Int32
            )
        )
    )
    exits = (
        filled.filter(pl.col("kind").is_in([CLOSED, MISSING]))
        .with_columns(exit_reason.alias("exit_reason"))
        .select(
            "login",
            pl.col("exit_time").alias("time_msc"),
            (1 - pl.col("dir")).alias("type"),
            pl.lit(ENTRY_OUT).alias("entry"),
            pl.when((pl.col("kind") == MISSING) & (pl.col("exit_reason") == REASON_EXPERT))
            .then(pl.col("other_magic"))
            .when(pl.col("exit_reason") == REASON_CLIENT)
            .then(pl.lit(0, pl.Int64))
            .otherwise(pl.col("bot_magic"))
            .alias("magic"),
            pl.col("identifier").alias("position_id"),
            pl.col("exit_reason").alias("reason"),
            pl.col("fill_volume").alias("volume"),
            pl.col("fill_price").alias("price"),
            pl.col("broker_symbol").alias("symbol"),
            pl.when(pl.col("exit_reason") == REASON_SL)
            .then(pl.lit("[sl]"))
            .when(pl.col("exit_reason") == REASON_TP)
            .then(pl.lit("[tp]"))
            .when(pl.col("exit_reason") == REASON_SO)
            .then(pl.lit("[so]"))
            .otherwise(pl.lit(""))
            .alias("comment"),
        )
    )
    deals = pl.concat([entries, exits], how="vertical_relaxed").sort("time_msc", "position_id", "entry")
    row = pl.int_range(0, pl.len(), dtype=pl.Int64)
    return _cast(
        deals.with_columns(
            pl.lit(NOW).alias("fetched_at"),
            (DEAL_TICKET_BASE + row).alias("ticket"),
            (ORDER_BASE + row).alias("order"),
            pl.col("time_msc").dt.truncate("1s").alias("time"),
            *[pl.lit(0.0).alias(c) for c in ("commission", "swap", "profit", "fee")],
            pl.lit("").alias("external_id"),
        ),
        "deals",
    )


def synthetic_fleet(
    accounts: int, positions_per_account: int, seed: int, netting_share: float = 0.3
) -> dict[str, pl.DataFrame]:
    """Engine inputs for `accounts` terminals with `positions_per_account` bot trades/foreign positions each.

    Keys: accounts, positions, deals, symbols, expected_trades, each cast to its `mt5recon.frames` schema.
    Hedging accounts hold about `positions_per_account` positions each; a netting account holds one
    position per traded symbol (its trades net), so the fleet's position count is below
    accounts x positions_per_account when netting_share > 0.
    """
    if accounts <= 0 or positions_per_account <= 0:
        raise ValueError("accounts and positions_per_account must be positive")
    if not 0.0 <= netting_share <= 1.0:
        raise ValueError("netting_share must be within [0, 1]")
    acc = _accounts(accounts, seed, netting_share)
    slots = _slots(acc, positions_per_account, seed)
    positions = pl.concat([_hedging_positions(slots), _netting_positions(slots, acc)], how="vertical").sort(
        "login", "ticket"
    )
    return {
        "accounts": _accounts_frame(acc),
        "positions": positions,
        "deals": _deals_frame(slots),
        "symbols": _symbols_frame(acc),
        "expected_trades": _expected_frame(slots).sort("login", "opened_at"),
    }
