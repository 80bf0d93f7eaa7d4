"""A moto server in its own process for the remediation tests, with two real faults it can be told
to inject while it serves: it counts every request by service, operation and region (at the server,
as AWS would see them), and it can refuse the tag writes of chosen regions the way a service control
policy denying ``tag:TagResources`` there does (HTTP 400 ``AccessDeniedException``), or throttle the
next tag writes (HTTP 400 ``ThrottlingException``, as the Tagging API answers past its rate).

Its own process, because moto keeps its state per process: the session's shared demo estate stays
untouched, and a test can kill the gateway-side process while this one keeps the written tags.

Run: ``python -m tests.remediation.aws_server PORT``; control: ``POST /_faults/deny-writes``
``{"regions": [...]}``, ``POST /_faults/throttle`` ``{"count": N}``, ``GET /_faults/requests`` (``{"service:Operation@region": count}``),
``POST /_faults/reset-counts``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections import Counter
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from bench.moto_counting import RequestCounter, named_counts

_REGION = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/")
WRITE_TARGETS = frozenset({"TagResources", "UntagResources"})


class FaultyAws:
    def __init__(self) -> None:
        self.app = DomainDispatcherApplication(create_backend_app)
        self.lock = threading.Lock()
        self.counts: Counter[tuple[Any, ...]] = Counter()
        self.denied: set[str] = set()
        self.throttle = 0  # the next this many tag writes are answered ThrottlingException

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_faults/"):
            return self._control(path, environ, start_response)
        if path.startswith("/moto-api"):
            return self.app(environ, start_response)
        match = _REGION.search(environ.get("HTTP_AUTHORIZATION", ""))
        region = match.group(1) if match else ""
        key = RequestCounter._key(environ, path)
        writing = key[1] == "action" and key[2] in WRITE_TARGETS
        with self.lock:
            self.counts[(region, *key)] += 1
            denied = region in self.denied
            throttled = writing and self.throttle > 0
            if throttled:
                self.throttle -= 1
        if throttled:
            body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
            start_response("400 Bad Request", [("Content-Type", "application/x-amz-json-1.1")])
            return [body]
        if denied and writing:
            body = json.dumps(
                {
                    "__type": "AccessDeniedException",
                    "message": f"User is not authorized to perform: tag:{key[2]} in {region} "
                    "with an explicit deny in a service control policy",
                }
            ).encode()
            start_response("400 Bad Request", [("Content-Type", "application/x-amz-json-1.1")])
            return [body]
        return self.app(environ, start_response)

    def _control(self, path: str, environ: dict[str, Any], start_response: Any) -> Any:
        if path == "/_faults/deny-writes":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            regions = json.loads(environ["wsgi.input"].read(length) or b"{}").get("regions") or []
            with self.lock:
                self.denied = set(regions)
            payload: Any = {"denied": sorted(regions)}
        elif path == "/_faults/throttle":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            count = int(json.loads(environ["wsgi.input"].read(length) or b"{}").get("count") or 0)
            with self.lock:
                self.throttle = count
            payload = {"throttle": count}
        elif path == "/_faults/reset-counts":
            with self.lock:
                self.counts.clear()
            payload = {}
        else:
            with self.lock:
                raw = Counter(self.counts)
            by_region: dict[str, Counter[Any]] = {}
            for (region, *key), count in raw.items():
                by_region.setdefault(region, Counter())[tuple(key)] += count
            payload = {
                f"{name}@{region}": count
                for region, counts in by_region.items()
                for name, count in named_counts(counts).items()
            }
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(payload).encode()]


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = int(sys.argv[1])
    server = make_server("127.0.0.1", port, FaultyAws(), True, request_handler=MotoRequestHandler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
