"""What one doctor check says: its name, OK / WARN / FAIL, what it found, and how to fix it."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import ValidationError

T = TypeVar("T")


class Status(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict. `fix` is the exact next step (empty when nothing needs doing)."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status.value, "detail": self.detail, "fix": self.fix}


@dataclass(frozen=True)
class Loaded(Generic[T]):
    """A check's verdict plus what it loaded (None when the check failed), for the checks after it."""

    result: CheckResult
    value: T | None


def ok(name: str, detail: str) -> CheckResult:
    return CheckResult(name, Status.OK, detail)


def warn(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, Status.WARN, detail, fix)


def fail(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, Status.FAIL, detail, fix)


def exit_code(results: Iterable[CheckResult]) -> int:
    """1 when any check failed; warnings alone are 0."""
    return 1 if any(r.status is Status.FAIL for r in results) else 0


def shown(path: str | os.PathLike[str]) -> str:
    """A path as the user would type it: relative to the working folder when inside it."""
    resolved = Path(path).expanduser().resolve()
    try:
        return str(resolved.relative_to(Path.cwd())) or "."
    except ValueError:
        return str(resolved)


def validation_problems(error: ValidationError, *, prefix: str = "") -> list[str]:
    """`field.path: message` per problem. Never the input value: it may be a secret."""
    problems = []
    for problem in error.errors(include_url=False, include_input=False, include_context=False):
        location = ".".join(str(part) for part in (prefix, *problem["loc"]) if part != "")
        problems.append(f"{location or '(top level)'}: {problem['msg']}")
    return problems
