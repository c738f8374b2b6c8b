"""The one registry of sealed columns: every place the store keeps a secret sealed under the master key.

Each entry names the table, the column that identifies the row, the sealed column, and the
function that gives the row's sealing context (the associated data that binds a sealed blob to
its row, see :mod:`csscert.sealing`). Master-key rotation re-seals exactly these columns; the
"no secret in the database" tests open exactly these. A branch that adds a sealed column adds
its entry here.

A value that is not a sealed blob (a CA whose key lives in an HSM keeps a ``pkcs11:`` reference
in ``key_sealed``) is left alone by rotation: :func:`is_sealed` tells them apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Table

from csscert.ca.keys import PKCS11_PREFIX, seal_context
from csscert.identity.credentials import sk_context
from csscert.identity.tokens import fernet_context
from csscert.store import schema as t
from csscert.store.acme import eab_context

__all__ = ["SEALED_COLUMNS", "SealedColumn", "is_sealed"]


@dataclass(frozen=True)
class SealedColumn:
    table: Table
    key: str
    sealed: str
    context: Callable[[str], str]

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.sealed}"


SEALED_COLUMNS: tuple[SealedColumn, ...] = (
    SealedColumn(t.certificate_authorities, "id", "key_sealed", seal_context),
    SealedColumn(t.access_keys, "access", "secret_sealed", sk_context),
    SealedColumn(t.fernet_keys, "id", "key_sealed", fernet_context),
    SealedColumn(t.pending_authorities, "id", "key_sealed", seal_context),
    SealedColumn(t.acme_eab_keys, "kid", "hmac_sealed", eab_context),
)

#: Prefix of a CA key kept outside the database (``ca/pkcs11.py``): a reference, not a secret.
EXTERNAL_PREFIX = PKCS11_PREFIX


def is_sealed(value: str) -> bool:
    return not value.startswith(EXTERNAL_PREFIX)
