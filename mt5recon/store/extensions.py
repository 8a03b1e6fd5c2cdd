"""DuckDB extensions from the installed PyPI packages, never from the network or the home folder.

The `duckdb-extension-*` wheels ship signed binaries as `extensions/v<duckdb>/<name>.duckdb_extension`.
They cannot be LOADed by that path: DuckDB derives the entry point from the file name and the
sqlite/postgres files are named after an alias (`sqlite`), not the extension (`sqlite_scanner`).
`INSTALL '<file>'` copies them under the canonical name into an extension directory we choose
(the store's own folder), after which `LOAD <name>` works. DuckDB writes the copy to a temp
file and renames it, so processes installing at the same moment do not corrupt each other.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import duckdb

from mt5recon.store.sqltext import literal

PACKAGES: dict[str, str] = {
    "ducklake": "duckdb_extension_ducklake",
    "sqlite": "duckdb_extension_sqlite",
    "postgres": "duckdb_extension_postgres",
}


def packaged_file(name: str) -> Path:
    """Where the wheel of extension `name` keeps the binary for the running duckdb version."""
    package = PACKAGES.get(name)
    if package is None:
        raise ValueError(f"no packaged DuckDB extension {name!r}; known: {sorted(PACKAGES)}")
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"DuckDB extension {name!r} needs the Python package {package!r}")
    path = Path(spec.origin).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.is_file():
        raise RuntimeError(
            f"{package} has no binary for duckdb {duckdb.__version__} (looked for {path}); "
            "pin duckdb and the duckdb-extension-* packages to the same version"
        )
    return path


def connect(extension_dir: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that installs extensions only under `extension_dir`, never auto-downloads."""
    if not extension_dir.is_dir():
        extension_dir.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(
        config={
            "extension_directory": str(extension_dir),
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        }
    )


def load(con: duckdb.DuckDBPyConnection, names: list[str]) -> None:
    """Load each extension, installing it from its wheel first if the folder lacks it.

    Trying LOAD first means a reader never writes to the folder once the writer has
    installed the extensions there (an analyst may only have read access to it).
    """
    for name in names:
        source = literal(str(packaged_file(name)))  # also checks `name` is one of PACKAGES
        try:
            con.execute(f"LOAD {name}")
        except duckdb.IOException:
            con.execute(f"FORCE INSTALL {source}")
            con.execute(f"LOAD {name}")
