"""The MCP tools by area; each module's ``register(mcp, deps)`` adds its tools to the server."""
