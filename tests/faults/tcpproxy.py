"""A TCP proxy on loopback that injects network faults between the product and a real server.

The fault suite puts it in front of moto, PostgreSQL and Redis: the product connects to the proxy's
port, the proxy forwards to the real server, and a test switches the proxy's mode while traffic flows:

- ``forward``: bytes pass both ways (optionally after ``delay`` seconds per chunk);
- ``blackhole``: connections are accepted and whatever arrives is swallowed, nothing ever answers
  (what a dead route or a stuck load balancer looks like to a client);
- ``refuse``: new connections are closed at once (what a stopped server looks like);
- ``cut()``: every open connection is closed now, whatever the mode.

It runs in daemon threads of the test process and binds 127.0.0.1 on a free port.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from typing import Literal

Mode = Literal["forward", "blackhole", "refuse"]


class TCPProxy:
    """Forward 127.0.0.1:<port> to ``target``, with faults switchable at run time."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode: Mode = "forward"
        self.delay = 0.0
        self.accepted = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="tcpproxy", daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> TCPProxy:
        self._thread.start()
        return self

    def set_mode(self, mode: Mode, *, delay: float = 0.0) -> None:
        self.mode = mode
        self.delay = delay

    def cut(self) -> None:
        """Close every open connection (both sides), as a network reset would."""
        with self._lock:
            sockets, self._open = self._open, set()
        for sock in sockets:
            _close(sock)

    def stop(self) -> None:
        self._stopped.set()
        _close(self._listener)
        self.cut()
        self._thread.join(timeout=5)

    def __enter__(self) -> TCPProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _track(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._open.update(sockets)

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            if self.mode == "refuse":
                _close(client)
                continue
            self._track(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        if self.mode == "blackhole":
            _swallow(client)
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            _close(client)
            return
        upstream.settimeout(None)
        self._track(upstream)
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        try:
            while not self._stopped.is_set():
                for key, _ in selector.select(timeout=0.5):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = source.recv(65536)
                    if not data:
                        return
                    if self.mode == "blackhole":
                        continue
                    if self.delay:
                        time.sleep(self.delay)
                    key.data.sendall(data)
        except (OSError, ValueError):
            return
        finally:
            selector.close()
            _close(client)
            _close(upstream)


def _swallow(sock: socket.socket) -> None:
    """Read and drop everything until the peer gives up; never answer."""
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass
    finally:
        _close(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
