"""Requests: the JSON shape (``/v1/decide``, REQUEST.json, test cases), every field type-checked."""

from __future__ import annotations

import pytest

from policy.request import Request, Risk


def test_from_dict_trusted_and_untrusted() -> None:
    data = {"service": "s", "method": "GET", "path": "/", "roles": ["a"], "scopes": "x y",
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


@pytest.mark.parametrize(("extra", "message"), [
    ({"token": 42}, "field 'token' must be a string, not int"),
    ({"token": ["a"]}, "field 'token' must be a string, not list"),
    ({"principal": {"x": 1}}, "field 'principal' must be a string"),
    ({"source_ip": "10.0.0.300"}, "field 'source_ip' is not an IP address"),
    ({"roles": [1, 2]}, "field 'roles' must be a list of strings"),
    ({"roles": {"a": 1}}, "field 'roles' must be a list of strings"),
    ({"principle": "alice"}, "unknown field\\(s\\) principle"),
    ({"risk": {"open_alerts": -1}}, "risk.open_alerts"),
    ({"risk": {"open_alerts": 1, "max_level": "severe"}}, "risk.max_level"),
    ({"risk": "high"}, "field 'risk' must be an object"),
    ({"time": "yesterday"}, "field 'time'"),
    ({"method": 7}, "missing method"),
])
def test_from_dict_names_the_bad_field(extra: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Request.from_dict({"service": "s", "method": "GET", "path": "/", **extra})


def test_method_is_kept_as_sent() -> None:
    # Case is the canonicaliser's business (it refuses "get" as ambiguous), not the JSON reader's.
    assert Request.from_dict({"service": "s", "method": "get", "path": "/"}).method == "get"
