"""Benchmark the fleet fetch's fan-out: many simulated terminals, each answering 100-200 ms late.

    python -m bench.fetch_fanout [--terminals 1000] [--concurrency 16,32,64,128,256] [--repeats 3]
                                 [--min-latency-ms 100] [--max-latency-ms 200] [--per-call]
                                 [--connector sim|bridge] [--bridge-host process|inline]

Every terminal gets its own latency, drawn uniformly from [min, max] ms (seeded), injected with
`SimAccount.slow_down`: by default on its `account_info` call only, so one snapshot of one terminal
costs one latency (one slow round trip); `--per-call` puts it on every data call of the snapshot.
For each concurrency limit the whole fleet is fetched with `pipeline.fetch_fleet` (no deadline) and
the fetch time is compared with the latency bound (sum of the injected latencies / concurrency).
The same fetch without any latency, at the same limit, shows the fetch's own cost in this process.

Connectors: `sim` calls the in-process simulator (connector kind "sim"); `bridge` puts every
terminal behind its own `serve_bridge` on 127.0.0.1 (port 0) and fetches through `BridgeTerminal`s
over real loopback sockets, the way real terminals are reached. The bridge servers run in a spawned
child process by default (as real terminals run in their own processes), or in this process with
`--bridge-host inline` (their CPU then competes with the fetch for the same interpreter).

The simulated fleet is `SimFleet.quiet` on the wall clock: no scenarios, idle bots and frozen prices,
so the world steps cheaply and the benchmark measures the fetch; the bots' last hour of trades is
prepopulated (about 28 open positions per account) unless `--empty-accounts`.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, cast

import polars as pl

from bench.recon_engine import load_average, machine_lines, table
from mt5recon import pipeline
from mt5recon.fleet import AccountConfig, ConnectorConfig, ExpectedTradesSource, FleetConfig
from mt5recon.terminal.api import MT5Api
from mt5recon.terminal.dispatch import READ_CALLS
from mt5recon.terminal.factory import open_terminal
from mt5recon.terminal.sim_host import use_in_process_fleet
from mt5recon.terminal.simulator.clock import WallClock
from mt5recon.terminal.simulator.fleet import SimFleet

LOOPBACK = "127.0.0.1"
# the data calls one snapshot makes (fetch_account); initialize/shutdown/last_error are session plumbing
SNAPSHOT_METHODS = READ_CALLS
ONE_ROUND_TRIP = frozenset({"account_info"})
DEFAULT_CONCURRENCY = "16,32,64,128,256"
WARMUP_TERMINALS = 50
HOST_START_SECS = 600.0

# login -> seconds late, and which calls are late (None: no latency at all)
Injection = tuple[dict[int, float], frozenset[str]] | None


# ---------------------------------------------------------------- the simulated fleet and its hosts


def build_sim(terminals: int, seed: int, prepopulate: bool) -> SimFleet:
    """A calm fleet on the wall clock: injected latencies really wait, the world barely moves."""
    return SimFleet.quiet(seed=seed, clock=WallClock(), accounts=terminals, prepopulate=prepopulate)


def inject(sim: SimFleet, injection: Injection) -> None:
    """Every terminal answers its chosen calls its own latency late (persistent); None: all fast."""
    for account in sim.accounts():
        if injection is None:
            account.slow_down(0.0)
        else:
            latencies, methods = injection
            account.slow_down(latencies[account.login], methods=set(methods))


def fleet_config(accounts: Sequence[tuple[int, str, ConnectorConfig]]) -> FleetConfig:
    return FleetConfig(
        name="bench-fanout",
        accounts=tuple(AccountConfig(login=login, server=server, connector=c) for login, server, c in accounts),
        expected_trades=ExpectedTradesSource(kind="sim"),
    )


def raise_fd_limit(needed: int) -> str:
    """Sockets are file descriptors: make sure this process may hold `needed` of them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return "unlimited" if soft == resource.RLIM_INFINITY else f"{soft:,}"


class Host:
    """Where the terminals live: the fleet config to fetch, and the knob that slows them down."""

    fleet: FleetConfig
    positions: int
    build_secs: float
    description: str

    def set_latency(self, injection: Injection) -> None:
        raise NotImplementedError

    def cpu_secs(self) -> float | None:
        """CPU time of the process hosting the terminals, when that is not this process."""
        return None

    def close(self) -> None:
        """Stop what the host started."""


class SimHost(Host):
    """The in-process simulator (connector kind "sim"), reached as the pipeline reaches it."""

    def __init__(self, terminals: int, seed: int, prepopulate: bool) -> None:
        started = time.perf_counter()
        self.sim = build_sim(terminals, seed, prepopulate)
        self.build_secs = time.perf_counter() - started
        self.positions = self.sim.open_positions()
        use_in_process_fleet(self.sim)
        sim_kind = ConnectorConfig(kind="sim")
        self.fleet = fleet_config([(a.login, a.spec.server, sim_kind) for a in self.sim.accounts()])
        self.description = "in-process simulator (connector kind 'sim')"

    def set_latency(self, injection: Injection) -> None:
        inject(self.sim, injection)

    def close(self) -> None:
        use_in_process_fleet(None)


def _bridge_accounts(sim: SimFleet, servers: Sequence[Any]) -> list[tuple[int, str, int]]:
    return [(a.login, a.spec.server, int(s.port)) for a, s in zip(sim.accounts(), servers, strict=True)]


def _bridged(accounts: Sequence[tuple[int, str, int]]) -> FleetConfig:
    return fleet_config(
        [(login, server, ConnectorConfig(kind="bridge", host=LOOPBACK, port=port)) for login, server, port in accounts]
    )


def serve_terminals(conn: Connection, terminals: int, seed: int, prepopulate: bool) -> None:
    """Child process: the fleet behind one bridge per terminal; obeys latency commands until 'stop'."""
    from mt5recon.terminal.bridge import serve_bridge

    raise_fd_limit(2 * terminals + 256)  # a listener and an accepted connection per terminal
    started = time.perf_counter()
    sim = build_sim(terminals, seed, prepopulate)
    servers = [serve_bridge(sim.terminal(login), LOOPBACK, 0) for login in sim.logins]
    conn.send((_bridge_accounts(sim, servers), sim.open_positions(), time.perf_counter() - started))
    try:
        while True:
            command, payload = conn.recv()
            if command == "latency":
                inject(sim, cast(Injection, payload))
                conn.send(None)
            elif command == "cpu":
                conn.send(time.process_time())
            else:
                break
    finally:
        for server in servers:
            server.close()
        conn.send("stopped")


class BridgeProcessHost(Host):
    """One bridge server per terminal in a spawned child process; fetched over loopback sockets."""

    def __init__(self, terminals: int, seed: int, prepopulate: bool) -> None:
        context = get_context("spawn")
        self._conn, child_end = context.Pipe()
        self._process: BaseProcess = context.Process(
            target=serve_terminals, args=(child_end, terminals, seed, prepopulate), name="bench-bridges", daemon=True
        )
        started = time.perf_counter()
        self._process.start()
        child_end.close()
        accounts, self.positions, _ = self._ask_first(started)
        self.build_secs = time.perf_counter() - started
        self.fleet = _bridged(accounts)
        self.description = (
            f"{terminals:,} bridge servers (rpyc) on {LOOPBACK} in a child process, "
            "one BridgeTerminal connection per terminal and fetch"
        )

    def _ask_first(self, started: float) -> tuple[list[tuple[int, str, int]], int, float]:
        while not self._conn.poll(1.0):
            if not self._process.is_alive():
                raise RuntimeError(f"the bridge host exited with code {self._process.exitcode}")
            if time.perf_counter() - started > HOST_START_SECS:
                raise RuntimeError(f"the bridge host did not start within {HOST_START_SECS:g} s")
        try:
            return cast(tuple[list[tuple[int, str, int]], int, float], self._conn.recv())
        except EOFError:
            self._process.join(timeout=5)
            raise RuntimeError(f"the bridge host exited with code {self._process.exitcode}") from None

    def _ask(self, command: str, payload: object = None) -> object:
        self._conn.send((command, payload))
        return self._conn.recv()

    def set_latency(self, injection: Injection) -> None:
        self._ask("latency", injection)

    def cpu_secs(self) -> float | None:
        return cast(float, self._ask("cpu"))

    def close(self) -> None:
        try:
            if self._process.is_alive():
                self._ask("stop")
        except (EOFError, OSError):
            pass
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)
        self._conn.close()


class BridgeInlineHost(Host):
    """One bridge server per terminal in this process: their CPU competes with the fetch's."""

    def __init__(self, terminals: int, seed: int, prepopulate: bool) -> None:
        from mt5recon.terminal.bridge import serve_bridge

        started = time.perf_counter()
        self.sim = build_sim(terminals, seed, prepopulate)
        self.servers = [serve_bridge(self.sim.terminal(login), LOOPBACK, 0) for login in self.sim.logins]
        self.build_secs = time.perf_counter() - started
        self.positions = self.sim.open_positions()
        self.fleet = _bridged(_bridge_accounts(self.sim, self.servers))
        self.description = (
            f"{terminals:,} bridge servers (rpyc) on {LOOPBACK} in this process, "
            "one BridgeTerminal connection per terminal and fetch"
        )

    def set_latency(self, injection: Injection) -> None:
        inject(self.sim, injection)

    def close(self) -> None:
        for server in self.servers:
            server.close()


# ---------------------------------------------------------------- one fetch


class CountedTerminal:
    """Forwards every call to the terminal and counts them by name (to know how many were late);
    the calls of a batch (`read_many`, one round trip) count one by one, the batch as a round trip."""

    def __init__(self, login: int, api: MT5Api) -> None:
        self.login = login
        self.api = api
        self.calls: Counter[str] = Counter()
        self.round_trips = 0

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.api, name)
        if not callable(target):
            return target

        def counted(*args: Any, **kwargs: Any) -> Any:
            if name == "read_many":
                self.calls.update(call for call, _ in args[0])
            else:
                self.calls[name] += 1
            self.round_trips += 1
            return target(*args, **kwargs)

        return counted

    def close(self) -> None:
        """Drop a bridge connection now rather than whenever the garbage collector gets to it."""
        close = getattr(self.api, "close", None)
        if callable(close):
            close()


@dataclass(frozen=True)
class Run:
    wall_secs: float  # fetch_fleet's own fetch time
    cpu_secs: float  # CPU time of this process (all threads) during the fetch
    host_cpu_secs: float | None  # CPU time of the bridge host process during the fetch
    ok: int
    failed: int
    bound_secs: float  # sum of latency x late calls / concurrency (at least the slowest terminal's)
    late_calls: float  # mean late calls per terminal
    calls: float  # mean MT5 calls per terminal (any)
    round_trips: float  # mean exchanges per terminal (a batch of calls is one)
    extra_ms: list[float] = field(default_factory=list)  # per terminal: its call time beyond the injected latency
    first_error: str | None = None


def fetch_once(host: Host, concurrency: int, injection: Injection, fleet: FleetConfig | None = None) -> Run:
    fleet = fleet or host.fleet
    opened: list[CountedTerminal] = []

    def opener(account: AccountConfig) -> MT5Api:
        counted = CountedTerminal(account.login, open_terminal(account))
        opened.append(counted)  # list.append is atomic: worker threads may share it
        return cast(MT5Api, counted)

    host_cpu = host.cpu_secs()
    cpu = time.process_time()
    snapshot, fetch_ms = pipeline.fetch_fleet(
        fleet, fetched_at=datetime.now(UTC), open_terminal=opener, concurrency=concurrency
    )
    cpu = time.process_time() - cpu
    host_cpu_after = host.cpu_secs()
    for terminal in opened:
        terminal.close()

    latencies, methods = injection if injection is not None else ({}, frozenset[str]())
    late = {t.login: sum(n for name, n in t.calls.items() if name in methods) for t in opened}
    injected_secs = {login: latencies.get(login, 0.0) * n for login, n in late.items()}
    ok_flags = snapshot.accounts.select(pl.col("account_ok") & pl.col("positions_ok")).to_series()
    ok = int(ok_flags.sum())
    calls_ms = dict(snapshot.health.select("login", "calls_ms").drop_nulls().iter_rows())
    return Run(
        wall_secs=fetch_ms / 1000,
        cpu_secs=cpu,
        host_cpu_secs=None if host_cpu is None or host_cpu_after is None else host_cpu_after - host_cpu,
        ok=ok,
        failed=len(fleet.accounts) - ok,
        bound_secs=max(sum(injected_secs.values()) / concurrency, max(injected_secs.values(), default=0.0)),
        late_calls=statistics.fmean(late.values()) if late else 0.0,
        calls=statistics.fmean(sum(t.calls.values()) for t in opened) if opened else 0.0,
        round_trips=statistics.fmean(t.round_trips for t in opened) if opened else 0.0,
        extra_ms=[ms - injected_secs.get(login, 0.0) * 1000 for login, ms in calls_ms.items()],
        first_error=next((f"{login}: {error}" for login, error in sorted(snapshot.errors.items())), None),
    )


def median_run(runs: list[Run]) -> Run:
    """The run with the median fetch time (the lower one of the middle two for an even count)."""
    return sorted(runs, key=lambda r: r.wall_secs)[(len(runs) - 1) // 2]


# ---------------------------------------------------------------- report


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _cpu_cell(run: Run) -> str:
    return f"{run.cpu_secs:.1f}" + ("" if run.host_cpu_secs is None else f" + {run.host_cpu_secs:.1f}")


def _row(concurrency: int, runs: list[Run], baseline: list[Run] | None) -> list[str]:
    walls = [r.wall_secs for r in runs]
    mid = median_run(runs)
    row = [
        f"{concurrency:,}",
        f"{statistics.median(walls):.2f}",
        f"{min(walls):.2f}-{max(walls):.2f}",
        f"{mid.ok:,}",
        f"{mid.failed:,}",
        f"{mid.bound_secs:.2f}",
        f"{mid.bound_secs / statistics.median(walls):.0%}",
    ]
    if baseline is not None:
        row.append(f"{statistics.median(r.wall_secs for r in baseline):.2f}")
    row += [
        _cpu_cell(mid),
        f"{_percentile(mid.extra_ms, 0.5):,.0f} / {_percentile(mid.extra_ms, 0.95):,.0f}",
    ]
    return row


HEADER = [
    "concurrency",
    "fetch s (median)",
    "min-max s",
    "ok",
    "failed",
    "latency bound s",
    "efficiency",
]
TAIL = ["CPU s", "extra ms/terminal p50 / p95"]


def explain(bridge_child: bool, baseline: bool) -> list[str]:
    lines = [
        "fetch s: pipeline.fetch_fleet's fetch time (all terminals, deadline off); median and range of the repeats",
        "ok / failed: accounts whose account_info and positions_get answered / the others (median run)",
        "latency bound: sum over terminals of (injected latency x late calls) / concurrency (at least the",
        "  slowest terminal's), what a perfectly overlapped fetch would take; efficiency = latency bound / fetch s",
    ]
    if baseline:
        lines.append("no-latency s: the same fetch at the same limit with no latency injected (the fetch's own cost)")
    lines += [
        "CPU s: CPU time of this process, all threads, during the fetch"
        + (" + of the bridge host process" if bridge_child else ""),
        "extra ms/terminal: a terminal's call time (health.calls_ms, first to last MT5 call of its snapshot)",
        "  beyond its injected latency: waiting for the interpreter, the simulator's lock, the wire",
    ]
    return lines


# ---------------------------------------------------------------- main


def parse_concurrency(text: str) -> list[int]:
    try:
        limits = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None
    if not limits or any(limit < 1 for limit in limits):
        raise argparse.ArgumentTypeError("concurrency limits must be positive integers")
    return limits


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.fetch_fanout", description=__doc__.splitlines()[0])
    parser.add_argument("--terminals", type=int, default=1000, help="simulated terminals (one account each)")
    parser.add_argument(
        "--concurrency", type=parse_concurrency, default=parse_concurrency(DEFAULT_CONCURRENCY),
        help=f"comma-separated limits to sweep ({DEFAULT_CONCURRENCY})",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3, help="fetches per limit; the median is reported")
    parser.add_argument("--min-latency-ms", type=float, default=100.0)
    parser.add_argument("--max-latency-ms", type=float, default=200.0)
    parser.add_argument("--per-call", action="store_true", help="every data call is late, not only account_info")
    parser.add_argument("--connector", choices=("sim", "bridge"), default="sim")
    parser.add_argument(
        "--bridge-host", choices=("process", "inline"), default="process",
        help="bridge servers in a child process (default) or in this one",
    )  # fmt: skip
    parser.add_argument("--no-baseline", action="store_true", help="skip the fetches without latency")
    parser.add_argument("--empty-accounts", action="store_true", help="accounts without positions or deals")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.terminals < 1 or args.repeats < 1:
        parser.error("--terminals and --repeats must be at least 1")
    if not 0 <= args.min_latency_ms <= args.max_latency_ms:
        parser.error("need 0 <= --min-latency-ms <= --max-latency-ms")
    return args


def make_host(args: argparse.Namespace) -> Host:
    prepopulate = not args.empty_accounts
    if args.connector == "sim":
        return SimHost(args.terminals, args.seed, prepopulate)
    if args.bridge_host == "inline":
        raise_fd_limit(3 * args.terminals + 256)  # listener, accepted and client end per terminal
        return BridgeInlineHost(args.terminals, args.seed, prepopulate)
    raise_fd_limit(args.terminals + 256)  # the client ends
    return BridgeProcessHost(args.terminals, args.seed, prepopulate)


def describe_injection(args: argparse.Namespace, latencies: dict[int, float]) -> list[str]:
    values = sorted(latencies.values())
    where = (
        "every data call of the snapshot (" + ", ".join(sorted(SNAPSHOT_METHODS)) + ")"
        if args.per_call
        else "account_info only: one late round trip per terminal and snapshot, the other calls answer at once"
    )
    return [
        f"injected latency: per terminal, uniform in [{args.min_latency_ms:g}, {args.max_latency_ms:g}] ms "
        f"(seed {args.seed}): min {values[0] * 1000:.0f}, mean {statistics.fmean(values) * 1000:.0f}, "
        f"max {values[-1] * 1000:.0f} ms, sum {sum(values):.1f} s",
        f"  on {where}",
        "  (SimAccount.slow_down: a real sleep on the wall clock, outside the simulator's lock)",
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wall = time.perf_counter()
    print("mt5-recon fetch fan-out benchmark")
    print("\n".join(machine_lines()))
    print(f"polars: {pl.__version__} ({pl.thread_pool_size()} threads)")

    rng = random.Random(args.seed)
    host = make_host(args)
    try:
        logins = [account.login for account in host.fleet.accounts]
        latencies = {login: rng.uniform(args.min_latency_ms, args.max_latency_ms) / 1000 for login in logins}
        methods = SNAPSHOT_METHODS if args.per_call else ONE_ROUND_TRIP
        injection: Injection = (latencies, methods)
        bridge_child = isinstance(host, BridgeProcessHost)
        baseline = not args.no_baseline

        print(f"\nterminals: {len(logins):,} via {host.description}")
        print(
            f"fleet: SimFleet.quiet on the wall clock (no scenarios, idle bots, frozen prices), "
            f"{host.positions:,} open positions, built in {host.build_secs:.1f} s"
        )
        print("\n".join(describe_injection(args, latencies)))
        print(f"file descriptors allowed: {raise_fd_limit(0)}")

        host.set_latency(None)
        warmup = host.fleet.model_copy(update={"accounts": host.fleet.accounts[:WARMUP_TERMINALS]})
        fetch_once(host, max(args.concurrency), None, warmup)  # imports, polars' first calls, first connects
        if baseline:
            serial = fetch_once(host, 1, None)
            host_cpu = (
                ""
                if serial.host_cpu_secs is None
                else f" + {serial.host_cpu_secs / len(logins) * 1000:.1f} ms in the bridge host"
            )
            print(
                f"serial fetch without latency (concurrency 1, 1 run): {serial.wall_secs:.2f} s, "
                f"{serial.cpu_secs / len(logins) * 1000:.1f} ms CPU per terminal in this process{host_cpu}, "
                f"{serial.calls:.1f} MT5 calls in {serial.round_trips:.1f} round trips per terminal after initialize"
            )

        rows: list[list[str]] = []
        failures: list[str] = []
        for concurrency in args.concurrency:
            base_runs: list[Run] | None = None
            if baseline:
                host.set_latency(None)
                base_runs = [fetch_once(host, concurrency, None) for _ in range(args.repeats)]
            host.set_latency(injection)
            runs = [fetch_once(host, concurrency, injection) for _ in range(args.repeats)]
            rows.append(_row(concurrency, runs, base_runs))
            failures += [
                f"concurrency {concurrency}: {r.failed} failed, e.g. {r.first_error}" for r in runs if r.failed
            ]
            print(
                f"  concurrency {concurrency:,}: fetch {statistics.median(r.wall_secs for r in runs):.2f} s "
                f"(late calls per terminal {median_run(runs).late_calls:.1f}, load {load_average()})",
                flush=True,
            )
        host.set_latency(None)

        header = HEADER + (["no-latency s"] if baseline else []) + TAIL
        print(f"\n== Fetch of {len(logins):,} terminals vs the concurrency limit, {args.repeats} run(s) each ==")
        print(table(header, rows))
        print("\n".join(explain(bridge_child, baseline)))
        if failures:
            print("\nfailed fetches:\n" + "\n".join(failures))
    finally:
        host.close()
    print(f"\ntotal wall time: {time.perf_counter() - wall:.0f} s; load at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
