"""The two catalogs a store can have, for tests: SQLite (one machine) and the real Postgres (scale-out).

A Postgres-catalog lake gets its own metadata schema in the test database (DuckLake creates it
on the first ATTACH) and its own data folder, and the schema is dropped with everything in it
afterwards, so runs are repeatable, independent and leave nothing behind on the server.
Without a reachable server the Postgres cases are skipped, not failed.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from mt5recon.store.lake import StoreConfig

PG_DSN = os.environ.get("MT5RECON_TEST_PG_DSN", "dbname=test host=127.0.0.1 port=5432")
CATALOGS = ("sqlite", "postgres")


@contextlib.contextmanager
def fresh_metadata_schema() -> Iterator[str]:
    """A new schema name in the test database, dropped (with everything in it) on exit."""
    try:
        admin = psycopg.connect(PG_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no Postgres at {PG_DSN}: {exc}")
    name = f"mt5recon_test_{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        with admin:
            admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def postgres_config(home: Path, extension_dir: Path, metadata_schema: str) -> StoreConfig:
    """A lake under `home` (data files) whose catalog is `metadata_schema` on the test server."""
    return StoreConfig.under(
        home,
        catalog=f"postgres:{PG_DSN}",
        metadata_schema=metadata_schema,
        extension_dir=extension_dir,
    )


@contextlib.contextmanager
def catalog_config(kind: str, home: Path, extension_dir: Path) -> Iterator[StoreConfig]:
    """A fresh lake of catalog `kind` ("sqlite" or "postgres") under `home`, cleaned up on exit."""
    if kind == "sqlite":
        yield StoreConfig.under(home, extension_dir=extension_dir)
    elif kind == "postgres":
        with fresh_metadata_schema() as schema:
            yield postgres_config(home, extension_dir, schema)
    else:
        raise ValueError(f"no catalog kind {kind!r}; kinds are {CATALOGS}")
