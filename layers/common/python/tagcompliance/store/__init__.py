"""Persistence: snapshots, per-resource tag state and the audit log.

PostgreSQL when ``DATABASE_URL`` is set, an embedded SQLite file under ``DATA_DIR`` otherwise;
both through the one SQL implementation in ``sql.py``.
"""

from __future__ import annotations

from tagcompliance.settings import Settings

from .base import (
    AuditRecord,
    ConcurrentUpdateError,
    ResourceStateRecord,
    ScheduledAuditRecord,
    SnapshotRecord,
    Store,
    StoreInfo,
)
from .postgres import PostgresStore
from .sql import SqlStore
from .sqlite import SqliteStore

__all__ = [
    "AuditRecord",
    "ConcurrentUpdateError",
    "PostgresStore",
    "ResourceStateRecord",
    "ScheduledAuditRecord",
    "SnapshotRecord",
    "SqlStore",
    "SqliteStore",
    "Store",
    "StoreInfo",
    "open_store",
]


def open_store(settings: Settings) -> Store:
    """The configured store, migrated to the latest schema.

    An unreachable ``DATABASE_URL`` raises StoreError rather than falling back to SQLite: the
    user asked for PostgreSQL, and snapshots written elsewhere would seem to vanish later.
    """
    store: SqlStore = (
        PostgresStore(settings.database_url, pool_size=settings.database_pool_size)
        if settings.database_url
        else SqliteStore(settings.sqlite_path)
    )
    try:
        store.migrate()
    except BaseException:
        store.close()
        raise
    return store
