"""The deployable adapters over the core: the MCP gateway, the Lambda handlers and the demo."""
