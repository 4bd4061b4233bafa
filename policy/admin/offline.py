"""The one rule for a request decided offline (``soc policy test``, ``decide``, ``explain``).

A request's risk (the caller's open alerts) is what the request gives; when it gives
none, it comes from the alert store, or, when the store is not read (``soc policy test``
always, ``decide|explain --no-store-risk``), it is *none*: no open alerts. Before this rule
``decide|explain --no-store-risk`` left the risk unknown, and every rule that needs it
(the baseline's critical-risk deny) failed closed, denying every request, while ``test``
treated the same request as having no alerts: two answers to one question. The server
never uses this rule: there, a risk that cannot be read fails closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policy.request import Request, Risk


def offline_request(data: Mapping[str, Any], *, store_risk: bool) -> Request:
    """``Request.from_dict`` (``ValueError`` naming the field), with the missing-risk rule applied."""
    req = Request.from_dict(data)
    if req.risk is None and not store_risk:
        req.risk = Risk()
    return req
