"""A flood of unique credentials must not grow the server: every cache a caller can fill (token
refusals, unknown access keys) is bounded, so memory levels off instead of following the flood.

The flood is sent over a few kept-alive raw HTTP/1.1 connections (an HTTP library would cost the
test more than the server), and the resident set of the one granian worker (the child of the
``csscert serve`` process) is read from /proc before and after.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import subprocess
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from server_helpers import download, signed_download
from support.server import CsscertServer

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
FLOOD = 20_000  # requests per kind
SECOND_FLOOD = 10_000
GROWTH_BOUND = 30 * MIB  # the whole flood
SECOND_TOKEN_FLOOD_BOUND = 2 * MIB  # once the refusal cache is full, more tokens only replace entries


@pytest.fixture
def lone_server(tmp_path: Path) -> Iterator[CsscertServer]:
    server = CsscertServer(data_dir=tmp_path / "data", serve_args=["--workers", "1"])
    server.start()
    try:
        yield server
    finally:
        server.stop()


def worker_rss(server: CsscertServer) -> int:
    """VmRSS of the granian worker, in bytes."""
    assert server.proc is not None
    children = subprocess.run(
        ["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert len(children) == 1, f"expected one worker process, found {children}"
    for line in Path(f"/proc/{children[0]}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


def invalid_tokens(server: CsscertServer, count: int) -> Iterator[bytes]:
    """Well-formed Fernet tokens of the usual size, made under a key the server does not have."""
    fernet = Fernet(Fernet.generate_key())
    for _ in range(count):
        token = fernet.encrypt(secrets.token_bytes(120)).decode()
        yield (
            f"GET /v1.0/{server.project_id}/cer/download HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"X-Auth-Token: {token}\r\n\r\n"
        ).encode()


def unknown_access_keys(server: CsscertServer, count: int) -> Iterator[bytes]:
    """AK/SK requests as the SDK sends them (current X-Sdk-Date), each with an access key of its own."""
    date = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    for _ in range(count):
        access = secrets.token_hex(10).upper()
        authorization = (
            f"SDK-HMAC-SHA256 Access={access}, SignedHeaders=host;x-sdk-date, "
            f"Signature={secrets.token_hex(32)}"
        )
        yield (
            f"GET /v1.0/{server.project_id}/cer/download HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"X-Sdk-Date: {date}\r\nAuthorization: {authorization}\r\n\r\n"
        ).encode()


async def _send_all(port: int, requests: Iterable[bytes], connections: int) -> Counter[int]:
    pending = iter(requests)  # shared: each connection takes the next request when it is free
    statuses: Counter[int] = Counter()

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for request in pending:
                writer.write(request)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                statuses[int(head[9:12])] += 1
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                await reader.readexactly(length)
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return statuses


def flood(server: CsscertServer, requests: Iterable[bytes], connections: int = 8) -> Counter[int]:
    return asyncio.run(_send_all(server.port, requests, connections))


def test_a_flood_of_unique_tokens_and_access_keys_leaves_the_worker_bounded(
    lone_server: CsscertServer,
) -> None:
    before = worker_rss(lone_server)
    assert flood(lone_server, invalid_tokens(lone_server, FLOOD)) == {401: FLOOD}
    after_tokens = worker_rss(lone_server)
    assert flood(lone_server, unknown_access_keys(lone_server, FLOOD)) == {401: FLOOD}
    after_keys = worker_rss(lone_server)
    # The refusal cache is full now: more tokens (twice its 4,096 entries and more) replace entries
    # instead of adding them.
    assert flood(lone_server, invalid_tokens(lone_server, SECOND_FLOOD)) == {401: SECOND_FLOOD}
    after = worker_rss(lone_server)
    print(
        f"worker RSS: {before / MIB:.1f} MiB; +{(after_tokens - before) / MIB:.1f} after {FLOOD} tokens, "
        f"+{(after_keys - after_tokens) / MIB:.1f} after {FLOOD} access keys, "
        f"+{(after - after_keys) / MIB:.1f} after {SECOND_FLOOD} more tokens"
    )
    assert after - before < GROWTH_BOUND
    assert after - after_keys < SECOND_TOKEN_FLOOD_BOUND
    # Real callers are still served.
    boot = lone_server.bootstrap
    assert download(lone_server, lone_server.token(), lone_server.project_id).status_code == 200
    signed = signed_download(lone_server, boot["access_key"], boot["secret_key"], lone_server.project_id)
    assert signed.status_code == 200
