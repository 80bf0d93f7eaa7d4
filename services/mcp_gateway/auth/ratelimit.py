"""Per-IP rate limits on the authorization server's open endpoints (``/register``, ``/authorize``,
``/token``): ``AUTH_RATE_LIMIT_PER_MINUTE`` requests per endpoint and client address per minute,
counted in the cache (Redis when configured, so every gateway task shares the count; memory
otherwise). An IPv6 client is counted per /64, the smallest block one subscriber usually holds.

Behind a load balancer the client address is the one uvicorn takes from ``X-Forwarded-For``, which
it trusts only from ``FORWARDED_ALLOW_IPS`` (uvicorn's setting): without it every request would
seem to come from the load balancer.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tagcompliance.cache import Cache

logger = logging.getLogger("tagcompliance.gateway.auth")
WINDOW_SECONDS = 60

Handler = Callable[[Request], Awaitable[Response]]


def client_address_key(host: str | None) -> str:
    """The unit a limit counts: the IPv4 address, or the IPv6 /64 network."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class RateLimiter:
    def __init__(self, cache: Cache, per_minute: int) -> None:
        self.cache = cache
        self.per_minute = per_minute

    def limited(self, endpoint: str, handler: Handler) -> Handler:
        """``handler`` behind the limit: a request over it gets 429 with ``Retry-After``."""

        async def guarded(request: Request) -> Response:
            now = time.time()
            window = int(now // WINDOW_SECONDS)
            address = client_address_key(request.client.host if request.client else None)
            key = f"oauth:rate:{endpoint}:{address}:{window}"
            count = await anyio.to_thread.run_sync(self.cache.increment, key, WINDOW_SECONDS)
            # None: Redis is down; the endpoints stay open rather than locking every user out.
            if count is not None and count > self.per_minute:
                if count == self.per_minute + 1:
                    logger.warning("rate limit reached on %s for %s", endpoint, address)
                retry_after = WINDOW_SECONDS - int(now % WINDOW_SECONDS)
                return JSONResponse(
                    {
                        "error": "temporarily_unavailable",
                        "error_description": f"more than {self.per_minute} requests a minute to {endpoint} "
                        "from this address; try again later",
                    },
                    status_code=429,
                    headers={"Retry-After": str(retry_after), "Cache-Control": "no-store"},
                )
            return await handler(request)

        return guarded
