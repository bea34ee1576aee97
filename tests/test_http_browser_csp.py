"""The CSP against a real browser (Debian headless Chromium): /docs renders Swagger UI from local assets with no
CSP violation and no request off the machine, and the page at / runs its script with no CSP violation (issue 9)."""
from __future__ import annotations

import time

import pytest
from conftest import chromium



@pytest.fixture(scope="module")
def browser():
    with chromium("1400,1000") as driver:
        yield driver


def _wait_text(driver, css: str, timeout: float = 30) -> str:
    from selenium.webdriver.common.by import By

    deadline = time.time() + timeout
    while time.time() < deadline:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        if found and found[0].text.strip():
            return found[0].text
        time.sleep(0.2)
    raise AssertionError(f"{css} never showed text")


def _csp_violations(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]


def test_docs_render_offline_under_the_csp(browser, live_server):
    browser.get(live_server + "/docs")
    assert "xlt" in _wait_text(browser, ".swagger-ui .info .title")
    _wait_text(browser, ".swagger-ui .opblock-summary-path")  # the operations were read from /openapi.json
    assert _csp_violations(browser) == []
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources and all(r.startswith(live_server) for r in resources), resources


def test_page_runs_under_the_csp(browser, live_server):
    browser.get(live_server + "/")
    _wait_text(browser, "#query-form")
    time.sleep(0.5)  # let the page's script run
    assert _csp_violations(browser) == []
