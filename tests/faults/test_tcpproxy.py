"""The fault proxy itself: each mode does to a real TCP conversation what the fault suite relies on."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from tests.faults.tcpproxy import TCPProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def echo_server() -> Iterator[tuple[str, int]]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address  # type: ignore[misc]
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(echo_server: tuple[str, int]) -> Iterator[TCPProxy]:
    with TCPProxy(*echo_server) as running:
        yield running


def _connect(proxy: TCPProxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=2)


def _closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(16) == b""
    except ConnectionResetError:
        return True


def test_forward_passes_bytes_both_ways(proxy: TCPProxy) -> None:
    with _connect(proxy) as sock:
        sock.sendall(b"ping")
        assert sock.recv(16) == b"ping"


def test_delay_holds_each_chunk(proxy: TCPProxy) -> None:
    proxy.set_mode("forward", delay=0.3)
    with _connect(proxy) as sock:
        started = time.monotonic()
        sock.sendall(b"ping")
        assert sock.recv(16) == b"ping"
        # one delay on the way in and one on the way back
        assert time.monotonic() - started >= 0.6


def test_blackhole_accepts_and_never_answers(proxy: TCPProxy) -> None:
    proxy.set_mode("blackhole")
    with _connect(proxy) as sock:
        sock.settimeout(0.5)
        sock.sendall(b"ping")
        with pytest.raises(TimeoutError):
            sock.recv(16)


def test_refuse_closes_new_connections(proxy: TCPProxy) -> None:
    proxy.set_mode("refuse")
    with _connect(proxy) as sock:
        assert _closed_by_peer(sock)


def test_cut_closes_open_connections_and_forwarding_resumes(proxy: TCPProxy) -> None:
    with _connect(proxy) as sock:
        sock.sendall(b"one")
        assert sock.recv(16) == b"one"
        proxy.cut()
        assert _closed_by_peer(sock)
    with _connect(proxy) as sock:
        sock.sendall(b"two")
        assert sock.recv(16) == b"two"
