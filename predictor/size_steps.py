"""A model size the record holds no results of, answered from its family's nearest size that it does hold.

Why: the trees learn what parameters are worth from the one family whose whole size ladder the record holds (mT5
small → XXL, in the mT5 paper's English-source tables). Asked about XLM-R XL (3.5B) or XXL (10.7B), for which the
record has no result, they put it among mT5-XL/XXL's rows for the size and keep XLM-R's own level from the family
code and its evidence: the two add up (XLM-R large → XL gained +9 points on XNLI and +18 on TyDiQA and MLQA, where
the record's own mT5 large → XL steps gain 1 to 12: reports/size_steps.md).

So such a model is scored *as its anchor* — the family's largest size the record holds that is not larger than it
(the smallest larger one when none is) — and then moved by one scaling step fitted on the record: each published
within-family step between two consecutive sizes the record holds (same task, training mix, target and k) closes a
share of the smaller model's headroom (100 − score) with each doubling of parameters, (100 − b) = (100 − a)·(1 −
rate)^doublings; the rate is the median over the steps from members of at least a billion parameters (mT5 large → XL
and XL → XXL), the regime XL and XXL sizes live in (steps between smaller models close two to three times as much).
A step of d doublings up leaves (1 − rate)^d of the headroom; a step down is its inverse. Monotone in the anchor's
score, so every law the anchor obeys (more data never hurts, chance floors) holds for the answer, and a ranking keeps
the anchor's order.

Measured by holding sizes out of the record and predicting them with and without the step (bench/size_steps.py →
reports/size_steps.md): better for mT5-XXL answered from XL, and for mT5-XL and XXL from large, about even for XLM-R
large from base.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from features import registry

BILLION = 1e9           # steps from members at least this large fit the rate (see the module docstring)
_MATCH = ["task", "train_config", "target", "k", "metric"]


def _spec(model_id: str):
    try:
        return registry.resolve_model(str(model_id), allow_unsized=True)
    except Exception:   # an id the registry no longer knows: not part of any ladder
        return None


class SizeSteps:
    """Fitted on observation rows: `rate_` and, per registered model the rows hold no result of, its anchor and the
    doublings of parameters from it (`anchors_`: {model: (anchor, doublings)})."""

    def __init__(self):
        self.rate_ = 0.0
        self.anchors_: dict[str, tuple[str, float]] = {}
        self.steps_: list[dict] = []

    def fit(self, obs: pd.DataFrame) -> "SizeSteps":
        observed = {str(m) for m in pd.unique(obs["model"].astype(str))}
        sized: dict[str, list[tuple[float, str]]] = {}
        for m in observed:
            spec = _spec(m)
            if spec is not None and spec.n_params:
                sized.setdefault(spec.family, []).append((float(spec.n_params), spec.id))
        shares, big, self.steps_ = [], [], []
        cols = [c for c in _MATCH if c in obs.columns]
        for family, members in sized.items():
            members.sort()
            for (na, a), (nb, b) in zip(members, members[1:]):
                A = obs[obs["model"].astype(str) == a].groupby(cols)["score"].mean()
                B = obs[obs["model"].astype(str) == b].groupby(cols)["score"].mean()
                pair = pd.concat([A.rename("a"), B.rename("b")], axis=1).dropna()
                pair = pair[pair["a"] < 100]
                if pair.empty:
                    continue
                doublings = math.log2(nb / na)
                left = np.clip((100.0 - pair["b"]) / (100.0 - pair["a"]), 1e-6, None).to_numpy()
                share = 1.0 - left ** (1.0 / doublings)   # of the headroom, closed per doubling
                shares.append(share)
                if na >= BILLION:
                    big.append(share)
                self.steps_.append({"from": a, "to": b, "pairs": int(len(pair)), "doublings": round(doublings, 3),
                                    "median_share": float(np.median(share))})
        pool = big or shares
        self.rate_ = float(np.clip(np.median(np.concatenate(pool)), 0.0, 0.5)) if pool else 0.0
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
        """The anchor's scores moved by the fitted step (d doublings leave (1 − rate)^d of the headroom 100 − s; a
        negative d divides by it), then the chance floor and 0–100."""
        s = np.asarray(scores, dtype=np.float64)
        d = np.asarray(doublings, dtype=np.float64)
        out = 100.0 - (100.0 - s) * (1.0 - self.rate_) ** d
        if floor is not None:
            out = np.maximum(out, floor)
        return np.where(np.isnan(s), s, np.clip(out, 0.0, 100.0))

    def to_dict(self) -> dict:
        return {"rate": self.rate_, "anchors": {m: list(v) for m, v in self.anchors_.items()}, "steps": self.steps_}

    @classmethod
    def from_dict(cls, d: dict | None) -> "SizeSteps":
        obj = cls()
        if d:
            obj.rate_ = float(d.get("rate", 0.0))
            obj.anchors_ = {str(m): (str(v[0]), float(v[1])) for m, v in (d.get("anchors") or {}).items()}
            obj.steps_ = list(d.get("steps") or [])
        return obj
