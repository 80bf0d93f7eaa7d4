"""What a copy or a verification reports, table by table, and the errors it raises."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, computed_field

from tagcompliance.errors import StoreError


class MigrationError(StoreError):
    """The copy cannot start or did not complete; the message says why and what was (not) written."""


class TableReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    table: str
    source_rows: int
    target_rows: int
    source_checksum: str = Field(description="64 hex digits, order-independent")
    target_checksum: str

    @computed_field  # type: ignore[prop-decorator]
    @property
    def match(self) -> bool:
        return self.source_rows == self.target_rows and self.source_checksum == self.target_checksum


class MigrationReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str
    target: str  # never holds a password
    schema_version: int
    copied: bool = Field(description="False for a verification alone")
    truncated: bool = Field(description="The target's rows were deleted first (--force)")
    tables: list[TableReport]
    sequences: dict[str, int] = Field(
        default_factory=dict, description="table.column -> the next value the sequence gives"
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return all(table.match for table in self.tables)

    def text(self) -> str:
        action = "Copied" if self.copied else "Compared"
        lines = [
            f"{action} {self.source} -> {self.target} (schema version {self.schema_version})"
            + (", after emptying the target (--force)" if self.truncated else ""),
            f"{'table':<28} {'source rows':>11} {'target rows':>11}  {'source checksum':<16}  "
            f"{'target checksum':<16}  match",
        ]
        for table in self.tables:
            lines.append(
                f"{table.table:<28} {table.source_rows:>11} {table.target_rows:>11}  "
                f"{table.source_checksum[:16]:<16}  {table.target_checksum[:16]:<16}  "
                f"{'yes' if table.match else 'NO'}"
            )
        if self.sequences:
            moved = ", ".join(f"{name} -> {value}" for name, value in self.sequences.items())
            lines.append(f"Sequences advanced (next value): {moved}")
        bad = [table.table for table in self.tables if not table.match]
        lines.append(
            f"MISMATCH in {', '.join(bad)}"
            if bad
            else f"All {len(self.tables)} tables match (row counts and checksums)."
        )
        return "\n".join(lines)


class VerificationError(MigrationError):
    """The copy was read back different from the source; the transaction was rolled back."""

    def __init__(self, report: MigrationReport) -> None:
        bad = ", ".join(table.table for table in report.tables if not table.match)
        super().__init__(
            f"verification failed for {bad}: the copy was rolled back, nothing was written to {report.target}"
        )
        self.report = report
