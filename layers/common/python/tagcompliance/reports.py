"""Compliance reports in JSON, CSV and Markdown, written to any text stream (so large ones stream)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import Any, TextIO

from .compliance import Violation
from .models import accounts_worst_first
from .store import SnapshotRecord

VIOLATION_COLUMNS = (
    "resource_arn",
    "resource_type",
    "region",
    "violation_type",
    "tag_key",
    "current_value",
    "severity",
)


def report_summary(snapshot: SnapshotRecord, violations: Iterable[Violation]) -> dict[str, Any]:
    """The headline figures of a report, and recommendations derived from them."""
    by_tag = Counter((v.violation_type, v.tag_key) for v in violations)
    worst_types = _worst_first(snapshot.counts_by_type)
    recommendations: list[str] = []
    for (violation_type, tag_key), count in by_tag.most_common(5):
        action = {
            "missing_tag": f"add the {tag_key} tag",
            "wrong_key_case": f"rename the key to exactly {tag_key!r} (tag keys are case-sensitive)",
            "invalid_value": f"replace {tag_key} values with allowed ones",
            "invalid_format": f"fix the format of {tag_key} values",
            "prohibited_tag": f"remove the prohibited {tag_key} tag",
        }.get(violation_type, f"fix {tag_key}")
        recommendations.append(f"{count} resource(s): {action}.")
    if snapshot.failed_shards:
        recommendations.insert(
            0,
            f"{len(snapshot.failed_shards)} shard(s) or resources could not be read: fix access and re-run "
            "before relying on the score.",
        )
    return {
        "snapshot_id": snapshot.snapshot_id,
        "scanned_at": snapshot.created_at.isoformat(),
        "account_id": snapshot.account_id,
        "accounts": snapshot.covered_accounts,
        "regions": snapshot.regions,
        "resource_types": snapshot.resource_types,
        "compliance_score": snapshot.compliance_score,
        "total_resources": snapshot.total_resources,
        "scanned_resources": snapshot.scanned_resources,
        "compliant_resources": snapshot.compliant_resources,
        "violation_count": snapshot.violation_count,
        "violations_by_type": dict(sorted(snapshot.counts_by_violation.items())),
        "by_resource_type": dict(worst_types),
        "by_region": dict(sorted(snapshot.counts_by_region.items())),
        "by_account": {
            account: counts.model_dump()
            for account, counts in accounts_worst_first(snapshot.counts_by_account).items()
            if counts.total
        },
        "top_issues": [
            {"violation_type": vt, "tag_key": key, "resources": count}
            for (vt, key), count in by_tag.most_common(10)
        ],
        "failed_shards": snapshot.failed_shards,
        "recommendations": recommendations,
    }


def _worst_first(counts: dict[str, dict[str, int]]) -> list[tuple[str, dict[str, int]]]:
    """Entries with resources, the lowest compliant share first (the larger first on a tie)."""
    return sorted(
        ((key, entry) for key, entry in counts.items() if entry["total"]),
        key=lambda item: (item[1]["compliant"] / item[1]["total"], -item[1]["total"], item[0]),
    )


def write_json(summary: dict[str, Any], violations: Iterable[Violation] | None, out: TextIO) -> None:
    # Written piece by piece so a large violation list is never held as one string.
    out.write('{"summary": ')
    json.dump(summary, out, default=str)
    if violations is not None:
        out.write(', "violations": [')
        for index, violation in enumerate(violations):
            if index:
                out.write(", ")
            json.dump(
                dict(zip(VIOLATION_COLUMNS, (getattr(violation, c) for c in VIOLATION_COLUMNS), strict=True)),
                out,
            )
        out.write("]")
    out.write("}\n")


def _md_cell(value: object) -> str:
    return str(value if value is not None else "").replace("|", "\\|").replace("\n", " ")


def _percent(score: float | None) -> str:
    return "n/a" if score is None else f"{score * 100:.1f}%"


def write_markdown(summary: dict[str, Any], violations: Iterable[Violation] | None, out: TextIO) -> None:
    out.write("# Tag compliance report\n\n")
    accounts = summary["accounts"]
    if len(accounts) > 1:
        out.write(
            f"- Accounts: {len(accounts)} ({', '.join(accounts)}), scanned from {summary['account_id']}\n"
        )
    elif accounts and accounts[0] != summary["account_id"]:
        out.write(f"- Account: {accounts[0]} (scanned from {summary['account_id']})\n")
    else:
        out.write(f"- Account: {summary['account_id']}\n")
    out.write(f"- Regions: {', '.join(summary['regions'])}\n")
    out.write(f"- Resource types: {len(summary['resource_types'])}\n- Scanned at: {summary['scanned_at']}\n")
    out.write(f"- Snapshot: {summary['snapshot_id']}\n\n")
    out.write(
        f"**Compliance score: {_percent(summary['compliance_score'])}** "
        f"({summary['compliant_resources']} of {summary['scanned_resources']} resources with requirements; "
        f"{summary['total_resources']} found; {summary['violation_count']} violations)\n\n"
    )
    if summary["failed_shards"]:
        out.write("> **Incomplete:** these could not be read and are not in the score:\n")
        for shard in summary["failed_shards"]:
            target = shard.get("resource_arn") or f"{shard['resource_type']} in {shard['region']}"
            if not shard.get("resource_arn") and shard.get("account_id"):
                target += f" of account {shard['account_id']}"
            out.write(f"> - {_md_cell(target)}: {_md_cell(shard['error'])}\n")
        out.write("\n")
    out.write("## Recommendations\n\n")
    for line in summary["recommendations"] or ["No violations: nothing to fix."]:
        out.write(f"- {line}\n")
    out.write(
        "\n## By resource type (worst first)\n\n"
        "| Type | Resources | Compliant | Violations |\n|---|---|---|---|\n"
    )
    for type_id, counts in summary["by_resource_type"].items():
        out.write(f"| {type_id} | {counts['total']} | {counts['compliant']} | {counts['violations']} |\n")
    out.write("\n## By region\n\n| Region | Resources | Compliant | Violations |\n|---|---|---|---|\n")
    for region, counts in summary["by_region"].items():
        out.write(f"| {region} | {counts['total']} | {counts['compliant']} | {counts['violations']} |\n")
    if len(accounts) > 1:
        _write_accounts(summary, out)
    out.write("\n## Violations by type\n\n| Violation | Count |\n|---|---|\n")
    for violation_type, count in summary["violations_by_type"].items():
        out.write(f"| {violation_type} | {count} |\n")
    if violations is not None:
        out.write(
            "\n## Violations\n\n| Resource | Type | Region | Violation | Tag | Current value |\n"
            "|---|---|---|---|---|---|\n"
        )
        for v in violations:
            out.write(
                f"| {_md_cell(v.resource_arn)} | {v.resource_type} | {v.region} | {v.violation_type} | "
                f"{_md_cell(v.tag_key)} | {_md_cell(v.current_value)} |\n"
            )


def _write_accounts(summary: dict[str, Any], out: TextIO) -> None:
    """Every audited account, worst first; accounts without resources and unread shards last."""
    unread: Counter[str] = Counter(
        str(shard["account_id"]) for shard in summary["failed_shards"] if shard.get("account_id")
    )
    listed = list(summary["by_account"]) + [
        account for account in summary["accounts"] if account not in summary["by_account"]
    ]
    out.write(
        "\n## By account (worst first)\n\n"
        "| Account | Resources | Compliant | Score | Violations | Unread shards or resources |\n"
        "|---|---|---|---|---|---|\n"
    )
    for account in listed:
        counts = summary["by_account"].get(account, {"total": 0, "compliant": 0, "violations": 0})
        share = _percent(counts.get("compliance_score"))
        out.write(
            f"| {_md_cell(account)} | {counts['total']} | {counts['compliant']} | {share} | "
            f"{counts['violations']} | {unread.get(account, 0)} |\n"
        )
