"""Writing files so that a crash, a full disk or a race never leaves half of one behind.

Every file csscert writes (the master key, the bootstrap credentials, node keys and chains, a
downloaded certificate) goes through here. The pattern is always the same, "stage then link":

1. write the whole content to a private temporary file beside the target (``O_EXCL``, the final
   mode from the start, so a secret is never readable by others even for a moment), fsync it;
2. publish it with ``link()`` (fails if the target exists: never overwrites by accident) or
   ``rename()`` (replaces, atomically), and remove the temporary name.

A reader therefore sees no file, the old file or the complete new one; never a partial one.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "NotARegularFile",
    "create_private",
    "fsync_directory",
    "private_directory",
    "publish_new",
    "read_if_exists",
    "replace_all",
    "streamed_new",
    "write_new",
    "write_replacing",
]


class NotARegularFile(OSError):
    """The target exists and is a symlink, directory, device or pipe: we only ever replace regular
    files (replacing ``/dev/stdout`` or a symlink would surprise whoever made it)."""


def _stage(path: Path, data: bytes, mode: int) -> Path:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask must not widen or narrow what we asked for
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


@contextmanager
def _staged(files: Sequence[tuple[Path, bytes, int]]) -> Iterator[list[Path]]:
    staged: list[Path] = []
    try:
        for path, data, mode in files:
            staged.append(_stage(path, data, mode))
        yield staged
    finally:
        for tmp in staged:
            tmp.unlink(missing_ok=True)


def publish_new(files: Sequence[tuple[Path, bytes, int]]) -> None:
    """Create every ``(path, content, mode)`` file or none of them.

    Raises :class:`FileExistsError` (with the path) when any target already exists; whatever
    was published before the failure is removed again.
    """
    published: list[Path] = []
    with _staged(files) as staged:
        try:
            for (path, _, _), tmp in zip(files, staged, strict=True):
                os.link(tmp, path)
                published.append(path)
        except BaseException:
            for path in published:
                path.unlink(missing_ok=True)
            raise


def write_new(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Create ``path`` with ``data``, complete or not at all; :class:`FileExistsError` if it exists."""
    publish_new([(path, data, mode)])


@contextmanager
def streamed_new(path: Path, mode: int = 0o600) -> Iterator[BinaryIO]:
    """Create ``path`` from content written piece by piece (a backup: never all in memory),
    complete or not at all: the pieces go to a private temporary file, which is fsynced and
    linked into place only when the ``with`` block ends without an error. Raises
    :class:`FileExistsError` when ``path`` exists (checked first and again at the link)."""
    if os.path.lexists(path):
        raise FileExistsError(17, "File exists", str(path))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)
        fsync_directory(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def fsync_directory(path: Path) -> None:
    """Make a rename or link in ``path`` durable (the directory entry, not only the file)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_replaceable(path: Path) -> None:
    try:
        current = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(current.st_mode):
        raise NotARegularFile(f"{path} exists and is not a regular file; refusing to replace it")


def write_replacing(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Create or atomically replace the regular file ``path`` (never a symlink or device)."""
    replace_all([(path, data, mode)])


def replace_all(files: Sequence[tuple[Path, bytes, int]]) -> None:
    """Create or replace several regular files: every one is staged complete before the first
    is renamed into place, so a full disk or a refused target changes none of them."""
    for path, _, _ in files:
        _check_replaceable(path)
    with _staged(files) as staged:
        for (path, _, _), tmp in zip(files, staged, strict=True):
            os.replace(tmp, path)


def read_if_exists(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def private_directory(path: Path) -> None:
    """Make ``path`` (and its parents) if missing, and make it and everything in it private to
    its owner: the directory (and any directory in it) 0700, every regular file 0600, whatever
    the umask was when they were made. Symlinks are left alone (never followed)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    _tighten(path, 0o700)
    for root, dirs, files in os.walk(path):
        for name in dirs:
            _tighten(Path(root) / name, 0o700)
        for name in files:
            _tighten(Path(root) / name, 0o600)


def _tighten(path: Path, mode: int) -> None:
    try:
        current = os.lstat(path)
        if stat.S_ISLNK(current.st_mode) or stat.S_IMODE(current.st_mode) == mode:
            return
        if stat.S_ISDIR(current.st_mode) or stat.S_ISREG(current.st_mode):
            os.chmod(path, mode)
    except OSError:
        pass  # not ours to change (another owner), or gone meanwhile


def create_private(path: Path) -> None:
    """Create the empty file ``path`` with mode 0600 unless it exists (for files another library
    creates with its own mode: SQLite gives its -wal and -shm files the database file's mode)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
