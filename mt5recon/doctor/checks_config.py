"""Config checks: settings resolve, the fleet file loads and validates, secret references resolve.

A secret's value is never shown: only which reference resolved or why it did not.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from pathlib import Path

from pydantic import ValidationError

from mt5recon.doctor.results import CheckResult, Loaded, fail, ok, shown, validation_problems, warn
from mt5recon.fleet import FleetConfig, demo_fleet_path, load_fleet, resolve_reference
from mt5recon.settings import Settings

ENV_PREFIX = "MT5RECON_"


def check_settings(fleet: Path | None = None, home: Path | None = None) -> Loaded[Settings]:
    """Settings from the environment (MT5RECON_*) plus the command line's --fleet / --home."""
    overrides: dict[str, object] = {}
    if fleet is not None:
        overrides["fleet"] = fleet
    if home is not None:
        overrides["home"] = home
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        problems = validation_problems(error)
        variables = sorted({ENV_PREFIX + str(p["loc"][0]).upper() for p in error.errors() if p["loc"]})
        return Loaded(
            fail("settings", "; ".join(problems), f"fix or unset {', '.join(variables) or 'the MT5RECON_* variables'}"),
            None,
        )
    store = settings.store_config()
    catalog = "Postgres" if store.is_postgres else shown(store.catalog)
    detail = f"home {shown(settings.resolved_home())}, store catalog {catalog}"
    return Loaded(ok("settings", detail), settings)


def check_fleet(settings: Settings) -> Loaded[FleetConfig]:
    """The fleet file (or the embedded demo) parses and validates."""
    path = settings.fleet or demo_fleet_path()
    where = "the embedded demo fleet" if settings.fleet is None else shown(path)
    if not path.is_file():
        return Loaded(
            fail(
                "fleet",
                f"fleet file {where} does not exist",
                "point MT5RECON_FLEET (or --fleet) at your fleet file, or unset it for the embedded demo fleet",
            ),
            None,
        )
    try:
        fleet = load_fleet(settings.fleet)
    except tomllib.TOMLDecodeError as error:
        return Loaded(fail("fleet", f"{where} is not valid TOML: {error}", f"fix the TOML syntax in {where}"), None)
    except ValidationError as error:
        problems = validation_problems(error)
        return Loaded(
            fail(
                "fleet",
                f"{where}: {len(problems)} problem(s): " + "; ".join(problems),
                f"edit {where} at {problems[0].split(':', 1)[0]} (README: 'Pointing it at real terminals')",
            ),
            None,
        )
    except OSError as error:
        return Loaded(fail("fleet", f"cannot read {where}: {error.strerror}", f"make {where} readable"), None)
    kinds = Counter(a.connector.kind for a in fleet.accounts)
    connectors = ", ".join(f"{kind} x{count}" for kind, count in sorted(kinds.items()))
    simulated = ", simulated" if fleet.simulator.enabled else ""
    detail = f"fleet {fleet.name!r} from {where}: {len(fleet.accounts)} account(s) ({connectors}){simulated}"
    return Loaded(ok("fleet", detail), fleet)


def secret_references(fleet: FleetConfig) -> list[tuple[str, str]]:
    """(what uses it, reference) for every secret reference in the fleet."""
    references = [(f"account {a.login} password", a.password) for a in fleet.accounts if a.password]
    dsn = fleet.expected_trades.dsn
    if dsn is not None and dsn.startswith(("env:", "secret:")):
        references.append(("expected_trades dsn", dsn))
    return references


def _unresolved(used_by: str, reference: str) -> tuple[str, str] | None:
    """(problem, fix) when the reference does not resolve to a non-empty value; never the value."""
    scheme, _, name = reference.partition(":")
    try:
        value = resolve_reference(reference)
    except LookupError:
        return f"{used_by}: {reference} is not set", f"export {name}=... in the environment the pipeline runs in"
    except Exception as error:
        if scheme == "secret":
            return (
                f"{used_by}: Prefect Secret block {name!r} cannot be read ({type(error).__name__})",
                f"create it (UI: Blocks -> Secret, name {name!r}) on the server at PREFECT_API_URL",
            )
        return f"{used_by}: {reference} cannot be resolved ({error})", "use env:VAR or secret:block-name"
    if not value:
        return f"{used_by}: {reference} is empty", f"set {reference} to the real value"
    return None


def check_secrets(fleet: FleetConfig) -> CheckResult:
    """Every env:/secret: reference resolves (to something non-empty)."""
    references = secret_references(fleet)
    if not references:
        return ok("secrets", "no secret references (terminals log in with their saved credentials)")
    problems = [found for used_by, ref in references if (found := _unresolved(used_by, ref)) is not None]
    if problems:
        return fail("secrets", "; ".join(p for p, _ in problems), "; ".join(dict.fromkeys(f for _, f in problems)))
    return ok("secrets", f"{len(references)} reference(s) resolve (values not shown)")


def not_checked(name: str, because: str) -> CheckResult:
    return warn(name, f"not checked: {because}", "fix the failing check above first")
