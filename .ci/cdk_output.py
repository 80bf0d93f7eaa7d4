"""Print one output of `cdk deploy --outputs-file`: the first whose key starts with a prefix.

CDK names an output of a nested construct by its path plus a hash (``GatewayUrl8F2A3C1E``), so
the deploy workflow asks by prefix: ``python3 .ci/cdk_output.py cdk-outputs.json GatewayUrl``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def find_output(outputs: dict[str, dict[str, str]], prefix: str) -> str:
    for stack_outputs in outputs.values():
        for key, value in stack_outputs.items():
            if key.startswith(prefix):
                return value
    known = sorted(key for stack_outputs in outputs.values() for key in stack_outputs)
    raise SystemExit(f"no stack output starts with {prefix!r}; the outputs are: {', '.join(known)}")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        raise SystemExit("usage: cdk_output.py OUTPUTS_FILE KEY_PREFIX")
    path, prefix = argv
    print(find_output(json.loads(Path(path).read_text(encoding="utf-8")), prefix))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
