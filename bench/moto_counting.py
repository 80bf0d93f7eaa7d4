"""A moto server that counts, at the server, every AWS request it serves; and fast estate seeding.

``CountingMotoServer`` is moto's ``ThreadedMotoServer`` with its WSGI application wrapped in
``RequestCounter``: each request is keyed by the service (from the SigV4 credential scope) and the
action (``X-Amz-Target``, the query/form ``Action``, or for REST protocols the method, path and
query keys, resolved to the operation name afterwards with botocore's service model). The product
under test reaches it only over HTTP, exactly as it reaches AWS.

``seed_backends`` creates resources directly in moto's in-process backends (the server runs in this
process and serves the same backends): seeding 50,000 resources through boto3 over HTTP takes
~10 ms a resource here, far beyond the benchmark's time budget. The scan itself always goes over HTTP.
"""

from __future__ import annotations

import io
import logging
import re
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import botocore.session
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from .common import ACCOUNT_ID

_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")
RawKey = tuple[str, str, str, str, tuple[str, ...]]  # service, kind, action-or-method, path, query keys


class RequestCounter:
    """WSGI middleware: counts each request by service and action; ``/moto-api`` is not counted."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._counts: Counter[RawKey] = Counter()
        self._seconds: dict[RawKey, float] = {}  # time moto spent answering, per key

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/moto-api"):
            return self.app(environ, start_response)
        key = self._key(environ, path)
        with self._lock:
            self._counts[key] += 1
        started = time.perf_counter()
        try:
            return self.app(environ, start_response)
        finally:
            spent = time.perf_counter() - started
            with self._lock:
                self._seconds[key] = self._seconds.get(key, 0.0) + spent

    @staticmethod
    def _key(environ: dict[str, Any], path: str) -> RawKey:
        match = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        service = match.group(2) if match else "unsigned"
        target = environ.get("HTTP_X_AMZ_TARGET")
        if target:
            return (service, "action", target.rsplit(".", 1)[-1], "", ())
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        if "Action" in query:
            return (service, "action", query["Action"][0], "", ())
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "POST" and "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
            action = parse_qs(body.decode("utf-8", "replace")).get("Action")
            if action:
                return (service, "action", action[0], "", ())
        return (service, "rest", method, path, tuple(sorted(k for k in query if k != "x-id")))

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._seconds.clear()

    def raw_seconds(self) -> dict[RawKey, float]:
        with self._lock:
            return dict(self._seconds)

    def raw_counts(self) -> Counter[RawKey]:
        with self._lock:
            return Counter(self._counts)


class CountingMotoServer(ThreadedMotoServer):
    """``ThreadedMotoServer`` whose application is wrapped in a ``RequestCounter``."""

    def __init__(self, port: int = 0) -> None:
        super().__init__(ip_address="127.0.0.1", port=port, verbose=False)
        self.counter: RequestCounter | None = None

    def _server_entry(self) -> None:
        self.counter = RequestCounter(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            self._ip_address, self._port, self.counter, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()

    @property
    def endpoint_url(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"

    def reset_backends(self) -> None:
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()


def start_counting_server() -> CountingMotoServer:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = CountingMotoServer()
    server.start()
    assert server.counter is not None
    return server


# --- naming: raw keys -> "service:Operation" -------------------------------------------------

_SIGNING_TO_CLIENT = {"elasticfilesystem": "efs", "tagging": "resourcegroupstaggingapi"}
_models: dict[str, Any] = {}


def _service_model(signing_name: str) -> Any | None:
    if signing_name not in _models:
        session = botocore.session.get_session()
        try:
            _models[signing_name] = session.get_service_model(
                _SIGNING_TO_CLIENT.get(signing_name, signing_name)
            )
        except Exception:
            _models[signing_name] = None
    return _models[signing_name]


def _rest_operation(signing_name: str, method: str, path: str, query_keys: tuple[str, ...]) -> str:
    model = _service_model(signing_name)
    fallback = f"{method} {path}"
    if model is None:
        return fallback
    segments = [s for s in path.split("/") if s]
    best, best_score = None, -1
    for name in model.operation_names:
        http = model.operation_model(name).http
        if http.get("method") != method:
            continue
        uri_path, _, uri_query = http.get("requestUri", "/").partition("?")
        template = [s for s in uri_path.split("/") if s]
        greedy = bool(template) and template[-1].endswith("+}")
        if len(template) != len(segments) and not (greedy and len(segments) >= len(template)):
            continue
        if any(not t.startswith("{") and t != s for t, s in zip(template, segments, strict=False)):
            continue
        wanted = {
            part.split("=", 1)[0] for part in uri_query.split("&") if part and not part.startswith("x-id")
        }
        if not wanted <= set(query_keys):
            continue
        score = len(wanted) * 10 + sum(1 for t in template if not t.startswith("{"))
        if score > best_score:
            best, best_score = name, score
    return best or fallback


def named_seconds(raw: dict[RawKey, float]) -> dict[str, float]:
    """Seconds moto spent answering, per ``service:Operation`` (summed over concurrent requests)."""
    named: Counter[str] = Counter()
    for (service, kind, action, path, query_keys), seconds in raw.items():
        operation = action if kind == "action" else _rest_operation(service, action, path, query_keys)
        named[f"{service}:{operation}"] += seconds
    return {name: round(value, 3) for name, value in named.most_common()}


def named_counts(raw: Counter[RawKey]) -> Counter[str]:
    """Requests per ``service:Operation``."""
    named: Counter[str] = Counter()
    for (service, kind, action, path, query_keys), count in raw.items():
        operation = action if kind == "action" else _rest_operation(service, action, path, query_keys)
        named[f"{service}:{operation}"] += count
    return named


# --- seeding straight into the backends ---------------------------------------------------------

BENCH_TYPES: tuple[str, ...] = (
    "ec2:volume",
    "ec2:snapshot",
    "s3:bucket",
    "sqs:queue",
    "sns:topic",
    "dynamodb:table",
    "secretsmanager:secret",
    "ecs:cluster",
    "elasticache:cluster",
    "elasticfilesystem:file-system",
)
_GOOD = {"CostCenter": "CC-1001", "Owner": "team@example.com", "Environment": "production"}
# One profile per index modulo 10: 20% never tagged, 40% compliant, 40% with one defect.
_PROFILES: tuple[dict[str, str] | None, ...] = (
    None,
    None,
    _GOOD,
    {**_GOOD, "Project": "bench"},
    _GOOD,
    {**_GOOD, "Name": "bench"},
    {k: v for k, v in _GOOD.items() if k != "Owner"},
    {**_GOOD, "Environment": "prod"},
    {"costcenter": "CC-1001", "Owner": "team@example.com", "Environment": "production"},
    {**_GOOD, "Owner": "John Smith"},
)


@dataclass(frozen=True)
class SeededEstate:
    regions: tuple[str, ...]
    types: tuple[str, ...]
    counts: dict[tuple[str, str], int]  # (region, type) -> resources
    tagged: dict[tuple[str, str], int]  # (region, type) -> resources carrying at least one tag

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _backend(service: str, region: str) -> Any:
    from moto.backends import get_backend

    return get_backend(service)[ACCOUNT_ID][region]  # type: ignore[index]


def _kv(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _seed_one(
    resource_type: str, region: str, name: str, tags: dict[str, str] | None, state: dict[str, Any]
) -> None:
    if resource_type == "ec2:volume":
        ec2 = _backend("ec2", region)
        volume = ec2.create_volume(size=1, zone_name=f"{region}a")
        if tags:
            ec2.create_tags([volume.id], tags)
    elif resource_type == "ec2:snapshot":
        ec2 = _backend("ec2", region)
        if "source" not in state:
            state["source"] = ec2.create_volume(size=1, zone_name=f"{region}a").id
        snapshot = ec2.create_snapshot(state["source"], name)
        if tags:
            ec2.create_tags([snapshot.id], tags)
    elif resource_type == "s3:bucket":
        s3 = _backend("s3", "global")
        s3.create_bucket(name, region)
        if tags:
            s3.put_bucket_tagging(name, tags)
    elif resource_type == "sqs:queue":
        _backend("sqs", region).create_queue(name, tags=dict(tags) if tags else None)
    elif resource_type == "sns:topic":
        _backend("sns", region).create_topic(name, tags=dict(tags) if tags else None)
    elif resource_type == "dynamodb:table":
        _backend("dynamodb", region).create_table(
            name,
            schema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            throughput=None,
            attr=[{"AttributeName": "pk", "AttributeType": "S"}],
            global_indexes=None,
            indexes=None,
            streams=None,
            billing_mode="PAY_PER_REQUEST",
            sse_specification=None,
            tags=_kv(tags) if tags else [],
            deletion_protection_enabled=False,
            warm_throughput=None,
        )
    elif resource_type == "secretsmanager:secret":
        _backend("secretsmanager", region).create_secret(
            name=name,
            secret_string="bench",
            secret_binary=None,
            description=None,
            tags=_kv(tags) if tags else None,
            kms_key_id=None,
            client_request_token=None,
            replica_regions=[],
            force_overwrite=False,
        )
    elif resource_type == "ecs:cluster":
        _backend("ecs", region).create_cluster(
            name, tags=[{"key": k, "value": v} for k, v in tags.items()] if tags else None
        )
    elif resource_type == "elasticache:cluster":
        backend = _backend("elasticache", region)
        arguments: dict[str, Any] = dict.fromkeys(_CACHE_CLUSTER_PARAMETERS)
        arguments.update(
            cache_cluster_id=name[:50],
            num_cache_nodes=1,
            cache_node_type="cache.t3.micro",
            engine="redis",
            tags=_kv(tags) if tags else [],
            **{key: [] for key in _CACHE_CLUSTER_LISTS},
        )
        backend.create_cache_cluster(**arguments)
    elif resource_type == "elasticfilesystem:file-system":
        _backend("efs", region).create_file_system(
            creation_token=name,
            performance_mode="generalPurpose",
            encrypted=False,
            kms_key_id=None,
            throughput_mode="bursting",
            provisioned_throughput_in_mibps=None,
            availability_zone_name=None,
            backup=False,
            tags=_kv(tags) if tags else [],
        )
    else:
        raise ValueError(f"no seeder for {resource_type}")


_CACHE_CLUSTER_LISTS = (
    "preferred_availability_zones",
    "cache_security_group_names",
    "security_group_ids",
    "snapshot_arns",
    "preferred_outpost_arns",
    "log_delivery_configurations",
    "cache_node_ids_to_remove",
    "cache_node_ids_to_reboot",
)


def _cache_cluster_parameters() -> tuple[str, ...]:
    import inspect

    from moto.elasticache.models import ElastiCacheBackend

    return tuple(
        p for p in inspect.signature(ElastiCacheBackend.create_cache_cluster).parameters if p != "self"
    )


_CACHE_CLUSTER_PARAMETERS = _cache_cluster_parameters()


def seed_backends(total: int, regions: Iterable[str], types: Iterable[str] = BENCH_TYPES) -> SeededEstate:
    """``total`` resources spread evenly over regions and types, created in moto's backends."""
    region_list, type_list = tuple(regions), tuple(types)
    shards = [(region, resource_type) for region in region_list for resource_type in type_list]
    counts: dict[tuple[str, str], int] = {}
    tagged: dict[tuple[str, str], int] = {}
    for index, shard in enumerate(shards):
        counts[shard] = total // len(shards) + (1 if index < total % len(shards) else 0)
    for (region, resource_type), count in counts.items():
        state: dict[str, Any] = {}
        short = resource_type.split(":")[1].replace("-", "")[:5]
        with_tags = 0
        for index in range(count):
            tags = _PROFILES[index % len(_PROFILES)]
            with_tags += tags is not None
            _seed_one(resource_type, region, f"bench-{short}-{region}-{index:06d}", tags, state)
        if "source" in state:  # the snapshots' scratch volume is not part of the estate
            _backend("ec2", region).delete_volume(state["source"])
        tagged[(region, resource_type)] = with_tags
    return SeededEstate(region_list, type_list, counts, tagged)
