"""ACME throughput: full orders (newOrder to certificate) per second, per worker.

``python bench/acme_orders.py [--orders 40] [--clients 4] [--workers 1]`` starts ``csscert serve --ephemeral``
(plain HTTP on loopback, ACME validation allowed to 127.0.0.0/8) and an http-01 responder, gives each
client an account of its own (one EAB key each, made with the real CLI), then runs ``--orders`` full
orders spread over ``--clients`` threads. One order is what a renewal costs the server: newOrder, the
authorization, the challenge (csscert connects back to the responder and validates), the order poll,
finalize (the CSR is signed, recorded and audited) and the certificate download, each with its nonce.
Client-side crypto (account JWS, CSR keys) is prepared or cheap next to that; the clients run in this
process, so on a 2-core machine the figure is a floor. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import josepy
from acme import jws as acme_jws
from acme import messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

KEY_AUTHORIZATIONS: dict[str, str] = {}


class _Responder(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        token = self.path.rsplit("/", 1)[-1]
        body = KEY_AUTHORIZATIONS.get(token, "").encode()
        self.send_response(200 if body else 404)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Client:
    def __init__(self, base: str, kid: str, hmac_key: str) -> None:
        self.base = base
        self.http = httpx.Client(timeout=30)
        self.key = josepy.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
        self.thumbprint = josepy.b64.b64encode(self.key.public_key().thumbprint()).decode()
        self.nonce = ""
        self.kid: str | None = None
        directory = messages.Directory.from_json(self.http.get(f"{base}/directory").json())
        binding = messages.ExternalAccountBinding.from_data(
            account_public_key=self.key.public_key(), kid=kid, hmac_key=hmac_key, directory=directory
        )
        made = self.post(
            f"{base}/new-account", {"termsOfServiceAgreed": True, "externalAccountBinding": dict(binding)}
        )
        self.kid = made.headers["location"]

    def post(self, url: str, payload: Any) -> httpx.Response:
        if not self.nonce:
            self.nonce = self.http.head(f"{self.base}/new-nonce").headers["replay-nonce"]
        body = b"" if payload is None else json.dumps(payload).encode()
        jws = acme_jws.JWS.sign(
            body,
            key=self.key,
            alg=josepy.ES256,
            nonce=josepy.b64.b64decode(self.nonce),
            url=url,
            kid=self.kid,
        )
        response = self.http.post(
            url, content=jws.json_dumps(), headers={"content-type": "application/jose+json"}
        )
        self.nonce = response.headers.get("replay-nonce", "")
        if response.status_code >= 400:
            raise RuntimeError(f"{url}: {response.status_code} {response.text}")
        return response

    def full_order(self, csr_der: bytes) -> None:
        order = self.post(f"{self.base}/new-order", {"identifiers": [{"type": "dns", "value": "localhost"}]})
        order_url = order.headers["location"]
        authz = self.post(order.json()["authorizations"][0], None).json()
        challenge = next(c for c in authz["challenges"] if c["type"] == "http-01")
        KEY_AUTHORIZATIONS[challenge["token"]] = f"{challenge['token']}.{self.thumbprint}"
        if self.post(challenge["url"], {}).json()["status"] != "valid":
            raise RuntimeError("challenge not valid")
        ready = self.post(order_url, None).json()
        done = self.post(ready["finalize"], {"csr": josepy.b64.b64encode(csr_der).decode()}).json()
        chain = self.post(done["certificate"], None)
        if b"BEGIN CERTIFICATE" not in chain.content:
            raise RuntimeError("no certificate")


def _csr() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
    )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=40)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    responder = ThreadingHTTPServer(("127.0.0.1", 0), _Responder)
    threading.Thread(target=responder.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSSCERT_")}
    env.update(
        CSSCERT_ACME_HTTP_PORT=str(responder.server_address[1]),
        CSSCERT_ACME_VALIDATION_NETWORKS="127.0.0.0/8",
        CSSCERT_ACCESS_LOG="off",
        CSSCERT_WORKERS=str(args.workers),
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "csscert", "serve", "--ephemeral", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        details = json.loads(server.stdout.readline())
        base = f"{details['endpoint']}/acme/{details['project_id']}"
        clients = []
        for _ in range(args.clients):
            made = subprocess.run(
                [sys.executable, "-m", "csscert", "--data-dir", details["data_dir"], "acme", "eab", "create",
                 "--user", details["user_name"], "--project", details["project_id"], "--json"],
                capture_output=True, text=True, check=True, env=env,
            )  # fmt: skip
            eab = json.loads(made.stdout)
            clients.append(Client(base, eab["kid"], eab["hmac_key"]))
        csrs = [_csr() for _ in range(args.orders)]
        clients[0].full_order(csrs[0])  # warm-up (first signature, first connection back)
        share = [csrs[i :: args.clients] for i in range(args.clients)]
        errors: list[BaseException] = []

        def run(client: Client, mine: list[bytes]) -> None:
            try:
                for csr in mine:
                    client.full_order(csr)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(c, s)) for c, s in zip(clients, share, strict=True)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        if errors:
            raise errors[0]
        rate = args.orders / elapsed
        print(json.dumps({
            "orders": args.orders, "clients": args.clients, "workers": args.workers,
            "seconds": round(elapsed, 3), "orders_per_second": round(rate, 2),
            "orders_per_second_per_worker": round(rate / args.workers, 2),
            "ms_per_order": round(1000 * elapsed / args.orders * args.clients, 1),
        }))  # fmt: skip
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=15)
        responder.shutdown()


if __name__ == "__main__":
    main()
