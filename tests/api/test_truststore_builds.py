"""Truststores (milliseconds of CPU each) are built off the event loop, a few at a time: a caller
asking for a new password on every request waits for a builder, and everyone else keeps being
answered from memory meanwhile."""

from __future__ import annotations

import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from cryptography.hazmat.primitives.serialization import pkcs12
from support.server import CsscertServer, ServerFactory


def test_truststores_with_new_passwords_do_not_hold_up_other_downloads(make_server: ServerFactory) -> None:
    server: CsscertServer = make_server(env={"CSSCERT_RATE_LIMIT_CREDENTIAL": "100000/1"})
    token = server.token()
    stop = threading.Event()
    latencies: list[float] = []

    def plain_downloads() -> None:
        with httpx.Client(timeout=5) as client:
            while not stop.is_set():
                started = time.monotonic()
                assert client.get(server.download_url(), headers={"X-Auth-Token": token}).status_code == 200
                latencies.append(time.monotonic() - started)

    def truststore(_: int) -> tuple[str, bytes]:
        password = secrets.token_urlsafe(12)
        response = httpx.get(
            server.download_url(),
            params={"format": "p12", "password": password},
            headers={"X-Auth-Token": token},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return password, response.content

    watcher = threading.Thread(target=plain_downloads)
    watcher.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            built = list(pool.map(truststore, range(160)))
    finally:
        stop.set()
        watcher.join()
    for password, body in built:
        assert pkcs12.load_pkcs12(body, password.encode()).additional_certs
    assert len({body for _, body in built}) == len(built)  # each password its own MAC
    assert latencies and max(latencies) < 1.0, max(latencies)
