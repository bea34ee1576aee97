"""Plots as images: SHAP waterfall for a query, few-shot curve, SHAP beeswarm over the training data.

GET with query parameters (not POST) so an `<img src=...>` on the web page can ask for them directly.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi import Query as QueryParam
from fastapi.responses import Response

from api import plots
from api.app import get_predictor
from api.answers import explain_answer
from api.schemas import ERROR_RESPONSES, CurveRequest, Query

router = APIRouter(tags=["plots"], responses=ERROR_RESPONSES)
_IMAGE = {200: {"content": {"image/png": {}, "image/svg+xml": {}}, "description": "The picture"}}


def _image(data: bytes, fmt: str) -> Response:
    return Response(content=data, media_type=plots.MEDIA_TYPES[fmt], headers={"cache-control": "no-cache"})


@router.get("/explain/plot.png", response_class=Response, responses=_IMAGE)
def explain_png(q: Annotated[Query, QueryParam()], p=Depends(get_predictor)):
    """SHAP waterfall for one query (same parameters as POST /explain), PNG."""
    return _image(plots.waterfall(explain_answer(p, q.as_query()), "png"), "png")


@router.get("/explain/plot.svg", response_class=Response, responses=_IMAGE)
def explain_svg(q: Annotated[Query, QueryParam()], p=Depends(get_predictor)):
    """SHAP waterfall for one query, SVG."""
    return _image(plots.waterfall(explain_answer(p, q.as_query()), "svg"), "svg")


@router.get("/plots/curve.png", response_class=Response, responses=_IMAGE)
def curve_png(q: Annotated[CurveRequest, QueryParam()], p=Depends(get_predictor)):
    """Few-shot curve for a query (same parameters as POST /curve; repeat `ks` for a custom grid), PNG."""
    return _image(plots.curve(p.curve(q.as_query(), q.ks, q.target_score), "png"), "png")


@router.get("/plots/curve.svg", response_class=Response, responses=_IMAGE)
def curve_svg(q: Annotated[CurveRequest, QueryParam()], p=Depends(get_predictor)):
    """Few-shot curve, SVG."""
    return _image(plots.curve(p.curve(q.as_query(), q.ks, q.target_score), "svg"), "svg")


@router.get("/plots/importance.png", response_class=Response, responses=_IMAGE)
def importance_png(p=Depends(get_predictor)):
    """SHAP beeswarm over a sample of the training rows: which features move predictions, and which way."""
    return _image(plots.importance(p, "png"), "png")
