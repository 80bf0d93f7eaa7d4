"""``python -m operations.bundle [OUTPUT]``: validate and pack the Claude Desktop bundle."""

from __future__ import annotations

import sys
from pathlib import Path

from . import BundleError, build_bundle, default_output


def main(argv: list[str]) -> int:
    output = Path(argv[0]) if argv else default_output()
    try:
        built = build_bundle(output)
    except BundleError as error:
        print(error, file=sys.stderr)
        return 1
    print(built)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
