"""Which master key is current, recovering an interrupted rotation, and ``master-key rotate``.

The database names the master key its secrets are sealed under: the meta row
``master_key_check`` holds :func:`csscert.sealing.key_check` of it (an HMAC of a fixed label under
an HKDF-derived key: it identifies the key and reveals nothing about it). Every process makes
that key its sealer's primary, at start-up (:func:`settle`) and whenever the change feed reports
the row changed, so all of them seal under the key the database is at.

Rotation with a key file (docs/architecture.md, "Master-key rotation", has the state table):

1. ``master.key.new`` is written (stage-then-link, fsynced, directory fsynced);
2. ONE transaction re-seals every registered column under the new key and sets the check row;
3. after the commit, ``master.key.new`` is renamed over ``master.key`` (atomic; directory fsynced).

A process killed at any point leaves either (no ``.new``), or (``.new`` and the database under the
old key), or (``.new`` and the database under the new key). :func:`settle`, run by every start
under the data directory's key lock, resolves the last two by the check row: it deletes a ``.new``
the database is not under, or renames it into place when it is. So the next start finds exactly
one key file, and it is the key every secret is under.

With ``CSSCERT_MASTER_KEY`` (several hosts), there are no files: every host is given the new key
as ``CSSCERT_MASTER_KEY`` and the old one as ``CSSCERT_MASTER_KEY_PREVIOUS``; hosts keep sealing under
whichever key the check row names; ``rotate`` re-seals everything under ``CSSCERT_MASTER_KEY`` in one
transaction, and the feed tells every running host to seal under it from then on.
"""

from __future__ import annotations

import fcntl
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from csscert.audit import AuditEntry
from csscert.custody.registry import SEALED_COLUMNS, is_sealed
from csscert.errors import ServiceUnavailable
from csscert.files import fsync_directory, write_new
from csscert.sealing import (
    MASTER_KEY_CHECK,
    MASTER_KEY_FILE,
    NEW_MASTER_KEY_FILE,
    MasterKeyError,
    Sealer,
    decode_master_key,
    generate_master_key,
    key_check,
    load_master_key,
)
from csscert.settings import Settings
from csscert.store import SqlStore, exclusive
from csscert.store import schema as t
from csscert.store.custody import CustodyStore

__all__ = [
    "KILL_AT_ENV",
    "MasterKeyChanged",
    "Rotation",
    "open_sealer",
    "rotate",
    "settle",
    "write_guard",
]

#: Test hook: ``CSSCERT_TEST_KILL_AT=<step>`` makes ``master-key rotate`` SIGKILL itself at that
#: step (the crash tests kill the real command at every step). Steps: see :data:`STEPS`.
KILL_AT_ENV = "CSSCERT_TEST_KILL_AT"
STEPS = ("new-key-written", "resealing", "before-commit", "committed", "swapped")
_LOCK_FILE = ".rotation.lock"
_SEALING_KINDS = frozenset({"access_key", "ca", "eab_key", "fernet_key", "pending_ca"})


class MasterKeyChanged(ServiceUnavailable):
    """A write sealed a secret under a master key the database was rotated away from meanwhile."""


def _step(name: str) -> None:
    if os.environ.get(KILL_AT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _file_keys(data_dir: Path) -> list[bytes]:
    """The keys in the data directory, the rotation's new one first (read in that order, so a
    rename between the two reads still yields the new key once)."""
    keys = []
    for name in (NEW_MASTER_KEY_FILE, MASTER_KEY_FILE):
        path = data_dir / name
        try:
            keys.append(decode_master_key(path.read_text(), str(path)))
        except (FileNotFoundError, MasterKeyError):
            continue
    return keys


def open_sealer(settings: Settings, *, create: bool) -> Sealer:
    """The sealer of a process: with ``CSSCERT_MASTER_KEY`` that key (and the previous one during
    a rotation); else the data directory's ``master.key`` (created by a first start), re-read
    from the directory whenever a blob opens under none of the keys known."""
    if settings.master_key is not None:
        primary = load_master_key(settings.master_key.get_secret_value(), settings.data_dir, create=False)
        previous = settings.master_key_previous
        others = (
            [decode_master_key(previous.get_secret_value(), "CSSCERT_MASTER_KEY_PREVIOUS")]
            if previous
            else []
        )
        return Sealer(primary, *others)
    primary = load_master_key(None, settings.data_dir, create=create)
    return Sealer(primary, source=lambda: _file_keys(settings.data_dir))


@contextmanager
def _key_lock(data_dir: Path) -> Iterator[None]:
    """The data directory's key files change under this lock only (rotate, and settle)."""
    fd = os.open(data_dir / _LOCK_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock (so does a SIGKILL)


def _opens_sample(store: SqlStore, key: bytes) -> bool | None:
    """Whether ``key`` opens the first sealed value in the store (None: nothing is sealed yet)."""
    custody, sealer = CustodyStore(store), Sealer(key)
    for column in SEALED_COLUMNS:
        found = custody.first_sealed(column.table, column.key, column.sealed)
        if found is None or not is_sealed(found[1]):
            continue
        try:
            sealer.open(found[1], column.context(found[0]))
        except MasterKeyError:
            return False
        return True
    return None


def _settle_files(settings: Settings, store: SqlStore) -> None:
    """Resolve a rotation that stopped between writing ``master.key.new`` and renaming it."""
    new_path = settings.data_dir / NEW_MASTER_KEY_FILE
    if not new_path.exists():
        return
    try:
        new_key = decode_master_key(new_path.read_text(), str(new_path))
    except MasterKeyError:
        committed = False  # cut short before its content was complete: cannot be the database's key
    else:
        check = store.get_meta(MASTER_KEY_CHECK)
        committed = key_check(new_key) == check if check is not None else bool(_opens_sample(store, new_key))
    if committed:
        os.replace(new_path, settings.data_dir / MASTER_KEY_FILE)
    else:
        new_path.unlink()
    fsync_directory(settings.data_dir)


def settle(settings: Settings, store: SqlStore, sealer: Sealer) -> None:
    """At start-up, after migrations: finish or undo an interrupted rotation, make the key the
    database names the sealer's primary, and record that name if the database has none yet.
    Raises :class:`MasterKeyError` when no key this process has is the database's."""
    # Only when a rotation left its file (checked again under the lock: a rotation running now
    # holds it, and one that starts after this check finds no .new of ours to race with).
    if settings.master_key is None and (settings.data_dir / NEW_MASTER_KEY_FILE).exists():
        with _key_lock(settings.data_dir):
            _settle_files(settings, store)
        sealer.reload()
    check = store.get_meta(MASTER_KEY_CHECK)
    if check is not None:
        if not sealer.follow(check):
            raise MasterKeyError(
                f"no master key given opens this database (its secrets are sealed under the key whose "
                f"check is {check[:16]}...; see 'csscert master-key check')"
            )
        return
    # Data from before checks were recorded: name the key that opens it (or, empty, the primary).
    for key in sealer.known_keys():
        if _opens_sample(store, key) in (True, None):
            sealer.follow(key_check(key))
            store.set_meta(MASTER_KEY_CHECK, key_check(key))
            return
    raise MasterKeyError("the master key does not open the secrets in this database")


def write_guard(sealer: Sealer) -> Callable[[Any], None]:
    """A check in every write transaction that may have sealed something: the database must still
    be under the key this process seals with (a rotation may have committed since the secret was
    sealed). Writers are serialised, so the check cannot race a rotation."""

    def guard(tx: Any) -> None:
        if ("meta", MASTER_KEY_CHECK) in tx.changes:
            return  # the rotation itself
        if not any(kind in _SEALING_KINDS for kind, _ in tx.changes):
            return
        current = tx.execute(select(t.meta.c.value).where(t.meta.c.key == MASTER_KEY_CHECK)).scalar()
        if current is not None and current != sealer.check:
            sealer.follow(current)
            raise MasterKeyChanged(
                "the master key was rotated while this change was being made; "
                "nothing was changed: run it again"
            )

    return guard


@dataclass(frozen=True)
class Rotation:
    counts: dict[str, int]
    old_check: str
    new_check: str
    key_file: Path | None


def rotate(settings: Settings, store: SqlStore, sealer: Sealer) -> Rotation:
    """Re-seal every registered secret under a new master key in one transaction (module docstring).

    With a key file the new key is generated here; with ``CSSCERT_MASTER_KEY`` the new key is that
    setting and the old one ``CSSCERT_MASTER_KEY_PREVIOUS``."""
    from_file = settings.master_key is None
    lock = _key_lock(settings.data_dir) if from_file else _no_lock()
    with lock, exclusive(store):
        if from_file:
            _settle_files(settings, store)  # a rotation that died before us
            sealer.reload()
        old_check = store.get_meta(MASTER_KEY_CHECK) or sealer.check
        if not sealer.follow(old_check):
            raise MasterKeyError("no master key given opens this database; nothing was changed")
        new_path: Path | None = None
        if from_file:
            new_text = generate_master_key()
            new_key = decode_master_key(new_text, "the new key")
            new_path = settings.data_dir / NEW_MASTER_KEY_FILE
            write_new(new_path, (new_text + "\n").encode(), 0o600)
            fsync_directory(settings.data_dir)
            _step("new-key-written")
        else:
            assert settings.master_key is not None
            new_key = decode_master_key(settings.master_key.get_secret_value(), "CSSCERT_MASTER_KEY")
            if key_check(new_key) == old_check and settings.master_key_previous is None:
                raise MasterKeyError(
                    "every secret is already sealed under CSSCERT_MASTER_KEY: to rotate, set it to the new "
                    "key and CSSCERT_MASTER_KEY_PREVIOUS to the current one on every host, "
                    "then run this again"
                )
        new_sealer = Sealer(new_key)
        new_check = key_check(new_key)

        def transform(index: int, row_key: str, value: str) -> str | None:
            if not is_sealed(value):
                return None
            context = SEALED_COLUMNS[index].context(row_key)
            return new_sealer.seal(sealer.open(value, context), context)

        started: list[str] = []

        def progress(where: str) -> None:
            if not started:
                started.append(where)
                _step("resealing")
            if where == "before-commit":
                _step("before-commit")

        scopes = sorted({ca.scope for ca in store.authorities()})
        counts = CustodyStore(store).reseal(
            [(c.table, c.key, c.sealed) for c in SEALED_COLUMNS],
            transform,
            {MASTER_KEY_CHECK: new_check},
            audit=AuditEntry(
                "master-key.rotate", "master key", f"key check {old_check[:16]}... -> {new_check[:16]}..."
            ),
            changed=[("ca", scope) for scope in scopes] + [("fernet_key", "*")],
            progress=progress,
        )
        _step("committed")
        if new_path is not None:
            os.replace(new_path, settings.data_dir / MASTER_KEY_FILE)
            fsync_directory(settings.data_dir)
            _step("swapped")
            sealer.reload()
        sealer.follow(new_check)
    return Rotation(counts, old_check, new_check, settings.data_dir / MASTER_KEY_FILE if from_file else None)


@contextmanager
def _no_lock() -> Iterator[None]:
    yield
