r"""Cloud Custodian (c7n) policies that find, and optionally fix, the resources violating the tagging policy.

One policy per registry resource type selects exactly what the compliance engine
(``compliance.evaluate``) reports for that type: its filter is one ``or`` block over every
(required tag applying to the type) x (requested violation type), each clause restating the
engine's rule for that pair:

``missing_tag``
    the exact key is absent and no key equal to it case-insensitively has a non-blank value, or
    the exact key has a blank (empty or whitespace) value;
``wrong_key_case``
    the exact key is absent and a key equal to it case-insensitively has a non-blank value;
``invalid_value``
    the exact key has a non-blank value that is not one of ``allowed_values``; when an allowed value
    holds a ``*`` wildcard (any sequence of characters, as ``RequiredTag.value_allowed`` reads it),
    the list becomes one anchored, case-sensitive regex (``allowed_values_regex``) instead of a
    literal ``not-in`` list, which would take "team-*" for the value "team-*" only;
``invalid_format``
    the exact key has a non-blank value (one of ``allowed_values`` when they are set: otherwise it
    is an invalid_value) that does not wholly match ``validation_regex``;
``prohibited_tag``
    a prohibited key is present (exact case). Prohibited tags are not required tags, so
    ``target_tags`` does not restrict them.

c7n behaviour the clauses rely on (c7n 0.9.53, ``c7n/filters/core.py``):

* ``{"tag:K": "absent"}`` matches when no tag has exactly the key ``K``; keys compare case-sensitively.
* ``op: regex`` matches case-INsensitively; ``op: regex-case`` is used so values compare as the
  engine compares them. Both use ``re.match`` (anchored at the start only), so a policy regex is
  wrapped as ``(?:REGEX)\Z`` to require a whole-value match like the engine's ``fullmatch``.
* ``value_type: normalize`` strips (and lowercases) the value before comparing, and leaves an
  absent one None: with ``value: empty`` it matches an absent, empty or whitespace value, with
  ``value: not-null`` a non-blank one, as the engine's ``value.strip()`` decides.
* ``op: not-in`` treats an absent key as a value not in the list, so it is guarded by "the key
  has a non-blank value" unless missing_tag and wrong_key_case are requested too (their clause
  selects those resources anyway).
* ``tag_key_transforms: [lower]`` lowercases the resource's tag keys before the lookup, so
  ``tag:owner`` with it finds ``Owner``, ``OWNER``, ``oWnEr`` ...: the case-insensitive key
  lookup wrong_key_case needs, for every variant rather than a list of guessed ones. Limitation:
  c7n uses the first tag whose lowered key matches, the engine the last one, so a resource
  carrying two case variants of a key (one blank, one not) can be classified differently.

Dry run (the default) produces report-only policies (no actions): ``custodian run`` writes what
each policy selects to ``OUTPUT/POLICY/resources.json``. Otherwise a ``tag`` policy per tag with a
caller-given placeholder value fills that tag where it is missing (its filter is exactly the
missing_tag clause, so an existing non-blank value is never overwritten), and the per-type policy
keeps the remaining violations, marking them with ``mark-for-op`` when ``mark_for_op_days`` is
given. No tag value is ever invented.

One module per part; this package re-exports the entry point and its result models (the c7n
constants are in ``models``, the filter builders in ``filters``).
"""

from .generator import generate_custodian_policies
from .models import MODES, CustodianPolicies, Mode, SkippedType

__all__ = ["MODES", "CustodianPolicies", "Mode", "SkippedType", "generate_custodian_policies"]
