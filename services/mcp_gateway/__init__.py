"""The MCP gateway: tool adapters over the domain core, served over stdio or streamable HTTP.

The directory is ``services/mcp_gateway`` (the design card's layout); the package is
``tag_compliance_mcp`` (pyproject's package-dir mapping), the one name it is installed and imported by.
"""

# From the repository root the directory is also reachable by its own dotted path (services, then
# mcp_gateway): a second import under that name would load every module twice (two settings, two
# registries of tools). The message avoids spelling that path, which the rename script rewrites.
if __name__ != "tag_compliance_mcp":
    raise ImportError(
        f"the MCP gateway is the package tag_compliance_mcp, not {__name__}: import tag_compliance_mcp "
        "(run `tag-compliance-mcp` or `python -m tag_compliance_mcp`; `pip install -e .` maps it)"
    )
