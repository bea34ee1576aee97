"""The web page at `/`: server-rendered form (jinja2) plus a little plain JavaScript calling the JSON API."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

WEB_DIR = Path(__file__).resolve().parent.parent / "web"

router = APIRouter(include_in_schema=False)
_templates = None


def _jinja():
    global _templates
    if _templates is None:
        from fastapi.templating import Jinja2Templates
        _templates = Jinja2Templates(directory=str(WEB_DIR / "templates"))
    return _templates


@router.get("/", response_class=HTMLResponse)
def index(request: Request):
    from features import registry

    p = getattr(request.app.state, "predictor", None)
    return _jinja().TemplateResponse(request, "index.html", {
        "models": registry.models(), "tasks": [t for t in registry.tasks() if not t.id.startswith("langrank-")],
        "model_version": (p.manifest or {}).get("version") if p is not None else None,
        "load_error": getattr(request.app.state, "load_error", None),
        "defaults": {"model": "xlm-r-large", "task": "xnli", "target": "sw"},
    })
