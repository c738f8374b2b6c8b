"""``csscert ca import`` and ``csscert ca intermediate``: CAs csscert did not make itself."""

from __future__ import annotations

from pathlib import Path

import click

from csscert.cli.common import service_for
from csscert.cli.output import colon, console, emit_json, fail, json_option

_FILE = click.Path(path_type=Path, dir_okay=False, exists=True)


def _read(path: Path | None) -> bytes | None:
    return None if path is None else path.read_bytes()


@click.command("import")
@click.option("--cert", "cert_file", type=_FILE, required=True, help="The CA certificate (PEM or DER).")
@click.option(
    "--key", "key_file", type=_FILE, required=True, help="Its private key (PEM or DER, unencrypted)."
)
@click.option("--chain", "chain_file", type=_FILE, help="Certificates above it up to the root (PEM).")
@click.option("--project", "project_ref", help="Project (id or name); needed in project scope.")
@click.option(
    "--as",
    "role",
    type=click.Choice(["active", "trusted"]),
    default="active",
    show_default=True,
    help="active: it signs from now on (the previous active CA stays trusted); trusted: bundle only.",
)
@json_option
@click.pass_context
def ca_import(
    ctx: click.Context,
    cert_file: Path,
    key_file: Path,
    chain_file: Path | None,
    project_ref: str | None,
    role: str,
    as_json: bool,
) -> None:
    """Take an existing CA (e.g. one a cluster already trusts, or made by 'openssl req -x509').

    The key is sealed under the master key; the files given can then be removed."""
    from csscert.ca.external import ExternalAuthorities
    from csscert.cli.ca import _ca_json, _scope

    with service_for(ctx) as service:
        scope = _scope(service, project_ref)
        external = ExternalAuthorities(service.authority, service.store, service.sealer, service.settings)
        record = external.import_ca(
            scope, cert_file.read_bytes(), key_file.read_bytes(), _read(chain_file), active=role == "active"
        )
        info = _ca_json(record, service.settings.ca_expiry_warning_days)
    if as_json:
        emit_json(info)
    else:
        console().print(f"imported CA {colon(record.fingerprint_sha256)} ({record.subject}) as {role}")


@click.command("intermediate")
@click.option(
    "--csr-out", type=click.Path(path_type=Path, dir_okay=False), help="Write a CSR for a new CA key here."
)
@click.option("--subject", help="Subject of the CSR, RFC 4514 (default: --ca-subject).")
@click.option(
    "--install", "install_file", type=_FILE, help="The CA certificate the root signed for that CSR."
)
@click.option(
    "--chain", "chain_file", type=_FILE, help="With --install: the certificates above it up to the root."
)
@click.option("--project", "project_ref", help="Project (id or name); needed in project scope.")
@json_option
@click.pass_context
def ca_intermediate(
    ctx: click.Context,
    csr_out: Path | None,
    subject: str | None,
    install_file: Path | None,
    chain_file: Path | None,
    project_ref: str | None,
    as_json: bool,
) -> None:
    """Make csscert an intermediate CA under another (e.g. a corporate) root, in two steps:

    1. 'ca intermediate --csr-out FILE': a new key (sealed, pending) and its CSR, to be signed as
    a CA by the root; 2. 'ca intermediate --install CERT --chain ROOT_AND_ABOVE': it becomes the
    active CA. The download then serves the root; node certificates carry the chain up to it."""
    from csscert.ca.external import ExternalAuthorities
    from csscert.cli.ca import _ca_json, _scope
    from csscert.files import write_new

    if (csr_out is None) == (install_file is None):
        fail("give either --csr-out FILE (step 1) or --install CERT --chain FILE (step 2)")
    if install_file is not None and chain_file is None:
        fail("--install needs --chain: the certificates above the signed one, up to the root")
    with service_for(ctx) as service:
        scope = _scope(service, project_ref)
        external = ExternalAuthorities(service.authority, service.store, service.sealer, service.settings)
        if csr_out is not None:
            if csr_out.exists():
                fail(f"{csr_out} already exists: remove it or choose another name")
            request = external.request_intermediate(scope, subject)
            write_new(csr_out, request.csr_pem, 0o644)
            if as_json:
                emit_json({"pending_id": request.id, "csr": str(csr_out)})
            else:
                console().print(
                    f"wrote {csr_out}: have it signed as a CA by the root, then run "
                    "'csscert ca intermediate --install CERT --chain ROOT'"
                )
            return
        assert install_file is not None and chain_file is not None
        record = external.install_intermediate(scope, install_file.read_bytes(), chain_file.read_bytes())
        info = _ca_json(record, service.settings.ca_expiry_warning_days)
    if as_json:
        emit_json(info)
    else:
        console().print(
            f"intermediate CA {colon(record.fingerprint_sha256)} is active; the download serves its root"
        )
