"""``csscert cert``: node, client and admin certificates signed by the active CA.

``issue`` generates a key and writes NAME.key, NAME.crt and the shared ca.crt into a folder that
may already hold other certificates of the same cluster; ``sign`` signs a CSR; ``renew`` re-issues
a certificate with the same names; ``list`` shows what is on record.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from csscert.cli.common import KEY_TYPES, service_for
from csscert.cli.output import colon, console, emit_json, escape, fail, json_option, show_rows, warn

if TYPE_CHECKING:
    from csscert.ca import NodeCertificate
    from csscert.model import IssuedCertificate
    from csscert.service import Service

PROFILE_CHOICE = click.Choice(["node", "client", "admin"])

project_option = click.option(
    "--project", "project_ref", default=None, help="Project (id or name; default: the region's project)."
)
days_option = click.option(
    "--days",
    type=click.IntRange(1, 36500),
    default=None,
    help="Validity in days (default 365; never past the CA's expiry, which is said when it applies).",
)


@click.group()
def cert() -> None:
    """Node, client and admin certificates signed by the active CA."""


def _project_id(service: Service, project_ref: str | None) -> str:
    return service.identity.resolve_project(project_ref or service.settings.region).id


def _targets(out_dir: Path, name: str) -> dict[str, Path]:
    return {"key": out_dir / f"{name}.key", "crt": out_dir / f"{name}.crt", "ca": out_dir / "ca.crt"}


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        fail(f"--out {out_dir} exists and is not a directory")


def _differs(path: Path, data: bytes) -> bool:
    try:
        return path.read_bytes() != data
    except FileNotFoundError:
        return True


def _capped(node: NodeCertificate) -> None:
    if node.requested_days is not None:
        warn(
            f"asked for {node.requested_days} days; the certificate ends with its CA on "
            f"{node.record.not_after.isoformat()} (run 'csscert ca rotate' for a CA that lives longer)"
        )


def _issued_json(node: NodeCertificate, files: dict[str, Path] | None) -> dict[str, Any]:
    record = node.record
    payload: dict[str, Any] = {
        "name": record.name,
        "subject": record.subject,
        "profile": record.profile,
        "serial": record.serial,
        "fingerprint_sha256": record.fingerprint_sha256,
        "not_after": record.not_after.isoformat(),
        "sans": [value for value in record.sans.split(",") if value],
        "capped_at_ca_expiry": node.requested_days is not None,
        "requested_days": node.requested_days,
    }
    if files is not None:
        payload["files"] = {k: str(v) for k, v in files.items()}
    return payload


def _report(node: NodeCertificate, files: dict[str, Path], as_json: bool, verb: str) -> None:
    _capped(node)
    if as_json:
        emit_json(_issued_json(node, files))
        return
    record = node.record
    out = console()
    out.print(
        f"{verb} {escape(record.name)} ({escape(record.subject)}, {record.profile}, serial {record.serial}), "
        f"valid until {record.not_after.isoformat()}",
        soft_wrap=True,
    )
    for kind, path in files.items():
        out.print(f"  {kind:4} {escape(str(path))}", soft_wrap=True)


@cert.command("issue")
@project_option
@click.option("--name", default=None, help="Certificate name: the files NAME.key/NAME.crt (default: the CN).")
@click.option(
    "--subject", default=None, help="Whole subject, RFC 4514, e.g. 'CN=node-1,OU=search,O=Example'."
)
@click.option("--org", default=None, help="O= of the subject (with CN=NAME).")
@click.option("--ou", "units", multiple=True, help="OU= of the subject (repeatable).")
@click.option(
    "--profile",
    type=PROFILE_CHOICE,
    default="node",
    show_default=True,
    help="node: serverAuth+clientAuth, DNS/IP required; client, admin: clientAuth.",
)
@click.option("--dns", "dns_names", multiple=True, help="DNS subject alternative name (repeatable).")
@click.option("--ip", "ips", multiple=True, help="IP subject alternative name (repeatable).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Output directory.")
@days_option
@click.option("--key-type", type=click.Choice(KEY_TYPES), help="Key type (default: --ca-key-type).")
@json_option
@click.pass_context
def cert_issue(
    ctx: click.Context,
    project_ref: str | None,
    name: str | None,
    subject: str | None,
    org: str | None,
    units: tuple[str, ...],
    profile: str,
    dns_names: tuple[str, ...],
    ips: tuple[str, ...],
    out_dir: Path,
    days: int | None,
    key_type: Any,
    as_json: bool,
) -> None:
    """Write NAME.key (PKCS#8, 0600), NAME.crt (certificate + CA) and ca.crt (trust bundle).

    Any number of certificates can go into one folder: ca.crt is written when it is absent and
    left alone when it already holds this CA bundle.
    """
    from csscert.ca.names import build_subject, common_name, validate_name
    from csscert.files import publish_new

    _check_out_dir(out_dir)
    with service_for(ctx) as service:
        project_id = _project_id(service, project_ref)
        subject_name = build_subject(name, subject, org, units)
        if name is None:
            name = common_name(subject_name)
            if name is None:
                fail("the subject has no CN: name the certificate with --name")
        validate_name(name)
        targets = _targets(out_dir, name)
        existing = [str(p) for p in (targets["key"], targets["crt"]) if p.exists() or p.is_symlink()]
        if existing:
            fail(
                f"refusing to overwrite {', '.join(existing)} "
                f"(use 'csscert cert renew {name}' to replace them)"
            )
        from csscert.ca.bundle import bundle_pem

        bundle = bundle_pem(service.authority.trusted(service.authority.scope_for(project_id)))
        ca_present = targets["ca"].exists() or targets["ca"].is_symlink()
        if ca_present and _differs(targets["ca"], bundle):
            fail(
                f"{targets['ca']} holds other CA certificates than this csscert's trust bundle (another "
                "csscert, or the CA was rotated since): issue into another folder, or renew the "
                "folder's certificates with 'csscert cert renew', which replaces ca.crt"
            )

        def deliver(node: NodeCertificate) -> None:
            if node.ca_bundle_pem != bundle:  # the bundle changed between the check and now
                raise FileExistsError(0, "the CA bundle changed meanwhile; run the command again")
            assert node.key_pem is not None
            out_dir.mkdir(parents=True, exist_ok=True)
            files = [(targets["key"], node.key_pem, 0o600), (targets["crt"], node.chain_pem, 0o644)]
            if not ca_present:
                files.append((targets["ca"], node.ca_bundle_pem, 0o644))
            publish_new(files)

        try:
            node = service.authority.issue_node(
                project_id,
                name,
                dns_names,
                ips,
                subject=subject_name,
                profile=profile,
                validity_days=days,
                key_type=key_type,
                deliver=deliver,
            )
        except FileExistsError as exc:
            fail(f"refusing to overwrite {exc.filename2 or exc.filename or exc.strerror}")
    _report(node, targets, as_json, "issued")


@cert.command("renew")
@click.argument("name")
@project_option
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Output directory.")
@days_option
@json_option
@click.pass_context
def cert_renew(
    ctx: click.Context, name: str, project_ref: str | None, out_dir: Path, days: int | None, as_json: bool
) -> None:
    """Re-issue NAME with the same subject, names, profile and key type: a new key and serial.

    Replaces NAME.key, NAME.crt and ca.crt in --out (regular files only); the old certificate
    is marked superseded.
    """
    from csscert.files import replace_all

    _check_out_dir(out_dir)
    targets = _targets(out_dir, name)
    with service_for(ctx) as service:
        project_id = _project_id(service, project_ref)

        def deliver(node: NodeCertificate) -> None:
            assert node.key_pem is not None
            out_dir.mkdir(parents=True, exist_ok=True)
            files = [(targets["key"], node.key_pem, 0o600), (targets["crt"], node.chain_pem, 0o644)]
            if _differs(targets["ca"], node.ca_bundle_pem):
                files.append((targets["ca"], node.ca_bundle_pem, 0o644))
            replace_all(files)

        node = service.authority.renew(project_id, name, validity_days=days, deliver=deliver)
    _report(node, targets, as_json, "renewed")


@cert.command("sign")
@click.option("--csr", "csr_file", type=click.Path(path_type=Path, dir_okay=False), required=True)
@project_option
@click.option("--profile", type=PROFILE_CHOICE, default="node", show_default=True)
@click.option("--name", default=None, help="Name on record (default: the CSR's CN).")
@click.option(
    "--out", "out_file", type=click.Path(path_type=Path), default=None, help="Chain file (default: stdout)."
)
@days_option
@json_option
@click.pass_context
def cert_sign(
    ctx: click.Context,
    csr_file: Path,
    project_ref: str | None,
    profile: str,
    name: str | None,
    out_file: Path | None,
    days: int | None,
    as_json: bool,
) -> None:
    """Sign a certificate signing request (PEM or DER) and write the certificate and its CA.

    The CSR's signature must verify, and it may not ask for more than the profile allows
    (serverAuth only for node, never CA rights); its DNS and IP names are checked like
    'cert issue' checks them.
    """
    from csscert.ca.csr import MAX_CSR_BYTES
    from csscert.files import write_new

    with open(csr_file, "rb") as handle:
        data = handle.read(MAX_CSR_BYTES + 1)
    if out_file is not None and (out_file.exists() or out_file.is_symlink()):
        fail(f"refusing to overwrite {out_file}")
    with service_for(ctx) as service:
        project_id = _project_id(service, project_ref)

        def deliver(node: NodeCertificate) -> None:
            if out_file is not None:
                write_new(out_file, node.chain_pem, 0o644)

        node = service.authority.sign_request(
            project_id, data, profile=profile, name=name, validity_days=days, deliver=deliver
        )
    if out_file is None:
        if as_json:
            _capped(node)
            emit_json({**_issued_json(node, None), "chain_pem": node.chain_pem.decode()})
        else:
            _capped(node)
            sys.stdout.write(node.chain_pem.decode())
            click.echo(
                f"signed {node.record.name} ({node.record.subject}), serial {node.record.serial}", err=True
            )
        return
    _report(node, {"crt": out_file}, as_json, "signed")


def status_of(cert: IssuedCertificate, retired: set[str], now: dt.datetime) -> str:
    if cert.status != "valid":
        return cert.status
    if cert.not_after <= now:
        return "expired"
    if cert.ca_id in retired:
        return "ca-retired"
    return "valid"


def certificate_rows(service: Service, certificates: Iterable[IssuedCertificate]) -> list[dict[str, Any]]:
    """Certificates on record as dicts (``cert list``, ``opensearch-config``): one lookup per
    distinct CA and project among them, never the whole store."""
    from csscert.ca.names import java_dn, parse_subject
    from csscert.model import CAState

    authorities = {ca.id: ca for ca in service.authority.authorities()}
    retired = {ca.id for ca in authorities.values() if ca.state is CAState.RETIRED}
    projects: dict[str, str] = {}
    now = dt.datetime.now(dt.UTC)
    rows = []
    for c in certificates:
        if c.project_id not in projects:
            found = service.store.project(c.project_id)
            projects[c.project_id] = found.name if found is not None else c.project_id
        ca = authorities.get(c.ca_id)
        subject = c.subject or f"CN={c.name}"
        rows.append(
            {
                "name": c.name,
                "project": projects[c.project_id],
                "project_id": c.project_id,
                "subject": subject,
                "dn": java_dn(parse_subject(subject)),
                "profile": c.profile,
                "sans": [value for value in c.sans.split(",") if value],
                "serial": c.serial,
                "fingerprint_sha256": c.fingerprint_sha256,
                "not_before": c.not_before.isoformat(),
                "not_after": c.not_after.isoformat(),
                "ca_fingerprint_sha256": ca.fingerprint_sha256 if ca else None,
                "ca_subject": ca.subject if ca else None,
                "status": status_of(c, retired, now),
                "key_type": c.key_type or None,
                "origin": c.origin,
                "revoked_at": c.revoked_at.isoformat() if c.revoked_at else None,
                "revocation_reason": c.revocation_reason,
            }
        )
    return rows


@cert.command("list")
@click.option("--project", "project_ref", default=None, help="Only this project (id or name).")
@click.option("--all", "show_all", is_flag=True, help="Also superseded certificates.")
@click.option("--after", default=None, help="Start after this serial (paging).")
@click.option("--limit", type=click.IntRange(1, 1000), default=1000, show_default=True)
@json_option
@click.pass_context
def cert_list(
    ctx: click.Context, project_ref: str | None, show_all: bool, after: str | None, limit: int, as_json: bool
) -> None:
    """Issued certificates in issue order: name, subject, names, serial, expiry, issuing CA and
    status, a page at a time (never the whole store at once)."""
    with service_for(ctx) as service:
        project_id = service.identity.resolve_project(project_ref).id if project_ref else None
        page = service.authority.certificates_page(project_id, after=after, limit=limit + 1)
        more = len(page) > limit
        rows = certificate_rows(service, page[:limit])
    if not show_all:
        rows = [row for row in rows if row["status"] != "superseded"]
    if not as_json:
        for row in rows:
            row["ca"] = colon(row["ca_fingerprint_sha256"] or "")[:23] + "..."
            row["not_after"] = row["not_after"][:19]
    columns = [
        ("name", "name"),
        ("subject", "subject"),
        ("profile", "profile"),
        ("sans", "names"),
        ("serial", "serial"),
        ("not_after", "not after (UTC)"),
        ("ca", "issuing CA (SHA-256)"),
        ("status", "status"),
        ("origin", "obtained by"),
    ]
    show_rows(rows, columns, as_json)
    if more:
        from csscert.cli.output import err_console

        err_console().print(f"more certificates follow: --after {page[limit - 1].serial}", soft_wrap=True)


def _register() -> None:
    from csscert.cli.issuance import revoke

    cert.add_command(revoke)


_register()
