"""The cache port and its two adapters: Redis when ``REDIS_URL`` is set, in-memory otherwise."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

if TYPE_CHECKING:
    from .settings import Settings

logger = logging.getLogger(__name__)


class Cache(Protocol):
    backend: str

    def get(self, key: str) -> Any | None:
        """The JSON value stored under ``key``, or None when absent or expired."""
        ...

    def set(self, key: str, value: Any, ttl_seconds: int) -> None:
        """Store a JSON-serialisable value; ``ttl_seconds`` <= 0 stores nothing."""
        ...

    def delete(self, key: str) -> None: ...

    def increment(self, key: str, ttl_seconds: int) -> int | None:
        """Add one to the counter under ``key`` and return the new count; the first increment starts
        its ``ttl_seconds`` life, later ones do not extend it (a fixed window). None when the backend
        cannot answer (Redis down)."""
        ...

    def decrement(self, key: str) -> int | None:
        """Take one from the counter under ``key`` (a count of things in progress, released as each
        ends) and return the new count; at zero the counter is removed. None when the backend cannot
        answer."""
        ...

    def ping(self) -> bool: ...


def scan_cache_key(
    kind: str,
    account_id: str,
    regions: Iterable[str],
    resource_types: Iterable[str],
    policy_digest: str,
    *extra: str,
) -> str:
    """A key that changes whenever the account, scope or policy changes."""
    scope = json.dumps(
        [account_id, sorted(set(regions)), sorted(set(resource_types)), policy_digest, list(extra)],
        separators=(",", ":"),
    )
    return f"tagcompliance:{kind}:{hashlib.sha256(scope.encode()).hexdigest()[:32]}"


def _to_json(value: Any) -> str:
    # Both adapters hold JSON text: values come back as fresh copies with the same types
    # (tuples become lists) whichever backend served them.
    return json.dumps(value, separators=(",", ":"))


class MemoryCache:
    """An in-process cache: thread-safe, with per-entry expiry and a bound on its size (LRU)."""

    backend = "memory"

    def __init__(self, max_entries: int = 1024) -> None:
        self._entries: OrderedDict[str, tuple[float, str]] = OrderedDict()  # key -> (expires at, JSON)
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self.fallback_reason: str | None = None  # why Redis is not in use, when it was asked for

    def get(self, key: str) -> Any | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires_at, payload = entry
            if time.monotonic() >= expires_at:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
        return json.loads(payload)

    def set(self, key: str, value: Any, ttl_seconds: int) -> None:
        if ttl_seconds <= 0:
            return
        payload = _to_json(value)
        with self._lock:
            self._entries[key] = (time.monotonic() + ttl_seconds, payload)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def delete(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def increment(self, key: str, ttl_seconds: int) -> int | None:
        with self._lock:
            now = time.monotonic()
            entry = self._entries.get(key)
            if entry is None or now >= entry[0]:
                expires_at, count = now + max(ttl_seconds, 1), 1
            else:
                expires_at, count = entry[0], int(json.loads(entry[1])) + 1
            self._entries[key] = (expires_at, str(count))
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return count

    def decrement(self, key: str) -> int | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or time.monotonic() >= entry[0]:
                self._entries.pop(key, None)
                return 0
            count = int(json.loads(entry[1])) - 1
            if count <= 0:
                del self._entries[key]
            else:
                self._entries[key] = (entry[0], str(count))
        return max(count, 0)

    def ping(self) -> bool:
        return True


K = TypeVar("K")
V = TypeVar("V")


class ObjectLRU(Generic[K, V]):
    """Live objects kept in this process (never serialised), bounded by count and by total weight.

    For values that are expensive to rebuild and never change once built, such as an evaluated
    snapshot: snapshots are immutable, so an entry never goes stale, it only ages out (least
    recently used first) when the bounds are reached. Thread-safe.
    """

    def __init__(self, max_entries: int, max_weight: int) -> None:
        if max_entries < 1 or max_weight < 1:
            raise ValueError("max_entries and max_weight must be at least 1")
        self._entries: OrderedDict[K, tuple[int, V]] = OrderedDict()
        self._max_entries = max_entries
        self._max_weight = max_weight
        self._weight = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: K, value: V, weight: int = 1) -> bool:
        """Keep ``value``; False (and nothing kept) when it alone outweighs the bound."""
        weight = max(1, weight)
        if weight > self._max_weight:
            return False
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._weight -= previous[0]
            self._entries[key] = (weight, value)
            self._weight += weight
            while len(self._entries) > self._max_entries or self._weight > self._max_weight:
                _, (dropped, _) = self._entries.popitem(last=False)
                self._weight -= dropped
        return True

    def discard(self, key: K) -> None:
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._weight -= previous[0]

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def weight(self) -> int:
        return self._weight


@dataclass(frozen=True, slots=True)
class _Served:
    value: Any


DECREMENT_SCRIPT = """
local count = redis.call('DECR', KEYS[1])
if count <= 0 then redis.call('DEL', KEYS[1]) return 0 end
return count
"""


class RedisCache:
    """Redis through redis-py. A Redis that goes away is never an error: calls are served from an
    in-memory cache meanwhile, and Redis is tried again with exponential backoff.

    Keys written or deleted during the outage are deleted from Redis when it answers again, so an
    entry Redis kept from before cannot come back stale; then the in-memory entries are dropped.
    """

    backend = "redis"

    def __init__(
        self,
        url: str,
        socket_timeout_seconds: float = 0.5,
        retry_after_seconds: float = 30.0,
        first_retry_seconds: float = 0.5,
    ) -> None:
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout_seconds,
            socket_connect_timeout=socket_timeout_seconds,
            # One quick retry covers a pooled connection that a Redis restart closed; redis-py's
            # default (10 retries with backoff) would stall every tool call while Redis is down.
            retry=Retry(NoBackoff(), retries=1),
        )
        options = self._client.connection_pool.connection_kwargs
        # Built from the parsed options rather than the URL, which may hold a password.
        address = options.get("path") or f"{options.get('host')}:{options.get('port')}"
        self.location = f"{address}/{options.get('db', 0)}"
        self.fallback_reason: str | None = None
        self._retry_after_seconds = retry_after_seconds  # the longest wait between two attempts
        self._first_retry_seconds = first_retry_seconds
        self._lock = threading.Lock()
        self._memory = MemoryCache()  # serves while Redis is down
        self._touched: set[str] = set()  # keys written or deleted while Redis was down
        self._failures = 0  # consecutive failed attempts: the backoff doubles with each
        self._down_since: float | None = None  # wall-clock time of the outage's first failure
        self._down_error: str | None = None
        self._unavailable_until: float | None = None  # while set, Redis is down: calls skip it until then
        self._decrement_script = self._client.register_script(DECREMENT_SCRIPT)

    @property
    def degraded_reason(self) -> str | None:
        """Why the cache is not Redis right now (for /health), or None while Redis answers."""
        with self._lock:
            if self._down_since is None:
                return None
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._down_since))
            return (
                f"Redis at {self.location} unavailable since {since} ({self._down_error}); serving from "
                f"the in-memory cache, reconnecting with backoff ({self._failures} failed attempts)"
            )

    def get(self, key: str) -> Any | None:
        payload = self._call(lambda: self._client.get(key), lambda: _Served(self._memory.get(key)))
        if isinstance(payload, _Served):  # from the in-memory cache: already decoded
            return payload.value
        return None if payload is None else json.loads(payload)

    def set(self, key: str, value: Any, ttl_seconds: int) -> None:
        if ttl_seconds <= 0:
            return
        payload = _to_json(value)  # outside _call: a value that is not JSON is the caller's bug
        self._call(
            lambda: self._client.set(key, payload, ex=ttl_seconds),  # SET EX: SETEX's modern form
            lambda: self._memory.set(key, value, ttl_seconds),
            touched=key,
        )

    def delete(self, key: str) -> None:
        self._call(lambda: self._client.delete(key), lambda: self._memory.delete(key), touched=key)

    def increment(self, key: str, ttl_seconds: int) -> int | None:
        def incr_and_expire() -> int:
            pipeline = self._client.pipeline(transaction=True)
            pipeline.incr(key)
            pipeline.expire(key, max(ttl_seconds, 1), nx=True)  # only the first increment sets it
            count, _ = pipeline.execute()
            return int(count)

        return self._call(incr_and_expire, lambda: self._memory.increment(key, ttl_seconds))

    def decrement(self, key: str) -> int | None:
        # One round trip, atomic: a counter that reaches zero (or expired meanwhile) is removed, never
        # left negative to grant extra room later.
        return self._call(
            lambda: int(self._decrement_script(keys=[key])), lambda: self._memory.decrement(key)
        )

    def ping(self) -> bool:
        try:
            return bool(self._client.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        self._client.close()

    def _call(
        self, operation: Callable[[], Any], fallback: Callable[[], Any], touched: str | None = None
    ) -> Any | None:
        """The operation's result from Redis, or the fallback's while Redis is unavailable."""
        with self._lock:
            waiting = self._unavailable_until is not None and time.monotonic() < self._unavailable_until
            if waiting and touched is not None:
                self._touched.add(touched)
        if waiting:
            return fallback()
        try:
            if self._unavailable_until is not None:
                self._recover()  # Redis is tried again: first forget what the outage changed
            result = operation()
        except redis.RedisError as error:
            self._failed(error, touched)
            return fallback()
        with self._lock:
            recovered = self._unavailable_until is not None
            self._unavailable_until = self._down_since = self._down_error = None
            self._failures = 0
        if recovered:
            self._memory = MemoryCache()
            logger.info("Redis cache at %s answers again", self.location)
        return result

    def _failed(self, error: redis.RedisError, touched: str | None) -> None:
        with self._lock:
            newly_down = self._down_since is None
            if newly_down:
                self._down_since, self._down_error = time.time(), str(error)
            if touched is not None:
                self._touched.add(touched)
            # Exponential backoff: a dead Redis must not add a timeout to every call.
            wait = min(self._retry_after_seconds, self._first_retry_seconds * 2**self._failures)
            self._failures += 1
            self._unavailable_until = time.monotonic() + wait
        if newly_down:
            logger.warning(
                "Redis cache at %s is unavailable (%s); serving from the in-memory cache until it answers",
                self.location,
                error,
            )

    def _recover(self) -> None:
        """Delete from Redis the keys changed during the outage (raises RedisError if still down)."""
        with self._lock:
            touched = sorted(self._touched)
        for start in range(0, len(touched), 500):
            self._client.delete(*touched[start : start + 500])
        with self._lock:
            self._touched.difference_update(touched)


def open_cache(settings: Settings) -> Cache:
    """Redis when ``REDIS_URL`` is set and answers PING, the in-memory cache otherwise.

    A set but unreachable Redis falls back to memory with a warning: a cache is an optimisation,
    so the server still starts. ``fallback_reason`` on the returned cache says why, for /health.
    """
    if not settings.redis_url:
        return MemoryCache()
    try:
        redis_cache = RedisCache(settings.redis_url)
    except ValueError as error:  # redis-py's message names the problem, not the URL (it may hold a password)
        reason = f"REDIS_URL is not a valid Redis URL ({error}); using the in-memory cache instead"
    else:
        if redis_cache.ping():
            return redis_cache
        redis_cache.close()
        reason = f"Redis at {redis_cache.location} did not answer PING; using the in-memory cache instead"
    logger.warning(reason)
    fallback = MemoryCache()
    fallback.fallback_reason = reason
    return fallback
