"""``csscert cert``: node certificates signed by the active CA, delivered as files all or nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from csscert.ca import NodeCertificate
from csscert.cli.common import KEY_TYPES, service_for
from csscert.cli.output import console, emit_json, fail, json_option
from csscert.files import publish_new


@click.group()
def cert() -> None:
    """Node certificates signed by the active CA."""


@cert.command("issue")
@click.option("--project", "project_ref", required=True, help="Project (id or name).")
@click.option("--name", required=True, help="Node name (certificate CN and file name).")
@click.option("--dns", "dns_names", multiple=True, help="DNS subject alternative name (repeatable).")
@click.option("--ip", "ips", multiple=True, help="IP subject alternative name (repeatable).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Output directory.")
@click.option(
    "--days",
    type=click.IntRange(1, 36500),
    default=None,
    help="Validity in days (default 365, never past the CA).",
)
@click.option("--key-type", type=click.Choice(KEY_TYPES), help="Node key type (default: --ca-key-type).")
@json_option
@click.pass_context
def cert_issue(
    ctx: click.Context,
    project_ref: str,
    name: str,
    dns_names: tuple[str, ...],
    ips: tuple[str, ...],
    out_dir: Path,
    days: int | None,
    key_type: Any,
    as_json: bool,
) -> None:
    """Write NAME.key (PKCS#8, 0600), NAME.crt (certificate + chain) and ca.crt (trust bundle)."""
    safe_name = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    targets = {kind: out_dir / f"{safe_name}.{kind}" for kind in ("key", "crt")}
    targets["ca"] = out_dir / "ca.crt"
    if len(set(targets.values())) != len(targets):
        fail(f"--name {name!r} would write the node's files over ca.crt; choose another name")
    if out_dir.exists() and not out_dir.is_dir():
        fail(f"--out {out_dir} exists and is not a directory")
    existing = [str(p) for p in targets.values() if p.exists() or p.is_symlink()]
    if existing:
        fail(f"refusing to overwrite {', '.join(existing)}")

    def deliver(node: NodeCertificate) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        publish_new(
            [
                (targets["key"], node.key_pem, 0o600),
                (targets["crt"], node.chain_pem, 0o644),
                (targets["ca"], node.ca_bundle_pem, 0o644),
            ]
        )

    with service_for(ctx) as service:
        project_id = service.identity.resolve_project(project_ref).id
        try:
            node = service.authority.issue_node(
                project_id, name, dns_names, ips, validity_days=days, key_type=key_type, deliver=deliver
            )
        except FileExistsError as exc:
            fail(f"refusing to overwrite {exc.filename2 or exc.filename}")
        except OSError as exc:
            fail(f"could not write to {out_dir}: {exc.strerror or exc}")
    record = node.record
    if as_json:
        emit_json(
            {
                "serial": record.serial,
                "fingerprint_sha256": record.fingerprint_sha256,
                "not_after": record.not_after.isoformat(),
                "sans": record.sans.split(","),
                "files": {k: str(v) for k, v in targets.items()},
            }
        )
        return
    console.print(f"issued {name} (serial {record.serial}), valid until {record.not_after.isoformat()}")
    for kind, path in targets.items():
        console.print(f"  {kind:4} {path}")
