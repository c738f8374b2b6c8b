"""Slow clients cannot take the service: thousands of them hold nothing for long, and the server
itself cuts each one off (a deadline, not only more capacity).

Three kinds, 2,000 connections each, all at once against one real server: a request head that
never ends, a body that never arrives (``POST /v3/auth/tokens`` announcing 60,000 bytes and
sending one), and an idle keep-alive connection after a complete request. Meanwhile a fresh
client keeps downloading the certificate, each on a new connection, each within a second.
"""

from __future__ import annotations

import resource
import selectors
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from support.server import CsscertServer, ServerFactory

PER_KIND = 2000
CUT_WITHIN = 30.0  # seconds: the server's deadlines are 10 s by default


@pytest.fixture(scope="module")
def limited(make_server: ServerFactory) -> CsscertServer:
    return make_server()


@pytest.fixture
def descriptors() -> Iterator[None]:
    """Room for 6,000 client sockets in this process (the server raises its own limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 3 * PER_KIND + 512
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"the hard limit of open files ({hard}) is below {wanted}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _open(port: int, first_bytes: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(first_bytes)
    sock.setblocking(False)
    return sock


def _partial_head(server: CsscertServer) -> bytes:
    path = f"/v1.0/{server.project_id}/cer/download"
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Auth-Token: gAAAA".encode()


def _slow_body() -> bytes:
    return (
        b"POST /v3/auth/tokens HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 60000\r\n\r\n{"
    )


def _idle_keep_alive() -> bytes:
    return b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


class Watcher:
    """Reads every slow socket until the server closes it; records when that happened."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.opened: dict[int, tuple[str, float]] = {}
        self.closed: dict[int, float] = {}
        self.replies: dict[int, bytes] = {}

    def add(self, kind: str, sock: socket.socket) -> None:
        self.opened[sock.fileno()] = (kind, time.monotonic())
        self.selector.register(sock, selectors.EVENT_READ, kind)

    def run(self, until: float) -> None:
        while self.selector.get_map() and time.monotonic() < until:
            for key, _ in self.selector.select(timeout=0.2):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(65536)
                except (ConnectionResetError, BlockingIOError) as exc:
                    if isinstance(exc, BlockingIOError):
                        continue
                    data = b""
                fd = sock.fileno()
                if data:
                    self.replies[fd] = self.replies.get(fd, b"") + data
                    continue
                self.closed[fd] = time.monotonic()
                self.selector.unregister(sock)
                sock.close()

    def close_all(self) -> None:
        for key in list(self.selector.get_map().values()):
            self.selector.unregister(key.fileobj)
            key.fileobj.close()  # type: ignore[union-attr]


def test_thousands_of_slow_connections_neither_block_downloads_nor_outlive_their_deadline(
    limited: CsscertServer, admin_token: str, descriptors: None
) -> None:
    token = limited.token()
    watcher = Watcher()
    latencies: list[float] = []
    failures: list[str] = []
    stop = threading.Event()

    def fresh_client() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                # A new connection every time: it must get a slot and an answer now.
                response = httpx.get(limited.download_url(), headers={"X-Auth-Token": token}, timeout=1.0)
                if response.status_code != 200:
                    failures.append(f"status {response.status_code}")
            except httpx.HTTPError as exc:
                failures.append(f"{type(exc).__name__} after {time.monotonic() - started:.2f}s")
            latencies.append(time.monotonic() - started)
            stop.wait(0.1)

    try:
        for _ in range(PER_KIND):
            watcher.add("partial-head", _open(limited.port, _partial_head(limited)))
            watcher.add("slow-body", _open(limited.port, _slow_body()))
            watcher.add("keep-alive", _open(limited.port, _idle_keep_alive()))
        opened_at = time.monotonic()
        client = threading.Thread(target=fresh_client)
        client.start()
        watcher.run(until=opened_at + CUT_WITHIN + 5)
        stop.set()
        client.join()
    finally:
        stop.set()
        watcher.close_all()

    assert not failures, failures[:10]
    assert len(latencies) >= 20 and max(latencies) < 1.0, (len(latencies), max(latencies, default=None))
    still_open = {fd: kind for fd, (kind, _) in watcher.opened.items() if fd not in watcher.closed}
    assert not still_open, f"{len(still_open)} slow connections were never closed by the server"
    for fd, (kind, at) in watcher.opened.items():
        assert watcher.closed[fd] - at < CUT_WITHIN, (kind, watcher.closed[fd] - at)
    # The slow bodies were answered in the Keystone shape before the server hung up.
    slow = [fd for fd, (kind, _) in watcher.opened.items() if kind == "slow-body"]
    answered = [watcher.replies.get(fd, b"") for fd in slow]
    assert all(reply.startswith(b"HTTP/1.1 408") for reply in answered), answered[:3]
    assert all(b'"code":408' in reply for reply in answered), answered[:1]
