"""``soc policy keys`` / ``token``: a local key set whose tokens the real verifier accepts, and the shipped trust file loads."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from policy.admin.keygen import make_keys, make_token
from policy.admin.offline import offline_request
from policy.engine import build_engine

EXAMPLES = Path(__file__).resolve().parents[1] / "policy" / "examples"


def test_keys_make_a_trust_file_whose_tokens_verify(tmp_path: Path) -> None:
    files = make_keys(tmp_path / "k")
    for p in files.private:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    engine = build_engine([EXAMPLES], trust_file=files.trust)
    svid = make_token(tmp_path / "k", "spiffe://province.example/ns/portal/sa/citizen-portal",
                      scopes=("payments:write",))
    req = offline_request({"service": "payments", "method": "POST", "path": "/payments/charges", "token": svid},
                          store_risk=False)
    d = engine.decide(req)
    assert d.allow and req.principal == "spiffe://province.example/ns/portal/sa/citizen-portal", d.reason
    person = make_token(tmp_path / "k", "resident-4411", audience="citizen-portal", roles=("citizen",),
                        scopes=("portal",))
    req = offline_request({"service": "citizen-portal", "method": "POST", "path": "/applications", "token": person},
                          store_risk=False)
    assert engine.decide(req).allow and req.principal == "resident-4411" and req.roles == {"citizen"}
    # A token for another service is refused by audience; a token from a fresh key set by signature.
    wrong = offline_request({"service": "payments", "method": "POST", "path": "/payments/charges", "token": person},
                            store_risk=False)
    assert not engine.decide(wrong).allow
    make_keys(tmp_path / "other")
    forged = make_token(tmp_path / "other", "spiffe://province.example/ns/portal/sa/citizen-portal")
    req = offline_request({"service": "payments", "method": "POST", "path": "/payments/charges", "token": forged},
                          store_risk=False)
    assert "invalid token" in engine.decide(req).reason


def test_keys_refuse_to_overwrite_and_tokens_stay_in_their_domain(tmp_path: Path) -> None:
    make_keys(tmp_path)
    with pytest.raises(FileExistsError, match="--force"):
        make_keys(tmp_path)
    make_keys(tmp_path, force=True)
    with pytest.raises(ValueError, match="outside this key set's trust domain"):
        make_token(tmp_path, "spiffe://elsewhere.example/x")
    with pytest.raises(ValueError, match="--aud"):
        make_token(tmp_path, "resident-1")
    with pytest.raises(ValueError, match="no key set here"):
        make_token(tmp_path / "nothing", "resident-1", audience="x")


def test_the_shipped_trust_file_loads_as_shipped() -> None:
    engine = build_engine([EXAMPLES], trust_file=EXAMPLES / "trust.example.yaml")
    assert engine.verifier is not None
    engine.stop()
