"""The FastAPI application: `create_app()` builds it, the lifespan loads the predictor once.

Why a factory: tests build apps around a given predictor (or none, to see the 503 path), `xlt serve` builds one per
process, and nothing heavy happens at import time. Every bad input ends as a 4xx JSON body with the field path;
a 500 only ever means a bug in xlt (and is logged with its traceback).
"""
from __future__ import annotations

import json
import logging
import math
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from features.errors import ModelNotReady, XltError

log = logging.getLogger("xlt.api")
WEB_DIR = Path(__file__).resolve().parent / "web"


class PredictorUnavailable(Exception):
    """Raised by `get_predictor` when no valid model is loaded (→ 503 with the reason)."""


def get_predictor(request: Request):
    """FastAPI dependency: the loaded TransferPredictor, or 503 with why it is missing."""
    p = getattr(request.app.state, "predictor", None)
    if p is None:
        raise PredictorUnavailable(getattr(request.app.state, "load_error", None) or "model not loaded")
    return p


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


class BodyLimit:
    """Pure ASGI middleware: 413 for request bodies over the limit (declared or streamed), before any parsing."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

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
        started = False

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge()
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._too_large(send)

    async def _too_large(self, send):
        body = json.dumps(error_body(["body"], f"request body larger than {self.max_bytes // (1 << 20)} MB",
                                     "too_large")).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(BaseException):
    """Raised from `receive` when the body passes the limit. A BaseException, so FastAPI's body parsing (which turns
    any Exception while reading a form into "There was an error parsing the body") lets it through to BodyLimit:
    a chunked upload without content-length gets the same 413 as a declared one."""


def create_app(predictor=None, *, max_upload_mb: float = 50, cors_origins: list[str] | None = None,
               model_path=None) -> FastAPI:
    """Build the app. `predictor=None` loads `models/current` (or `model_path`) at start-up; a load failure is kept
    and reported by /health (503) instead of crashing, so the reason is visible over HTTP."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if predictor is not None:
            app.state.predictor, app.state.load_error = predictor, None
        else:
            try:
                from predictor import TransferPredictor
                app.state.predictor = TransferPredictor.load(model_path)
                app.state.load_error = None
            except ModelNotReady as e:
                log.error("model not ready: %s", e)
                app.state.predictor, app.state.load_error = None, f"model not ready: {e}"
        yield

    app = FastAPI(title="xlt", version="0.1.0", lifespan=lifespan,
                  description="Predict the score a multilingual model reaches on a task in a target language after "
                              "fine-tuning on a source language or mixture; rank sources, draw few-shot curves, "
                              "explain with SHAP, plan annotation budgets, score CSVs.")
    app.state.predictor = predictor
    app.state.load_error = None
    app.state.max_upload_bytes = int(max_upload_mb * (1 << 20))
    from api.cache import AnswerCache
    app.state.answers = AnswerCache()

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
        return JSONResponse(error_body(["model"], str(exc), "model_not_ready"), status_code=503)

    @app.exception_handler(ModelNotReady)
    async def _not_ready(request: Request, exc: ModelNotReady):
        return JSONResponse(error_body(["model"], f"model not ready: {exc}", "model_not_ready"), status_code=503)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body(["server"], f"internal error ({type(exc).__name__}); this is a bug in xlt",
                                       "internal_error"), status_code=500)

    from api.routers import batch, meta, plots, queries, web

    app.include_router(meta.router)
    app.include_router(queries.router)
    app.include_router(plots.router)
    app.include_router(batch.router)
    app.include_router(web.router)

    from fastapi.staticfiles import StaticFiles
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")

    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware
        app.add_middleware(CORSMiddleware, allow_origins=cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["*"])
    app.add_middleware(BodyLimit, max_bytes=app.state.max_upload_bytes)
    return app
