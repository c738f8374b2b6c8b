"""The certificate authority: CAs and their lifecycle, node certificates, and the trust bundle.

``authority`` signs; ``bundle`` turns a scope's CAs into what clients download; ``pkcs12`` is the
deterministic truststore writer; ``names`` holds the rules names and scopes must follow.
"""

from csscert.ca.authority import Authority, NodeCertificate, generate_private_key
from csscert.ca.bundle import TrustBundle, group_by_scope, has_trusted, trusted_first
from csscert.ca.names import REGION_SCOPE, AuthorityError, scope_of

__all__ = [
    "REGION_SCOPE",
    "Authority",
    "AuthorityError",
    "NodeCertificate",
    "TrustBundle",
    "generate_private_key",
    "group_by_scope",
    "has_trusted",
    "scope_of",
    "trusted_first",
]
