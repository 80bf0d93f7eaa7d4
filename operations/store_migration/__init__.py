"""Copy an embedded SQLite store into PostgreSQL, then verify the copy table by table: an operator's
command, run from a checkout of the repository with its virtual environment (``make setup``).

    python -m operations.store_migration --source ~/.tag-compliance/tagcompliance.db \\
        --target postgresql://user@host:5432/dbname [--force] [--verify-only] [--upgrade-source]

What it does, in order:

1. Opens the source read-only and checks it is a tagcompliance store at this code's schema
   version (``--upgrade-source`` applies the missing migrations to it first; a store written by a
   newer tagcompliance is refused).
2. Brings the target's schema to the same version with the store's own migrations (a target at a
   newer version is refused), then compares the two schemas: the same tables with the same columns.
3. In ONE PostgreSQL transaction: refuses a target that holds rows in any table, unless ``force``,
   which empties those tables with ``TRUNCATE`` inside that same transaction; copies every table
   (parents before the tables whose foreign keys point at them) with ``COPY``, streaming the
   source in batches so memory stays flat whatever the size; moves every serial / identity
   sequence past the copied ids; reads every table back and compares row counts and checksums.
   Any error or mismatch rolls the whole transaction back: the target is left as it was.

Tables are discovered from the schema (every table but ``schema_migrations``), so tables added by
later migrations are copied without changing this module. Values are converted to the target
column's type, read from PostgreSQL's catalog.

The checksum of a table is order-independent: the sum, modulo 2**256, of the SHA-256 of each row's
canonical form. Both sides use the same canonical form, driven by the target column types:
timestamps as UTC ISO 8601 with microseconds, JSON with sorted keys and numbers by value, booleans,
arrays as JSON lists, times of day as ``HH:MM:SS``, IP addresses with their prefix length.

Where it lives: beside the product, not in it. It uses the store's migrations and SQL stores from
``tagcompliance.store`` but ships with neither the Lambda layer (``layers/common``) nor the gateway
image: the deployed product runs on PostgreSQL only, so the SQLite file to copy is on the machine of
the local install being moved, where this command runs.

Modules: ``values`` (column kinds, the canonical form, checksums, converting SQLite values for
PostgreSQL), ``schema`` (opening and checking both sides, the tables to copy and their order),
``transfer`` (the copy and the verification, each in one transaction), ``report`` (the reports and
errors), ``cli`` (the command line; ``__main__`` runs it).
"""
