"""A real dashboard server on a free port and a small HTTP client for it (cookies kept per client).

The API tests talk to ``dashboards.server`` through uvicorn and ``http.client`` exactly as a
browser or a script would, so the guard in front of the handlers is always on the path.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from dashboards.server import Served, make_server
from eventstore.store import Store


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Client:
    port: int
    host: str = "127.0.0.1"
    cookies: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                **params: str) -> Reply:
        if params:
            path += "?" + urlencode(params)
        data = body if isinstance(body, bytes | None) else json.dumps(body).encode()
        sent = {"Host": f"{self.host}:{self.port}", **(headers or {})}
        if self.cookies and "Cookie" not in sent:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=180)  # a loaded CI machine, ES views
        try:
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            conn.close()
        cookie = reply.headers.get("set-cookie")
        if cookie:
            name, _, rest = cookie.partition("=")
            self.cookies[name] = rest.split(";")[0]
        return reply

    def get(self, path: str, **params: str) -> Reply:
        return self.request("GET", path, **params)

    def session(self) -> dict[str, Any]:
        reply = self.get("/api/session")
        assert reply.status == 200, reply.body
        return dict(reply.json())

    def post(self, path: str, body: Any, *, csrf: str | None = None, headers: dict[str, str] | None = None) -> Reply:
        sent = {"Content-Type": "application/json", **({"X-CSRF-Token": csrf} if csrf else {}), **(headers or {})}
        return self.request("POST", path, body, sent)


@contextmanager
def serving(store: Store, host: str = "127.0.0.1", **kw: Any) -> Iterator[Served]:
    served = make_server(store, host, 0, **kw).start_in_thread()
    try:
        yield served
    finally:
        served.stop()
