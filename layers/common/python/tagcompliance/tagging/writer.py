"""The writes of a plan: per account and region, TagResources / UntagResources with up to 20 ARNs a
request (resources sharing the same tags, or keys, go together), and for a type whose tag set only its
own API can write (S3 buckets) the whole set: read it, merge the change, write it. Each account is
written with its own clients (``ClientsFor``: the credentials' own, or another account's remediation
role); an account whose role cannot be assumed (now, or when its credentials are refreshed) fails the
resources of that request with the reason, and the other accounts' writes go on.

Throttling: botocore's adaptive retries pace every request; a resource the Tagging API reports as
throttled in ``FailedResourcesMap`` is retried with exponential backoff. Any other failure fails the
resources of that request (one region refusing, or its circuit open, does not stop the others). A call
whose budget is spent (deadline, cancellation, shutdown) sends nothing more: the resources still to
write fail with that reason and the run ends normally, its journal complete. ``on_outcomes`` is told of
each request's outcomes as soon as it returns, so the journal follows the writes request by request.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from tagcompliance.aws import AssumeRoleError, AwsClients, describe_aws_error, error_code
from tagcompliance.resilience import CallStoppedError, CircuitOpenError
from tagcompliance.resources import REGISTRY, resource_id_from_arn

from .plan import TAGGING_API_BATCH, PlannedChange

THROTTLING_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
)
MAX_THROTTLE_RETRIES = 5

OnOutcomes = Callable[[list[tuple[str, str | None]]], None]  # [(arn, error or None)]
ClientsFor = Callable[[str], AwsClients]  # account id -> clients writing there (AssumeRoleError if none)


@dataclass(slots=True)
class WriteStats:
    requests: int = 0


class TagWriter:
    def __init__(self, clients_for: ClientsFor, sleep: Callable[[float], None] = time.sleep) -> None:
        self.clients_for = clients_for
        self.sleep = sleep
        self.stats = WriteStats()
        self.stopped: CallStoppedError | None = None

    def write(self, changes: Sequence[PlannedChange], on_outcomes: OnOutcomes) -> None:
        """Write every change; each resource's outcome (None = written) reaches ``on_outcomes`` once,
        after all of its requests (a resource both tagged and untagged reports after the second)."""
        errors: dict[str, list[str]] = defaultdict(list)
        remaining: dict[str, int] = defaultdict(int)  # arn -> requests still to come
        groups: dict[tuple[str, str, str, str], list[PlannedChange]] = defaultdict(list)
        whole_set: list[PlannedChange] = []
        for change in changes:
            if not change.writes:
                continue
            if REGISTRY[change.resource_type].tag_set_writer is not None:
                whole_set.append(change)
                continue
            if change.set_tags:
                key = (change.account_id, change.region, "set", json.dumps(sorted(change.set_tags.items())))
                groups[key].append(change)
                remaining[change.resource_arn] += 1
            if change.remove_keys:
                key = (change.account_id, change.region, "remove", json.dumps(sorted(change.remove_keys)))
                groups[key].append(change)
                remaining[change.resource_arn] += 1

        def done(results: list[tuple[str, str | None]]) -> None:
            finished: list[tuple[str, str | None]] = []
            for arn, error in results:
                if error:
                    errors[arn].append(error)
                remaining[arn] -= 1
                if remaining[arn] == 0:
                    finished.append((arn, "; ".join(errors[arn]) or None))
            if finished:
                on_outcomes(finished)

        for (account, region, action, _), members in sorted(groups.items(), key=lambda kv: kv[0]):
            for start in range(0, len(members), TAGGING_API_BATCH):
                batch = members[start : start + TAGGING_API_BATCH]
                done(self._tagging_api(account, region, action, batch))
        for change in whole_set:
            on_outcomes([(change.resource_arn, self._whole_set(change))])

    def _tagging_api(
        self, account: str, region: str, action: str, batch: list[PlannedChange]
    ) -> list[tuple[str, str | None]]:
        if self.stopped is not None:
            return [(change.resource_arn, _not_sent(self.stopped)) for change in batch]
        pending = [change.resource_arn for change in batch]
        try:
            client = self.clients_for(account).client("resourcegroupstaggingapi", region)
        except AssumeRoleError as error:
            return [(arn, _refused(error)) for arn in pending]
        failures: dict[str, str] = {}
        delay = 0.2
        for attempt in range(MAX_THROTTLE_RETRIES + 1):
            try:
                self.stats.requests += 1
                if action == "set":
                    response = client.tag_resources(ResourceARNList=pending, Tags=batch[0].set_tags)
                else:
                    response = client.untag_resources(ResourceARNList=pending, TagKeys=batch[0].remove_keys)
            except CallStoppedError as error:
                self.stopped = error
                failures.update(dict.fromkeys(pending, _not_sent(error)))
                break
            except AssumeRoleError as error:  # the role's credentials could not be refreshed
                failures.update(dict.fromkeys(pending, _refused(error)))
                break
            except (ClientError, BotoCoreError, CircuitOpenError) as error:
                if error_code(error) in THROTTLING_CODES and attempt < MAX_THROTTLE_RETRIES:
                    self.sleep(delay)
                    delay *= 2
                    continue
                operation = "TagResources" if action == "set" else "UntagResources"
                message = f"{operation} in {region}: {describe_aws_error(error)}"
                failures.update(dict.fromkeys(pending, message))
                break
            failed = response.get("FailedResourcesMap") or {}
            throttled = [arn for arn, info in failed.items() if info.get("ErrorCode") in THROTTLING_CODES]
            for arn, info in failed.items():
                if arn not in throttled:
                    failures[arn] = f"{info.get('ErrorCode')}: {info.get('ErrorMessage')}"
            if not throttled or attempt == MAX_THROTTLE_RETRIES:
                failures.update(dict.fromkeys(throttled, "throttled: retries exhausted"))
                break
            pending = throttled
            self.sleep(delay)
            delay *= 2
        return [(change.resource_arn, failures.get(change.resource_arn)) for change in batch]

    def _whole_set(self, change: PlannedChange) -> str | None:
        """Read the set as it is now, apply this change to it, write it back (the type's own API)."""
        if self.stopped is not None:
            return _not_sent(self.stopped)
        row = REGISTRY[change.resource_type]
        assert row.tag_reader is not None and row.tag_set_writer is not None
        resource_id = resource_id_from_arn(row, change.resource_arn)
        try:
            client = self.clients_for(change.account_id).client(row.tag_reader.client, change.region)
            self.stats.requests += 1
            tags = row.tag_reader.read(client, change.resource_arn, resource_id)
            for key in change.remove_keys:
                tags.pop(key, None)
            tags.update(change.set_tags)
            self.stats.requests += 1
            row.tag_set_writer(client, change.resource_arn, resource_id, tags)
        except CallStoppedError as error:
            self.stopped = error
            return _not_sent(error)
        except AssumeRoleError as error:
            return _refused(error)
        except (ClientError, BotoCoreError, CircuitOpenError) as error:
            return f"{row.id} tag set in {change.region}: {describe_aws_error(error)}"
        return None


def _refused(error: AssumeRoleError) -> str:
    return f"not written: account {error.account_id} refused: {error}"


def _not_sent(error: CallStoppedError) -> str:
    # Raised before a request is sent (or retried): an attempt already answered is not repeated.
    return f"not written: {error} (stopped before the request was sent; apply again for the rest)"
