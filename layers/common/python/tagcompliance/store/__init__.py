"""Persistence: snapshots, schedules, the tool-call log, agent safety and OAuth state (``base.py``).

PostgreSQL when ``DATABASE_URL`` is set, an embedded SQLite file under ``DATA_DIR`` otherwise;
both through the one SQL implementation in ``sql.py``.
"""

from __future__ import annotations

from tagcompliance.settings import Settings

from .base import (
    CallLogStore,
    CallRecord,
    ConcurrentUpdateError,
    ResourceStateRecord,
    SafetyStore,
    ScheduledAuditRecord,
    ScheduleStore,
    SnapshotRecord,
    SnapshotStore,
    Store,
    StoreInfo,
)
from .oauth import OAuthStore
from .postgres import PostgresStore
from .sql import SqlStore
from .sqlite import SqliteStore

__all__ = [
    "CallLogStore",
    "CallRecord",
    "ConcurrentUpdateError",
    "OAuthStore",
    "PostgresStore",
    "ResourceStateRecord",
    "SafetyStore",
    "ScheduleStore",
    "ScheduledAuditRecord",
    "SnapshotRecord",
    "SnapshotStore",
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
        PostgresStore(
            settings.database_url,
            pool_size=settings.database_pool_size,
            password=settings.database_password.get_secret_value() if settings.database_password else None,
        )
        if settings.database_url
        else SqliteStore(settings.sqlite_path)
    )
    try:
        store.migrate()
    except BaseException:
        store.close()
        raise
    return store
