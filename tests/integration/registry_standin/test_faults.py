from __future__ import annotations

import time

import httpx
import pytest
from playwright.sync_api import Browser
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from sandbox.registry import control, urls

pytestmark = pytest.mark.timeout(90)


def test_fault_endpoint_reads_updates_and_validates(registry):
    assert control.faults(registry)["download_mode"] == "attachment"
    changed = control.set_faults(registry, latency_s=0.1, fail_next_searches=2)
    assert changed["latency_s"] == 0.1 and changed["fail_next_searches"] == 2
    bad = httpx.post(f"{registry}/_sandbox/faults", json={"download_mode": "fax"})
    assert bad.status_code == 400
    bad = httpx.post(f"{registry}/_sandbox/faults", json={"no_such_fault": 1})
    assert bad.status_code == 400
    assert control.faults(registry)["latency_s"] == 0.1  # a rejected update changes nothing
    assert control.reset_faults(registry)["fail_next_searches"] == 0


def test_latency_is_added_to_every_page(registry):
    control.set_faults(registry, latency_s=1.5)
    started = time.monotonic()
    assert httpx.get(f"{registry}{urls.ENTRY}").status_code == 200
    assert time.monotonic() - started >= 1.5
    # Control endpoints and static images are not slowed down.
    for path in ("/_sandbox/health", f"{urls.IMAGES}/BPD.GIF"):
        started = time.monotonic()
        httpx.get(f"{registry}{path}")
        assert time.monotonic() - started < 1.0


def test_expire_all_sessions_sends_back_to_entry(site, registry):
    site.login()
    assert control.expire_sessions(registry) == 1
    site.page.goto(site.url(urls.INDEX))
    assert site.page.url == site.url(urls.ENTRY)
    assert control.counters(registry)["sessions_expired"] == 1


def test_session_dies_after_n_pages(site, registry):
    control.set_faults(registry, session_max_pages=2)
    site.login()  # the welcome page is request 1
    site.page.goto(site.url(urls.INDEX))  # request 2
    assert site.page.url == site.url(urls.INDEX)
    site.page.goto(site.url(urls.ACTE))
    assert site.page.url == site.url(urls.ENTRY)


def test_session_dies_after_ttl(site, registry):
    control.set_faults(registry, session_ttl_s=0.5)
    site.login()
    time.sleep(0.7)
    site.page.goto(site.url(urls.INDEX))
    assert site.page.url == site.url(urls.ENTRY)


def test_one_session_per_account(browser: Browser, registry):
    control.set_faults(registry, one_session_per_account=True)
    first, second = (browser.new_context() for _ in range(2))
    try:
        for context in (first, second):
            page = context.new_page()
            page.goto(f"{registry}{urls.LOGIN}")
            page.fill("#txtVaCodeUtils", "agent03")
            page.fill("#txtMotPasse", "Sirf-2024-c")
            page.click("#btnSoumt")
            page.wait_for_url(f"**{urls.WELCOME}")
        kicked = first.pages[0]
        kicked.goto(f"{registry}{urls.INDEX}")
        assert kicked.url == f"{registry}{urls.ENTRY}"
        assert control.counters(registry)["active_sessions"] == ["agent03"]
    finally:
        first.close()
        second.close()


def test_next_searches_fail_with_http_500(site, registry):
    control.set_faults(registry, fail_next_searches=1)
    site.login()
    site.page.goto(site.url(urls.ACTE))
    with site.page.expect_response(lambda r: r.request.method == "POST") as info:
        site.page.fill("#txtNoReqst", "1")
        site.page.click("input[value*=Rechercher]")
    assert info.value.status == 500
    site.acte_search("66", "Acte", "1")  # the next one is answered again
    assert "inexistant" in site.error_text()
    counters = control.counters(registry)
    assert counters["server_errors"] == 1 and counters["searches"] == {"acte": 2}


def test_stuck_page_never_fires_load(site, registry):
    site.login()
    control.set_faults(registry, stuck_next_pages=1)
    with pytest.raises(PlaywrightTimeout):
        site.page.goto(site.url(urls.INDEX), wait_until="load", timeout=1500)
    # The form itself is there: only the load event (and networkidle) never come.
    assert site.page.locator("#selCircnFoncr").is_visible()
    site.page.goto(site.url(urls.INDEX), wait_until="load", timeout=5000)


def test_stalled_download_sends_half_then_hangs(registry):
    with httpx.Client(base_url=registry, timeout=httpx.Timeout(10.0, read=1.0)) as client:
        login = {"txtVaCodeUtils": "agent01", "txtMotPasse": "Sirf-2024-a"}
        client.post(urls.LOGIN, data=login)
        control.set_faults(registry, stall_next_downloads=1)
        received = 0
        with (
            client.stream("GET", f"{urls.SAVE}?NoDocmn=ACT-001") as response,
            pytest.raises(httpx.ReadTimeout),
        ):
            expected = int(response.headers["content-length"])
            for chunk in response.iter_bytes():
                received += len(chunk)
        assert 0 < received < expected
        assert client.get(f"{urls.SAVE}?NoDocmn=ACT-001").content.startswith(b"%PDF-")
    counters = control.counters(registry)
    assert counters["stalled_downloads"] == 1 and counters["downloads"] == 1


def test_counters_tell_accounts_and_session_reuse_apart(browser: Browser, registry):
    """Two logins with two accounts are visible; reusing a session adds no login."""
    for username, password in (("agent01", "Sirf-2024-a"), ("agent02", "Sirf-2024-b")):
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{registry}{urls.LOGIN}")
        page.fill("#txtVaCodeUtils", username)
        page.fill("#txtMotPasse", password)
        page.click("#btnSoumt")
        page.wait_for_url(f"**{urls.WELCOME}")
        page.goto(f"{registry}{urls.INDEX}")
        page.goto(f"{registry}{urls.ACTE}")
        context.close()
    counters = control.counters(registry)
    assert counters["logins"] == {"agent01": 1, "agent02": 1}
    assert sorted(counters["active_sessions"]) == ["agent01", "agent02"]
