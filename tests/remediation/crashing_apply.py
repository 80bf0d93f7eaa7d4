"""A process that applies a tag remediation and is killed mid-run (``test_crash_recovery``).

It plans and runs the change set through the product's own code against the test moto server and
SQLite store given on the command line, and stops where a crash hurts most: the first write request
has reached AWS but its outcome is not yet journaled. It prints ``written <remediation_id>`` there and
waits to be killed (SIGKILL: nothing in the product gets to clean up).

Run: ``python -m tests.remediation.crashing_apply ENDPOINT DATA_DIR CHANGES_JSON``
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from tag_compliance_mcp.runtime import build_runtime
from tagcompliance.requests import ApplyRemediationRequest
from tagcompliance.safety.tokens import Caller
from tagcompliance.tagging.service import TagRemediation

from .conftest import settings_for


def main() -> None:
    endpoint, data_dir, changes = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
    runtime = build_runtime(settings_for(endpoint, data_dir), "memory")

    def crash_before_journaling(remediation_id: str, outcomes: Any, at: Any) -> None:
        print(f"written {remediation_id}", flush=True)
        while True:  # the test kills the process here
            time.sleep(1)

    runtime.store.record_item_outcomes = crash_before_journaling  # type: ignore[method-assign]
    remediation = TagRemediation(runtime.service)
    plan = remediation.plan_apply(ApplyRemediationRequest(changes=changes))
    remediation.execute(plan, Caller(user_id="local:crash-test"))


if __name__ == "__main__":
    main()
