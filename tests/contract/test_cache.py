"""The Cache contract, run against the in-memory cache and a real Redis (127.0.0.1:6379, db 15).

The Redis tests touch only keys under a prefix unique to the test and delete them afterwards:
the server may be shared, so nothing here flushes a database.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from tagcompliance.cache import MemoryCache, RedisCache, open_cache, scan_cache_key
from tagcompliance.settings import Settings

REDIS_ADDRESS = ("127.0.0.1", 6379)
REDIS_URL = "redis://127.0.0.1:6379/15"
UNREACHABLE_REDIS_URL = "redis://:hunter2@127.0.0.1:1/0"

Cache = MemoryCache | RedisCache


@pytest.fixture(scope="module")
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        pytest.fail(
            f"The cache contract tests need Redis at {REDIS_URL}; it is unreachable: {error}", pytrace=False
        )
    yield client
    client.close()


@pytest.fixture
def key_prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    prefix = f"tagcompliance-test:{os.getpid()}:{secrets.token_hex(4)}:"
    yield prefix
    if "redis_client" in request.fixturenames:
        client: redis.Redis = request.getfixturevalue("redis_client")
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)


@pytest.fixture(params=["memory", "redis"])
def cache(request: pytest.FixtureRequest, key_prefix: str) -> Iterator[Cache]:
    if request.param == "memory":
        yield MemoryCache()
        return
    request.getfixturevalue("redis_client")  # fails the test clearly when Redis is down
    redis_cache = RedisCache(REDIS_URL)
    yield redis_cache
    redis_cache.close()


def test_set_get_delete(cache: Cache, key_prefix: str) -> None:
    key = f"{key_prefix}report"

    assert cache.get(key) is None
    cache.set(key, {"score": 0.75}, ttl_seconds=60)
    assert cache.get(key) == {"score": 0.75}
    cache.set(key, {"score": 0.5}, ttl_seconds=60)
    assert cache.get(key) == {"score": 0.5}
    cache.delete(key)
    assert cache.get(key) is None
    cache.delete(key)  # deleting what is not there is fine
    assert cache.ping() is True


def test_values_round_trip_as_json(cache: Cache, key_prefix: str) -> None:
    value = {
        "text": "résumé ✓",
        "int": 12,
        "float": 0.1 + 0.2,
        "none": None,
        "flags": [True, False],
        "nested": {"by_type": {"ec2:instance": {"total": 3}}},
        "pair": ("us-east-1", 2),
    }
    cache.set(f"{key_prefix}value", value, ttl_seconds=60)
    cache.set(f"{key_prefix}list", [1, "two"], ttl_seconds=60)
    cache.set(f"{key_prefix}text", "plain", ttl_seconds=60)
    cache.set(f"{key_prefix}number", 42, ttl_seconds=60)

    loaded = cache.get(f"{key_prefix}value")
    assert loaded == {**value, "pair": ["us-east-1", 2]}  # JSON has no tuples
    loaded["nested"]["by_type"].clear()
    assert cache.get(f"{key_prefix}value")["nested"]["by_type"]  # a copy, not the cached object
    assert cache.get(f"{key_prefix}list") == [1, "two"]
    assert cache.get(f"{key_prefix}text") == "plain"
    assert cache.get(f"{key_prefix}number") == 42


@pytest.mark.parametrize("ttl_seconds", [0, -5])
def test_non_positive_ttl_stores_nothing(cache: Cache, key_prefix: str, ttl_seconds: int) -> None:
    cache.set(f"{key_prefix}never", {"a": 1}, ttl_seconds=ttl_seconds)

    assert cache.get(f"{key_prefix}never") is None


def test_entries_expire_after_their_ttl(cache: Cache, key_prefix: str) -> None:
    cache.set(f"{key_prefix}short", "soon gone", ttl_seconds=1)
    cache.set(f"{key_prefix}long", "still here", ttl_seconds=60)
    assert cache.get(f"{key_prefix}short") == "soon gone"

    time.sleep(1.1)

    assert cache.get(f"{key_prefix}short") is None
    assert cache.get(f"{key_prefix}long") == "still here"


def test_increment_counts_in_a_fixed_window(cache: Cache, key_prefix: str) -> None:
    key = f"{key_prefix}counter"
    assert [cache.increment(key, ttl_seconds=1) for _ in range(3)] == [1, 2, 3]
    assert cache.get(key) == 3  # a counter reads back as a number on both backends
    time.sleep(1.1)  # later increments did not extend the window: it ends 1 s after the first
    assert cache.increment(key, ttl_seconds=1) == 1


def test_increment_from_many_threads_loses_no_count(cache: Cache, key_prefix: str) -> None:
    key = f"{key_prefix}contended"
    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = list(pool.map(lambda _: cache.increment(key, ttl_seconds=60), range(200)))
    assert sorted(counts) == list(range(1, 201))


def test_decrement_releases_what_increment_counted(cache: Cache, key_prefix: str) -> None:
    key = f"{key_prefix}in-flight"
    assert [cache.increment(key, ttl_seconds=60) for _ in range(3)] == [1, 2, 3]
    assert [cache.decrement(key) for _ in range(3)] == [2, 1, 0]
    assert cache.get(key) is None  # at zero the counter is gone
    assert cache.decrement(key) == 0  # never negative: a release without a count grants no room
    assert cache.increment(key, ttl_seconds=60) == 1


def test_increments_and_decrements_from_many_threads_balance(cache: Cache, key_prefix: str) -> None:
    key = f"{key_prefix}balanced"

    def hold_and_release(_: int) -> int | None:
        cache.increment(key, ttl_seconds=60)
        return cache.decrement(key)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(hold_and_release, range(200)))
    assert cache.get(key) is None and cache.increment(key, ttl_seconds=60) == 1


def test_memory_cache_evicts_the_least_recently_used() -> None:
    cache = MemoryCache(max_entries=3)
    for key in ("a", "b", "c"):
        cache.set(key, key, ttl_seconds=60)
    cache.get("a")  # now "b" is the least recently used

    cache.set("d", "d", ttl_seconds=60)

    assert [cache.get(key) for key in ("a", "b", "c", "d")] == ["a", None, "c", "d"]


def test_memory_cache_is_safe_across_threads() -> None:
    cache = MemoryCache(max_entries=64)

    def hammer(worker: int) -> None:
        for n in range(500):
            key = f"k{(worker * 7 + n) % 100}"
            cache.set(key, {"worker": worker, "n": n}, ttl_seconds=60)
            value = cache.get(key)
            assert value is None or set(value) == {"worker", "n"}
            if n % 10 == 0:
                cache.delete(key)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(hammer, range(8)))

    assert sum(cache.get(f"k{n}") is not None for n in range(100)) <= 64


class RedisRelay:
    """A TCP relay to the test Redis that can drop all connections and refuse new ones, like an outage."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self._listener.getsockname()[1]}/15"
        self._lock = threading.Lock()
        self._up = True
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def go_down(self) -> None:
        with self._lock:
            self._up = False
            dropped, self._open = self._open, []
        for sock in dropped:
            _close(sock)

    def come_back(self) -> None:
        with self._lock:
            self._up = True

    def close(self) -> None:
        self.go_down()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed
            with self._lock:
                if not self._up:
                    _close(client)
                    continue
                server = socket.create_connection(REDIS_ADDRESS)
                self._open += [client, server]
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=_relay, args=(source, target), daemon=True).start()


def _relay(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    _close(source)
    _close(target)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv on it
    sock.close()


def test_redis_that_goes_away_mid_run_falls_back_to_memory_and_comes_back_clean(
    redis_client: redis.Redis, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    key, other = f"{key_prefix}survivor", f"{key_prefix}written-during-outage"
    relay = RedisRelay()
    cache = RedisCache(relay.url, retry_after_seconds=0)  # try Redis again at once, to see it come back
    try:
        cache.set(key, {"a": 1}, ttl_seconds=60)
        assert cache.get(key) == {"a": 1} and cache.degraded_reason is None

        relay.go_down()
        with caplog.at_level(logging.WARNING, logger="tagcompliance.cache"):
            assert cache.get(key) is None  # Redis's entries are out of reach: a miss, never an error
            cache.set(key, {"a": 2}, ttl_seconds=60)
            cache.set(other, "kept in memory", ttl_seconds=60)
            assert cache.get(key) == {"a": 2}  # the in-memory cache serves meanwhile
            assert cache.get(other) == "kept in memory"
            assert cache.increment(f"{key_prefix}counter", 60) == 1
            assert cache.ping() is False
        reason = cache.degraded_reason
        assert reason is not None and relay.url.split("//")[1] in reason and "in-memory" in reason
        warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
        assert len(warnings) == 1 and "unavailable" in warnings[0].getMessage()

        relay.come_back()
        # Back: the key written during the outage was deleted from Redis, so its old value {"a": 1}
        # does not come back stale; the in-memory entries are gone with the outage.
        assert cache.get(key) is None and cache.get(other) is None
        assert cache.degraded_reason is None
        assert redis_client.get(key) is None
        cache.set(key, {"a": 3}, ttl_seconds=60)
        assert redis_client.get(key) == b'{"a":3}'
    finally:
        cache.close()
        relay.close()


def test_redis_reconnects_with_exponential_backoff(key_prefix: str) -> None:
    relay = RedisRelay()
    cache = RedisCache(relay.url, retry_after_seconds=0.4, first_retry_seconds=0.1)
    attempts: list[float] = []
    try:
        relay.go_down()
        started = time.monotonic()
        while time.monotonic() - started < 1.5:
            before = cache.degraded_reason
            cache.get(f"{key_prefix}x")
            if cache.degraded_reason != before:  # a new failed attempt changes the count it reports
                attempts.append(round(time.monotonic() - started, 2))
            time.sleep(0.01)
        gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
        # Waits of 0.1, 0.2, 0.4, then capped at 0.4 s: a dead Redis is tried a handful of times,
        # not on every call (about 150 calls were made).
        assert 4 <= len(attempts) <= 7, attempts
        assert gaps[0] < gaps[1] < gaps[2] + 0.05 and all(gap <= 0.55 for gap in gaps), gaps
    finally:
        cache.close()
        relay.close()


def test_open_cache_uses_memory_when_no_redis_url_is_set() -> None:
    cache = open_cache(Settings(REDIS_URL=None))

    assert isinstance(cache, MemoryCache) and cache.backend == "memory"
    assert cache.fallback_reason is None


def test_open_cache_uses_a_reachable_redis(redis_client: redis.Redis) -> None:
    cache = open_cache(Settings(REDIS_URL=REDIS_URL))

    assert isinstance(cache, RedisCache) and cache.backend == "redis"
    assert cache.fallback_reason is None
    cache.close()


def test_open_cache_falls_back_to_memory_when_redis_is_unreachable(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tagcompliance.cache"):
        cache = open_cache(Settings(REDIS_URL=UNREACHABLE_REDIS_URL))

    assert isinstance(cache, MemoryCache) and cache.backend == "memory"
    assert cache.fallback_reason is not None and "127.0.0.1:1" in cache.fallback_reason
    assert "hunter2" not in cache.fallback_reason
    assert [record.getMessage() for record in caplog.records] == [cache.fallback_reason]


BASE_SCOPE = {
    "account_id": "123456789012",
    "regions": ["us-east-1", "eu-west-1"],
    "resource_types": ["ec2:instance", "s3:bucket"],
    "policy_digest": "digest-1",
}


@pytest.mark.parametrize(
    "change",
    [
        {"account_id": "210987654321"},
        {"regions": ["us-east-1"]},
        {"regions": ["us-east-1", "eu-west-1", "ap-south-1"]},
        {"resource_types": ["ec2:instance"]},
        {"policy_digest": "digest-2"},
    ],
)
def test_scan_cache_key_changes_with_the_scope(change: dict[str, object]) -> None:
    assert scan_cache_key("compliance", **{**BASE_SCOPE, **change}) != scan_cache_key(
        "compliance", **BASE_SCOPE
    )


def test_scan_cache_key_ignores_the_order_of_regions_and_types() -> None:
    reordered = {
        **BASE_SCOPE,
        "regions": list(reversed(BASE_SCOPE["regions"])),
        "resource_types": list(reversed(BASE_SCOPE["resource_types"])),
    }

    assert scan_cache_key("compliance", **reordered) == scan_cache_key("compliance", **BASE_SCOPE)
    assert scan_cache_key("compliance", **BASE_SCOPE).startswith("tagcompliance:compliance:")
