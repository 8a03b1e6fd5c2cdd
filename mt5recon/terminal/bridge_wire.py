"""The bridge's wire format: MT5 results as plain, brine-serializable data.

RPyC sends only brine types (None, bool, int, float, str, bytes, tuples of them) by
value; anything else would cross as a netref, i.e. a live handle into the other process.
So every value is encoded into plain data before it is returned, and decoded strictly
(by exact type, never touching attributes) on the way in.

Encoding, unambiguous because a scalar is never a tuple and every tuple is tagged:

- scalar                      -> itself
- named tuple                 -> ("rec", type_name, field_names, encoded_values)
- tuple of same-type records  -> ("tab", type_name, field_names, (encoded_values, ...))
- any other tuple / list      -> ("seq", (encoded_items, ...))

Records carry their field names so the client rebuilds them by name: the real
package's SymbolInfo has far more fields than `records.SymbolInfo`, in its own order.
"""

from __future__ import annotations

from typing import Any

from mt5recon.terminal.records import RECORD_TYPES

PLAIN_SCALARS: frozenset[type] = frozenset({type(None), bool, int, float, str, bytes})
REC = "rec"
TAB = "tab"
SEQ = "seq"


class WireError(ValueError):
    """A value cannot be put on, or read from, the wire."""


def is_plain(value: object) -> bool:
    """True if `value` is brine data by exact type, so it cannot be (or hide) a netref."""
    if type(value) in PLAIN_SCALARS:
        return True
    return type(value) is tuple and all(is_plain(item) for item in value)


def _record_fields(value: tuple[Any, ...]) -> tuple[str, ...] | None:
    """The field names of a named-tuple-like record, or None for a plain tuple."""
    fields = getattr(type(value), "_fields", None)
    if type(fields) is tuple and all(type(name) is str for name in fields):
        return fields
    return None


def _encode_table(items: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """Encode a non-empty tuple of same-type records once-per-field-names, else None."""
    if not items:
        return None
    first_type = type(items[0])
    fields = _record_fields(items[0]) if isinstance(items[0], tuple) else None
    if fields is None or any(type(item) is not first_type for item in items):
        return None
    rows = tuple(_encode_row(item) for item in items)
    return (TAB, first_type.__name__, fields, rows)


def _encode_row(item: tuple[Any, ...]) -> tuple[Any, ...]:
    """A record's values; scalars as they are (the usual case: no call per field)."""
    if all(type(value) in PLAIN_SCALARS for value in item):
        return tuple(item)
    return tuple(encode_value(value) for value in item)


def encode_value(value: object) -> Any:
    """Turn an MT5 result (scalars, records, tuples of them, nested) into plain data."""
    if type(value) in PLAIN_SCALARS:
        return value
    if isinstance(value, tuple) and (fields := _record_fields(value)) is not None:
        return (REC, type(value).__name__, fields, tuple(encode_value(field) for field in value))
    if isinstance(value, (tuple, list)):
        items = tuple(value)
        return _encode_table(items) or (SEQ, tuple(encode_value(item) for item in items))
    raise WireError(f"cannot send a {type(value).__name__} over the bridge")


def _build_record(name: object, fields: object, values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Rebuild one `records.*` named tuple by field name; extra remote fields are dropped."""
    cls = RECORD_TYPES.get(name) if type(name) is str else None
    if cls is None:
        raise WireError(f"unknown record type {name!r}")
    if type(fields) is not tuple or len(fields) != len(values):
        raise WireError(f"{name}: field names do not match values")
    by_name = dict(zip(fields, values, strict=True))
    missing = [field for field in cls._fields if field not in by_name]  # type: ignore[attr-defined]
    if missing:
        raise WireError(f"{name}: the terminal sent no {', '.join(missing)}")
    return cls(**{field: by_name[field] for field in cls._fields})  # type: ignore[attr-defined]


def _decode_table(name: object, fields: object, rows: tuple[Any, ...]) -> tuple[Any, ...]:
    """Rebuild a table's records. A row of scalars is checked by exact type and its fields are
    picked by position, worked out once per table; any other row goes field by field."""
    if not all(type(row) is tuple for row in rows):
        raise WireError("malformed table rows")
    if not rows:
        return ()
    cls = RECORD_TYPES.get(name) if type(name) is str else None
    if cls is None:
        raise WireError(f"unknown record type {name!r}")
    if type(fields) is not tuple or any(type(field) is not str for field in fields):
        raise WireError(f"{name}: field names must be a tuple of str")
    position = {field: i for i, field in enumerate(fields)}
    missing = [field for field in cls._fields if field not in position]  # type: ignore[attr-defined]
    if missing:
        raise WireError(f"{name}: the terminal sent no {', '.join(missing)}")
    picks = [position[field] for field in cls._fields]  # type: ignore[attr-defined]
    make = cls._make  # type: ignore[attr-defined]
    records = []
    for row in rows:
        if len(row) != len(fields):
            raise WireError(f"{name}: field names do not match values")
        if all(type(value) in PLAIN_SCALARS for value in row):
            records.append(make([row[i] for i in picks]))
        else:
            records.append(_build_record(name, fields, tuple(decode_value(value) for value in row)))
    return tuple(records)


def _decode_tagged(wire: tuple[Any, ...]) -> Any:
    """Decode one tagged tuple (see the module docstring)."""
    tag = wire[0] if wire else None
    if tag == SEQ and len(wire) == 2 and type(wire[1]) is tuple:
        return tuple(decode_value(item) for item in wire[1])
    if tag == REC and len(wire) == 4 and type(wire[3]) is tuple:
        return _build_record(wire[1], wire[2], tuple(decode_value(v) for v in wire[3]))
    if tag == TAB and len(wire) == 4 and type(wire[3]) is tuple:
        return _decode_table(wire[1], wire[2], wire[3])
    raise WireError(f"malformed value with tag {tag!r}")


def decode_value(wire: object) -> Any:
    """Rebuild a result from plain data; anything that is not plain data is refused."""
    if type(wire) in PLAIN_SCALARS:
        return wire
    if type(wire) is tuple:
        return _decode_tagged(wire)
    raise WireError(f"not plain data: {type(wire).__name__}")
