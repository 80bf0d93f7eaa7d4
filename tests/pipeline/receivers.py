"""A local Slack incoming-webhook stand-in (127.0.0.1) and SES's record of sent emails in moto."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from moto.ses.models import ses_backends


@dataclass
class SlackReceiver:
    """Records every POST; paths listed in ``failing`` answer 500 (a broken webhook)."""

    base_url: str = ""
    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def slack_receiver() -> Iterator[SlackReceiver]:
    receiver = SlackReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with receiver.lock:
                receiver.posts.append((self.path, json.loads(body or b"{}")))
            status = 500 if self.path in receiver.failing else 200
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok" if status == 200 else b"invalid_token")

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def sent_emails(account_id: str, region: str) -> list[dict[str, Any]]:
    """The emails moto's SES recorded as sent (the moto server runs in this process)."""
    backend = ses_backends[account_id][region]
    return [
        {
            "source": message.source,
            "destinations": message.destinations,
            "subject": message.subject,
            "body": message.body,
        }
        for message in backend.sent_messages
    ]
