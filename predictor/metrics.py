"""Ranking and regression metrics per ranking group, with bootstrap intervals over groups.

Why per group: about 85% of the score variance lies between (dataset, target) levels, so pooled numbers mostly
reward getting levels right. Every metric here is first computed once per group (a target language of one
dataset/model/task: the set of candidate sources we rank), then averaged; the 95% interval comes from resampling
groups (1000 draws, fixed seed) over that per-group vector, which keeps the bootstrap cheap for thousands of groups.

Relevance convention for NDCG@3 (LangRank, Lin et al. 2019; identical to `ndcg3_langrank` in the shared checks):
inside a group, the true top-10 sources get relevance 10, 9, ..., 1 (ties broken by row order), all others 0;
gain = 2^rel − 1; discount 1/log2(rank + 1) over the predicted top 3; normalised by the ideal DCG.
Top-1 counts a hit when the chosen source's true score equals the group's best (ties count). Regret = best − chosen
(points on the 0–100 scale). PL% = (best − chosen) / best × 100 (0 when best ≤ 0). Ties in the prediction are broken
by row order (first row wins), like `idxmax`.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

N_BOOT = 1000
SEED = 20240601
RANKING_METRICS = ("top1", "regret", "pl", "ndcg3", "spearman")
REGRESSION_METRICS = ("rmse", "mae")
ALL_METRICS = REGRESSION_METRICS + RANKING_METRICS
# direction for "is this better": +1 higher is better, −1 lower is better
HIGHER_IS_BETTER = {"rmse": False, "mae": False, "top1": True, "regret": False, "pl": False, "ndcg3": True,
                    "spearman": True, "coverage80": None, "coverage90": None}

_DISC = 1.0 / np.log2(np.arange(2, 5))


def _group_codes(groups) -> np.ndarray:
    """Integer group codes 0..G-1 in order of first appearance (keeps output order stable)."""
    codes, _ = pd.factorize(pd.Series(np.asarray(groups, dtype=object)), sort=False)
    return codes.astype(np.int64)


def _rank_within(codes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """0-based rank of each row inside its group when sorted by value descending; ties by row order (stable)."""
    pos = np.arange(len(values))
    order = np.lexsort((pos, -values, codes))
    sorted_codes = codes[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1]
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    rank = np.empty(len(values), dtype=np.int64)
    rank[order] = np.arange(len(order)) - group_start
    return rank


def ndcg3_langrank(true_scores, pred_scores) -> float:
    """NDCG@3 for one group with LangRank's relevance (see module docstring); same numbers as the shared check."""
    t = np.asarray(true_scores, float)
    p = np.asarray(pred_scores, float)
    out = per_group_ranking(np.zeros(len(t), dtype=np.int64), t, p, min_size=1)
    return float(out["ndcg3"].iloc[0]) if len(out) else 0.0


def per_group_ranking(groups, y_true, y_pred, min_size: int = 2) -> pd.DataFrame:
    """One row per group with n, best, chosen, top1, regret, pl, ndcg3, spearman (vectorized over all groups).

    Groups with fewer than `min_size` candidates are dropped (ranking one source is not a choice). Spearman is
    NaN for groups of size < 2 or with a constant truth/prediction (excluded from its average)."""
    y_true = np.asarray(y_true, float)
    y_pred = np.asarray(y_pred, float)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    if np.isnan(y_pred).any():
        raise ValueError(f"{int(np.isnan(y_pred).sum())} predictions are NaN; a ranker must score every candidate")
    labels = pd.Series(np.asarray(groups, dtype=object))
    codes, uniques = pd.factorize(labels, sort=False)
    codes = codes.astype(np.int64)
    n_groups = len(uniques)
    size = np.bincount(codes, minlength=n_groups)

    r_true = _rank_within(codes, y_true)
    r_pred = _rank_within(codes, y_pred)
    rel = np.clip(10 - r_true, 0, None).astype(float)
    gain = 2.0 ** rel - 1.0
    top3p = r_pred < 3
    top3t = r_true < 3
    dcg = np.bincount(codes[top3p], weights=gain[top3p] * _DISC[r_pred[top3p]], minlength=n_groups)
    idcg = np.bincount(codes[top3t], weights=gain[top3t] * _DISC[r_true[top3t]], minlength=n_groups)
    ndcg = np.divide(dcg, idcg, out=np.zeros(n_groups), where=idcg > 0)

    best = np.full(n_groups, -np.inf)
    np.maximum.at(best, codes, y_true)
    chosen = np.empty(n_groups)
    first = r_pred == 0
    chosen[codes[first]] = y_true[first]
    regret = best - chosen
    pl = np.divide(regret, best, out=np.zeros(n_groups), where=best > 0) * 100.0
    top1 = (chosen >= best).astype(float)

    spear = _spearman_by_group(codes, n_groups, y_true, y_pred)
    out = pd.DataFrame({"group": uniques, "n": size, "best": best, "chosen": chosen, "top1": top1,
                        "regret": regret, "pl": pl, "ndcg3": ndcg, "spearman": spear})
    return out[out["n"] >= min_size].reset_index(drop=True)


def _spearman_by_group(codes, n_groups, y_true, y_pred) -> np.ndarray:
    """Pearson correlation of average ranks inside each group (= Spearman with tie correction)."""
    df = pd.DataFrame({"g": codes, "t": y_true, "p": y_pred})
    rt = df.groupby("g")["t"].rank(method="average").to_numpy()
    rp = df.groupby("g")["p"].rank(method="average").to_numpy()
    n = np.bincount(codes, minlength=n_groups).astype(float)
    st = np.bincount(codes, rt, n_groups); sp = np.bincount(codes, rp, n_groups)
    stt = np.bincount(codes, rt * rt, n_groups); spp = np.bincount(codes, rp * rp, n_groups)
    stp = np.bincount(codes, rt * rp, n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = stp - st * sp / n
        vt = stt - st * st / n
        vp = spp - sp * sp / n
        rho = cov / np.sqrt(vt * vp)
    rho[(n < 2) | (vt <= 1e-12) | (vp <= 1e-12)] = np.nan
    return rho


def per_group_errors(groups, y_true, y_pred) -> pd.DataFrame:
    """One row per group: n, sum of squared errors, sum of absolute errors (for RMSE/MAE pooled over rows)."""
    y_true = np.asarray(y_true, float)
    y_pred = np.asarray(y_pred, float)
    codes, uniques = pd.factorize(pd.Series(np.asarray(groups, dtype=object)), sort=False)
    ok = ~np.isnan(y_pred)
    err = np.where(ok, y_pred - y_true, 0.0)
    n = np.bincount(codes, ok.astype(float), len(uniques))
    return pd.DataFrame({"group": uniques, "n": n, "sse": np.bincount(codes, err * err, len(uniques)),
                         "sae": np.bincount(codes, np.abs(err), len(uniques))})


def bootstrap_draws(n_groups: int, n_boot: int = N_BOOT, seed: int = SEED) -> np.ndarray:
    """(n_boot, n_groups) indices of resampled groups; the same seed gives the same draws everywhere.

    Every metric of a table (and every method on it) resamples the same draws: drawn once per shape and seed and
    returned read-only."""
    return _draws(int(n_groups), int(n_boot), int(seed))


@lru_cache(maxsize=64)
def _draws(n_groups: int, n_boot: int, seed: int) -> np.ndarray:
    out = np.random.default_rng(seed).integers(0, n_groups, size=(n_boot, n_groups))
    out.flags.writeable = False
    return out


def _interval(stat: float, draws: np.ndarray) -> dict:
    draws = draws[np.isfinite(draws)]
    if not np.isfinite(stat) or draws.size == 0:
        return {"value": float(stat) if np.isfinite(stat) else None, "lo": None, "hi": None}
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return {"value": float(stat), "lo": float(lo), "hi": float(hi)}


def mean_with_ci(values, n_boot: int = N_BOOT, seed: int = SEED) -> dict:
    """Mean of a per-group vector (NaNs skipped) with a 95% percentile bootstrap interval over groups."""
    v = np.asarray(values, float)
    if v.size == 0:
        return {"value": None, "lo": None, "hi": None}
    idx = bootstrap_draws(len(v), n_boot, seed)
    s = v[idx]
    with np.errstate(invalid="ignore"):
        cnt = np.isfinite(s).sum(1)
        draws = np.where(cnt > 0, np.nansum(s, 1) / np.maximum(cnt, 1), np.nan)
    stat = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
    return _interval(stat, draws)


def pooled_with_ci(num, den, root: bool = False, n_boot: int = N_BOOT, seed: int = SEED) -> dict:
    """sum(num)/sum(den) (sqrt'ed for RMSE) with a bootstrap interval that resamples whole groups."""
    num = np.asarray(num, float); den = np.asarray(den, float)
    if den.sum() <= 0:
        return {"value": None, "lo": None, "hi": None}
    idx = bootstrap_draws(len(num), n_boot, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        draws = num[idx].sum(1) / den[idx].sum(1)
        stat = num.sum() / den.sum()
    if root:
        draws, stat = np.sqrt(draws), np.sqrt(stat)
    return _interval(float(stat), draws)


def summarize(groups, y_true, y_pred, ranking: bool = True, regression: bool = True,
              n_boot: int = N_BOOT, seed: int = SEED) -> dict:
    """All metrics for one (protocol, table, method): {metric: {value, lo, hi}} plus n_groups / n_rows.

    `ranking=False` skips ranking metrics (e.g. mixtures that are not a choice among sources); `regression=False`
    skips RMSE/MAE for scorers whose output is not on the 0–100 scale (rule baselines, LambdaRank)."""
    out: dict = {"n_rows": int(len(np.asarray(y_true)))}
    if regression:
        e = per_group_errors(groups, y_true, y_pred)
        out["rmse"] = pooled_with_ci(e["sse"], e["n"], root=True, n_boot=n_boot, seed=seed)
        out["mae"] = pooled_with_ci(e["sae"], e["n"], n_boot=n_boot, seed=seed)
        out["n_groups"] = int(len(e))
    if ranking:
        r = per_group_ranking(groups, y_true, y_pred)
        for m in RANKING_METRICS:
            out[m] = mean_with_ci(r[m].to_numpy(), n_boot=n_boot, seed=seed)
        out["n_rank_groups"] = int(len(r))
    return out


def coverage(groups, y_true, lower, upper, n_boot: int = N_BOOT, seed: int = SEED) -> dict:
    """Share of rows whose truth falls inside [lower, upper] (pooled over rows), with an interval resampling groups."""
    y = np.asarray(y_true, float)
    inside = ((y >= np.asarray(lower, float)) & (y <= np.asarray(upper, float))).astype(float)
    codes, uniques = pd.factorize(pd.Series(np.asarray(groups, dtype=object)), sort=False)
    n = np.bincount(codes, minlength=len(uniques)).astype(float)
    hits = np.bincount(codes, inside, len(uniques))
    return pooled_with_ci(hits, n, n_boot=n_boot, seed=seed)
