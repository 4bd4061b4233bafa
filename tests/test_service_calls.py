"""Generated service calls go through the real engine with real tokens, and every decision is stored."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from eventstore.store import Store
from playbooks.generators.service_calls import ServiceCall, TokenMint, send_calls, spiffe
from playbooks.generators.workday import PORTAL, generate

END = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)


def test_every_call_is_decided_and_logged(store: Store, tmp_path: Path) -> None:
    a = generate(tmp_path / "day", seed=5, end=END, flows=5, logins=2, service_calls=60, incidents=("token-replay",))
    report = send_calls(store, a.calls, tmp_path / "pdp")
    assert report.calls == len(a.calls) == 90
    assert report.allowed + report.denied == report.calls
    assert report.logged == report.calls and report.spilled == 0
    assert store.count("event.dataset:policy.decision") == 90
    # The replayed portal token is verified (the principal comes from the token) but its exports are refused.
    replay = store.search(f'event.dataset:policy.decision AND source.ip:"10.20.6.99" AND user.name:"{PORTAL}"',
                          limit=100)
    assert replay.total == 30
    exports = [h for h in replay.hits if "/records/export/" in str(h.get("url.path"))]
    assert len(exports) == 20 and all(h["event.action"] == "deny" for h in exports)


def test_a_token_from_an_unknown_key_is_denied(sqlite_store: Store, tmp_path: Path) -> None:
    call = ServiceCall(END.timestamp(), spiffe("portal", "citizen-portal"), "10.10.1.10", "records", "GET",
                       "/records/citizens/1234/certificates/birth", scopes=("records:read",))
    good = send_calls(sqlite_store, [call], tmp_path / "a")
    assert good.allowed == 1
    # A token signed by another key than the one in the trust file is refused, with the reason logged.
    rogue = TokenMint(tmp_path / "rogue")
    token = rogue.mint(call)
    from policy.engine import build_engine
    from policy.request import Request

    engine = build_engine([Path(__file__).resolve().parent.parent / "policy" / "examples"],
                          trust_file=tmp_path / "a" / "trust.yaml")
    decision = engine.decide(Request(service="records", method="GET", path=call.path, token=token,
                                     source_ip=call.source_ip))
    assert not decision.allow and "invalid token" in decision.reason


def test_deciding_the_same_calls_again_stores_nothing_new(sqlite_store: Store, tmp_path: Path) -> None:
    """A rerun of the demo (new process, new signing key) derives the same decision ids from the calls."""
    a = generate(tmp_path / "day", seed=7, end=END, flows=2, logins=1, service_calls=40)
    first = send_calls(sqlite_store, a.calls, tmp_path / "pdp1")
    time.sleep(1.1)  # minted at another second: other iat/exp claims (CI once ran the two in different seconds)
    again = send_calls(sqlite_store, a.calls, tmp_path / "pdp2")  # another key, other signatures
    assert first.calls == again.calls == len(a.calls) > 0
    assert sqlite_store.count("event.dataset:policy.decision") == len(a.calls)
    from policy.engine import Engine, request_decision_id
    from policy.request import Request

    live = Request(service="records", method="GET", path="/x")  # no time of its own: a live request
    assert request_decision_id(Request(service="records", method="GET", path="/x", time=END)) == \
        request_decision_id(Request(service="records", method="GET", path="/x", time=END))
    engine = Engine.from_paths([Path(__file__).resolve().parent.parent / "policy" / "examples"])
    assert engine.decide(live).decision_id != engine.decide(Request(service="records", method="GET",
                                                                    path="/x")).decision_id
