"""Kibana saved objects for Elasticsearch users: two data views and a SOC overview dashboard.

The objects are generated from a table of panels (``PANELS``) over the same fields the
store's index template defines (``eventstore.es_templates``), so a renamed field breaks
the tests here rather than a panel in Kibana. They are aggregation-based visualizations
(``visualization`` saved objects), which Kibana 8 imports and migrates as they are;
Lens objects carry a much larger, version-bound state. ``soc dashboard export-kibana``
writes the NDJSON; ``import-kibana`` posts it to Kibana's saved-objects import API.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eventstore.es_templates import index_names

NAMESPACE = uuid.UUID("6f0b5f52-3d1c-4d55-9d5e-7a3c0c1d2e01")
SHIPPED = Path(__file__).parent / "kibana" / "ztsoc-soc-overview.ndjson"


def object_id(name: str) -> str:
    """Stable ids, so importing again overwrites instead of piling up copies."""
    return str(uuid.uuid5(NAMESPACE, name))


@dataclass(frozen=True, slots=True)
class Panel:
    title: str
    vis_type: str  # pie, histogram, line, table
    data_view: str  # "events" or "alerts"
    aggs: tuple[dict[str, Any], ...]
    query: str = ""
    fields: tuple[str, ...] = field(default=())

    def used_fields(self) -> set[str]:
        used = {a["params"]["field"] for a in self.aggs if "field" in a.get("params", {})}
        return used | set(self.fields)


def _terms(field_name: str, size: int = 10, schema: str = "segment") -> dict[str, Any]:
    return {"type": "terms", "schema": schema, "params": {"field": field_name, "size": size, "order": "desc",
                                                          "orderBy": "1"}}


def _time(schema: str = "segment") -> dict[str, Any]:
    return {"type": "date_histogram", "schema": schema, "params": {"field": "@timestamp", "interval": "auto"}}


COUNT = {"type": "count", "schema": "metric", "params": {}}

OPEN = "ztsoc.alert.status:(open or acknowledged or escalated)"

PANELS: tuple[Panel, ...] = (
    Panel("Open alerts by level", "pie", "alerts", (COUNT, _terms("ztsoc.alert.level", 5)), OPEN),
    Panel("Alerts over time", "histogram", "alerts", (COUNT, _time())),
    Panel("Alerts by status", "pie", "alerts", (COUNT, _terms("ztsoc.alert.status", 5))),
    Panel("Top rules", "table", "alerts", (COUNT, _terms("rule.name", 15, "bucket"))),
    Panel("Top entities with open alerts", "table", "alerts", (COUNT, _terms("ztsoc.alert.entity.value", 15, "bucket")),
          OPEN),
    Panel("Events per dataset", "line", "events", (COUNT, _time(), _terms("event.dataset", 10, "group"))),
    Panel("Top talkers (bytes sent)", "table", "events", (
        {"type": "sum", "schema": "metric", "params": {"field": "source.bytes"}},
        _terms("source.ip", 15, "bucket")), "event.dataset:network.flow"),
    Panel("DNS top names", "table", "events", (COUNT, _terms("dns.question.name", 15, "bucket")),
          "event.dataset:network.dns"),
    Panel("TLS server names", "table", "events", (COUNT, _terms("tls.client.server_name", 15, "bucket")),
          "event.dataset:network.tls"),
    Panel("Policy decisions over time", "histogram", "events", (COUNT, _time(), _terms("event.action", 3, "group")),
          "event.dataset:policy.decision"),
    Panel("Top denied callers", "table", "events", (COUNT, _terms("user.name", 15, "bucket"),
                                                   _terms("service.name", 15, "bucket")),
          "event.dataset:policy.decision and event.action:deny"),
)


def data_views(prefix: str = "ztsoc") -> dict[str, dict[str, Any]]:
    names = index_names(prefix)
    return {
        "events": {"title": names["events_pattern"], "name": "ztsoc events"},
        "alerts": {"title": names["alerts"], "name": "ztsoc alerts"},
    }


def saved_objects(prefix: str = "ztsoc") -> Iterator[dict[str, Any]]:
    views = data_views(prefix)
    for key, view in views.items():
        yield {"type": "index-pattern", "id": object_id(f"data-view:{key}"), "attributes": {
            "title": view["title"], "name": view["name"], "timeFieldName": "@timestamp"}, "references": []}
    panels_json = []
    references = []
    for i, panel in enumerate(PANELS):
        vis_id = object_id(f"vis:{panel.title}")
        vis_state = {"title": panel.title, "type": panel.vis_type, "params": {"addTooltip": True, "addLegend": True},
                     "aggs": [dict(a, id=str(n + 1), enabled=True) for n, a in enumerate(panel.aggs)]}
        search_source = {"query": {"query": panel.query, "language": "kuery"}, "filter": [],
                         "indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index"}
        yield {"type": "visualization", "id": vis_id, "attributes": {
            "title": panel.title, "visState": json.dumps(vis_state), "uiStateJSON": "{}", "description": "",
            "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(search_source)}},
            "references": [{"name": "kibanaSavedObjectMeta.searchSourceJSON.index", "type": "index-pattern",
                            "id": object_id(f"data-view:{panel.data_view}")}]}
        ref = f"panel_{i}"
        panels_json.append({"panelIndex": str(i), "gridData": {"x": (i % 2) * 24, "y": (i // 2) * 15, "w": 24,
                                                               "h": 15, "i": str(i)},
                            "embeddableConfig": {}, "panelRefName": ref})
        references.append({"name": ref, "type": "visualization", "id": vis_id})
    yield {"type": "dashboard", "id": object_id("dashboard:soc-overview"), "attributes": {
        "title": "ztsoc — SOC overview", "description": "Alerts, collection health, network and policy at a glance",
        "panelsJSON": json.dumps(panels_json), "optionsJSON": json.dumps({"useMargins": True}),
        "timeRestore": True, "timeFrom": "now-24h", "timeTo": "now",
        "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps({"query": {"query": "", "language": "kuery"},
                                                                  "filter": []})}},
           "references": references}


def to_ndjson(prefix: str = "ztsoc") -> str:
    return "".join(json.dumps(obj, sort_keys=True) + "\n" for obj in saved_objects(prefix))


def import_to_kibana(ndjson: str, url: str, *, api_key: str | None = None, timeout: float = 30.0) -> dict[str, Any]:
    """POST the objects to ``/api/saved_objects/_import?overwrite=true`` (multipart, as Kibana wants)."""
    import urllib.request

    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"ztsoc.ndjson\"\r\n"
            f"Content-Type: application/ndjson\r\n\r\n{ndjson}\r\n--{boundary}--\r\n").encode()
    request = urllib.request.Request(f"{url.rstrip('/')}/api/saved_objects/_import?overwrite=true", data=body,
                                     method="POST")
    request.add_header("kbn-xsrf", "ztsoc")
    request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    if api_key:
        request.add_header("Authorization", f"ApiKey {api_key}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        result: dict[str, Any] = json.loads(response.read())
    return result
