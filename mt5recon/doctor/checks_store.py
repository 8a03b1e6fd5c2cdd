"""Store checks: the folders are writable, the catalog opens (a Postgres one answers), its schema
version is this code's, and the writer lock is not held by a process that never lets go.

Nothing here creates or migrates the store: it is opened read-only, and the writer lock is only
tried (and released at once) when its file already exists.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from mt5recon.doctor.results import CheckResult, Loaded, fail, ok, shown, warn
from mt5recon.settings import Settings
from mt5recon.store import migrations
from mt5recon.store.lake import StoreConfig, open_reader
from mt5recon.store.writer_lock import StoreLockedError, WriterLock

DEFAULT_LOCK_WAIT_SECS = 5.0  # a commit holds the lock for well under a second


def _write_problem(folder: Path) -> str | None:
    """Why nothing can be written in `folder` (or the folder that would hold it), else None.

    Nothing is created: a missing folder is judged by the nearest existing one above it.
    """
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{shown(existing)} is a file, not a folder"
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".mt5recon-doctor-"):
            pass
    except OSError as error:
        return f"cannot write in {shown(existing)}: {error.strerror or error}"
    return None


def check_writable(settings: Settings) -> CheckResult:
    """The home folder, the catalog's folder and a local data path accept new files."""
    store = settings.store_config()
    folders = {"home": settings.resolved_home()}
    if store.sqlite_path is not None:
        folders["catalog folder"] = store.sqlite_path.parent
    if "://" not in store.data_path:
        folders["data path"] = Path(store.data_path)
    problems = [f"{label}: {problem}" for label, folder in folders.items() if (problem := _write_problem(folder))]
    if problems:
        return fail(
            "store folders",
            "; ".join(problems),
            "make them writable for this user (chmod u+w / chown), or point MT5RECON_HOME "
            "(MT5RECON_STORE_DATA_PATH) at a writable folder",
        )
    return ok("store folders", "writable: " + ", ".join(f"{label} {shown(f)}" for label, f in folders.items()))


def _redacted_dsn(dsn: str) -> str:
    """A Postgres DSN without its password, for messages."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(dsn)
    except Exception:
        return "(unparsable DSN)"
    return " ".join(f"{k}={v}" for k, v in parts.items() if k != "password")


def _read_schema_version(config: StoreConfig) -> int:
    reader = open_reader(config)
    try:
        present = reader.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND schema_name = 'main' AND table_name = ?",
            [config.alias, migrations.SCHEMA_VERSION],
        ).fetchone()
        if not present or not present[0]:
            return 0
        row = reader.execute(f"SELECT coalesce(max(version), 0) FROM {migrations.SCHEMA_VERSION}").fetchone()  # noqa: S608 - our own table name
        return int(row[0]) if row is not None else 0
    finally:
        reader.close()


def check_catalog(config: StoreConfig) -> Loaded[int]:
    """The catalog opens read-only; its value is the store's schema version (None: no store)."""
    if config.is_postgres:
        where = f"Postgres catalog ({_redacted_dsn(config.postgres_dsn or '')})"
        try:
            exists = config.exists()
        except Exception as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            return Loaded(
                fail(
                    "store catalog",
                    f"{where} unreachable: {first_line}",
                    "start the Postgres server or fix MT5RECON_STORE_CATALOG (host, port, dbname, user; "
                    "the password from PGPASSWORD or ~/.pgpass)",
                ),
                None,
            )
    else:
        where = f"catalog {shown(config.catalog)}"
        exists = config.exists()
    if not exists:
        return Loaded(
            warn(
                "store catalog",
                f"no store yet ({where})",
                "the first cycle creates it: `mt5recon cycle` or `mt5recon up`",
            ),
            None,
        )
    try:
        version = _read_schema_version(config)
    except Exception as error:
        return Loaded(
            fail(
                "store catalog",
                f"{where} does not open: {type(error).__name__}: {error}",
                "if another program rewrote it, restore it from a backup, or move the store folder aside "
                "(the next cycle starts a new, empty store)",
            ),
            None,
        )
    return Loaded(ok("store catalog", f"{where} opens read-only"), version)


def judge_schema_version(version: int, code_version: int = migrations.LATEST) -> CheckResult:
    """The store's schema version against the code's."""
    if version == code_version:
        return ok("store schema", f"version {version}, as this code expects")
    if version > code_version:
        return fail(
            "store schema",
            f"the store is at schema version {version}, newer than this code's {code_version}: "
            "a newer mt5recon wrote it, and this one may misread it",
            "upgrade this installation to the version that wrote the store (`git pull && ./dev test`), "
            "or point MT5RECON_HOME at another store",
        )
    return warn(
        "store schema",
        f"the store is at schema version {version}, this code's is {code_version}",
        "the next cycle migrates it (only additions): `mt5recon cycle`",
    )


def _lock_holders(path: Path) -> list[str]:
    """Processes holding an OS lock on `path` (Linux: /proc/locks), as 'pid (command)'."""
    if not sys.platform.startswith("linux"):
        return []
    try:
        st = path.stat()
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    holders = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[5] == wanted and fields[4].isdigit():
            pid = fields[4]
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            except OSError:
                command = ""
            holders.append(f"pid {pid}" + (f" ({command[:120]})" if command else ""))
    return holders


def check_writer_lock(config: StoreConfig, wait_secs: float = DEFAULT_LOCK_WAIT_SECS) -> CheckResult:
    """The SQLite catalog's writer lock is free, or freed within `wait_secs` (a commit in progress)."""
    path = config.writer_lock_path
    if path is None:
        return ok("writer lock", "Postgres catalog: writers are arbitrated by the catalog (no lock file)")
    if not path.exists():
        return ok("writer lock", "free (no writer yet)")
    try:
        lock = WriterLock.acquire(path, wait_secs)
    except StoreLockedError:
        holders = _lock_holders(path) or ["another process"]
        return fail(
            "writer lock",
            f"held for over {wait_secs:g} s by {', '.join(holders)}: cycles cannot commit",
            "close the store in that process (Store.close(), or leave the notebook) or stop it; "
            "the lock is released when its holder exits, even after a crash",
        )
    except OSError as error:
        return fail("writer lock", f"cannot open {shown(path)}: {error.strerror or error}", "make it writable")
    lock.release()
    return ok("writer lock", "free")


def check_store(settings: Settings, *, lock_wait_secs: float = DEFAULT_LOCK_WAIT_SECS) -> list[CheckResult]:
    config = settings.store_config()
    results = [check_writable(settings)]
    catalog = check_catalog(config)
    results.append(catalog.result)
    if catalog.value is not None:
        results.append(judge_schema_version(catalog.value))
    results.append(check_writer_lock(config, lock_wait_secs))
    return results
