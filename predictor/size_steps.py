"""A model size the record holds no results of, answered from its family's nearest size that it does hold.

Why: the trees learn what parameters are worth from the one family whose whole size ladder the record holds (mT5
small → XXL, in the mT5 paper's English-source tables). Asked about XLM-R XL (3.5B) or XXL (10.7B), for which the
record has no result, they put it among mT5-XL/XXL's rows for the size and keep XLM-R's own level from the family
code and its evidence: the two add up (XLM-R large → XL gained +9 points on XNLI and +18 on TyDiQA and MLQA, where
the record's own mT5 large → XL steps gain 1 to 12: reports/size_steps.md).

So such a model is scored *as its anchor* — the family's largest size the record holds that is not larger than it
(the smallest larger one when none is) — and then moved by one scaling step fitted on the record, on the logit of the
score's share of the way from chance to 100: p = (s − chance)/(100 − chance), logit(p') = logit(p) + step·doublings.
The step is the median over each published within-family step between two consecutive sizes the record holds (same
task, training mix, target and k) from members of at least a billion parameters (mT5 large → XL and XL → XXL), the
regime XL and XXL sizes live in (steps between smaller models move two to three times as far).

Why the logit of the share above chance, not a share of the headroom 100 − s (the first form shipped): a score at
chance gains nothing from more parameters (the model does not know the language: XLM-R XL on Guarani or Wolof NLI,
which CC-100 lacks, went from 33.3 to 45.8 with the headroom step), a score near 100 little, a mid-scale one most.
That is what the record's mT5 ladder shows (reports/size_steps.md, per doubling from ≥ 1B parameters, by the smaller
size's share of the way from chance to 100): +0.3 points below a fifth (Thai WikiANN 9.1 → 9.6 → 10.2), where the
headroom share predicted +6.6 and the logit step +0.9; +4.9 around half-way, where both fall short (logit +2.4,
headroom +3.6); +0.5 to +2.2 above six tenths, which both match within 0.6 points. Held out and predicted, the
logit step does as well or better: mT5-XXL from XL RMSE 4.54 (headroom 4.52), mT5-XL and XXL from large 6.47 (7.40).

A step of d doublings up adds step·d to the logit; a step down subtracts it. Monotone in the anchor's score, so
every law the anchor obeys (more data never hurts, chance floors) holds for the answer, and a ranking keeps the
anchor's order.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from features import registry

BILLION = 1e9           # steps from members at least this large fit the step (see the module docstring)
_MATCH = ["task", "train_config", "target", "k", "metric"]
P_CLIP = 0.005          # shares of the way from chance to 100 are kept in [P_CLIP, 1 - P_CLIP] (a finite logit)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, P_CLIP, 1.0 - P_CLIP)
    return np.log(p / (1.0 - p))


def _spec(model_id: str):
    try:
        return registry.resolve_model(str(model_id), allow_unsized=True)
    except Exception:   # an id the registry no longer knows: not part of any ladder
        return None


def size_ladders(obs: pd.DataFrame) -> dict[str, list[tuple[float, str]]]:
    """Per family, its sized models the rows hold, as (parameters, id) from the smallest up."""
    sized: dict[str, list[tuple[float, str]]] = {}
    for m in {str(m) for m in pd.unique(obs["model"].astype(str))}:
        spec = _spec(m)
        if spec is not None and spec.n_params:
            sized.setdefault(spec.family, []).append((float(spec.n_params), spec.id))
    return {f: sorted(members) for f, members in sized.items()}


def ladder_steps(obs: pd.DataFrame, sized: dict | None = None) -> list[dict]:
    """Every published step between two consecutive sizes of a family the rows hold: {family, from, to, n_from,
    doublings, pairs}, `pairs` the two sizes' mean scores ("a", "b") on the same task, training mix, target, k and
    metric, with the task's chance level ("chance"). What `SizeSteps.fit` fits on and bench/size_steps.py reports."""
    from predictor.model import chance_level   # (predictor.model imports this module)

    sized = size_ladders(obs) if sized is None else sized
    types = obs.groupby("task")["task_type"].first().to_dict() if "task_type" in obs.columns else {}
    cols = [c for c in _MATCH if c in obs.columns]
    out = []
    for family, members in sized.items():
        for (na, a), (nb, b) in zip(members, members[1:]):
            A = obs[obs["model"].astype(str) == a].groupby(cols)["score"].mean()
            B = obs[obs["model"].astype(str) == b].groupby(cols)["score"].mean()
            pair = pd.concat([A.rename("a"), B.rename("b")], axis=1).dropna().reset_index()
            if pair.empty:
                continue
            pair["chance"] = [chance_level(str(t), str(types.get(t, ""))) for t in pair["task"]]
            out.append({"family": family, "from": a, "to": b, "n_from": na, "doublings": math.log2(nb / na),
                        "pairs": pair})
    return out


class SizeSteps:
    """Fitted on observation rows: `step_` (logit of the share above chance, per doubling of parameters) and, per
    registered model the rows hold no result of, its anchor and the doublings of parameters from it (`anchors_`:
    {model: (anchor, doublings)})."""

    def __init__(self):
        self.step_ = 0.0
        self.anchors_: dict[str, tuple[str, float]] = {}
        self.steps_: list[dict] = []

    def fit(self, obs: pd.DataFrame) -> "SizeSteps":
        observed = {str(m) for m in pd.unique(obs["model"].astype(str))}
        sized = size_ladders(obs)
        steps, big, self.steps_ = [], [], []
        for st in ladder_steps(obs, sized):
            pair, doublings, c = st["pairs"], st["doublings"], st["pairs"]["chance"].to_numpy()
            share = lambda col: (pair[col].to_numpy() - c) / (100.0 - c)  # noqa: E731
            step = (_logit(share("b")) - _logit(share("a"))) / doublings
            steps.append(step)
            if st["n_from"] >= BILLION:
                big.append(step)
            self.steps_.append({"from": st["from"], "to": st["to"], "pairs": int(len(pair)),
                                "doublings": round(doublings, 3), "median_step": float(np.median(step))})
        pool = big or steps
        self.step_ = float(np.clip(np.median(np.concatenate(pool)), 0.0, 1.0)) if pool else 0.0
        self.anchors_ = {}
        for spec in registry.models():
            if spec.id in observed or not spec.n_params or spec.family not in sized:
                continue
            members = sized[spec.family]
            below = [x for x in members if x[0] <= spec.n_params]
            n_anchor, anchor = max(below) if below else min(members)
            self.anchors_[spec.id] = (anchor, math.log2(spec.n_params / n_anchor))
        return self

    def anchored(self, models) -> tuple[np.ndarray, np.ndarray | None]:
        """(model id to score each query as, doublings from it or None when no query needs a step)."""
        models = np.asarray(models, dtype=object)
        if not self.anchors_:
            return models, None
        distinct = set(models.tolist()) if len(models) < 5000 else set(pd.unique(models).tolist())
        if not any(m in self.anchors_ for m in distinct):
            return models, None
        hits = [self.anchors_.get(m) for m in models.tolist()]
        ids = np.array([h[0] if h else m for h, m in zip(hits, models.tolist())], dtype=object)
        return ids, np.array([h[1] if h else 0.0 for h in hits], dtype=np.float64)

    def apply(self, scores, doublings, floor=None) -> np.ndarray:
        """The anchor's scores moved by the fitted step: logit(p) + step·d, p the share of the way from the chance
        level `floor` (per score or one number; None: 0) to 100. A score at or below chance, or at 100, stays where
        it is (continuous: the move shrinks to nothing toward either end). Then the chance floor and 0–100."""
        s = np.asarray(scores, dtype=np.float64)
        d = np.asarray(doublings, dtype=np.float64)
        c = np.broadcast_to(np.asarray(0.0 if floor is None else floor, dtype=np.float64), s.shape)
        with np.errstate(invalid="ignore", divide="ignore"):
            p = (s - c) / (100.0 - c)
            inside = (p > 0.0) & (p < 1.0)
            q = np.where(inside, p, 0.5)
            moved = c + (100.0 - c) / (1.0 + np.exp(-(np.log(q / (1.0 - q)) + self.step_ * d)))
        out = np.where(inside, moved, s)
        if floor is not None:
            out = np.maximum(out, floor)
        return np.where(np.isnan(s), s, np.clip(out, 0.0, 100.0))

    def to_dict(self) -> dict:
        return {"logit_step": self.step_, "anchors": {m: list(v) for m, v in self.anchors_.items()},
                "steps": self.steps_}

    @classmethod
    def from_dict(cls, d: dict | None) -> "SizeSteps":
        obj = cls()
        if d:
            # an artifact of the first (headroom) form has "rate", not "logit_step": its sizes score as their anchor
            obj.step_ = float(d.get("logit_step", 0.0))
            obj.anchors_ = {str(m): (str(v[0]), float(v[1])) for m, v in (d.get("anchors") or {}).items()}
            obj.steps_ = list(d.get("steps") or [])
        return obj
