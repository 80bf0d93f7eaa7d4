"""Tag remediation that writes: plan a change set (the exact per-resource diff, checked against AWS's
limits and the policy), journal it, write it through the Resource Groups Tagging API or the type's own
API, and undo it. Used by the gateway's ``apply_tag_remediation`` and ``undo_tag_remediation``.

- ``rules``: what a change may not do (``aws:`` keys, AWS's limits, prohibited tags, rejected values).
- ``reads``: the current tags of named resources.
- ``plan``: ``ChangePlan`` from explicit changes, from suggestions, or to undo a remediation.
- ``writer``: the writes, 20 ARNs a request per region, with backoff on throttling.
- ``journal``: runs a plan with its journal (written first), recovers interrupted runs.
"""
