"""A whole OpenSearch cluster from one folder: three nodes and an admin, mutual TLS between them
as openssl sees it, opensearch.yml lines whose DNs are Java's view of the certificates, CSRs
signed by profile, and renewal."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from support.server import CsscertServer, free_port

NODES = ("node-1", "node-2", "node-3")
JAVA_DN = """
import java.io.*;
import java.security.cert.*;

public class Dn {
    public static void main(String[] args) throws Exception {
        CertificateFactory factory = CertificateFactory.getInstance("X.509");
        PrintStream out = new PrintStream(System.out, true, "UTF-8");
        for (String path : args) {
            try (InputStream in = new FileInputStream(path)) {
                X509Certificate cert = (X509Certificate) factory.generateCertificate(in);
                out.println(cert.getSubjectX500Principal().getName());
            }
        }
    }
}
"""


@dataclass
class Cluster:
    server: CsscertServer
    certs: Path


def _leaf(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def java_dns(paths: list[Path], workdir: Path) -> list[str]:
    """Each certificate's subject as Java's X500Principal.getName() gives it (what OpenSearch compares)."""
    if shutil.which("javac") is None:
        pytest.skip("javac is not installed")
    source = workdir / "Dn.java"
    if not (workdir / "Dn.class").exists():
        source.write_text(JAVA_DN)
        subprocess.run(["javac", str(source)], check=True, cwd=workdir, timeout=120)
    out = subprocess.run(
        ["java", "-cp", str(workdir), "Dn", *map(str, paths)], capture_output=True, check=True, timeout=120
    )
    return out.stdout.decode("utf-8").splitlines()


@pytest.fixture(scope="module")
def cluster(server: CsscertServer, tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    """Three nodes and an admin issued into ONE folder, from a working directory that is not
    the data directory's parent."""
    certs = tmp_path_factory.mktemp("cluster") / "certs"
    for index, node in enumerate(NODES, start=1):
        server.cli(
            "cert",
            "issue",
            "--name",
            node,
            "--org",
            "Example Corp",
            "--ou",
            "search",
            "--dns",
            node,
            "--dns",
            "localhost",
            "--ip",
            f"127.0.0.{index}",
            "--out",
            str(certs),
        )
    server.cli(
        "cert",
        "issue",
        "--name",
        "admin",
        "--profile",
        "admin",
        "--subject",
        "CN=admin,OU=ops,O=Example Corp",
        "--out",
        str(certs),
    )
    return Cluster(server, certs)


def test_one_folder_holds_the_whole_cluster_and_one_ca_file(cluster: Cluster) -> None:
    names = sorted(p.name for p in cluster.certs.iterdir())
    assert names == sorted(["ca.crt", *(f"{n}.{k}" for n in (*NODES, "admin") for k in ("crt", "key"))])
    assert all((cluster.certs / f"{n}.key").stat().st_mode & 0o777 == 0o600 for n in (*NODES, "admin"))
    assert (
        _leaf(cluster.certs / "node-2.crt").subject.rfc4514_string() == "CN=node-2,OU=search,O=Example Corp"
    )
    admin = _leaf(cluster.certs / "admin.crt")
    usages = admin.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(x509.ExtensionNotFound):
        admin.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    for node in NODES:
        verify = subprocess.run(
            [
                "openssl",
                "verify",
                "-CAfile",
                str(cluster.certs / "ca.crt"),
                "-purpose",
                "sslserver",
                str(cluster.certs / f"{node}.crt"),
            ],
            capture_output=True,
            text=True,
        )
        assert verify.returncode == 0, verify.stderr
    refused = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(cluster.certs / "ca.crt"),
            "-purpose",
            "sslserver",
            str(cluster.certs / "admin.crt"),
        ],
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0  # an admin certificate cannot serve


@pytest.fixture
def tls_node(cluster: Cluster) -> Iterator[tuple[str, int]]:
    """node-1 serving TLS and demanding a client certificate from the cluster's CA."""
    port = free_port()
    certs = cluster.certs
    proc = subprocess.Popen(
        [
            "openssl",
            "s_server",
            "-accept",
            str(port),
            "-cert",
            str(certs / "node-1.crt"),
            "-key",
            str(certs / "node-1.key"),
            "-CAfile",
            str(certs / "ca.crt"),
            "-Verify",
            "2",
            "-verify_return_error",
            "-www",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while subprocess.run(
        ["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}"], capture_output=True
    ).returncode:
        assert time.monotonic() < deadline, "openssl s_server did not start"
        time.sleep(0.05)
    yield "node-1", port
    proc.kill()
    proc.wait()


def _s_client(port: int, certs: Path, name: str | None, hostname: str) -> subprocess.CompletedProcess[str]:
    command = [
        "openssl",
        "s_client",
        "-connect",
        f"127.0.0.1:{port}",
        "-CAfile",
        str(certs / "ca.crt"),
        "-verify_return_error",
        "-verify_hostname",
        hostname,
        "-ign_eof",
    ]
    if name is not None:
        command += ["-cert", str(certs / f"{name}.crt"), "-key", str(certs / f"{name}.key")]
    return subprocess.run(command, input="GET / HTTP/1.0\r\n\r\n", capture_output=True, text=True, timeout=30)


def test_mutual_tls_between_nodes_and_for_the_admin(cluster: Cluster, tls_node: tuple[str, int]) -> None:
    server_name, port = tls_node
    for client in ("node-2", "node-3", "admin"):
        result = _s_client(port, cluster.certs, client, server_name)
        assert "Verify return code: 0 (ok)" in result.stdout, (client, result.stdout[-800:], result.stderr)
        assert "HTTP/1.0 200 ok" in result.stdout, (client, result.stdout[-800:])
    anonymous = _s_client(port, cluster.certs, None, server_name)
    assert "HTTP/1.0 200 ok" not in anonymous.stdout  # the node demands a client certificate
    wrong_name = _s_client(port, cluster.certs, "node-2", "node-9")
    assert "HTTP/1.0 200 ok" not in wrong_name.stdout  # the client checks the node's names


def test_opensearch_config_matches_the_certificates_exactly(cluster: Cluster, tmp_path: Path) -> None:
    out = tmp_path / "opensearch"
    shown = json.loads(
        cluster.server.cli(
            "opensearch-config", "--certs", str(cluster.certs), "--out", str(out), "--json"
        ).stdout
    )
    node_certs = [cluster.certs / f"{n}.crt" for n in NODES]
    expected_nodes = java_dns(node_certs, tmp_path)
    expected_admin = java_dns([cluster.certs / "admin.crt"], tmp_path)
    assert expected_nodes == [f"CN={n},OU=search,O=Example Corp" for n in NODES]
    assert shown["nodes_dn"] == expected_nodes and shown["admin_dn"] == expected_admin
    for node in NODES:
        folder = out / node
        config = yaml.safe_load((folder / "opensearch.yml").read_text())
        prefix = "plugins.security.ssl"
        for layer in ("transport", "http"):
            assert config[f"{prefix}.{layer}.pemcert_filepath"] == f"{node}.crt"
            assert config[f"{prefix}.{layer}.pemkey_filepath"] == f"{node}.key"
            assert config[f"{prefix}.{layer}.pemtrustedcas_filepath"] == "ca.crt"
            for key in ("pemcert_filepath", "pemkey_filepath", "pemtrustedcas_filepath"):
                assert (folder / config[f"{prefix}.{layer}.{key}"]).is_file()
        assert config["plugins.security.nodes_dn"] == expected_nodes
        assert config["plugins.security.authcz.admin_dn"] == expected_admin
        assert (folder / f"{node}.crt").read_bytes() == (cluster.certs / f"{node}.crt").read_bytes()
        assert (folder / f"{node}.key").stat().st_mode & 0o777 == 0o600


def test_tricky_subjects_get_the_dn_java_writes(server: CsscertServer, tmp_path: Path) -> None:
    """RFC 4514 escaping differs from Java's in details ('=' and '#' inside values, unknown
    attribute types); the DN csscert reports must be Java's, character for character."""
    subjects = [
        r"CN=a\,b=c#d\+e\;f,OU=x",
        "CN=Jörg Müller,O=Bäckerei",
        "CN=admin,emailAddress=ops@example.com",
        r"CN=\ padded\ ,C=DE",
        "CN=n+UID=u1,DC=example,DC=com",
        r"CN=quote\"back\\slash\<\>",
    ]
    out = tmp_path / "tricky"
    for index, subject in enumerate(subjects):
        server.cli(
            "cert",
            "issue",
            "--name",
            f"tricky-{index}",
            "--profile",
            "client",
            "--subject",
            subject,
            "--out",
            str(out),
        )
    listed = {row["name"]: row for row in server.cli_json("cert", "list")}
    files = [out / f"tricky-{index}.crt" for index in range(len(subjects))]
    assert [listed[f"tricky-{index}"]["dn"] for index in range(len(subjects))] == java_dns(files, tmp_path)


def test_a_csr_made_by_openssl_is_signed_and_verifies(server: CsscertServer, tmp_path: Path) -> None:
    key, csr, crt = tmp_path / "n4.key", tmp_path / "n4.csr", tmp_path / "n4.crt"
    subprocess.run(
        [
            "openssl",
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(key),
            "-subj",
            "/O=Example Corp/OU=search/CN=node-4",
            "-addext",
            "subjectAltName=DNS:node-4,IP:10.0.0.4",
            "-out",
            str(csr),
        ],
        check=True,
        capture_output=True,
    )
    signed = json.loads(server.cli("cert", "sign", "--csr", str(csr), "--out", str(crt), "--json").stdout)
    assert (
        signed["name"] == "node-4"
        and signed["profile"] == "node"
        and signed["sans"] == ["node-4", "10.0.0.4"]
    )
    cert = _leaf(crt)
    request = x509.load_pem_x509_csr(csr.read_bytes())
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert cert.public_key().public_bytes(*spki) == request.public_key().public_bytes(*spki)
    assert cert.subject == request.subject
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(b"".join(ca_pem for ca_pem in _ca_pems(server)))
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(bundle), "-purpose", "sslserver", str(crt)],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stderr
    listed = {row["name"]: row for row in server.cli_json("cert", "list")}
    assert listed["node-4"]["origin"] == "csr" and listed["node-4"]["key_type"] == "p256"
    # A CSR cannot be "renewed" by csscert: it never had the key.
    refused = server.cli("cert", "renew", "node-4", "--out", str(tmp_path / "r"), check=False)
    assert refused.returncode == 1 and "cert sign --csr" in refused.stderr


def _ca_pems(server: CsscertServer) -> list[bytes]:
    import httpx

    response = httpx.get(server.download_url(), headers={"X-Auth-Token": server.token()})
    return [response.content]


@pytest.mark.parametrize(
    ("profile", "extra", "message"),
    [
        ("admin", ["-addext", "extendedKeyUsage=serverAuth,clientAuth"], "asks for serverAuth"),
        ("client", ["-addext", "basicConstraints=critical,CA:TRUE"], "asks to be a CA"),
        ("node", [], "names no DNS name or IP address"),
        ("node", ["-addext", "subjectAltName=DNS:bad_name"], "is not a valid DNS name"),
        ("node", ["-addext", "subjectAltName=email:a@b.c"], "only DNS names and IP addresses"),
    ],
)
def test_a_csr_asking_for_what_its_profile_does_not_allow_is_refused(
    server: CsscertServer, tmp_path: Path, profile: str, extra: list[str], message: str
) -> None:
    csr = tmp_path / "x.csr"
    subprocess.run(
        [
            "openssl",
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(tmp_path / "x.key"),
            "-subj",
            "/CN=refused-x",
            *extra,
            "-out",
            str(csr),
        ],
        check=True,
        capture_output=True,
    )
    before = len(server.cli_json("cert", "list", "--all"))
    result = server.cli(
        "cert", "sign", "--csr", str(csr), "--profile", profile, "--out", str(tmp_path / "x.crt"), check=False
    )
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "x.crt").exists()
    assert len(server.cli_json("cert", "list", "--all")) == before


def test_a_csr_whose_signature_does_not_verify_is_refused(server: CsscertServer, tmp_path: Path) -> None:
    der = tmp_path / "t.der"
    subprocess.run(
        [
            "openssl",
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(tmp_path / "t.key"),
            "-subj",
            "/CN=tampered",
            "-addext",
            "subjectAltName=DNS:t",
            "-outform",
            "DER",
            "-out",
            str(der),
        ],
        check=True,
        capture_output=True,
    )
    data = bytearray(der.read_bytes())
    data[-1] ^= 0x01  # the last byte of the signature
    der.write_bytes(bytes(data))
    result = server.cli("cert", "sign", "--csr", str(der), check=False)
    assert result.returncode == 1 and "signature does not verify" in result.stderr


def test_renewal_keeps_the_names_and_changes_key_and_serial(cluster: Cluster, tmp_path: Path) -> None:
    folder = tmp_path / "renew"
    shutil.copytree(cluster.certs, folder)
    before_cert, before_key = _leaf(folder / "node-3.crt"), (folder / "node-3.key").read_bytes()
    renewed = json.loads(cluster.server.cli("cert", "renew", "node-3", "--out", str(folder), "--json").stdout)
    after = _leaf(folder / "node-3.crt")
    assert after.subject == before_cert.subject
    sans = x509.SubjectAlternativeName
    assert (
        after.extensions.get_extension_for_class(sans).value
        == before_cert.extensions.get_extension_for_class(sans).value
    )
    assert after.serial_number != before_cert.serial_number
    assert renewed["serial"] == format(after.serial_number, "x")
    assert (folder / "node-3.key").read_bytes() != before_key
    assert (folder / "node-3.key").stat().st_mode & 0o777 == 0o600
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert after.public_key().public_bytes(*spki) != before_cert.public_key().public_bytes(*spki)
    statuses = {
        (r["serial"], r["status"])
        for r in cluster.server.cli_json("cert", "list", "--all")
        if r["name"] == "node-3"
    }
    assert (format(before_cert.serial_number, "x"), "superseded") in statuses
    assert (renewed["serial"], "valid") in statuses
    # The folder with the old node-3 no longer makes a valid configuration.
    refused = cluster.server.cli(
        "opensearch-config", "--certs", str(cluster.certs), "--out", str(tmp_path / "os"), check=False
    )
    assert (
        refused.returncode == 1 and "superseded" in refused.stderr and "cert renew node-3" in refused.stderr
    )
