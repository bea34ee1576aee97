"""Plots as images: SHAP waterfall for a query, few-shot curve, SHAP beeswarm over the training data.

GET with query parameters (not POST) so an `<img src=...>` on the web page can ask for them directly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi import Query as QueryParam
from fastapi.responses import Response

from api import plots
from api.dependencies import WorkPool, get_pictures, get_predictor, plot_pool
from api.answers import explain_answer
from api.schemas import ERROR_RESPONSES, CurveRequest, Query

router = APIRouter(tags=["plots"], responses=ERROR_RESPONSES)
_IMAGE = {200: {"content": {"image/png": {}, "image/svg+xml": {}}, "description": "The picture"}}


def _image(data: bytes, fmt: str) -> Response:
    return Response(content=data, media_type=plots.MEDIA_TYPES[fmt], headers={"cache-control": "no-cache"})


@dataclass
class _Deps:
    p: object
    cache: object
    pool: WorkPool


async def _deps(p=Depends(get_predictor), cache=Depends(get_pictures), pool: WorkPool = Depends(plot_pool)) -> _Deps:
    """What every picture endpoint takes: the predictor, the picture cache and the bounded plot pool (async: no
    thread hop for a picture already in the cache)."""
    return _Deps(p, cache, pool)


async def _cached_image(d: _Deps, kind: str, q, fmt: str, render) -> Response:
    """Pictures are a pure function of (model, query): rendered once in the bounded plot pool (503 + Retry-After when
    it is full), then served from the LRU."""
    key = (kind, fmt, q.model_dump_json())
    data = d.cache.get(d.p, key)
    if data is None:
        data = await d.pool.run(render, d.p)
        d.cache.put(d.p, key, data)
    return _image(data, fmt)


@router.get("/explain/plot.png", response_class=Response, responses=_IMAGE)
async def explain_png(q: Annotated[Query, QueryParam()], d: Annotated[_Deps, Depends(_deps)]):
    """SHAP waterfall for one query (same parameters as POST /explain), PNG."""
    return await _cached_image(d, "waterfall", q, "png",
                               lambda p: plots.waterfall(explain_answer(p, q.as_query()), "png"))


@router.get("/explain/plot.svg", response_class=Response, responses=_IMAGE)
async def explain_svg(q: Annotated[Query, QueryParam()], d: Annotated[_Deps, Depends(_deps)]):
    """SHAP waterfall for one query, SVG."""
    return await _cached_image(d, "waterfall", q, "svg",
                               lambda p: plots.waterfall(explain_answer(p, q.as_query()), "svg"))


@router.get("/plots/curve.png", response_class=Response, responses=_IMAGE)
async def curve_png(q: Annotated[CurveRequest, QueryParam()], d: Annotated[_Deps, Depends(_deps)]):
    """Few-shot curve for a query (same parameters as POST /curve; repeat `ks` for a custom grid), PNG."""
    return await _cached_image(d, "curve", q, "png",
                               lambda p: plots.curve(p.curve(q.as_query(), q.ks, q.target_score), "png"))


@router.get("/plots/curve.svg", response_class=Response, responses=_IMAGE)
async def curve_svg(q: Annotated[CurveRequest, QueryParam()], d: Annotated[_Deps, Depends(_deps)]):
    """Few-shot curve, SVG."""
    return await _cached_image(d, "curve", q, "svg",
                               lambda p: plots.curve(p.curve(q.as_query(), q.ks, q.target_score), "svg"))


@router.get("/plots/importance.png", response_class=Response, responses=_IMAGE)
async def importance_png(d: Annotated[_Deps, Depends(_deps)]):
    """SHAP beeswarm over a sample of the training rows: which features move predictions, and which way."""
    return _image(await d.pool.run(plots.importance, d.p, "png"), "png")
