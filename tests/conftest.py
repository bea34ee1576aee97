"""Shared fixtures: the real trained model (trained once if missing), the real predictor facade."""
from __future__ import annotations

import contextlib
import fcntl
import shutil

import pytest

from predictor import artifacts

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="session")
def model_dir():
    """models/current, trained from training_data/ if missing (`make test` builds it first; this is the fallback).

    A file lock keeps two xdist workers from training at once.
    """
    artifacts.MODELS_DIR.mkdir(parents=True, exist_ok=True)
    with open(artifacts.MODELS_DIR / ".train.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = artifacts.MODELS_DIR / artifacts.CURRENT
        if not (current / artifacts.MANIFEST).exists():
            from predictor.train import train
            train()
        fcntl.flock(lock, fcntl.LOCK_UN)
    return current.resolve()


@pytest.fixture(scope="session")
def predictor(model_dir):
    from predictor import TransferPredictor
    return TransferPredictor.load(model_dir)


# ---------------------------------------------------------------------------------------------- service fixtures
@pytest.fixture(scope="session")
def client(predictor):
    """FastAPI TestClient around the real app and the real predictor (lifespan run once per session)."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(predictor), raise_server_exceptions=False) as c:
        yield c


@contextlib.contextmanager
def serving(app, timeout: float = 30):
    """A real uvicorn server for `app` on a free loopback port, in a background thread; yields the port."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + timeout
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.contextmanager
def chromium(window_size: str):
    """Debian headless Chromium driven by selenium (skips when it is not installed; nothing is downloaded: an explicit
    chromedriver path keeps selenium-manager from running). Browser console messages are logged for the tests."""
    import shutil
    import tempfile
    from pathlib import Path

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Debian chromium / chromium-driver not installed (`make browser` installs them as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="xlt-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--hide-scrollbars", f"--window-size={window_size}", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console errors (JS, CSP) are test failures
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="session")
def live_server(predictor):
    """A real uvicorn server around the real app on a free loopback port; yields its base URL."""
    from api.app import create_app

    with serving(create_app(predictor)) as port:
        yield f"http://127.0.0.1:{port}"
