"""Saved CloudWatch Logs Insights queries: an operator's questions, answered from the JSON log lines
(``tagcompliance.observability.logs``) and the gateway's per-call events (``event = "tool_call"``,
``services/mcp_gateway/callevents.py``).

Every query is saved under the folder ``<prefix>`` (``tag-compliance-<env>``): Logs Insights lists
its saved queries by folder, and the dashboard's "Saved Logs Insights queries" text widget names them.
The README's operations section shows each query's text (``tests/unit/test_docs.py`` keeps it equal).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_logs as logs
from constructs import Construct

# "One run's story" cannot take a parameter: the operator pastes the id over this before running it.
ID_PLACEHOLDER = "PASTE-RUN-OR-CORRELATION-ID"


@dataclass(frozen=True)
class SavedQuery:
    title: str
    question: str
    fields: tuple[str, ...]
    filters: tuple[str, ...]
    stats: str | None = None
    sort: str | None = None
    limit: int = 100
    pipeline_too: bool = False  # the Lambdas' log groups besides the gateway's

    def query_string(self) -> logs.QueryString:
        return logs.QueryString(
            fields=list(self.fields),
            filter_statements=list(self.filters),
            stats_statements=[self.stats] if self.stats else None,
            sort=self.sort,
            limit=self.limit,
        )

    @property
    def text(self) -> str:
        return str(self.query_string().to_string())


SAVED_QUERIES = (
    SavedQuery(
        title="Calls and errors per user",
        question="Which users' calls failed (or were refused), and how many calls each made",
        fields=("user", "oauth_client", "outcome"),
        filters=('event = "tool_call"',),
        stats="count(*) as calls, sum(ToolErrors) as errors, max(duration_ms) as slowest_ms "
        "by user, oauth_client",
        sort="errors desc",
    ),
    SavedQuery(
        title="Slowest tools",
        question="Which tools are slowest (95th percentile), with their call counts",
        fields=("tool", "duration_ms"),
        filters=('event = "tool_call"',),
        stats="count(*) as calls, avg(duration_ms) as avg_ms, pct(duration_ms, 95) as p95_ms, "
        "max(duration_ms) as max_ms by tool",
        sort="p95_ms desc",
    ),
    SavedQuery(
        title="One run's story",
        question="Everything that happened for one audit run or tool call, gateway and Lambdas, in order "
        f"(replace {ID_PLACEHOLDER} with a run_id or a correlation_id)",
        fields=("@timestamp", "service", "function_name", "level", "message", "tool", "outcome", "batch_id"),
        filters=(f'run_id = "{ID_PLACEHOLDER}" or correlation_id = "{ID_PLACEHOLDER}"',),
        sort="@timestamp asc",
        limit=1000,
        pipeline_too=True,
    ),
    SavedQuery(
        title="Refused tokens",
        question="Calls refused for a confirmation token or a missing OAuth scope: who, which tool, why",
        fields=("@timestamp", "user", "oauth_client", "tool", "refused", "error"),
        filters=('event = "tool_call"', 'outcome = "refused"'),
        sort="@timestamp desc",
    ),
)


def query_name(prefix: str, query: SavedQuery) -> str:
    """The saved query's name: ``<prefix>/<title>`` (the part before "/" is its folder)."""
    return f"{prefix}/{query.title}"


class LogQueries(Construct):
    """The saved queries over the gateway's log group (and the Lambdas' where ``pipeline_too``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        prefix: str,
        gateway_logs: logs.ILogGroup,
        pipeline_logs: list[logs.ILogGroup],
    ) -> None:
        super().__init__(scope, construct_id)
        self.names = [query_name(prefix, query) for query in SAVED_QUERIES]
        self.definitions: dict[str, logs.QueryDefinition] = {}
        for query, name in zip(SAVED_QUERIES, self.names, strict=True):
            construct = "".join(word.capitalize() for word in query.title.replace("'", "").split())
            self.definitions[query.title] = logs.QueryDefinition(
                self,
                construct,
                query_definition_name=name,
                query_string=query.query_string(),
                log_groups=[gateway_logs, *(pipeline_logs if query.pipeline_too else [])],
            )

    def markdown(self) -> str:
        """The dashboard's text widget: where the queries are and what each answers."""
        lines = [
            "## Saved Logs Insights queries",
            "CloudWatch > Logs Insights > Saved queries (Queries tab), folder "
            f"**{self.names[0].split('/', 1)[0]}**:",
        ]
        lines += [f"* **{query.title}**: {query.question}." for query in SAVED_QUERIES]
        return "\n".join(lines)
