"""Verified identities: JWTs from trusted issuers and SPIFFE JWT-SVIDs, checked with PyJWT.

``TokenVerifier`` (``policy.identity.jwt``) is the one entry point: it reads only the
untrusted header and payload to pick the issuer or trust domain, and every check that
matters (algorithm allow-list, key, signature, ``exp``/``aud``/``iss``/``sub``) runs
against that issuer's configuration, never against what the token says about itself.
"""

from policy.identity.jwt import (
    Identity,
    IssuerConfig,
    TokenError,
    TokenVerifier,
    TrustConfig,
    load_trust_config,
)
from policy.identity.keys import KeySet
from policy.identity.spiffe import SpiffeId, TrustDomainConfig

__all__ = [
    "Identity",
    "IssuerConfig",
    "KeySet",
    "SpiffeId",
    "TokenError",
    "TokenVerifier",
    "TrustConfig",
    "TrustDomainConfig",
    "load_trust_config",
]
