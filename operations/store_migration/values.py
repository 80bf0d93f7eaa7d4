"""Values on both sides of the copy: the kind of each PostgreSQL column type, the canonical form
and order-independent checksums both sides are compared by, and SQLite values converted for
PostgreSQL."""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Sequence
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any, Literal

from psycopg.types.json import Jsonb

CHECKSUM_MODULUS = 2**256

Kind = Literal["json", "timestamptz", "bool", "array", "time", "inet", "int", "number", "text"]

_KINDS: dict[str, Kind] = {
    "json": "json",
    "jsonb": "json",
    "timestamp with time zone": "timestamptz",
    "boolean": "bool",
    "ARRAY": "array",
    "time without time zone": "time",
    "inet": "inet",
    "smallint": "int",
    "integer": "int",
    "bigint": "int",
    "double precision": "number",
    "real": "number",
    "numeric": "number",
}


def column_kind(data_type: str) -> Kind:
    """How a PostgreSQL column type (``information_schema.columns.data_type``) is converted and compared."""
    return _KINDS.get(data_type, "text")


def _number(value: int | float | Decimal) -> str:
    # By value: 1, 1.0 and 1E+0 are one number (jsonb and SQLite REAL may spell it differently).
    decimal = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    return str(decimal.normalize()) if decimal.is_finite() else str(decimal)


def _canonical(value: Any) -> str:
    """Canonical JSON text: sorted keys, no spaces, numbers by value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return _number(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        items = sorted((str(key), item) for key, item in value.items())
        return (
            "{"
            + ",".join(f"{json.dumps(key, ensure_ascii=False)}:{_canonical(item)}" for key, item in items)
            + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ",".join(_canonical(item) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # e.g. a date or UUID inside a value


def _utc(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    # The SQLite store always writes +00:00; a naive value can only mean UTC there.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _json_value(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _text_list(value: Any) -> list[Any]:
    items = _json_value(value)
    if not isinstance(items, list):
        raise ValueError(f"expected a list, got {type(items).__name__}")
    return items


def _bool(value: Any) -> bool:
    if isinstance(value, bool) or value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "t", "f"):
        return value.lower() in ("true", "t")
    raise ValueError(f"{value!r} is not a boolean")


def _time(value: time | str) -> time:
    return time.fromisoformat(value) if isinstance(value, str) else value


def _parsed(kind: Kind, value: Any) -> Any:
    """A non-null value, read from either database, as the Python value of its ``kind``."""
    match kind:
        case "json":
            return _json_value(value)
        case "timestamptz":
            return _utc(value)
        case "bool":
            return _bool(value)
        case "array":
            return _text_list(value)
        case "time":
            return _time(value)
        case "inet":
            return str(ipaddress.ip_interface(str(value)))
        case "int":
            return int(value)
        case "number":
            return float(value)
        case _:
            return value


def normalise(kind: Kind, value: Any) -> Any:
    """``value``, read from either database, in the form both sides' checksums are computed from."""
    if value is None:
        return None
    match kind:
        case "timestamptz":
            return _parsed(kind, value).isoformat(timespec="microseconds")
        case "time":
            return _parsed(kind, value).isoformat()
        case "text":
            # Text, and types without a kind (uuid, date ...): SQLite holds the text COPY parsed.
            return value.hex() if isinstance(value, bytes) else str(value)
        case _:
            return _parsed(kind, value)


def row_digest(values: Sequence[Any]) -> int:
    """One row's hash from its normalised values (in column-name order) as an integer."""
    digest = hashlib.sha256(_canonical(list(values)).encode("utf-8")).digest()
    return int.from_bytes(digest, "big")


class Checksum:
    """Order-independent: a sum of row hashes, so the same rows in any order give the same value."""

    def __init__(self) -> None:
        self.rows = 0
        self._total = 0

    def add(self, digest: int) -> None:
        self.rows += 1
        self._total = (self._total + digest) % CHECKSUM_MODULUS

    @property
    def hex(self) -> str:
        return f"{self._total:064x}"


def to_target(kind: Kind, value: Any) -> Any:
    """A SQLite value as the Python value psycopg writes into a column of ``kind``."""
    if value is None:
        return None
    parsed = _parsed(kind, value)
    return Jsonb(parsed) if kind == "json" else parsed
