"""The MCP Bundle's entry point (manifest.json ``server.entry_point``).

The host runs it with ``uv run`` in the unpacked bundle, whose pyproject.toml installs the gateway and
its dependencies for the user's platform; it serves stdio like ``tag-compliance-mcp``.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

# The variables manifest.json sets from user_config. A field the user left empty arrives as an empty
# string (or, from a host that does not substitute it, as the placeholder itself): either means
# "not configured", so the setting's default applies (the default credential chain, AWS_REGION, the
# policy in the data folder) instead of an empty profile name or an empty path.
USER_CONFIG_VARIABLES = ("AWS_PROFILE", "SCAN_REGIONS", "POLICY_PATH")


def drop_unconfigured(environ: MutableMapping[str, str]) -> None:
    for name in USER_CONFIG_VARIABLES:
        value = environ.get(name)
        if value is not None and (not value.strip() or value.startswith("${user_config.")):
            del environ[name]


def main() -> None:
    drop_unconfigured(os.environ)
    # Imported only now: importing the gateway already reads the AWS configuration (botocore).
    from tag_compliance_mcp.__main__ import run

    run()


if __name__ == "__main__":
    main()
