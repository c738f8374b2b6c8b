"""How the CLI talks to people and scripts: rich tables for people, ``--json`` for scripts, and
errors as one line on standard error."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["colon", "console", "emit_json", "err_console", "fail", "json_option", "show_rows", "warn"]


def _console(stderr: bool = False) -> Console:
    """Piped output gets room for full ids and fingerprints (rich would cut them at 80 columns,
    or at $COLUMNS, which describes a terminal, not a pipe)."""
    stream = sys.stderr if stderr else sys.stdout
    # emoji=False: rich would turn ":AB:" and ":CD:" inside a colon fingerprint into emoji.
    return Console(stderr=stderr, highlight=False, emoji=False, width=None if stream.isatty() else 200)


console = _console()
err_console = _console(stderr=True)

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on standard error, then exit: the only way a command reports failure."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    sys.exit(code)


def warn(message: str) -> None:
    err_console.print(f"[bold yellow]warning:[/] {escape(message)}", soft_wrap=True)


def emit_json(payload: object) -> None:
    click.echo(json.dumps(payload, indent=2, default=str))


def show_rows(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], as_json: bool) -> None:
    """``rows`` as JSON (every key) or as a table of ``columns`` (key, heading) for people."""
    if as_json:
        emit_json(list(rows))
        return
    table = Table(*(heading for _, heading in columns))
    for row in rows:
        table.add_row(*(_cell(row.get(key)) for key, _ in columns))
    console.print(table)


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def colon(fingerprint: str) -> str:
    """A hex fingerprint as people compare them: upper case, colon-separated bytes."""
    return ":".join(fingerprint[i : i + 2] for i in range(0, len(fingerprint), 2)).upper()
