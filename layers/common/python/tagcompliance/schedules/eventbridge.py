"""The EventBridge Scheduler adapter: schedules mirrored to AWS, which starts the audit state machine."""

from __future__ import annotations

import json
import re
import threading
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from tagcompliance.aws import AwsClients, describe_aws_error, error_code
from tagcompliance.errors import InvalidInputError
from tagcompliance.store import ScheduledAuditRecord

from .cron import CronExpression
from .definitions import DEFAULT_DAY_OF_MONTH, DEFAULT_DAY_OF_WEEK, SchedulerSyncError
from .spec import ScheduleSpec
from .timing import describe_schedule, hour_minute

FEBRUARY_SUFFIX = "-feb"


def aws_schedule_expressions(schedule: ScheduleSpec | ScheduledAuditRecord) -> list[tuple[str, str]]:
    """(name suffix, EventBridge cron expression) for each EventBridge schedule this one needs.

    One, except monthly on day 29 or 30: "that day, or February's last" takes two (that day in the
    other months, ``L`` in February). Day 31 is exactly ``L``: every month's last day.
    """
    kind = schedule.schedule if isinstance(schedule, ScheduleSpec) else schedule.schedule_type
    if kind == "cron":
        return [("", CronExpression.parse(schedule.cron_expression or "").to_aws())]
    hour, minute = hour_minute(schedule.time)
    if kind == "daily":
        return [("", f"cron({minute} {hour} * * ? *)")]
    if kind == "weekly":
        weekday = (schedule.day_of_week or DEFAULT_DAY_OF_WEEK)[:3].upper()
        return [("", f"cron({minute} {hour} ? * {weekday} *)")]
    day = schedule.day_of_month or DEFAULT_DAY_OF_MONTH
    if day <= 28:
        return [("", f"cron({minute} {hour} {day} * ? *)")]
    if day == 31:
        return [("", f"cron({minute} {hour} L * ? *)")]
    return [
        ("", f"cron({minute} {hour} {day} 1,3-12 ? *)"),
        (FEBRUARY_SUFFIX, f"cron({minute} {hour} L 2 ? *)"),
    ]


class SchedulerBackend(Protocol):
    """Where schedules are mirrored so that something outside this process fires them."""

    def create(self, record: ScheduledAuditRecord) -> str:
        """Create (or overwrite) the schedule; return its external id."""
        ...

    def update(self, record: ScheduledAuditRecord) -> str:
        """Bring the schedule in line with ``record`` (paused -> disabled); return its external id."""
        ...

    def delete(self, record: ScheduledAuditRecord) -> None:
        """Remove it; a schedule already gone is not an error."""
        ...


_GROUP_NAME = re.compile(r"[0-9a-zA-Z_.-]{1,64}")
DAILY_SNAPSHOT_NAME = "daily-compliance-snapshot"


class EventBridgeScheduler:
    """Each scheduled audit as EventBridge Scheduler schedule(s) that start the audit state machine.

    Schedules live in ``group_name`` (created when missing) and are named after the schedule id.
    The target is the state machine ``target_arn``, started with ``role_arn`` and the input
    ``{"schedule_id", "resource_types", "regions", "trigger": "scheduled"}``; recipients are not in
    it (webhook URLs are secrets): the state machine reads them from the store by schedule id.

    EventBridge Scheduler skips a wall-clock time that does not exist on a spring-forward day,
    where ``next_run`` here runs it when the clocks jump; fall-back days agree (one run).
    """

    def __init__(
        self,
        clients: AwsClients,
        group_name: str,
        target_arn: str,
        role_arn: str,
        region: str | None = None,
        max_retry_attempts: int = 2,
    ) -> None:
        if not _GROUP_NAME.fullmatch(group_name):
            raise InvalidInputError(f"schedule group name {group_name!r} must be 1-64 of [0-9a-zA-Z_.-]")
        self._clients = clients
        self.group_name = group_name
        self.target_arn = target_arn
        self.role_arn = role_arn
        self._region = region
        self._max_retry_attempts = max_retry_attempts
        self._group_ready = False
        self._lock = threading.Lock()

    @property
    def _client(self) -> Any:
        return self._clients.client("scheduler", self._region)

    def create(self, record: ScheduledAuditRecord) -> str:
        return self._put(record, creating=True)

    def update(self, record: ScheduledAuditRecord) -> str:
        if record.status == "deleted":
            self.delete(record)
            return record.external_id or ""
        return self._put(record, creating=False)

    def delete(self, record: ScheduledAuditRecord) -> None:
        for suffix in ("", FEBRUARY_SUFFIX):
            self._delete_quietly(record.schedule_id + suffix)

    def _put(self, record: ScheduledAuditRecord, creating: bool) -> str:
        self._ensure_group()
        wanted = aws_schedule_expressions(record)
        arns = []
        for suffix, expression in wanted:
            params = self._schedule_params(record, record.schedule_id + suffix, expression)
            first, fallback = ("create", "update") if creating else ("update", "create")
            try:
                arns.append(self._call(first, params))
            except ClientError as error:
                # Creating over an existing schedule overwrites it; updating a missing one creates it.
                expected = "ConflictException" if creating else "ResourceNotFoundException"
                if error_code(error) != expected:
                    raise self._sync_error(first, params["Name"], error) from None
                arns.append(self._call(fallback, params, wrap=True))
        if not creating:
            for suffix in {"", FEBRUARY_SUFFIX} - {suffix for suffix, _ in wanted}:
                self._delete_quietly(record.schedule_id + suffix)
        return arns[0]

    def _schedule_params(self, record: ScheduledAuditRecord, name: str, expression: str) -> dict[str, Any]:
        payload = {
            "schedule_id": record.schedule_id,
            "resource_types": list(record.resource_types),
            "regions": list(record.regions),
            "trigger": "scheduled",
        }
        return self._params(
            name,
            f"Tag-compliance audit {record.schedule_id}: {describe_schedule(record)}"[:512],
            expression,
            record.timezone,
            "ENABLED" if record.status == "active" else "DISABLED",
            payload,
        )

    def _params(
        self, name: str, description: str, expression: str, timezone: str, state: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """A schedule in this group that starts the state machine with ``payload`` as its input."""
        return {
            "Name": name,
            "GroupName": self.group_name,
            "Description": description,
            "ScheduleExpression": expression,
            "ScheduleExpressionTimezone": timezone,
            "State": state,
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": {
                "Arn": self.target_arn,
                "RoleArn": self.role_arn,
                "Input": json.dumps(payload, separators=(",", ":")),
                "RetryPolicy": {
                    "MaximumRetryAttempts": self._max_retry_attempts,
                    "MaximumEventAgeInSeconds": 3600,
                },
            },
        }

    def _call(self, action: str, params: dict[str, Any], wrap: bool = False) -> str:
        try:
            method = self._client.create_schedule if action == "create" else self._client.update_schedule
            return str(method(**params)["ScheduleArn"])
        except (ClientError, BotoCoreError) as error:
            if wrap or isinstance(error, BotoCoreError):
                raise self._sync_error(action, params["Name"], error) from None
            raise

    def _delete_quietly(self, name: str) -> None:
        try:
            self._client.delete_schedule(Name=name, GroupName=self.group_name)
        except ClientError as error:
            if error_code(error) != "ResourceNotFoundException":
                raise self._sync_error("delete", name, error) from None
        except BotoCoreError as error:
            raise self._sync_error("delete", name, error) from None

    def _ensure_group(self) -> None:
        with self._lock:
            if self._group_ready:
                return
            client = self._client
            try:
                client.get_schedule_group(Name=self.group_name)
            except ClientError as error:
                if error_code(error) != "ResourceNotFoundException":
                    raise self._sync_error("read the group of", self.group_name, error) from None
                try:
                    client.create_schedule_group(Name=self.group_name)
                except ClientError as create_error:
                    if error_code(create_error) != "ConflictException":  # created meanwhile: fine
                        raise self._sync_error("create the group", self.group_name, create_error) from None
            except BotoCoreError as error:
                raise self._sync_error("read the group of", self.group_name, error) from None
            self._group_ready = True

    def schedule_names(self) -> list[str]:
        """Names of every schedule in the group (none when the group does not exist yet)."""
        names: list[str] = []
        try:
            paginator = self._client.get_paginator("list_schedules")
            for page in paginator.paginate(GroupName=self.group_name):
                names.extend(item["Name"] for item in page.get("Schedules", []))
        except ClientError as error:
            if error_code(error) == "ResourceNotFoundException":
                return []
            raise self._sync_error("list", "*", error) from None
        except BotoCoreError as error:
            raise self._sync_error("list", "*", error) from None
        return sorted(names)

    def put_daily_snapshot(self, time_utc: str) -> str:
        """Create or update the daily compliance snapshot: every resource type in the default
        regions at ``time_utc`` (HH:MM, UTC), started with trigger ``daily``."""
        hour, minute = hour_minute(time_utc)
        self._ensure_group()
        params = self._params(
            DAILY_SNAPSHOT_NAME,
            f"Daily tag-compliance snapshot at {hour:02d}:{minute:02d} UTC",
            f"cron({minute} {hour} * * ? *)",
            "UTC",
            "ENABLED",
            {"resource_types": [], "regions": [], "trigger": "daily"},
        )
        try:
            return self._call("update", params)
        except ClientError as error:
            if error_code(error) != "ResourceNotFoundException":
                raise self._sync_error("update", DAILY_SNAPSHOT_NAME, error) from None
            return self._call("create", params, wrap=True)

    def delete_name(self, name: str) -> None:
        self._delete_quietly(name)

    def _sync_error(self, action: str, name: str, error: Exception) -> SchedulerSyncError:
        return SchedulerSyncError(
            f"EventBridge Scheduler could not {action} schedule {self.group_name}/{name}: "
            f"{describe_aws_error(error)}"
        )
