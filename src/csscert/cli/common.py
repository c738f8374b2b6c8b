"""What every command shares: settings from flags and environment, opening the service, and the
one place that turns any error into one line (cause and fix) and an exit code.

Nothing heavy is imported at module level: pydantic, SQLAlchemy, cryptography and the service
come in when a command opens the service, so ``csscert --help`` and ``--version`` stay instant.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from csscert.cli.output import fail
from csscert.errors import CsscertError

if TYPE_CHECKING:
    from csscert.service import FirstStart, Service
    from csscert.settings import Settings

__all__ = [
    "KEY_TYPES",
    "describe_database_error",
    "describe_os_error",
    "one_line",
    "open_service",
    "service_for",
    "settings_for",
]

# The same names as csscert.settings.KeyType (a unit test keeps them equal); spelled out here so
# that building the root group's options does not import pydantic.
KEY_TYPES = ["rsa2048", "rsa3072", "rsa4096", "p256", "p384"]

POINT_ELSEWHERE = "or point at other data with --data-dir or CSSCERT_DATA_DIR"


def settings_for(ctx: click.Context, **overrides: Any) -> Settings:
    """Settings from the root group's flags, a command's own flags, and ``CSSCERT_*`` variables."""
    from pydantic import ValidationError

    from csscert.settings import Settings

    root = ctx.find_root()
    options = {k: v for k, v in {**(root.obj or {}), **overrides}.items() if v is not None}
    try:
        return Settings(**options)
    except ValidationError as exc:
        fail("; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()))


def open_service(
    settings: Settings, *, create: bool = False, bootstrap: bool = False, schema_only: bool = False
) -> tuple[Service, FirstStart | None]:
    """The service on existing data; only ``create`` (``serve``, ``init``) may make a data
    directory, a database or a first CA. Every setup failure becomes one line."""
    from csscert.service import Service

    try:
        service = Service(settings, create=create)
    except ImportError as exc:  # e.g. a PostgreSQL URL without the driver
        fail(
            f"the database driver {exc.name or ''} is not installed "
            "(for PostgreSQL: pip install 'csscert[postgres]')"
        )
    except Exception as exc:
        shown = one_line(exc, settings)
        if shown is None:
            raise
        fail(*shown)
    try:
        first = service.initialize(create=create, bootstrap=bootstrap, schema_only=schema_only)
    except BaseException as exc:
        service.close()
        shown = one_line(exc, settings) if isinstance(exc, Exception) else None
        if shown is None:
            raise
        fail(*shown)
    return service, first


@contextmanager
def service_for(ctx: click.Context, *, schema_only: bool = False, **overrides: Any) -> Iterator[Service]:
    settings = settings_for(ctx, **overrides)
    service, _ = open_service(settings, schema_only=schema_only)
    try:
        yield service
    except Exception as exc:
        shown = one_line(exc, service.settings)
        if shown is None:
            raise
        fail(*shown)
    finally:
        service.close()


def describe_database_error(exc: Exception, settings: Settings | None = None) -> str:
    """One line about a database failure: the driver's message (never SQL or parameters), and for
    the failures people can fix themselves, the fix."""
    orig = getattr(exc, "orig", None)
    detail = (str(orig) if orig is not None else str(exc)).strip().splitlines()[0] if str(exc) else ""
    where = ""
    if settings is not None and settings.uses_embedded_database:
        where = str((settings.data_dir / "csscert.db").resolve())
    lowered = detail.lower()
    if "readonly database" in lowered or "read-only" in lowered:
        place = f" {where}" if where else ""
        return (
            f"database error: cannot write the database{place}: it or its directory is read-only "
            f"(give the user running csscert write access to it, {POINT_ELSEWHERE})"
        )
    if "disk i/o error" in lowered and settings is not None and _nearly_full(settings.data_dir):
        lowered = "disk is full"  # SQLite says I/O error when its WAL cannot grow on a full disk
    if "disk is full" in lowered or "no space left" in lowered:
        place = f" holding {where}" if where else ""
        return f"database error: the disk{place} is full: free some space and run the command again"
    if "unable to open database file" in lowered and where:
        return (
            f"database error: cannot open {where} (missing directory or no permission): "
            f"check the data directory, {POINT_ELSEWHERE}"
        )
    if "database is locked" in lowered:
        return "database error: the database stayed locked by another process for 10 s; try again"
    return f"database error: {detail or type(exc).__name__}"


def _nearly_full(path: Path) -> bool:
    try:
        stats = os.statvfs(path)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < 1024 * 1024


_OS_FIXES = {
    errno.ENOSPC: "the disk is full: free some space and run the command again",
    errno.EDQUOT: "the disk quota is used up: free some space and run the command again",
    errno.EACCES: "permission denied: give the user running csscert access to it, or choose another path",
    errno.EPERM: "operation not permitted: give the user running csscert access, or choose another path",
    errno.EROFS: "the file system is read-only: choose a writable path",
    errno.ENOTDIR: "a part of the path is a file, not a directory: choose another path",
    errno.EISDIR: "it is a directory: give a file name",
    errno.EEXIST: "it already exists: remove it or choose another name",
    errno.ENOENT: "it does not exist: check the path",
    errno.ELOOP: "too many symbolic links: give the real path",
    errno.ENAMETOOLONG: "the name is too long: choose a shorter path",
}


def describe_os_error(exc: OSError) -> str:
    """``OSError`` as one line: the path, the cause and what to do about it."""
    where = f"{exc.filename}: " if exc.filename else ""
    fix = _OS_FIXES.get(exc.errno or -1)
    if fix is None:
        return f"{where}{exc.strerror or exc}"
    return f"{where}{fix}"


def one_line(exc: BaseException, settings: Settings | None = None) -> tuple[str, int] | None:
    """The message and exit code for an error a person should see as one line, or None for a bug
    (which keeps its traceback)."""
    if isinstance(exc, CsscertError):
        return str(exc), exc.exit_code
    if isinstance(exc, OSError):
        return (describe_os_error(exc) if exc.errno else str(exc)), 1
    module = type(exc).__module__
    if module.startswith(("sqlalchemy", "sqlite3", "psycopg")):
        return describe_database_error(exc, settings), 1  # type: ignore[arg-type]
    return None
