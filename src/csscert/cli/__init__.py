"""``csscert``: serve the API and administer projects, CAs, node certificates and identities.

The root group lists each command group by name and loads its module only when it runs (one
module per group, as step-ca's ``command/ca/*.go``): ``csscert --help`` imports no server,
database or crypto code, and no command imports rich, pydantic or SQLAlchemy before it needs
them (``bench/cli.py`` measures it). Every error a command raises is turned into one line and an exit code
in :meth:`CsscertGroup.invoke`, the only place that does so.
"""

from __future__ import annotations

import importlib
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import click

from csscert.audit import ACTOR, cli_actor
from csscert.cli.common import KEY_TYPES, one_line
from csscert.cli.output import fail
from csscert.logs import configure as configure_logging

__all__ = ["cli", "main"]

# name -> (module under csscert.cli, attribute, one-line help shown by `csscert --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "init": ("init", "init", "Create the data directory: database, CA, first project, user and keys."),
    "serve": ("serve", "serve", "Run the API server (creates the data directory on first start)."),
    "db": ("db", "db", "Database schema."),
    "project": ("project", "project", "Projects (tenants)."),
    "ca": ("ca", "ca", "Certificate authorities."),
    "cert": ("cert", "cert", "Node, client and admin certificates signed by the active CA."),
    "opensearch-config": (
        "opensearch",
        "opensearch_config",
        "Write opensearch.yml security lines for issued certificates.",
    ),
    "user": ("user", "user", "Users of the default domain and their projects."),
    "credential": ("credential", "credential", "Access keys (AK/SK) for SDK-HMAC-SHA256 signing."),
    "token": ("token", "token", "X-Auth-Token tokens (Fernet, 24 hours)."),
    "audit": ("audit", "audit", "The audit trail: every change, who made it, from where."),
    "acme": ("acme", "acme", "The ACME server: External Account Binding keys (acme eab create/list/revoke)."),
    "master-key": ("masterkey", "master_key", "Rotate the master key that seals every secret."),
    "backup": ("backup", "backup", "Write a consistent, checksummed backup of the store while it serves."),
    "restore": ("backup", "restore", "Restore a backup into an empty data directory or database."),
    "download": ("client", "download", "Download the certificate through the API and print its fingerprint."),
    "verify": ("client", "verify", "Verify a TLS server's chain and hostname against a CA file."),
}


class CsscertGroup(click.Group):
    """The root group: lazy subcommands, and one-line errors for everything below it."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, attribute, _ = entry
        command = getattr(importlib.import_module(f"csscert.cli.{module}"), attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the table above, without importing every module for its help."""
        rows = [(name, entry[2]) for name, entry in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        ACTOR.set(cli_actor())  # every change this command makes is recorded as this person's
        # Changes are logged (standard error) as well as recorded; other lines only from warnings up.
        configure_logging("WARNING")
        logging.getLogger("csscert.audit").setLevel(logging.INFO)
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except Exception as exc:
            shown = one_line(exc)
            if shown is None:
                raise
            fail(*shown)


@click.group(cls=CsscertGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data-dir", type=click.Path(path_type=Path), help="Data directory [CSSCERT_DATA_DIR].")
@click.option("--database-url", help="SQLAlchemy URL instead of SQLite [CSSCERT_DATABASE_URL].")
@click.option("--region", help="Region name, also the first project's name [CSSCERT_REGION].")
@click.option(
    "--ca-scope", type=click.Choice(["region", "project"]), help="One CA per region (default) or per project."
)
@click.option("--ca-key-type", type=click.Choice(KEY_TYPES), help="Key of new CAs (default rsa2048).")
@click.option("--ca-validity-days", type=int, help="Validity of new CAs (default 3650).")
@click.option("--ca-subject", help="Subject of new CAs, RFC 4514 (default CN=CloudSearchService).")
@click.version_option(package_name="csscert")
@click.pass_context
def cli(ctx: click.Context, /, **options: Any) -> None:
    """csscert: the Cloud Search Service certificate download API, with its own CA and identity."""
    ctx.obj = options


def main() -> None:
    if not sys.warnoptions:
        # Library warnings (e.g. cryptography's about a malformed certificate in a system CA
        # file) are for developers; a person using the command gets one-line errors only.
        # -W or PYTHONWARNINGS brings them back.
        warnings.simplefilter("ignore")
    cli(auto_envvar_prefix=None)
