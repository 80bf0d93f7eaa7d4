"""Remediation artefacts generated from the tagging policy and its violations.

``custodian``: Cloud Custodian policies (spec tool 9); ``openops``: OpenOps workflows (spec tool 10).
Pure generators: no AWS calls and no dependency on the tools that run what they produce.
"""
