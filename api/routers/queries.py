"""The model questions: predict, rank, curve, explain, plan. Each is one pydantic parse and one facade call.

Why so thin: the request path must stay fast (/rank over 100 candidates is budgeted at a few ms), and every
interface (HTTP, CLI, batch) must give the same answer, so all the work lives in `predictor.TransferPredictor`.
Answers are serialised once through their response model and kept in a per-model LRU (`api.cache`): the endpoints
are `async` so a repeated question is answered on the event loop without a thread hop. A new one is computed in the
thread pool, except a cheap one (a few milliseconds: /predict, /explain, /curve with few points, /rank over at most
`INLINE_MAX_CANDIDATES`) asked while it is the only request this process is answering: then it is computed on the
event loop itself, which saves the two thread wake-ups of the hand-off (a third of a fresh /rank's time on a busy
box) and can delay nobody: a request that arrives meanwhile waits at most that one computation, and as soon as two
are in flight everything goes back to the pool (so /health never queues behind a burst of questions).
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel

from features.errors import BadValue
from predictor.facade import REQUEST_THREADS

from api.answers import explain_answer, rank_answer, with_task_type
from api.dependencies import MAX_PLAN_WORK, WorkPool, get_answers, get_predictor, plan_pool
from api.schemas import (ERROR_RESPONSES, CurveRequest, CurveResponse, ExplainResponse, PlanRequest, PlanResponse,
                         PredictResponse, Query, RankRequest, RankResponse)

router = APIRouter(tags=["predict"], responses=ERROR_RESPONSES)

INLINE_MAX_CANDIDATES = 200  # a fresh /rank over 100 candidates costs ~2-3 ms of CPU, over 1000 about ten times that
INLINE_MAX_KS = 30
INLINE_THREADS = 2  # LightGBM threads of a question computed inline (the box has 2 cores; see REQUEST_THREADS)


def _alone(request: Request, p) -> bool:
    """Whether a cheap question may be computed on the event loop: this is the only request in progress in this
    process, and the predictor has paid its first-use costs (the app's start-up warms it up)."""
    inflight = getattr(request.app.state, "inflight", None)
    return inflight is not None and inflight.n <= 1 and getattr(p, "warm", False)


async def _answer(p, cache, endpoint: str, body: BaseModel, out: type[BaseModel], compute,
                  pool: WorkPool | None = None, inline: bool = False) -> Response:
    key = (endpoint, body.model_dump_json())
    data = cache.get(p, key)
    if data is None:
        def work() -> bytes:
            return out.model_validate(compute(p)).model_dump_json().encode()
        if inline and pool is None:  # the only request in progress: it may score on every core (REQUEST_THREADS)
            token = REQUEST_THREADS.set(INLINE_THREADS)
            try:
                data = work()
            finally:
                REQUEST_THREADS.reset(token)
        else:
            data = await (pool.run if pool is not None else run_in_threadpool)(work)
        cache.put(p, key, data)
    return Response(content=data, media_type="application/json")


@router.post("/predict", response_model=PredictResponse)
async def predict(body: Query, request: Request, p=Depends(get_predictor), cache=Depends(get_answers)):
    """Predicted score with 80%/90% intervals, and the same query from always-English and the closest source."""
    return await _answer(p, cache, "predict", body, PredictResponse, lambda p: p.predict_one(body.as_query()),
                         inline=_alone(request, p))


@router.post("/rank", response_model=RankResponse)
async def rank(body: RankRequest, request: Request, p=Depends(get_predictor), cache=Depends(get_answers)):
    """Candidate sources ordered by predicted score, with intervals, P(best) and the top SHAP reasons in words."""
    cheap = body.candidates is None or len(body.candidates) <= INLINE_MAX_CANDIDATES  # the default pool: ~100
    return await _answer(p, cache, "rank", body, RankResponse, lambda p: rank_answer(
        p, body.as_query(), body.candidates, body.top, body.reasons, body.source), inline=cheap and _alone(request, p))


@router.post("/curve", response_model=CurveResponse)
async def curve(body: CurveRequest, request: Request, p=Depends(get_predictor), cache=Depends(get_answers)):
    """Predicted score over k target examples (monotone), the a + b·ln(1+k) fit, R² and k_to_reach."""
    cheap = (body.ks is None or len(body.ks) <= INLINE_MAX_KS) and body.target_score is None
    return await _answer(p, cache, "curve", body, CurveResponse,
                         lambda p: p.curve(body.as_query(), body.ks, body.target_score),
                         inline=cheap and _alone(request, p))


@router.post("/explain", response_model=ExplainResponse)
async def explain(body: Query, request: Request, p=Depends(get_predictor), cache=Depends(get_answers)):
    """SHAP value per feature and the base value; base_value + Σ shap = prediction (within 1e-6)."""
    return await _answer(p, cache, "explain", body, ExplainResponse, lambda p: explain_answer(p, body.as_query()),
                         inline=_alone(request, p))


@router.post("/plan", response_model=PlanResponse)
async def plan(body: PlanRequest, p=Depends(get_predictor), cache=Depends(get_answers),
               pool: WorkPool = Depends(plan_pool)):
    """How many examples per language (target included) maximise the predicted score for a budget; gain vs English."""
    n_targets = len(body.target) if isinstance(body.target, list) else 1
    work = body.steps * (len(body.candidates) + n_targets) * n_targets  # predictions the greedy search makes
    if work > MAX_PLAN_WORK:
        raise BadValue(f"plan too large: steps × (candidates + targets) × targets = {work:,} > {MAX_PLAN_WORK:,}; "
                       "use fewer steps, candidates or targets", field="steps")
    query = {"model": body.model, "task": body.task, "task_type": body.task_type, "target": body.target,
             "train_config": body.train_config}
    return await _answer(p, cache, "plan", body, PlanResponse,
                         lambda p: p.plan(with_task_type(query), body.candidates, body.budget, steps=body.steps,
                                          costs=body.costs),
                         pool)
