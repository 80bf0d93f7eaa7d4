"""The audit state machine's definition, with its ``${...}`` substitutions filled in.

``statemachines/compliance_audit.asl.json`` is the single source: the CDK stack passes the same
names as ``definition_substitutions``; tests and local tools render it here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ASL_PATH = Path(__file__).resolve().parents[2] / "statemachines" / "compliance_audit.asl.json"

# Substitution name -> the handler (key of ``services.scanners.handlers.HANDLERS``) behind it.
FUNCTION_SUBSTITUTIONS = {
    "PlanFunctionArn": "plan",
    "ScanBatchFunctionArn": "scan-batch",
    "RecordBatchFailureFunctionArn": "record-batch-failure",
    "AggregateFunctionArn": "aggregate",
    "DetectDriftFunctionArn": "detect-drift",
    "NotifyFunctionArn": "notify",
    "RecordStepFailureFunctionArn": "record-step-failure",
    "ImportPolicyFunctionArn": "import-policy",
}
# The definition's placeholders other than the functions' ARNs (names not ending in ``FunctionArn``),
# each with what it holds; a new one must be listed and described here.
NON_FUNCTION_SUBSTITUTIONS: dict[str, str] = {
    "PlanBucketName": "the pipeline's bucket: each run's plan (ItemReader), the Map's results (ResultWriter)",
}
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def placeholders(text: str | None = None) -> set[str]:
    return set(_PLACEHOLDER.findall(text if text is not None else ASL_PATH.read_text(encoding="utf-8")))


def render_definition(substitutions: dict[str, str]) -> str:
    """The ASL with every ``${Name}`` replaced; a missing or unknown name is an error."""
    text = ASL_PATH.read_text(encoding="utf-8")
    wanted = placeholders(text)
    if missing := wanted - substitutions.keys():
        raise KeyError(f"definition substitutions missing: {sorted(missing)}")
    if unknown := substitutions.keys() - wanted:
        raise KeyError(f"definition has no placeholders named: {sorted(unknown)}")
    rendered = _PLACEHOLDER.sub(lambda match: substitutions[match.group(1)], text)
    json.loads(rendered)  # still valid JSON
    return rendered
