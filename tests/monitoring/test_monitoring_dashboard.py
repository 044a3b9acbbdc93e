"""The dashboard in a real headless browser (Debian's chromium driven by Playwright): a wrong token is refused,
a qa token signs in (an HttpOnly, SameSite=Strict session cookie, no token in any URL), the versions table and the
charts are there, an alert leads to its version, no patient data is on the pages, sign-out ends the session.

Screenshots go to the test's folder; with MONITORING_SCREENSHOTS=DIR also to DIR (the README's come from
`MONITORING_SCREENSHOTS=resources/screenshots pytest tests/monitoring/test_monitoring_dashboard.py`).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from monitoring_data import PATIENT_NAME, V1, V2

CHROMIUM = "/usr/bin/chromium"
UID = re.compile(r"\b\d+(\.\d+){4,}\b")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def _save(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    target = os.environ.get("MONITORING_SCREENSHOTS")
    if target:
        shutil.copy(path, Path(target) / name)
    return path


def _no_patient_data(text: str) -> None:
    assert PATIENT_NAME not in text and "^" not in text  # DICOM person names are written FAMILY^GIVEN
    assert not UID.search(text), UID.search(text)  # no study, series or instance UIDs either


def test_sign_in_table_charts_alert_sign_out(browser, monitored_sqlite, tmp_path):
    server, _plan = monitored_sqlite
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    page.goto(f"{server.url}/dashboard")
    assert page.locator("#token").is_visible()

    for wrong in ("not-a-token", server.enrol("ws-mon-browser")):  # garbage, and a workstation's token
        page.fill("#token", wrong)
        with page.expect_response(lambda r: r.url.endswith("/dashboard/sign-in")) as answer:
            page.click("#sign-in")
        assert answer.value.status == 401
        assert "token refused" in page.inner_text("#error")
        assert context.cookies() == []

    page.fill("#token", server.qa_token)
    page.click("#sign-in")
    page.wait_for_selector("#versions")
    (cookie,) = context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/dashboard"
    assert server.qa_token not in cookie["value"]
    rows = page.locator("#versions tbody tr").all_inner_texts()
    assert len(rows) == 2 and V1.version in rows[0] and "80.0%" in rows[0] and "50.0%" in rows[1]
    assert "ws-mon-a" in page.inner_text("#by-workstation") and "SHARP" in page.inner_text("#by-scanner")
    assert "ws-mon-b" in page.inner_text("#sync")
    front = page.inner_text("body")
    _no_patient_data(front)
    _save(page, tmp_path, "monitoring-dashboard.png")

    alert = page.locator("a.alert-link", has_text=V2.version).first
    assert "acceptance" in page.inner_text("#alerts")
    alert.click()
    page.wait_for_selector("#alert-acceptance")
    assert f"/dashboard/versions/{V2.name}/{V2.version}" in page.url
    assert "below the 95% interval" in page.inner_text("#alert-acceptance")
    assert page.locator("svg.chart").count() == 3
    assert page.locator("svg.chart circle").count() >= 2 and page.locator("svg.chart rect").count() >= 5
    assert page.locator("#operating-points tbody tr").count() == 20
    _no_patient_data(page.inner_text("body"))
    shot = _save(page, tmp_path, "monitoring-version.png")
    assert shot.stat().st_size > 20_000

    old = cookie["value"]
    page.click("#sign-out")
    page.wait_for_selector("#token")
    assert context.cookies() == []
    context.add_cookies([{**cookie, "value": old}])  # the old session id no longer opens anything
    page.goto(f"{server.url}/dashboard/versions/{V2.name}/{V2.version}")
    assert page.locator("#token").is_visible() and page.locator("svg.chart").count() == 0
    assert not [u for u in urls if server.qa_token in u]  # the token never travelled in a URL
    assert all(u.startswith(server.url) for u in urls)  # nothing fetched from anywhere else
    context.close()
