"""`mt5recon doctor` on real installations gone wrong, one row each: the right check FAILs, its fix
line says what to do, and the exit code says whether anything failed.

Everything is real: the demo fleet's simulated terminals hosted behind their bridge ports in this
process (as `mt5recon sim serve` hosts them), stores created by `Store.open`, the Prefect test
server; only the damage differs.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from demo_fleet_files import demo_fleet_on_free_ports, free_port
from typer.testing import CliRunner

from mt5recon.cli import app
from mt5recon.doctor import Status
from mt5recon.doctor.checks_prefect import LastRun, judge_last_run
from mt5recon.fleet import load_fleet
from mt5recon.store import migrations
from mt5recon.store.lake import Store, StoreConfig
from mt5recon.terminal.sim_host import SimHost, hosted_fleet, use_in_process_fleet

runner = CliRunner()


@dataclass
class Install:
    """One installation under test: its home, fleet file and whatever it keeps running."""

    root: Path
    stack: ExitStack
    monkeypatch: pytest.MonkeyPatch
    home: Path = field(init=False)
    fleet: Path = field(init=False)
    host: SimHost | None = None

    def __post_init__(self) -> None:
        self.home = self.root / "home"
        self.home.mkdir()
        self.fleet = demo_fleet_on_free_ports(self.root / "fleet.toml")

    def host_fleet(self) -> SimHost:
        """The demo fleet's terminals behind their bridge ports, as `mt5recon sim serve` hosts them."""
        self.host = self.stack.enter_context(hosted_fleet(load_fleet(self.fleet), self.home))
        return self.host

    def make_store(self) -> StoreConfig:
        config = StoreConfig.under(self.home)
        Store.open(config).close()
        return config

    def healthy(self) -> None:
        self.host_fleet()
        self.make_store()


def healthy(install: Install) -> None:
    install.healthy()


def login_refused(install: Install) -> None:
    install.healthy()
    assert install.host is not None and install.host.sim is not None
    install.host.sim.account(5003).fail_auth(calls=None)  # the broker refuses the account


def bridge_port_closed(install: Install) -> None:
    install.healthy()  # hosted on the ports of the fleet file, then 5002 is moved to a port nobody serves
    text = install.fleet.read_text()
    port = re.search(r"login = 5002\n.*?port = (\d+)", text, re.S)
    assert port is not None
    install.fleet.write_text(text.replace(f"port = {port.group(1)} ", f"port = {free_port()} "))


def broken_fleet_file(install: Install) -> None:
    install.make_store()
    install.fleet.write_text(install.fleet.read_text().replace("login = 5004", "login = -5004", 1))


def store_folder_is_a_file(install: Install) -> None:
    install.host_fleet()
    (install.home / "store").write_text("not a folder")


def store_folder_read_only(install: Install) -> None:
    install.healthy()
    store = install.home / "store"
    for folder in (store, store / "data"):
        folder.chmod(0o555)
        install.stack.callback(folder.chmod, 0o755)


def newer_schema(install: Install) -> None:
    install.host_fleet()
    with Store.open(StoreConfig.under(install.home)) as store:  # what a newer mt5recon would leave behind
        store.connection.execute(
            "INSERT INTO schema_version VALUES (?, 'from a newer mt5recon', now())", [migrations.LATEST + 1]
        )


def writer_lock_held(install: Install) -> None:
    install.host_fleet()
    install.stack.enter_context(Store.open(StoreConfig.under(install.home)))  # a notebook keeping a writer open


def no_prefect_server(install: Install) -> None:
    install.healthy()
    install.monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{free_port()}/api")


@dataclass(frozen=True)
class Scenario:
    description: str
    arrange: Callable[[Install], None]
    failing: frozenset[str]  # exactly the checks that FAIL
    fix: str = ""  # in the fix line of each failing check
    detail: str = ""  # in the detail of each failing check
    exit_code: int = 1


SCENARIOS = [
    Scenario("healthy demo fleet, simulated terminals hosted in-process", healthy, frozenset(), exit_code=0),
    Scenario(
        "a terminal whose broker refuses the login",
        login_refused,
        frozenset({"terminal 5003"}),
        fix="the broker refused login 5003: check the login, the server name 'SimBroker-Demo'",
        detail="-6 Authorization failed (auth_failed)",
    ),
    Scenario(
        "a bridge port nothing listens on",
        bridge_port_closed,
        frozenset({"terminal 5002"}),
        fix="start `mt5recon up` or `mt5recon sim serve`",
        detail="-10004 cannot reach the bridge",
    ),
    Scenario(
        "a fleet file that does not validate",
        broken_fleet_file,
        frozenset({"fleet"}),
        fix="edit fleet.toml at accounts.3.login",
        detail="accounts.3.login: Input should be greater than 0",
    ),
    Scenario(
        "the store folder is a file",
        store_folder_is_a_file,
        frozenset({"store folders"}),
        fix="make them writable for this user",
        detail="store is a file, not a folder",
    ),
    pytest.param(
        Scenario(
            "a read-only store folder",
            store_folder_read_only,
            frozenset({"store folders"}),
            fix="make them writable for this user",
            detail="Permission denied",
        ),
        marks=pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes anywhere"),
    ),
    Scenario(
        "a store with a newer schema version than the code",
        newer_schema,
        frozenset({"store schema"}),
        fix="upgrade this installation to the version that wrote the store",
        detail=f"schema version {migrations.LATEST + 1}, newer than this code's {migrations.LATEST}",
    ),
    Scenario(
        "a writer lock held by a process that never lets go",
        writer_lock_held,
        frozenset({"writer lock"}),
        fix="close the store in that process",
        detail=f"pid {os.getpid()}",
    ),
    Scenario(
        "no Prefect server at PREFECT_API_URL",
        no_prefect_server,
        frozenset({"prefect server"}),
        fix="start the Prefect server at",
        detail="no Prefect server answers at http://127.0.0.1:",
    ),
]


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_api: None) -> Iterator[Install]:
    from prefect.settings import get_current_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PREFECT_API_URL", str(get_current_settings().api.url))  # the test server, as a user sets it
    for name in ("MT5RECON_FLEET", "MT5RECON_HOME", "MT5RECON_STORE_CATALOG", "MT5RECON_STORE_DATA_PATH"):
        monkeypatch.delenv(name, raising=False)
    use_in_process_fleet(None)  # a fresh simulated fleet on the wall clock, as `sim serve` builds it
    with ExitStack() as stack:
        yield Install(tmp_path, stack, monkeypatch)
    use_in_process_fleet(None)


def _doctor(install: Install, *extra: str) -> tuple[int, str]:
    args = [
        "doctor",
        "--fleet",
        str(install.fleet),
        "--home",
        str(install.home),
        "--timeout",
        "5",
        "--lock-wait",
        "0.5",
    ]
    result = runner.invoke(app, [*args, *extra])
    return result.exit_code, result.stdout


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.description)
def test_doctor_names_the_failing_check_and_its_fix(scenario: Scenario, install: Install) -> None:
    scenario.arrange(install)
    code, out = _doctor(install, "--json")
    report = json.loads(out)
    checks = {c["name"]: c for c in report["checks"]}
    failing = {name for name, c in checks.items() if c["status"] == "FAIL"}
    assert failing == scenario.failing, json.dumps(report, indent=1)
    assert code == scenario.exit_code == report["exit_code"]
    for name in scenario.failing:
        assert scenario.fix in checks[name]["fix"], checks[name]
        assert scenario.detail in checks[name]["detail"], checks[name]
    if not scenario.failing:
        assert all(checks[f"terminal {login}"]["status"] == "OK" for login in range(5001, 5011))
        for name in ("settings", "fleet", "secrets", "store folders", "store catalog", "store schema", "writer lock"):
            assert checks[name]["status"] == "OK", checks[name]
        assert checks["prefect server"]["status"] == "OK"


def test_the_text_report_has_a_fix_line_under_each_failure(install: Install) -> None:
    login_refused(install)
    code, out = _doctor(install)
    lines = out.splitlines()
    failed = next(i for i, line in enumerate(lines) if line.startswith("FAIL") and "terminal 5003" in line)
    assert lines[failed + 1].strip().startswith("fix: the broker refused login 5003")
    assert re.match(r"OK +terminal 5001 +bridge 127\.0\.0\.1:\d+: logged in to SimBroker-Demo", out.splitlines()[3])
    assert lines[-1].startswith("doctor: FAIL (") and lines[-1].endswith(" 1 FAIL), exit code 1")
    assert code == 1


def test_a_secret_reference_that_does_not_resolve_is_named_never_its_value(
    install: Install, monkeypatch: pytest.MonkeyPatch
) -> None:
    install.healthy()
    text = install.fleet.read_text()
    install.fleet.write_text(
        text.replace("login = 5001\n", 'login = 5001\npassword = "env:MT5_DOCTOR_PW_5001"\n').replace(
            "login = 5002\n", 'login = 5002\npassword = "env:MT5_DOCTOR_PW_5002"\n'
        )
    )
    monkeypatch.setenv("MT5_DOCTOR_PW_5002", "s3cret-value-never-shown")
    monkeypatch.delenv("MT5_DOCTOR_PW_5001", raising=False)
    code, out = _doctor(install, "--json")
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert checks["secrets"]["status"] == "FAIL"
    assert "account 5001 password: env:MT5_DOCTOR_PW_5001 is not set" in checks["secrets"]["detail"]
    assert "export MT5_DOCTOR_PW_5001=" in checks["secrets"]["fix"]
    assert checks["terminal 5001"]["status"] == "FAIL" and "not set" in checks["terminal 5001"]["detail"]
    assert checks["terminal 5002"]["status"] == "OK", "the simulator takes any non-empty password"
    assert "s3cret-value-never-shown" not in out
    assert code == 1


NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
LATE = "started 11.7 s after its scheduled time: a snapshot of the past is worthless"


def _run(state: str, secs_ago: float, message: str = "") -> LastRun:
    return LastRun("brisk-otter", state, state.title(), NOW - timedelta(seconds=secs_ago), message, "http://ui/run")


@dataclass(frozen=True)
class RunHistory:
    description: str
    last: LastRun | None
    completed: LastRun | None
    deployments: bool
    status: Status
    says: str
    fix: str = ""


RUN_HISTORIES = [
    RunHistory("served, a cycle 8 s ago", _run("COMPLETED", 8), _run("COMPLETED", 8), True, Status.OK, "8 s ago"),
    RunHistory(
        "served, nothing for 5 minutes",
        _run("COMPLETED", 300),
        _run("COMPLETED", 300),
        True,
        Status.WARN,
        "no cycle completed in the last 60 s (the last completed: brisk-otter: Completed, started 300 s ago)",
        "is `mt5recon up`",
    ),
    RunHistory(
        "served, every run starts late and cancels itself",
        _run("CANCELLED", 3, LATE),
        None,
        True,
        Status.WARN,
        "(none ever completed); last run brisk-otter: Cancelled, started 3 s ago (started 11.7 s after",
        "runs start too late and cancel themselves",
    ),
    RunHistory(
        "served, never run", None, None, True, Status.WARN, "no reconcile run has started yet", "is `mt5recon up`"
    ),
    RunHistory(
        "the last one failed",
        _run("FAILED", 5, "fetch failed"),
        _run("COMPLETED", 15),
        True,
        Status.WARN,
        "Failed, started 5 s ago (fetch failed)",
        "open it in the UI for its logs: http://ui/run",
    ),
    RunHistory(
        "no deployment, an old manual cycle",
        _run("COMPLETED", 86400),
        _run("COMPLETED", 86400),
        False,
        Status.OK,
        "86400 s ago",
    ),
    RunHistory("no deployment, no run", None, None, False, Status.OK, "cycles run on demand"),
]


@pytest.mark.parametrize("history", RUN_HISTORIES, ids=lambda h: h.description)
def test_the_last_run_is_judged_by_its_state_and_the_last_completed_cycle(history: RunHistory) -> None:
    result = judge_last_run(history.last, history.completed, deployments_exist=history.deployments, now=NOW)
    assert result.status is history.status
    assert history.says in result.detail
    assert history.fix in result.fix
    assert (result.fix != "") == (history.status is not Status.OK)
