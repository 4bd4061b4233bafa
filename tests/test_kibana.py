"""The Kibana saved objects: complete, consistent with the index template, importable."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from dashboards.kibana import PANELS, SHIPPED, import_to_kibana, saved_objects, to_ndjson
from eventstore.es_templates import properties


def _mapped_fields() -> set[str]:
    out: set[str] = set()

    def walk(props: dict[str, Any], prefix: str) -> None:
        for name, spec in props.items():
            full = f"{prefix}{name}"
            if "properties" in spec:
                walk(spec["properties"], f"{full}.")
            else:
                out.add(full)

    walk(properties(), "")
    return out


def test_shipped_file_is_the_generated_one() -> None:
    assert SHIPPED.read_text() == to_ndjson()


def test_every_reference_exists() -> None:
    objects = list(saved_objects())
    ids = {(o["type"], o["id"]) for o in objects}
    assert len(ids) == len(objects)
    for obj in objects:
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in ids, (obj["attributes"]["title"], ref)
    dashboard = next(o for o in objects if o["type"] == "dashboard")
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    assert {p["panelRefName"] for p in panels} == {r["name"] for r in dashboard["references"]}
    assert len(panels) == len(PANELS)


def test_every_field_used_is_in_the_index_template() -> None:
    mapped = _mapped_fields()
    used = set().union(*(p.used_fields() for p in PANELS))
    assert used and used <= mapped, used - mapped
    for obj in saved_objects():
        if obj["type"] == "visualization":
            for agg in json.loads(obj["attributes"]["visState"])["aggs"]:
                field = agg["params"].get("field")
                assert field is None or field in mapped


def test_import_posts_multipart_with_xsrf_header() -> None:
    seen: dict[str, Any] = {}

    class Kibana(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen["path"] = self.path
            seen["xsrf"] = self.headers.get("kbn-xsrf")
            seen["body"] = self.rfile.read(int(self.headers["content-length"]))
            body = json.dumps({"success": True, "successCount": 14}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Kibana)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    try:
        result = import_to_kibana(to_ndjson(), f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        thread.join(5)
        server.server_close()
    assert result == {"success": True, "successCount": 14}
    assert seen["path"] == "/api/saved_objects/_import?overwrite=true"
    assert seen["xsrf"] == "ztsoc"
    assert b'"type": "dashboard"' in seen["body"] and b"filename=\"ztsoc.ndjson\"" in seen["body"]
