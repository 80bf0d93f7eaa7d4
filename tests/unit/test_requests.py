"""The tools' request models: unknown arguments are refused, and ``parameters()`` is exactly what an
intent commit binds (the safety arguments and a paging cursor are not; a generator's own dry_run is)."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from tagcompliance.requests import (
    CheckComplianceRequest,
    CostGapRequest,
    CustodianRequest,
    ExportRequest,
    OpenOpsRequest,
    ScheduleRequest,
)


def test_a_misspelt_argument_is_refused_not_dropped() -> None:
    with pytest.raises(ValidationError, match="resource_type"):
        CheckComplianceRequest(resource_type=["ec2:instance"])  # type: ignore[call-arg]


def test_the_commit_binds_the_work_arguments_not_safety_or_paging() -> None:
    request = CheckComplianceRequest(
        resource_types=["ec2:instance"],
        regions=["us-east-1"],
        cursor="c",
        dry_run=True,
        confirmation_token="t",
    )
    assert request.parameters() == {
        "resource_types": ["ec2:instance"],
        "regions": ["us-east-1"],
        "accounts": None,  # the accounts asked about are bound too
        "severity": "all",
        "force_refresh": False,
        "page_size": 50,
    }
    period = CostGapRequest(start_date=date(2026, 1, 1), end_date=date(2026, 2, 1)).parameters()
    assert period["start_date"] == date(2026, 1, 1) and "dry_run" not in period


def test_a_generators_own_dry_run_is_bound() -> None:
    assert OpenOpsRequest(dry_run=False, confirmation_token="t").parameters()["dry_run"] is False
    assert "confirmation_token" not in OpenOpsRequest().parameters()
    assert CustodianRequest(dry_run=False).parameters()["dry_run"] is False


def test_export_binds_its_filters_as_applied() -> None:
    assert ExportRequest().parameters()["filters"] == {
        "severity": "all",
        "resource_types": None,
        "regions": None,
        "accounts": None,
        "violation_types": None,
    }


def test_a_schedule_binds_only_the_fields_given() -> None:
    request = ScheduleRequest(action="update", schedule_id="s1", time="07:00", dry_run=True)
    assert request.parameters() == {"action": "update", "schedule_id": "s1", "time": "07:00"}
    assert request.schedule_fields() == {"time": "07:00"}
    assert not request.scans()
    assert ScheduleRequest(action="create", regions=["us-east-1"]).scans()


def test_openops_overwrites_tags_only_when_live_auto_tag_names_resources() -> None:
    arns = ["arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"]
    live = OpenOpsRequest(
        remediation_strategy="auto_tag", tag_values={"Owner": "a"}, resource_arns=arns, dry_run=False
    )
    assert live.overwrites_tags()
    assert not live.model_copy(update={"dry_run": True}).overwrites_tags()
    assert not live.model_copy(update={"resource_arns": None}).overwrites_tags()
