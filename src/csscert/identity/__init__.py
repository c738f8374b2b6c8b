"""Who may call: domains, users, access keys, tokens, and the checks on every request.

* :mod:`.tokens`: the Fernet token codec and its claims (pure);
* :mod:`.credentials`: key generation, password hashing, sealing contexts (pure);
* :mod:`.directory`: the read model requests are checked against;
* :mod:`.authenticators`: the token, AK/SK and password checks over that read model;
* :mod:`.writer`: :class:`Identity`, every change to identity state, through the store.
"""

from csscert.identity.directory import Directory, Principal
from csscert.identity.tokens import IssuedToken, TokenClaims
from csscert.identity.writer import Identity

__all__ = ["Directory", "Identity", "IssuedToken", "Principal", "TokenClaims"]
