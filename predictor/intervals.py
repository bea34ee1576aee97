"""Prediction intervals that know what the model does not know: Mondrian split-conformal by regime and task type.

A query is in one of two regimes (predictor.record): the published record covers its target for this task (type), or
it does not and only similarity and sizes remain. Residuals for each regime come from the fold system that mimics it
(target-grouped folds for "similarity", random ranking-group folds for "record"), and the conformal quantile is taken
per bin (regime × task type, falling back to the regime, then to all). The quantiles come from `crepes`
(ConformalRegressor with Mondrian bins); only the resulting half-widths are stored, as JSON.

Normalized: a residual is divided by a difficulty scale before its quantile is taken, and the half-width is that
quantile times the query's own scale. The scale is a function of the *predicted score* alone, known for every query:
sigma = exp(slope · (edge − center)), edge = the prediction's distance from the nearer end of the 0–100 scale / 50
(a score predicted near 0 or 100 has less room to be wrong than one mid-scale). slope is fitted per regime by least
squares of log(1 + |residual|) on edge over that regime's calibration residuals; center is their mean edge, so a
stored quantile is the half-width of a typical query of the bin. Measured cross-conformally (reports/accuracy.md):
mid-scale predictions (zero-shot rows, a new model family) get wider intervals, near-ceiling ones narrower, at the
same overall coverage, where one width per bin under-covered the former. Known gap: rows whose mix holds examples of
the target (k > 0) score higher, so the scale narrows their intervals more than their errors shrink (cross-fitted over
the training residuals by language group, 80/90% coverage of k > 0 similarity rows is 65/86 with the scale, 72/90
without; a k > 0 bin did not close it: those rows belong to a few targets, and their errors move with the target).

A task the record has no rows for (served from its type alone) is a bin of its own, NEW_TASK, calibrated on
leave-task-out residuals.

Bounds (`interval_bounds`): inside 0–100, the lower one at most CHANCE_SLACK below the task's chance level; the
facade and `xlt evaluate`'s coverage use the same function, so the reported coverage is that of the served bounds.

Units: the errors of one held-out unit (a target language, a task, a results matrix, a model family) move together,
so a bin's quantile says something about a *new* unit only when its residuals come from several of them. A regime ×
task type bin (or a regime) whose residuals span fewer than MIN_UNITS held-out units is no narrower than the coarser
bin: its quantile is the larger of its own and the coarser bin's (one other unit that erred little is no evidence
that a new one will; one that erred much is kept: the coarser bin pools rows, so a type whose units all err more
than the common ones, QA, would otherwise be under-covered). The served calibration counts target languages for the
similarity and record residuals (every bin has dozens: unchanged) and tasks for the leave-task-out ones (one or two
per type: a new classification or NER task is as wide as the pooled new-task bin, no longer narrower); `xlt
evaluate` counts what each protocol holds out (a matrix calibrated on the other matrices used to take the ner
quantile from the one other ner matrix: wikiann on mT5 from wikiann on XLM-R, 39% coverage at 80%). Tried and not
kept: a bin (or a slope of its own) for rows whose mix holds target examples (k > 0): on SumEval it raised their 80%
coverage from 74 to 77-78 but dropped the zero-shot rows' from 81 to 76-77; their misses are per target (one of five
language groups holds most of them), which no bin of other targets' residuals calibrates.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

LEVELS = (0.8, 0.9)
MIN_BIN = 50
MIN_UNITS = 3   # a bin of residuals from fewer held-out units is no narrower than its regime (ConformalIntervals.fit)
SCALE = "exp(slope·(edge − center)), edge = min(score, 100 − score) / 50, slope per regime"
SLOPE_MAX = 2.0       # the fitted slopes are ~1.0 (similarity) and ~0.55 (record)
MIN_EDGE_SD = 0.05    # predictions spanning less of the scale than this cannot fit a slope


# How far below its task's chance level an interval may reach. Below chance a published score falls only by noise: no
# XNLI or PAWS-X result of the record is below chance (the lowest: 3.8 and 19.6 points above), UD POS's lowest is 5.8
# points under 1/17. So a 3-way NLI interval no longer reaches 10 (AmericasNLI, Quechua: 10.5-62.5 before).
CHANCE_SLACK = 5.0


def interval_bounds(scores, halfwidths, chance=None) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) of `scores ± halfwidths` inside 0-100, the lower bound no more than CHANCE_SLACK below the
    query's chance level (`chance`: per query or one number; None: no floor). The one rule for the served intervals
    and the coverage `xlt evaluate` measures of them."""
    s = np.asarray(scores, dtype=np.float64)
    h = np.asarray(halfwidths, dtype=np.float64)
    lower = s - h
    if chance is not None:
        lower = np.maximum(lower, np.asarray(chance, dtype=np.float64) - CHANCE_SLACK)
    return np.clip(lower, 0, 100), np.clip(s + h, 0, 100)


def edge(scores) -> np.ndarray:
    """Distance of a predicted score from the nearer end of the 0–100 scale, in [0, 1] (1 = mid-scale)."""
    s = np.asarray(scores, dtype=np.float64)
    return np.clip(np.minimum(s, 100.0 - s), 0.0, 50.0) / 50.0


def scale_from(params: np.ndarray, scores) -> np.ndarray:
    """exp(slope · (edge(score) − center)) for per-query (slope, center) rows (ConformalIntervals.scale_params)."""
    params = np.asarray(params, dtype=np.float64)
    return np.exp(params[:, 0] * (edge(scores) - params[:, 1]))


def coarse_regime(regimes) -> np.ndarray:
    """The regime a difficulty scale is fitted per: the bin without its pair evidence ('record+pair' -> 'record')."""
    return np.array([str(r).replace("+pair", "") for r in np.asarray(regimes, dtype=object)], dtype=object)


def fit_scale(abs_residuals: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Least squares of log(1 + |r|) on edge(score): {slope, center}. The slope is 0 when there are too few rows or
    their predictions span too little of the scale to say how the error changes along it, and at most SLOPE_MAX in
    size (a scale extrapolated from a narrow span would otherwise explode: the widths differ by at most e^SLOPE_MAX
    between a mid-scale and an end-of-scale prediction)."""
    r, e = np.asarray(abs_residuals, dtype=np.float64), edge(scores)
    ok = ~np.isnan(r) & ~np.isnan(e)
    center = float(np.mean(e[ok])) if ok.any() else 0.5
    if ok.sum() < MIN_BIN or np.std(e[ok]) < MIN_EDGE_SD:
        return {"slope": 0.0, "center": center}
    slope, _ = np.polyfit(e[ok], np.log1p(r[ok]), 1)
    return {"slope": float(np.clip(slope, -SLOPE_MAX, SLOPE_MAX)), "center": center}


def conformal_quantile(abs_residuals: np.ndarray, level: float) -> float:
    """The finite-sample conformal quantile: the ceil((n+1)·level)-th smallest |residual| (inf when n is too small)."""
    r = np.sort(np.asarray(abs_residuals, dtype=np.float64))
    n = len(r)
    if n == 0:
        return float("nan")
    rank = min(n, math.ceil((n + 1) * level))
    return float(r[rank - 1])


# The best-source set's quantile is chosen so the set holds the truly best source in >= `level` of new targets with
# this confidence over the draw of the calibration groups (a training-conditional, "PAC" guarantee), not only on
# average over draws: a plain conformal quantile at 90% held the best source in 89.5% of xpos's held-out targets and
# 89.9% of the held-out matrices' (reports/accuracy.md of model 20261207-132418), i.e. below the goal about half the
# time by construction. The coverage of the k-th smallest of n calibration scores is Beta(k, n + 1 − k) distributed
# for exchangeable groups (Vovk 2012); the smallest k with P(coverage >= level) >= BEST_SET_CONFIDENCE is used.
BEST_SET_CONFIDENCE = 0.9


def best_set_rank(n: int, level: float, confidence: float = BEST_SET_CONFIDENCE) -> int:
    """1-based rank of the calibration score to use as the best-source set's gap among n: the smallest k whose
    Beta(k, n + 1 − k) coverage reaches `level` with probability `confidence` (n + 1, i.e. infinite, when none)."""
    from scipy.stats import beta

    if n <= 0:
        return 1
    ks = np.arange(1, n + 1)
    ok = np.flatnonzero(beta.sf(level, ks, n + 1 - ks) >= confidence)
    return int(ks[ok[0]]) if len(ok) else n + 1


def best_set_quantile(gaps: np.ndarray, level: float, confidence: float = BEST_SET_CONFIDENCE) -> float:
    """The `best_set_rank`-th smallest gap (inf when there are too few groups for the guarantee)."""
    g = np.sort(np.asarray(gaps, dtype=np.float64))
    k = best_set_rank(len(g), level, confidence)
    return float(g[k - 1]) if k <= len(g) else float("inf")


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


def evidence_bins(regimes, ev_pair) -> np.ndarray:
    """Calibration bin of each answer: its regime, and within the record regime whether the record also holds this
    very source→target pair ('record+pair'): the more the record says, the narrower the interval may be."""
    regimes = np.asarray(regimes, dtype=object)
    pair = ~np.isnan(np.asarray(ev_pair, dtype=np.float64))
    return np.where((regimes == "record") & pair, "record+pair", regimes).astype(object)


NEW_TASK = "similarity+new-task"
NEW_TASK_MIN_ROWS = 100


def new_task_regimes(regimes, tasks, known_tasks) -> np.ndarray:
    """Regime per answer, with a task the record holds no rows for set apart as NEW_TASK: xlt serves such a task
    from its type alone, and its intervals come from leave-task-out residuals (predictor.train.out_of_fold_task),
    which are far wider than those of a seen task (reports/accuracy.md, leave_task_out)."""
    known = set(known_tasks)
    if not known:   # no record at all: nothing to set apart
        return np.asarray(regimes, dtype=object)
    return np.array([r if t in known else NEW_TASK for r, t in zip(np.asarray(regimes, dtype=object), tasks)],
                    dtype=object)


def bin_keys(regimes, task_types) -> np.ndarray:
    return np.char.add(np.char.add(np.asarray(regimes, dtype=str), "|"), np.asarray(task_types, dtype=str))


class ConformalIntervals:
    """Symmetric intervals pred ± q_level(bin); also the within-target spread used for P(best source)."""

    def __init__(self, levels=LEVELS, min_group: int = MIN_BIN, min_units: int = MIN_UNITS):
        self.levels = tuple(levels)
        self.min_group = min_group
        self.min_units = min_units

    def fit(self, residuals: np.ndarray, regimes: np.ndarray, task_types: np.ndarray,
            within_target_residuals: np.ndarray | None = None, scores: np.ndarray | None = None,
            units: np.ndarray | None = None):
        """Quantiles of |residual| / scale per bin; `scores` (the predictions the residuals are of) fit the
        difficulty scale per regime; without them every scale is 1 (plain Mondrian split-conformal). `units` (the
        held-out unit of each residual): a bin of fewer than `min_units` distinct units gets at least the coarser
        bin's quantile (its regime's, else that of all residuals); without them only the row count counts."""
        residuals = np.asarray(residuals, dtype=np.float64)
        ok = ~np.isnan(residuals)
        residuals, regimes, task_types = residuals[ok], np.asarray(regimes)[ok], np.asarray(task_types)[ok]
        units = None if units is None else np.asarray(units, dtype=str)[ok]
        self.scale_ = {}
        if scores is not None:
            scores = np.asarray(scores, dtype=np.float64)[ok]
            coarse = coarse_regime(regimes)
            for r in np.unique(coarse):
                m = coarse == r
                self.scale_[str(r)] = fit_scale(np.abs(residuals[m]), scores[m])
            residuals = residuals / self.scale(regimes, scores)
        self.quantiles_ = {"*": {str(l): conformal_quantile(np.abs(residuals), l) for l in self.levels}}
        for keys in (np.asarray(regimes, dtype=str), bin_keys(regimes, task_types)):
            big = [k for k, c in zip(*np.unique(keys, return_counts=True)) if c >= self.min_group]
            sel = np.isin(keys, big)
            if not sel.any():
                continue
            found = _crepes_halfwidths(residuals[sel], keys[sel], self.levels)
            if units is not None:   # a bin of too few held-out units is no narrower than the coarser bin
                for k in big:
                    if len(np.unique(units[keys == k])) < self.min_units:
                        coarser = self.quantiles_.get(k.split("|")[0]) if "|" in k else None
                        coarser = coarser or self.quantiles_["*"]
                        found[k] = {lv: max(v, coarser[lv]) for lv, v in found[k].items()}
            self.quantiles_.update(found)
        wt = residuals if within_target_residuals is None else np.asarray(within_target_residuals, dtype=np.float64)
        wt = wt[~np.isnan(wt)]
        self.within_target_sd_ = float(np.std(wt)) if len(wt) else 1.0
        return self

    def fit_best_set(self, groups: np.ndarray, y: np.ndarray, pred: np.ndarray, regimes: np.ndarray,
                     level: float = 0.9, min_candidates: int = 3):
        """Conformal *best-source set*: per ranking group (one target's candidates) the gap between the predicted
        leader and the truly best source's prediction; the set at `level` holds every candidate within the
        quantile of those gaps of the leader that holds with BEST_SET_CONFIDENCE (`best_set_rank`). Calibrated per
        regime; coverage and mean size on the calibration groups are kept for the report."""
        frame = pd.DataFrame({"g": groups, "y": y, "p": pred, "r": regimes}).dropna()
        sizes = frame.groupby(["r", "g"])["y"].transform("size")
        frame = frame[sizes >= min_candidates]
        self.best_set_ = {"level": level}
        for regime, part in frame.groupby("r"):
            top = part.loc[part.groupby("g")["y"].idxmax()].set_index("g")
            lead = part.groupby("g")["p"].max()
            gaps = (lead - top["p"]).to_numpy()
            q = best_set_quantile(gaps, level)
            size = (part["p"] >= part["g"].map(lead) - q - 1e-9).groupby(part["g"]).agg(["sum", "size"])
            self.best_set_[str(regime)] = {"gap": q, "groups": int(len(gaps)),
                                           "coverage": float(np.mean(gaps <= q + 1e-9)),
                                           "mean_size": float(size["sum"].mean()),
                                           "mean_share": float((size["sum"] / size["size"]).mean())}
        return self

    def best_set_gap(self, regime: str) -> float | None:
        b = getattr(self, "best_set_", None) or {}
        return (b.get(regime) or {}).get("gap")

    def scale_params(self, regimes) -> np.ndarray:
        """(slope, center) of each query's regime, n × 2 (0, 0 for a regime without a fitted scale: scale 1)."""
        sc = getattr(self, "scale_", None) or {}
        regimes = np.asarray(regimes, dtype=object)
        out = np.zeros((len(regimes), 2))
        if sc:
            cache: dict[str, tuple[float, float]] = {}
            for i, r in enumerate(regimes):
                v = cache.get(r)
                if v is None:
                    p = (sc.get(str(r).replace("+pair", "")) or sc.get(str(r).split("+")[0])
                         or {"slope": 0.0, "center": 0.0})
                    v = cache[r] = (p["slope"], p["center"])
                out[i] = v
        return out

    def scale(self, regimes, scores) -> np.ndarray:
        """Difficulty scale per query from its predicted score: exp(slope · (edge(score) − center)) of its regime."""
        return scale_from(self.scale_params(regimes), scores)

    def bin_table(self, regimes, task_types) -> np.ndarray:
        """Per query: the half-width quantile of its bin at each level, then its regime's slope and center
        (n × (levels + 2)); the half-width at a level is column j × `scale_from(table[:, -2:], scores)`."""
        return np.column_stack([self.halfwidth(regimes, task_types, level) for level in self.levels]
                               + [self.scale_params(regimes)])

    def halfwidth(self, regimes, task_types, level: float, scores=None) -> np.ndarray:
        """Half-width per query: the quantile of its regime × task type bin (else its regime, else all residuals),
        times its difficulty scale when `scores` are given (the facade multiplies by `scale` itself)."""
        if scores is not None:
            return self.halfwidth(regimes, task_types, level) * self.scale(regimes, scores)
        key = str(level)
        q = self.quantiles_
        regimes = np.asarray(regimes, dtype=str)
        keys = bin_keys(regimes, task_types)
        cache: dict[tuple[str, str], float] = {}
        out = np.empty(len(keys), dtype=np.float64)
        for i, (k, r) in enumerate(zip(keys, regimes)):
            v = cache.get((k, r))
            if v is None:
                base = r.split("+")[0]
                v = (q.get(k) or q.get(r) or q.get(f"{base}|{k.split('|', 1)[1]}") or q.get(base)
                     or q["*"]).get(key, q["*"][key])
                cache[(k, r)] = v
            out[i] = v
        return out

    def to_dict(self) -> dict:
        scaled = bool(getattr(self, "scale_", None))
        return {"levels": list(self.levels), "quantiles": self.quantiles_, "within_target_sd": self.within_target_sd_,
                "method": "Mondrian split-conformal (crepes ConformalRegressor), bins = regime | task type"
                          + (f"; normalized by the difficulty scale {SCALE}" if scaled else ""),
                "scale": getattr(self, "scale_", None) or {},
                "best_set": getattr(self, "best_set_", None)}

    @classmethod
    def from_dict(cls, d: dict) -> "ConformalIntervals":
        obj = cls(levels=d["levels"])
        obj.quantiles_ = d["quantiles"]
        obj.within_target_sd_ = float(d["within_target_sd"])
        obj.scale_ = {str(k): {"slope": float(v["slope"]), "center": float(v["center"])}
                      for k, v in (d.get("scale") or {}).items()}
        if d.get("best_set"):
            obj.best_set_ = d["best_set"]
        return obj


def probability_best(scores: np.ndarray, sd: float, draws: int = 2000, seed: int = 0,
                     step: float = 0.4) -> np.ndarray:
    """P(each candidate is truly best) when each score carries independent N(0, sd²) error relative to the others.

    P_i = ∫ φ(t − d_i) Π_{j≠i} Φ(t − d_j) dt with d = (score − leader) / sd, by the trapezoid rule on a `step`-sd
    grid (the integrand is smooth, so the rule converges fast: a 0.4 grid agrees with a 0.005 grid within 3e-7 over
    300 random rankings of 2-120 candidates, far below the answer's rounding; ~0.05 ms for 100 candidates). It
    replaced a 2,000-draw Monte Carlo estimate (±1 point of sampling noise, ~1 ms); `draws` and `seed` are unused.
    """
    from scipy.special import ndtr

    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) == 0:
        return scores
    if len(scores) == 1 or sd <= 0:
        out = np.zeros(len(scores))
        out[int(np.argmax(scores))] = 1.0
        return out
    # Only candidates within 4 sd of the leader can win; the rest get 0 and cost nothing.
    live = np.flatnonzero(scores >= scores.max() - 4 * sd * math.sqrt(2))
    if len(live) > 40:  # beyond the 40 leaders the chance of being best is negligible
        live = live[np.argsort(-scores[live], kind="stable")[:40]]
    d = (scores[live] - scores.max()) / sd
    # where the best of the live scores can fall (below −8.5 the leader's own Φ(t) < 1e-17 makes it negligible)
    t = np.arange(-8.5, 8.5, step)[:, None]
    # log Φ(t − d_j), grid × candidates; t − d >= −14.2 keeps Φ >= 1e-45, so log(ndtr) is exact (and cheaper)
    log_cdf = np.log(ndtr(t - d[None, :]))
    log_pdf = -0.5 * (t - d[None, :]) ** 2 - 0.5 * math.log(2 * math.pi)
    mass = np.exp(log_pdf + log_cdf.sum(axis=1, keepdims=True) - log_cdf).sum(axis=0)
    out = np.zeros(len(scores))
    out[live] = mass / mass.sum()
    return out
