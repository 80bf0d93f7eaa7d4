"""The deployable adapters over the core, one directory each: the Lambda handlers (scanners,
scheduler), the demo, and the MCP gateway, whose directory ``mcp_gateway`` is the package
``tag_compliance_mcp`` (pyproject's package-dir mapping; it refuses to be imported from here).

Only the gateway is in the wheel. This package is imported from the repository root (tests, the CDK
app, ``python -m services.demo``) and, for the handlers, from the Lambda function code asset.
"""
