"""Every deployed function runs because something invokes it, and every schedule has one owner.

A function nothing triggers is code that never runs in production (and whose failures nobody
sees); the test reads each environment's synthesized templates, not the constructs, so whatever
CDK adds (custom resource providers) is held to the same rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tagcompliance.schedules import DAILY_SNAPSHOT_NAME

from .conftest import STACK_KINDS, Synthesized


def _arn_of(value: Any) -> str | None:
    """The logical id ``value`` names by ``{"Fn::GetAtt": [id, "Arn"]}`` (or ``Ref``), else None."""
    if isinstance(value, dict):
        get_att = value.get("Fn::GetAtt")
        if isinstance(get_att, list) and len(get_att) == 2 and get_att[1] == "Arn":
            return str(get_att[0])
        if isinstance(value.get("Ref"), str):
            return str(value["Ref"])
    return None


def _trigger_references(resource: dict[str, Any]) -> Iterator[tuple[Any, str]]:
    """(a value that may name a function, the kind of trigger) of one resource."""
    kind = resource["Type"]
    props = resource.get("Properties", {})
    if kind == "AWS::StepFunctions::StateMachine":
        for value in props.get("DefinitionSubstitutions", {}).values():
            yield value, "state machine"
    elif kind == "AWS::Scheduler::Schedule":
        yield props["Target"]["Arn"], "schedule"
    elif kind == "AWS::Events::Rule":
        for rule_target in props.get("Targets", []):
            yield rule_target["Arn"], "EventBridge rule"
    elif kind == "AWS::Lambda::EventSourceMapping":
        yield props["FunctionName"], "event source mapping"
    elif kind == "AWS::SNS::Subscription" and props.get("Protocol") == "lambda":
        yield props["Endpoint"], "SNS subscription"
    elif kind.startswith("Custom::") or kind == "AWS::CloudFormation::CustomResource":
        yield props.get("ServiceToken"), "custom resource"


def _triggers(resources: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(function logical id, the kind of trigger) for every trigger in one template."""
    for resource in resources.values():
        for value, trigger in _trigger_references(resource):
            if target := _arn_of(value):
                yield target, trigger


def test_every_function_is_the_target_of_something(synth: Synthesized) -> None:
    for kind in STACK_KINDS:
        resources = synth.template(kind).to_json().get("Resources", {})
        functions = {
            logical_id for logical_id, r in resources.items() if r["Type"] == "AWS::Lambda::Function"
        }
        triggered = {target for target, _ in _triggers(resources)}
        orphans = sorted(functions - triggered)
        assert not orphans, f"{synth.env} {kind}: functions nothing invokes: {orphans}"


def test_every_pipeline_handler_is_triggered_and_the_trigger_kinds_are_the_expected_ones(
    synth: Synthesized,
) -> None:
    resources = synth.template("pipeline").to_json()["Resources"]
    by_function: dict[str, set[str]] = {}
    for target, trigger in _triggers(resources):
        by_function.setdefault(target, set()).add(trigger)
    handlers = {
        resources[logical_id]["Properties"]["Handler"]: by_function.get(logical_id, set())
        for logical_id in synth.resources("pipeline", "AWS::Lambda::Function")
        if "Handler" in resources[logical_id]["Properties"]
    }
    assert handlers["services.scheduler.handlers.sync_handler"] == {"schedule"}
    assert handlers["services.scheduler.handlers.run_finished_handler"] == {"EventBridge rule"}
    scanners = {h: kinds for h, kinds in handlers.items() if h.startswith("services.scanners.")}
    assert scanners and all(kinds == {"state machine"} for kinds in scanners.values()), scanners


def test_the_daily_snapshot_schedule_is_not_also_defined_by_cloudformation(synth: Synthesized) -> None:
    """One owner: the sync function writes the daily snapshot (tests/infra/test_pipeline.py)."""
    for kind in STACK_KINDS:
        for schedule in synth.resources(kind, "AWS::Scheduler::Schedule").values():
            assert schedule["Properties"]["Name"] != DAILY_SNAPSHOT_NAME
