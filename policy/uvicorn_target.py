"""uvicorn's httptools protocol, handing the ASGI scope the request target as it was sent.

uvicorn's httptools front runs ``httptools.parse_url`` over the request target and puts only
its path and query into the scope: a ``#fragment`` disappears (``GET /public/x#/../../admin``
arrives as ``/public/x``) and an absolute-form target (``GET http://h/admin``) loses its
scheme and host. The canonicaliser (``policy.canonical``) refuses both, and the project's raw
front and the gRPC front hand it the target as sent, so on this front the same request was
allowed that the others refuse. This protocol puts the raw target back: ``raw_path`` is
everything before the first ``?``, ``query_string`` everything after it, exactly as uvicorn's
h11 front and the raw front split it. (uvicorn's h11 front keeps the target as sent too, but
costs about 40% of the decision throughput: ``bench/policy.py --servers-only --workers 2``.)

Used by ``policy.server`` as ``uvicorn.Config(http=HTTP)`` when httptools is installed;
without it uvicorn runs h11, which needs nothing.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: The ``uvicorn.Config(http=...)`` import string for this protocol (workers import it by name).
HTTP = "policy.uvicorn_target:RequestTargetProtocol"


class RequestTargetProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` with ``raw_path`` and ``query_string`` split from the target as received."""

    def on_headers_complete(self) -> None:
        # The scope dict is the request's: the app task that reads it starts after this returns.
        scope = self.scope
        super().on_headers_complete()
        raw_path, _, query = self.url.partition(b"?")
        scope["raw_path"] = self.root_path.encode("ascii") + raw_path
        scope["query_string"] = query
