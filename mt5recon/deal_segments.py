"""The deal cache between runs: a folder of append-only segments, compacted now and then.

Each cycle adds one small segment (the deals the terminals just sent) instead of rewriting the
whole cache: at 10,000 accounts the cache is 1.85 M deals (71 MB of Parquet) and a cycle's segment
34,000 (1.4 MB). Rewriting the whole cache every 10 seconds wrote ~620 GB a day; segments, their
manifest and a rewrite every 32 cycles write ~39 GB.

How the folder is read back. An account's deals come from the segments from its `base_seq` on
(its last full fetch, or the last compaction), from the start of its span on. A cycle that asked
a terminal only from `since` records that as the account's cut in its segment: the terminal's
answer replaces every older segment's deals of that account from the cut on (a deal the broker
took back disappears as it did in memory). So a deal of an account in segment s is alive while
its time is before the account's next cut after s. The result is the cache as
`DealCache.absorb` left it in memory, each account's deals in the terminal's order (a kept deal's
`fetched_at` says when it was fetched; carrying it into a snapshot stamps that snapshot's time).

The folder is rewritten whole (compacted) when it holds `max_segments` segments, when its dead
deals outnumber `dead_share` of the live ones, when it is new or unreadable, and when a cycle did
something a segment cannot say (a kept deal sent again, a cut moved back, two absorbs between
saves). Every file is written under a fresh name and the manifest is replaced last, atomically:
a reader sees the old folder or the new one, and a run that stops half-way leaves files nobody
refers to (removed by the next compaction). Anything unreadable is an empty cache: a full fetch.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Hashable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import polars as pl

from mt5recon import frames
from mt5recon.deal_cache import DealCache, OnDisk, Segment, Span

MANIFEST = "manifest.json"
FORMAT = 2
MAX_SEGMENTS = 32
"""Segments a load reads at most; then the cache is rewritten whole (every ~5 minutes at 10 s)."""
DEAD_SHARE = 1.0
"""Dead deals (replaced, out of every window, of accounts gone) allowed per live deal before a rewrite."""
DEAD_SLACK_ROWS = 10_000
"""Dead deals always allowed: a small fleet is not rewritten for a handful."""
_FILE = re.compile(r"^(deals|cuts)-\d+-[0-9a-f]+\.parquet$")
_CUTS = pl.Schema({"login": pl.Int64(), "cut": frames.UTC_MS})
_FOREVER = datetime(9999, 12, 31, tzinfo=UTC)
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def load(folder: Path) -> DealCache:
    """The cache the last run saved; a missing, unreadable or foreign folder is an empty cache."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest.get("format") != FORMAT:
            return DealCache()
        spans: dict[int, Span] = {}
        base_seq: dict[int, int] = {}
        last_cut: dict[int, datetime] = {}
        instant = _memo(_instant)  # a fleet's spans share a handful of instants
        for login_text, values in manifest["spans"].items():
            login = int(login_text)
            covered_from, covered_to, offset, refreshed_at, base, cut = values
            spans[login] = Span(instant(covered_from), instant(covered_to), int(offset), instant(refreshed_at))
            base_seq[login] = int(base)
            if cut is not None:
                last_cut[login] = instant(cut)
        segments = [Segment(int(s["seq"]), s["deals"], s["cuts"], int(s["rows"])) for s in manifest["segments"]]
        on_disk = OnDisk(segments, int(manifest["next_seq"]), base_seq, last_cut)
        # compared in whole seconds, as the terminal compares date_from (and `absorb` the window)
        covered_from = {login: span.covered_from.replace(microsecond=0) for login, span in spans.items()}
        deals = _live_deals(folder, on_disk, covered_from)
    except (OSError, KeyError, ValueError, TypeError, AttributeError, pl.exceptions.PolarsError):
        return DealCache()
    return DealCache(deals, spans, on_disk)


def save(folder: Path, cache: DealCache, *, max_segments: int = MAX_SEGMENTS, dead_share: float = DEAD_SHARE) -> None:
    """Record what the cycle changed as one more segment, or rewrite the folder whole when due."""
    folder.mkdir(parents=True, exist_ok=True)
    disk, change = cache.on_disk, cache.change
    if disk is not None and change is None:
        return  # nothing absorbed since the load: the folder already says it
    if disk is None or change is None or _rewrite_due(cache, disk, max_segments, dead_share):
        _rewrite(folder, cache, disk.next_seq if disk is not None else 1)
        return
    seq = disk.next_seq
    token = secrets.token_hex(4)
    deals_file = _write_frame(folder, f"deals-{seq}-{token}.parquet", change.deals) if change.deals.height else None
    cuts = pl.DataFrame({"login": list(change.cuts), "cut": list(change.cuts.values())}, schema=_CUTS)
    cuts_file = _write_frame(folder, f"cuts-{seq}-{token}.parquet", cuts) if cuts.height else None
    segments = [*disk.segments]
    if deals_file is not None or cuts_file is not None:
        segments.append(Segment(seq, deals_file, cuts_file, change.deals.height))
    base_seq = {login: seq if login in change.whole else disk.base_seq.get(login, seq) for login in cache.spans}
    last_cut = {login: cut for login, cut in disk.last_cut.items() if login in cache.spans}
    last_cut.update(change.cuts)
    for login in change.whole:
        last_cut.pop(login, None)
    on_disk = OnDisk(segments, seq + 1, base_seq, last_cut)
    _write_manifest(folder, cache, on_disk)
    cache.on_disk, cache.change = on_disk, None


def _rewrite_due(cache: DealCache, disk: OnDisk, max_segments: int, dead_share: float) -> bool:
    change = cache.change
    if change is None or change.irregular or len(disk.segments) + 1 > max_segments:
        return True
    if any(cut < disk.last_cut[login] for login, cut in change.cuts.items() if login in disk.last_cut):
        return True  # a cut moved back (a longer overlap): older segments' deals past it would stay alive
    dead = disk.rows + change.deals.height - cache.deals.height
    return dead > dead_share * cache.deals.height + DEAD_SLACK_ROWS


def _rewrite(folder: Path, cache: DealCache, seq: int) -> None:
    """The whole cache as one segment every account starts from; then the other files go."""
    token = secrets.token_hex(4)
    deals_file = _write_frame(folder, f"deals-{seq}-{token}.parquet", cache.deals)
    on_disk = OnDisk([Segment(seq, deals_file, None, cache.deals.height)], seq + 1, dict.fromkeys(cache.spans, seq), {})
    _write_manifest(folder, cache, on_disk)
    cache.on_disk, cache.change = on_disk, None
    for path in folder.iterdir():
        if _FILE.match(path.name) and path.name != deals_file:
            with contextlib.suppress(OSError):
                path.unlink()


def _live_deals(folder: Path, disk: OnDisk, covered_from: dict[int, datetime]) -> pl.DataFrame:
    """Every segment's deals still alive (before the account's next cut, and not before the start
    of what its span covers), segment by segment: each account's in time order."""
    bounds = _upper_bounds(folder, disk)
    after = pl.col("login").replace_strict(
        pl.Series(list(covered_from), dtype=pl.Int64),
        pl.Series(list(covered_from.values()), dtype=frames.UTC_MS),
        default=None,
        return_dtype=frames.UTC_MS,
    )
    parts = []
    for segment in disk.segments:
        if segment.deals_file is None:
            continue
        frame = pl.read_parquet(folder / segment.deals_file)
        if frame.schema != frames.DEALS:
            raise ValueError(f"{segment.deals_file}: not a deals frame")
        bound = bounds.filter(pl.col("seq") == segment.seq)
        before = pl.col("login").replace_strict(
            bound["login"], bound["upper"], default=None, return_dtype=frames.UTC_MS
        )
        alive = frame.select(((pl.col("time") < before) & (pl.col("time") >= after)).fill_null(False)).to_series()
        parts.append(frame if alive.all() else frame.filter(alive))
        del frame, alive
    return pl.concat(parts, how="vertical") if parts else frames.empty("deals")


def _upper_bounds(folder: Path, disk: OnDisk) -> pl.DataFrame:
    """seq, login, upper: an account's deals in segment seq are alive before `upper` (its next
    cut); an account with no row for a segment has nothing alive there."""
    base = pl.DataFrame(
        {"login": list(disk.base_seq), "base": list(disk.base_seq.values())},
        schema={"login": pl.Int64, "base": pl.Int64},
    )
    marks = [base.select("login", pl.col("base").alias("seq"), pl.lit(None, frames.UTC_MS).alias("cut"))]
    for segment in disk.segments:
        if segment.cuts_file is not None:
            cuts = pl.read_parquet(folder / segment.cuts_file)
            if cuts.schema != _CUTS:
                raise ValueError(f"{segment.cuts_file}: not a cuts frame")
            marks.append(cuts.select("login", pl.lit(segment.seq, pl.Int64).alias("seq"), "cut"))
    return (
        pl.concat(marks, how="vertical")
        .join(base, on="login", how="inner")
        .filter(pl.col("seq") >= pl.col("base"))
        .sort("login", "seq")
        .select(
            "seq",
            "login",
            pl.col("cut").shift(-1).over("login").fill_null(_FOREVER).cast(frames.UTC_MS).alias("upper"),
        )
    )


def _write_frame(folder: Path, name: str, frame: pl.DataFrame) -> str:
    """Write under a temporary name, then rename: the file is whole or absent."""
    handle, temp = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
    os.close(handle)
    try:
        frame.write_parquet(temp, compression="lz4")
        os.replace(temp, folder / name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return name


def _write_manifest(folder: Path, cache: DealCache, disk: OnDisk) -> None:
    micros = _memo(_micros)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "next_seq": disk.next_seq,
        "segments": [{"seq": s.seq, "deals": s.deals_file, "cuts": s.cuts_file, "rows": s.rows} for s in disk.segments],
        "spans": {
            str(login): [
                micros(span.covered_from),
                micros(span.covered_to),
                span.server_offset_secs,
                micros(span.refreshed_at),
                disk.base_seq[login],
                micros(disk.last_cut[login]) if login in disk.last_cut else None,
            ]
            for login, span in cache.spans.items()
        },
    }
    handle, temp = tempfile.mkstemp(prefix=f".{MANIFEST}.", dir=folder)
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(manifest, out, separators=(",", ":"))
        os.replace(temp, folder / MANIFEST)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def segment_files(folder: Path) -> Sequence[Path]:
    """The segment files in the folder (referred to by the manifest or not)."""
    return sorted(p for p in folder.iterdir() if _FILE.match(p.name)) if folder.is_dir() else []


def _memo(convert: Callable[[K], V]) -> Callable[[K], V]:
    """`convert` remembering its answers for one load or save."""
    known: dict[K, V] = {}

    def remembered(value: K) -> V:
        found = known.get(value)
        if found is None:
            found = known[value] = convert(value)
        return found

    return remembered


def _micros(at: datetime) -> int:
    return (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _instant(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(micros))
