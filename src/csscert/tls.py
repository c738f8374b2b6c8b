"""TLS on csscert's own port: the server certificate ``csscert serve --tls`` issues itself.

The certificate comes from csscert's own CA (the region's project's scope), so
``CloudSearchService.cer``, the file every client downloads anyway, verifies csscert too. It is
kept in ``<data_dir>/tls/`` (``server.key`` 0600, ``server.crt`` with the CA) and issued again on
start when it is missing, names another host, was signed by a CA that is no longer trusted
(retired), or reaches the last third of its life. After ``ca rotate`` it stays with the old CA
while that is still in the bundle: clients holding only the old ``CloudSearchService.cer`` can
then still reach csscert to download the new bundle.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from csscert.ca import Authority, NodeCertificate
from csscert.ca.names import AuthorityError, validate_dns_name
from csscert.errors import ConfigurationError
from csscert.files import replace_all
from csscert.settings import Settings

__all__ = ["SERVER_CERT_NAME", "ServerCertificate", "check_pair", "ensure_server_certificate", "server_names"]

SERVER_CERT_NAME = "csscert-server"
_WILDCARD_HOSTS = ("0.0.0.0", "::", "")  # noqa: S104 - listening addresses, not a bind


@dataclass(frozen=True)
class ServerCertificate:
    cert_file: Path
    key_file: Path
    issued: bool  # True when this start issued a new one
    not_after: dt.datetime


def server_names(settings: Settings) -> tuple[list[str], list[str]]:
    """DNS names and IP addresses clients may use to reach the listening address."""
    dns: list[str] = []
    ips: list[str] = []

    def add(host: str) -> None:
        try:
            ips.append(str(ipaddress.ip_address(host.strip("[]"))))
        except ValueError:
            # A host name a certificate cannot carry (e.g. with '_') is not offered.
            with contextlib.suppress(AuthorityError):
                dns.append(validate_dns_name(host))

    host = settings.host
    if host in _WILDCARD_HOSTS:
        for name in ("localhost", socket.gethostname(), socket.getfqdn()):
            add(name)
        add("127.0.0.1")
        add("::1")
    else:
        add(host)
        if host in ("127.0.0.1", "localhost", "::1"):
            add("localhost")
            add("127.0.0.1")
    if settings.public_url:
        public = urlsplit(settings.public_url).hostname
        if public:
            add(public)
    return list(dict.fromkeys(dns)), list(dict.fromkeys(ips))


def _issued_by(cert: x509.Certificate, ca_pem: bytes) -> bool:
    try:
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem))
    except Exception:
        return False
    return True


def _still_good(path: Path, authority: Authority, scope: str, dns: list[str], ips: list[str]) -> bool:
    try:
        chain = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError):
        return False
    cert = chain[0]
    if not any(_issued_by(cert, ca.cert_pem) for ca in authority.trusted(scope)):
        return False  # its CA was retired (or it is not ours at all)
    now = dt.datetime.now(dt.UTC)
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    if cert.not_valid_after_utc - now < max(life / 3, dt.timedelta(days=1)):
        return False
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have_dns = set(sans.get_values_for_type(x509.DNSName))
    have_ips = {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    return set(dns) <= have_dns and set(ips) <= have_ips


def ensure_server_certificate(authority: Authority, settings: Settings, project_id: str) -> ServerCertificate:
    """The server certificate and key files for ``--tls``, issued (again) when needed."""
    folder = settings.data_dir / "tls"
    cert_file, key_file = folder / "server.crt", folder / "server.key"
    scope = authority.scope_for(project_id)
    dns, ips = server_names(settings)
    if key_file.exists() and _still_good(cert_file, authority, scope, dns, ips):
        cert = x509.load_pem_x509_certificates(cert_file.read_bytes())[0]
        return ServerCertificate(cert_file, key_file, False, cert.not_valid_after_utc)

    def deliver(node: NodeCertificate) -> None:
        assert node.key_pem is not None
        folder.mkdir(mode=0o700, exist_ok=True)
        replace_all([(key_file, node.key_pem, 0o600), (cert_file, node.chain_pem, 0o644)])

    node = authority.issue_node(project_id, SERVER_CERT_NAME, dns, ips, origin="serve", deliver=deliver)
    return ServerCertificate(cert_file, key_file, True, node.record.not_after)


def check_pair(cert_file: Path, key_file: Path) -> str:
    """Refuse, in one line, a certificate and key granian could not serve; returns the
    certificate's SHA-256 fingerprint."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(cert_file), str(key_file))
    except FileNotFoundError as exc:
        raise ConfigurationError(f"cannot read {exc.filename}: no such file") from exc
    except PermissionError as exc:
        raise ConfigurationError(f"cannot read {exc.filename}: permission denied") from exc
    except ssl.SSLError as exc:
        raise ConfigurationError(
            f"--tls-cert {cert_file} and --tls-key {key_file} are not a PEM certificate and its key "
            f"({exc.reason or exc})"
        ) from exc
    cert = x509.load_pem_x509_certificates(cert_file.read_bytes())[0]
    return cert.fingerprint(hashes.SHA256()).hex()
