"""AWS Organizations tag policies: convert them to our policy, fetch them, save them, detect one at start-up.

Conversion (``convert_tag_policy``) is pure. It reads a tag policy as AWS stores it (values under
``@@assign`` / ``@@append`` / ``@@remove``) or as ``DescribeEffectivePolicy`` returns it (plain
values), and accounts for every construct: what it maps to is in the policy, what it cannot map
is in ``warnings``. AWS's own notion of a required tag is ``report_required_tag_for``; a tag
without it is imported as optional. ``enforced_for`` (AWS blocks noncompliant tagging for those
types) is recorded on the tag and never makes it required.

AWS is reached only through a ``TagPolicySource``: ``OrganizationsTagPolicySource`` calls the
Organizations API with boto3; tests use an in-memory fake (moto lacks DescribeEffectivePolicy).


One module per part; this package re-exports their public names.
"""

from .conversion import (
    ALL_SUPPORTED,
    CHILD_OPERATOR_VALUES,
    OPERATORS_ALLOWED,
    TAG_FIELDS,
    TAG_POLICY,
    convert_tag_policy,
)
from .errors import (
    DETECTION_ACTIONS,
    EFFECTIVE_ACTIONS,
    IMPORT_ACTIONS,
    EffectivePolicyNotFoundError,
    NoTagPolicyError,
    OrganizationsNotInUseError,
    TagPolicyAccessDeniedError,
    TagPolicyNotFoundError,
    least_privilege_iam_policy,
)
from .files import DEFAULT_POLICY_FILENAME, resolve_output_path, write_policy_file
from .importer import import_tag_policy
from .organizations import (
    POLICY_ID_PATTERN,
    OrganizationsTagPolicySource,
    TagPolicySource,
    effective_tag_policy,
    fetch_tag_policy,
    list_tag_policies,
)
from .results import (
    ConversionResult,
    ConversionSummary,
    DetectionOutcome,
    DetectionSource,
    ImportResult,
    ImportStatus,
    TagPolicySummary,
)
from .startup import detect_policy_at_startup

__all__ = [
    "ALL_SUPPORTED",
    "CHILD_OPERATOR_VALUES",
    "DEFAULT_POLICY_FILENAME",
    "DETECTION_ACTIONS",
    "EFFECTIVE_ACTIONS",
    "IMPORT_ACTIONS",
    "OPERATORS_ALLOWED",
    "POLICY_ID_PATTERN",
    "TAG_FIELDS",
    "TAG_POLICY",
    "ConversionResult",
    "ConversionSummary",
    "DetectionOutcome",
    "DetectionSource",
    "EffectivePolicyNotFoundError",
    "ImportResult",
    "ImportStatus",
    "NoTagPolicyError",
    "OrganizationsNotInUseError",
    "OrganizationsTagPolicySource",
    "TagPolicyAccessDeniedError",
    "TagPolicyNotFoundError",
    "TagPolicySource",
    "TagPolicySummary",
    "convert_tag_policy",
    "detect_policy_at_startup",
    "effective_tag_policy",
    "fetch_tag_policy",
    "import_tag_policy",
    "least_privilege_iam_policy",
    "list_tag_policies",
    "resolve_output_path",
    "write_policy_file",
]
