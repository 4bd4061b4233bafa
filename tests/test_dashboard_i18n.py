"""The dashboard in the analyst's language (issue 18): the choice, where it is kept, what it changes.

Over HTTP (the guard always in front): the language is the analyst's own choice, kept with
them in the store and changed only by a same-origin JSON POST with the session's CSRF
token; else the server's ``SOC_LANG``/``LANG``; else ``Accept-Language``. The JSON API
answers the same bytes in every language. In Chromium: an analyst selects Vietnamese,
reloads and still has it, another analyst still has English; the pages show Vietnamese
with its diacritics drawn by a real font, and the script's number and date formatting
agrees with Babel's on generated values. Screenshots: ``test-artifacts/dashboard-vi-*.png``.
"""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from babel.dates import format_datetime
from babel.numbers import format_decimal

from dashboards import analysts, i18n
from dashboards.server import TEMPLATES
from eventstore.store import Store
from eventstore.timeutil import to_iso
from tests.dashboard_browser import neutral_language, new_page, shot, ssh_incident
from tests.dashboard_client import Client, serving
from tests.dashboard_seed import seed

DATA_BLOCK = re.compile(r'<script type="application/json" id="page-text">(.*?)</script>', re.S)


@pytest.mark.parametrize(("header", "lang"), [
    ("vi-VN,vi;q=0.9,en-US;q=0.8,en;q=0.7", "vi"), ("en-US,en;q=0.9,vi;q=0.8", "en"), ("fr-FR, vi;q=0.5", "vi"),
    ("en;q=0.4, vi;q=0.6", "vi"), ("de, fr", "en"), ("vi;q=0", "en"), ("", "en"), (None, "en"), ("*", "en"),
    ("vi;q=abc, en", "en"), ("x" * 10_000 + ",vi", "en"), (",;;q=,vi", "vi"),
])
def test_accept_language(header: str | None, lang: str) -> None:
    assert i18n.accept_language(header) == lang


@pytest.mark.parametrize(("env", "lang"), [
    ({"SOC_LANG": "vi"}, "vi"), ({"LANG": "vi_VN.UTF-8"}, "vi"), ({"LANG": "C.UTF-8"}, None), ({"LANG": "POSIX"}, None),
    ({}, None), ({"LC_ALL": "C", "LANG": "vi_VN.UTF-8"}, "vi"), ({"LANG": "fr_FR.UTF-8"}, None),
    ({"SOC_LANG": "en", "LANG": "vi_VN.UTF-8"}, "en"), ({"LANGUAGE": "fr:vi"}, "vi"),
])
def test_server_language(env: dict[str, str], lang: str | None) -> None:
    assert i18n.server_language(env) == lang


def test_choice_then_server_then_browser() -> None:
    assert i18n.request_language("vi", "en", "en") == "vi"
    assert i18n.request_language(None, "vi", "en") == "vi"
    assert i18n.request_language(None, None, "vi") == "vi"
    assert i18n.request_language("xx", None, None) == "en"


def test_dates_and_numbers_are_babels() -> None:
    """dd/MM/yyyy in Vietnamese (day first, 24-hour clock), decimal comma and dot thousands."""
    moment = datetime(2026, 3, 5, 7, 9, 3, tzinfo=UTC)
    vi, en = i18n.locale_formats("vi"), i18n.locale_formats("en")
    assert format_datetime(moment, i18n.padded_pattern(vi["datetime"]), tzinfo=UTC, locale="vi") == "07:09 05/03/2026"
    assert format_datetime(moment, i18n.padded_pattern(en["datetime"]), tzinfo=UTC, locale="en") == "03/05/2026, 07:09"
    assert (vi["decimal"], vi["group"], en["decimal"], en["group"]) == (",", ".", ".", ",")
    with pytest.raises(ValueError, match="not numeric"):
        i18n._padded("d MMM y")


def test_every_field_a_shipped_rule_decides_on_has_a_name() -> None:
    """The alert's evidence column names each field a rule looks at (raw ECS name on hover): none left raw."""
    from detections.evidence import rule_fields
    from detections.sigma.cache import load_compiled_cached

    compiled = load_compiled_cached()[1]
    fields = {f for rule_id in compiled.rules for f in rule_fields(compiled, rule_id)}
    assert fields and not fields - set(i18n.FIELD_LABELS), sorted(fields - set(i18n.FIELD_LABELS))


def _signed_in(port: int, token: str) -> tuple[Client, str]:
    client = Client(port)
    assert client.get("/", token=token).status == 303
    return client, str(client.session()["csrf"])


def test_language_is_kept_per_analyst_and_changed_only_with_csrf(sqlite_store: Store,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    neutral_language(monkeypatch)
    seed(sqlite_store)
    ana_token = analysts.add(sqlite_store, "ana", created_by="admin")
    binh_token = analysts.add(sqlite_store, "binh", created_by="admin")
    with serving(sqlite_store) as served:
        ana, csrf = _signed_in(served.port, ana_token)
        binh, _csrf = _signed_in(served.port, binh_token)
        assert ana.post("/api/language", {"language": "vi"}).status == 403  # no CSRF token
        assert ana.post("/api/language", {"language": "vi"}, csrf=csrf,
                        headers={"Origin": "http://evil.example"}).status == 403
        assert ana.request("POST", "/api/language", b'{"language": "vi"}',
                           {"Content-Type": "text/plain", "X-CSRF-Token": csrf}).status == 403
        assert analysts.language_of(sqlite_store, "ana") is None
        for bad in ({"language": "fr"}, {"language": ["vi"]}, {}, [1]):
            assert ana.post("/api/language", bad, csrf=csrf).status == 400, bad
        assert Client(served.port).post("/api/language", {"language": "vi"}).status == 401  # nobody signed in

        reply = ana.post("/api/language", {"language": "vi"}, csrf=csrf)
        assert reply.status == 200 and reply.json() == {"analyst": "ana", "language": "vi"}
        assert analysts.language_of(sqlite_store, "ana") == "vi"
        assert ana.session()["language"] == "vi" and binh.session()["language"] == "en"
        page = ana.get("/")
        html = page.body.decode()
        assert page.headers["content-language"] == "vi" and '<html lang="vi">' in html
        assert "Tổng quan" in html and "Định danh &amp; chính sách" in html and ">nghiêm trọng<" in html
        assert '<option value="vi" lang="vi" selected>Tiếng Việt</option>' in html
        assert '<html lang="en">' in binh.get("/").body.decode()
        # the choice outlives the session: a new sign-in with another token of ana's
        again, _ = _signed_in(served.port, analysts.add(sqlite_store, "ana", created_by="admin"))
        assert again.session()["language"] == "vi"
        # a script with its token (Bearer: no cookie, no CSRF) may set its analyst's language too
        bearer = {"Authorization": f"Bearer {binh_token}"}
        assert Client(served.port).post("/api/language", {"language": "vi"}, headers=bearer).status == 200
        assert analysts.language_of(sqlite_store, "binh") == "vi"


def test_server_language_comes_before_the_browsers(sqlite_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    neutral_language(monkeypatch)
    with serving(sqlite_store) as served:
        for header, lang in (("vi-VN,vi;q=0.9,en;q=0.8", "vi"), ("fr-FR", "en"), ("en;q=0.5, vi;q=0.6", "vi")):
            reply = Client(served.port).request("GET", "/", headers={"Accept-Language": header})
            assert reply.headers["content-language"] == lang, header
    monkeypatch.setenv("SOC_LANG", "vi")
    with serving(sqlite_store) as served:
        reply = Client(served.port).request("GET", "/", headers={"Accept-Language": "en-US"})
        assert reply.headers["content-language"] == "vi"
        client = Client(served.port)
        client.get("/")
        client.post("/api/language", {"language": "en"}, csrf=str(client.session()["csrf"]))
        assert client.request("GET", "/", headers={"Accept-Language": "vi"}).headers["content-language"] == "en"


def test_json_api_is_the_same_in_every_language(sqlite_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    neutral_language(monkeypatch)
    seed(sqlite_store)
    analysts.set_language(sqlite_store, "ana", "vi", ("en", "vi"))
    tokens = [analysts.add(sqlite_store, name, created_by="admin") for name in ("ana", "binh")]
    since = to_iso(datetime.now(UTC) - timedelta(days=1))  # one fixed range for both
    with serving(sqlite_store) as served:
        vi, en = (_signed_in(served.port, token)[0] for token in tokens)
        assert (vi.session()["language"], en.session()["language"]) == ("vi", "en")
        for path in (f"/api/alerts?since={since}", f"/api/network?since={since}", "/api/exercises"):
            got = [c.request("GET", path, headers={"Accept-Language": lang}).body for c, lang in ((en, "en"), (vi, "vi"))]
            assert got[0] == got[1], path
        details = [json.loads(c.get("/api/alerts/alert-0").body) for c in (en, vi)]
        for d in details:
            d.pop("risk")  # decays with the clock between the two requests
        assert details[0] == details[1]
        assert en.get("/api/alerts/alert-0", lang="fr").status == 400


def test_refusals_in_the_pages_language_only_when_asked(sqlite_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """``error`` is always the English text (scripts match it); ``message`` is added in the language the page asks
    for with X-Display-Language: the dashboard's own refusals and those raised by the alert lifecycle."""
    neutral_language(monkeypatch)
    seed(sqlite_store)
    vi = {"X-Display-Language": "vi"}
    with serving(sqlite_store, local_actor="lan") as served:
        client = Client(served.port)
        csrf = str(client.session()["csrf"])
        plain = client.post("/api/alerts/alert-0/assign", {"assignee": ""}, csrf=csrf)
        asked = client.post("/api/alerts/alert-0/assign", {"assignee": ""}, csrf=csrf, headers=vi)
        assert plain.status == asked.status == 409
        assert plain.json() == {"error": "assign needs a user name"}
        assert asked.json() == {"error": "assign needs a user name", "message": "giao việc cần tên người dùng"}
        missing = client.request("GET", "/api/alerts/nope", headers=vi)
        assert missing.status == 404 and missing.json() == {"error": "no alert nope", "message": "không có cảnh báo nope"}
        refused = client.post("/api/alerts/alert-0/ack", {}, headers={**vi, "Origin": "http://evil.example"})
        assert refused.status == 403 and refused.json()["error"] == "cross-origin request refused (Origin 'http://evil.example')"
        assert refused.json()["message"] == "từ chối yêu cầu từ nguồn gốc khác (Origin 'http://evil.example')"
        # anything but a language we have is no request for one
        for header in ("en", "fr", "vi; DROP", ""):
            reply = client.request("GET", "/api/alerts/nope", headers={"X-Display-Language": header})
            assert reply.json() == {"error": "no alert nope"}, header


def test_guide_in_vietnamese_on_request(sqlite_store: Store) -> None:
    alert = ssh_incident(sqlite_store)
    with serving(sqlite_store, local_actor="lan") as served:
        client = Client(served.port)
        english = client.get(f"/api/alerts/{alert['event.id']}").json()["guide"]
        vietnamese = client.get(f"/api/alerts/{alert['event.id']}", lang="vi").json()["guide"]
    ip = str(alert["source.ip"])
    assert ip in english["investigation"] and ip in vietnamese["investigation"] and "<ip>" not in vietnamese["investigation"]
    assert vietnamese["investigation"] != english["investigation"]
    assert set(vietnamese) == set(english) and len(vietnamese["response"]) >= 1


def test_the_script_data_block_stays_data() -> None:
    """A translation (or rule title) is put in the page as JSON escaped for HTML: nothing in it closes the block."""
    hostile = {"messages": {"x": "</script><script>alert(1)</script><!--"}, "lang": "vi"}
    text = i18n.PageText("vi")
    html = TEMPLATES.get_template("index.html").render(lang="vi", _=text.gettext, value=text.value,
                                                       languages=text.languages(), script_data=hostile)
    block = DATA_BLOCK.search(html)
    assert block is not None and "<" not in block.group(1) and json.loads(block.group(1)) == hostile
    assert html.count("</script>") == 3  # chart.js, app.js, the data block


# -- in Chromium ------------------------------------------------------------------------------------------------
GLYPHS = """(text) => {
  // the same string drawn twice, a plain letter and an unassigned code point (a missing glyph's box)
  const canvas = document.createElement("canvas"); canvas.width = 400; canvas.height = 60;
  const ctx = canvas.getContext("2d");
  const draw = s => { ctx.clearRect(0, 0, 400, 60); ctx.font = "40px " + getComputedStyle(document.body).fontFamily;
                      ctx.fillText(s, 4, 45); return Array.from(ctx.getImageData(0, 0, 400, 60).data).join(); };
  return [draw(text), draw(text), draw(text.normalize("NFD").replace(/[\\u0300-\\u036f]/g, "")), draw("\\u0378")];
}"""


def _agrees_with_babel(page: Any, lang: str) -> None:
    """The page's fmtNumber / fmtDate against Babel on the same generated values (seeded: the same every run)."""
    rng = random.Random(18)
    numbers: list[float] = [0, 1, -1, 999, 1000, -1000, 1234567, 10**12, 0.5, 42.25, -3.75]
    numbers += [rng.randint(-10**9, 10**9) for _ in range(150)]
    numbers += [round(rng.uniform(-10**6, 10**6), rng.choice([1, 2])) for _ in range(150)]
    got = page.evaluate("ns => ns.map(fmtNumber)", numbers)
    assert got == [format_decimal(n, locale=lang) for n in numbers]
    start = datetime(1990, 1, 1, tzinfo=UTC)
    moments = [start + timedelta(seconds=rng.randint(0, 100 * 365 * 86400), milliseconds=rng.randint(0, 999))
               for _ in range(200)]
    formats = i18n.locale_formats(lang)
    for kind in ("datetime", "short", "time"):
        shown = page.evaluate(f"isos => isos.map(i => fmtDate(i, {json.dumps(kind)}))", [to_iso(m) for m in moments])
        pattern = i18n.padded_pattern(formats[kind])
        assert shown == [format_datetime(m, pattern, tzinfo=UTC, locale=lang) for m in moments], kind


def _wait_loaded(page: Any, name: str, lang: str) -> None:
    page.wait_for_selector(f"html[lang={lang}] body[data-loaded={name}]")


@pytest.mark.browser
def test_vietnamese_selected_remembered_per_analyst(dashboard: tuple[str, Store], browser: Any) -> None:
    url, store = dashboard
    alert = ssh_incident(store)
    ana_token = analysts.add(store, "ana", created_by="admin")
    binh_token = analysts.add(store, "binh", created_by="admin")
    ana = new_page(browser)
    ana.goto(f"{url}/?token={ana_token}")
    _wait_loaded(ana, "overview", "en")
    assert ana.text_content("nav a[data-page=overview]") == "Overview"

    ana.select_option("#language", "vi")  # saved with ana on the server, and the page comes back in it
    _wait_loaded(ana, "overview", "vi")
    assert analysts.language_of(store, "ana") == "vi"
    ana.reload()
    _wait_loaded(ana, "overview", "vi")
    assert [a.text_content() for a in ana.locator("nav a").all()] == [
        "Tổng quan", "Cảnh báo", "Mạng", "Định danh & chính sách", "Bài tập"]
    assert ana.text_content(".level-critical .label") == "nghiêm trọng"
    open_alerts = store.count("ztsoc.alert.status:open", index="alerts")
    assert ana.text_content("#open-alerts") == str(open_alerts)
    assert ana.text_content("#analyst") == "đã đăng nhập: ana"
    assert (ana.text_content("#status") or "").startswith("cập nhật lúc ")
    assert "Tình trạng thu thập" in (ana.text_content("#page-overview") or "")
    assert ana.locator("#collection th").all_text_contents() == ["tập dữ liệu", "sự kiện", "sự kiện gần nhất"]
    last_event = ana.locator("#collection tbody tr td").nth(2).text_content() or ""
    assert re.fullmatch(r"\d\d:\d\d \d\d/\d\d/\d{4}", last_event), last_event
    # the diacritics are drawn by a real font: not the bare letters, not a missing glyph's box
    drawn, again, bare, missing = ana.evaluate(GLYPHS, "Tổng quan nghiêm trọng")
    assert drawn == again and drawn != bare and drawn != missing
    overview_png = shot(ana, "vi-overview")
    phone = ana.context.new_page()  # the longer Vietnamese labels on a phone: nothing runs off the page
    phone.set_viewport_size({"width": 390, "height": 900})
    for name in ("overview", "alerts"):
        phone.goto(f"{url}/#{name}")
        _wait_loaded(phone, name, "vi")
        assert phone.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0, name
    shot(phone, "vi-alerts-390px")
    phone.close()

    ana.goto(url + "/#alerts")
    _wait_loaded(ana, "alerts", "vi")
    assert ana.text_content("#alert-total") == f"{open_alerts} cảnh báo"
    assert ana.locator("#filter-level option[value=medium]").text_content() == "trung bình"
    row = ana.locator(f"#alert-rows tr[data-id='{alert['event.id']}']")
    cells = row.locator("td")
    stamp = cells.nth(0).get_attribute("title") or ""
    assert cells.nth(0).text_content() == format_datetime(datetime.fromisoformat(stamp.replace("Z", "+00:00")),
                                                          "HH:mm dd/MM/yyyy", tzinfo=UTC, locale="vi")
    assert cells.nth(1).get_attribute("data-value") == alert["ztsoc.alert.level"]
    assert cells.nth(2).text_content() == "Dò mật khẩu SSH rồi đăng nhập thành công"
    assert cells.nth(4).text_content() == "đang mở"
    row.click()
    ana.wait_for_selector("#guide p")
    assert ana.text_content("dd[data-field='ztsoc.alert.status']") == "đang mở"
    assert ana.get_attribute("dd[data-field='ztsoc.alert.status']", "title") == "open"
    assert ana.text_content("dt[title='ztsoc.alert.entity.value']") == "thực thể"
    assert "cảnh báo chưa xử lý xong" in (ana.text_content("dd[data-field=risk]") or "")
    assert str(alert["source.ip"]) in (ana.text_content("#guide") or "")
    assert "Hướng dẫn điều tra" in (ana.text_content("#detail") or "")
    decisive = ana.locator("#evidence tbody tr").first  # the success first, its outcome named the same in both cells
    assert decisive.locator("td").nth(2).text_content() == "thành công"
    assert decisive.locator("[title='event.outcome']").text_content() == "kết quả: thành công"
    ana.click("#btn-assign")  # no name given: the lifecycle refuses, in Vietnamese
    ana.wait_for_selector("#action-result:has-text('giao việc: không thể thực hiện ở trạng thái này: "
                          "giao việc cần tên người dùng')")
    ana.click("#btn-ack")
    ana.wait_for_selector("#action-result:has-text('tiếp nhận: xong')")
    assert ana.text_content("dd[data-field='ztsoc.alert.status']") == "đã tiếp nhận"
    assert (store.get_alert(alert["event.id"]) or {})["ztsoc.alert.status"] == "acknowledged"  # stored as the id
    alert_png = shot(ana, "vi-alert")
    _agrees_with_babel(ana, "vi")

    ana.goto(url + "/#network")
    _wait_loaded(ana, "network", "vi")
    assert ana.locator("#top-talkers tbody tr").first.locator("td").nth(1).text_content() == "30.000"
    # the one refusal asked for above (Chromium logs every 4xx fetch), nothing else
    assert ana.console_errors == ["Failed to load resource: the server responded with a status of 409 (Conflict)"]

    binh = new_page(browser)  # another analyst, another browser: still English
    binh.goto(f"{url}/?token={binh_token}#network")
    _wait_loaded(binh, "network", "en")
    assert binh.text_content("nav a[data-page=overview]") == "Overview"
    assert binh.locator("#top-talkers tbody tr").first.locator("td").nth(1).text_content() == "30,000"
    assert binh.eval_on_selector("#language", "s => s.value") == "en"
    _agrees_with_babel(binh, "en")
    assert binh.console_errors == [] and analysts.language_of(store, "binh") is None
    assert overview_png.stat().st_size > 0 and alert_png.stat().st_size > 0
    ana.context.close()
    binh.context.close()
