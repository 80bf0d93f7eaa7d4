"""An HTTP proxy on loopback that stands between the product and moto and answers like a failing AWS.

The product reaches AWS through ``AWS_ENDPOINT_URL``, so every request of every service passes here.
The proxy reads each request's SigV4 credential scope (``Credential=AKID/date/REGION/SERVICE/...``)
to know which region and service it is for, and then, per its settings:

- forwards it to the real server (moto) and relays the answer;
- ``blackhole_regions``: reads a request for one of these regions and never answers (a dead
  regional endpoint: the client waits out its read timeout);
- ``throttle_half``: answers every other request of the same content (method, path, body) with
  the service's own throttling error, a real HTTP error answer in its protocol (EC2's
  ``RequestLimitExceeded``, S3's ``503 SlowDown``, the query services' ``Throttling``, the JSON
  services' ``ThrottlingException``), and forwards the other half. Alternating per request content,
  not globally, makes exactly half of the answers throttled while a retry of a throttled request
  always passes: the clean run's results must come back unchanged.

It runs in daemon threads of the test process, binds 127.0.0.1 on a free port, and counts what it did.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import re
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


def throttling_answer(service: str, content_type: str) -> tuple[int, dict[str, str], bytes]:
    """The throttling error a real AWS endpoint of ``service`` answers (status, headers, body)."""
    if service == "ec2":
        body = (
            "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded."
            "</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>"
        )
        return 400, {"Content-Type": "text/xml"}, body.encode()
    if service == "s3":
        body = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
        return 503, {"Content-Type": "application/xml"}, body.encode()
    if content_type.startswith("application/x-www-form-urlencoded"):  # the query protocol
        body = (
            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded"
            "</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>"
        )
        return 400, {"Content-Type": "text/xml"}, body.encode()
    body = '{"__type":"ThrottlingException","message":"Rate exceeded"}'
    return (
        400,
        {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": "ThrottlingException"},
        body.encode(),
    )


class AwsFaultProxy:
    """Forward 127.0.0.1:<port> to the AWS stand-in at ``target``, injecting AWS-shaped faults."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.blackhole_regions: set[str] = set()
        self.throttle_half = False
        self.counts: Counter[str] = Counter()  # "forwarded", "throttled", "blackholed", "region:<r>"
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._open: set[socket.socket] = set()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                return

            def setup(self) -> None:
                super().setup()
                with proxy._lock:
                    proxy._open.add(self.connection)

            def finish(self) -> None:
                with proxy._lock:
                    proxy._open.discard(self.connection)
                super().finish()

            def _handle(self) -> None:
                proxy._serve(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="awsproxy", daemon=True)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> AwsFaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and close every open connection: from now on connections are refused."""
        self._stopped.set()  # held (black-holed) requests end
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            sockets, self._open = self._open, set()
        for sock in sockets:  # kept-alive connections would otherwise go on being served
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def __enter__(self) -> AwsFaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def count(self, name: str) -> int:
        with self._lock:
            return self.counts[name]

    def _bump(self, *names: str) -> None:
        with self._lock:
            for name in names:
                self.counts[name] += 1

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        match = _SCOPE.search(handler.headers.get("Authorization") or "")
        region, service = match.groups() if match else ("", "")
        self._bump("requests", f"region:{region}")
        if region in self.blackhole_regions:
            self._bump("blackholed")
            self._stopped.wait()  # never answered while the proxy runs
            handler.close_connection = True
            return
        if self.throttle_half:
            # The region and service belong to the key: the same call for three regions has the same
            # method, path and body, and concurrent shards sharing one alternation could each be
            # throttled on every try.
            request = f"{region}\0{service}\0{handler.command}\0{handler.path}\0".encode() + body
            key = hashlib.sha256(request).hexdigest()
            with self._lock:
                self._seen[key] += 1
                throttle = self._seen[key] % 2 == 1  # the 1st, 3rd, ... time this request is sent
            if throttle:
                self._bump("throttled")
                status, headers, payload = throttling_answer(service, handler.headers.get("Content-Type", ""))
                self._answer(handler, status, headers, payload)
                return
        self._bump("forwarded")
        connection = http.client.HTTPConnection(*self.target, timeout=60)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP}
            headers["Content-Length"] = str(len(body))
            connection.request(handler.command, handler.path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            relayed = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP}
            self._answer(handler, response.status, relayed, payload, head=handler.command == "HEAD")
        finally:
            connection.close()

    @staticmethod
    def _answer(
        handler: BaseHTTPRequestHandler,
        status: int,
        headers: dict[str, str],
        payload: bytes,
        head: bool = False,
    ) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        if not head:
            handler.wfile.write(payload)
