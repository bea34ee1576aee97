"""Answer shapes shared by HTTP, CLI and the web page, built from one facade call each.

Kept free of FastAPI imports so the CLI can use it without paying for the web stack at start-up.
"""
from __future__ import annotations

import math


def _f(x):
    """float or None (JSON has no NaN)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def with_task_type(query: dict) -> dict:
    """Fill `task_type` from the registry when the task is known and the caller gave none.

    Harmless by design (the registry is the source of the type either way); it also keeps queries off a
    normaliser path that mishandles an all-None task_type column under pandas 3 (reported to the lead).
    """
    if query.get("task_type") or not query.get("task"):
        return query
    from features.errors import XltError
    from features.registry import resolve_task

    try:
        return {**query, "task_type": resolve_task(query["task"]).task_type}
    except XltError:
        return query  # let the facade raise its own error for the unknown task


def rank_answer(p, query: dict, candidates: list[str] | None = None, top: int | None = None, reasons: int = 3,
                source: str | None = None) -> dict:
    """Ranked sources with score, intervals, P(best) and reasons; `source` (your current one) joins the candidates."""
    if source is not None:
        from features.languages import resolve_code
        resolve_code(source, "source")  # a bad `source` is an error even when the default list would cover it
        if candidates is not None and source not in candidates:
            candidates = [*candidates, source]
    q = with_task_type(query)
    if source is not None:  # your current source is always ranked, even outside the default pool
        q = {**q, "source": source}
    df = p.rank_table(q, candidates, top, reasons=reasons)  # columns in rank order: no DataFrame on this path
    cols = {c: (v.tolist() if hasattr(v, "tolist") else list(v)) for c, v in df.columns.items()}
    rs = cols.get("reasons")
    items = [{"rank": i + 1, "source": cols["source"][i], "name": cols["name"][i],
              "score": cols["predicted_score"][i], "lower80": cols["lower80"][i], "upper80": cols["upper80"][i],
              "lower90": cols["lower90"][i], "upper90": cols["upper90"][i], "p_best": cols["p_best"][i],
              "source_size": cols["source_size"][i], "size_published": cols["size_published"][i],
              "reasons": _reasons(rs[i]) if rs is not None else None,
              "in_best_set": bool(cols["in_best_set"][i]) if "in_best_set" in cols else None} for i in range(len(df))]
    return {"sources": items, "model": query.get("model"), "task": query.get("task"), "target": query.get("target"),
            "k": query.get("k"), "n_candidates": len(items) if top is None else None,
            "regime": df.regime, "candidate_sizes": query.get("candidate_sizes") or "assumed"}


def _reasons(value):
    """A list of reason dicts, or None where the facade did not compute them (NaN/None from a DataFrame cell)."""
    return value if isinstance(value, list) else None


def explain_answer(p, query: dict) -> dict:
    """SHAP contributions sorted by size, with readable labels; base_value + Σ shap = prediction."""
    from predictor.explain import FEATURE_LABELS

    e = p.explain(query)
    values = e.get("feature_values", {})
    contribs = sorted(e["contributions"].items(), key=lambda kv: -abs(kv[1]))
    return {"base_value": e["base_value"], "prediction": e["prediction"], "predicted_score": e["predicted_score"],
            "contributions": [{"feature": f, "label": FEATURE_LABELS.get(f, f), "value": _f(values.get(f)),
                               "shap": v} for f, v in contribs],
            "reasons": e.get("reasons", []), "query": e["query"]}
