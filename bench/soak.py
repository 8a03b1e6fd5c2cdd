"""Soak the real local mode: `mt5recon up` for a while, then read what the Prefect server recorded.

    python -m bench.soak [--minutes 10] [--outage-secs 0] [--outage-kill] [--warmup-secs 30]
                         [--home DIR] [--keep] [--port PORT]

`python -m mt5recon.cli up` (what `./dev up` runs) is started as a subprocess on a home folder of
its own (a fresh temporary folder unless `--home`), a free Prefect port (unless `--port`) and a copy
of the demo fleet whose bridge ports are free, so a soak never collides with a running `./dev up`.
Nothing is measured inside the process: every figure comes from the server's flow runs
(`POST /api/flow_runs/filter`: expected start, start, end, state), the files under the home folder
and the store's own `cycles` table.

The measurement window starts `--warmup-secs` after `up`'s Prefect API first answers (so the
server's start, the deployments' registration and the first, cold runs are left out) and lasts
`--minutes`. With `--outage-secs N` the window is cut in two
halves: after the first, `up` gets a Ctrl-C (SIGINT to its process group, as a terminal sends it;
`--outage-kill`: SIGKILL to `up` and every process below it, as a crash or power cut would),
nothing runs for N seconds, then `up` starts again on the same home and ports; the second half
starts after the same warm-up. What happens between the stop and the end of that warm-up is
reported on its own: the runs scheduled for the outage must be cancelled, not fired in a burst.

Environment: PREFECT_* and MT5RECON_STORE_* variables are not passed to `up` (the server's database
and the store must be the ones under the home folder); other MT5RECON_* settings (INTERVAL_SECS,
PREFETCH_SECS, MAX_START_DELAY_SECS, ...) are, and are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import IO, Any

from bench.recon_engine import load_average, machine_lines
from mt5recon.fleet import demo_fleet_path, load_fleet
from mt5recon.pipeline import cycle_id_for
from mt5recon.serving import DEPLOYMENT
from mt5recon.settings import Settings
from mt5recon.store.lake import StoreConfig, open_reader
from mt5recon.terminal.ports import free_ports, on_free_ports

LOOPBACK = "127.0.0.1"
RECONCILE_FLOW = "reconcile"
STOP_TIMEOUT_SECS = 90.0
START_TIMEOUT_SECS = 180.0
SETTLE_TIMEOUT_SECS = 60.0
PROGRESS_EVERY_SECS = 60.0
PAGE = 200
LATENESS_LIMIT_SECS = 1.0
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "CRASHED"})
ENV_DROPPED_PREFIXES = ("PREFECT_", "MT5RECON_STORE_")
ENV_SET = ("MT5RECON_HOME", "MT5RECON_FLEET", "MT5RECON_PREFECT_HOST", "MT5RECON_PREFECT_PORT")


# ---------------------------------------------------------------- small helpers


def fleet_on_free_ports(path: Path) -> Path:
    """The demo fleet with every bridge port replaced by a free one."""
    path.write_text(on_free_ports(demo_fleet_path().read_text()))
    return path


def now() -> datetime:
    return datetime.now(UTC)


def hms(at: datetime | None) -> str:
    return "-" if at is None else at.astimezone(UTC).strftime("%H:%M:%S")


def parse_time(value: object) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value)).astimezone(UTC)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); q in [0, 100]."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def spread(values: Sequence[float], unit: str = "s") -> str:
    if not values:
        return "n=0"
    return (
        f"p50 {percentile(values, 50):.3f} {unit}, p95 {percentile(values, 95):.3f} {unit}, "
        f"max {max(values):.3f} {unit}, min {min(values):.3f} {unit} (n={len(values)})"
    )


def mib(size: int) -> str:
    return f"{size / 2**20:.2f} MiB"


def counts(counter: Counter[str]) -> str:
    return ", ".join(f"{key.lower()} {n}" for key, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))) or "-"


# ---------------------------------------------------------------- the server's records


def api_post(api: str, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"{api}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def healthy(api: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((LOOPBACK, port)) == 0


@dataclass(frozen=True)
class Run:
    """One flow run as the server recorded it."""

    id: str
    name: str
    flow: str
    deployment: str
    state_type: str
    state_name: str
    expected: datetime
    start: datetime | None
    end: datetime | None
    message: str
    run_count: int

    @property
    def ran(self) -> bool:
        """Whether the run entered Running. A run cancelled or crashed before it ran (CANCEL_NEW, a
        prefetched process killed while waiting) gets that moment as its start_time: not a start."""
        return self.run_count > 0 and self.start is not None

    @property
    def lateness(self) -> float | None:
        """Start - expected start, for runs that ran."""
        if not self.ran or self.start is None:
            return None
        return (self.start - self.expected).total_seconds()

    @property
    def duration(self) -> float | None:
        if not self.ran or self.start is None or self.end is None:
            return None
        return (self.end - self.start).total_seconds()

    @property
    def is_reconcile(self) -> bool:
        return self.deployment == DEPLOYMENT or self.flow == RECONCILE_FLOW


def _names(api: str, path: str) -> dict[str, str]:
    names: dict[str, str] = {}
    offset = 0
    while page := api_post(api, path, {"limit": PAGE, "offset": offset}):
        names.update({str(item["id"]): str(item["name"]) for item in page})
        offset += len(page)
    return names


def read_runs(api: str, expected_before: datetime) -> list[Run]:
    """Every flow run expected to start before `expected_before` (the scheduler creates runs far ahead)."""
    flows = _names(api, "/flows/filter")
    deployments = _names(api, "/deployments/filter")
    runs: list[Run] = []
    offset = 0
    body: dict[str, Any] = {
        "flow_runs": {"expected_start_time": {"before_": expected_before.isoformat()}},
        "sort": "EXPECTED_START_TIME_ASC",
        "limit": PAGE,
    }
    while page := api_post(api, "/flow_runs/filter", {**body, "offset": offset}):
        for item in page:
            state = item.get("state") or {}
            expected = parse_time(item.get("expected_start_time"))
            if expected is None:
                continue
            runs.append(
                Run(
                    id=str(item["id"]),
                    name=str(item["name"]),
                    flow=flows.get(str(item["flow_id"]), "?"),
                    deployment=deployments.get(str(item.get("deployment_id")), "-"),
                    state_type=str(item.get("state_type")),
                    state_name=str(item.get("state_name")),
                    expected=expected,
                    start=parse_time(item.get("start_time")),
                    end=parse_time(item.get("end_time")),
                    message=str(state.get("message") or ""),
                    run_count=int(item.get("run_count") or 0),
                )
            )
        offset += len(page)
    return runs


def overlapping_pairs(runs: Iterable[Run], until: datetime) -> list[tuple[Run, Run]]:
    """Pairs of runs that ran with overlapping [start, end] (a run still going counts up to `until`)."""
    started = sorted((r for r in runs if r.ran), key=lambda r: r.expected)
    pairs: list[tuple[Run, Run]] = []
    for i, first in enumerate(started):
        for second in started[i + 1 :]:
            assert first.start is not None and second.start is not None
            if first.start < (second.end or until) and second.start < (first.end or until):
                pairs.append((first, second))
    return pairs


# ---------------------------------------------------------------- files on disk


def bytes_of(paths: Iterable[Path]) -> tuple[int, int]:
    """Total size and count of the files among `paths` (a file may vanish while we look)."""
    total = files = 0
    for path in paths:
        try:
            if path.is_file():
                total += path.stat().st_size
                files += 1
        except OSError:
            continue
    return total, files


def prefect_db_files(home: Path) -> list[Path]:
    """The server's SQLite database with its WAL and shared-memory files."""
    return sorted((home / "prefect").glob("*.db*"))


def store_files(store: StoreConfig) -> tuple[list[Path], list[Path]]:
    """The DuckLake catalog (with WAL/journal) and the data files."""
    catalog = store.sqlite_path
    catalog_files = [] if catalog is None else sorted(catalog.parent.glob(catalog.name + "*"))
    data = Path(store.data_path)
    return catalog_files, ([] if "://" in store.data_path or not data.exists() else list(data.rglob("*")))


def sqlite_used_bytes(path: Path) -> int | None:
    """Bytes in use inside a SQLite database, WAL included (pages - free pages): what the data takes,
    whenever the server checkpoints. A read-only connection; None if the file cannot be read."""
    if not path.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=10)) as db:
            (page_size,) = db.execute("PRAGMA page_size").fetchone()
            (pages,) = db.execute("PRAGMA page_count").fetchone()
            (free,) = db.execute("PRAGMA freelist_count").fetchone()
    except sqlite3.Error:
        return None
    return int((pages - free) * page_size)


@dataclass(frozen=True)
class Sizes:
    at: datetime
    prefect_db: int
    prefect_db_used: int | None
    catalog: int
    data: int
    data_files: int

    @property
    def store(self) -> int:
        return self.catalog + self.data


def measure(home: Path, store: StoreConfig) -> Sizes:
    catalog, data = store_files(store)
    data_bytes, data_files = bytes_of(data)
    return Sizes(
        now(),
        bytes_of(prefect_db_files(home))[0],
        sqlite_used_bytes(home / "prefect" / "prefect.db"),
        bytes_of(catalog)[0],
        data_bytes,
        data_files,
    )


# ---------------------------------------------------------------- the `up` process


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc), deepest last; [] where /proc is missing."""
    found: list[int] = []
    queue = [pid]
    while queue:
        parent = queue.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                kids = [int(p) for p in children.read_text().split()]
            except OSError:
                continue
            found += kids
            queue += kids
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Up:
    """One `mt5recon up` process, its log, and when it was launched / answered / stopped."""

    process: subprocess.Popen[bytes]
    log: IO[bytes]
    launched: datetime
    healthy_at: datetime | None = None
    stop_sent: datetime | None = None
    stopped: datetime | None = None
    exit_code: int | None = None
    notes: list[str] = field(default_factory=list)


def start_up(env: dict[str, str], log_path: Path, api: str) -> Up:
    log = open(log_path, "ab")  # noqa: SIM115 - closed by stop_up
    log.write(f"\n===== soak: up launched at {now().isoformat()} =====\n".encode())
    log.flush()
    up = Up(
        process=subprocess.Popen(
            [sys.executable, "-m", "mt5recon.cli", "up"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: our SIGINT reaches it as a terminal's Ctrl-C would
        ),
        log=log,
        launched=now(),
    )
    deadline = time.monotonic() + START_TIMEOUT_SECS
    while not healthy(api):
        if up.process.poll() is not None:
            raise RuntimeError(f"`up` exited with {up.process.returncode} before the API answered; see {log_path}")
        if time.monotonic() > deadline:
            stop_up(up)
            raise TimeoutError(f"the API did not answer within {START_TIMEOUT_SECS:.0f} s; see {log_path}")
        time.sleep(0.2)
    up.healthy_at = now()
    return up


def stop_up(up: Up, *, hard: bool = False) -> None:
    """Ctrl-C, wait, and kill whatever is left (the Prefect server runs in a session of its own).
    `hard`: SIGKILL `up` and every process below it at once instead, as a power cut would."""
    if up.stopped is not None:
        return
    below = descendants(up.process.pid)
    up.stop_sent = now()
    if hard:
        for pid in [up.process.pid, *below]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        up.process.wait()
    elif up.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(up.process.pid, signal.SIGINT)
        try:
            up.process.wait(timeout=STOP_TIMEOUT_SECS)
        except subprocess.TimeoutExpired:
            up.notes.append(f"`up` still running {STOP_TIMEOUT_SECS:.0f} s after SIGINT: killed")
            up.process.kill()
            up.process.wait()
    up.stopped = now()
    up.exit_code = up.process.returncode
    left = [pid for pid in below if alive(pid)]
    for pid in left:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + 15
    while (left := [pid for pid in left if alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    if left:
        up.notes.append(f"{len(left)} process(es) below `up` outlived it and were killed: {left}")
    up.log.close()


def up_log_lines(log_path: Path, pattern: str) -> list[str]:
    if not log_path.exists():
        return []
    return [line for line in log_path.read_text(errors="replace").splitlines() if re.search(pattern, line)]


# ---------------------------------------------------------------- the soak


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def __contains__(self, at: datetime) -> bool:
        return self.start <= at < self.end

    @property
    def secs(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass
class Soak:
    home: Path
    api: str
    port: int
    env: dict[str, str]
    settings: Settings
    store: StoreConfig
    log_path: Path
    ups: list[Up] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    sizes: list[tuple[Sizes, Sizes]] = field(default_factory=list)
    outage: Window | None = None  # from the stop to the end of the restart's warm-up
    outage_idle: Window | None = None  # `up` exited .. `up` launched again
    outage_kill: bool = False  # the outage is a SIGKILL of everything, not a Ctrl-C
    ahead_at_stop: list[Run] = field(default_factory=list)  # runs the scheduler had created ahead of the stop
    known_at_end: dict[str, Run] = field(default_factory=dict)  # every run in the server at the end, by id

    def launch(self) -> Up:
        up = start_up(self.env, self.log_path, self.api)
        self.ups.append(up)
        return up

    def running(self) -> Up:
        return self.ups[-1]

    def sleep_until(self, target: datetime, origin: datetime, progress: bool = True) -> None:
        """Sleep until `target`, checking that `up` lives; a progress line every minute."""
        next_progress = time.monotonic() + PROGRESS_EVERY_SECS
        while (left := (target - now()).total_seconds()) > 0:
            up = self.running()
            if up.process.poll() is not None:
                raise RuntimeError(f"`up` exited with {up.process.returncode} during the soak; see {self.log_path}")
            time.sleep(min(left, 1.0))
            if progress and time.monotonic() >= next_progress:
                next_progress += PROGRESS_EVERY_SECS
                self.progress(origin)

    def progress(self, origin: datetime) -> None:
        try:
            runs = [r for r in read_runs(self.api, now()) if r.is_reconcile and r.expected >= origin]
        except (OSError, ValueError) as error:
            print(f"  [{hms(now())}] could not read runs: {error}", flush=True)
            return
        late = [r.lateness for r in runs if r.lateness is not None]
        last = f", last start {late[-1]:+.2f} s" if late else ""
        print(
            f"  [{hms(now())}] reconcile runs since {hms(origin)}: {counts(Counter(r.state_type for r in runs))}{last}"
            f"; load {load_average()}",
            flush=True,
        )

    def window(self, warm_from: datetime, warmup_secs: float, secs: float) -> Window:
        """Warm up, then measure for `secs`."""
        start = warm_from + timedelta(seconds=warmup_secs)
        print(f"warm-up until {hms(start)} UTC ({warmup_secs:g} s after the API answered)", flush=True)
        self.sleep_until(start, warm_from, progress=False)
        before = measure(self.home, self.store)
        window = Window(start, start + timedelta(seconds=secs))
        print(f"measuring {hms(window.start)} .. {hms(window.end)} UTC ({secs:g} s)", flush=True)
        self.sleep_until(window.end, window.start)
        self.windows.append(window)
        self.sizes.append((before, measure(self.home, self.store)))
        return window

    def settle(self, expected_before: datetime) -> None:
        """Let the runs due before the end finish, so the last ones are not read half-done."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_SECS
        while time.monotonic() < deadline:
            runs = [r for r in read_runs(self.api, expected_before) if r.is_reconcile]
            if all(r.state_type in FINAL_STATES for r in runs if r.expected >= self.ups[0].launched):
                return
            time.sleep(1)
        print(f"note: runs due before the end still not final {SETTLE_TIMEOUT_SECS:.0f} s later", flush=True)

    def stop_all(self) -> None:
        for up in self.ups:
            stop_up(up)


def run_soak(soak: Soak, minutes: float, outage_secs: float, warmup_secs: float) -> list[Run]:
    secs = minutes * 60
    first = soak.launch()
    assert first.healthy_at is not None
    print(
        f"`up` launched at {hms(first.launched)} UTC, API answering after "
        f"{(first.healthy_at - first.launched).total_seconds():.1f} s",
        flush=True,
    )
    if outage_secs > 0:
        soak.window(first.healthy_at, warmup_secs, secs / 2)
        horizon = now() + timedelta(days=1)
        soak.ahead_at_stop = [
            r for r in read_runs(soak.api, horizon) if r.is_reconcile and r.start is None and r.expected > now()
        ]
        how = "SIGKILL to `up` and every process below it" if soak.outage_kill else "Ctrl-C to `up`"
        print(f"outage: {how} at {hms(now())} UTC", flush=True)
        stop_up(first, hard=soak.outage_kill)
        assert first.stop_sent is not None and first.stopped is not None
        print(
            f"`up` exited with {first.exit_code} after {(first.stopped - first.stop_sent).total_seconds():.1f} s; "
            f"server port {'STILL OPEN' if port_open(soak.port) else 'closed'}; nothing runs for {outage_secs:g} s",
            flush=True,
        )
        time.sleep(outage_secs)
        second = soak.launch()
        assert second.healthy_at is not None
        soak.outage_idle = Window(first.stopped, second.launched)
        print(
            f"restarted at {hms(second.launched)} UTC, answering after "
            f"{(second.healthy_at - second.launched).total_seconds():.1f} s",
            flush=True,
        )
        window = soak.window(second.healthy_at, warmup_secs, secs / 2)
        soak.outage = Window(first.stop_sent, window.start)
    else:
        soak.window(first.healthy_at, warmup_secs, secs)
    end = soak.windows[-1].end
    soak.settle(end)
    known = read_runs(soak.api, now() + timedelta(days=1))
    soak.known_at_end = {r.id: r for r in known}
    return [r for r in known if r.expected < end]


# ---------------------------------------------------------------- the report


@dataclass
class Verdict:
    lines: list[str] = field(default_factory=list)
    failed: bool = False

    def check(self, ok: bool | None, what: str, detail: str) -> None:
        word = "SKIP" if ok is None else "PASS" if ok else "FAIL"
        self.failed |= ok is False
        self.lines.append(f"{word}  {what}: {detail}")


def in_windows(run: Run, windows: Sequence[Window]) -> bool:
    return any(run.expected in w for w in windows)


def report_runs(soak: Soak, runs: list[Run], verdict: Verdict) -> None:
    settings = soak.settings
    windows = soak.windows
    session = Window(soak.ups[0].launched, windows[-1].end)
    reconcile = [r for r in runs if r.is_reconcile and r.expected in session]
    measured = [r for r in reconcile if in_windows(r, windows)]
    states = Counter(r.state_type for r in measured)
    schedule = sum(w.secs for w in windows) / settings.interval_secs

    print(f"\n== Runs of {RECONCILE_FLOW}/{DEPLOYMENT} with their expected start in the measurement window(s) ==")
    for i, w in enumerate(windows, 1):
        print(f"window {i}: {hms(w.start)} .. {hms(w.end)} UTC ({w.secs:.0f} s)")
    print(
        f"scheduled {len(measured)} (the {settings.interval_secs:g} s schedule gives ~{schedule:.0f}): "
        f"completed {states['COMPLETED']}, cancelled {states['CANCELLED']}, failed {states['FAILED']}, "
        f"crashed {states['CRASHED']}"
        + (
            f", other: {counts(Counter({k: v for k, v in states.items() if k not in FINAL_STATES}))}"
            if set(states) - FINAL_STATES
            else ""
        )
    )
    by_name = Counter(f"{r.state_type}/{r.state_name}" for r in measured if r.state_type != "COMPLETED")
    if by_name:
        print(f"  not completed, by state name: {counts(by_name)}")
    late = [r.lateness for r in measured if r.lateness is not None]
    print(f"start lateness (start - expected start, runs that ran): {spread(late)}")
    done = [r.duration for r in measured if r.state_type == "COMPLETED" and r.duration is not None]
    print(f"run duration (end - start, completed runs): {spread(done)}")
    worst = sorted((r for r in measured if r.lateness is not None), key=lambda r: -(r.lateness or 0))[:3]
    if worst:
        print(
            "latest starts: "
            + "; ".join(f"{hms(r.expected)} +{r.lateness:.2f} s ({r.state_type.lower()})" for r in worst)
        )
    for r in measured:
        if r.state_type not in ("COMPLETED", "SCHEDULED", "PENDING", "RUNNING"):
            print(
                f"  {r.state_type.lower()} run {r.name}: expected {hms(r.expected)}, "
                + (f"started {hms(r.start)}" if r.ran else f"did not run (ended {hms(r.end)})")
                + f", {r.state_name}: {r.message[:160]}"
            )

    warm = [
        r for r in reconcile if not in_windows(r, windows) and (soak.outage is None or r.expected not in soak.outage)
    ]
    warm_late = [r.lateness for r in warm if r.lateness is not None]
    restart = "; the restart's warm-up is reported under Outage" if soak.outage is not None else ""
    print(
        f"warm-up (server start + {soak_warmup(soak):.0f} s after the API answered, left out above{restart}): "
        f"{len(warm)} run(s): {counts(Counter(r.state_type for r in warm))}; start lateness {spread(warm_late)}"
    )

    pairs = overlapping_pairs(reconcile, session.end)
    print(f"overlapping runs (pairs of reconcile runs whose [start, end] overlap, whole session): {len(pairs)}")
    for a, b in pairs[:5]:
        print(f"  {a.name} {hms(a.start)}..{hms(a.end)} overlaps {b.name} {hms(b.start)}..{hms(b.end)}")
    stale = [
        r
        for r in reconcile
        if r.state_type == "COMPLETED" and r.lateness is not None and r.lateness > settings.max_start_delay_secs
    ]
    print(
        f"runs that completed though they started more than {settings.max_start_delay_secs:g} s late "
        f"(stale cycles, whole session): {len(stale)}"
    )

    others = Counter(
        f"{r.flow}/{r.deployment}: {r.state_type}" for r in runs if not r.is_reconcile and r.expected in session
    )
    print(f"other deployments' runs in the session: {counts(others)}")

    interrupted = interrupted_runs(soak, reconcile)
    bad = [r for r in reconcile if r.state_type in ("FAILED", "CRASHED") and r not in interrupted]
    verdict.check(not pairs, "no overlapping runs", f"{len(pairs)} overlapping pair(s)")
    p95 = percentile(late, 95) if late else None
    verdict.check(
        None if p95 is None else p95 < LATENESS_LIMIT_SECS,
        f"p95 start lateness < {LATENESS_LIMIT_SECS:g} s",
        "no run started" if p95 is None else f"p95 {p95:.3f} s over {len(late)} runs (max {max(late):.3f} s)",
    )
    verdict.check(
        not bad,
        "no failed runs",
        f"{len(bad)} failed/crashed reconcile run(s) in the session"
        + (f" ({len(interrupted)} run(s) in flight at the deliberate stop not counted)" if interrupted else ""),
    )


def soak_warmup(soak: Soak) -> float:
    answered = soak.ups[0].healthy_at or soak.ups[0].launched
    return (soak.windows[0].start - answered).total_seconds()


def interrupted_runs(soak: Soak, reconcile: list[Run]) -> list[Run]:
    """Runs the deliberate stop cut short: running when it was sent, or ended (not completed) while
    `up` was stopping (a prefetched run's process waiting for its start gets the Ctrl-C too)."""
    first = soak.ups[0]
    if soak.outage is None or first.stop_sent is None or first.stopped is None:
        return []
    stop, gone = first.stop_sent, first.stopped + timedelta(seconds=5)
    running = [
        r for r in reconcile if r.ran and r.start is not None and r.start < stop and (r.end is None or r.end > stop)
    ]
    ended = [r for r in reconcile if r.state_type != "COMPLETED" and r.end is not None and stop <= r.end <= gone]
    return running + [r for r in ended if r not in running]


def report_outage(soak: Soak, runs: list[Run], verdict: Verdict) -> None:
    if soak.outage is None or soak.outage_idle is None:
        verdict.check(None, "no burst of stale runs after an outage", "no outage (use --outage-secs)")
        return
    settings = soak.settings
    outage, idle = soak.outage, soak.outage_idle
    first, second = soak.ups[0], soak.ups[1]
    reconcile = [r for r in runs if r.is_reconcile and r.expected >= first.launched]
    stop_word = "SIGKILL" if soak.outage_kill else "Ctrl-C"
    print("\n== Outage ==")
    print(
        f"{stop_word} at {hms(first.stop_sent)}, `up` exited at {hms(first.stopped)} (code {first.exit_code}); "
        f"nothing ran {hms(idle.start)} .. {hms(idle.end)} ({idle.secs:.1f} s); relaunched, API answering at "
        f"{hms(second.healthy_at)}; second window from {hms(outage.end)}"
    )
    for r in interrupted_runs(soak, reconcile):
        print(
            f"cut short by the {stop_word}: {r.name} expected {hms(r.expected)}, ended {hms(r.end)}: "
            f"{r.state_type}/{r.state_name} {r.message[:120]}"
        )
    ahead = soak.ahead_at_stop
    if ahead:
        kept = [soak.known_at_end[r.id] for r in ahead if r.id in soak.known_at_end]
        print(
            f"runs the scheduler had created ahead of the {stop_word} (expected {hms(ahead[0].expected)} .. "
            f"{hms(ahead[-1].expected)}): {len(ahead)}; left in the server after the restart: {len(kept)} "
            f"({counts(Counter(f'{r.state_type}/{r.state_name}' for r in kept))}), gone: {len(ahead) - len(kept)}"
        )
    else:
        print(f"runs the scheduler had created ahead of the {stop_word}: none")
    during = [r for r in reconcile if r.expected in outage]
    print(
        f"runs expected from the {stop_word} to the end of the restart's warm-up ({hms(outage.start)} .. "
        f"{hms(outage.end)}): {len(during)}: {counts(Counter(f'{r.state_type}/{r.state_name}' for r in during))}"
    )
    dark = [r for r in during if r.expected < (second.healthy_at or outage.end)]
    late_done = [r for r in dark if r.state_type == "COMPLETED" and (r.lateness or 0) > settings.max_start_delay_secs]
    print(
        f"  of them expected before the restarted API answered: {len(dark)}: "
        f"{counts(Counter(f'{r.state_type}/{r.state_name}' for r in dark))}; completed late: {len(late_done)}"
    )
    for r in during:
        print(
            f"  {hms(r.expected)} {r.state_type.lower():<10} "
            + (f"start {hms(r.start)} ({r.lateness:+.2f} s)" if r.lateness is not None else "did not run")
            + (f" {r.message[:90]}" if r.message else "")
        )
    for line in up_log_lines(soak.log_path, r"cancelled \d+ (late )?run"):
        print(f"  `up` said: {line.strip()}")
    after = sorted(
        (r for r in reconcile if r.state_type == "COMPLETED" and r.start is not None and r.start >= idle.end),
        key=lambda r: r.start or r.expected,
    )
    starts = [r.start for r in after if r.start is not None]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    first_done = after[0] if after else None
    if first_done is not None and first_done.start is not None:
        print(
            f"first completed run after the restart: expected {hms(first_done.expected)}, started "
            f"{hms(first_done.start)} ({(first_done.start - idle.end).total_seconds():.1f} s after the relaunch, "
            f"{first_done.lateness:+.2f} s late)"
        )
    print(f"gaps between consecutive completed run starts after the restart: {spread(gaps)}")
    head = [f"{g:.1f}" for g in gaps[:8]]
    if head:
        print(f"  first gaps: {', '.join(head)} s")
    burst_floor = settings.interval_secs / 2
    min_gap = min(gaps) if gaps else None
    ok = not late_done and (min_gap is None or min_gap >= burst_floor) and bool(after)
    verdict.check(
        ok,
        "no burst of stale runs after the outage",
        f"{len(late_done)} run(s) expected during the outage completed late; min gap between completed starts "
        + ("-" if min_gap is None else f"{min_gap:.2f} s")
        + f" (burst if < {burst_floor:g} s); {len(after)} completed after the restart",
    )


def report_growth(soak: Soak, final: Sizes, runs: list[Run]) -> None:
    hours = sum((b.at - a.at).total_seconds() for a, b in soak.sizes) / 3600
    db_growth = sum(b.prefect_db - a.prefect_db for a, b in soak.sizes)
    store_growth = sum(b.store - a.store for a, b in soak.sizes)
    files_growth = sum(b.data_files - a.data_files for a, b in soak.sizes)
    first, last = soak.sizes[0][0], soak.sizes[-1][1]
    print("\n== Growth (over the measurement window(s), extrapolated to an hour) ==")
    names = ", ".join(p.name for p in prefect_db_files(soak.home)) or "none found"
    print(
        f"Prefect DB ({names}): at the start {mib(first.prefect_db)}, at the end {mib(last.prefect_db)}, "
        f"after shutdown {mib(final.prefect_db)}; growth {mib(db_growth)} in {hours * 60:.1f} min = "
        f"{mib(round(db_growth / hours)) if hours else '-'} per hour"
    )
    print(
        f"store (catalog + data files): at the start {mib(first.store)} ({first.data_files} data files), "
        f"at the end {mib(last.store)} ({last.data_files} files), after shutdown {mib(final.store)} "
        f"(catalog {mib(final.catalog)}, data {mib(final.data)}); growth {mib(store_growth)} = "
        f"{mib(round(store_growth / hours)) if hours else '-'} per hour, "
        f"{files_growth / hours if hours else 0:,.0f} data files per hour"
    )
    if len(soak.sizes) > 1:
        print(
            "  per window: "
            + "; ".join(
                f"DB +{mib(b.prefect_db - a.prefect_db)}, store +{mib(b.store - a.store)} "
                f"in {(b.at - a.at).total_seconds():.0f} s"
                for a, b in soak.sizes
            )
        )
    used = [(a.prefect_db_used, b.prefect_db_used) for a, b in soak.sizes]
    if all(a is not None and b is not None for a, b in used):
        used_growth = sum((b or 0) - (a or 0) for a, b in used)
        print(
            f"Prefect DB pages in use (page_count - freelist, WAL included): at the start "
            f"{mib(first.prefect_db_used or 0)}, at the end {mib(last.prefect_db_used or 0)}; growth "
            f"{mib(used_growth)} = {mib(round(used_growth / hours)) if hours else '-'} per hour"
        )
    print(
        "(file sizes count the SQLite WAL files, which grow to their high-water mark between checkpoints and stay "
        "there: over a short window the pages in use are the steadier figure)"
    )

    fleet = load_fleet(Path(soak.env["MT5RECON_FLEET"]))
    session_start = soak.ups[0].launched
    completed = [r for r in runs if r.is_reconcile and r.state_type == "COMPLETED" and r.expected >= session_start]
    expected_ids = {cycle_id_for(fleet.name, r.expected) for r in completed}
    try:
        reader = open_reader(soak.store)
        try:
            rows = reader.execute("SELECT DISTINCT cycle_id FROM cycles").fetchall()
        finally:
            reader.close()
    except Exception as error:
        print(f"store cycles: could not read the store: {error}")
        return
    stored = {str(row[0]) for row in rows}
    print(
        f"store `cycles` table: {len(stored)} distinct cycle_id; completed reconcile runs: {len(completed)}; "
        f"completed runs whose cycle is stored: {len(expected_ids & stored)}; stored cycles without a completed "
        f"run: {len(stored - expected_ids)}"
    )
    for cycle in sorted(expected_ids - stored)[:5]:
        print(f"  completed but not stored: {cycle}")
    for cycle in sorted(stored - expected_ids)[:5]:
        print(f"  stored without a completed run: {cycle}")


# ---------------------------------------------------------------- main


def child_env(home: Path, fleet: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_DROPPED_PREFIXES) and k not in ENV_SET}
    return {
        **env,
        "MT5RECON_HOME": str(home),
        "MT5RECON_FLEET": str(fleet),
        "MT5RECON_PREFECT_HOST": LOOPBACK,
        "MT5RECON_PREFECT_PORT": str(port),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="measurement time after the warm-up (10)")
    parser.add_argument(
        "--outage-secs", type=float, default=0.0,
        help="stop `up` half-way for this long, then start it again (0: no outage)",
    )  # fmt: skip
    parser.add_argument(
        "--outage-kill", action="store_true",
        help="the outage is a SIGKILL of `up`, its server and its runs (a crash) instead of a Ctrl-C",
    )  # fmt: skip
    parser.add_argument(
        "--warmup-secs", type=float, default=30.0,
        help="left out after `up`'s API answers, at each launch (30)",
    )  # fmt: skip
    parser.add_argument("--home", type=Path, default=None, help="home folder (default: a fresh temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temp home folder (a given --home is kept)")
    parser.add_argument("--port", type=int, default=None, help="Prefect server port (default: a free one)")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.outage_secs < 0 or args.warmup_secs < 0:
        parser.error("--minutes must be > 0, --outage-secs and --warmup-secs >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wall = time.perf_counter()
    print("mt5-recon soak benchmark: the real local mode (`mt5recon up`), read back from the server's records")
    print("\n".join(machine_lines()))
    print(f"prefect: {version('prefect')}, duckdb: {version('duckdb')}")

    port = args.port or free_ports(1)[0]
    if port_open(port):
        print(f"port {port} is already in use: pick another --port")
        return 2
    temp = args.home is None
    home = (Path(tempfile.mkdtemp(prefix="mt5recon-soak-")) if temp else args.home).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    fleet = fleet_on_free_ports(home / "soak-fleet.toml")
    env = child_env(home, fleet, port)
    settings = Settings(home=home, fleet=fleet, prefect_port=port, store_catalog=None, store_data_path=None)
    soak = Soak(
        home=home,
        api=f"http://{LOOPBACK}:{port}/api",
        port=port,
        env=env,
        settings=settings,
        store=settings.store_config(),
        log_path=home / "up.log",
        outage_kill=args.outage_kill,
    )
    print(
        f"\nhome: {'a fresh temp folder' if temp else home} (`up` log: <home>/up.log, server log: "
        f"<home>/prefect/server.log); Prefect API on port {port}"
    )
    print(
        f"settings: interval {settings.interval_secs:g} s, prefetch {settings.prefetch_secs:g} s, "
        f"max start delay {settings.max_start_delay_secs:g} s, fetch concurrency {settings.fetch_concurrency}; "
        f"demo fleet, {len(load_fleet(fleet).accounts)} accounts on free bridge ports"
    )
    print(
        f"plan: warm-up {args.warmup_secs:g} s, measure {args.minutes:g} min"
        + (
            f" in two halves around a {args.outage_secs:g} s outage "
            f"({'SIGKILL' if args.outage_kill else 'Ctrl-C'}, wait, start again)"
            if args.outage_secs
            else ""
        ),
        flush=True,
    )

    verdict = Verdict()
    # a SIGTERM to the benchmark stops `up` too (SystemExit goes through the clean-up below)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        runs = run_soak(soak, args.minutes, args.outage_secs, args.warmup_secs)
    except BaseException as error:
        soak.stop_all()
        print(f"soak aborted ({type(error).__name__}: {error}); `up` stopped, home kept: {home}")
        if isinstance(error, KeyboardInterrupt):
            return 130
        raise
    finally:
        soak.stop_all()
        for up in soak.ups:
            for note in up.notes:
                print(f"note: {note}")
        if soak.ups and port_open(port):
            print(f"WARNING: something still answers on port {port} after the stop")
    final = measure(home, soak.store)
    last = soak.ups[-1]
    assert last.stop_sent is not None and last.stopped is not None
    stop_secs = (last.stopped - last.stop_sent).total_seconds()
    print(
        f"`up` stopped with Ctrl-C at the end: exit code {last.exit_code} after {stop_secs:.1f} s; "
        f"server port {'OPEN' if port_open(port) else 'closed'}"
    )

    report_runs(soak, runs, verdict)
    report_outage(soak, runs, verdict)
    report_growth(soak, final, runs)
    print("\n== Done when ==")
    print("\n".join(verdict.lines))

    if temp and not args.keep:
        shutil.rmtree(home, ignore_errors=True)
    else:
        print(f"\nhome kept: {home}")
    print(f"\ntotal wall time: {time.perf_counter() - wall:.0f} s; load at the end: {load_average()}")
    return 1 if verdict.failed else 0


if __name__ == "__main__":
    sys.exit(main())
