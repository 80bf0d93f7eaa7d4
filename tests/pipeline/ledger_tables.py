"""Ledger tables for tests: created from the ledger's own schema with TTL on, dropped afterwards.

Deployed, the CDK stack creates the table; this is test code, so it stays out of the Lambda layer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import boto3

from tagcompliance.audits.ledger import TTL_ATTRIBUTE, DynamoLedger


@contextmanager
def ledger_table(
    table_name: str, region: str, endpoint_url: str | None, **options: int
) -> Iterator[DynamoLedger]:
    ledger = DynamoLedger(table_name, region, endpoint_url, **options)
    row = ledger.row_model
    row.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
    boto3.client("dynamodb", region_name=region, endpoint_url=endpoint_url).update_time_to_live(
        TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
    )
    try:
        yield ledger
    finally:
        if row.exists():
            row.delete_table()
