"""The steps of one reconciliation cycle as plain functions; Prefect tasks are thin wrappers.

fetch -> validate (quarantine) -> reconcile -> cycle tables -> commit.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import polars as pl

from mt5recon import frames, history
from mt5recon.deal_cache import Asked, DealCache, DealPolicy
from mt5recon.fan_out_interpreter import fanning_out
from mt5recon.fleet import AccountConfig, FleetConfig
from mt5recon.guards import protect
from mt5recon.guards.cycle import GuardUpdate, advance_guards, changed_rows, scoped_market_rows
from mt5recon.recon import lifecycle
from mt5recon.recon.engine import ReconResult, reconcile
from mt5recon.recon.inputs import quarantined_positions
from mt5recon.snapshot import Snapshot
from mt5recon.store import tables
from mt5recon.store.stored_state import StoredState
from mt5recon.terminal import breaker as breakers
from mt5recon.terminal import constants
from mt5recon.terminal.api import MT5Api
from mt5recon.terminal.connector import Fetched, FetchRequest, build_snapshot, failed_account, fetch_records
from mt5recon.terminal.errors import is_transient
from mt5recon.terminal.factory import TerminalUnavailable
from mt5recon.validation import (
    Validated,
    cast_expr,
    empty_quarantine,
    quarantine_unknown_symbols,
    validate_frame,
)

TerminalOpener = Callable[[AccountConfig], MT5Api]


def cycle_id_for(fleet_name: str, at: datetime) -> str:
    """Deterministic from the fleet and the cycle's scheduled time: a retried cycle keeps its id."""
    return f"{fleet_name}:{at.strftime('%Y%m%dT%H%M%S.%fZ')}"


def _fetch_one(account: AccountConfig, open_terminal: TerminalOpener, request: FetchRequest) -> Fetched | Snapshot:
    """The account's answers, or its failed snapshot when the terminal could not be used."""
    try:
        api = open_terminal(account)
    except TerminalUnavailable as error:
        return failed_account(request, f"connect: {error}", error.code)
    except Exception as error:  # any connect failure is this account's failure, never the cycle's
        return failed_account(request, f"connect: {error}")
    try:
        return fetch_records(api, request)
    except Exception as error:
        return failed_account(request, f"fetch: {type(error).__name__}: {error}")
    finally:
        api.shutdown()


StageTimer = Callable[[str], AbstractContextManager[object]]


def _untimed(_stage: str) -> AbstractContextManager[object]:
    return nullcontext()


def fetch_fleet(
    fleet: FleetConfig,
    *,
    fetched_at: datetime,
    open_terminal: TerminalOpener,
    expected_raw: pl.DataFrame | None = None,
    concurrency: int = 16,
    book: dict[int, breakers.Breaker] | None = None,
    deadline_secs: float | None = None,
    timed: StageTimer = _untimed,
    deals: DealCache | None = None,
) -> tuple[Snapshot, float]:
    """Snapshot every account in parallel (bounded); returns the snapshot and the fetch time in ms.
    `timed(stage)` wraps its two parts (answers: the terminals' calls; frames: building them).
    `expected_raw`: the bot's trades as read, or their valid rows (`validate_expected`).

    Deals are fetched from the lookback window, or from the bot's oldest open trade when that is
    older (so a netting trade's entry deal, the evidence of its slippage, never slides out of view),
    capped at `deals_max_lookback_secs`. With `deals` (the deals of earlier cycles), a terminal is
    asked only for what is new and the window is completed from them; `deals` is then updated.
    """
    started = time.perf_counter()
    # the bot's trades say which symbols' specs and quotes to fetch, and how far back deals must go
    expected_symbols = expected_symbols_by_login(expected_raw) if expected_raw is not None else {}
    open_since = earliest_open_by_login(expected_raw) if expected_raw is not None else {}
    window_start = fetched_at - timedelta(seconds=fleet.deals_lookback_secs)
    oldest_allowed = fetched_at - timedelta(seconds=fleet.deals_max_lookback_secs)
    policy = DealPolicy(overlap_secs=fleet.deals_overlap_secs, full_refresh_secs=fleet.deals_full_refresh_secs)
    requests = []
    for account in fleet.accounts:
        deals_from = max(oldest_allowed, min(window_start, open_since.get(account.login, window_start)))
        since = (
            deals.since(account.login, deals_from, fetched_at, account.server_offset_secs, policy) if deals else None
        )
        request = FetchRequest(
            login=account.login,
            fetched_at=fetched_at,
            deals_from=deals_from,
            server_offset_secs=account.server_offset_secs,
            extra_symbols=tuple(sorted(set(account.watch_symbols) | set(expected_symbols.get(account.login, ())))),
            deals_since=since,
        )
        requests.append((account, request))
    book = book or {}
    # a terminal whose breaker is open is not called: its accounts are failed snapshots (never flat)
    resting = [(a, r) for a, r in requests if not breakers.allows(book.get(a.login, breakers.Breaker()), fetched_at)]
    calling = [(a, r) for a, r in requests if breakers.allows(book.get(a.login, breakers.Breaker()), fetched_at)]
    parts = [_circuit_open(r, book[a.login]) for a, r in resting]
    if calling:
        with fanning_out():  # millions of answer tuples; dozens of threads on one interpreter lock
            parts += _fan_out(calling, open_terminal, concurrency, deadline_secs, timed)
    snapshot = Snapshot.concat(parts)
    if deals is not None:
        snapshot = deals.absorb(snapshot, [_asked(r) for _, r in requests])
    return snapshot, (time.perf_counter() - started) * 1000


def _asked(request: FetchRequest) -> Asked:
    return Asked(
        login=request.login,
        fetched_at=request.fetched_at,
        window_from=request.deals_from,
        since=request.deals_since,
        server_offset_secs=request.server_offset_secs,
    )


FRAMES_EVERY_ACCOUNTS = 256
"""Answers are turned into frames this many accounts at a time while the fan-out goes on, and
accounts are asked at most two chunks (or two fan-outs) ahead, so a fleet's answers (Python
objects, ~0.7 KB per deal or position) are never all held at once."""


def _fan_out(
    calling: list[tuple[AccountConfig, FetchRequest]],
    open_terminal: TerminalOpener,
    concurrency: int,
    deadline_secs: float | None,
    timed: StageTimer,
) -> list[Snapshot]:
    """Fetch in parallel (bounded). A terminal still busy at the deadline is this cycle's IPC
    timeout: its account is reported failed and whatever it returns later is dropped, never mixed
    into another cycle; the other accounts are not held up by it. Frames are built in submission
    order, a chunk of accounts at a time, so rows come out in the same order every cycle."""
    started = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(calling))))
    waiting = deque(calling)
    pending: deque[tuple[Future[Fetched | Snapshot], FetchRequest]] = deque()

    def submit_up_to(in_flight: int) -> None:
        """Keep at most `in_flight` accounts asked and not yet built (answers wait in memory);
        none is asked once the deadline has passed."""
        if deadline_secs is not None and time.monotonic() - started >= deadline_secs:
            return
        while waiting and len(pending) < in_flight:
            account, request = waiting.popleft()
            pending.append((pool.submit(_fetch_one, account, open_terminal, request), request))

    ahead = max(2 * FRAMES_EVERY_ACCOUNTS, 2 * concurrency)
    parts: list[Snapshot] = []
    late: list[FetchRequest] = []
    try:
        submit_up_to(ahead)
        while pending:
            chunk = [pending.popleft() for _ in range(min(FRAMES_EVERY_ACCOUNTS, len(pending)))]
            submit_up_to(ahead)  # the next accounts are asked while this chunk is built
            with timed("answers"):
                left = None if deadline_secs is None else max(0.0, deadline_secs - (time.monotonic() - started))
                done, _ = wait([future for future, _ in chunk], timeout=left)
            late += [request for future, request in chunk if future not in done]
            answers = [future.result() for future, _ in chunk if future in done]
            del chunk, done  # a done future holds its answer: let the records go once they are frames
            with timed("frames"):
                parts += _in_order(answers)
            del answers
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    late += [request for _, request in waiting]  # never asked: the deadline came first
    reason = f"fetch deadline of {deadline_secs:g} s exceeded" if deadline_secs is not None else ""
    parts += [failed_account(request, reason, constants.RES_E_INTERNAL_FAIL_TIMEOUT) for request in late]
    return parts


def fetch_with_breakers(
    fleet: FleetConfig,
    *,
    fetched_at: datetime,
    open_terminal: TerminalOpener,
    expected_raw: pl.DataFrame | None,
    book: dict[int, breakers.Breaker],
    concurrency: int = 16,
    deadline_secs: float | None = None,
    timed: StageTimer = _untimed,
    deals: DealCache | None = None,
) -> tuple[Snapshot, float, dict[int, breakers.Breaker]]:
    """The fetch, each called terminal's breaker moved by it, and the health rows showing the new
    breaker states: (snapshot, fetch ms, the breaker book for the next cycle). `deals`: see
    `fetch_fleet`."""
    snapshot, fetch_ms = fetch_fleet(
        fleet,
        fetched_at=fetched_at,
        open_terminal=open_terminal,
        expected_raw=expected_raw,
        concurrency=concurrency,
        book=book,
        deadline_secs=deadline_secs,
        timed=timed,
        deals=deals,
    )
    book = advance_breakers(book, snapshot, fleet, at=fetched_at)
    return replace(snapshot, health=with_breaker_states(snapshot.health, book, fetched_at)), fetch_ms, book


def _in_order(answers: list[Fetched | Snapshot]) -> list[Snapshot]:
    """Answers as snapshots in their order: each run of fetched accounts is built at once, a
    failed account's snapshot stays where it was."""
    parts: list[Snapshot] = []
    for is_fetched, run in itertools.groupby(answers, key=lambda a: isinstance(a, Fetched)):
        group = list(run)
        if is_fetched:
            parts.append(build_snapshot([a for a in group if isinstance(a, Fetched)]))
        else:
            parts += [a for a in group if isinstance(a, Snapshot)]
    return parts


def _circuit_open(request: FetchRequest, breaker: breakers.Breaker) -> Snapshot:
    until = breaker.retry_at.isoformat() if breaker.retry_at else "?"
    return failed_account(request, f"circuit open until {until} after: {breaker.last_error}")


def with_breaker_states(health: pl.DataFrame, book: dict[int, breakers.Breaker], at: datetime) -> pl.DataFrame:
    """The health rows with each terminal's breaker state after this cycle."""
    states = pl.DataFrame(
        {"login": list(book), "state": [b.visible_state(at) for b in book.values()]},
        schema={"login": pl.Int64, "state": pl.String},
    )
    return (
        health.join(states, on="login", how="left")
        .with_columns(pl.col("state").fill_null("closed").alias("breaker_state"))
        .select(list(frames.HEALTH))
    )


def advance_breakers(
    book: dict[int, breakers.Breaker],
    snapshot: Snapshot,
    fleet: FleetConfig,
    *,
    at: datetime,
) -> dict[int, breakers.Breaker]:
    """Each called terminal's breaker after this cycle's attempt (resting ones stay as they are)."""
    ok = {
        row[0]: bool(row[1] and row[2])
        for row in snapshot.accounts.select("login", "account_ok", "positions_ok").iter_rows()
    }
    updated = dict(book)
    for account in fleet.accounts:
        current = book.get(account.login, breakers.Breaker())
        if not breakers.allows(current, at) or account.login not in ok:
            continue
        code = snapshot.error_codes.get(account.login)
        updated[account.login] = breakers.record(
            current,
            ok=ok[account.login],
            now=at,
            policy=fleet.breaker,
            transient=code is None or is_transient(code),
            error=snapshot.errors.get(account.login),
        )
    return updated


def expected_symbols_by_login(expected_raw: pl.DataFrame) -> dict[int, tuple[str, ...]]:
    """Symbols the bot trades per login, so the fetch brings their specs and quotes too."""
    if not {"login", "symbol"} <= set(expected_raw.columns) or expected_raw.height == 0:
        return {}
    pairs = (
        expected_raw.select(pl.col("login").cast(pl.Int64, strict=False), pl.col("symbol").cast(pl.String))
        .drop_nulls()
        .unique()
        .group_by("login")
        .agg(pl.col("symbol").sort())
    )
    return {row[0]: tuple(row[1]) for row in pairs.iter_rows()}


def earliest_open_by_login(expected_raw: pl.DataFrame) -> dict[int, datetime]:
    """When each login's oldest still-open bot trade was opened (a minute early: clocks differ)."""
    if not {"login", "opened_at", "closed_at"} <= set(expected_raw.columns) or expected_raw.height == 0:
        return {}
    opened = cast_expr("opened_at", expected_raw.schema["opened_at"], frames.UTC_US)
    rows = (
        expected_raw.filter(pl.col("closed_at").is_null())
        .select(pl.col("login").cast(pl.Int64, strict=False), opened.alias("opened_at"))
        .drop_nulls()
        .group_by("login")
        .agg(pl.col("opened_at").min())
    )
    return {login: at - timedelta(minutes=1) for login, at in rows.iter_rows()}


@dataclass(frozen=True)
class ValidatedCycle:
    frames: dict[str, pl.DataFrame]
    quarantine: pl.DataFrame
    rows_in: dict[str, int] = field(default_factory=dict)
    health: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=frames.HEALTH))


@dataclass(frozen=True)
class CheckedExpected:
    """The bot's trades validated, and how many rows were read (the rows themselves may go)."""

    validated: Validated
    rows_in: int

    @property
    def valid(self) -> pl.DataFrame:
        return self.validated.valid


def validate_expected(expected_raw: pl.DataFrame, *, now: datetime) -> CheckedExpected:
    """The bot's trades validated before the fetch. The fetch reads the valid rows' open times
    and symbols, and `validate_fetched` takes the result as it is: a text timestamp is parsed
    once a cycle, not twice (~0.3 s at 10,000 accounts), and the rows as read can be let go."""
    return CheckedExpected(validate_frame("expected_trades", expected_raw, now=now), expected_raw.height)


def validate_cycle(snapshot: Snapshot, expected_raw: pl.DataFrame, *, now: datetime) -> ValidatedCycle:
    """Validate every frame; rows on symbols the terminal does not know are quarantined too."""
    return validate_fetched(snapshot, validate_expected(expected_raw, now=now), now=now)


def validate_fetched(snapshot: Snapshot, expected: CheckedExpected, *, now: datetime) -> ValidatedCycle:
    """`validate_cycle` with the bot's trades already validated (`validate_expected`)."""
    fetched = snapshot.frames()
    checked = {name: validate_frame(name, frame, now=now) for name, frame in fetched.items()}
    checked["expected_trades"] = expected.validated
    symbols = checked["symbols"].valid
    for name in ("positions", "orders"):
        checked[name] = quarantine_unknown_symbols(name, checked[name], symbols, column="symbol", now=now)
    quarantine = pl.concat([empty_quarantine(), *[v.quarantined for v in checked.values()]], how="vertical")
    return ValidatedCycle(
        frames={name: v.valid for name, v in checked.items()},
        quarantine=quarantine,
        rows_in={**{name: frame.height for name, frame in fetched.items()}, "expected_trades": expected.rows_in},
        health=snapshot.health,
    )


def reconcile_cycle(validated: ValidatedCycle, fleet: FleetConfig, *, as_of: datetime | None = None) -> ReconResult:
    """Reconcile the validated frames; snapshots older than the fleet's stale limit at `as_of` are not.
    A large fleet goes through the engine a range of logins at a time (the same result, a bounded
    working set)."""
    v = validated.frames
    return reconcile(
        accounts=v["accounts"],
        positions=v["positions"],
        deals=v["deals"],
        symbols=v["symbols"],
        expected_trades=v["expected_trades"],
        tolerances=fleet.tolerances,
        symbol_map=fleet.symbol_map,
        quarantine=validated.quarantine,
        as_of=as_of,
        policy=fleet.breaks,
        health=validated.health,
    )


def break_state_keys(fleet: FleetConfig, result: ReconResult) -> tuple[list[int], list[str]]:
    """What the lifecycle must read back: the fleet's active breaks and any break seen this cycle."""
    return [a.login for a in fleet.accounts], cycle_break_ids(result)


def cycle_break_ids(result: ReconResult) -> list[str]:
    """Every break seen this cycle: the lifecycle needs each one's stored row, whatever its status."""
    return result.divergences["break_id"].unique().sort().to_list()


@dataclass(frozen=True)
class CycleState:
    """What the cycle changes: break transitions, position and bot-trade histories."""

    breaks: lifecycle.BreakUpdate
    positions: history.ChangeSet
    trades: history.ChangeSet
    guards: GuardUpdate
    # guard state rows the cycle removes (protective announcements withdrawn or re-armed)
    guard_deletes: dict[str, pl.DataFrame] = field(default_factory=dict)


def advance_breaks(
    state: pl.DataFrame, result: ReconResult, fleet: FleetConfig, *, at: datetime
) -> lifecycle.BreakUpdate:
    """Turn this cycle's divergences into break transitions at the cycle's time `at`."""
    return lifecycle.advance(state, result.divergences, observed=result.observed, at=at, policy=fleet.breaks)


def advance_state(
    stored: StoredState,
    validated: ValidatedCycle,
    result: ReconResult,
    fleet: FleetConfig,
    *,
    at: datetime,
    timed: StageTimer = _untimed,
) -> CycleState:
    """Everything stateful a cycle does, from the stored state and this cycle's results (pure);
    `timed(stage)` wraps its three parts (breaks, histories, guards) for whoever measures them."""
    reconciled = result.observed.filter(pl.col("reconciled")).select("login")
    with timed("breaks"):
        breaks = advance_breaks(stored.breaks, result, fleet, at=at)
    with timed("histories"):
        positions = history.track_positions(
            stored.positions,
            validated.frames["positions"],
            result.matches,
            reconciled=reconciled,
            quarantined=quarantined_positions(validated.quarantine, fleet.symbol_map).select("login", "identifier"),
            at=at,
        )
        trades = history.track_trades(
            stored.trades, validated.frames["expected_trades"], quarantine=validated.quarantine, at=at
        )
    with timed("guards"):
        guards = run_guards(stored, validated, reconciled, fleet, at=at)
        withdrawn = stored.guards.protect_pending.join(guards.protection.pending, on="login", how="anti")
    return CycleState(
        breaks=breaks,
        positions=positions,
        trades=trades,
        guards=guards,
        guard_deletes={"protect_pending": withdrawn.select("login")},
    )


def run_guards(
    stored: StoredState, validated: ValidatedCycle, fresh: pl.DataFrame, fleet: FleetConfig, *, at: datetime
) -> GuardUpdate:
    """Drawdown, market and protective guards on this cycle's validated frames."""
    v = validated.frames
    return advance_guards(
        stored.guards,
        accounts=v["accounts"],
        deals=v["deals"],
        ticks=v["ticks"],
        symbols=v["symbols"],
        positions=v["positions"],
        fresh_logins=fresh,
        config=fleet.guards,
        server_offsets={a.login: a.server_offset_secs for a in fleet.accounts},
        at=at,
        scope=fleet.name,
    )


def state_deletes(state: CycleState) -> dict[str, pl.DataFrame]:
    """Rows the cycle removes from current-state tables (closed positions, removed bot trades)."""
    return {
        "current_positions": state.positions.deletes,
        "current_expected_trades": state.trades.deletes,
        **state.guard_deletes,
    }


def _with_cycle(cycle_id: str, frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(pl.lit(cycle_id).alias("cycle_id"), pl.all())


def cycle_tables(
    *,
    cycle_id: str,
    started_at: datetime,
    finished_at: datetime,
    snapshot: Snapshot,
    validated: ValidatedCycle,
    result: ReconResult,
    state: CycleState,
    fetch_ms: float,
    reconcile_ms: float,
    protective_actions: pl.DataFrame | None = None,
) -> dict[str, pl.DataFrame]:
    """Everything one cycle stores, keyed by table name, each row tagged with the cycle id."""
    accounts = snapshot.accounts.select("login", "account_ok", "positions_ok")
    errors = pl.DataFrame(
        {"login": list(snapshot.errors), "error": list(snapshot.errors.values())},
        schema={"login": pl.Int64, "error": pl.String},
    )
    quarantined = validated.quarantine.group_by("login").len("quarantined")
    reconciled = result.observed.select("login", "reconciled")
    cycles = (
        accounts.join(errors, on="login", how="left")
        .join(reconciled, on="login", how="left")
        .join(result.account_stats, on="login", how="left")
        .join(quarantined, on="login", how="left")
        .with_columns(
            pl.lit(started_at).cast(frames.UTC_US).alias("started_at"),
            pl.lit(finished_at).cast(frames.UTC_US).alias("finished_at"),
            # failed: a call failed; stale: fetched but too old to reconcile; ok: reconciled
            pl.when(~(pl.col("account_ok") & pl.col("positions_ok")))
            .then(pl.lit("failed"))
            .when(~pl.col("reconciled").fill_null(False))
            .then(pl.lit("stale"))
            .otherwise(pl.lit("ok"))
            .alias("status"),
            pl.lit(fetch_ms).alias("fetch_ms"),
            pl.lit(reconcile_ms).alias("reconcile_ms"),
        )
        .with_columns(pl.col("positions", "expected_open", "matched", "divergences", "quarantined").fill_null(0))
    )
    return {
        "cycles": _with_cycle(cycle_id, cycles).select(list(tables.CYCLES)).cast(dict(tables.CYCLES)),  # type: ignore[arg-type]
        "terminal_health": _with_cycle(cycle_id, snapshot.health),
        "account_snapshots": _with_cycle(cycle_id, validated.frames["accounts"]),
        "position_changes": _with_cycle(cycle_id, state.positions.changes),
        "current_positions": _with_cycle(cycle_id, state.positions.upserts),
        "expected_trade_changes": _with_cycle(cycle_id, state.trades.changes),
        "current_expected_trades": _with_cycle(cycle_id, state.trades.upserts),
        "breaks": _with_cycle(cycle_id, state.breaks.state),
        "break_events": _with_cycle(cycle_id, state.breaks.events),
        "quarantine": _with_cycle(cycle_id, validated.quarantine),
        **_guard_tables(cycle_id, state.guards, protective_actions),
    }


def _guard_tables(cycle_id: str, guards: GuardUpdate, actions: pl.DataFrame | None) -> dict[str, pl.DataFrame]:
    """The guards' rows: alerts, the state rows this cycle touched, pending announcements,
    protective actions sent or recorded, positions at risk."""
    no_actions = pl.DataFrame(schema=protect.ACTION_SCHEMA)
    return {
        "guard_alerts": _with_cycle(cycle_id, guards.alerts),
        "drawdown_state": _with_cycle(cycle_id, changed_rows(guards.drawdown.state, guards.at)),
        "market_state": _with_cycle(cycle_id, scoped_market_rows(guards)),
        "protect_pending": _with_cycle(cycle_id, guards.protection.pending),
        "protective_actions": _with_cycle(cycle_id, actions if actions is not None else no_actions),
        "positions_at_risk": _with_cycle(cycle_id, guards.market.at_risk),
    }


def summarize(tables: dict[str, pl.DataFrame]) -> dict[str, object]:
    """The few numbers an operator reads first."""
    cycles = tables["cycles"]
    events = tables["break_events"]
    open_now = tables["breaks"].filter(pl.col("status") == "open")
    by_kind = open_now.group_by("kind").len().sort("kind")
    return {
        "accounts": cycles.height,
        "accounts_ok": int((cycles["status"] == "ok").sum()),
        "accounts_failed": int((cycles["status"] == "failed").sum()),
        "accounts_stale": int((cycles["status"] == "stale").sum()),
        "positions": int(cycles["positions"].sum()),
        "matched": int(cycles["matched"].sum()),
        "divergences": int(cycles["divergences"].sum()),
        "breaks_opened": int(events["event"].is_in(["opened", "reopened"]).sum()),
        "breaks_resolved": int((events["event"] == "resolved").sum()),
        "breaks_pending": int((tables["breaks"]["status"] == "pending").sum()),
        "open_breaks_by_kind": dict(by_kind.iter_rows()),
        "breakers": dict(tables["terminal_health"].group_by("breaker_state").len().sort("breaker_state").iter_rows()),
        "position_changes": tables["position_changes"].height,
        "quarantined": tables["quarantine"].height,
        "guard_alerts_raised": int((tables["guard_alerts"]["event"] == "raised").sum()),
        "positions_at_risk": tables["positions_at_risk"].height,
        "protective_actions": tables["protective_actions"].height,
        **_worst_drawdown(tables["drawdown_state"]),
    }


def _worst_drawdown(state: pl.DataFrame) -> dict[str, object]:
    """The account furthest below its equity peak this cycle."""
    if state.height == 0:
        return {"worst_drawdown_pct": None, "worst_drawdown_login": None}
    row = state.sort("drawdown_pct", descending=True, nulls_last=True).row(0, named=True)
    return {"worst_drawdown_pct": round(float(row["drawdown_pct"] or 0.0), 2), "worst_drawdown_login": row["login"]}
