"""`mt5recon doctor`: what is wrong with this installation, and exactly how to fix it.

Each check is a plain function returning a `CheckResult` (name, OK / WARN / FAIL, detail, fix):
config (`checks_config`), terminals (`checks_terminals`), store (`checks_store`) and Prefect
(`checks_prefect`, the only one that imports Prefect). `run_doctor` runs them in order, skipping
what cannot be checked when something it needs failed; the exit code is 1 when any check FAILs.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from mt5recon.doctor.results import CheckResult, Status, exit_code

__all__ = ["CheckResult", "Status", "exit_code", "format_json", "format_text", "run_doctor"]


def run_doctor(
    *,
    fleet: Path | None = None,
    home: Path | None = None,
    terminal_timeout_secs: float = 5.0,
    lock_wait_secs: float = 5.0,
) -> list[CheckResult]:
    """Every check, in order: config, terminals, store, Prefect."""
    from mt5recon.doctor import checks_config, checks_prefect, checks_store, checks_terminals

    settings = checks_config.check_settings(fleet, home)
    results = [settings.result]
    if settings.value is None:
        for name in ("fleet", "terminals", "store", "prefect"):
            results.append(checks_config.not_checked(name, "the settings do not resolve"))
        return results
    loaded = checks_config.check_fleet(settings.value)
    results.append(loaded.result)
    if loaded.value is not None:
        results.append(checks_config.check_secrets(loaded.value))
        parallel = min(settings.value.fetch_concurrency, checks_terminals.MAX_PARALLEL)
        results += checks_terminals.check_terminals(loaded.value, timeout_secs=terminal_timeout_secs, parallel=parallel)
    else:
        results.append(checks_config.not_checked("terminals", "the fleet file does not load"))
    results += checks_store.check_store(settings.value, lock_wait_secs=lock_wait_secs)
    results += checks_prefect.check_prefect(settings.value)
    return results


def _tally(results: Sequence[CheckResult]) -> str:
    counts = Counter(r.status for r in results)
    return ", ".join(f"{counts[s]} {s.value}" for s in Status)


def format_text(results: Sequence[CheckResult]) -> str:
    """One line per check (`STATUS  name  detail`), its fix under it, and a verdict line."""
    width = max((len(r.name) for r in results), default=0)
    lines = []
    previous_fix = ""
    for r in results:
        lines.append(f"{r.status.value:<4}  {r.name:<{width}}  {r.detail}")
        if r.fix:
            lines.append(f"{'':<4}  {'':<{width}}  fix: {'as above' if r.fix == previous_fix else r.fix}")
        previous_fix = r.fix
    worst = max((r.status for r in results), key=list(Status).index, default=Status.OK)
    lines.append(f"doctor: {worst.value} ({_tally(results)}), exit code {exit_code(results)}")
    return "\n".join(lines)


def format_json(results: Sequence[CheckResult]) -> str:
    code = exit_code(results)
    return json.dumps(
        {"status": "FAIL" if code else "OK", "exit_code": code, "checks": [r.as_dict() for r in results]}, indent=2
    )
