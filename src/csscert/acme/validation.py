"""Challenge validation: ``http-01`` (RFC 8555 §8.3) and ``tls-alpn-01`` (RFC 8737), for DNS names
and IP addresses (RFC 8738).

The validator connects to the name being certified, on the ports the settings name (like Pebble's
``httpPort``/``tlsPort``), and only to addresses inside ``acme_validation_networks``: the name is
resolved once, every address outside the allow-list is dropped, and the connection goes to the
checked address itself (so a second DNS answer cannot move it elsewhere). An http-01 redirect is
followed (at most :data:`MAX_REDIRECTS` hops) only to http/https URLs on the two validation ports
whose host passes the same check. Each connection has a timeout, each response at most
:data:`MAX_BYTES` bytes are read, and nothing read is ever shown to the caller. All of it is
blocking code run on a thread by :func:`validate`, never on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from cryptography import x509

__all__ = ["MAX_BYTES", "MAX_REDIRECTS", "Failure", "Target", "networks", "validate"]

MAX_BYTES = 8192  # a key authorization is ~87 bytes; anything past this is not one
MAX_REDIRECTS = 3
ACME_TLS_ALPN = "acme-tls/1"
ACME_IDENTIFIER_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(spec: str) -> tuple[Network, ...]:
    """``"10.0.0.0/8, ::1"`` as networks (the setting's validator has checked each item)."""
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in spec.split(",") if item.strip())


@dataclass(frozen=True)
class Target:
    """Where and how to validate: the ports and the allowed networks come from the settings."""

    http_port: int
    tls_port: int
    allowed: tuple[Network, ...]
    timeout: float


class Failure(Exception):
    """Validation failed: ``kind`` is the ACME error type (connection, incorrectResponse, tls...)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def _allowed(address: str, allowed: Sequence[Network]) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in allowed)


def _addresses(host: str, port: int, target: Target) -> list[str]:
    """The allowed addresses of ``host`` (an IP literal stands for itself), in resolver order."""
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        found = [str(literal)]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise Failure("dns", f"{host} does not resolve") from None
        found = list(dict.fromkeys(str(info[4][0]) for info in infos))
    usable = [a for a in found if _allowed(a, target.allowed)]
    if not usable:
        raise Failure(
            "connection",
            f"{host} resolves to {', '.join(found[:4])}, outside the networks validation may reach "
            "(acme_validation_networks)",
        )
    return usable


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _http01(host: str, token: str, expected: str, target: Target) -> None:
    url = httpx.URL(f"http://{_url_host(host)}:{target.http_port}/.well-known/acme-challenge/{token}")
    # verify=False: RFC 8555 §8.3 has the validator ignore certificates on a redirect to https.
    with httpx.Client(
        follow_redirects=False,
        verify=False,  # noqa: S501
        trust_env=False,
        timeout=target.timeout,
    ) as client:
        for _hop in range(MAX_REDIRECTS + 1):
            name = url.host
            port = url.port or (443 if url.scheme == "https" else 80)
            last: Failure | None = None
            for address in _addresses(name, port, target):
                pinned = url.copy_with(host=_url_host(address).strip("[]"))
                try:
                    with client.stream(
                        "GET",
                        pinned,
                        headers={"host": f"{name}:{port}" if port not in (80, 443) else name},
                        extensions={"sni_hostname": name} if url.scheme == "https" else {},
                    ) as response:
                        body = b""
                        for chunk in response.iter_bytes():
                            body += chunk
                            if len(body) > MAX_BYTES:
                                raise Failure(
                                    "unauthorized",
                                    f"the response from {name} is larger than {MAX_BYTES} bytes",
                                )
                        status, location = response.status_code, response.headers.get("location")
                except httpx.HTTPError as exc:
                    last = Failure(
                        "connection",
                        f"could not fetch the challenge from {address}:{port}: {type(exc).__name__}",
                    )
                    continue
                break
            else:
                raise last or Failure("connection", f"no address of {name} answered")
            if status in (301, 302, 303, 307, 308) and location:
                url = _redirect(url, location, target)
                continue
            if status != 200:
                raise Failure("unauthorized", f"{name} answered the challenge with HTTP {status}, not 200")
            if body.decode("utf-8", "replace").strip() != expected:
                raise Failure(
                    "incorrectResponse", f"{name} answered the challenge with another key authorization"
                )
            return
    raise Failure("connection", f"more than {MAX_REDIRECTS} redirects")


def _redirect(current: httpx.URL, location: str, target: Target) -> httpx.URL:
    try:
        url = current.join(location)
    except httpx.InvalidURL:
        raise Failure("connection", "the challenge redirect is not a valid URL") from None
    port = url.port or (443 if url.scheme == "https" else 80)
    if url.scheme not in ("http", "https") or port not in (target.http_port, target.tls_port):
        raise Failure(
            "connection",
            f"the challenge redirects to {url.scheme}://...:{port}; only http/https on ports "
            f"{target.http_port} and {target.tls_port} are followed",
        )
    return url


def _tls_alpn01(kind: str, value: str, expected: str, target: Target) -> None:
    sni = ipaddress.ip_address(value).reverse_pointer if kind == "ip" else value
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # RFC 8737: the self-signed challenge certificate is what we inspect
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols([ACME_TLS_ALPN])
    last: Failure | None = None
    for address in _addresses(value, target.tls_port, target):
        try:
            with socket.create_connection((address, target.tls_port), timeout=target.timeout) as raw:
                raw.settimeout(target.timeout)
                with context.wrap_socket(raw, server_hostname=sni) as tls:
                    alpn = tls.selected_alpn_protocol()
                    der = tls.getpeercert(binary_form=True)
        except (OSError, ssl.SSLError) as exc:
            last = Failure(
                "tls" if isinstance(exc, ssl.SSLError) else "connection",
                f"TLS to {address}:{target.tls_port} failed: {type(exc).__name__}",
            )
            continue
        if alpn != ACME_TLS_ALPN or not der:
            raise Failure("tls", f"{value} did not negotiate the {ACME_TLS_ALPN} protocol")
        _check_alpn_certificate(x509.load_der_x509_certificate(der), kind, value, expected)
        return
    raise last or Failure("connection", f"no address of {value} answered")


def _check_alpn_certificate(cert: x509.Certificate, kind: str, value: str, expected: str) -> None:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise Failure("incorrectResponse", "the tls-alpn-01 certificate has no subjectAltName") from None
    names = [str(v) for v in sans.get_values_for_type(x509.DNSName)]
    names += [str(v) for v in sans.get_values_for_type(x509.IPAddress)]
    if len(list(sans)) != 1 or names != [value]:
        raise Failure("incorrectResponse", f"the tls-alpn-01 certificate must name exactly {value}")
    try:
        extension = cert.extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
    except x509.ExtensionNotFound:
        raise Failure(
            "incorrectResponse", "the tls-alpn-01 certificate has no acmeIdentifier extension"
        ) from None
    digest = hashlib.sha256(expected.encode()).digest()
    raw = extension.value.value if isinstance(extension.value, x509.UnrecognizedExtension) else b""
    if not extension.critical or raw != b"\x04\x20" + digest:
        raise Failure(
            "incorrectResponse", "the tls-alpn-01 acmeIdentifier does not match the key authorization"
        )


def _validate(challenge: str, kind: str, value: str, token: str, expected: str, target: Target) -> None:
    if challenge == "http-01":
        _http01(value, token, expected, target)
    else:
        _tls_alpn01(kind, value, expected, target)


async def validate(
    challenge: str, kind: str, value: str, token: str, expected: str, target: Target
) -> Failure | None:
    """Validate on a thread; None when it passed, else the :class:`Failure`."""
    try:
        await asyncio.wait_for(
            asyncio.to_thread(_validate, challenge, kind, value, token, expected, target),
            target.timeout * (MAX_REDIRECTS + 2),
        )
    except Failure as failure:
        return failure
    except TimeoutError:
        return Failure("connection", f"validating {value} took longer than the deadline")
    return None
