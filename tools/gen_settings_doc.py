"""Write the settings reference into README.md (between the settings markers) from `Settings`.

Every field of :class:`csscert.settings.Settings` becomes one row: its `CSSCERT_*` variable, the
command-line flag that sets it (found on the root group and on `serve`), its default and its
description. `--check` exits 1 when README.md is out of date (a unit test runs it).

    .venv/bin/python tools/gen_settings_doc.py [--check]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import SecretStr

from csscert.cli import cli
from csscert.cli.serve import serve
from csscert.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN = "<!-- settings:begin (written by tools/gen_settings_doc.py) -->"
END = "<!-- settings:end -->"


def _flags() -> dict[str, str]:
    found: dict[str, str] = {}
    for command, where in ((cli, ""), (serve, "serve ")):
        for param in command.params:
            if isinstance(param, click.Option) and param.name in Settings.model_fields:
                found[param.name] = f"`{where}{param.opts[0]}`"
    return found


def _default(name: str, value: Any) -> str:
    if value is None:
        return {
            "master_key": "generated into `master.key`",
            "database_url": "SQLite in the data directory",
            "public_url": "from the request's Host",
        }.get(name, "none")
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, bool):
        value = str(value).lower()
    return f"`{value}`"


def render() -> str:
    flags = _flags()
    rows = ["| variable | flag | default | what it sets |", "| --- | --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        default = _default(name, field.default)
        rows.append(f"| `CSSCERT_{name.upper()}` | {flags.get(name, '')} | {default} | {description} |")
    return "\n".join([BEGIN, *rows, END])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is out of date")
    args = parser.parse_args()
    text = README.read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        sys.exit(f"{README} has no settings markers")
    updated = pattern.sub(lambda _: render(), text)
    if args.check:
        if updated != text:
            sys.exit("README.md's settings reference is out of date: run python tools/gen_settings_doc.py")
        return
    README.write_text(updated)


if __name__ == "__main__":
    main()
