// ztsoc dashboard: each page fetches its view from the JSON API and draws it.
"use strict";

// Signed in by the session cookie (HttpOnly: this script never sees it); state changes carry the
// session's CSRF token from /api/session, which only a page of this origin can read.
const charts = {};
let currentAlert = null;
let session = null;

// The page's language, rendered by the server (dashboards/i18n.py): messages, display names and
// Babel's number symbols and date patterns. A JSON data block, read as text: never executed.
const TEXT = JSON.parse(document.getElementById("page-text").textContent);

function own(table, key) {
  // a table's own entry or undefined: never an inherited one (a stored value "constructor" or
  // "__proto__" would otherwise be shown as Object's function or as [object Object])
  return Object.hasOwn(table, key) ? table[key] : undefined;
}

function t(key, fields = {}) {
  // a message with its {name} fields filled; a filled value is text (textContent), never markup
  const message = own(TEXT.messages, key) ?? key;
  return message.replace(/\{(\w+)\}/g, (m, name) => (Object.hasOwn(fields, name) ? String(fields[name]) : m));
}

function plural(key, n) {
  const [one, many] = TEXT.plurals[key];
  return (n === 1 ? one : many).replace("{n}", fmtNumber(n));
}

function shown(value) {
  // a stored value (high, open, true_positive, deny) by its display name; anything else as it is
  return value === null || value === undefined ? "" : (own(TEXT.values, value) ?? value);
}

function ruleTitle(ruleId, name) { return own(TEXT.rules, ruleId) ?? name; }

function fmtNumber(n) {
  // Babel's symbols for the language (#,##0.### : groups of three, at most three decimals)
  if (typeof n !== "number" || !Number.isFinite(n)) return n ?? "";
  const fixed = Math.abs(n).toFixed(3).replace(/\.?0+$/, "");
  const [whole, frac] = fixed.split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, TEXT.format.group);
  return (n < 0 && fixed !== "0" ? "-" : "") + grouped + (frac ? TEXT.format.decimal + frac : "");
}

const DATE_PARTS = {
  d: d => d.getUTCDate(), M: d => d.getUTCMonth() + 1, y: d => d.getUTCFullYear(),
  H: d => d.getUTCHours(), m: d => d.getUTCMinutes(), s: d => d.getUTCSeconds(),
};

function fmtDate(iso, pattern = "datetime") {
  // an ISO time in one of the language's CLDR patterns (UTC), as tokens from the server
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return TEXT.format[pattern].map(([kind, value]) => kind === "chars" ? value
    : String(DATE_PARTS[value[0]](d)).padStart(value.length, "0").slice(-value.length)).join("");
}

function failure(err) {
  // the page's own sentence for the kind of refusal, then the server's detail in the page's language
  return err.status ? `${own(TEXT.messages, "http_" + err.status) ?? err.status}: ${err.message}` : err.message;
}

async function api(path, options = {}) {
  // X-Display-Language: refusals also come back as "message" in the page's language ("error" stays English)
  const headers = Object.assign({"Content-Type": "application/json", "X-Display-Language": TEXT.lang},
                                options.headers || {});
  if (session && session.csrf) headers["X-CSRF-Token"] = session.csrf;
  const response = await fetch(path, Object.assign({credentials: "same-origin"}, options, {headers}));
  const data = await response.json();
  if (!response.ok) throw Object.assign(new Error(data.message || data.error || response.statusText), {status: response.status});
  return data;
}

async function signIn() {
  const who = document.getElementById("analyst");
  try {
    session = await api("/api/session");
    who.textContent = session.how === "local"
      ? t("acting_as", {analyst: session.analyst})
      : t("signed_in_as", {analyst: session.analyst});
    // the local user has nothing to sign out of: the next page load is the local user again
    document.getElementById("sign-out").hidden = session.how !== "session";
    return true;
  } catch (err) {
    who.textContent = t("not_signed_in");
    return false;
  }
}

async function signOut() {
  // ends the server-side session and expires the cookie (CSRF-checked like every change)
  const status = document.getElementById("status");
  try {
    await api("/api/logout", {method: "POST", body: "{}"});
    session = null;
    location.reload();
  } catch (err) {
    status.textContent = t("error", {message: failure(err)});
  }
}

async function chooseLanguage(ev) {
  // kept with the analyst on the server (CSRF-checked like every change); the page comes back in it
  const status = document.getElementById("status");
  try {
    await api("/api/language", {method: "POST", body: JSON.stringify({language: ev.target.value})});
    status.textContent = t("language_saved");
    location.reload();
  } catch (err) {
    status.textContent = t("error", {message: failure(err)});
  }
}

function since() { return document.getElementById("since").value; }

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function cell(value) { return typeof value === "number" ? fmtNumber(value) : value; }

function fillTable(id, columns, rows) {
  // columns: [message key, row key or function of the row]
  const table = document.getElementById(id);
  table.replaceChildren();
  const head = el("tr");
  columns.forEach(([key]) => head.appendChild(el("th", t(key))));
  table.appendChild(el("thead")).appendChild(head);
  const body = table.appendChild(el("tbody"));
  rows.forEach(row => {
    const tr = el("tr");
    columns.forEach(([, key]) => tr.appendChild(el("td", cell(typeof key === "function" ? key(row) : row[key]))));
    body.appendChild(tr);
  });
  if (!rows.length) body.appendChild(el("tr")).appendChild(el("td", t("nothing_here"), {colspan: columns.length}));
}

function drawChart(id, type, labels, datasets) {
  if (charts[id]) charts[id].destroy();
  // every chart counts things: whole numbers on the value axis, in the language's digits
  const ticks = {color: "#8b98a5", precision: 0, callback: v => fmtNumber(v)};
  charts[id] = new Chart(document.getElementById(id), {
    type, data: {labels, datasets},
    options: {animation: false, responsive: true, maintainAspectRatio: false, locale: TEXT.lang,
              plugins: {legend: {labels: {color: "#e6edf3"}}},
              scales: type === "doughnut" ? {} : {x: {ticks: {color: "#8b98a5"}}, y: {ticks, beginAtZero: true}}},
  });
}

function label(field) {
  // ECS names an analyst reads; the raw name stays on hover (title) and in data-field
  const named = own(TEXT.fields, field);
  if (named) return named;
  const parts = field.split(".");
  return parts.slice(-2).join(" ").replace(/_/g, " ");
}

function labelled(tag, field) { return el(tag, label(field), {title: field}); }

function values(fields) {
  // the fields the rule looks at, one "label: value" line each, the raw name on hover
  const td = el("td");
  for (const [field, value] of Object.entries(fields || {})) {
    const line = td.appendChild(el("div", null, {title: field, class: "kv"}));
    line.appendChild(el("span", label(field) + ": ", {class: "k"}));
    // event.outcome is ECS's own enumeration (success, failure, unknown): named like the outcome column
    const text = Array.isArray(value) ? value.join(", ") : value;
    line.appendChild(el("span", field === "event.outcome" ? shown(text) : text, {"data-value": String(text)}));
  }
  return td;
}

function short(iso) { return fmtDate(iso, "short"); }

function series(rows, key) {
  // rows: [{t, <key>, count}] -> labels and one dataset per key value
  const times = [...new Set(rows.map(r => r.t))].sort();
  const names = [...new Set(rows.map(r => r[key]))].sort();
  const datasets = names.map(name => ({
    label: shown(name), data: times.map(t => (rows.find(r => r.t === t && r[key] === name) || {count: 0}).count),
  }));
  return [times.map(short), datasets];
}

const pages = {
  async overview() {
    const d = await api(`/api/overview?since=${since()}`);
    document.getElementById("open-alerts").textContent = fmtNumber(d.open_alerts);
    for (const [level, n] of Object.entries(d.open_by_level)) {
      const node = document.getElementById("level-" + level);
      if (node) node.textContent = fmtNumber(n);
    }
    drawChart("chart-alerts-time", "bar", d.alerts_over_time.map(r => short(r.t)),
              [{label: t("alerts"), data: d.alerts_over_time.map(r => r.count), backgroundColor: "#4aa3ff"}]);
    drawChart("chart-status", "doughnut", Object.keys(d.by_status).map(shown), [{data: Object.values(d.by_status)}]);
    fillTable("top-rules", [["rule", r => ruleTitle(r.rule_id, r.rule)], ["alerts", "count"]], d.top_rules);
    fillTable("top-entities", [["entity", "entity"], ["risk", "score"], ["band", r => shown(r.band)],
                               ["open_alerts", "alerts"]], d.top_entities);
    const [labels, datasets] = series(d.events_per_hour, "dataset");
    drawChart("chart-collection", "line", labels, datasets);
    fillTable("collection", [["dataset", "dataset"], ["events", "events"], ["last_event", r => fmtDate(r.last_event)]],
              d.collection);
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
    document.getElementById("alert-total").textContent = plural("alert_total", d.total);
    const body = document.getElementById("alert-rows");
    body.replaceChildren();
    d.alerts.forEach(a => {
      const tr = el("tr", null, {"data-id": a["event.id"]});
      const level = a["ztsoc.alert.level"] || "";
      tr.appendChild(el("td", fmtDate(a["@timestamp"]), {title: a["@timestamp"], class: "time"}));
      tr.appendChild(el("td", shown(level), {class: "lvl-" + level, "data-value": level}));
      tr.appendChild(el("td", ruleTitle(a["rule.id"], a["rule.name"]), {title: a["rule.id"] || ""}));
      tr.appendChild(el("td", a["ztsoc.alert.entity.value"]));
      tr.appendChild(el("td", shown(a["ztsoc.alert.status"]), {"data-value": a["ztsoc.alert.status"]}));
      tr.appendChild(el("td", a["ztsoc.alert.assignee"] || ""));
      tr.addEventListener("click", () => showAlert(a["event.id"]));
      body.appendChild(tr);
    });
  },

  async network() {
    const d = await api(`/api/network?since=${since()}`);
    drawChart("chart-flows", "bar", d.flows_over_time.map(r => short(r.t)),
              [{label: t("flows"), data: d.flows_over_time.map(r => r.count), backgroundColor: "#5cc8ff"}]);
    fillTable("top-talkers", [["source", "ip"], ["bytes", "bytes"], ["flows", "connections"], ["peers", "peers"]],
              d.top_talkers);
    fillTable("top-domains", [["name", "name"], ["queries", "count"]], d.top_domains);
    fillTable("odd-domains", [["domain", "domain"], ["distinct_names", "names"]], d.odd_domains);
    fillTable("tls-sni", [["server_name", "server_name"], ["handshakes", "count"]], d.tls_sni);
  },

  async identity() {
    const d = await api(`/api/identity?since=${since()}`);
    const [labels, datasets] = series(d.decisions_over_time, "action");
    drawChart("chart-decisions", "bar", labels, datasets);
    fillTable("top-denied", [["caller", "principal"], ["service", "service"], ["denials", "count"]], d.top_denied);
    fillTable("risky", [["identity", "entity"], ["risk", "score"], ["open_alerts", "alerts"]], d.risky_identities);
    fillTable("policy-changes", [["time", r => fmtDate(r["@timestamp"])], ["who", "actor"], ["change", "summary"]],
              d.policy_changes);
  },

  async exercises() {
    const d = await api(`/api/exercises`);
    fillTable("scoreboard", [["trainee", "trainee"], ["exercise", "exercise"], ["score", "score"],
                             ["hints", "hints"], ["seconds", "seconds"]], d.scoreboard);
  },
};

// detail fields shown by their display name (the stored value stays in the dd's title)
const DISPLAY = {
  "ztsoc.alert.level": shown, "ztsoc.alert.status": shown, "ztsoc.alert.close_reason": shown,
  "ztsoc.alert.first_seen": v => fmtDate(v), "ztsoc.alert.last_seen": v => fmtDate(v),
};

async function showAlert(id) {
  const d = await api(`/api/alerts/${encodeURIComponent(id)}?lang=${TEXT.lang}`);
  currentAlert = id;
  document.querySelectorAll("#alert-rows tr").forEach(tr => tr.classList.toggle("selected", tr.dataset.id === id));
  const a = d.alert;
  document.getElementById("detail").hidden = false;
  document.getElementById("detail-title").textContent = ruleTitle(a["rule.id"], a["rule.name"]);
  const fields = document.getElementById("detail-fields");
  fields.replaceChildren();
  for (const key of ["event.id", "ztsoc.alert.level", "ztsoc.alert.status", "ztsoc.alert.assignee", "ztsoc.alert.close_reason",
                     "ztsoc.alert.entity.value", "threat.technique.id", "ztsoc.alert.first_seen", "ztsoc.alert.last_seen"]) {
    const raw = Array.isArray(a[key]) ? a[key].join(", ") : (a[key] ?? "");
    fields.appendChild(labelled("dt", key));
    const display = own(DISPLAY, key);
    fields.appendChild(el("dd", display ? display(raw) : raw, {"data-field": key, title: String(raw)}));
  }
  fields.appendChild(el("dt", t("entity_risk"), {title: "detections.risk"}));
  fields.appendChild(el("dd", d.risk ? t("risk_line", {score: fmtNumber(d.risk.score), band: shown(d.risk.band),
                                                       n: fmtNumber(d.risk.alerts)}) : "", {"data-field": "risk"}));
  document.getElementById("evidence-count").textContent =
    t("evidence_count", {shown: fmtNumber(d.evidence.length), total: fmtNumber(d.evidence_total)});
  // what the rule itself looks at (its detection and correlation fields), as `soc alerts show` prints it
  const evidence = document.getElementById("evidence");
  evidence.replaceChildren();
  const head = evidence.appendChild(el("thead")).appendChild(el("tr"));
  ["@timestamp", "event.dataset", "event.outcome"].forEach(f => head.appendChild(labelled("th", f)));
  head.appendChild(el("th", t("what_rule_looks_at")));
  const body = evidence.appendChild(el("tbody"));
  d.evidence.forEach(e => {
    const tr = body.appendChild(el("tr", null, {"data-outcome": e["event.outcome"] || ""}));
    tr.appendChild(el("td", fmtDate(e["@timestamp"]), {title: e["@timestamp"], class: "time"}));
    tr.appendChild(el("td", e["event.dataset"]));
    tr.appendChild(el("td", shown(e["event.outcome"] || "")));
    tr.appendChild(values(e["ztsoc.evidence.fields"]));
  });
  // the linked timeline: the entity around the alert, and what the accounts it logged in as did next
  const timeline = document.getElementById("timeline");
  timeline.replaceChildren();
  const th = timeline.appendChild(el("thead")).appendChild(el("tr"));
  ["time", "dataset", "link", "what_happened"].forEach(h => th.appendChild(el("th", t(h))));
  const tb = timeline.appendChild(el("tbody"));
  (d.timeline || []).forEach(r => {
    const tr = tb.appendChild(el("tr", null, r.evidence ? {class: "evidence"} : {}));
    tr.appendChild(el("td", fmtDate(r["@timestamp"]), {title: r["@timestamp"] || "", class: "time"}));
    tr.appendChild(el("td", r["event.dataset"]));
    tr.appendChild(el("td", r.link || ""));
    tr.appendChild(el("td", r.summary));
  });
  const guide = document.getElementById("guide");
  guide.replaceChildren();
  if (d.guide && d.guide.investigation) guide.appendChild(el("p", d.guide.investigation));
  const steps = guide.appendChild(el("ol"));
  ((d.guide && d.guide.response) || []).forEach(step => steps.appendChild(el("li", step)));
  fillTable("history", [["time", r => fmtDate(r["@timestamp"])], ["who", "actor"], ["action", r => shown(r.action)],
                        ["note", "note"]], a["ztsoc.alert.history"] || []);
}

async function act(action, body = {}) {
  const out = document.getElementById("action-result");
  try {
    await api(`/api/alerts/${encodeURIComponent(currentAlert)}/${action}`, {method: "POST", body: JSON.stringify(body)});
    await pages.alerts();
    await showAlert(currentAlert);
    out.textContent = t("done", {action: shown(action)});
  } catch (err) {
    out.textContent = t("failed", {action: shown(action), message: failure(err)});
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
  document.getElementById("language").onchange = chooseLanguage;
  document.getElementById("sign-out").onclick = signOut;
}

async function show() {
  const name = (location.hash || "#overview").slice(1);
  const page = Object.hasOwn(pages, name) ? name : "overview";
  document.querySelectorAll(".page").forEach(p => p.classList.toggle("active", p.id === "page-" + page));
  document.querySelectorAll("nav a").forEach(a => a.classList.toggle("active", a.dataset.page === page));
  const status = document.getElementById("status");
  status.textContent = t("loading");
  try {
    await pages[page]();
    status.textContent = t("updated", {time: fmtDate(new Date().toISOString(), "time")});
    document.body.dataset.loaded = page;
  } catch (err) {
    status.textContent = t("error", {message: failure(err)});
  }
}

window.addEventListener("hashchange", show);
document.getElementById("since").addEventListener("change", show);
wireActions();
signIn().then(ok => { if (ok) show(); });
