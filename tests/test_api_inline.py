"""Cheap questions asked while nothing else is in flight are computed on the event loop (no thread hand-off); the
answer is byte for byte the one the thread pool gives, the in-flight count returns to zero, and a busy process (two
or more requests in flight) or a predictor still warming up goes through the pool."""
from __future__ import annotations

import time

import numpy as np
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


def test_pictures_have_their_own_smaller_cache(app_client):
    """A rendered picture is kept in the picture LRU, not the answers' (where 40 kB PNGs would crowd out 4 kB
    answers and hold up to its 64 MB): asked again it is the same bytes from that cache, and that cache is bounded
    well below the answers'."""
    from api.app import PICTURE_CACHE

    app, c = app_client
    app.state.answers.clear()
    app.state.pictures.clear()
    url = "/plots/curve.png?model=mt5-base&task=xquad&target=hi&source=en&source_size=777"
    first = c.get(url)
    assert first.status_code == 200 and first.headers["content-type"] == "image/png"
    assert len(app.state.pictures) == 1 and len(app.state.answers) == 0
    hits = app.state.pictures.hits
    again = c.get(url)
    assert again.content == first.content and app.state.pictures.hits == hits + 1
    assert app.state.pictures.max_bytes == PICTURE_CACHE["max_bytes"] <= app.state.answers.max_bytes // 4


def test_an_inline_ranking_scores_on_both_cores_with_the_same_answer(app_client, monkeypatch, predictor):
    """Computed inline (alone in the process), a ranking's rows are scored with INLINE_THREADS LightGBM threads; the
    scores equal one thread's to the last bit, and the setting does not outlive the request."""
    from predictor.facade import REQUEST_THREADS

    app, c = app_client
    used = []
    real = predictor.model.score_sources
    monkeypatch.setattr(predictor.model, "score_sources",
                        lambda *a, **k: used.append(k.get("num_threads")) or real(*a, **k))
    body = {**RANK, "candidates": ["en", "de", "fr", "hi", "ar", "zu", "xh", "st", "tn", "ts", "ss", "nr"],
            "source_size": 2345}
    inline = c.post("/rank", json=body)
    assert inline.status_code == 200 and used == [queries.INLINE_THREADS] and queries.INLINE_THREADS == 2
    assert REQUEST_THREADS.get() == 1
    query = {"model": RANK["model"], "task": RANK["task"], "target": RANK["target"], "source_size": 2345}
    one = predictor.model.score_sources("xlm-r-large", "xnli", "classification", "swh", ["eng", "deu", "zul"], 2345)
    token = REQUEST_THREADS.set(2)
    try:
        two = predictor.model.score_sources("xlm-r-large", "xnli", "classification", "swh", ["eng", "deu", "zul"], 2345,
                                            num_threads=REQUEST_THREADS.get())
    finally:
        REQUEST_THREADS.reset(token)
    assert used[-2:] == [None, 2] and (one[1] == two[1]).all() and (one[2] == two[2]).all() \
        and np.array_equal(one[0], two[0], equal_nan=True)
    ranked = predictor.rank(query, body["candidates"], RANK["top"])
    assert [s["score"] for s in inline.json()["sources"]] == pytest.approx(ranked["predicted_score"].tolist(), abs=0.006)
