"""The account password never leaves the connect call: after two real cycles of the reconcile flow
with credentials set, terminals refusing the login in both, the password appears in no log (Python
logging at DEBUG, console output, the Prefect run logs), no artifact, no flow or task run record,
not in the flow's return value, no store table or view, no file under the home folder, and not in
the Prefect server's own database."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from demo_fleet_files import free_port

from mt5recon.fleet import load_fleet
from mt5recon.store.lake import StoreConfig, open_reader
from mt5recon.store.sqltext import identifier
from mt5recon.store.tables import STORE_TABLES
from mt5recon.terminal.factory import sessions
from mt5recon.terminal.sim_host import hosted_fleet, use_in_process_fleet
from mt5recon.terminal.simulator.clock import WallClock
from mt5recon.terminal.simulator.fleet import SimFleet
from mt5recon.terminal.simulator.terminal import SimTerminal

PASSWORD_VAR = "MT5RECON_TEST_ACCOUNT_PASSWORD"
FLEET_NAME = "secretstest"
BRIDGED = 5  # the first accounts are reached over the RPyC bridge, the others in process
# per cycle, terminals that refuse the login (one bridged, one in process each time): in the first
# cycle at the first login; in the second a terminal that lost its live session (restarted) and
# refuses the login again, while the first cycle's refused ones stay behind their open breakers
REFUSED_FIRST = (5002, 5007)
REFUSED_AFTER_RESTART = (5004, 5009)


@dataclass
class Evidence:
    """Every place the cycles wrote to, as (where, content) pairs, plus counts proving each was read.
    Files are kept as bytes (binary ones too: a SQLite catalog keeps inlined rows verbatim)."""

    contents: list[tuple[str, str | bytes]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, where: str, content: str | bytes) -> None:
        self.contents.append((where, content))
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def text_of(self, prefix: str) -> str:
        return "\n".join(c for where, c in self.contents if where.startswith(prefix) and isinstance(c, str))

    def leaks(self, needles: tuple[str, ...]) -> list[str]:
        """Where any needle occurs, with some context."""
        found = []
        for where, content in self.contents:
            for needle in needles:
                context = _context(content, needle)
                if context is not None:
                    found.append(f"{where}: ...{context!r}...")
                    break
        return found


def _context(content: str | bytes, needle: str) -> str | None:
    """The needle with what surrounds it in `content`, or None when it is not there."""
    if isinstance(content, bytes):
        at = content.find(needle.encode())
        return None if at < 0 else content[max(0, at - 120) : at + len(needle) + 40].decode(errors="replace")
    at = content.find(needle)
    return None if at < 0 else content[max(0, at - 120) : at + len(needle) + 40]


def _write_fleet(sim: SimFleet, path: Path) -> Path:
    """Every account's password is the same env reference; the first ones behind bridges this
    process hosts (as `mt5recon up` does), the others reached in process."""
    lines = [f'name = "{FLEET_NAME}"', "[simulator]", "enabled = true", "[expected_trades]", 'kind = "sim"']
    lines += ["[breaker]", "cooldown_secs = 600.0"]  # a refused login stays behind its open breaker next cycle
    for number, account in enumerate(sim.accounts()):
        bridged = number < BRIDGED
        connector = f'{{ kind = "bridge", port = {free_port()} }}' if bridged else '{ kind = "sim" }'
        lines += [
            "[[accounts]]",
            f"login = {account.login}",
            f'server = "{account.spec.server}"',
            f'password = "env:{PASSWORD_VAR}"',
            f"connector = {connector}",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def every_log_record(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    """Every Python log record at DEBUG and up: the root and every existing logger at DEBUG, and a
    recorder on the root and on each logger that does not propagate to it (Prefect's own).

    Prefect's console handler prints these same records (to the stream it bound when configured);
    whatever else reaches stdout/stderr during the test is read through capfd."""
    import flows.reconcile  # noqa: F401 - Prefect replaces the root's handlers when first imported

    caplog.set_level(logging.DEBUG)
    loggers = [lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    levels = {lg: lg.level for lg in loggers}
    recorder = _Recorder()
    attached = [logging.root, *(lg for lg in loggers if not lg.propagate)]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    for lg in attached:
        lg.addHandler(recorder)
    try:
        yield recorder.records
    finally:
        for lg in attached:
            lg.removeHandler(recorder)
        for lg, level in levels.items():
            lg.setLevel(level)


def _record_text(record: logging.LogRecord) -> str:
    """The formatted message with its traceback, plus every attribute of the record."""
    return logging.Formatter().format(record) + "\n" + repr(vars(record))


async def _run_cycles(fleet_file: Path, sim: SimFleet) -> tuple[list[UUID], list[dict[str, Any]]]:
    from flows.reconcile import reconcile_fleet

    run_ids: list[UUID] = []
    summaries: list[dict[str, Any]] = []
    for cycle in range(2):
        for login in REFUSED_FIRST if cycle == 0 else REFUSED_AFTER_RESTART:
            if cycle:  # the live session is gone: the next call finds the terminal restarted
                sim.account(login).fail_timeout(methods={"account_info"})
            sim.account(login).fail_auth()
        state = await reconcile_fleet(fleet_file=str(fleet_file), return_state=True)
        assert state.is_completed(), state
        run_id = state.state_details.flow_run_id
        assert run_id is not None
        run_ids.append(run_id)
        summaries.append(await state.aresult())
    return run_ids, summaries


async def _read_prefect(run_ids: list[UUID], evidence: Evidence) -> None:
    """Logs, artifacts, flow runs and task runs, as the API serves them."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogHandler

    await APILogHandler.aflush()
    async with get_client() as client:
        log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=run_ids))
        offset = 0
        while page := await client.read_logs(log_filter=log_filter, limit=200, offset=offset):
            for log in page:
                evidence.add("prefect log", f"Prefect run log ({log.name}, {log.level})", log.model_dump_json())
            offset += len(page)
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=run_ids))
        )
        for artifact in artifacts:
            evidence.add(
                f"{artifact.type} artifact",
                f"artifact {artifact.key} ({artifact.type})",
                json.dumps(artifact.model_dump(mode="json")),
            )
        for run_id in run_ids:
            flow_run = await client.read_flow_run(run_id)
            evidence.add("flow run", f"flow run {flow_run.name} (parameters, state)", flow_run.model_dump_json())
        task_runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids)))
        for task_run in task_runs:
            evidence.add("task run", f"task run {task_run.name} (inputs, state)", task_run.model_dump_json())


def _read_store(home: Path, evidence: Evidence) -> set[str]:
    """Every table and view the catalog lists (not a hard-coded list: a table added later is
    scanned too), every column cast to text. Returns the scanned names."""
    reader = open_reader(StoreConfig.under(home))
    try:
        relations = reader.execute(
            "SELECT database_name, schema_name, table_name, 'table' FROM duckdb_tables() WHERE NOT internal "
            "UNION ALL "
            "SELECT database_name, schema_name, view_name, 'view' FROM duckdb_views() WHERE NOT internal "
            "ORDER BY ALL"
        ).fetchall()
        for database, schema, name, kind in relations:
            qualified = ".".join(identifier(part) for part in (database, schema, name))
            rows = reader.execute(f"SELECT COLUMNS(*)::VARCHAR FROM {qualified}").fetchall()
            text = "\n".join("\t".join("" if value is None else value for value in row) for row in rows)
            evidence.add(f"store {kind}", f"store {kind} {database}.{schema}.{name}", text)
            evidence.counts["store rows"] = evidence.counts.get("store rows", 0) + len(rows)
    finally:
        reader.close()
    return {name for _, _, name, _ in relations}


def _read_files(root: Path, evidence: Evidence, label: str, since: float = 0.0) -> None:
    """Every file under `root` (changed since `since`), text or not."""
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.stat().st_mtime >= since):
        evidence.add(f"{label} file", f"{label} file {path.relative_to(root)}", path.read_bytes())


def _prefect_database_files() -> list[Path]:
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    url = str(PREFECT_SERVER_DATABASE_CONNECTION_URL.value() or "")
    assert url.startswith("sqlite"), f"the harness runs on SQLite, not {url}"
    database = Path(url.split(":///", 1)[1])
    return sorted(p for p in database.parent.glob(database.name + "*") if p.is_file())


def test_password_appears_nowhere_after_cycles_with_credentials(
    prefect_api: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    every_log_record: list[logging.LogRecord],  # before capfd: Prefect's console handler binds sys.stderr
    capfd: pytest.CaptureFixture[str],
) -> None:
    started = time.time()
    secret = uuid4().hex
    password = f"S3cr3t-{secret}"
    monkeypatch.setenv(PASSWORD_VAR, password)
    home = tmp_path / "home"
    monkeypatch.setenv("MT5RECON_HOME", str(home))

    # positive control: record what reaches the terminal, then let the terminal do its own thing
    received: list[tuple[int | None, str | None]] = []
    original_initialize = SimTerminal.initialize

    def recording_initialize(self: SimTerminal, *args: Any, **kwargs: Any) -> bool:
        received.append((kwargs.get("login"), kwargs.get("password")))
        return original_initialize(self, *args, **kwargs)

    monkeypatch.setattr(SimTerminal, "initialize", recording_initialize)

    sim = SimFleet.quiet(clock=WallClock())  # on the wall clock, as the flow is: snapshots are current
    sim.account(5001).manual_open("GBPUSD", "sell", 0.2)  # a break, so the break tables have rows
    logins = [account.login for account in sim.accounts()]
    fleet_file = _write_fleet(sim, tmp_path / "fleet.toml")
    fleet = load_fleet(fleet_file)
    assert {a.password for a in fleet.accounts} == {f"env:{PASSWORD_VAR}"}
    assert {a.connector.kind for a in fleet.accounts} == {"bridge", "sim"}
    sessions().close_all()  # no session left over from another test's fleet
    use_in_process_fleet(sim)
    try:
        with hosted_fleet(fleet, home):
            run_ids, summaries = asyncio.run(_run_cycles(fleet_file, sim))
    finally:
        use_in_process_fleet(None)
        sessions().close_all()
    evidence = Evidence()
    asyncio.run(_read_prefect(run_ids, evidence))

    # the password did reach the terminals: every one logged in with it, and with nothing else
    assert received, "no terminal was ever initialized"
    assert {p for _, p in received} == {password}, "initialize got the resolved password, nothing else"
    assert {login for login, _ in received} == set(logins), "every terminal got the password"
    refused = {*REFUSED_FIRST, *REFUSED_AFTER_RESTART}
    assert [s["accounts_failed"] for s in summaries] == [len(REFUSED_FIRST), len(refused)], summaries

    for number, summary in enumerate(summaries, 1):
        evidence.add("return value", f"flow return value of cycle {number}", json.dumps(summary, default=str))
    for record in every_log_record:
        evidence.add("python log", f"Python log record {record.name}:{record.levelname}", _record_text(record))
    console = capfd.readouterr()
    evidence.add("console", "stdout", console.out)
    evidence.add("console", "stderr", console.err)
    scanned_relations = _read_store(home, evidence)
    _read_files(tmp_path, evidence, "test folder (home, fleet file)")
    for database in _prefect_database_files():  # events, states, logs: whatever the server kept
        evidence.add("prefect database", f"Prefect server database file {database.name}", database.read_bytes())
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH

    storage = Path(PREFECT_LOCAL_STORAGE_PATH.value())
    if storage.is_dir():
        _read_files(storage, evidence, "Prefect result storage", since=started)

    # nothing vacuous: each source was read and holds what the cycles wrote, refused logins included
    counts = evidence.counts
    logged_by = {record.name.split(".")[0] for record in every_log_record}
    assert {"prefect", "mt5recon"} <= logged_by, f"log records of {logged_by} only"
    assert counts.get("prefect log", 0) >= 2, counts
    assert counts.get("markdown artifact", 0) >= 2 and counts.get("table artifact", 0) >= 2, counts
    assert counts.get("flow run", 0) == 2 and counts.get("task run", 0) >= 2, counts
    assert counts.get("store rows", 0) > 0 and counts.get("prefect database", 0) > 0, counts
    assert set(STORE_TABLES) <= scanned_relations, f"the catalog listing missed tables: {scanned_relations}"
    assert "open_breaks" in scanned_relations, "views are scanned too"
    book = home / "state" / f"breakers-{FLEET_NAME}.json"
    assert book.is_file() and "initialize failed" in book.read_text(), "the breaker book holds the refused login"
    store_text = evidence.text_of("store table")
    for login in refused:
        assert f"account {login}: initialize failed" in store_text, f"the refused login of {login} is stored"

    leaks = evidence.leaks((password, secret))
    assert not leaks, f"the password leaked into {len(leaks)} place(s):\n" + "\n".join(leaks)
