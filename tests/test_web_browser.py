"""The web page in real headless Chromium (Debian chromium + chromedriver, driven by selenium, nothing downloaded).

Clicks through as a person would: choose a target, submit, wait for the ranked table, click a source, wait for the
SHAP waterfall and the curve to load; asserts what is on screen and saves reports/web_screenshot.png.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SCREENSHOT = Path(__file__).resolve().parent.parent / "reports" / "web_screenshot.png"


@pytest.fixture()
def browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Debian chromium / chromium-driver not installed (`make browser` installs them as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="xlt-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1400,1100", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    # an explicit Service path means selenium-manager never runs (and never downloads a driver)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _image_loaded(driver, element_id: str) -> bool:
    return driver.execute_script(
        "const i = document.getElementById(arguments[0]);"
        "return !!(i && i.src && i.complete && i.naturalWidth > 100);", element_id)


def test_rank_click_source_and_see_waterfall(browser, live_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    browser.get(live_server + "/")
    assert "xlt" in browser.title
    Select(browser.find_element(By.ID, "model")).select_by_value("xlm-r-large")
    Select(browser.find_element(By.ID, "task")).select_by_value("xnli")
    target = browser.find_element(By.ID, "target")
    target.clear()
    target.send_keys("Swahili")
    browser.find_element(By.ID, "rank-button").click()

    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#ranked tbody tr")))
    rows = browser.find_elements(By.CSS_SELECTOR, "#ranked tbody tr")
    assert 5 <= len(rows) <= 20  # the form asks for the top 20
    scores = [float(r.find_element(By.CSS_SELECTOR, "td.score").text) for r in rows]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 100 for s in scores)
    assert "target Swahili" in browser.find_element(By.ID, "ranked-caption").text
    assert rows[0].find_elements(By.CSS_SELECTOR, "ul.reasons li"), "each source shows its SHAP reasons"

    third = rows[2]
    code = third.get_attribute("data-source")
    third.find_element(By.CSS_SELECTOR, "a.source-link").click()
    wait.until(lambda d: "selected" in third.get_attribute("class"))
    wait.until(lambda d: f"source={code}" in d.find_element(By.ID, "waterfall-img").get_attribute("src"))
    wait.until(lambda d: _image_loaded(d, "waterfall-img"))
    wait.until(lambda d: _image_loaded(d, "curve-img"))
    assert code in browser.find_element(By.ID, "waterfall-caption").text
    assert browser.find_element(By.ID, "error").get_attribute("hidden") is not None

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_misspelt_target_shows_suggestion(browser, live_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(live_server + "/")
    target = browser.find_element(By.ID, "target")
    target.clear()
    target.send_keys("Swahilli")
    browser.find_element(By.ID, "rank-button").click()
    box = browser.find_element(By.ID, "error")
    WebDriverWait(browser, 20).until(lambda d: box.is_displayed() and box.text)
    assert "did you mean" in box.text and "Swahili" in box.text
