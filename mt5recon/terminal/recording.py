"""Record live snapshots in the recorded-snapshot format, and replay them as snapshots.

Layout: `<dir>/<frame>/<cycle stamp>.parquet`, one folder per frame (`accounts`, `positions`,
`orders`, `deals`, `ticks`, `symbols`, `expected_trades`). Every row carries `login` and
`fetched_at`; one cycle is one distinct `fetched_at`. Recorded frames are the connector's output
before validation, so a replay quarantines and reconciles exactly as the live cycle did.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl

from mt5recon import frames
from mt5recon.snapshot import Snapshot

EXPECTED = "expected_trades"


def _stamp(at: datetime) -> str:
    return at.strftime("%Y%m%dT%H%M%S%fZ")


def record_cycle(
    directory: Path, snapshot: Snapshot, expected_trades: pl.DataFrame | None, fetched_at: datetime
) -> None:
    """Append one cycle: each frame to its folder, written to a temp name then renamed (no torn files)."""
    parts = dict(snapshot.frames())
    if expected_trades is not None:
        parts[EXPECTED] = expected_trades.with_columns(pl.lit(fetched_at).cast(frames.UTC_US).alias("fetched_at"))
    for name, frame in parts.items():
        folder = directory / name
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{_stamp(fetched_at)}.parquet"
        partial = target.with_suffix(".parquet.partial")
        frame.write_parquet(partial)
        partial.replace(target)


class Replay:
    """Reads a recorded directory back, one cycle at a time."""

    def __init__(self, directory: Path) -> None:
        if not (directory / "accounts").is_dir():
            raise FileNotFoundError(f"{directory} is not a recording: no accounts/ folder")
        self.directory = directory

    def _scan(self, name: str) -> pl.LazyFrame | None:
        folder = self.directory / name
        files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
        single = self.directory / f"{name}.parquet"
        if not files and single.exists():
            files = [single]
        return pl.scan_parquet(files) if files else None

    def cycles(self) -> list[datetime]:
        accounts = self._scan("accounts")
        if accounts is None:
            return []
        return accounts.select(pl.col("fetched_at").unique().sort()).collect()["fetched_at"].to_list()

    def _frame(self, name: str, at: datetime) -> pl.DataFrame:
        scan = self._scan(name)
        if scan is None:
            return frames.empty(name)
        # values stay as recorded: validation casts, and quarantines what does not fit, with the raw value
        picked = scan.filter(pl.col("fetched_at") == at).collect()
        return picked.select([c for c in frames.ALL_FRAMES[name] if c in picked.columns])

    def snapshot(self, at: datetime) -> Snapshot:
        parts = {name: self._frame(name, at) for name in frames.SNAPSHOT_FRAMES}
        accounts = parts["accounts"]
        failed = accounts.filter(~(pl.col("account_ok") & pl.col("positions_ok")))
        errors = {login: "recorded as failed" for login in failed["login"].to_list()}
        return Snapshot(
            accounts=accounts,
            positions=parts["positions"],
            orders=parts["orders"],
            deals=parts["deals"],
            ticks=parts["ticks"],
            symbols=parts["symbols"],
            errors=errors,
        )

    def expected_trades(self, at: datetime) -> pl.DataFrame | None:
        """The expected trades as recorded with this cycle, or None when they were not recorded."""
        scan = self._scan(EXPECTED)
        if scan is None:
            return None
        return scan.filter(pl.col("fetched_at") == at).drop("fetched_at").collect()
