"""Fixtures shared by the whole test suite.

``demo_aws`` is the demo AWS (``services.demo.aws.start_demo_aws(seed=7)``): a moto server on
127.0.0.1 holding the demo estate, with Cost Explorer answering from the estate's definition. It
starts once per test session (about 10 s) and stops at its end.

While it runs it sets ``MOTO_PORT`` and ``MOTO_EC2_LOAD_DEFAULT_AMIS=false`` in ``os.environ``
(restored on stop) and nothing else global: ``AWS_ENDPOINT_URL`` is NOT set. To point the product
at it, use ``monkeypatch.setenv`` with each item of ``demo_aws.environment``, or pass
``demo_aws.endpoint_url`` explicitly; ``demo_aws.client(service, region)`` gives a ready client.

It is shared: a test that changes resources must call ``demo_aws.reset_and_reseed()`` before it
ends (ARNs change then, so read ``demo_aws.arns`` when needed rather than caching it), and a test
that changes ``demo_aws.cost_model.page_size`` must restore it. moto keeps its state per process,
so an in-process ``moto.mock_aws()`` in the same session would reset the demo estate.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from botocore.exceptions import ClientError
from psycopg import sql

from services.demo.aws import DemoAws, start_demo_aws

# The real services of the development and CI machines (.ci/services.sh starts them).
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_TEST_URL = "redis://127.0.0.1:6379/15"


def postgres_url_for(database: str, password: str | None = None) -> str:
    credentials = "postgres" if password is None else f"postgres:{password}"
    return f"postgresql://{credentials}@127.0.0.1:5432/{database}"


@pytest.fixture(scope="session")
def demo_aws() -> Iterator[DemoAws]:
    demo = start_demo_aws(seed=7)
    try:
        yield demo
    finally:
        demo.stop()


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty database for this test run, dropped afterwards: the server's data is left alone."""
    name = f"tagcompliance_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.fail(
            f"The tests need PostgreSQL at {POSTGRES_ADMIN_URL}; it is unreachable: {error}",
            pytrace=False,
        )
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield postgres_url_for(name)
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url


def create_organization(org: Any) -> bool:
    """Create moto's organization with the credentials' account as its management account; False
    when there already is one (then whoever created it deletes it)."""
    try:
        org.create_organization(FeatureSet="ALL")
    except ClientError as error:
        if error.response["Error"]["Code"] != "AlreadyInOrganizationException":
            raise
        return False
    return True


@contextmanager
def tag_policies_in_organization(
    org: Any, account_id: str, documents: list[tuple[str, dict[str, Any]]]
) -> Iterator[tuple[list[str], str]]:
    """Tag policies created in moto's Organizations (the organization too, if there is none), the
    first attached to ``account_id``; yields (policy ids, root id) and removes everything it made."""
    created_organization = create_organization(org)
    root_id = org.list_roots()["Roots"][0]["Id"]
    try:
        org.enable_policy_type(RootId=root_id, PolicyType="TAG_POLICY")
    except ClientError as error:
        if error.response["Error"]["Code"] != "PolicyTypeAlreadyEnabledException":
            raise
    policy_ids = [
        org.create_policy(
            Content=json.dumps(document), Description=f"test {name} tag policy", Name=name, Type="TAG_POLICY"
        )["Policy"]["PolicySummary"]["Id"]
        for name, document in documents
    ]
    org.attach_policy(PolicyId=policy_ids[0], TargetId=account_id)
    try:
        yield policy_ids, root_id
    finally:
        org.detach_policy(PolicyId=policy_ids[0], TargetId=account_id)
        for policy_id in policy_ids:
            org.delete_policy(PolicyId=policy_id)
        if created_organization:
            org.delete_organization()
