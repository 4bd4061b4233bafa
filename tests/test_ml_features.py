"""Entity-window features from the store's aggregations, exact values, on both stores."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from detections.ml.features import (
    KINDS,
    FeatureContext,
    History,
    collect,
    feature_matrix,
    learn_history,
    select_kinds,
    shannon_entropy,
)
from detections.ml.synthetic import Generator
from eventstore import Store

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)  # a window start (15-minute aligned)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def gen() -> Generator:
    return Generator(T0, days=0, seed=5, n_users=1, n_hosts=1, n_services=1)


def feats(store: Store, kind: str, history: History | None = None, training: bool = False
          ) -> dict[tuple[str, int], dict[str, float]]:
    k = KINDS[kind]
    data = collect(store, k, T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    hist = history if history is not None else learn_history(k, data)
    X = feature_matrix(k, data, FeatureContext(hist, training=training))
    return {(e, int(s)): dict(zip(k.feature_names, row.tolist(), strict=True))
            for e, s, row in zip(data.entities, data.starts.tolist(), X, strict=True)}


def test_user_features(store: Store, gen: Generator) -> None:
    ts = T0.timestamp()
    events = [gen.auth(ts + 10 + i, "alice", "10.0.0.1", "srv-1", False) for i in range(6)]
    events += [gen.auth(ts + 100, "alice", "10.0.0.2", "srv-2", True),
               gen.auth(ts + 200, "alice", "10.0.0.1", "srv-1", True),
               gen.auth(ts + 900 + 5, "alice", "10.0.0.1", "srv-1", True),  # next window
               gen.auth(ts + 50, "bob", "10.0.0.9", "srv-1", True)]
    # a policy decision carries no user.name but must never count as a logon
    events.append(gen.decision(ts + 60, "spiffe://p/ns/a/sa/x", "10.0.0.1", "svc-a", "/x", True))
    store.write_events(events)
    history = History(known={"src": {"alice": {"10.0.0.1"}}, "host": {"alice": {"srv-1"}}})
    f = feats(store, "user", history)
    a = f[("alice", int(ts))]
    assert a["logons"] == 2 and a["failures"] == 6
    assert a["failure_ratio"] == pytest.approx(6 / 8)
    assert a["distinct_sources"] == 2 and a["distinct_hosts"] == 2
    assert a["new_sources"] == 1 and a["new_hosts"] == 1  # 10.0.0.2 and srv-2 are new for alice
    assert f[("alice", int(ts) + 900)]["logons"] == 1
    assert f[("alice", int(ts) + 900)]["new_sources"] == 0
    # bob has no history at all: everything he uses is new to the model
    assert f[("bob", int(ts))]["new_sources"] == 1
    assert len(f) == 3


def test_host_features_flows_and_dns(store: Store, gen: Generator) -> None:
    ts = T0.timestamp()
    events = [gen.flow(ts + i, "10.2.0.1", "10.3.0.1", 443, 1000) for i in range(3)]
    events += [gen.flow(ts + 10 + p, "10.2.0.1", "10.3.0.2", p, 60, "REJ") for p in range(20, 24)]
    events += [gen.flow(ts + 50, "10.2.0.1", "10.3.0.3", 8080, 500, "S0")]
    tunnel = "a9x8q7z6w5v4u3t2s1r0p.tunnel.example"
    events += [gen.dns(ts + 5, "10.2.0.1", "www.health.gov.example"), gen.dns(ts + 6, "10.2.0.1", tunnel),
               gen.dns(ts + 7, "10.2.0.1", tunnel)]
    store.write_events(events)
    history = History(known={"dst": {"10.2.0.1": {"10.3.0.1"}}})
    h = feats(store, "host", history)[("10.2.0.1", int(ts))]
    assert h["connections"] == 8
    assert h["bytes_out"] == 3 * 1000 + 4 * 60 + 500
    assert h["distinct_destinations"] == 3 and h["new_destinations"] == 2
    assert h["distinct_ports"] == 6  # 443, 20..23, 8080
    assert h["failed_connections"] == 5 and h["failed_ratio"] == pytest.approx(5 / 8)
    assert h["dns_queries"] == 3
    assert h["dns_max_length"] == len(tunnel)
    assert h["dns_max_entropy"] == pytest.approx(shannon_entropy("a9x8q7z6w5v4u3t2s1r0p"))


def test_service_features(store: Store, gen: Generator) -> None:
    ts = T0.timestamp()
    who = "spiffe://province.example/ns/a/sa/app"
    events = [gen.decision(ts + i, who, "10.4.0.1", "svc-records", f"/api/{i % 2}", True) for i in range(6)]
    events += [gen.decision(ts + 30, who, "10.7.0.9", "svc-payments", "/api/pay", False),
               gen.decision(ts + 31, who, "10.7.0.9", "svc-payments", "/api/pay", False)]
    store.write_events(events)
    history = History(known={"svc": {who: {"svc-records"}}, "src": {who: {"10.4.0.1"}}})
    s = feats(store, "service", history)[(who, int(ts))]
    assert s["calls"] == 8 and s["denies"] == 2 and s["deny_ratio"] == pytest.approx(0.25)
    assert s["distinct_services"] == 2 and s["distinct_paths"] == 3
    assert s["new_services"] == 1 and s["new_sources"] == 1


def test_training_novelty_counts_first_sightings_after_warmup(store: Store) -> None:
    gen = Generator(T0, days=0, seed=5, n_users=1, n_hosts=1, n_services=1)
    ts = T0.timestamp()
    # window 0 (warm-up): 10.0.0.1; window 4: 10.0.0.1 again and 10.0.0.7 for the first time
    store.write_events([gen.auth(ts + 1, "carol", "10.0.0.1", "srv-1", True),
                        gen.auth(ts + 3600 + 1, "carol", "10.0.0.1", "srv-1", True),
                        gen.auth(ts + 3600 + 2, "carol", "10.0.0.7", "srv-1", True)])
    k = KINDS["user"]
    data = collect(store, k, T0, T0 + timedelta(hours=2))
    hist = learn_history(k, data, warmup_fraction=0.5)
    X = feature_matrix(k, data, FeatureContext(hist, training=True))
    by_start = dict(zip(data.starts.tolist(), X[:, k.feature_names.index("new_sources")].tolist(), strict=True))
    assert by_start == {int(ts): 0.0, int(ts) + 3600: 1.0}
    assert hist.known["src"]["carol"] == {"10.0.0.1", "10.0.0.7"}
    assert hist.hours["carol"].sum() == 3 and hist.hours["carol"][9] == 1 and hist.hours["carol"][10] == 2


def test_unusual_hour_uses_the_users_own_profile() -> None:
    k = KINDS["user"]
    hist = History(hours={"night": np.r_[np.full(4, 10.0), np.zeros(20)]}, group_hours=np.ones(24))
    from detections.ml.features import WindowData, hour_rarity

    fn = hour_rarity(lambda data, ctx: data.col("ok.count"), min_history=20)
    starts = np.array([2 * 3600, 14 * 3600, 14 * 3600, 2 * 3600], dtype=np.int64)
    data = WindowData("user", 900, ["night", "night", "someone", "night"], starts,
                      {"ok.count": np.array([1.0, 1.0, 1.0, 0.0])}, {})
    r = fn(data, FeatureContext(hist, training=False))
    assert r[0] < 3.0 and r[1] > 6.0  # 02:00 is ordinary for "night"; 14:00 is not
    assert r[2] == pytest.approx(math.log2(24))  # no history: the group's flat profile
    assert r[3] == 0.0  # no logon, no rarity
    assert k.logons is not None


def test_registry_and_bad_kind() -> None:
    assert [k.name for k in select_kinds(None)] == list(KINDS)
    assert [k.name for k in select_kinds(["host"])] == ["host"]
    with pytest.raises(ValueError, match="unknown entity kind"):
        select_kinds(["printer"])
    for kind in KINDS.values():
        assert len(set(kind.feature_names)) == len(kind.feature_names)
    assert shannon_entropy("") == 0.0 and shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == pytest.approx(2.0)
