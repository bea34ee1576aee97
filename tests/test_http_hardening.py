"""The HTTP layer under hostile conditions, in-process (TestClient): one way in for the predictor, JSON 500s without
tracebacks, no server paths to clients, security headers and CSP on every response, /docs without a CDN, a cheap
/plan, heavy endpoints on bounded pools (issue 9)."""
from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parent.parent
Q = {"model": "xlm-r-large", "task": "xnli", "target": "sw", "source": "en"}
HEADERS = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "no-referrer"}
MODEL_ENDPOINTS = [("GET", "/health", None), ("GET", "/version", None), ("POST", "/predict", Q),
                   ("POST", "/rank", {k: v for k, v in Q.items() if k != "source"}), ("POST", "/curve", Q),
                   ("POST", "/explain", Q),
                   ("POST", "/plan", {"model": "xlm-r-large", "task": "xnli", "target": "sw", "budget": 100,
                                      "candidates": ["en"]}),
                   ("GET", "/explain/plot.png", Q), ("GET", "/explain/plot.svg", Q), ("GET", "/plots/curve.png", Q),
                   ("GET", "/plots/curve.svg", Q), ("GET", "/plots/importance.png", None)]


def _call(c, method, path, body):
    return c.get(path, params=body) if method == "GET" else c.post(path, json=body)


# ------------------------------------------------------------------------------------------------ dependencies
def test_dependencies_module_breaks_the_import_cycle():
    """api.dependencies and the routers load without api.app; api.app re-exports get_predictor for old importers."""
    code = ("import sys; import api.dependencies, api.routers.meta, api.routers.queries, api.routers.plots, "
            "api.routers.web; assert 'api.app' not in sys.modules, 'a router imports api.app'; "
            "import api.app; assert api.app.get_predictor is api.dependencies.get_predictor")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-500:]


def test_every_model_endpoint_takes_the_predictor_through_depends(predictor):
    """Overriding the one dependency reaches every endpoint that needs the model (and /batch): each answers with the
    override's 503, the registries do not need it."""
    from api.app import create_app
    from api.dependencies import PredictorUnavailable, get_predictor

    app = create_app(predictor)

    async def unavailable():
        raise PredictorUnavailable("overridden for the test")

    app.dependency_overrides[get_predictor] = unavailable
    with TestClient(app) as c:
        for method, path, body in MODEL_ENDPOINTS:
            r = _call(c, method, path, body)
            assert r.status_code == 503 and "overridden for the test" in r.json()["detail"][0]["msg"], (path, r.text)
        r = c.post("/batch", files={"file": ("q.csv", b"model,task,source,target\nxlm-r-large,xnli,en,sw\n")})
        assert r.status_code == 503 and "overridden" in r.text
        assert c.get("/models").status_code == 200 and c.get("/tasks").status_code == 200


# ------------------------------------------------------------------------------------------------ 500s
def test_unhandled_error_is_json_500_without_traceback(predictor, caplog):
    """A bug (here: the answer cache dependency raising) is a JSON 500 with a reference, no traceback, no message
    text; the traceback and the reference are in the server log. Nothing propagates to the server."""
    from api.app import create_app
    from api.dependencies import get_answers

    app = create_app(predictor)

    async def broken():
        raise RuntimeError("secret internals at /srv/xlt/private/thing.py")

    app.dependency_overrides[get_answers] = broken
    with TestClient(app) as c:  # raise_server_exceptions=True: an exception reaching the server would fail here
        r = c.post("/predict", json=Q)
    assert r.status_code == 500 and r.headers["content-type"] == "application/json"
    d = r.json()["detail"][0]
    assert d["loc"] == ["server"] and d["type"] == "internal_error"
    assert "secret" not in r.text and "Traceback" not in r.text and "/srv" not in r.text and "RuntimeError" not in r.text
    ref = re.search(r"ref ([0-9a-f]{8})", d["msg"]).group(1)
    assert any(ref in rec.getMessage() and rec.exc_info for rec in caplog.records)
    assert r.headers["x-content-type-options"] == "nosniff"


# ------------------------------------------------------------------------------------------------ leaks
def test_missing_model_503_and_page_show_no_server_path(tmp_path, caplog):
    from api.app import create_app

    where = tmp_path / "deep" / "missing"
    with TestClient(create_app(model_path=where)) as c:
        r = c.get("/health")
        page = c.get("/")
    msg = r.json()["detail"][0]["msg"]
    assert r.status_code == 503 and "model not ready" in msg and "missing manifest.json" in msg, msg
    assert str(tmp_path) not in r.text and "/tmp" not in r.text, msg
    assert page.status_code == 200 and str(tmp_path) not in page.text and "model not ready" in page.text
    assert any(str(where) in rec.getMessage() for rec in caplog.records)  # the full path stays in the log


def test_public_message_cuts_paths_only():
    from api.app import public_message

    assert public_message("model file /srv/a/b/model.txt fails its sha256 check") == \
        "model file …/model.txt fails its sha256 check"
    assert public_message("no model at /x/y (missing manifest.json); run `xlt train`") == \
        "no model at …/y (missing manifest.json); run `xlt train`"
    assert public_message("manifest /a/b/manifest.json is unreadable: Expecting value") == \
        "manifest …/manifest.json is unreadable: Expecting value"
    for kept in ("train_config en:1000;de:50", "see http://localhost:8000/docs", "a/b relative", "ratio 1/2"):
        assert public_message(kept) == kept


# ------------------------------------------------------------------------------------------------ headers, CSP, docs
def test_security_headers_on_every_response(client, predictor):
    from api.app import create_app

    responses = [client.get("/"), client.get("/health"), client.get("/static/xlt.js"), client.get("/docs"),
                 client.get("/openapi.json"), client.get("/no-such-page"), client.post("/predict", json={}),
                 client.post("/predict", json=Q), client.get("/plots/curve.png", params=Q)]
    with TestClient(create_app(predictor, max_upload_mb=0.001)) as small:
        responses.append(small.post("/predict", content=b"x" * 5000, headers={"content-type": "application/json"}))
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 200, 404, 422, 200, 200, 413]
    for r in responses:
        for name, value in HEADERS.items():
            assert r.headers.get(name) == value, (r.url, name, r.headers)
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], r.url
    csp = client.get("/").headers["content-security-policy"]
    assert "script-src 'self';" in csp and "img-src 'self' data: blob:" in csp and "unsafe" not in csp


def test_page_loads_nothing_the_csp_refuses(client):
    """The page's own scripts and styles are files under /static (no inline script, no inline style, no CDN)."""
    html = client.get("/").text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script> (blocked by script-src 'self')"
    assert "<style" not in html and " style=" not in html, "inline style (blocked by style-src 'self')"
    for url in re.findall(r'(?:src|href)="([^"#]+)"', html):
        assert url.startswith("/") and not url.startswith("//"), url
        if url.startswith("/static/"):
            assert client.get(url).status_code == 200, url


def test_docs_are_served_from_local_assets_under_their_csp(client):
    r = client.get("/docs")
    assert r.status_code == 200
    urls = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert urls and all(u.startswith("/docs-assets/") for u in urls), urls
    assert "cdn" not in r.text and "http://" not in r.text and "https://" not in r.text
    for u in urls:
        asset = client.get(u)
        assert asset.status_code == 200 and len(asset.content) > 500, u
    js = client.get("/docs-assets/swagger-ui-bundle.js")
    assert "javascript" in js.headers["content-type"] and b"SwaggerUIBundle" in js.content
    csp = r.headers["content-security-policy"]
    inline = re.findall(r"<script>(.*?)</script>", r.text, flags=re.S)
    assert len(inline) == 1
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp and "frame-ancestors 'none'" in csp and "'unsafe-eval'" not in csp
    redoc = client.get("/redoc")
    assert redoc.status_code == 200 and "/docs-assets/redoc.standalone.js" in redoc.text and "fonts.googleapis" \
        not in redoc.text


# ------------------------------------------------------------------------------------------------ /plan, pools
def test_plan_too_large_is_refused_before_any_work(client):
    body = {"model": "xlm-r-large", "task": "xnli", "budget": 100000, "steps": 100,
            "target": ["sw", "yo", "hi", "ar", "de", "fi", "ja", "ko", "th", "vi"],
            "candidates": ["en", "fr", "es", "ru", "zh", "pt", "it", "nl", "pl", "tr"] * 5}
    r = client.post("/plan", json=body)
    assert r.status_code == 422, r.text
    d = r.json()["detail"][0]
    assert d["loc"] == ["body", "steps"] and "plan too large" in d["msg"]
    ok = client.post("/plan", json={**body, "target": "sw", "steps": 20, "budget": 1000})
    assert ok.status_code == 200, ok.text


def test_full_plot_pool_answers_503_with_retry_after(predictor, monkeypatch):
    """A plot pool of one with no queue: while one picture renders, another is refused at once (503, Retry-After),
    a picture already in the cache and /health still answer."""
    import threading
    import time

    from api import plots
    from api.app import create_app
    from api.dependencies import PoolLimits

    app = create_app(predictor, limits={"plots": PoolLimits(size=1, queue=0, wait_s=0.05, retry_after=2)})
    started, release = threading.Event(), threading.Event()
    real_curve = plots.curve

    def slow_curve(*a, **k):
        started.set()
        release.wait(20)
        return real_curve(*a, **k)

    with TestClient(app) as c:
        cached = c.get("/plots/curve.png", params={**Q, "target": "yo"})
        assert cached.status_code == 200
        monkeypatch.setattr(plots, "curve", slow_curve)
        out = {}
        t = threading.Thread(target=lambda: out.setdefault("r", c.get("/plots/curve.png", params=Q)))
        t.start()
        assert started.wait(20)
        t0 = time.perf_counter()
        busy = c.get("/plots/curve.png", params={**Q, "target": "hi"})
        refused_s = time.perf_counter() - t0
        again = c.get("/plots/curve.png", params={**Q, "target": "yo"})
        health = c.get("/health")
        release.set()
        t.join(30)
    assert busy.status_code == 503 and busy.headers["retry-after"] == "2", busy.text
    assert busy.json()["detail"][0]["type"] == "busy" and refused_s < 2, refused_s
    assert again.status_code == 200 and again.content == cached.content
    assert health.status_code == 200
    assert out["r"].status_code == 200 and out["r"].headers["content-type"] == "image/png"
    assert app.state.pools["plots"].refused == 1 and app.state.pools["plots"].admitted == 0


def test_health_is_async_and_touches_no_pool():
    """Liveness runs on the event loop (no thread-pool hop, so a pool of busy threads cannot delay it)."""
    import inspect

    from api.dependencies import get_predictor
    from api.routers import meta

    assert inspect.iscoroutinefunction(meta.health) and inspect.iscoroutinefunction(get_predictor)
    params = inspect.signature(meta.health).parameters
    assert [p.default.dependency for p in params.values()] == [get_predictor]


@pytest.mark.parametrize("env,expected", [({}, 50 << 20), ({"XLT_MAX_UPLOAD_MB": "2"}, 2 << 20)])
def test_factory_reads_worker_settings_from_the_environment(monkeypatch, predictor, env, expected):
    """`xlt serve --workers N` builds apps from an import string: their settings come from XLT_* variables."""
    from api.app import create_app

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("XLT_CORS_ORIGINS", "https://team.example")
    app = create_app(predictor)
    assert app.state.max_upload_bytes == expected
    with TestClient(app) as c:
        r = c.get("/health", headers={"Origin": "https://team.example"})
    assert r.headers.get("access-control-allow-origin") == "https://team.example"


def test_pool_work_runs_on_its_own_lower_priority_threads():
    """Heavy work runs on the pool's threads at nice +10, so the event loop and light requests get the CPU first;
    the caller's thread keeps its priority."""
    import asyncio
    import os
    import threading

    from api.dependencies import HEAVY_NICE, PoolLimits, WorkPool

    if not hasattr(os, "getpriority"):
        pytest.skip("no per-thread priorities here")
    pool = WorkPool("plots", PoolLimits(size=1, queue=0, wait_s=0.1))

    def where():
        tid = threading.get_native_id()
        return threading.current_thread().name, os.getpriority(os.PRIO_PROCESS, tid)

    async def main():
        return await pool.run(where), os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    (name, nice), loop_nice = asyncio.run(main())
    pool.close()
    assert name.startswith("xlt-plots") and nice >= min(19, before + HEAVY_NICE) and loop_nice == before
