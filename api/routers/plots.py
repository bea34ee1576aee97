"""Plots as images: SHAP waterfall for a query, few-shot curve, SHAP beeswarm over the training data.

GET with query parameters (not POST) so an `<img src=...>` on the web page can ask for them directly.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi import Query as QueryParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api import plots
from api.app import get_predictor
from api.answers import explain_answer
from api.schemas import ERROR_RESPONSES, CurveRequest, Query

router = APIRouter(tags=["plots"], responses=ERROR_RESPONSES)
_IMAGE = {200: {"content": {"image/png": {}, "image/svg+xml": {}}, "description": "The picture"}}


def _image(data: bytes, fmt: str) -> Response:
    return Response(content=data, media_type=plots.MEDIA_TYPES[fmt], headers={"cache-control": "no-cache"})


async def _cached_image(request: Request, kind: str, q, fmt: str, render) -> Response:
    """Pictures are a pure function of (model, query): rendered once in the thread pool, then served from the LRU."""
    p = get_predictor(request)
    cache = request.app.state.answers
    key = (kind, fmt, q.model_dump_json())
    data = cache.get(p, key)
    if data is None:
        data = await run_in_threadpool(render, p)
        cache.put(p, key, data)
    return _image(data, fmt)


@router.get("/explain/plot.png", response_class=Response, responses=_IMAGE)
async def explain_png(q: Annotated[Query, QueryParam()], request: Request):
    """SHAP waterfall for one query (same parameters as POST /explain), PNG."""
    return await _cached_image(request, "waterfall", q, "png",
                               lambda p: plots.waterfall(explain_answer(p, q.as_query()), "png"))


@router.get("/explain/plot.svg", response_class=Response, responses=_IMAGE)
async def explain_svg(q: Annotated[Query, QueryParam()], request: Request):
    """SHAP waterfall for one query, SVG."""
    return await _cached_image(request, "waterfall", q, "svg",
                               lambda p: plots.waterfall(explain_answer(p, q.as_query()), "svg"))


@router.get("/plots/curve.png", response_class=Response, responses=_IMAGE)
async def curve_png(q: Annotated[CurveRequest, QueryParam()], request: Request):
    """Few-shot curve for a query (same parameters as POST /curve; repeat `ks` for a custom grid), PNG."""
    return await _cached_image(request, "curve", q, "png",
                               lambda p: plots.curve(p.curve(q.as_query(), q.ks, q.target_score), "png"))


@router.get("/plots/curve.svg", response_class=Response, responses=_IMAGE)
async def curve_svg(q: Annotated[CurveRequest, QueryParam()], request: Request):
    """Few-shot curve, SVG."""
    return await _cached_image(request, "curve", q, "svg",
                               lambda p: plots.curve(p.curve(q.as_query(), q.ks, q.target_score), "svg"))


@router.get("/plots/importance.png", response_class=Response, responses=_IMAGE)
def importance_png(p=Depends(get_predictor)):
    """SHAP beeswarm over a sample of the training rows: which features move predictions, and which way."""
    return _image(plots.importance(p, "png"), "png")
