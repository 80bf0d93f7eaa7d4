"""Remediation artefacts generated from the tagging policy: Cloud Custodian policies (``custodian``).

Pure generators: no AWS calls and no dependency on the tools that run what they produce.
"""
