"""The MCP gateway: tool adapters over the domain core, served over stdio or streamable HTTP."""
