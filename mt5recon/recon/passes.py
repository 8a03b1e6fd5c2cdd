"""A large fleet goes through the engine in passes over ranges of logins, so its working frames
are those of one range at a time (measured at 10,000 accounts in one pass: ~6x the inputs' size).

Every rule of the engine reads one account at a time (matching, deals, quarantine, staleness,
magics are all joined on `login`), so a pass over a login range gives exactly that range's
rows of the one-pass result; passes concatenated in login order, with the per-account frames
put back in the accounts' order, are identical to one pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import polars as pl

from mt5recon.login_ranges import in_range, login_ranges

ACCOUNTS_PER_PASS = 2_500
"""Logins per pass: below it a fleet is reconciled in one pass (no change at 1,000 accounts);
at 10,000 accounts four passes hold the engine's working set to a quarter."""

Frames = Mapping[str, pl.DataFrame | None]


def _in_range(frame: pl.DataFrame | None, first: int, last: int) -> pl.DataFrame | None:
    return frame if frame is None or "login" not in frame.columns else in_range(frame, first, last)


def by_login_range(frames: Frames, accounts_per_pass: int) -> Iterator[Frames]:
    """`frames` (one of them "accounts") one login range at a time, made as they are asked for;
    all at once when they fit one pass or when an account has no login (it belongs to no range)."""
    accounts = frames["accounts"]
    if accounts is None:
        raise ValueError("an accounts frame is required")
    ranges = login_ranges(accounts, accounts_per_pass)
    if len(ranges) <= 1 or accounts["login"].null_count():
        yield frames
        return
    for first, last in ranges:
        yield {name: _in_range(frame, first, last) for name, frame in frames.items()}


def in_accounts_order(frame: pl.DataFrame, accounts: pl.DataFrame) -> pl.DataFrame:
    """Per-account rows (one per login) in the order the accounts frame lists them."""
    order = accounts.select("login").unique("login", keep="first", maintain_order=True).with_row_index("__order")
    return frame.join(order, on="login", how="left").sort("__order", maintain_order=True).drop("__order")
