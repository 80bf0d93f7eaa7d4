"""AWS-side fault injection for the pipeline tests: answer chosen API calls with a throttling error.

Registered on a boto3 session's ``before-call`` event, so the SDK's own retries are bypassed
(as when they are exhausted) and the scanner sees what a persistently throttled API returns.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _HttpResponse:
    status_code: int
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b""
    text: str = ""
    raw: Any = None


@dataclass
class Throttle:
    """Throttle ``service.operation`` in ``region`` the next ``times`` calls (None: always)."""

    region: str
    times: int | None
    calls: int = 0
    throttled: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, context: dict[str, Any] | None = None, **_: Any) -> Any:
        if (context or {}).get("client_region") != self.region:
            return None
        with self.lock:
            self.calls += 1
            if self.times is not None and self.throttled >= self.times:
                return None
            self.throttled += 1
        parsed = {
            "Error": {"Code": "Throttling", "Message": "Rate exceeded"},
            "ResponseMetadata": {"HTTPStatusCode": 400, "HTTPHeaders": {}},
        }
        return _HttpResponse(400), parsed


def install_throttle(session: Any, service: str, operation: str, throttle: Throttle) -> None:
    session.events.register(f"before-call.{service}.{operation}", throttle)


@dataclass
class DenyAssumeRole:
    """Refuse ``sts:AssumeRole`` into one account (of every role, or of ``role_name`` only), as a
    missing role or trust policy does."""

    account_id: str
    role_name: str = ""
    denied: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, params: dict[str, Any] | None = None, **_: Any) -> Any:
        # ``params`` is the serialized request: for STS's query protocol, the body holds RoleArn.
        body = (params or {}).get("body") or {}
        role_arn = str(body.get("RoleArn", "")) if isinstance(body, dict) else str(body)
        if f":iam::{self.account_id}:role/{self.role_name}" not in role_arn:
            return None
        if self.role_name and not role_arn.endswith(f":role/{self.role_name}"):
            return None
        with self.lock:
            self.denied += 1
        parsed = {
            "Error": {"Code": "AccessDenied", "Message": "not authorized to perform: sts:AssumeRole"},
            "ResponseMetadata": {"HTTPStatusCode": 403, "HTTPHeaders": {}},
        }
        return _HttpResponse(403), parsed


@dataclass
class AllowAssumeRoleOnly:
    """Refuse ``sts:AssumeRole`` into every account but ``allowed`` (accounts whose audit role is
    not deployed yet, as in an organization being onboarded)."""

    allowed: frozenset[str]
    denied: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, params: dict[str, Any] | None = None, **_: Any) -> Any:
        body = str((params or {}).get("body", ""))
        if any(f":iam::{account}:role/" in body for account in self.allowed):
            return None
        with self.lock:
            self.denied += 1
        parsed = {
            "Error": {"Code": "AccessDenied", "Message": "not authorized to perform: sts:AssumeRole"},
            "ResponseMetadata": {"HTTPStatusCode": 403, "HTTPHeaders": {}},
        }
        return _HttpResponse(403), parsed
