"""Scale-out benchmark: one fleet in shards, a work pool with several workers, one DuckLake on Postgres.

    python -m bench.sharded [--shards 2] [--workers 2] [--accounts 200] [--minutes 3] [--keep]
                            [--pg-dsn DSN] [--seed 7] [--max-start-delay 30] [--prefetch 5]

The production stack of `tests/test_sharded_workers.py` (its plumbing is `tests/worker_stack.py`), at
size and for a fixed time: a local Prefect server of its own; the sharded deployments of
`prefect.sharded.yaml` (a deployment per shard on the pool `mt5recon-shards`, each every 10 s with a
concurrency of one that cancels an overrunning shard's next run, plus the hourly housekeeping), and for
another `--shards` the same file with that many shard deployments; `--workers` process workers on the
pool; `mt5recon sim serve` hosting a simulated fleet of `--accounts` terminals (the demo fleet's
accounts, settings and bot, every account behind its own bridge port); every shard committing to one
DuckLake whose catalog is a fresh metadata schema on the real Postgres (dropped at the end unless
`--keep`).

After a warm-up (until every shard has completed a run: the first cycle writes every position and
bot trade for the first time), the measurement window is `--minutes` long: the runs scheduled in it are
counted, the cycles they committed give the throughput. Then the deployments are paused (the server
deletes their runs not yet started), the runs under way finish, the workers and terminals get a Ctrl-C.
Lost and duplicated cycles are checked over the whole session: every completed run must have its
cycle in the store's ledger exactly once, and every ledger row must come from a completed run.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple, TypeVar

import yaml

from bench.recon_engine import load_average, machine_lines, table

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
POOL = "mt5recon-shards"
PROJECT_FILE = "prefect.sharded.yaml"  # relative to the project, as the deploy step reads it
PROJECT_SHARDS = 2  # the shard deployments the project file has
FLEET_NAME = "bench-sharded"
PG_DSN = os.environ.get("MT5RECON_TEST_PG_DSN", "dbname=test host=127.0.0.1 port=5432")
INTERVAL_SECS = 10.0  # the shard deployments' schedule
# as the sharded test: a run's process (imports ~5 s of CPU) starts late on a busy 2-core machine; this
# benchmark is about throughput and lost cycles, and prints the lateness (`--max-start-delay 5`: production)
MAX_START_DELAY_SECS = 30.0
WARMUP_MAX_SECS = 240.0
DRAIN_MAX_SECS = 120.0
HOST_START_MAX_SECS = 180.0
UNDER_WAY = ("PENDING", "RUNNING", "CANCELLING", "PAUSED")
CYCLE_TIME_FORMAT = "%Y%m%dT%H%M%S.%fZ"  # mt5recon.pipeline.cycle_id_for


def worker_stack() -> ModuleType:
    """tests/worker_stack.py, the sharded test's production-mode plumbing (tests/ is not a package:
    its modules import each other by plain name)."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    return importlib.import_module("worker_stack")


def say(line: str) -> None:
    print(line, flush=True)


# ---------------------------------------------------------------- set-up


def _sub_once(pattern: str, replacement: str, text: str) -> str:
    new, count = re.subn(pattern, replacement, text, count=1, flags=re.MULTILINE)
    if count != 1:
        raise ValueError(f"the demo fleet file has no line matching {pattern!r}")
    return new


def write_fleet(path: Path, accounts: int, seed: int) -> Path:
    """The demo fleet file (tolerances, breaks, guards, the bot's SQLite database) with `accounts`
    simulated terminals, each on its own bridge port, as `mt5recon sim serve` hosts them."""
    from mt5recon.fleet import demo_fleet_path, load_fleet
    from mt5recon.terminal.ports import free_ports
    from mt5recon.terminal.simulator.fleet import demo_accounts

    head = demo_fleet_path().read_text().split("[[accounts]]", 1)[0]
    head = _sub_once(r'^name = ".*"$', f'name = "{FLEET_NAME}"', head)
    head = _sub_once(r"^seed = \d+", f"seed = {seed}", head)
    head = _sub_once(r"^accounts = \d+", f"accounts = {accounts}", head)
    blocks = [
        f'[[accounts]]\nlogin = {spec.login}\nserver = "{spec.server}"\n'
        f'connector = {{ kind = "bridge", host = "127.0.0.1", port = {port} }}\n'
        for spec, port in zip(demo_accounts(accounts), free_ports(accounts), strict=True)
    ]
    path.write_text(head.rstrip() + "\n\n" + "\n".join(blocks))
    fleet = load_fleet(path)
    assert fleet.name == FLEET_NAME and len(fleet.accounts) == accounts and fleet.simulator.accounts == accounts
    return path


def project_file(folder: Path, shards: int) -> str:
    """prefect.sharded.yaml itself for its own shard count; else the same file with `shards` shard
    deployments (the shard deployment repeated, as its header says to add a shard)."""
    if shards == PROJECT_SHARDS:
        return PROJECT_FILE
    project = yaml.safe_load((REPO / PROJECT_FILE).read_text())
    deployments = project["deployments"]
    template = next(d for d in deployments if "shards" in (d.get("parameters") or {}))
    others = [d for d in deployments if "shards" not in (d.get("parameters") or {})]
    shard_deployments = [
        {
            **copy.deepcopy(template),  # plain copies: no YAML anchors in the written file
            "name": f"every-10s-shard-{i}of{shards}",
            "description": f"Reconcile shard {i} of {shards} every 10 seconds",
            "parameters": {"shard": i, "shards": shards},
        }
        for i in range(shards)
    ]
    project.pop("definitions", None)  # its anchors are resolved by the load
    project["deployments"] = shard_deployments + others
    path = folder / f"prefect.sharded-{shards}.yaml"
    path.write_text(yaml.safe_dump(project, sort_keys=False))
    return str(path)


@contextmanager
def metadata_schema(dsn: str, keep: bool) -> Iterator[str]:
    """A fresh Postgres schema for the lake's catalog (DuckLake creates it on the first attach),
    dropped with everything in it on exit unless `keep`."""
    import psycopg
    from psycopg import sql

    name = f"mt5recon_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5):
        pass  # reachable, before anything starts
    try:
        yield name
    finally:
        if not keep:
            with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as admin:
                admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def wait_for_host(host: subprocess.Popen[bytes], log: Path) -> float:
    """Seconds until `mt5recon sim serve` says its bridges are up."""
    started = time.monotonic()
    while "simulated fleet on" not in log.read_text(errors="replace"):
        if host.poll() is not None:
            raise RuntimeError(f"the terminal host exited with {host.returncode}:\n{log.read_text()[-2000:]}")
        if time.monotonic() - started > HOST_START_MAX_SECS:
            raise TimeoutError(f"the terminal host did not start in {HOST_START_MAX_SECS:.0f} s; see {log}")
        time.sleep(0.5)  # another process's log: no event to wait on
    return time.monotonic() - started


# ---------------------------------------------------------------- what the server and the store say


def when(value: object) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def cycle_time(cycle_id: str) -> datetime:
    return datetime.strptime(cycle_id.split(":", 1)[1], CYCLE_TIME_FORMAT).replace(tzinfo=UTC)


def shard_of_run(run: dict[str, Any]) -> int:
    return int((run.get("parameters") or {}).get("shard", 0))


def pct(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile; NaN for none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def p50_p95(values: Sequence[float]) -> str:
    return "-" if not values else f"{pct(values, 50):.2f} / {pct(values, 95):.2f}"


def cancel_reason(run: dict[str, Any]) -> str:
    message = str((run.get("state") or {}).get("message") or "")
    if "after its scheduled time" in message:
        return "late"
    if "concurrency" in message.lower() or "collision" in message.lower():
        return "overrun"
    return "other"


def task_runs(api: str, stack: ModuleType) -> list[dict[str, Any]]:
    """Every task run (where a run's time goes; the `commit-cycle` durations and retries show the
    catalog's contention)."""
    found: dict[str, dict[str, Any]] = {}
    offset = 0
    while True:
        body = {"limit": stack.PAGE, "offset": offset, "sort": "EXPECTED_START_TIME_ASC"}
        page = list(stack.api_post(api, "/task_runs/filter", body))
        found.update((str(run["id"]), run) for run in page)
        offset += len(page)
        if len(page) < stack.PAGE:
            return list(found.values())


class CycleRows(NamedTuple):
    """A committed cycle's rows in the `cycles` table (one per account)."""

    rows: int
    logins: int
    ok: int
    positions: int
    started_at: datetime  # the flow's own start of the cycle (after its process started and imported)


NO_ROWS = CycleRows(0, 0, 0, 0, datetime.min.replace(tzinfo=UTC))


@dataclass
class StoreView:
    """The store's record of the session, read back after everything stopped."""

    ledger: list[tuple[str, datetime, dict[str, int]]]
    cycles: dict[str, CycleRows]
    owners: dict[int, int]  # login -> number of shards that wrote a cycles row for it
    data_bytes: int
    catalog_bytes: int  # the metadata schema on Postgres (DuckLake inlines small inserts into it)


def read_store(home: Path, dsn: str, schema: str) -> StoreView:
    import psycopg

    from mt5recon.settings import Settings
    from mt5recon.store.lake import open_reader

    config = Settings(home=home, store_catalog=f"postgres:{dsn}", store_metadata_schema=schema).store_config()
    reader = open_reader(config)
    try:
        ledger = [
            (str(cycle_id), committed_at, json.loads(counts))
            for cycle_id, committed_at, counts in reader.execute(
                "SELECT cycle_id, committed_at, row_counts FROM cycle_ledger"
            ).fetchall()
        ]
        cycles = {
            str(row[0]): CycleRows(int(row[1]), int(row[2]), int(row[3]), int(row[4] or 0), row[5])
            for row in reader.execute(
                "SELECT cycle_id, count(*), count(DISTINCT login), count(*) FILTER (WHERE status = 'ok'), "
                "sum(positions), min(started_at) FROM cycles GROUP BY cycle_id"
            ).fetchall()
        }
        owners = {
            int(login): int(n)
            for login, n in reader.execute(
                "SELECT login, count(DISTINCT split_part(cycle_id, ':', 1)) FROM cycles GROUP BY login"
            ).fetchall()
        }
    finally:
        reader.close()
    data = Path(config.data_path)
    size = sum(f.stat().st_size for f in data.rglob("*") if f.is_file()) if data.exists() else 0
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as pg:
        row = pg.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
            [schema],
        ).fetchone()
    return StoreView(ledger, cycles, owners, size, int(row[0]) if row else 0)


# ---------------------------------------------------------------- the report


@dataclass
class ShardReport:
    shard: int
    name: str
    accounts: int
    window: list[dict[str, Any]] = field(default_factory=list)  # runs scheduled in the window
    completed_ids: set[str] = field(default_factory=set)  # cycle ids of completed runs (whole session)
    ledger_ids: list[str] = field(default_factory=list)  # cycle ids in the ledger (whole session)
    commit_secs: list[float] = field(default_factory=list)  # commit-cycle task durations
    commit_retries: int = 0
    # completed runs in the window: task name -> (offset from the run's start, duration) per task run
    steps: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    startup: list[float] = field(default_factory=list)  # their cycle's start - Prefect's start of the run

    def lost(self) -> tuple[set[str], set[str]]:
        ledger = set(self.ledger_ids)
        return self.completed_ids - ledger, ledger - self.completed_ids

    def duplicated(self) -> int:
        return len(self.ledger_ids) - len(set(self.ledger_ids))


def per_shard_runs(reports: list[ShardReport]) -> str:
    rows = []
    for r in reports:
        seen = Counter(str(run["state_type"]) for run in r.window)
        reasons = Counter(cancel_reason(run) for run in r.window if run["state_type"] == "CANCELLED")
        started = [
            run for run in r.window if not (run["state_type"] == "CANCELLED" and cancel_reason(run) == "overrun")
        ]
        late, durations = run_times(started, "lateness"), run_times(r.window, "duration")
        cancelled = f"{seen['CANCELLED']}" + (
            f" ({', '.join(f'{n} {why}' for why, n in sorted(reasons.items()))})" if reasons else ""
        )
        rows.append(
            [
                str(r.shard),
                str(r.accounts),
                str(len(r.window)),
                str(seen["COMPLETED"]),
                cancelled,
                str(seen["FAILED"]),
                str(seen["CRASHED"]),
                str(sum(seen[s] for s in ("SCHEDULED", *UNDER_WAY))),
                p50_p95(late),
                p50_p95(durations),
            ]
        )
    return table(
        [
            "shard",
            "accounts",
            "scheduled",
            "completed",
            "cancelled",
            "failed",
            "crashed",
            "not run or unfinished",
            "start lateness p50 / p95 s",
            "run duration p50 / p95 s",
        ],
        rows,
    )


def per_shard_store(reports: list[ShardReport], store: StoreView, start: datetime, end: datetime) -> str:
    lags: dict[str, float] = {
        cycle_id: (committed_at - cycle_time(cycle_id)).total_seconds() for cycle_id, committed_at, _ in store.ledger
    }
    rows = []
    for r in reports:
        in_window = [c for c in set(r.ledger_ids) if start <= cycle_time(c) < end]
        whole = sum(1 for c in set(r.ledger_ids) if store.cycles.get(c, NO_ROWS)[:2] == (r.accounts, r.accounts))
        no_commit, no_run = r.lost()
        twice_rows = sum(store.cycles[c].rows - store.cycles[c].logins for c in set(r.ledger_ids) if c in store.cycles)
        started = [(store.cycles[c].started_at - cycle_time(c)).total_seconds() for c in in_window if c in store.cycles]
        rows.append(
            [
                str(r.shard),
                str(len(in_window)),
                str(len(set(r.ledger_ids))),
                f"{whole} / {len(set(r.ledger_ids))}",
                f"{len(no_commit)} / {len(no_run)}",
                f"{r.duplicated()} / {twice_rows}",
                p50_p95(started),
                p50_p95([lags[c] for c in in_window]),
                p50_p95(r.commit_secs),
                str(r.commit_retries),
            ]
        )
    return table(
        [
            "shard",
            "cycles committed (window)",
            "(session)",
            "with every account",
            "lost: run w/o commit / commit w/o run",
            "duplicated: ledger / cycles rows",
            "cycle started after schedule p50 / p95 s",
            "committed after schedule p50 / p95 s",
            "commit task p50 / p95 s",
            "commit retries",
        ],
        rows,
    )


def aggregate(reports: list[ShardReport], store: StoreView, start: datetime, end: datetime) -> str:
    secs = (end - start).total_seconds()
    window = {c for r in reports for c in r.ledger_ids if start <= cycle_time(c) < end}
    counts = [counts for cycle_id, _, counts in store.ledger if cycle_id in window]
    rows_in = sum(n for counts_ in counts for table_, n in counts_.items() if not table_.endswith(":deleted"))
    rows_out = sum(n for counts_ in counts for table_, n in counts_.items() if table_.endswith(":deleted"))
    accounts = sum(store.cycles.get(c, NO_ROWS).rows for c in window)
    ok = sum(store.cycles.get(c, NO_ROWS).ok for c in window)
    positions = sum(store.cycles.get(c, NO_ROWS).positions for c in window)
    slots = len(reports) * secs / INTERVAL_SECS
    rows = [
        ["window", f"{secs:,.0f} s ({start:%H:%M:%S} - {end:%H:%M:%S} UTC)"],
        ["cycles committed", f"{len(window):,} of {slots:,.0f} slots ({len(reports)} shards x 10 s)"],
        ["cycles per minute", f"{len(window) / secs * 60:.1f} (schedule: {len(reports) * 60 / INTERVAL_SECS:.0f})"],
        ["accounts reconciled per second", f"{accounts / secs:,.1f} ({accounts:,} account-cycles, {ok:,} ok)"],
        ["positions per second", f"{positions / secs:,.0f} ({positions:,} positions)"],
        ["rows committed per second", f"{rows_in / secs:,.0f} ({rows_in:,} rows, {rows_out:,} state rows deleted)"],
        [
            "store size (whole session)",
            f"{store.data_bytes / 2**20:,.1f} MiB data files, {store.catalog_bytes / 2**20:,.1f} MiB Postgres catalog",
        ],
    ]
    return table(["aggregate (cycles scheduled in the window)", "value"], rows)


def steps_table(reports: list[ShardReport]) -> str:
    names = {name for r in reports for name in r.steps}
    order = sorted(names, key=lambda n: pct([o for r in reports for o, _ in r.steps.get(n, [])], 50))

    def completed(r: ShardReport) -> list[dict[str, Any]]:
        return [run for run in r.window if run["state_type"] == "COMPLETED"]

    rows = [
        [
            "start lateness (Prefect start - scheduled)",
            *(p50_p95(run_times(completed(r), "lateness")) for r in reports),
        ],
        ["Prefect start to the cycle's own start", *(p50_p95(r.startup) for r in reports)],
        *([name, *(p50_p95([d for _, d in r.steps.get(name, [])]) for r in reports)] for name in order),
        ["run (Prefect start to end)", *(p50_p95(run_times(r.window, "duration")) for r in reports)],
        ["slot busy until (end - scheduled)", *(p50_p95(run_times(r.window, "end")) for r in reports)],
    ]
    return table(["step", *(f"shard {r.shard}" for r in reports)], rows)


def run_times(runs: list[dict[str, Any]], key: str) -> list[float]:
    """Every started run's lateness (start - scheduled), or completed runs' durations, or their end
    after the scheduled time."""
    out = []
    for run in runs:
        start = when(run.get("start_time"))
        if start is None:
            continue
        if key == "lateness" and (expected := when(run.get("expected_start_time"))):
            out.append((start - expected).total_seconds())
        elif key == "duration" and run["state_type"] == "COMPLETED" and (end := when(run.get("end_time"))):
            out.append((end - start).total_seconds())
        elif (
            key == "end"
            and run["state_type"] == "COMPLETED"
            and (end := when(run.get("end_time")))
            and (expected := when(run.get("expected_start_time")))
        ):
            out.append((end - expected).total_seconds())
    return out


# ---------------------------------------------------------------- CPU accounting (Linux /proc)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
SERVER = "Prefect server (+ uvicorn)"
OTHERS = "everything else on the machine"


@dataclass(frozen=True)
class CpuSample:
    by_component: dict[str, float]  # CPU seconds so far, each subtree with its reaped children
    machine_busy: float  # the machine's busy CPU seconds since boot (/proc/stat)
    own: float  # this benchmark process


def _process_table() -> dict[int, tuple[int, float]]:
    """pid -> (ppid, CPU seconds of the process and its reaped children)."""
    out: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = text[text.rindex(")") + 2 :].split()
        out[int(entry.name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]) / CLOCK_TICKS)
    return out


def cpu_now(pids: dict[str, int]) -> CpuSample | None:
    """CPU seconds per child of this process (named by `pids`, else the Prefect server), with all
    their descendants: a worker's includes its runs' processes. None off Linux."""
    if not Path("/proc/stat").exists():
        return None
    processes = _process_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in processes.items():
        children.setdefault(ppid, []).append(pid)
    names = {pid: name for name, pid in pids.items()}
    by_component: dict[str, float] = {}
    for child in children.get(os.getpid(), []):
        total, todo = 0.0, [child]
        while todo:
            pid = todo.pop()
            total += processes[pid][1]
            todo.extend(children.get(pid, []))
        label = names.get(child, SERVER)
        by_component[label] = by_component.get(label, 0.0) + total
    jiffies = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    busy = (sum(jiffies[:8]) - jiffies[3] - jiffies[4]) / CLOCK_TICKS  # all but idle and iowait
    own = os.times()
    return CpuSample(by_component, busy, own.user + own.system)


def cpu_table(first: CpuSample | None, last: CpuSample | None, secs: float) -> str:
    if first is None or last is None:
        return "(no /proc: CPU accounting is Linux only)"
    capacity = secs * (os.cpu_count() or 1)
    used = {
        name: last.by_component.get(name, 0.0) - first.by_component.get(name, 0.0)
        for name in sorted(set(first.by_component) | set(last.by_component))
    }
    used["this benchmark process"] = last.own - first.own
    machine = last.machine_busy - first.machine_busy
    used[OTHERS] = max(0.0, machine - sum(used.values()))
    rows = [[name, f"{value:,.1f}", f"{value / capacity:.0%}"] for name, value in used.items()]
    rows.append(["the machine, busy", f"{machine:,.1f}", f"{machine / capacity:.0%}"])
    return table(["process (with its children)", "CPU s", "of the machine"], rows)


# ---------------------------------------------------------------- the run


def patiently(call: Callable[[], T], tries: int = 4) -> T:
    """`call()`, again after a pause when the server is too busy to answer in time (a loaded machine)."""
    for attempt in range(1, tries + 1):
        try:
            return call()
        except OSError:  # URLError and the socket's TimeoutError are OSErrors
            if attempt == tries:
                raise
            time.sleep(2.0 * attempt)
    raise AssertionError("unreachable")


def progress_line(stack: ModuleType, api: str, shards: int, since: datetime) -> str:
    try:
        every = stack.reconcile_runs(api)
    except OSError as error:
        return f"the Prefect server did not answer ({error})"
    runs = [r for r in every if (t := when(r.get("expected_start_time"))) and t >= since]
    parts = []
    for shard in range(shards):
        seen = Counter(str(r["state_type"]) for r in runs if shard_of_run(r) == shard)
        parts.append(
            f"shard {shard}: {seen['COMPLETED']} completed, {seen['CANCELLED']} cancelled, "
            f"{seen['FAILED'] + seen['CRASHED']} failed/crashed"
        )
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sharded", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=int, default=2, help="shard deployments (default 2, prefect.sharded.yaml)")
    parser.add_argument("--workers", type=int, default=2, help="process workers on the pool (default 2)")
    parser.add_argument("--accounts", type=int, default=200, help="simulated terminals in the fleet (default 200)")
    parser.add_argument("--minutes", type=float, default=3.0, help="measurement window (default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the run folder and the Postgres schema")
    parser.add_argument("--pg-dsn", default=PG_DSN, help=f"the catalog's Postgres ({PG_DSN})")
    parser.add_argument("--seed", type=int, default=7, help="the simulated fleet's seed (default 7)")
    parser.add_argument(
        "--max-start-delay",
        type=float,
        default=MAX_START_DELAY_SECS,
        help=f"MT5RECON_MAX_START_DELAY_SECS for the runs (default {MAX_START_DELAY_SECS:g}; production: 5)",
    )
    parser.add_argument(
        "--prefetch",
        type=float,
        default=10.0,
        help="PREFECT_WORKER_PREFETCH_SECONDS: a worker starts a run's process this early (default 10, as the "
        "project file's header says); the run holds its shard's slot from then on",
    )
    args = parser.parse_args(argv)
    if args.shards < 1 or args.workers < 1 or args.accounts < args.shards or args.minutes <= 0:
        parser.error("need shards >= 1, workers >= 1, accounts >= shards and minutes > 0")

    stack = worker_stack()
    from mt5recon.fleet import load_fleet
    from mt5recon.pipeline import cycle_id_for
    from mt5recon.settings import Settings
    from mt5recon.sharding import shard_fleet
    from mt5recon.store.lake import Store

    say(
        f"sharded scale-out: {args.shards} shards, {args.workers} workers, {args.accounts} simulated terminals, "
        f"{args.minutes:g} min window, Postgres catalog; worker prefetch {args.prefetch:g} s, "
        f"runs cancelled when more than {args.max_start_delay:g} s late"
    )
    for line in machine_lines():
        say(line)
    load_start = load_average()
    folder = Path(tempfile.mkdtemp(prefix="mt5recon-bench-sharded-"))
    catalog = f"postgres:{args.pg_dsn}"
    settings = {
        "MT5RECON_STORE_CATALOG": catalog,
        "MT5RECON_MAX_START_DELAY_SECS": f"{args.max_start_delay:g}",
        "PREFECT_WORKER_PREFETCH_SECONDS": f"{args.prefetch:g}",
    }
    session_started = time.monotonic()
    passed = False
    try:
        with metadata_schema(args.pg_dsn, args.keep) as schema:
            fleet_path = write_fleet(folder / "fleet-sharded.toml", args.accounts, args.seed)
            fleet = load_fleet(fleet_path)
            parts = [shard_fleet(fleet, shard, args.shards) for shard in range(args.shards)]
            say(f"run folder {folder}; metadata schema {schema}")
            settings["MT5RECON_STORE_METADATA_SCHEMA"] = schema
            home = folder / "home"
            Store.open(Settings(home=home, store_catalog=catalog, store_metadata_schema=schema).store_config()).close()
            with stack.production_env(folder, fleet=fleet_path, **settings) as env:
                api = env["PREFECT_API_URL"]
                processes: dict[str, subprocess.Popen[bytes]] = {}
                try:
                    host = stack.start(
                        [sys.executable, "-m", "mt5recon.cli", "sim", "serve"], env, folder / "terminals.log"
                    )
                    processes["terminal host"] = host
                    say(f"terminal host up in {wait_for_host(host, folder / 'terminals.log'):.1f} s")
                    stack.deploy(env, POOL, project_file(folder, args.shards), quiet=True)
                    say(f"deployed {args.shards} shard deployments (and the hourly housekeeping) on pool {POOL}")
                    for i in range(args.workers):
                        processes[f"worker w{i} (+ its runs)"] = stack.start(
                            [*stack.PREFECT, "worker", "start", "--pool", POOL, "--name", f"w{i}"],
                            env,
                            folder / f"worker{i}.log",
                        )
                    warm = time.monotonic()
                    while time.monotonic() - warm < WARMUP_MAX_SECS:
                        runs_so_far = patiently(lambda: stack.reconcile_runs(api))
                        done = {shard_of_run(r) for r in runs_so_far if r["state_type"] == "COMPLETED"}
                        if len(done) == args.shards:
                            say(f"warm-up done in {time.monotonic() - warm:.0f} s (every shard has completed a run)")
                            break
                        time.sleep(2)  # another process's server: no event to wait on
                    else:
                        say(f"warm-up: not every shard completed a run in {WARMUP_MAX_SECS:.0f} s; measuring anyway")
                    pids = {name: process.pid for name, process in processes.items()}
                    cpu_start = cpu_now(pids)
                    start = datetime.now(UTC)
                    end = start + timedelta(minutes=args.minutes)
                    minute = 0
                    while (now := datetime.now(UTC)) < end:
                        time.sleep(
                            min(60.0 * (minute + 1) - (now - start).total_seconds(), (end - now).total_seconds())
                        )
                        minute += 1
                        dead = [name for name, process in processes.items() if process.poll() is not None]
                        say(
                            f"[{min(minute, math.ceil(args.minutes))}/{math.ceil(args.minutes)} min] "
                            f"{progress_line(stack, api, args.shards, start)}; load {load_average().split(' (')[0]}"
                            + (f"; EXITED: {dead}" if dead else "")
                        )
                    cpu_end = cpu_now(pids)
                    before = {str(r["id"]): r for r in patiently(lambda: stack.reconcile_runs(api))}
                    paused = patiently(lambda: stack.pause_deployments(api))
                    say(f"paused {len(paused)} deployments; waiting for the runs under way")
                    drain = time.monotonic()
                    while time.monotonic() - drain < DRAIN_MAX_SECS:
                        after = {str(r["id"]): r for r in patiently(lambda: stack.reconcile_runs(api))}
                        if not any(r["state_type"] in UNDER_WAY for r in after.values()):
                            break
                        time.sleep(2)
                    tasks = patiently(lambda: task_runs(api, stack))
                finally:
                    for process in reversed(processes.values()):
                        stack.stop(process)
            store = read_store(home, args.pg_dsn, schema)

            runs = {**before, **after}  # a run the pause deleted keeps its last state (never started)
            reports = [ShardReport(i, part.name, len(part.accounts)) for i, part in enumerate(parts)]
            shard_by_run: dict[str, int] = {}
            for run in runs.values():
                shard = shard_of_run(run)
                shard_by_run[str(run["id"])] = shard
                expected = when(run.get("expected_start_time"))
                if expected is None or shard >= args.shards:
                    continue
                if start <= expected < end:
                    reports[shard].window.append(run)
                if run["state_type"] == "COMPLETED":
                    cycle_id = cycle_id_for(reports[shard].name, expected)
                    reports[shard].completed_ids.add(cycle_id)
                    began = when(run.get("start_time"))
                    if start <= expected < end and began and cycle_id in store.cycles:
                        reports[shard].startup.append((store.cycles[cycle_id].started_at - began).total_seconds())
            by_name = {r.name: r for r in reports}
            for cycle_id, _, _ in store.ledger:
                owner = by_name.get(cycle_id.split(":", 1)[0])
                if owner is not None:
                    owner.ledger_ids.append(cycle_id)
            window_runs = {str(run["id"]): run for r in reports for run in r.window if run["state_type"] == "COMPLETED"}
            for task in tasks:
                run_id = str(task.get("flow_run_id"))
                shard_index = shard_by_run.get(run_id)
                if shard_index is None:
                    continue
                report = reports[shard_index]
                name = str(task.get("name", "?")).rsplit("-", 1)[0]
                began, ended = when(task.get("start_time")), when(task.get("end_time"))
                if name == "commit-cycle":
                    if task.get("state_type") == "COMPLETED" and began and ended:
                        report.commit_secs.append((ended - began).total_seconds())
                    report.commit_retries += max(0, int(task.get("run_count") or 1) - 1)
                run_start = when(window_runs[run_id].get("start_time")) if run_id in window_runs else None
                if run_start and began and ended:
                    offset_secs = (began - run_start).total_seconds()
                    report.steps.setdefault(name, []).append((offset_secs, (ended - began).total_seconds()))

            say("")
            say(
                "runs scheduled in the window, per shard (start lateness: Prefect's start of the run, after its "
                "process started and imported the flow, minus its scheduled time; for the runs that started)"
            )
            say(per_shard_runs(reports))
            say("")
            say("the store, per shard (lost and duplicated over the whole session, warm-up and drain included)")
            say(per_shard_store(reports, store, start, end))
            say("")
            say(aggregate(reports, store, start, end))
            say("")
            say("where a completed run's time goes (runs scheduled in the window; task durations p50 / p95 s)")
            say(steps_table(reports))
            say("")
            say(f"CPU over the window ({(end - start).total_seconds():.0f} s x {os.cpu_count()} cores)")
            say(cpu_table(cpu_start, cpu_end, (end - start).total_seconds()))
            say("")
            say(f"load at start: {load_start}")
            say(f"load at end:   {load_average()}")
            foreign = sorted({c for c, _, _ in store.ledger if c.split(":", 1)[0] not in by_name})
            lost = sum(len(a) + len(b) for a, b in (r.lost() for r in reports))
            duplicated = sum(r.duplicated() for r in reports) + sum(c.rows - c.logins for c in store.cycles.values())
            every_run = all(not r.lost()[0] for r in reports) and all(r.completed_ids for r in reports)
            one_owner = set(store.owners) == {a.login for a in fleet.accounts} and set(store.owners.values()) == {1}
            checks = [
                ("every shard committed every completed run", every_run),
                (f"0 lost cycles ({lost})", lost == 0 and not foreign),
                (f"0 duplicated cycles ({duplicated})", duplicated == 0),
                ("every account reconciled by exactly one shard", one_owner),
            ]
            say("")
            for label, ok in checks:
                say(f"{'PASS' if ok else 'FAIL'}: {label}")
            if foreign:
                say(f"ledger rows of no shard: {foreign[:5]}")
            passed = all(ok for _, ok in checks)
            committed = sum(len(set(r.ledger_ids)) for r in reports)
            say(
                f"done: {args.shards} shards on {args.workers} workers reconciled {args.accounts} terminals into one "
                f"DuckLake (Postgres catalog) for {(time.monotonic() - session_started) / 60:.1f} min in all, "
                f"{committed} cycles committed; {'PASS' if passed else 'FAIL'}"
                + (f"; kept {folder} and schema {schema}" if args.keep else "")
            )
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
