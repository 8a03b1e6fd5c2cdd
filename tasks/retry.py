"""Which failures are worth a retry: transient I/O only, never bad data or bugs."""

from __future__ import annotations

import sqlite3
from typing import Any

import duckdb

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError,
    ConnectionError,
    sqlite3.OperationalError,  # "database is locked" while the bot writes
    duckdb.IOException,
    duckdb.TransactionException,  # a concurrent catalog commit won the race
)


def is_transient(error: BaseException | None) -> bool:
    if error is None:
        return False
    try:
        import psycopg

        if isinstance(error, psycopg.OperationalError):
            return True
    except ImportError:  # pragma: no cover - psycopg is a dependency
        pass
    return isinstance(error, TRANSIENT_ERRORS)


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry only when the task failed with a transient error."""
    try:
        state.result()
    except BaseException as error:  # the state re-raises the task's exception
        return is_transient(error)
    return False
