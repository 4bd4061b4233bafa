"""Requests: the JSON shape, and path normalization before matching."""

from __future__ import annotations

import pytest

from policy.request import Request, Risk, normalize_path


@pytest.mark.parametrize(("raw", "norm"), [
    ("/a/b", "/a/b"), ("/a//b", "/a/b"), ("/a/./b", "/a/b"), ("/a/../b", "/b"), ("/..", "/"),
    ("/%61dmin", "/admin"), ("/%2e%2e/admin", "/admin"), ("/a/b/", "/a/b/"),
    ("/a/%2Fb", None), ("/a;b", None), ("/a\\b", None), ("/a%00", None), ("/a%252f", None), ("a/b", None),
    ("/%ff", None), ("*", None),
])
def test_normalize_path(raw: str, norm: str | None) -> None:
    assert normalize_path(raw) == norm


def test_from_dict_trusted_and_untrusted() -> None:
    data = {"service": "s", "method": "get", "path": "/", "roles": ["a"], "scopes": "x y",
            "time": "2026-03-04T05:00:00Z", "risk": {"open_alerts": 2, "max_level": "high"}}
    r = Request.from_dict(data)
    assert r.method == "GET" and r.roles == {"a"} and r.scopes == {"x", "y"}
    assert r.time is not None and r.risk == Risk(2, "high", 4)
    u = Request.from_dict(data, trusted=False)
    assert u.time is None and u.risk is None
    with pytest.raises(ValueError, match="missing method, path"):
        Request.from_dict({"service": "s"})
    with pytest.raises(ValueError, match="JSON object"):
        Request.from_dict([])  # type: ignore[arg-type]
