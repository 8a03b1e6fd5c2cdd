"""Find which broker comments carry which bot trade ids, with equality joins only.

A comment carries a trade's tag when it is the trade id, the id cut short by the broker (MT5
comments hold about 31 characters), or longer text containing the id, and it has at least
MIN_TAG_CHARS characters. Joining trades to comments on (login, magic) and then testing each pair
grows with the square of trades per account (29 M candidate rows for 290 k tags at 10,000
accounts); here every test is an equality join on the exact text instead:

- prefix: for each comment length L in use, join the first L characters of each trade id;
- contains: for each trade id length K in use, join the K-character windows of longer comments.
"""

from __future__ import annotations

import polars as pl

MIN_TAG_CHARS = 6  # a comment shorter than this is too weak to identify a trade
_TEXT = "_tag_text"
_LEN = "_tag_len"


def carries_tag(comment: pl.Expr, trade_id: pl.Expr) -> pl.Expr:
    """The same test as an expression, for pairs already side by side."""
    text = comment.str.strip_chars()
    return (text.str.len_chars() >= MIN_TAG_CHARS) & (
        trade_id.str.starts_with(text) | text.str.contains(trade_id, literal=True)
    )


def tag_pairs(trades: pl.DataFrame, texts: pl.DataFrame, key: str) -> pl.DataFrame:
    """login, trade_id, `key` for every text row (same login and magic) whose comment carries the trade's tag.

    `trades` needs login, magic, trade_id; `texts` needs login, magic, comment and `key`.
    """
    schema = pl.Schema({"login": pl.Int64(), "trade_id": pl.String(), key: texts.schema[key]})
    ids = trades.filter(pl.col("magic").is_not_null()).select("login", "magic", "trade_id").unique()
    comments = (
        texts.join(ids.select("login", "magic").unique(), on=["login", "magic"], how="semi")
        .select("login", "magic", key, pl.col("comment").str.strip_chars().alias(_TEXT))
        .with_columns(pl.col(_TEXT).str.len_chars().alias(_LEN))
        .filter(pl.col(_LEN) >= MIN_TAG_CHARS)
    )
    if ids.height == 0 or comments.height == 0:
        return pl.DataFrame(schema=schema)
    ids = ids.with_columns(pl.col("trade_id").str.len_chars().alias(_LEN))
    parts = [_prefixes(ids, comments, length) for length in comments[_LEN].unique().sort()]
    parts += [_windows(ids, comments, length) for length in ids[_LEN].unique().sort()]
    found = pl.concat([p.select("login", "trade_id", key) for p in parts], how="vertical")
    return found.unique().cast(dict(schema))  # type: ignore[arg-type]


def _prefixes(ids: pl.DataFrame, comments: pl.DataFrame, length: int) -> pl.DataFrame:
    """Comments of `length` characters that equal the first `length` characters of a trade id."""
    cut = ids.filter(pl.col(_LEN) >= length).select(
        "login", "magic", "trade_id", pl.col("trade_id").str.slice(0, length).alias(_TEXT)
    )
    return cut.join(comments.filter(pl.col(_LEN) == length), on=["login", "magic", _TEXT], how="inner")


def _windows(ids: pl.DataFrame, comments: pl.DataFrame, length: int) -> pl.DataFrame:
    """Comments longer than `length` that contain a `length`-character trade id somewhere."""
    longer = comments.filter(pl.col(_LEN) > length)
    if longer.height == 0:
        return longer.with_columns(pl.lit(None, dtype=pl.String).alias("trade_id"))
    windows = (
        longer.with_columns(pl.int_ranges(0, pl.col(_LEN) - length + 1).alias("_start"))
        .explode("_start")
        .with_columns(pl.col(_TEXT).str.slice(pl.col("_start"), length).alias("trade_id"))
    )
    return windows.join(
        ids.filter(pl.col(_LEN) == length).select("login", "magic", "trade_id"),
        on=["login", "magic", "trade_id"],
        how="inner",
    )
