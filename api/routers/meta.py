"""Health, version and the registries (languages, models, tasks): cheap GETs, no model work."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from api.dependencies import get_predictor
from api.schemas import ERROR_RESPONSES, Health, LanguageOut, ModelOut, TasksResponse

router = APIRouter(tags=["meta"])


@router.get("/health", response_model=Health, responses=ERROR_RESPONSES)
async def health(p=Depends(get_predictor)):
    """200 when a verified model is loaded; 503 with the reason otherwise (missing, tampered, truncated model).

    `async` and touching no pool: answered on the event loop, never behind plots, plans or batches."""
    m = p.manifest or {}
    return {"status": "ok", "model_version": m.get("version"), "n_features": len(m.get("features") or [])}


@router.get("/version", responses=ERROR_RESPONSES)
async def version(p=Depends(get_predictor)) -> dict:
    """The served model's manifest: version, data hash, features, metrics, library versions, file hashes."""
    return dict(p.manifest)


@router.get("/languages", response_model=list[LanguageOut])
def languages(search: str | None = Query(None, max_length=100, description="Code, name or part of a name"),
              limit: int | None = Query(None, ge=1, le=10000)):
    """Languages xlt resolves; with `search`, the best matches first (empty search lists all)."""
    from features.languages import all_languages, search as find

    found = find(search, limit=limit) if search else all_languages()
    if limit and not search:
        found = found[:limit]
    return [{"code": l.code, "name": l.name, "script": l.script, "iso1": l.iso1} for l in found]


@router.get("/models", response_model=list[ModelOut])
def models():
    """Model ids with aliases, parameter counts and pretraining corpus."""
    from features import registry

    return [{"id": m.id, "family": m.family, "n_params": m.n_params, "corpus": m.corpus, "aliases": list(m.aliases),
             "n_corpus_languages": len(registry.corpus_languages(m.id))} for m in registry.models()]


@router.get("/tasks", response_model=TasksResponse)
def tasks():
    """Task ids with type, metric and usual English training-set size; the accepted task types."""
    from features import registry

    return {"tasks": [{"id": t.id, "task_type": t.task_type, "metric": t.metric, "train_size": t.train_size,
                       "aliases": list(t.aliases)} for t in registry.tasks()],
            "task_types": list(registry.TASK_TYPES)}
