"""Agent safety: estimates, intent disambiguation, intent commits with confirmation tokens,
thresholds, dry runs, the intent belief log and regret prediction. Plain Python, no MCP imports:
the gateway (``services/mcp_gateway/safety.py``) adapts it to tools."""

from .estimates import CostExplorerEstimate, ScopeEstimate, estimate_cost_explorer, estimate_scope

__all__ = ["CostExplorerEstimate", "ScopeEstimate", "estimate_cost_explorer", "estimate_scope"]
