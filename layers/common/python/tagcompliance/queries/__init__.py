"""The questions the service answers, one module each.

Every function takes the ``ComplianceService`` (policy, scope and snapshots) as its first
argument; ``ComplianceService`` binds them as its methods, so callers see one facade.
"""
