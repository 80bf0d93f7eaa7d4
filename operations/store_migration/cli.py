"""The command line: ``python -m operations.store_migration``, its arguments, report and exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tagcompliance.errors import StoreError

from .report import VerificationError
from .transfer import DEFAULT_BATCH_SIZE, migrate_sqlite_to_postgres, verify_copy

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_MISMATCH = 0, 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m operations.store_migration",
        description=(
            "Copy an embedded SQLite tagcompliance store into PostgreSQL in one transaction, then verify "
            "row counts and content checksums per table. Exit codes: 0 copied (or verified) and "
            "matching, 1 error (nothing written), 2 bad arguments, 3 checksums or counts differ."
        ),
    )
    parser.add_argument(
        "--source",
        required=True,
        help="the SQLite store: a file path, or sqlite:///path (sqlite:////abs/path)",
    )
    parser.add_argument("--target", required=True, help="postgresql://user[:password]@host:port/dbname")
    parser.add_argument(
        "--force",
        action="store_true",
        help=(
            "copy into a target that already holds rows: every copied table of the target is emptied "
            "(TRUNCATE) first, in the same transaction as the copy, so a failure keeps the old rows"
        ),
    )
    parser.add_argument(
        "--verify-only", action="store_true", help="compare the source with the target; write nothing"
    )
    parser.add_argument(
        "--upgrade-source",
        action="store_true",
        help="apply this release's migrations to an older source store first (this writes to the source)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"rows read per round trip (default {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.verify_only and (args.force or args.upgrade_source):
        print(
            "error: --verify-only writes nothing: it cannot be combined with --force or --upgrade-source",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        if args.verify_only:
            report = verify_copy(args.source, args.target, batch_size=args.batch_size)
        else:
            report = migrate_sqlite_to_postgres(
                args.source,
                args.target,
                force=args.force,
                upgrade_source=args.upgrade_source,
                batch_size=args.batch_size,
            )
    except VerificationError as error:
        print(error.report.model_dump_json(indent=2) if args.json else error.report.text())
        print(f"error: {error}", file=sys.stderr)
        return EXIT_MISMATCH
    except StoreError as error:  # MigrationError included
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted: the transaction was rolled back, nothing was written", file=sys.stderr)
        return EXIT_ERROR
    print(report.model_dump_json(indent=2) if args.json else report.text())
    return EXIT_OK if report.ok else EXIT_MISMATCH
