"""Quoting for the few SQL spots DuckDB cannot parameterize (ATTACH, INSTALL, identifiers).

DuckDB's parser takes no `?` in ATTACH/INSTALL/LOAD, so configured paths and DSNs must be
spliced in as literals: they go through `literal()`, which escapes, never through a bare
f-string. Row values always go through query parameters instead.
"""

from __future__ import annotations

import re

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def literal(value: str) -> str:
    """A single-quoted SQL string literal; refuses NUL, which no SQL literal can carry."""
    if "\x00" in value:
        raise ValueError("a SQL string literal cannot contain a NUL character")
    return "'" + value.replace("'", "''") + "'"


def identifier(name: str) -> str:
    """A double-quoted identifier (our table/column names include words like `type` and `time`)."""
    if "\x00" in name or not name:
        raise ValueError(f"not a usable SQL identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def plain_identifier(name: str) -> str:
    """An identifier that must be plain ASCII (aliases an analyst types unquoted in the CLI)."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} must match {_IDENTIFIER.pattern}")
    return name
