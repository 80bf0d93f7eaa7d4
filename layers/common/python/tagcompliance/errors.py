"""Errors the core raises on purpose. Adapters turn them into clear messages, never tracebacks."""

from __future__ import annotations


class TagComplianceError(Exception):
    """Base class: the message is written for the person who called the tool."""


class InvalidInputError(TagComplianceError, ValueError):
    """An argument, ARN or configuration value is wrong; the message says which and why."""


class PolicyError(InvalidInputError):
    """The tagging policy file is malformed; the message names the field."""


class ResourceNotFoundError(TagComplianceError):
    """The resource an ARN names does not exist in the scanned account and region."""


class StoreError(TagComplianceError):
    """The database could not be read or written."""
