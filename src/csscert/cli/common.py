"""What every command shares: settings from flags and environment, opening the service, and the
one place that turns any error into one line and an exit code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, get_args

import click
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from csscert.cli.output import fail
from csscert.errors import CsscertError
from csscert.service import FirstStart, Service
from csscert.settings import KeyType, Settings

__all__ = ["KEY_TYPES", "database_error", "one_line", "open_service", "service_for", "settings_for"]

KEY_TYPES = list(get_args(KeyType))


def settings_for(ctx: click.Context, **overrides: Any) -> Settings:
    """Settings from the root group's flags, a command's own flags, and ``CSSCERT_*`` variables."""
    root = ctx.find_root()
    options = {k: v for k, v in {**(root.obj or {}), **overrides}.items() if v is not None}
    try:
        return Settings(**options)
    except ValidationError as exc:
        fail("; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()))


def database_error(exc: SQLAlchemyError) -> str:
    """One line about a database failure (the driver's message, not SQL or parameters)."""
    orig = getattr(exc, "orig", None)
    return f"database error: {(str(orig) if orig is not None else str(exc)).splitlines()[0]}"


def open_service(settings: Settings, *, bootstrap: bool = False) -> tuple[Service, FirstStart | None]:
    try:
        service = Service(settings, create=True)
    except ImportError as exc:  # e.g. a PostgreSQL URL without the driver
        fail(
            f"the database driver {exc.name or ''} is not installed "
            "(for PostgreSQL: pip install 'csscert[postgres]')"
        )
    try:
        first = service.initialize(bootstrap=bootstrap)
    except BaseException:
        service.close()
        raise
    return service, first


@contextmanager
def service_for(ctx: click.Context, **overrides: Any) -> Iterator[Service]:
    service, _ = open_service(settings_for(ctx, **overrides))
    try:
        yield service
    finally:
        service.close()


def one_line(exc: BaseException) -> tuple[str, int] | None:
    """The message and exit code for an error a person should see as one line, or None for a bug
    (which keeps its traceback)."""
    if isinstance(exc, CsscertError):
        return str(exc), exc.exit_code
    if isinstance(exc, SQLAlchemyError):
        return database_error(exc), 1
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}", 1
    return None
