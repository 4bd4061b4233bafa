// ztsoc dashboard: each page fetches its view from the JSON API and draws it.
"use strict";

// Signed in by the session cookie (HttpOnly: this script never sees it); state changes carry the
// session's CSRF token from /api/session, which only a page of this origin can read.
const charts = {};
let currentAlert = null;
let session = null;

async function api(path, options = {}) {
  const headers = Object.assign({"Content-Type": "application/json"}, options.headers || {});
  if (session && session.csrf) headers["X-CSRF-Token"] = session.csrf;
  const response = await fetch(path, Object.assign({credentials: "same-origin"}, options, {headers}));
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

async function signIn() {
  const who = document.getElementById("analyst");
  try {
    session = await api("/api/session");
    who.textContent = session.how === "local"
      ? `acting as ${session.analyst} (local user: loopback, no analyst tokens)`
      : `signed in as ${session.analyst}`;
    return true;
  } catch (err) {
    who.textContent = "not signed in: open your personal link (soc dashboard token add NAME)";
    return false;
  }
}

function since() { return document.getElementById("since").value; }

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function fillTable(id, columns, rows) {
  const table = document.getElementById(id);
  table.replaceChildren();
  const head = el("tr");
  columns.forEach(([label]) => head.appendChild(el("th", label)));
  table.appendChild(el("thead")).appendChild(head);
  const body = table.appendChild(el("tbody"));
  rows.forEach(row => {
    const tr = el("tr");
    columns.forEach(([, key]) => tr.appendChild(el("td", typeof key === "function" ? key(row) : row[key])));
    body.appendChild(tr);
  });
  if (!rows.length) body.appendChild(el("tr")).appendChild(el("td", "nothing here", {colspan: columns.length}));
}

function drawChart(id, type, labels, datasets) {
  if (charts[id]) charts[id].destroy();
  // every chart counts things: whole numbers on the value axis
  charts[id] = new Chart(document.getElementById(id), {
    type, data: {labels, datasets},
    options: {animation: false, responsive: true, maintainAspectRatio: false, plugins: {legend: {labels: {color: "#e6edf3"}}},
              scales: type === "doughnut" ? {} : {x: {ticks: {color: "#8b98a5"}},
                                                  y: {ticks: {color: "#8b98a5", precision: 0}, beginAtZero: true}}},
  });
}

// ECS names an analyst reads; the raw name stays on hover (title) and in data-field
const LABELS = {
  "@timestamp": "time", "event.id": "id", "event.dataset": "dataset", "event.action": "action",
  "event.outcome": "outcome", "event.code": "event code", "source.ip": "source address",
  "destination.ip": "destination address", "destination.port": "destination port", "user.name": "account",
  "user.target.name": "target account", "host.name": "host", "process.command_line": "command line",
  "process.name": "process", "dns.question.name": "DNS name", "url.path": "URL path", "http.request.method": "HTTP method",
  "tls.client.server_name": "TLS server name", "service.name": "service", "rule.name": "rule",
  "threat.technique.id": "ATT&CK technique", "ztsoc.alert.level": "level", "ztsoc.alert.status": "status",
  "ztsoc.alert.assignee": "assignee", "ztsoc.alert.close_reason": "close reason", "ztsoc.alert.entity.value": "entity",
  "ztsoc.alert.first_seen": "first seen", "ztsoc.alert.last_seen": "last seen",
};

function label(field) {
  if (LABELS[field]) return LABELS[field];
  const parts = field.split(".");
  return parts.slice(-2).join(" ").replace(/_/g, " ");
}

function labelled(tag, field) { return el(tag, label(field), {title: field}); }

function values(fields) {
  // the fields the rule looks at, one "label: value" line each, the raw name on hover
  const cell = el("td");
  for (const [field, value] of Object.entries(fields || {})) {
    const line = cell.appendChild(el("div", null, {title: field, class: "kv"}));
    line.appendChild(el("span", label(field) + ": ", {class: "k"}));
    line.appendChild(el("span", Array.isArray(value) ? value.join(", ") : value));
  }
  return cell;
}

function hhmm(iso) { return iso ? iso.slice(5, 16).replace("T", " ") : ""; }

function series(rows, key) {
  // rows: [{t, <key>, count}] -> labels and one dataset per key value
  const times = [...new Set(rows.map(r => r.t))].sort();
  const names = [...new Set(rows.map(r => r[key]))].sort();
  const datasets = names.map(name => ({
    label: name, data: times.map(t => (rows.find(r => r.t === t && r[key] === name) || {count: 0}).count),
  }));
  return [times.map(hhmm), datasets];
}

const pages = {
  async overview() {
    const d = await api(`/api/overview?since=${since()}`);
    document.getElementById("open-alerts").textContent = d.open_alerts;
    for (const [level, n] of Object.entries(d.open_by_level)) {
      const node = document.getElementById("level-" + level);
      if (node) node.textContent = n;
    }
    drawChart("chart-alerts-time", "bar", d.alerts_over_time.map(r => hhmm(r.t)),
              [{label: "alerts", data: d.alerts_over_time.map(r => r.count), backgroundColor: "#4aa3ff"}]);
    drawChart("chart-status", "doughnut", Object.keys(d.by_status), [{data: Object.values(d.by_status)}]);
    fillTable("top-rules", [["rule", "rule"], ["alerts", "count"]], d.top_rules);
    fillTable("top-entities", [["entity", "entity"], ["risk", "score"], ["band", "band"], ["open alerts", "alerts"]], d.top_entities);
    const [labels, datasets] = series(d.events_per_hour, "dataset");
    drawChart("chart-collection", "line", labels, datasets);
    fillTable("collection", [["dataset", "dataset"], ["events", "events"], ["last event", "last_event"]], d.collection);
  },

  async alerts() {
    const params = new URLSearchParams({since: since() === "24h" ? "7d" : since()});
    const status = document.getElementById("filter-status").value;
    const level = document.getElementById("filter-level").value;
    const q = document.getElementById("filter-q").value.trim();
    if (status) params.set("status", status);
    if (level) params.set("level", level);
    if (q) params.set("q", q);
    const d = await api(`/api/alerts?${params}`);
    document.getElementById("alert-total").textContent = `${d.total} alerts`;
    const body = document.getElementById("alert-rows");
    body.replaceChildren();
    d.alerts.forEach(a => {
      const tr = el("tr", null, {"data-id": a["event.id"]});
      const level = a["ztsoc.alert.level"] || "";
      [hhmm(a["@timestamp"]), level, a["rule.name"], a["ztsoc.alert.entity.value"], a["ztsoc.alert.status"],
       a["ztsoc.alert.assignee"] || ""].forEach((v, i) => tr.appendChild(el("td", v, i === 1 ? {class: "lvl-" + level} : {})));
      tr.addEventListener("click", () => showAlert(a["event.id"]));
      body.appendChild(tr);
    });
  },

  async network() {
    const d = await api(`/api/network?since=${since()}`);
    drawChart("chart-flows", "bar", d.flows_over_time.map(r => hhmm(r.t)),
              [{label: "flows", data: d.flows_over_time.map(r => r.count), backgroundColor: "#5cc8ff"}]);
    fillTable("top-talkers", [["source", "ip"], ["bytes", "bytes"], ["flows", "connections"], ["peers", "peers"]], d.top_talkers);
    fillTable("top-domains", [["name", "name"], ["queries", "count"]], d.top_domains);
    fillTable("odd-domains", [["domain", "domain"], ["distinct names", "names"]], d.odd_domains);
    fillTable("tls-sni", [["server name", "server_name"], ["handshakes", "count"]], d.tls_sni);
  },

  async identity() {
    const d = await api(`/api/identity?since=${since()}`);
    const [labels, datasets] = series(d.decisions_over_time, "action");
    drawChart("chart-decisions", "bar", labels, datasets);
    fillTable("top-denied", [["caller", "principal"], ["service", "service"], ["denials", "count"]], d.top_denied);
    fillTable("risky", [["identity", "entity"], ["risk", "score"], ["open alerts", "alerts"]], d.risky_identities);
    fillTable("policy-changes", [["time", "@timestamp"], ["who", "actor"], ["change", "summary"]], d.policy_changes);
  },

  async exercises() {
    const d = await api(`/api/exercises`);
    fillTable("scoreboard", [["trainee", "trainee"], ["exercise", "exercise"], ["score", "score"],
                             ["hints", "hints"], ["time (s)", "seconds"]], d.scoreboard);
  },
};

async function showAlert(id) {
  const d = await api(`/api/alerts/${encodeURIComponent(id)}`);
  currentAlert = id;
  document.querySelectorAll("#alert-rows tr").forEach(tr => tr.classList.toggle("selected", tr.dataset.id === id));
  const a = d.alert;
  document.getElementById("detail").hidden = false;
  document.getElementById("detail-title").textContent = a["rule.name"];
  const fields = document.getElementById("detail-fields");
  fields.replaceChildren();
  for (const key of ["event.id", "ztsoc.alert.level", "ztsoc.alert.status", "ztsoc.alert.assignee", "ztsoc.alert.close_reason",
                     "ztsoc.alert.entity.value", "threat.technique.id", "ztsoc.alert.first_seen", "ztsoc.alert.last_seen"]) {
    fields.appendChild(labelled("dt", key));
    fields.appendChild(el("dd", Array.isArray(a[key]) ? a[key].join(", ") : (a[key] ?? ""), {"data-field": key}));
  }
  fields.appendChild(el("dt", "entity risk", {title: "detections.risk"}));
  fields.appendChild(el("dd", d.risk ? `${d.risk.score} (${d.risk.band}) from ${d.risk.alerts} unresolved alert(s)` : "",
                        {"data-field": "risk"}));
  document.getElementById("evidence-count").textContent =
    `(${d.evidence.length} of ${d.evidence_total} events, the decisive ones first)`;
  // what the rule itself looks at (its detection and correlation fields), as `soc alerts show` prints it
  const evidence = document.getElementById("evidence");
  evidence.replaceChildren();
  const head = evidence.appendChild(el("thead")).appendChild(el("tr"));
  ["@timestamp", "event.dataset", "event.outcome"].forEach(f => head.appendChild(labelled("th", f)));
  head.appendChild(el("th", "what the rule looks at"));
  const body = evidence.appendChild(el("tbody"));
  d.evidence.forEach(e => {
    const tr = body.appendChild(el("tr", null, {"data-outcome": e["event.outcome"] || ""}));
    tr.appendChild(el("td", hhmm(e["@timestamp"]), {title: e["@timestamp"]}));
    tr.appendChild(el("td", e["event.dataset"]));
    tr.appendChild(el("td", e["event.outcome"] || ""));
    tr.appendChild(values(e["ztsoc.evidence.fields"]));
  });
  // the linked timeline: the entity around the alert, and what the accounts it logged in as did next
  const timeline = document.getElementById("timeline");
  timeline.replaceChildren();
  const th = timeline.appendChild(el("thead")).appendChild(el("tr"));
  ["time", "dataset", "link", "what happened"].forEach(h => th.appendChild(el("th", h)));
  const tb = timeline.appendChild(el("tbody"));
  (d.timeline || []).forEach(r => {
    const tr = tb.appendChild(el("tr", null, r.evidence ? {class: "evidence"} : {}));
    tr.appendChild(el("td", hhmm(r["@timestamp"]), {title: r["@timestamp"] || ""}));
    tr.appendChild(el("td", r["event.dataset"]));
    tr.appendChild(el("td", r.link || ""));
    tr.appendChild(el("td", r.summary));
  });
  const guide = document.getElementById("guide");
  guide.replaceChildren();
  if (d.guide && d.guide.investigation) guide.appendChild(el("p", d.guide.investigation));
  const steps = guide.appendChild(el("ol"));
  ((d.guide && d.guide.response) || []).forEach(step => steps.appendChild(el("li", step)));
  fillTable("history", [["time", "@timestamp"], ["who", "actor"], ["action", "action"], ["note", "note"]],
            a["ztsoc.alert.history"] || []);
}

async function act(action, body = {}) {
  const out = document.getElementById("action-result");
  try {
    await api(`/api/alerts/${encodeURIComponent(currentAlert)}/${action}`, {method: "POST", body: JSON.stringify(body)});
    await pages.alerts();
    await showAlert(currentAlert);
    out.textContent = `${action}: done`;
  } catch (err) {
    out.textContent = `${action}: ${err.message}`;
  }
}

function wireActions() {
  document.getElementById("btn-ack").onclick = () => act("ack");
  document.getElementById("btn-escalate").onclick = () => act("escalate");
  document.getElementById("btn-reopen").onclick = () => act("reopen");
  document.getElementById("btn-assign").onclick = () => act("assign", {assignee: document.getElementById("assignee").value});
  document.getElementById("btn-close").onclick = () => act("close", {reason: document.getElementById("close-reason").value,
                                                                      note: document.getElementById("note").value || null});
  document.getElementById("btn-note").onclick = () => act("note", {note: document.getElementById("note").value});
  document.getElementById("alert-filters").addEventListener("submit", ev => { ev.preventDefault(); pages.alerts(); });
  document.getElementById("filter-status").onchange = () => pages.alerts();
  document.getElementById("filter-level").onchange = () => pages.alerts();
}

async function show() {
  const name = (location.hash || "#overview").slice(1);
  const page = pages[name] ? name : "overview";
  document.querySelectorAll(".page").forEach(p => p.classList.toggle("active", p.id === "page-" + page));
  document.querySelectorAll("nav a").forEach(a => a.classList.toggle("active", a.dataset.page === page));
  const status = document.getElementById("status");
  status.textContent = "loading…";
  try {
    await pages[page]();
    status.textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.loaded = page;
  } catch (err) {
    status.textContent = "error: " + err.message;
  }
}

window.addEventListener("hashchange", show);
document.getElementById("since").addEventListener("change", show);
wireActions();
signIn().then(ok => { if (ok) show(); });
