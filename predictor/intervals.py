"""Prediction intervals by split-conformal calibration on residuals from folds that hold out whole targets.

Residuals come from models that never saw the target language, so the quantiles describe the error on a language
never seen in training, which is what a user asking about a new target faces. Quantiles are kept per task type (with
a global fallback) because QA scores scatter far more than POS accuracies.
"""
from __future__ import annotations

import math

import numpy as np

LEVELS = (0.8, 0.9)


def conformal_quantile(abs_residuals: np.ndarray, level: float) -> float:
    """The finite-sample conformal quantile: the ceil((n+1)·level)-th smallest |residual|."""
    r = np.sort(np.asarray(abs_residuals, dtype=np.float64))
    n = len(r)
    if n == 0:
        return float("nan")
    rank = min(n, math.ceil((n + 1) * level))
    return float(r[rank - 1])


class ConformalIntervals:
    """Symmetric intervals pred ± q_level(group); also the within-target spread used for P(best source)."""

    def __init__(self, levels=LEVELS, min_group: int = 50):
        self.levels = tuple(levels)
        self.min_group = min_group

    def fit(self, residuals: np.ndarray, groups: np.ndarray, within_target_residuals: np.ndarray | None = None):
        residuals = np.abs(np.asarray(residuals, dtype=np.float64))
        groups = np.asarray(groups).astype(str)
        self.quantiles_ = {"*": {str(l): conformal_quantile(residuals, l) for l in self.levels}}
        for g in np.unique(groups):
            sel = groups == g
            if sel.sum() >= self.min_group:
                self.quantiles_[g] = {str(l): conformal_quantile(residuals[sel], l) for l in self.levels}
        wt = residuals if within_target_residuals is None else np.asarray(within_target_residuals, dtype=np.float64)
        self.within_target_sd_ = float(np.std(wt)) if len(wt) else 1.0
        return self

    def halfwidth(self, groups, level: float) -> np.ndarray:
        key = str(level)
        default = self.quantiles_["*"][key]
        return np.array([self.quantiles_.get(str(g), self.quantiles_["*"]).get(key, default) for g in groups],
                        dtype=np.float64)

    def to_dict(self) -> dict:
        return {"levels": list(self.levels), "quantiles": self.quantiles_, "within_target_sd": self.within_target_sd_}

    @classmethod
    def from_dict(cls, d: dict) -> "ConformalIntervals":
        obj = cls(levels=d["levels"])
        obj.quantiles_ = d["quantiles"]
        obj.within_target_sd_ = float(d["within_target_sd"])
        return obj


def probability_best(scores: np.ndarray, sd: float, draws: int = 2000, seed: int = 0) -> np.ndarray:
    """P(each candidate is truly best) when each score carries independent N(0, sd²) error relative to the others."""
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) == 0:
        return scores
    if len(scores) == 1 or sd <= 0:
        out = np.zeros(len(scores))
        out[int(np.argmax(scores))] = 1.0
        return out
    # Only candidates within 4 sd of the leader can win; the rest get 0 and cost nothing.
    live = np.flatnonzero(scores >= scores.max() - 4 * sd * math.sqrt(2))
    if len(live) > 40:  # beyond the 40 leaders the chance of being best is below sampling resolution anyway
        live = live[np.argsort(-scores[live], kind="stable")[:40]]
    rng = np.random.default_rng(seed)
    sims = scores[live][None, :] + rng.normal(0.0, sd, size=(draws, len(live)))
    wins = np.bincount(np.argmax(sims, axis=1), minlength=len(live))
    out = np.zeros(len(scores))
    out[live] = wins / draws
    return out
