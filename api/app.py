"""The FastAPI application: `create_app()` builds it, the lifespan loads the predictor once.

Why a factory: tests build apps around a given predictor (or none, to see the 503 path), `xlt serve` builds one per
worker process (`uvicorn.run("api.app:create_app", factory=True, workers=N)`, settings from `XLT_*` variables), and
nothing heavy happens at import time. The factory only wires: what endpoints need comes from `api.dependencies`.

Every bad input ends as a 4xx JSON body with the field path; a 500 only ever means a bug in xlt, is logged with its
traceback and a reference, and reaches the client as JSON without either. Client-facing messages never carry a
server path (the full reason is in the log). Every response carries nosniff / frame / referrer / CSP headers.
"""
from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import json
import logging
import math
import os
import re
import secrets
import sys
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse

from api.dependencies import (LIGHT_THREADS, Busy, PoolLimits, PredictorUnavailable, get_predictor,  # noqa: F401
                              make_pools)
from features.errors import ModelNotReady, XltError

# `get_predictor` and `PredictorUnavailable` live in api.dependencies; they stay importable from here for code that
# still imports them from the app (the batch router), but new code should import api.dependencies.

log = logging.getLogger("xlt.api")
WEB_DIR = Path(__file__).resolve().parent / "web"

DEFAULT_MAX_UPLOAD_MB = 50.0
DEFAULT_READ_TIMEOUT_S = 30.0
SWITCH_INTERVAL_S = 0.001
# The page and the API: own scripts and styles only, pictures from here (PNG/SVG, and data:/blob: URLs the page may
# build from them), fetch to the same origin, never framed.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer")]
_ABS_PATH = re.compile(r"(?<![\w.~:/-])/(?:[^\s/'\"`,;()<>]+/)*([^\s/'\"`,;()<>]+?)(?=[.:,;]?(?:\s|$|['\")]))")


def public_message(message: str) -> str:
    """A message fit for any client: absolute server paths cut to their last part (`/srv/x/models/m/model.txt` →
    `…/model.txt`). The full message goes to the server log."""
    return _ABS_PATH.sub(lambda m: f"…/{m.group(1)}", message)


def _clean(value):
    """JSON-safe copy of a validation error's parts (inputs may hold NaN, bytes or huge values)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)[:200]


def error_body(loc: list, msg: str, type_: str, suggestions: list[str] | None = None) -> dict:
    return {"detail": [{"loc": [str(x) if not isinstance(x, int) else x for x in loc], "msg": msg, "type": type_,
                        "suggestions": list(suggestions or [])}]}


def _xlt_error_response(err: XltError, where: str = "body") -> JSONResponse:
    loc = [where] + ([f for f in str(err.field).split(".")] if err.field else [])
    return JSONResponse(error_body(loc, str(err), type(err).__name__, err.suggestions), status_code=422)


async def _send_json(send, status: int, body: dict, headers: list[tuple[bytes, bytes]] = ()) -> None:
    """A whole JSON response from a middleware (outside FastAPI's exception handlers)."""
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": data})


# ------------------------------------------------------------------------------------------------ middlewares
class SecurityHeaders:
    """Pure ASGI middleware: nosniff, DENY framing, no referrer and a CSP on every response (a route's own CSP,
    such as /docs's with its inline-script hash, is kept)."""

    def __init__(self, app, csp: str = CSP):
        self.app = app
        self.headers = [*SECURITY_HEADERS, (b"content-security-policy", csp.encode())]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in self.headers if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class InFlight:
    """Pure ASGI middleware, outermost: counts the HTTP requests this process is answering (`app.state.inflight`),
    so a cheap question can be answered on the event loop when nothing else is waiting for it (see
    `api.routers.queries`)."""

    def __init__(self, app, counter: "InFlightCount"):
        self.app = app
        self.counter = counter

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        self.counter.n += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.counter.n -= 1


class InFlightCount:
    """Requests in progress in this worker process (read and written on the event loop only)."""

    def __init__(self):
        self.n = 0


class BodyLimit:
    """Pure ASGI middleware: 413 for request bodies over the limit (declared or streamed), before any parsing;
    408 when a client stops sending its body for `read_timeout_s` (a slow upload cannot hold a worker forever)."""

    def __init__(self, app, max_bytes: int, read_timeout_s: float = DEFAULT_READ_TIMEOUT_S):
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    return await self._too_large(send)
                break
        seen = 0
        body_done = False
        tracked = _TrackedSend(send)

        async def limited_receive():
            nonlocal seen, body_done
            if body_done:  # after the body: only a disconnect can come, and waiting for it is not reading
                return await receive()
            try:
                async with asyncio.timeout(self.read_timeout_s):
                    message = await receive()
            except TimeoutError:
                raise _ReadTimeout() from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge()
                body_done = not message.get("more_body", False)
            return message

        try:
            await self.app(scope, limited_receive, tracked)
        except _TooLarge:
            if not tracked.started:
                await self._too_large(send)
        except _ReadTimeout:
            log.warning("request body on %s not received within %.0f s", scope.get("path"), self.read_timeout_s)
            if not tracked.started:
                await _send_json(send, 408, error_body(["body"], f"request body not received within "
                                                       f"{self.read_timeout_s:g} s", "timeout"),
                                 [(b"connection", b"close")])

    async def _too_large(self, send):
        await _send_json(send, 413, error_body(["body"], f"request body larger than {self.max_bytes / (1 << 20):g} MB",
                                               "too_large"), [(b"connection", b"close")])


class _TooLarge(BaseException):
    """Raised from `receive` when the body passes the limit. A BaseException, so FastAPI's body parsing (which turns
    any Exception while reading a form into "There was an error parsing the body") lets it through to BodyLimit:
    a chunked upload without content-length gets the same 413 as a declared one."""


class _ReadTimeout(BaseException):
    """Raised from `receive` when the client stalls mid-body; a BaseException for the same reason as `_TooLarge`."""


class Admission:
    """Pure ASGI middleware: requests to `routes` (path → pool) take a slot of their pool *before* the body is read
    and keep it until the response is sent, so the number of uploads held in memory at once is bounded; a full
    pool answers 503 + Retry-After at once."""

    def __init__(self, app, pools: dict, routes: dict[str, str]):
        self.app = app
        self.pools = pools
        self.routes = routes

    async def __call__(self, scope, receive, send):
        name = self.routes.get(scope.get("path")) if scope["type"] == "http" and scope["method"] == "POST" else None
        if name is None:
            return await self.app(scope, receive, send)
        try:
            async with self.pools[name].slot():
                await self.app(scope, receive, send)
        except Busy as exc:
            # read what the client is sending and throw it away first (for at most half a second, nothing kept): a
            # client still sending its body when the socket closes sees a reset connection, not the 503 and its
            # Retry-After; one that sends nothing (or too slowly) is answered after the half second anyway
            try:
                await asyncio.wait_for(_discard_body(receive), timeout=0.5)
            except (Exception, asyncio.TimeoutError):
                pass
            await _send_json(send, 503, error_body(["server"], str(exc), "busy"),
                             [(b"retry-after", str(exc.retry_after).encode()), (b"connection", b"close")])


async def _discard_body(receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


class _TrackedSend:
    """`send`, remembering whether the response has begun: after that a middleware can no longer answer an error
    itself, only let the connection close."""

    def __init__(self, send):
        self._send = send
        self.started = False

    async def __call__(self, message):
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


class CatchAll:
    """Pure ASGI middleware, innermost: an exception no handler took becomes a JSON 500 (a reference, no traceback)
    *here*, so the server sees a finished response. (Starlette's own last-resort handler answers and then re-raises,
    and uvicorn drops the keep-alive connection without a `Connection: close`.)"""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        tracked = _TrackedSend(send)
        body_done = scope.get("method") in ("GET", "HEAD")

        async def tracking_receive():
            nonlocal body_done
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                body_done = True
            return message

        try:
            await self.app(scope, tracking_receive, tracked)
        except Exception:
            ref = secrets.token_hex(4)
            log.exception("unhandled error (ref %s) on %s %s", ref, scope.get("method"), scope.get("path"))
            if tracked.started:  # part of the answer is out: only closing the connection tells the client it is cut
                raise
            # an unread request body cannot be skipped on a kept-alive connection: say it closes
            await _send_json(send, 500, error_body(["server"], f"internal error (ref {ref}): a bug in xlt, logged "
                                                               "on the server", "internal_error"),
                             [] if body_done else [(b"connection", b"close")])


# ------------------------------------------------------------------------------------------------ /docs offline
def _swagger_assets() -> Path | None:
    """Swagger UI's JS/CSS from an installed package (fastapi-offline ships them), so /docs works offline."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    path = Path(fastapi_offline.__file__).resolve().parent / "static"
    return path if (path / "swagger-ui-bundle.js").exists() else None


def _inline_script_hashes(html: str) -> list[str]:
    return ["'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
            for s in re.findall(r"<script>(.*?)</script>", html, flags=re.S)]


def _mount_docs(app: FastAPI, assets: Path) -> None:
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    app.mount("/docs-assets", StaticFiles(directory=assets), name="docs-assets")
    swagger = get_swagger_ui_html(openapi_url=app.openapi_url, title="xlt — API docs",
                                  swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                  swagger_css_url="/docs-assets/swagger-ui.css",
                                  swagger_favicon_url="/docs-assets/favicon.png").body.decode()
    # Swagger UI starts from one inline script (allowed by its hash, nothing else inline) and styles with inline
    # style attributes; it fetches /openapi.json and, for "try it out", the API itself.
    swagger_csp = CSP.replace("script-src 'self'", "script-src 'self' " + " ".join(_inline_script_hashes(swagger))) \
                     .replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
    redoc = get_redoc_html(openapi_url=app.openapi_url, title="xlt — API reference",
                           redoc_js_url="/docs-assets/redoc.standalone.js", redoc_favicon_url="/docs-assets/favicon.png",
                           with_google_fonts=False).body.decode()
    redoc_csp = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'") + "; worker-src 'self' blob:"

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(swagger, headers={"content-security-policy": swagger_csp})

    @app.get("/redoc", include_in_schema=False)
    async def redoc_page() -> HTMLResponse:
        return HTMLResponse(redoc, headers={"content-security-policy": redoc_csp})


# ------------------------------------------------------------------------------------------------ the factory
def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ[name])
    except (KeyError, ValueError):
        return default


# Pictures are 20-60 kB each against ~4 kB for a JSON answer: in the answers' LRU they would crowd the answers out
# and hold up to its 64 MB per worker (the 60 s load with plots grew the server's RSS by 15%, 122 MB, and without
# plots by 3.5%). Their own LRU keeps the pictures a page's users re-ask for (~300 at 40 kB) and bounds them lower.
PICTURE_CACHE = {"max_entries": 512, "max_bytes": 12 << 20}


async def _warm_pictures(app: FastAPI) -> int:
    """`api.plots.warm_up` on the plot pool; the bytes drawn (0 when it failed: the costs stay with the first plot)."""
    from api import plots
    try:
        return await app.state.pools["plots"].run(plots.warm_up, app.state.predictor)
    except Exception:
        log.exception("picture warm-up failed")
        return 0


def create_app(predictor=None, *, max_upload_mb: float | None = None, cors_origins: list[str] | None = None,
               model_path=None, limits: dict[str, PoolLimits] | None = None,
               read_timeout_s: float | None = None) -> FastAPI:
    """Build the app. `predictor=None` loads `models/current` (or `model_path`, or $XLT_MODEL) at start-up; a load
    failure is kept and reported by /health (503) instead of crashing, so the reason is visible over HTTP.

    Settings left as None come from the environment (`xlt serve` sets them for its worker processes):
    XLT_MAX_UPLOAD_MB, XLT_CORS_ORIGINS (comma-separated), XLT_READ_TIMEOUT_S."""
    if max_upload_mb is None:
        max_upload_mb = _env_float("XLT_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB)
    if cors_origins is None:
        cors_origins = [o for o in os.environ.get("XLT_CORS_ORIGINS", "").split(",") if o.strip()] or None
    if read_timeout_s is None:
        read_timeout_s = _env_float("XLT_READ_TIMEOUT_S", DEFAULT_READ_TIMEOUT_S)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Heavy work runs on pool threads holding the GIL for up to the switch interval at a time; 1 ms instead of
        # Python's 5 ms lets the event loop answer /health between their slices (p99 under a plot flood on 2 busy
        # cores: ~200 ms -> ~40-70 ms, measured with `xlt serve --workers 2`).
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        # light questions computed on the thread pool: a few threads at once, the rest wait their turn for a token
        # (anyio's default of 40 threads all contending for the GIL kept /health waiting for it under load)
        import anyio.to_thread
        anyio.to_thread.current_default_thread_limiter().total_tokens = LIGHT_THREADS
        if predictor is not None:
            app.state.predictor, app.state.load_error = predictor, None
        else:
            try:
                from predictor import TransferPredictor
                app.state.predictor = TransferPredictor.load(model_path)
                app.state.load_error = None
            except ModelNotReady as e:
                log.error("model not ready: %s", e)
                app.state.predictor, app.state.load_error = None, f"model not ready: {public_message(str(e))}"
        if app.state.predictor is not None and hasattr(app.state.predictor, "warm_up") \
                and not getattr(app.state.predictor, "warm", False):
            # the tabulated TreeSHAP and the first-use costs (typology tables, lazy imports: ~0.5 s) are paid before
            # the worker accepts connections, so its first answers are as fast as the rest (a warm-up thread beside
            # the first requests took the CPU from them for seconds on a busy box)
            await asyncio.to_thread(app.state.predictor.warm_up)
        # what start-up built (modules, the model, tables: ~140k objects) lives as long as the process: moved out of
        # the collector's generations, so the collections a request's allocations trigger do not walk it again
        gc.freeze()
        if predictor is None and app.state.predictor is not None:
            # a served worker (`xlt serve`) draws its first pictures now, on the plot pool's own thread and behind no
            # request: its first user picture is as fast as the rest, and its memory does not step up by the first
            # plot's ~70 MB under load (api.plots.warm_up); after the worker accepts, so cold start is unchanged
            app.state.pictures_warm = asyncio.create_task(_warm_pictures(app))
        yield
        for pool in app.state.pools.values():
            pool.close()

    assets = _swagger_assets()
    if assets is None:
        log.warning("fastapi-offline is not installed: /docs loads Swagger UI from a CDN")
    app = FastAPI(title="xlt", version="0.1.0", lifespan=lifespan,
                  docs_url=None if assets else "/docs", redoc_url=None if assets else "/redoc",
                  description="Predict the score a multilingual model reaches on a task in a target language after "
                              "fine-tuning on a source language or mixture; rank sources, draw few-shot curves, "
                              "explain with SHAP, plan annotation budgets, score CSVs.")
    app.state.predictor = predictor
    app.state.load_error = None
    app.state.max_upload_bytes = int(max_upload_mb * (1 << 20))
    from api.cache import AnswerCache
    app.state.answers = AnswerCache()
    app.state.pictures = AnswerCache(**PICTURE_CACHE)
    app.state.pools = make_pools(limits)
    app.state.inflight = InFlightCount()

    @app.exception_handler(XltError)
    async def _xlt(request: Request, exc: XltError):
        return _xlt_error_response(exc, "query" if request.method == "GET" else "body")

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        items = []
        for e in exc.errors():
            loc = [_clean(x) for x in e.get("loc", ())]
            items.append({"loc": loc, "msg": str(e.get("msg", "invalid value")), "type": str(e.get("type", "value_error")),
                          "suggestions": []})
        return JSONResponse({"detail": items}, status_code=422)

    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        # FastAPI answers a body it cannot decode (bytes that are not UTF-8) with a bare 400; give it the same
        # 422 shape as invalid JSON, with the field path. Other HTTP errors (404, 405) keep their status.
        if exc.status_code == 400:
            return JSONResponse(error_body(["body"], f"request body could not be read: {exc.detail}", "body_invalid"),
                                status_code=422)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(PredictorUnavailable)
    async def _unavailable(request: Request, exc: PredictorUnavailable):
        return JSONResponse(error_body(["model"], public_message(str(exc)), "model_not_ready"), status_code=503)

    @app.exception_handler(ModelNotReady)
    async def _not_ready(request: Request, exc: ModelNotReady):
        log.error("model not ready: %s", exc)
        return JSONResponse(error_body(["model"], f"model not ready: {public_message(str(exc))}", "model_not_ready"),
                            status_code=503)

    @app.exception_handler(Busy)
    async def _busy(request: Request, exc: Busy):
        return JSONResponse(error_body(["server"], str(exc), "busy"), status_code=503,
                            headers={"retry-after": str(exc.retry_after)})

    from api.routers import batch, meta, plots, queries, web

    app.include_router(meta.router)
    app.include_router(queries.router)
    app.include_router(plots.router)
    app.include_router(batch.router)
    app.include_router(web.router)
    if assets:
        _mount_docs(app, assets)

    from fastapi.staticfiles import StaticFiles
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")

    # add_middleware puts each new one outside the previous: CatchAll is innermost, SecurityHeaders outermost
    app.add_middleware(CatchAll)
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware
        app.add_middleware(CORSMiddleware, allow_origins=cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["*"])
    app.add_middleware(Admission, pools=app.state.pools, routes={"/batch": "batch"})
    app.add_middleware(BodyLimit, max_bytes=app.state.max_upload_bytes, read_timeout_s=read_timeout_s)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(InFlight, counter=app.state.inflight)
    return app
