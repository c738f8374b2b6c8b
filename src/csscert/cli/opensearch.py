"""``csscert opensearch-config``: the ``opensearch.yml`` security lines for a folder of issued
certificates, with the files they name, one folder per node.

The DNs are written the way OpenSearch compares them: Java's ``X500Principal.getName()`` of the
certificates themselves (:func:`csscert.ca.names.java_dn`), never re-typed by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from csscert.cli.common import service_for
from csscert.cli.output import console, emit_json, escape, fail, json_option

if TYPE_CHECKING:
    from cryptography import x509


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML ones)."""
    return json.dumps(text, ensure_ascii=False)


def render_yaml(name: str, nodes_dn: list[str], admin_dn: list[str]) -> str:
    lines = [
        f"# csscert: TLS and security settings for {name}. Append these lines to the node's",
        f"# config/opensearch.yml and copy {name}.crt, {name}.key and ca.crt into its config directory.",
    ]
    for layer in ("transport", "http"):
        prefix = f"plugins.security.ssl.{layer}"
        if layer == "http":
            lines.append(f"{prefix}.enabled: true")
        lines += [
            f"{prefix}.pemcert_filepath: {_q(name + '.crt')}",
            f"{prefix}.pemkey_filepath: {_q(name + '.key')}",
            f"{prefix}.pemtrustedcas_filepath: {_q('ca.crt')}",
        ]
    lines.append("plugins.security.nodes_dn:")
    lines += [f"  - {_q(dn)}" for dn in nodes_dn]
    lines.append("plugins.security.authcz.admin_dn:" + ("" if admin_dn else " []"))
    lines += [f"  - {_q(dn)}" for dn in admin_dn]
    return "\n".join(lines) + "\n"


def _load(path: Path) -> x509.Certificate | None:
    from cryptography import x509

    try:
        chain = x509.load_pem_x509_certificates(path.read_bytes())
    except ValueError:
        return None
    return chain[0] if chain else None


def _same_key(cert: x509.Certificate, key_file: Path) -> bool:
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (ValueError, TypeError):
        return False
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return key.public_key().public_bytes(der, spki) == cert.public_key().public_bytes(der, spki)


@click.command("opensearch-config")
@click.option(
    "--certs",
    "certs_dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=None,
    help="Folder 'cert issue --out' wrote (default: --out).",
)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Output directory.")
@json_option
@click.pass_context
def opensearch_config(ctx: click.Context, certs_dir: Path | None, out_dir: Path, as_json: bool) -> None:
    """Write OUT/NODE/opensearch.yml (TLS paths, nodes_dn, admin_dn) and the files it names,
    for every node certificate in the folder, with every admin certificate there in admin_dn."""
    from cryptography.hazmat.primitives import hashes

    from csscert.ca.names import java_dn
    from csscert.cli.cert import certificate_rows
    from csscert.files import replace_all

    source = certs_dir or out_dir
    if not source.is_dir():
        fail(
            f"{source} is not a folder of issued certificates "
            "(give --certs, the folder 'cert issue --out' wrote)"
        )
    bundle_file = source / "ca.crt"
    if not bundle_file.is_file():
        fail(f"{bundle_file} is missing: give --certs the folder 'cert issue --out' wrote")
    found: list[tuple[Path, x509.Certificate]] = []
    for path in sorted(source.glob("*.crt")):
        if path.name == "ca.crt":
            continue
        cert = _load(path)
        if cert is None:
            fail(f"{path} holds no PEM certificate")
        found.append((path, cert))
    with service_for(ctx) as service:
        records = []
        for _, cert in found:  # one point lookup per file, by serial
            record = service.authority.certificate_or_none(format(cert.serial_number, "x"))
            if record is not None:
                records.append(record)
        rows = {row["fingerprint_sha256"]: row for row in certificate_rows(service, records)}
    nodes: list[tuple[Path, dict[str, Any], str]] = []
    admins: list[str] = []
    for path, cert in found:
        row = rows.get(cert.fingerprint(hashes.SHA256()).hex())
        if row is None:
            fail(
                f"{path} was not issued by this csscert (no record of it): issue it with 'csscert cert issue'"
            )
        if row["status"] != "valid":
            fail(
                f"{path} is {row['status']} ({row['not_after']}): renew it with "
                f"'csscert cert renew {row['name']} --out {source}', or remove it from the folder"
            )
        dn = java_dn(cert.subject)
        if row["profile"] == "node":
            key_file = path.with_suffix(".key")
            if not _same_key(cert, key_file):
                fail(f"{key_file} is missing or is not the key of {path}")
            nodes.append((path, row, dn))
        elif row["profile"] == "admin":
            admins.append(dn)
    if not nodes:
        fail(f"{source} holds no node certificate (cert issue --profile node) issued by this csscert")
    bundle = bundle_file.read_bytes()
    nodes_dn = [dn for _, _, dn in nodes]
    written = []
    for path, row, _dn in nodes:
        name = path.stem
        folder = out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "opensearch.yml"
        replace_all(
            [
                (config, render_yaml(name, nodes_dn, admins).encode(), 0o644),
                (folder / f"{name}.crt", path.read_bytes(), 0o644),
                (folder / f"{name}.key", path.with_suffix(".key").read_bytes(), 0o600),
                (folder / "ca.crt", bundle, 0o644),
            ]
        )
        written.append({"name": name, "dn": row["dn"], "config": str(config), "folder": str(folder)})
    if as_json:
        emit_json({"nodes": written, "nodes_dn": nodes_dn, "admin_dn": admins})
        return
    out = console()
    for item in written:
        out.print(
            f"wrote {escape(item['config'])} (+ {escape(item['name'])}.crt, .key, ca.crt)", soft_wrap=True
        )
    out.print(f"nodes_dn: {escape('; '.join(nodes_dn))}", soft_wrap=True)
    out.print(
        f"admin_dn: {escape('; '.join(admins)) or '(none: issue one with --profile admin)'}", soft_wrap=True
    )
