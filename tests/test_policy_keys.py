"""Key sets: weak or misplaced keys are refused at load time, with the reason kept."""

from __future__ import annotations

import base64

import pytest
from policy_tokens import jwk_of, keys

from policy.identity.keys import KeyLookupError, KeySet, algs_for, key_problem


def test_problems_found_at_load_time() -> None:
    k = keys()
    short_oct = {"kty": "oct", "k": base64.urlsafe_b64encode(b"x" * 16).decode().rstrip("="), "kid": "h"}
    private = {**jwk_of(k.ec, "p"), "d": "AAAA"}
    assert key_problem(jwk_of(k.short_rsa, "s"), allow_hmac=False) == "RSA key of 1024 bits is shorter than 2048"
    assert key_problem(jwk_of(k.rsa, "r"), allow_hmac=False) is None
    assert key_problem(short_oct, allow_hmac=True) == "HMAC key shorter than 32 bytes"
    assert "not configured for HMAC" in str(key_problem(short_oct, allow_hmac=False))
    assert key_problem(private, allow_hmac=False) == "private key material in a verification key set"
    assert key_problem({"kty": "XYZ"}, allow_hmac=False) == "unsupported key type 'XYZ'"


def test_key_type_decides_the_algorithm() -> None:
    k = keys()
    assert algs_for(jwk_of(k.ec, "e")) == {"ES256"}
    assert algs_for(jwk_of(k.rsa, "r", "PS256")) == {"PS256"}
    assert "RS256" in algs_for(jwk_of(k.rsa, "r")) and "HS256" not in algs_for(jwk_of(k.rsa, "r"))
    assert algs_for(jwk_of(k.ed, "d")) == {"EdDSA"}


def test_lookup_errors_are_reasons() -> None:
    k = keys()
    ks = KeySet(name="idp", jwks={"keys": [jwk_of(k.ec, "ec1"), jwk_of(k.short_rsa, "weak"),
                                           {**jwk_of(k.ec, "enc"), "use": "enc"}]})
    assert ks.get("ec1", "ES256").algorithm_name == "ES256"
    assert ks.get(None, "ES256").algorithm_name == "ES256"  # one key fits: no kid needed
    for kid, alg, reason in [("weak", "RS256", "refused: RSA key of 1024"), ("ec1", "RS256", "cannot verify RS256"),
                             ("nope", "ES256", "unknown kid"), ("enc", "ES256", "unknown kid"),
                             ("x" * 300, "ES256", "short printable"), ("a\nb", "ES256", "short printable")]:
        with pytest.raises(KeyLookupError, match=reason):
            ks.get(kid, alg)
    assert any("use 'enc'" in e for e in ks.errors)


def test_stale_file_key_set_refreshes_in_the_background(tmp_path: object) -> None:
    import contextlib
    import json
    import time
    from pathlib import Path

    k = keys()
    f = Path(str(tmp_path)) / "jwks.json"
    f.write_text(json.dumps({"keys": [jwk_of(k.ec, "a")]}))
    ks = KeySet(name="file", file=f, max_age_s=0.0, min_refresh_s=0.0)
    ks.load()
    f.write_text(json.dumps({"keys": [jwk_of(k.ec, "b")]}))
    with contextlib.suppress(KeyLookupError):  # "a" is gone once the background refresh lands
        ks.get("a", "ES256")  # served from the keys in hand while a refresh starts in the background
    deadline = time.monotonic() + 5
    while "b" not in ks.kids and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ks.kids == ["b"]


def test_duplicate_kids_are_refused_when_the_set_loads() -> None:
    k = keys()
    ks = KeySet(name="idp", jwks={"keys": [jwk_of(k.ec, "same"), jwk_of(k.other_domain, "same")]})
    with pytest.raises(ValueError, match="kid 'same' appears twice"):
        ks.load()
