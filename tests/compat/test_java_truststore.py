"""The Java truststore download, read by the real ``keytool`` and used by a real Java HTTPS client.

One private server per module, rotated once so the truststore holds two CAs; the Java client
is compiled once per module with ``javac`` and run against TLS listeners presenting node
certificates of both CA generations.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.http import download
from support.server import CsscertServer, ServerFactory
from support.tls import NODE_BODY, TLSListener, issue_node, json_bundle, listening

PROBE = """
import java.io.InputStream;
import java.net.URL;
import javax.net.ssl.HttpsURLConnection;
import javax.net.ssl.SSLException;

public class Probe {
    public static void main(String[] args) throws Exception {
        try {
            HttpsURLConnection connection = (HttpsURLConnection) new URL(args[0]).openConnection();
            connection.setConnectTimeout(10000);
            connection.setReadTimeout(10000);
            int status = connection.getResponseCode();
            try (InputStream body = connection.getInputStream()) {
                System.out.println("status " + status);
                System.out.print(new String(body.readAllBytes(), "UTF-8"));
            }
        } catch (SSLException e) {
            System.out.println("TLS failure: " + e);
            System.exit(3);
        }
    }
}
"""


@dataclass
class JavaRig:
    """A private server with two CA generations, a TLS listener for each, and the compiled Java probe."""

    server: CsscertServer
    token: str
    old_fp: str
    new_fp: str
    old_tls: TLSListener
    new_tls: TLSListener
    classes: Path
    work: Path


@pytest.fixture(scope="module")
def java_rig(make_server: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JavaRig]:
    """A private server rotated once, TLS listeners for a node of each CA generation, Probe compiled."""
    work = tmp_path_factory.mktemp("java")
    classes = work / "classes"
    classes.mkdir()
    (work / "Probe.java").write_text(PROBE)
    javac = subprocess.Popen(
        ["javac", "-d", str(classes), str(work / "Probe.java")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    server = make_server()
    old_fp = server.cli_json("ca", "show")["fingerprint_sha256"]
    old_node = issue_node(server, work / "old", "java-old")
    new_fp = server.cli_json("ca", "rotate")["fingerprint_sha256"]
    new_node = issue_node(server, work / "new", "java-new")
    assert javac.wait(timeout=120) == 0, javac.stdout.read() if javac.stdout else ""
    with listening(old_node.cert, old_node.key) as old_tls, listening(new_node.cert, new_node.key) as new_tls:
        yield JavaRig(server, server.token(), old_fp, new_fp, old_tls, new_tls, classes, work)


def _download(java_rig: JavaRig, name: str, params: dict[str, str]) -> Path:
    response = download(java_rig.server, java_rig.token, query=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"] == 'attachment; filename="truststore.p12"'
    path = java_rig.work / name / "truststore.p12"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(response.content)
    return path


def _keytool_fingerprints(path: Path, password: str) -> list[str]:
    result = subprocess.run(
        ["keytool", "-list", "-keystore", str(path), "-storepass", password],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    entries = re.search(r"Your keystore contains (\d+) entr", result.stdout)
    assert entries is not None, result.stdout
    count = int(entries.group(1))
    assert result.stdout.count("trustedCertEntry") == count
    fingerprints = re.findall(r"\(SHA-256\): ([0-9A-F:]+)", result.stdout)
    assert len(fingerprints) == count
    return [fp.replace(":", "").lower() for fp in fingerprints]


def _java(java_rig: JavaRig, truststore: Path, password: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "java",
            f"-Djavax.net.ssl.trustStore={truststore}",
            f"-Djavax.net.ssl.trustStorePassword={password}",
            "-Djavax.net.ssl.trustStoreType=PKCS12",
            "-cp",
            str(java_rig.classes),
            "Probe",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("fmt", "password"),
    [("p12", None), ("jks", None), ("p12", "Tr0ub4dor&3"), ("jks", "correct horse battery staple")],
)
def test_keytool_reads_every_ca_with_its_password(java_rig: JavaRig, fmt: str, password: str | None) -> None:
    params = {"format": fmt, **({"password": password} if password else {})}
    store = _download(java_rig, f"{fmt}-{bool(password)}", params)
    storepass = password or "changeit"  # the documented default
    listed = _keytool_fingerprints(store, storepass)
    assert sorted(listed) == sorted([java_rig.new_fp, java_rig.old_fp])
    bundle = [c["fingerprint_sha256"] for c in json_bundle(java_rig.server, java_rig.token)]
    assert sorted(listed) == sorted(bundle)
    wrong = subprocess.run(
        ["keytool", "-list", "-keystore", str(store), "-storepass", storepass + "x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr  # keytool: integrity check failed
    said = wrong.stdout + wrong.stderr
    assert "password was incorrect" in said or "ntegrity" in said


def test_java_https_client_trusts_both_generations(java_rig: JavaRig) -> None:
    custom = _download(java_rig, "java-custom", {"format": "p12", "password": "java-Secret-1"})
    default = _download(java_rig, "java-default", {"format": "jks"})
    for store, password in ((custom, "java-Secret-1"), (default, "changeit")):
        for listener in (java_rig.old_tls, java_rig.new_tls):
            result = _java(java_rig, store, password, listener.url())
            assert result.returncode == 0, result.stdout + result.stderr
            assert result.stdout == "status 200\n" + NODE_BODY.decode()


def test_truststore_bytes_survive_a_restart(java_rig: JavaRig) -> None:
    before = download(java_rig.server, java_rig.token, format="jks", password="same-bytes-1")
    java_rig.server.restart()
    after = download(java_rig.server, java_rig.token, format="jks", password="same-bytes-1")
    assert after.content == before.content and after.headers["etag"] == before.headers["etag"]
    revalidated = download(
        java_rig.server,
        java_rig.token,
        format="jks",
        password="same-bytes-1",
        headers={"If-None-Match": before.headers["etag"]},
    )
    assert revalidated.status_code == 304


def test_after_retirement_java_rejects_the_old_generation(java_rig: JavaRig) -> None:
    java_rig.server.cli("ca", "retire", java_rig.old_fp, "--force")
    store = _download(java_rig, "after-retire", {"format": "p12"})
    assert _keytool_fingerprints(store, "changeit") == [java_rig.new_fp]
    ok = _java(java_rig, store, "changeit", java_rig.new_tls.url())
    assert ok.returncode == 0 and ok.stdout.startswith("status 200"), ok.stdout + ok.stderr
    rejected = _java(java_rig, store, "changeit", java_rig.old_tls.url())
    assert rejected.returncode == 3, rejected.stdout + rejected.stderr
    assert "PKIX path" in rejected.stdout or "certification path" in rejected.stdout
