"""Prompts for the spec's common flows: a monthly compliance review and unattributable spend.

Each is the user's request in words, naming the tools in the order the flow uses them, so a client
that lists prompts (a slash command) starts the flow with its scope stated rather than guessed.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer


def register(mcp: MCPServer) -> None:
    @mcp.prompt(title="Monthly compliance review")
    def monthly_compliance_review(regions: str = "all", resource_types: str = "all") -> str:
        """Score, trend, worst patterns and a report for the month, in that order."""
        return (
            f"Review this month's tag compliance for resource types {resource_types} in regions {regions}. "
            "1. check_tag_compliance for that scope: the score, failed shards and the top patterns. "
            "2. get_violation_history (days_back=30, group_by='week'): is it improving? "
            "3. detect_tag_drift for the same scope: required tags removed or changed. "
            "4. generate_compliance_report (markdown) and give me its link. "
            "Lead with the decision (what to fix first), state the scope of every figure, and name what "
            "could not be read."
        )

    @mcp.prompt(title="Unattributable spend")
    def unattributable_spend(start_date: str = "", end_date: str = "", resource_types: str = "all") -> str:
        """Spend that cannot be attributed to a cost center, and the resources behind it."""
        period = f"from {start_date} to {end_date}" if start_date and end_date else "(ask me for the period)"
        return (
            f"How much spend {period} cannot be attributed, for resource types {resource_types}? "
            "1. get_cost_attribution_gap for that period: the headline gap and its method. "
            "2. find_untagged_resources for the same types: the top patterns of missing tags. "
            "3. For the largest pattern, suggest_tags on one example resource. "
            "Say which figures are estimates, and ask before anything that costs money or writes."
        )
