"""``soc policy keys DIR`` and ``soc policy token DIR``: a local key set to try the PDP with.

A trust file needs keys, and the example one names an identity provider and a SPIRE
bundle that exist only in a real deployment. ``keys`` writes a working set into one
folder: an ES256 key for a people IdP and one for a SPIFFE trust domain (private keys
``0600`` under ``private/``, public JWKS beside them) and a ``trust.yaml`` that trusts
exactly those, shaped like ``policy/examples/trust.example.yaml``. ``token`` signs a
short-lived token with them (a JWT-SVID for a ``spiffe://`` subject, an IdP token
otherwise), so ``soc policy serve --trust DIR/trust.yaml`` and ``decide``/``explain`` can
be tried end to end. For trying things out: production keys stay with the IdP and SPIRE.

Keys and signatures are ``cryptography``'s and PyJWT's; only the file layout is ours.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_ISSUER = "https://idp.province.example"
DEFAULT_TRUST_DOMAIN = "province.example"
SVID_AUDIENCE = "ztsoc-pdp"
_IDP, _SPIFFE = "idp", "spiffe"


@dataclass(frozen=True)
class KeySetFiles:
    trust: Path
    public: tuple[Path, ...]
    private: tuple[Path, ...]


def _files(folder: Path, trust_domain: str) -> dict[str, Path]:
    return {"trust": folder / "trust.yaml", "idp_pub": folder / "idp.jwks.json",
            "spiffe_pub": folder / "bundles" / f"{trust_domain}.jwks.json",
            "idp_key": folder / "private" / "idp.key.pem", "spiffe_key": folder / "private" / "spiffe.key.pem",
            "meta": folder / "private" / "keyset.json"}


def make_keys(folder: str | Path, *, issuer: str = DEFAULT_ISSUER, trust_domain: str = DEFAULT_TRUST_DOMAIN,
              force: bool = False) -> KeySetFiles:
    """Write the key set; refuses (``FileExistsError``) to overwrite one unless ``force``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    folder = Path(folder)
    f = _files(folder, trust_domain)
    existing = [p for p in f.values() if p.exists()]
    if existing and not force:
        raise FileExistsError(f"{existing[0]} exists: use --force to replace the key set in {folder}")
    (folder / "private").mkdir(parents=True, exist_ok=True)
    (folder / "bundles").mkdir(parents=True, exist_ok=True)
    os.chmod(folder / "private", 0o700)
    for kind, pub, priv in ((_IDP, f["idp_pub"], f["idp_key"]), (_SPIFFE, f["spiffe_pub"], f["spiffe_key"])):
        key = ec.generate_private_key(ec.SECP256R1())
        jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
        jwk.update({"kid": f"{kind}-{uuid.uuid4().hex[:8]}", "alg": "ES256", "use": "sig"})
        pub.write_text(json.dumps({"keys": [jwk]}, indent=2) + "\n", encoding="utf-8")
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
    f["meta"].write_text(json.dumps({"issuer": issuer, "trust_domain": trust_domain,
                                     "kids": {_IDP: _kid(f["idp_pub"]), _SPIFFE: _kid(f["spiffe_pub"])}}) + "\n")
    f["trust"].write_text(
        "# Made by `soc policy keys`: a local key set for trying the PDP (private keys in private/).\n"
        "# The same shape as policy/examples/trust.example.yaml; production keys come from your IdP and SPIRE.\n"
        "issuers:\n"
        f"  - issuer: {issuer}\n"
        '    audience: "{service}"         # tokens are minted for the service they call\n'
        "    algorithms: [ES256]\n"
        f"    jwks_file: {f['idp_pub'].name}\n"
        "spiffe:\n"
        f"  - trust_domain: {trust_domain}\n"
        f"    audience: {SVID_AUDIENCE}\n"
        f"    jwks_file: bundles/{f['spiffe_pub'].name}\n", encoding="utf-8")
    return KeySetFiles(f["trust"], (f["idp_pub"], f["spiffe_pub"]), (f["idp_key"], f["spiffe_key"]))


def _kid(jwks_file: Path) -> str:
    return str(json.loads(jwks_file.read_text(encoding="utf-8"))["keys"][0]["kid"])


def make_token(folder: str | Path, subject: str, *, audience: str | None = None, roles: tuple[str, ...] = (),
               scopes: tuple[str, ...] = (), groups: tuple[str, ...] = (), ttl_s: int = 300) -> str:
    """A token signed with the folder's keys: a JWT-SVID for ``spiffe://`` subjects, else an IdP token.

    An IdP token's audience is the destination service (the trust file says ``{service}``):
    ``audience`` is required for it.
    """
    import jwt
    from cryptography.hazmat.primitives import serialization

    folder = Path(folder)
    meta_file = folder / "private" / "keyset.json"
    if not meta_file.exists():
        raise ValueError(f"{folder}: no key set here (make one with `soc policy keys {folder}`)")
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    spiffe = subject.startswith("spiffe://")
    if spiffe and not subject.startswith(f"spiffe://{meta['trust_domain']}/"):
        raise ValueError(f"subject {subject!r} is outside this key set's trust domain {meta['trust_domain']}")
    kind = _SPIFFE if spiffe else _IDP
    if not spiffe and not audience:
        raise ValueError("an IdP token needs --aud: the service it is for")
    key = serialization.load_pem_private_key((folder / "private" / f"{kind}.key.pem").read_bytes(), None)
    now = int(time.time())
    claims: dict[str, Any] = {"sub": subject, "aud": audience or SVID_AUDIENCE, "iat": now, "exp": now + ttl_s,
                              "jti": uuid.uuid4().hex}
    if not spiffe:
        claims["iss"] = meta["issuer"]
    if roles:
        claims["roles"] = list(roles)
    if scopes:
        claims["scope"] = " ".join(scopes)
    if groups:
        claims["groups"] = list(groups)
    return jwt.encode(claims, key, algorithm="ES256",  # type: ignore[arg-type]
                      headers={"kid": meta["kids"][kind], "typ": "JWT"})
