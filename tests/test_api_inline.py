"""Cheap questions asked while nothing else is in flight are computed on the event loop (no thread hand-off); the
answer is byte for byte the one the thread pool gives, the in-flight count returns to zero, and a busy process (two
or more requests in flight) or a predictor still warming up goes through the pool."""
from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.routers import queries

RANK = {"model": "xlm-r-large", "task": "xnli", "target": "sw", "candidates": ["en", "de", "fr", "hi", "ar", "zu"],
        "top": 3}


@pytest.fixture(scope="module")
def app_client(predictor):
    app = create_app(predictor)
    with TestClient(app, raise_server_exceptions=False) as c:
        t0 = time.time()
        while not predictor.warm and time.time() - t0 < 60:  # the lifespan warms the predictor up before serving
            time.sleep(0.05)
        assert predictor.warm
        yield app, c


def test_inline_and_pooled_answers_are_identical(app_client, monkeypatch):
    app, c = app_client
    seen = []
    real = queries._alone
    monkeypatch.setattr(queries, "_alone", lambda request, p: seen.append(real(request, p)) or seen[-1])
    inline = c.post("/rank", json={**RANK, "source_size": 1234})
    assert inline.status_code == 200 and seen == [True]
    assert app.state.inflight.n == 0
    app.state.inflight.n += 1  # as if another request were in progress: the pool computes this one
    try:
        pooled = c.post("/rank", json={**RANK, "source_size": 4321})
    finally:
        app.state.inflight.n -= 1
    assert pooled.status_code == 200 and seen == [True, False]
    # the same questions, the other way round, give the same bytes
    app.state.answers.clear()
    app.state.inflight.n += 1
    try:
        inline_again = c.post("/rank", json={**RANK, "source_size": 1234})
    finally:
        app.state.inflight.n -= 1
    pooled_again = c.post("/rank", json={**RANK, "source_size": 4321})
    assert seen == [True, False, False, True]
    assert inline.content == inline_again.content
    assert pooled.content == pooled_again.content
    assert inline.json()["sources"][0]["reasons"], "reasons are computed inline too"


def test_inline_errors_are_422_and_the_count_returns(app_client):
    app, c = app_client
    r = c.post("/rank", json={**RANK, "target": "Swahilli"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][-1] == "target"
    for path, body in (("/predict", {"model": "xlm-r-large", "task": "xnli", "target": "sw", "source": "en"}),
                       ("/explain", {"model": "xlm-r-large", "task": "xnli", "target": "sw", "source": "de"}),
                       ("/curve", {"model": "xlm-r-large", "task": "xnli", "target": "sw", "source": "fr"})):
        assert c.post(path, json=body).status_code == 200
    assert app.state.inflight.n == 0


def test_busy_processes_and_cold_predictors_use_the_pool(predictor):
    from predictor import TransferPredictor

    cold = TransferPredictor(predictor.model, predictor.calibration, predictor.manifest, predictor.background,
                             predictor.model_dir, predictor.record)
    assert not cold.warm

    class _Req:
        class app:
            class state:
                class inflight:
                    n = 1
    assert not queries._alone(_Req, cold)
    assert queries._alone(_Req, predictor)
    _Req.app.state.inflight.n = 2
    assert not queries._alone(_Req, predictor)
