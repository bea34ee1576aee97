"""The curl examples of docs/SERVICE.md, with the answers the shipped model gives → the block between
`<!-- examples:start -->` and `<!-- examples:end -->`.

Why: the examples' answers were hand-copied and went stale with every model (they showed a `model_version` of
2026-11-22, /predict 72.4 where the model says 69.4, and a plan gaining 19.2 points over English where it gains 3.9). Each request here goes through the real app (FastAPI TestClient, the shipped model), and its
answer is shortened to the fields a reader needs, floats to one decimal. tests/test_service_examples.py checks that
the committed block is what this prints, so a retrained model without a regenerated page fails the suite.

    .venv/bin/python bench/service_examples.py      (~3 s)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DOC = ROOT / "docs" / "SERVICE.md"
START, END = "<!-- examples:start -->", "<!-- examples:end -->"
Q = {"model": "xlm-r-large", "task": "xnli", "target": "sw", "source": "en"}
JSON_HEADER = "-H 'content-type: application/json'"


def _round(o, digits: int = 1):
    if isinstance(o, float):
        return round(o, digits)
    if isinstance(o, dict):
        return {k: _round(v, 3 if k == "p_best" else digits) for k, v in o.items()}
    if isinstance(o, list):
        return [_round(v, digits) for v in o]
    return o


def _pick(d: dict, keys) -> dict:
    return {k: d[k] for k in keys if k in d}


def _dump(o, more: bool = False) -> str:
    text = json.dumps(_round(o), ensure_ascii=False, separators=(",", ":"))
    return text[:-1] + ",...}" if more and text.endswith("}") else text


def _comment(text: str, width: int = 116) -> list[str]:
    """`# `-prefixed lines of at most `width` characters (a JSON answer wrapped at commas)."""
    out, line = [], "# "
    for part in text.split(","):
        piece = part if line == "# " else "," + part
        if len(line) + len(piece) > width and line.strip() != "#":
            out.append(line + ",")
            line = "#  " + part
        else:
            line += piece
    out.append(line)
    return out


def _post(path: str, body: dict, note: str = "") -> list[str]:
    data = json.dumps(body, separators=(",", ":"))
    return [f"curl -s localhost:8000{path} {JSON_HEADER} \\", f"  -d '{data}'" + (f"   # {note}" if note else "")]


def examples() -> str:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from predictor import TransferPredictor

    p = TransferPredictor.load()
    lines: list[str] = []
    with TestClient(create_app(p)) as c:
        lines += ["curl -s localhost:8000/health", *_comment(_dump(c.get("/health").json()))]
        lines += ["curl -s localhost:8000/version                       # manifest: data sha256, features, metrics, "
                  "library versions"]
        lang = c.get("/languages", params={"search": "swahili"}).json()[0]
        lines += ["curl -s 'localhost:8000/languages?search=swahili'    # " + _dump([lang])[:-1] + ", ...]",
                  "curl -s localhost:8000/models ; curl -s localhost:8000/tasks", ""]
        r = c.post("/predict", json=Q).json()
        short = {**_pick(r, ("predicted_score", "lower80", "upper80", "lower90", "upper90", "regime")),
                 "yardsticks": {k: _pick(v, ("source", "predicted_score")) for k, v in r["yardsticks"].items()}}
        lines += [*_post("/predict", Q), *_comment(_dump(short, more=True)), ""]
        body = {**{k: v for k, v in Q.items() if k != "source"}, "top": 3}
        r = c.post("/rank", json=body).json()
        first = {**_pick(r["sources"][0], ("rank", "source", "name", "score", "lower80", "upper80", "p_best")),
                 "reasons": [_pick(x, ("text",)) for x in r["sources"][0]["reasons"][:1]]}
        lines += [*_post("/rank", body, "candidates default: see README"),
                  *_comment(_dump({"sources": [first]})[:-2] + ",...],...}"), ""]
        body = {**Q, "ks": [0, 100, 1000], "target_score": 76}
        r = c.post("/curve", json=body).json()
        short = {"points": [_pick(r["points"][0], ("k", "score"))], **_pick(r, ("a", "b", "r2", "k_to_reach"))}
        lines += [*_post("/curve", body), *_comment(_dump(short, more=True)), ""]
        r = c.post("/explain", json=Q).json()
        short = {**_pick(r, ("base_value", "prediction")),
                 "contributions": [_pick(x, ("feature", "shap")) for x in r["contributions"][:2]]}
        lines += [*_post("/explain", Q, "base_value + Σ shap = prediction"),
                  *_comment(_dump(short)[:-2] + ",...]}")]
        lines += ["curl -s -o why.png   'localhost:8000/explain/plot.png?model=xlm-r-large&task=xnli&target=sw&source=en'",
                  "curl -s -o curve.png 'localhost:8000/plots/curve.png?model=xlm-r-large&task=xnli&target=sw&source=en'",
                  "curl -s -o imp.png    localhost:8000/plots/importance.png                  # SHAP beeswarm over "
                  "training rows", ""]
        body = {k: v for k, v in Q.items() if k != "source"} | {"budget": 1000, "candidates": ["en", "ar", "hi"]}
        r = c.post("/plan", json=body).json()
        short = {"plan": r["plan"], **_pick(r, ("predicted_score", "english_only_score", "gain_over_english"))}
        lines += [*_post("/plan", body), *_comment(_dump(short, more=True)), ""]
    lines += ["curl -s -F file=@queries.csv localhost:8000/batch -o scored.csv  # same contract as `xlt batch`"]
    return "\n".join([START, f"Answers of the shipped model `{p.manifest.get('version')}`, generated by "
                      "`bench/service_examples.py`:", "", "```bash", *lines, "```", END])


def rewrite(doc: Path = DOC) -> bool:
    """Replace the marked block of `doc` with today's examples; True when it changed."""
    text = doc.read_text()
    block = examples()
    new = text[: text.index(START)] + block + text[text.index(END) + len(END):]
    if new != text:
        doc.write_text(new)
    return new != text


if __name__ == "__main__":
    changed = rewrite()
    print(f"{DOC.relative_to(ROOT)}: {'rewritten' if changed else 'already current'}")
