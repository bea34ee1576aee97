"""Prediction intervals that know what the model does not know: Mondrian split-conformal by regime and task type.

A query is in one of two regimes (predictor.record): the published record covers its target for this task (type), or
it does not and only similarity and sizes remain. Residuals for each regime come from the fold system that mimics it
(target-grouped folds for "similarity", random ranking-group folds for "record"), and the conformal quantile is taken
per bin (regime × task type, falling back to the regime, then to all). The quantiles come from `crepes`
(ConformalRegressor with Mondrian bins); only the resulting half-widths are stored, as JSON.
"""
from __future__ import annotations

import math

import numpy as np

LEVELS = (0.8, 0.9)
MIN_BIN = 50


def conformal_quantile(abs_residuals: np.ndarray, level: float) -> float:
    """The finite-sample conformal quantile: the ceil((n+1)·level)-th smallest |residual| (inf when n is too small)."""
    r = np.sort(np.asarray(abs_residuals, dtype=np.float64))
    n = len(r)
    if n == 0:
        return float("nan")
    rank = min(n, math.ceil((n + 1) * level))
    return float(r[rank - 1])


def _crepes_halfwidths(residuals: np.ndarray, bins: np.ndarray, levels) -> dict[str, dict[str, float]]:
    from crepes import ConformalRegressor

    cr = ConformalRegressor().fit(np.abs(residuals), bins=bins)
    uniq = np.unique(bins)
    out: dict[str, dict[str, float]] = {str(b): {} for b in uniq}
    for level in levels:
        iv = cr.predict_int(np.zeros(len(uniq)), bins=uniq, confidence=level)
        for b, hw in zip(uniq, iv[:, 1]):
            out[str(b)][str(level)] = float(hw)
    return out


def bin_keys(regimes, task_types) -> np.ndarray:
    return np.char.add(np.char.add(np.asarray(regimes, dtype=str), "|"), np.asarray(task_types, dtype=str))


class ConformalIntervals:
    """Symmetric intervals pred ± q_level(bin); also the within-target spread used for P(best source)."""

    def __init__(self, levels=LEVELS, min_group: int = MIN_BIN):
        self.levels = tuple(levels)
        self.min_group = min_group

    def fit(self, residuals: np.ndarray, regimes: np.ndarray, task_types: np.ndarray,
            within_target_residuals: np.ndarray | None = None):
        residuals = np.asarray(residuals, dtype=np.float64)
        ok = ~np.isnan(residuals)
        residuals, regimes, task_types = residuals[ok], np.asarray(regimes)[ok], np.asarray(task_types)[ok]
        self.quantiles_ = {"*": {str(l): conformal_quantile(np.abs(residuals), l) for l in self.levels}}
        for keys in (np.asarray(regimes, dtype=str), bin_keys(regimes, task_types)):
            big = [k for k, c in zip(*np.unique(keys, return_counts=True)) if c >= self.min_group]
            sel = np.isin(keys, big)
            if sel.any():
                self.quantiles_.update(_crepes_halfwidths(residuals[sel], keys[sel], self.levels))
        wt = residuals if within_target_residuals is None else np.asarray(within_target_residuals, dtype=np.float64)
        wt = wt[~np.isnan(wt)]
        self.within_target_sd_ = float(np.std(wt)) if len(wt) else 1.0
        return self

    def halfwidth(self, regimes, task_types, level: float) -> np.ndarray:
        """Half-width per query: its regime × task type bin, else its regime, else all residuals."""
        key = str(level)
        q = self.quantiles_
        regimes = np.asarray(regimes, dtype=str)
        keys = bin_keys(regimes, task_types)
        cache: dict[tuple[str, str], float] = {}
        out = np.empty(len(keys), dtype=np.float64)
        for i, (k, r) in enumerate(zip(keys, regimes)):
            v = cache.get((k, r))
            if v is None:
                v = (q.get(k) or q.get(r) or q["*"]).get(key, q["*"][key])
                cache[(k, r)] = v
            out[i] = v
        return out

    def to_dict(self) -> dict:
        return {"levels": list(self.levels), "quantiles": self.quantiles_, "within_target_sd": self.within_target_sd_,
                "method": "Mondrian split-conformal (crepes ConformalRegressor), bins = regime | task type"}

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
