"""The model questions: predict, rank, curve, explain, plan. Each is one pydantic parse and one facade call.

Why so thin: the request path must stay fast (/rank over 100 candidates is budgeted at a few ms), and every
interface (HTTP, CLI, batch) must give the same answer, so all the work lives in `predictor.TransferPredictor`.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends

from api.answers import explain_answer, rank_answer, with_task_type
from api.app import get_predictor
from api.schemas import (ERROR_RESPONSES, CurveRequest, CurveResponse, ExplainResponse, PlanRequest, PlanResponse,
                         PredictResponse, Query, RankRequest, RankResponse)

router = APIRouter(tags=["predict"], responses=ERROR_RESPONSES)


@router.post("/predict", response_model=PredictResponse)
def predict(body: Query, p=Depends(get_predictor)):
    """Predicted score with 80%/90% intervals, and the same query from always-English and the closest source."""
    return p.predict_one(body.as_query())


@router.post("/rank", response_model=RankResponse)
def rank(body: RankRequest, p=Depends(get_predictor)):
    """Candidate sources ordered by predicted score, with intervals, P(best) and the top SHAP reasons in words."""
    return rank_answer(p, body.as_query(), body.candidates, body.top, body.reasons, body.source)


@router.post("/curve", response_model=CurveResponse)
def curve(body: CurveRequest, p=Depends(get_predictor)):
    """Predicted score over k target examples (monotone), the a + b·ln(1+k) fit, R² and k_to_reach."""
    return p.curve(body.as_query(), body.ks, body.target_score)


@router.post("/explain", response_model=ExplainResponse)
def explain(body: Query, p=Depends(get_predictor)):
    """SHAP value per feature and the base value; base_value + Σ shap = prediction (within 1e-6)."""
    return explain_answer(p, body.as_query())


@router.post("/plan", response_model=PlanResponse)
def plan(body: PlanRequest, p=Depends(get_predictor)):
    """How many examples per language (target included) maximise the predicted score for a budget; gain vs English."""
    query = {"model": body.model, "task": body.task, "task_type": body.task_type, "target": body.target}
    return p.plan(with_task_type(query), body.candidates, body.budget, steps=body.steps)
