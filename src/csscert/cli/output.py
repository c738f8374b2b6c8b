"""How the CLI talks to people and scripts: rich tables for people, ``--json`` for scripts, and
errors as one line on standard error.

rich is imported on first use only: ``csscert --version`` and a command that prints one line
never pay for it (it is about a tenth of a second of start-up).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "colon",
    "console",
    "emit_json",
    "err_console",
    "escape",
    "fail",
    "json_option",
    "show_page",
    "show_pairs",
    "show_rows",
    "warn",
]


def _console(stderr: bool = False) -> Console:
    """Piped output gets room for full ids and fingerprints (rich would cut them at 80 columns,
    or at $COLUMNS, which describes a terminal, not a pipe)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # emoji=False: rich would turn ":AB:" and ":CD:" inside a colon fingerprint into emoji.
    return Console(stderr=stderr, highlight=False, emoji=False, width=None if stream.isatty() else 200)


@cache
def console() -> Console:
    return _console()


@cache
def err_console() -> Console:
    return _console(stderr=True)


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on standard error, then exit: the only way a command reports failure."""
    # Plain click.echo: an error must not depend on rich (nor cost its import).
    click.echo(f"error: {' '.join(message.split())}", err=True)
    sys.exit(code)


def warn(message: str) -> None:
    click.echo(f"warning: {' '.join(message.split())}", err=True)


def emit_json(payload: object) -> None:
    click.echo(json.dumps(payload, indent=2, default=str))


def show_rows(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], as_json: bool) -> None:
    """``rows`` as JSON (every key) or as a table of ``columns`` (key, heading) for people."""
    if as_json:
        emit_json(list(rows))
        return
    from rich.table import Table

    table = Table(*(heading for _, heading in columns))
    for row in rows:
        table.add_row(*(escape(_cell(row.get(key))) for key, _ in columns))
    console().print(table)


def show_page(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[tuple[str, str]],
    as_json: bool,
    *,
    more: bool,
    cursor: str,
    what: str,
) -> None:
    """One page of a listing (:func:`show_rows`) and, when more follow, the ``--after`` that
    continues it (on standard error, so a script's JSON stays one document)."""
    show_rows(rows, columns, as_json)
    if more and rows:
        err_console().print(f"more {what} follow: --after {escape(str(rows[-1][cursor]))}", soft_wrap=True)


def show_pairs(pairs: Sequence[tuple[str, str]]) -> None:
    """Label / value lines for one record (``ca show``)."""
    from rich.table import Table

    table = Table(show_header=False, box=None)
    for label, value in pairs:
        table.add_row(label, escape(value))
    console().print(table)


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def colon(fingerprint: str) -> str:
    """A hex fingerprint as people compare them: upper case, colon-separated bytes (the one form
    every human-readable output uses; JSON carries plain lower-case hex, as the API does)."""
    plain = fingerprint.replace(":", "").lower()
    return ":".join(plain[i : i + 2] for i in range(0, len(plain), 2)).upper()
