"""Prefect checks: the API answers, the deployments of prefect.yaml exist (and something polls
them), and the last reconcile run is recent and did not fail.

The server is the one at PREFECT_API_URL (environment, then Prefect's own settings), else the
local server `mt5recon up` starts. Prefect is imported here only, inside the functions.
"""

from __future__ import annotations

import base64
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mt5recon.doctor.results import CheckResult, Loaded, fail, ok, warn
from mt5recon.settings import Settings

RECONCILE_FLOW = "reconcile"  # @flow(name=...) of flows/reconcile.py
FALLBACK_DEPLOYMENTS = ("every-10s", "hourly")  # what `mt5recon up` serves, when prefect.yaml is not at hand
RECENT_SECS = 60.0
HEALTH_TIMEOUT_SECS = 5.0
BAD_STATES = frozenset({"FAILED", "CRASHED"})


@dataclass(frozen=True)
class PrefectApi:
    url: str
    source: str  # where the URL came from, for messages

    @property
    def shown(self) -> str:
        """The URL for messages: a password in it (basic auth behind a proxy) is never printed."""
        parts = urllib.parse.urlsplit(self.url)
        if parts.password is None:
            return self.url
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))

    @property
    def ui(self) -> str:
        return self.shown.removesuffix("/").removesuffix("/api")


def resolve_api(settings: Settings) -> PrefectApi:
    """$PREFECT_API_URL, else the local server of `mt5recon up` (as `mt5recon alerts` does)."""
    from_env = os.environ.get("PREFECT_API_URL")
    if from_env:
        return PrefectApi(from_env, "PREFECT_API_URL")
    from mt5recon.local import prefect_env

    return PrefectApi(prefect_env(settings)["PREFECT_API_URL"], "PREFECT_API_URL unset: the local server of `up`")


def check_server(api: PrefectApi) -> CheckResult:
    """GET <api>/health answers 200."""
    parts = urllib.parse.urlsplit(api.url)
    bare = parts._replace(netloc=parts.netloc.rpartition("@")[2])  # urllib wants credentials as a header
    request = urllib.request.Request(f"{urllib.parse.urlunsplit(bare).rstrip('/')}/health")
    key = os.environ.get("PREFECT_API_KEY")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    elif parts.username is not None:
        user = base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {user}")
    start_it = (
        f"start the Prefect server at {api.shown} (`prefect server start`), or fix PREFECT_API_URL"
        if api.source == "PREFECT_API_URL"
        else "start `mt5recon up` (local mode: server + UI), or set PREFECT_API_URL to your server"
    )
    try:
        with urllib.request.urlopen(request, timeout=HEALTH_TIMEOUT_SECS) as response:
            status = int(response.status)
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            return fail("prefect server", f"{api.shown} refuses the request ({error.code})", "set PREFECT_API_KEY")
        return fail("prefect server", f"{api.shown}/health answered {error.code}", start_it)
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return fail("prefect server", f"no Prefect server answers at {api.shown} ({api.source}): {reason}", start_it)
    if status != 200:
        return fail("prefect server", f"{api.shown}/health answered {status}", start_it)
    return ok("prefect server", f"{api.shown} answers ({api.source}); UI {api.ui}")


def project_deployments(project_dir: Path | None = None) -> tuple[str, ...]:
    """The deployment names of prefect.yaml (the project's folder, or $MT5RECON_PROJECT_DIR)."""
    import yaml

    folder = project_dir or Path(os.environ.get("MT5RECON_PROJECT_DIR") or Path(__file__).resolve().parents[2])
    path = folder / "prefect.yaml"
    if not path.is_file():
        return FALLBACK_DEPLOYMENTS
    document = yaml.safe_load(path.read_text()) or {}
    names = tuple(str(d["name"]) for d in document.get("deployments") or [] if isinstance(d, dict) and "name" in d)
    return names or FALLBACK_DEPLOYMENTS


def _client() -> Any:
    """A sync Prefect client (entered by the caller, inside the temporary API URL setting)."""
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def check_deployments(api: PrefectApi, names: tuple[str, ...]) -> Loaded[int]:
    """Each deployment name exists, is not paused and something polls it; value: how many exist."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api.url}), _client() as client:
        found = client.read_deployments(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=list(names))))
        flows = {d.flow_id: client.read_flow(d.flow_id).name for d in found}
    full = {d.name: f"{flows[d.flow_id]}/{d.name}" for d in found}
    missing = [n for n in names if n not in full]
    paused = [full[d.name] for d in found if d.paused]
    idle = [full[d.name] for d in found if not d.paused and str(getattr(d.status, "value", d.status)) == "NOT_READY"]
    if missing and not found:
        return Loaded(
            warn(
                "deployments",
                f"none of prefect.yaml's deployments ({', '.join(names)}) exist on {api.shown}: "
                "nothing runs on schedule",
                "`mt5recon up` serves them locally; production: `prefect deploy --all` and a worker "
                "(`prefect worker start --pool mt5recon`)",
            ),
            0,
        )
    problems, fixes = [], []
    if missing:
        problems.append(f"missing: {', '.join(missing)}")
        fixes.append("`prefect deploy --all` (production) or restart `mt5recon up`")
    if paused:
        problems.append(f"paused: {', '.join(paused)}")
        fixes.append("; ".join(f"`prefect deployment resume {name}`" for name in paused))
    if idle:
        problems.append(f"nothing polls: {', '.join(idle)}")
        fixes.append(
            "start `mt5recon up`, or a worker on the deployment's pool (`prefect worker start --pool mt5recon`)"
        )
    listed = ", ".join(sorted(full.values()))
    if problems:
        return Loaded(warn("deployments", f"{listed}; " + "; ".join(problems), "; ".join(fixes)), len(found))
    return Loaded(ok("deployments", f"{listed}: ready"), len(found))


@dataclass(frozen=True)
class LastRun:
    """The newest reconcile run that started."""

    name: str
    state_type: str  # COMPLETED, FAILED, RUNNING, ...
    state_name: str
    started_at: datetime
    message: str
    url: str


def _last_run(client: Any, api: PrefectApi, *, completed: bool) -> LastRun | None:
    """The newest reconcile run that started (that completed, with `completed`)."""
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterStartTime,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    state = FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED])) if completed else None
    runs = client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=[RECONCILE_FLOW])),
        flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(is_null_=False), state=state),
        sort=FlowRunSort.START_TIME_DESC,
        limit=1,
    )
    if not runs or runs[0].start_time is None:
        return None
    run = runs[0]
    return LastRun(
        name=run.name,
        state_type=run.state.type.value if run.state is not None else "UNKNOWN",
        state_name=run.state.name if run.state is not None else "unknown",
        started_at=datetime.fromtimestamp(run.start_time.timestamp(), UTC),
        message=(run.state.message or "") if run.state is not None else "",
        url=f"{api.ui}/runs/flow-run/{run.id}",
    )


def read_last_runs(api: PrefectApi) -> tuple[LastRun | None, LastRun | None]:
    """(the newest reconcile run that started, the newest that completed)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api.url}), _client() as client:
        return _last_run(client, api, completed=False), _last_run(client, api, completed=True)


def _said(run: LastRun, now: datetime) -> str:
    reason = f" ({run.message})" if run.message and run.state_type != "COMPLETED" else ""
    return f"{run.name}: {run.state_name}, started {(now - run.started_at).total_seconds():.0f} s ago{reason}"


def judge_last_run(
    last: LastRun | None,
    completed: LastRun | None,
    *,
    deployments_exist: bool,
    now: datetime,
    recent_secs: float = RECENT_SECS,
) -> CheckResult:
    """WARN when the last run failed, or when the schedule should be completing cycles and none
    completed in the last `recent_secs` (runs that start late cancel themselves: a cancelled run
    reconciles nothing); without deployments, cycles run on demand and any age is fine."""
    name = "last reconcile run"
    running = "is `mt5recon up` (or a worker on pool mt5recon) running, and the deployment's schedule active?"
    if last is None:
        if deployments_exist:
            return warn(name, "no reconcile run has started yet", running)
        return ok(name, "none yet (no deployment: cycles run on demand, `mt5recon cycle`)")
    if last.state_type in BAD_STATES:
        return warn(name, _said(last, now), f"open it in the UI for its logs: {last.url}")
    stale = completed is None or (now - completed.started_at).total_seconds() > recent_secs
    if deployments_exist and stale:
        done = "none ever completed" if completed is None else f"the last completed: {_said(completed, now)}"
        late = last.state_type == "CANCELLED" and "scheduled time" in last.message
        fix = (
            "runs start too late and cancel themselves: the machine is overloaded or the runner lags "
            "(`mt5recon up` console; MT5RECON_PREFETCH_SECS, MT5RECON_MAX_START_DELAY_SECS)"
            if late
            else running
        )
        return warn(
            name, f"no cycle completed in the last {recent_secs:.0f} s ({done}); last run {_said(last, now)}", fix
        )
    if completed is not None and completed.name != last.name:
        age = (now - completed.started_at).total_seconds()
        return ok(name, f"{_said(last, now)}; last completed {completed.name}, started {age:.0f} s ago")
    return ok(name, _said(last, now))


def check_prefect(settings: Settings, *, now: datetime | None = None) -> list[CheckResult]:
    api = resolve_api(settings)
    server = check_server(api)
    if server.status != "OK":
        return [server]
    try:
        deployments = check_deployments(api, project_deployments())
        last, completed = read_last_runs(api)
        verdict = judge_last_run(
            last, completed, deployments_exist=bool(deployments.value), now=now or datetime.now(UTC)
        )
    except Exception as error:
        return [
            server,
            fail(
                "deployments",
                f"the Prefect API answered /health but not a query: {type(error).__name__}: {error}",
                "check the server's log; client and server versions must match (prefect 3.8.8)",
            ),
        ]
    return [server, deployments.result, verdict]
