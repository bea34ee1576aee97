"""Shared fixtures: the real trained model (trained once if missing), the real predictor facade."""
from __future__ import annotations

import fcntl

import pytest

from predictor import artifacts


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


@pytest.fixture(scope="session")
def live_server(predictor):
    """A real uvicorn server on a free loopback port in a background thread; yields its base URL."""
    import socket
    import threading
    import time
    import urllib.request

    import uvicorn

    from api.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(predictor), host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as r:
                if r.status == 200:
                    break
        except Exception:
            time.sleep(0.1)
    else:
        raise RuntimeError("uvicorn test server did not start")
    yield base
    server.should_exit = True
    thread.join(10)
