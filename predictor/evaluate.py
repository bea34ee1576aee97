"""`xlt evaluate`: run every protocol for the product model and every baseline; write reports/accuracy.{json,md}.

From Python, for experiments:
    from predictor.evaluate import evaluate_protocol
    res = evaluate_protocol("xpos", my_fit_predict)          # or a Protocol object; returns tables of metrics
Fits are shared: folds with the same training mask (e.g. the strict language-group folds used by xpos, the strict
LangRankPlus variant and SumEval) are fitted once per method with the union of their test rows.

Speed (`xlt evaluate --all` ≤ 15 min on 2 cores): every fit of every method goes to a pool of `--jobs` worker
processes (default: the cores available, at most 2), largest first, while this process scores each method as its
fits come in. The feature caches are filled here first, in the order a sequential run fills them, and shipped to the
workers, so the numbers equal a sequential run's (`--jobs 1`) exactly. Per method and protocol, the seconds of
fitting and scoring are in accuracy.json (`timings_detail_s`) and at the end of accuracy.md.

Interval coverage is cross-conformal, with the served recipe (`predictor.intervals.ConformalIntervals`: Mondrian by
regime × task type, each residual normalized by a difficulty scale of its predicted score): for the rows of one fold,
the quantiles come from the out-of-fold residuals of all *other* folds of the same protocol (a protocol with one fold
is split in two halves of its ranking groups), so the calibration never saw what it is judged on. The regime is the
protocol's: "record" for `seen`, the new-task bin for `leave_task_out` (whose rows of one task are calibrated on the
other tasks' residuals only), "similarity" elsewhere. A bin counts the units the protocol holds out
(`UNIT_OF_ROWS`; predictor.intervals.MIN_UNITS): a matrix of unseen_dataset whose task type only one other matrix
shares gets at least the quantile of all other matrices, not that of the one.

`python -m predictor.evaluate --readme` rewrites the README's accuracy table (between `<!-- accuracy:start -->` and
`<!-- accuracy:end -->`) from reports/accuracy.json.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from predictor import metrics as M
from predictor import protocols as P
from predictor.baselines import (COMPOSITE, DISTANCE_KINDS, SINGLE_RULES, Method, baseline_methods,
                                 relative_lambdarank, xlt_model)

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "reports"
README = ROOT / "README.md"
OURS = "xlt (LightGBM regressor)"
NEURAL = "xlt neural (torch; evaluated, not served)"
LITMUS = "LITMUS regressor"
LANGRANK_OURS = "xlt ranker (relative LambdaRank)"
OBS_PROTOCOLS = ("seen", "xpos", "langrankplus", "langrankplus_strict", "sumeval", "leave_task_out", "unseen_dataset",
                 "unseen_family")
# the interval recipe the headline's coverage rows measure (the served one: predictor.intervals.ConformalIntervals)
RECIPE = ("Mondrian bins regime × task type, a bin of < 3 held-out units no narrower than its regime, normalized "
          "by exp(slope·edge of the predicted score)")
# protocols whose regression methods get cross-conformal interval coverage, and the regime each one measures
INTERVAL_REGIMES = {"seen": "record", "xpos": "similarity", "sumeval": "similarity", "unseen_dataset": "similarity",
                    "unseen_family": "similarity", "langrankplus": "similarity",
                    "leave_task_out": "similarity+new-task"}   # = predictor.intervals.NEW_TASK
# protocols whose calibration unit is coarser than a fold: leave_task_out's folds are (task, language group), and a
# task's rows are calibrated on the *other tasks'* residuals only, as the served NEW_TASK bin is
CALIBRATION_UNIT = {"leave_task_out": lambda fold_name: fold_name.split("/")[0]}
# what a protocol holds out, the unit whose errors move together (counted against predictor.intervals.MIN_UNITS): a
# target language by default (a language-group fold holds out many; `seen` tests new mixes of seen targets), the
# held-out matrix or model family for the row-unit protocols, the task for leave_task_out
UNIT_OF_ROWS = {"unseen_dataset": "fold", "unseen_family": "fold", "leave_task_out": "fold"}


# ---------------------------------------------------------------------------------------------------------------
# running folds

def _fold_key(proto: P.Protocol, fold: P.Fold) -> str:
    h = hashlib.sha1(np.packbits(fold.train).tobytes())
    h.update(json.dumps(fold.test_overrides, sort_keys=True).encode())
    h.update(str(id(proto.data)).encode())
    return h.hexdigest()


def _apply(fit_predict, train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    out = fit_predict(train, test)
    if isinstance(out, pd.DataFrame):
        out = out["predicted_score"]
    out = np.asarray(out, dtype=float)
    if out.shape != (len(test),):
        raise ValueError(f"fit_predict returned shape {out.shape} for {len(test)} test rows")
    return out


def plan_folds(protocols: list[P.Protocol]) -> dict[str, dict]:
    """The distinct training sets of `protocols` (fold key -> data, train mask, union of test masks, overrides)."""
    plan: dict[str, dict] = {}
    for proto in protocols:
        seen = np.zeros(len(proto.data), bool)
        for f in proto.folds:
            if (seen & f.test).any():
                raise ValueError(f"{proto.name}: folds overlap on their test rows")
            seen |= f.test
            k = _fold_key(proto, f)
            entry = plan.setdefault(k, {"data": proto.data, "train": f.train, "test": np.zeros(len(proto.data), bool),
                                        "overrides": f.test_overrides, "name": f"{proto.name}/{f.name}"})
            entry["test"] = entry["test"] | f.test
    return plan


def _test_frame(e: dict) -> pd.DataFrame:
    test = e["data"].loc[e["test"]].copy()
    for c, v in e["overrides"].items():
        test[c] = v
    return test


def fit_entry(fit_predict: Callable, e: dict) -> np.ndarray:
    """Predictions of one planned fit for its test rows (in data order)."""
    return _apply(fit_predict, e["data"].loc[e["train"]], _test_frame(e))


def run_folds(protocols: list[P.Protocol], fit_predict: Callable, log=None) -> dict[str, np.ndarray]:
    """Out-of-fold predictions for each protocol (NaN on rows it does not test), one fit per distinct training set."""
    plan = plan_folds(protocols)
    shared: dict[str, np.ndarray] = {}
    for i, (k, e) in enumerate(plan.items()):
        t0 = time.perf_counter()
        shared[k] = fit_entry(fit_predict, e)
        if log:
            log(f"    fit {i + 1}/{len(plan)} {e['name']}: {int(e['train'].sum())} train, {int(e['test'].sum())} test "
                f"rows, {time.perf_counter() - t0:.1f}s")
    return _assemble(protocols, plan, shared)


def _assemble(protocols: list[P.Protocol], plan: dict[str, dict], shared: dict[str, np.ndarray]
              ) -> dict[str, np.ndarray]:
    """Per protocol: out-of-fold predictions over its data (NaN on rows it does not test) from the planned fits."""
    out, full = {}, {}
    for proto in protocols:
        pred = np.full(len(proto.data), np.nan)
        for f in proto.folds:
            k = _fold_key(proto, f)
            if k not in full:
                full[k] = np.full(len(proto.data), np.nan)
                full[k][plan[k]["test"]] = shared[k]
            pred[f.test] = full[k][f.test]
        out[proto.name] = pred
    return out


# Scoring reads the same row selections and group labels for every method: computed once per protocol (data) and
# reused (a method's predictions only decide which of those rows are scored).
_SCORING_CACHE: dict[int, tuple] = {}


def _cached(obj, key, make):
    import weakref
    ent = _SCORING_CACHE.get(id(obj))
    if ent is None or ent[0]() is not obj:
        ent = (weakref.ref(obj), {})
        _SCORING_CACHE[id(obj)] = ent
    if key not in ent[1]:
        ent[1][key] = make()
    return ent[1][key]


def _ranking_keys(data: pd.DataFrame) -> np.ndarray:
    """`predictor.model.ranking_key` of every row of `data`, computed once per frame."""
    from predictor.model import ranking_key
    return _cached(data, "ranking_key", lambda: ranking_key(data))


def _table_rows(proto: P.Protocol, t: P.Table) -> tuple[np.ndarray, np.ndarray]:
    """(rows the table selects, group label of each selected row), computed once per protocol and table."""
    def make():
        base = np.asarray(t.select(proto.data), bool)
        return base, np.asarray(t.groups(proto.data.loc[base]))
    return _cached(proto, ("table", t.name, id(t)), make)


def fold_ids(proto: P.Protocol) -> np.ndarray:
    fid = np.full(len(proto.data), -1)
    for i, f in enumerate(proto.folds):
        fid[f.test] = i
    return fid


def cross_conformal(proto: P.Protocol, pred: np.ndarray, levels=(0.8, 0.9), regime: str = "similarity",
                    ) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Intervals for each tested row, calibrated on residuals of the other folds with the served recipe (Mondrian:
    regime × task type, each residual normalized by the difficulty scale of its predicted score). A protocol with a
    single fold is split into two seeded halves of its ranking groups."""
    from predictor.intervals import ConformalIntervals, interval_bounds

    data = proto.data
    fid = fold_ids(proto)
    unit = CALIBRATION_UNIT.get(proto.name)
    if unit is not None:
        names = [unit(f.name) for f in proto.folds]
        fid = np.where(fid >= 0, np.unique(names, return_inverse=True)[1][np.maximum(fid, 0)], -1)
    ok = ~np.isnan(pred)
    if len(np.unique(fid[ok])) == 1:
        codes, uniq = pd.factorize(_ranking_keys(data)[ok])
        half = np.random.default_rng(0).permutation(len(uniq)) % 2
        fid = fid.copy()
        fid[ok] = half[codes]
    resid = data["score"].to_numpy(float) - pred
    tt = data["task_type"].astype(str).to_numpy() if "task_type" in data.columns else np.full(len(data), "*")
    reg = np.full(len(data), regime, dtype=object)
    units = (fid.astype(str) if UNIT_OF_ROWS.get(proto.name) == "fold" else data["target"].astype(str).to_numpy())
    chance = _served_chance(proto, fid)
    out = {l: (np.full(len(data), np.nan), np.full(len(data), np.nan)) for l in levels}
    for i in np.unique(fid[ok]):
        cal = ok & (fid != i)
        te = ok & (fid == i)
        if not cal.any():
            continue
        ci = ConformalIntervals(levels=levels).fit(resid[cal], reg[cal], tt[cal], scores=pred[cal], units=units[cal])
        for l in levels:
            hw = ci.halfwidth(reg[te], tt[te], l, scores=pred[te])
            out[l][0][te], out[l][1][te] = interval_bounds(pred[te], hw, chance[te])
    return out


def _served_chance(proto: P.Protocol, fid: np.ndarray) -> np.ndarray:
    """The chance level the service floors each tested row's interval with: its task's, or, where the fold hides the
    task (leave-task-out: an unseen id), its task type's, as a task the registry does not know is served."""
    from predictor.model import chance_levels

    data = proto.data
    if "task" not in data.columns or "task_type" not in data.columns:
        return np.zeros(len(data))
    frame = data[["task", "task_type"]].astype(object).copy()
    for i, f in enumerate(proto.folds):
        if "task" in (f.test_overrides or {}):
            frame.loc[fid == i, "task"] = f.test_overrides["task"]
    return chance_levels(frame)


def best_source_sets(proto: P.Protocol, pred: np.ndarray, level: float = 0.9) -> dict[str, dict]:
    """A conformal best-source set per ranking group: every candidate whose predicted score is within q of the
    group's predicted best. Nonconformity of a group = predicted best − prediction of its truly best source (≥ 0);
    q is the served set's quantile of that score (`predictor.intervals.best_set_quantile`: `level` coverage with 90%
    confidence) over the groups of the *other* folds (all ranking tables of the protocol; a one-fold protocol is split
    into two halves of its groups), so a set holds the truly best source in ≥ `level` of held-out groups when groups
    are exchangeable, in 9 of 10 calibration draws. Returns per table: coverage, mean size, mean
    number of candidates."""
    from predictor.intervals import best_set_quantile

    data = proto.data
    fid = fold_ids(proto)
    y = data["score"].to_numpy(float)
    frames = []
    for t in proto.tables:
        if not t.ranking:
            continue
        sel = _table_rows(proto, t)[0] & ~np.isnan(pred)
        if sel.any():
            frames.append(pd.DataFrame({"table": t.name, "g": t.name + "\x00" + _ranking_keys(data)[sel],
                                        "fold": fid[sel], "y": y[sel], "p": pred[sel]}))
    if not frames:
        return {}
    d = pd.concat(frames, ignore_index=True)
    gy = d.groupby("g")["y"].transform("max")
    d["n"] = d.groupby("g")["y"].transform("size")
    d = d[d["n"] >= 2]
    best_pred = d[d["y"] >= gy[d.index]].groupby("g")["p"].max()
    g = d.groupby("g").agg(table=("table", "first"), fold=("fold", "first"), pmax=("p", "max"), n=("n", "first"))
    g["score"] = g["pmax"] - best_pred.reindex(g.index)
    folds = g["fold"].to_numpy()
    if len(np.unique(folds)) == 1:
        folds = np.random.default_rng(0).permutation(len(g)) % 2
    q = np.full(len(g), np.nan)
    sc = g["score"].to_numpy()
    for f in np.unique(folds):
        cal = sc[folds != f]
        if len(cal) == 0:
            continue
        q[folds == f] = best_set_quantile(cal, level)   # the served rule (predictor.intervals)
    g["q"] = q
    d = d.join(g["q"], on="g")
    d["in_set"] = d["p"] >= d["g"].map(g["pmax"]) - d["q"]
    size = d.groupby("g")["in_set"].sum()
    g["size"] = size.reindex(g.index)
    g["covered"] = (g["score"] <= g["q"]).astype(float)
    out = {}
    for t, part in g.groupby("table", sort=False):
        out[t] = {"bestset90_coverage": M.mean_with_ci(part["covered"].to_numpy()),
                  "bestset90_size": M.mean_with_ci(part["size"].to_numpy(dtype=float)),
                  "bestset90_candidates": float(part["n"].mean())}
    return out


def score_protocol(proto: P.Protocol, pred: np.ndarray, kind: str = "regression", intervals: bool = False,
                   n_boot: int = M.N_BOOT) -> dict:
    """Metrics per table from pooled out-of-fold predictions."""
    tables = {}
    sets = best_source_sets(proto, pred) if (intervals and kind == "regression") else {}
    regime = INTERVAL_REGIMES.get(proto.name, "similarity")
    ivals = cross_conformal(proto, pred, regime=regime) if (intervals and kind == "regression") else None
    for t in proto.tables:
        base, labels = _table_rows(proto, t)
        sel = base & ~np.isnan(pred)
        if not sel.any():
            continue
        regression = t.regression and kind == "regression"
        if not (t.ranking or regression):
            continue
        d = proto.data.loc[sel]
        g = labels[sel[base]]
        res = M.summarize(g, d["score"].to_numpy(float), pred[sel], ranking=t.ranking, regression=regression,
                          n_boot=n_boot)
        if ivals is not None:
            for l, (lo, hi) in ivals.items():
                if np.isnan(lo[sel]).all():
                    continue
                res[f"coverage{int(l * 100)}"] = M.coverage(g, d["score"].to_numpy(float), lo[sel], hi[sel],
                                                            n_boot=n_boot)
                res[f"halfwidth{int(l * 100)}"] = float(np.nanmean(hi[sel] - lo[sel]) / 2)
        res.update(sets.get(t.name, {}))
        tables[t.name] = res
    return tables


def evaluate_protocol(protocol, fit_predict: Callable, kind: str = "regression", obs: pd.DataFrame | None = None,
                      intervals: bool = False, log=None, **protocol_kw) -> dict:
    """Run one protocol (name or Protocol) with one fit_predict; returns {table: {metric: {value, lo, hi}}}."""
    proto = P.build(protocol, obs=obs, **protocol_kw) if isinstance(protocol, str) else protocol
    pred = run_folds([proto], fit_predict, log=log)[proto.name]
    return score_protocol(proto, pred, kind, intervals=intervals)


# ---------------------------------------------------------------------------------------------------------------
# whole run

@dataclass
class RunResult:
    protocols: dict = field(default_factory=dict)     # name -> {title, description, grouping, goals, peers, n_folds}
    results: dict = field(default_factory=dict)       # protocol -> method -> table -> metrics
    timings: dict = field(default_factory=dict)       # method -> seconds (its fits + scoring, summed over processes)
    timing_detail: dict = field(default_factory=dict)  # method -> protocol -> {fit_s, fits, score_s}
    jobs: int = 1                                     # worker processes the fits ran in
    methods: dict = field(default_factory=dict)       # method -> {kind, description}


def default_methods(include_model: bool = True, include_neural: bool = True) -> list[Method]:
    ms = []
    if include_model:
        try:
            import predictor.model  # noqa: F401
            ms.append(Method(OURS, xlt_model(), "regression", "predictor.model.TransferRegressor, default params",
                             applies_to=OBS_PROTOCOLS))   # LangRank's BiLSTM-era tables have no model/task to featurize
        except ImportError as e:   # the product model is not importable: report baselines only, and say so
            print(f"evaluate: product model unavailable ({e}); running baselines only", file=sys.stderr)
    if include_neural:
        from predictor.neural import EVAL_PARAMS, neural_fit_predict
        ms.append(Method(NEURAL, neural_fit_predict(), "regression",
                         "predictor.neural NeuralTransferRegressor, cheap settings "
                         + ", ".join(f"{k}={v}" for k, v in EVAL_PARAMS.items()), applies_to=OBS_PROTOCOLS))
    ms.append(Method(LANGRANK_OURS, relative_lambdarank, "ranking",
                     "LambdaRank on features relative to the target's other candidates (our ranking recipe)",
                     applies_to=("langrank",)))
    return ms + baseline_methods()


# Pool workers get the methods, the fit plans and the filled feature caches once, as the pool initializer's arguments
# (multiprocessing sends them down each worker's pipe: no file on disk to load), so nothing but a (method, batch,
# fold key) triple crosses the process boundary per fit. Spawned, not forked: a child forked after LightGBM or torch
# ran OpenMP in the parent hangs in its first parallel region (GNU libgomp is not fork-safe).
_POOL: dict = {}


def _pool_init(state: dict) -> None:
    from predictor import baselines as B
    state = dict(state)
    B.FEATURES, B.COMPONENTS = state.pop("features"), state.pop("components")
    _POOL.update(state)


def _pool_fit(job: tuple[int, int, str]):
    """One planned fit in a worker: (job, predictions or None, error text or None, seconds)."""
    mi, bi, k = job
    t0 = time.perf_counter()
    try:
        pred = fit_entry(_POOL["methods"][mi].fit_predict, _POOL["plans"][(mi, bi)][k])
        return job, pred, None, time.perf_counter() - t0
    except Exception as e:   # reported as that method's error on that data kind, like the sequential path
        return job, None, f"{type(e).__name__}: {e}"[:300], time.perf_counter() - t0


def _print(msg: str) -> None:
    print(msg, flush=True)


def default_jobs() -> int:
    """Worker processes for `run_all`: every core this process may use, at most 2 (the budget is 2 cores)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(2, n))


def _warm_caches(plans: dict, methods: list[Method]) -> None:
    """Fill the per-process feature caches before the pool forks, so both workers share one copy (copy-on-write).

    The caches are filled by replaying, in the sequential run's order (method by method, fit by fit), the cache
    calls each fit would make (`fit_predict.cache_use(train, test)`): a batch of rows is featurized together, and
    float32 features of a batch can differ in the last bit from those of another batch, so the same batches in the
    same order give every method exactly the features (and the numbers) of a sequential run."""
    from predictor import baselines as B
    caches = {"features": B.FEATURES, "components": B.COMPONENTS}
    keys: dict[tuple, np.ndarray] = {}      # (cache, data, overrides) -> row key of every data row
    covered: dict[tuple, np.ndarray] = {}   # (cache, data, overrides) -> rows already cached
    used: dict[int, set] = {}               # method -> caches its fits use

    def slot(cname, e, frame_is_test):
        ov = json.dumps(e["overrides"], sort_keys=True) if frame_is_test else "{}"
        k = (cname, id(e["data"]), ov)
        if k not in keys:
            data = e["data"].assign(**e["overrides"]) if frame_is_test and e["overrides"] else e["data"]
            keys[k] = caches[cname].row_keys(data).to_numpy()
            covered[k] = np.zeros(len(data), bool)
        return k

    for mi, m in enumerate(methods):
        use = getattr(m.fit_predict, "cache_use", None)
        if use is None:
            continue
        for (pmi, _), plan in plans.items():
            if pmi != mi:
                continue
            for e in plan.values():
                if "GENETIC" in e["data"].columns:     # LangRank's own tables carry their features
                    continue
                if mi in used and all(covered[slot(c, e, False)][e["train"]].all()
                                      and covered[slot(c, e, True)][e["test"]].all() for c in used[mi]):
                    continue
                train, test = e["data"].loc[e["train"]], _test_frame(e)
                for cname, frame in use(train, test):
                    used.setdefault(mi, set()).add(cname)
                    k = slot(cname, e, frame is test)
                    rows = frame.index.to_numpy()
                    todo = ~covered[k][rows]
                    if todo.any():
                        sub = frame.loc[todo] if not todo.all() else frame
                        caches[cname].get(sub, keys=pd.Series(keys[k][sub.index.to_numpy()], index=sub.index),
                                          fill_only=True)
                        covered[k][rows] = True


def run_all(obs: pd.DataFrame, methods: list[Method], names: list[str], n_groups: int | None = P.DEFAULT_GROUPS,
            log=None, on_method: Callable[[RunResult], None] | None = None,
            previous: RunResult | None = None, jobs: int | None = None) -> RunResult:
    """Every method on every protocol; `on_method` is called after each method (incremental reports);
    `previous` results are kept for methods not run now (so one method can be re-run and merged).

    `jobs` > 1 runs the fits in that many spawned worker processes (longest first: the product model, then the other
    learned methods) while this process scores each method as soon as its fits are in. Every fit is the same call
    as in the sequential path (same data, parameters and seeds), so the numbers do not depend on `jobs`."""
    jobs = default_jobs() if jobs is None else max(1, int(jobs))
    log = log or _print
    protos = [P.build(n, obs, n_groups=n_groups) for n in names]
    rr = RunResult(jobs=jobs)
    if previous is not None:
        for pname, per in previous.results.items():
            if pname in names:
                rr.results[pname] = {m: r for m, r in per.items() if m not in {x.name for x in methods}}
            else:   # a protocol not run now is kept whole (`xlt evaluate --protocol seen` used to drop the others)
                rr.results[pname] = per
                if pname in previous.protocols:
                    rr.protocols[pname] = previous.protocols[pname]
        for m, info in previous.methods.items():
            if m not in {x.name for x in methods}:
                rr.methods[m] = info
                rr.timings[m] = previous.timings.get(m, 0.0)
                if m in previous.timing_detail:
                    rr.timing_detail[m] = previous.timing_detail[m]
    for p in protos:
        rr.protocols[p.name] = {"title": p.title, "description": p.description, "grouping": p.grouping,
                                "goals": p.goals, "peers": p.peers, "n_folds": len(p.folds),
                                "n_test_rows": int(sum(f.test.sum() for f in p.folds))}
        rr.results.setdefault(p.name, {})
    batches: dict[int, list[P.Protocol]] = {}
    for p in protos:
        batches.setdefault(id(p.data), []).append(p)
    # the fits: per method and data kind, one per distinct training set of the protocols the method applies to
    work: dict[tuple[int, int], list[P.Protocol]] = {}
    plans: dict[tuple[int, int], dict] = {}
    plan_of: dict[tuple[str, ...], dict] = {}
    for mi, m in enumerate(methods):
        for bi, batch in enumerate(batches.values()):
            batch = [p for p in batch if m.applies_to is None or p.name in m.applies_to]
            if batch:
                work[(mi, bi)] = batch
                names_key = tuple(p.name for p in batch)
                if names_key not in plan_of:
                    plan_of[names_key] = plan_folds(batch)
                plans[(mi, bi)] = plan_of[names_key]
    pending = {mi: {wk for wk in work if wk[0] == mi} for mi in range(len(methods))}
    started = {mi: None for mi in range(len(methods))}
    fit_s: dict[tuple[int, int], dict[str, float]] = {wk: {} for wk in work}
    shared: dict[tuple[int, int], dict[str, np.ndarray]] = {wk: {} for wk in work}
    errors: dict[tuple[int, int], str] = {}
    logged = {OURS, NEURAL}

    def method_done(mi: int) -> None:
        m = methods[mi]
        detail = rr.timing_detail.setdefault(m.name, {})
        for wk in [w for w in work if w[0] == mi]:
            for name, secs in fit_s[wk].items():
                d = detail.setdefault(name.split("/")[0], {"fit_s": 0.0, "fits": 0, "score_s": 0.0})
                d["fit_s"] += secs
                d["fits"] += 1
        rr.timings[m.name] = round(sum(d["fit_s"] + d["score_s"] for d in detail.values()), 2)
        for d in detail.values():
            d["fit_s"], d["score_s"] = round(d["fit_s"], 2), round(d["score_s"], 2)
        rr.methods[m.name] = {"kind": m.kind, "description": m.description}
        for pname in rr.results:   # report order = method order, whatever order the methods finish in
            order = [x.name for x in methods]
            rr.results[pname] = dict(sorted(rr.results[pname].items(),
                                            key=lambda kv: order.index(kv[0]) if kv[0] in order else -1))
        wall = time.perf_counter() - started[mi] if started[mi] else 0.0
        log(f"{m.name}: done ({rr.timings[m.name]:.1f}s of fits and scoring; {wall:.0f}s since its first fit)")
        if on_method:
            on_method(rr)

    def batch_done(wk: tuple[int, int]) -> None:
        mi = wk[0]
        m, batch = methods[mi], work[wk]
        detail = rr.timing_detail.setdefault(m.name, {})
        if wk in errors:
            for p in batch:
                rr.results[p.name][m.name] = {"error": errors[wk]}
            log(f"  {m.name} failed on {[p.name for p in batch]}: {errors[wk]}")
        else:
            preds = _assemble(batch, plans[wk], shared[wk])
            for p in batch:
                t0 = time.perf_counter()
                rr.results[p.name][m.name] = score_protocol(p, preds[p.name], m.kind,
                                                            intervals=p.name in INTERVAL_REGIMES)
                d = detail.setdefault(p.name, {"fit_s": 0.0, "fits": 0, "score_s": 0.0})
                d["score_s"] += time.perf_counter() - t0
        shared[wk].clear()
        pending[mi].discard(wk)
        if not pending[mi]:
            method_done(mi)

    def take(job, pred, err, secs) -> None:
        mi, bi, k = job
        wk = (mi, bi)
        if started[mi] is None:
            started[mi] = time.perf_counter() - secs
        e = plans[wk][k]
        fit_s[wk][e["name"]] = secs
        if err is not None:
            errors.setdefault(wk, err)
        else:
            shared[wk][k] = pred
        if methods[mi].name in logged:
            log(f"    {methods[mi].name} fit {e['name']}: {int(e['train'].sum())} train, {int(e['test'].sum())} "
                f"test rows, {secs:.1f}s")
        if len(fit_s[wk]) == len(plans[wk]):
            batch_done(wk)

    for mi, m in enumerate(methods):
        if not any(w[0] == mi for w in work):
            log(f"{m.name}: applies to none of {names}")
            method_done(mi)
    # largest jobs first (the product model, then the other learned methods), each method's biggest training set first
    order = [(mi, bi, k) for (mi, bi), plan in plans.items()
             for k in sorted(plan, key=lambda k: -int(plan[k]["train"].sum()))]
    log(f"{len(methods)} methods × {len(protos)} protocols: {len(order)} fits on {jobs} process(es)")
    if jobs == 1 or len(order) <= 1:
        for job in order:
            take(*_pool_fit_local(methods, plans, job))
        return rr
    import multiprocessing as mp

    from predictor import baselines as B
    local = [m.name for m in methods if "<" in getattr(m.fit_predict, "__qualname__", "")]
    if local:  # a lambda or a closure as fit_predict cannot reach a worker process
        log(f"methods {local} cannot be sent to worker processes; running them here")
        for job in order:
            take(*_pool_fit_local(methods, plans, job))
        return rr
    t0 = time.perf_counter()
    _warm_caches(plans, methods)
    state = {"methods": methods, "plans": plans, "features": B.FEATURES, "components": B.COMPONENTS}
    log(f"feature caches filled for the workers in {time.perf_counter() - t0:.1f}s")
    env = {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY",)}
    # two workers side by side: an OpenMP thread waiting at a barrier sleeps instead of spinning on a shared core
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        with mp.get_context("spawn").Pool(jobs, initializer=_pool_init, initargs=(state,)) as pool:
            for k, v in env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            for res in pool.imap_unordered(_pool_fit, order, chunksize=1):
                take(*res)
    finally:
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return rr


def _pool_fit_local(methods, plans, job):
    _POOL.update(methods=methods, plans=plans)
    try:
        return _pool_fit(job)
    finally:
        _POOL.clear()


def rerender(out: Path = REPORTS, log=None) -> Path:
    """Recompute the headline and rewrite <out>/accuracy.md and accuracy.json from the stored results (no fitting)."""
    out = Path(out)
    js = json.loads((out / "accuracy.json").read_text())
    write_reports(load_previous(out / "accuracy.json"), out, js["elapsed_s"], js["observations_rows"], meta=js)
    (log or _print)(f"re-rendered {out / 'accuracy.md'} and accuracy.json (headline) from the stored results")
    _write_neural_page(out, log or _print)
    return out / "accuracy.md"


def rewrite_readme(out: Path = REPORTS, readme: Path | None = None, log=None) -> Path:
    """Rewrite the README's accuracy table from <out>/accuracy.json (no evaluation)."""
    out, readme = Path(out), Path(readme or README)
    write_readme(json.loads((out / "accuracy.json").read_text()), readme)
    (log or _print)(f"rewrote the accuracy table of {readme} from {out / 'accuracy.json'}")
    return readme


def check_options(protocols=(), groups: int | None = None, jobs: int | None = None) -> None:
    """Refuse what a run could only fail on later (an unknown protocol, a negative --groups, --jobs 0) up front,
    as an XltError (the CLI's one line on stderr and exit code 2)."""
    from features.errors import XltError

    bad = [p for p in protocols if p not in P.ALL_PROTOCOLS]
    if bad:
        raise XltError(f"unknown protocol {bad[0]!r}: choose from {', '.join(P.ALL_PROTOCOLS)}", field="protocol",
                       suggestions=difflib.get_close_matches(bad[0], P.ALL_PROTOCOLS, n=3))
    if groups is not None and groups < 0:
        raise XltError("--groups must be >= 0 (0 = exact leave-one-target-out)", field="groups")
    if jobs is not None and jobs < 1:
        raise XltError("--jobs must be >= 1", field="jobs")


def run_evaluation(protocols=(), *, groups: int = P.DEFAULT_GROUPS, include_model: bool = True,
                   include_neural: bool = True, methods=(), jobs: int | None = None, observations: Path | None = None,
                   out: Path = REPORTS, log=None) -> RunResult:
    """Evaluate and write <out>/accuracy.md and accuracy.json (rewritten after every method, so a long run shows
    progress). What `xlt evaluate` runs.

    `protocols`: names from P.ALL_PROTOCOLS (empty = all). `groups`: language groups per fold (0 = exact
    leave-one-target-out). `methods`: run only the methods whose name contains one of these texts
    (case-insensitive); the others' results are kept from the existing <out>/accuracy.json, as are other protocols'
    results when `protocols` names some."""
    protocols, methods, out, log = list(protocols or []), list(methods or []), Path(out), log or _print
    check_options(protocols, groups, jobs)
    names = protocols or list(P.ALL_PROTOCOLS)
    t0 = time.perf_counter()
    chosen = default_methods(include_model, include_neural)
    previous = None
    if methods:
        chosen = [m for m in chosen if any(s.lower() in m.name.lower() for s in methods)]
        if not chosen:
            from features.errors import XltError
            raise XltError(f"no method name contains {' or '.join(map(repr, methods))}", field="method",
                           suggestions=[m.name for m in default_methods(include_model, include_neural)])
        previous = load_previous(out / "accuracy.json")
    elif protocols:
        previous = load_previous(out / "accuracy.json")   # other protocols' results are kept
    obs = P.load_observations(observations)
    write = lambda r: write_reports(r, out, elapsed=time.perf_counter() - t0, n_obs=len(obs))  # noqa: E731
    rr = run_all(obs, chosen, names, n_groups=groups or None, log=log, on_method=write, previous=previous, jobs=jobs)
    write(rr)
    log(f"wrote {out / 'accuracy.md'} and accuracy.json in {time.perf_counter() - t0:.0f}s")
    _write_neural_page(out, log)
    return rr


def _write_neural_page(out: Path, log) -> None:
    """reports/neural.md follows every accuracy.json written (it compares the two models' results there)."""
    from predictor.neural.compare import write_report
    page = write_report(out / "accuracy.json", out / "neural.md")
    if page is not None:
        log(f"rewrote {page} from {out / 'accuracy.json'}")


def load_previous(path: Path) -> RunResult | None:
    """Results of an earlier run (to merge a partial re-run into); None when there is none."""
    if not Path(path).exists():
        return None
    js = json.loads(Path(path).read_text())
    return RunResult(protocols=js.get("protocols", {}), results=js.get("results", {}),
                     timings=js.get("timings_s", {}), methods=js.get("methods", {}),
                     timing_detail=js.get("timings_detail_s", {}), jobs=js.get("jobs", 1))




# ---------------------------------------------------------------------------------------------------------------
# reports

METRIC_LABELS = {"rmse": "RMSE", "mae": "MAE", "spearman": "Spearman", "ndcg3": "NDCG@3", "top1": "top-1",
                 "regret": "regret", "pl": "PL%", "coverage80": "cov80", "coverage90": "cov90",
                 "bestset90_coverage": "best-set cov", "bestset90_size": "best-set size"}
RELEVANCE_NOTE = (
    "NDCG@3 uses LangRank's relevance convention (Lin et al. 2019; the same code as the shared check "
    "`ndcg3_langrank`): inside each ranking group (one target of one results file) the true top-10 sources get "
    "relevance 10, 9, …, 1 and every other source 0; gain = 2^rel − 1; discount 1/log2(rank+1) over the predicted "
    "top 3; divided by the ideal DCG. Top-1 = the predicted best source is a truly best one; regret = best − chosen "
    "score (points, 0–100 scale); PL% = (best − chosen)/best × 100; Spearman per group, averaged. RMSE/MAE pool rows. "
    "Every interval is a 95% percentile bootstrap over ranking groups (1000 draws, fixed seed). Rule baselines and "
    "LambdaRank output orderings, not scores: they get no RMSE/MAE.")


def _fmt(m: dict | None, key: str) -> str:
    v = (m or {}).get(key)
    if not v or v.get("value") is None:
        return "—"
    digits = 3 if key in ("ndcg3", "top1", "spearman", "coverage80", "coverage90", "bestset90_coverage") else 2
    x = f"{v['value']:.{digits}f}"
    if v.get("lo") is not None:
        x += f" [{v['lo']:.{digits}f}, {v['hi']:.{digits}f}]"
    return x


def _val(m: dict | None, key: str):
    v = (m or {}).get(key)
    return None if not v else v.get("value")


def _check(op: str, measured, goal) -> str:
    if measured is None:
        return "n/a"
    ok = {"<": measured < goal, "<=": measured <= goal, ">": measured > goal, ">=": measured >= goal}[op]
    return "met" if ok else "not met"


def headline(rr: RunResult, ours: str = OURS) -> list[dict]:
    """Goal vs measured rows for one method (the product model by default), each with its regime."""
    rows = []
    res = rr.results

    def add(proto, table, metric, op, goal, measured, who=ours, note="", regime=None):
        rows.append({"regime": regime or REGIME_OF.get(proto, ""), "protocol": proto, "table": table,
                     "metric": metric, "goal": f"{op} {goal:g}", "measured": measured, "method": who,
                     "status": _check(op, measured, goal), "note": note})

    def mine(pname):
        r = res.get(pname, {}).get(ours)
        return r if r and "error" not in r else None

    if mine("seen") and LITMUS in res["seen"]:
        a, b = _val(mine("seen").get("all files"), "rmse"), _val(res["seen"][LITMUS].get("all files"), "rmse")
        am, bm = _val(mine("seen").get("all files"), "mae"), _val(res["seen"][LITMUS].get("all files"), "mae")
        ratio = a / b if (a is not None and b) else None
        add("seen", "all files", "RMSE / LITMUS-style RMSE", "<=", 0.70, ratio,
            note=f"RMSE {a:.2f} vs {b:.2f}; MAE {am:.2f} vs {bm:.2f}" if ratio is not None else "")
    if mine("xpos"):
        t = mine("xpos").get("udpos xlm-r-base", {})
        for metric, (op, goal) in rr.protocols["xpos"]["goals"]["*"].items():
            add("xpos", "udpos xlm-r-base", metric, op, goal, _val(t, metric))
    for pname in ("langrankplus", "langrankplus_strict"):
        if mine(pname):
            for table, g in rr.protocols[pname]["goals"].items():
                (op, goal), = g.values()
                eng = _val(res[pname].get("always English", {}).get(table), "pl")
                add(pname, table, "PL < LangRankPlus's best", op, goal, _val(mine(pname).get(table), "pl"),
                    note=f"our always-English PL {eng:.2f}" if eng is not None else "")
    if mine("sumeval") and LITMUS in res["sumeval"]:
        for table in mine("sumeval"):
            if not table.startswith("all files"):
                continue
            a = _val(mine("sumeval").get(table), "mae")
            b = _val(res["sumeval"][LITMUS].get(table), "mae")
            ratio = a / b if (a is not None and b) else None
            add("sumeval", table, "MAE / LITMUS-style MAE", "<=", 0.60, ratio,
                note=f"MAE {a:.2f} vs {b:.2f}" if ratio is not None else "")
    if mine("leave_task_out"):
        t = mine("leave_task_out")
        for metric, (op, goal) in rr.protocols["leave_task_out"]["goals"]["mean"].items():
            vals = [_val(v, metric) for k, v in t.items() if isinstance(v, dict) and _val(v, metric) is not None]
            add("leave_task_out", "mean over tasks", metric, op, goal, float(np.mean(vals)) if vals else None)
    if "langrank" in res:
        who = next((m for m in (LANGRANK_OURS, ours) if m in res["langrank"] and "error" not in res["langrank"][m]),
                   None)
        if who:
            for table, g in rr.protocols["langrank"]["goals"].items():
                (op, goal), = g.values()
                add("langrank", table, "NDCG@3 > LangRank published", op, goal,
                    _val(res["langrank"][who].get(table), "ndcg3"), who=who, note="LangRank published")
    if mine("unseen_dataset"):
        t = mine("unseen_dataset")
        below, pls, nds = 0, [], []
        for table in t:
            pl = _val(t[table], "pl")
            rules = {k: _val(res["unseen_dataset"].get(f"closest {k}", {}).get(table), "pl") for k in DISTANCE_KINDS}
            rules = {k: v for k, v in rules.items() if v is not None}
            if pl is None:
                continue
            pls.append(pl)
            nds.append(_val(t[table], "ndcg3"))
            if not rules:
                continue
            best = min(rules, key=rules.get)
            below += int(pl < rules[best])
            add("unseen_dataset", table, "PL < best single-distance rule", "<", rules[best], pl,
                note=f"best rule: closest {best}")
        goals = rr.protocols["unseen_dataset"]["goals"]["matrices"]
        n = len(pls)
        add("unseen_dataset", f"{n} matrices", "matrices with PL below the best distance rule",
            *goals["pl_below_best_distance"], below if n else None)
        add("unseen_dataset", f"{n} matrices", "mean PL", *goals["mean_pl"], float(np.mean(pls)) if pls else None)
        add("unseen_dataset", f"{n} matrices", "mean NDCG@3", *goals["mean_ndcg3"],
            float(np.mean([x for x in nds if x is not None])) if nds else None)
    if mine("unseen_family"):
        t = mine("unseen_family")
        for table in t:
            if not table.endswith("single-source"):
                continue
            pl = _val(t[table], "pl")
            rules = {r: _val(res["unseen_family"].get(r, {}).get(table), "pl") for r in SINGLE_RULES}
            rules = {r: v for r, v in rules.items() if v is not None}
            if not rules:
                continue
            best = min(rules, key=rules.get)
            comp = _val(res["unseen_family"].get(COMPOSITE, {}).get(table), "pl")
            add("unseen_family", table, "PL < every single rule", "<", rules[best], pl,
                note=f"best single rule: {best}" + (f"; composite {comp:.2f}" if comp is not None else ""))
    for pname, regime in INTERVAL_REGIMES.items():
        r = mine(pname)
        if not r or pname == "langrankplus":   # its coverage stays in the tables; the headline has xpos / SumEval
            continue
        for table, t in r.items():
            if not isinstance(t, dict) or "coverage80" not in t:
                continue
            if pname == "sumeval" and not table.startswith("all files"):
                continue
            if pname == "seen" and table != "all files":
                continue
            if pname == "unseen_family" and not table.endswith("all rows"):
                continue
            if pname in ("unseen_dataset", "leave_task_out"):
                continue   # pooled below
            for lvl in (80, 90):
                v = _val(t, f"coverage{lvl}")
                rows.append({"regime": f"coverage: {regime}", "protocol": pname, "table": table,
                             "metric": f"coverage{lvl}", "goal": f"{lvl}% ± 3", "measured": v, "method": ours,
                             "status": "n/a" if v is None else ("met" if abs(v * 100 - lvl) <= 3 else "not met"),
                             "note": f"mean half-width {t.get(f'halfwidth{lvl}', float('nan')):.1f} pts; "
                                     f"cross-conformal, served recipe ({RECIPE})"})
    for pname in ("xpos", "langrankplus", "unseen_dataset", "unseen_family"):
        r = mine(pname)
        if not r:
            continue
        per = [(t["bestset90_coverage"]["value"], t["bestset90_size"]["value"], t["bestset90_candidates"],
                t.get("n_rank_groups", 0)) for t in r.values() if isinstance(t, dict) and "bestset90_coverage" in t]
        per = [x for x in per if x[0] is not None and x[3]]
        if not per:
            continue
        n = sum(x[3] for x in per)
        cov = sum(x[0] * x[3] for x in per) / n
        size = sum(x[1] * x[3] for x in per) / n
        cand = sum(x[2] * x[3] for x in per) / n
        rows.append({"regime": "90% best-source set", "protocol": pname, "table": f"{n} ranking groups",
                     "metric": "holds the truly best source", "goal": ">= 0.9", "measured": cov, "method": ours,
                     "status": _check(">=", cov, 0.9),
                     "note": f"mean size {size:.1f} of {cand:.0f} candidates (cross-conformal over folds)"})
    for pname, table, how in (("unseen_dataset", "all matrices", "calibrated on the other matrices"),
                              ("leave_task_out", "all tasks", "each task calibrated on the other tasks")):
        if not mine(pname):
            continue
        for lvl in (80, 90):
            per = [(t.get(f"coverage{lvl}", {}).get("value"), t.get("n_rows", 0), t.get(f"halfwidth{lvl}"))
                   for t in mine(pname).values() if isinstance(t, dict)]
            per = [x for x in per if x[0] is not None]
            if not per:
                continue
            n = sum(x[1] for x in per)
            v = sum(x[0] * x[1] for x in per) / n
            hw = sum(x[2] * x[1] for x in per) / n
            rows.append({"regime": f"coverage: {INTERVAL_REGIMES[pname]}", "protocol": pname, "table": table,
                         "metric": f"coverage{lvl}", "goal": f"{lvl}% ± 3", "measured": v, "method": ours,
                         "status": "met" if abs(v * 100 - lvl) <= 3 else "not met",
                         "note": f"mean half-width {hw:.1f} pts; {how} ({RECIPE})"})
    return rows


REGIME_OF = {"seen": "seen languages, new configurations", "xpos": "unseen languages",
             "langrankplus": "unseen languages", "langrankplus_strict": "unseen languages",
             "sumeval": "unseen languages", "leave_task_out": "unseen languages (and task)",
             "langrank": "unseen languages (LangRank's benchmark)", "unseen_dataset": "unseen dataset",
             "unseen_family": "unseen model family"}


# ---------------------------------------------------------------------------------------------------------------
# README table (generated from reports/accuracy.json)

README_START, README_END = "<!-- accuracy:start -->", "<!-- accuracy:end -->"


def _num(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return f"{int(v)}"
    return f"{v:.3f}" if abs(v) < 2 else f"{v:.2f}"


def readme_table(acc: dict) -> str:
    """The README's accuracy table: goal vs measured per regime and protocol, from accuracy.json's headline.
    Per-matrix rows of one protocol and metric are folded into one line (values joined, 'k of n' met)."""
    head = acc["headline"]
    folded: dict[tuple, list[dict]] = {}
    for h in head:
        if h["protocol"] == "unseen_dataset" and "best single-distance" in h["metric"]:
            key = (h["regime"], h["protocol"], h["metric"], "per matrix")
        elif h["protocol"] in ("langrankplus", "langrankplus_strict", "langrank"):
            key = (h["regime"], h["protocol"], h["metric"], "per matrix")
        else:
            key = (h["regime"], h["protocol"], h["metric"], h["table"])
        folded.setdefault(key, []).append(h)
    L = ["| regime | protocol | measure | goal | measured (xlt) | met? |", "|---|---|---|---|---|---|"]
    for (regime, proto, metric, table), hs in folded.items():
        if len(hs) == 1:
            h = hs[0]
            note = f" ({h['note']})" if h["note"] else ""
            L.append(f"| {regime} | {proto} · {table} | {metric} | {h['goal']} | {_num(h['measured'])}{note} | "
                     f"{'yes' if h['status'] == 'met' else 'no' if h['status'] == 'not met' else 'n/a'} |")
        else:
            goals = " · ".join(f"{h['table']} {h['goal']}" for h in hs)
            vals = " · ".join(_num(h["measured"]) for h in hs)
            met = sum(h["status"] == "met" for h in hs)
            who = {h["method"] for h in hs} - {OURS}
            L.append(f"| {regime} | {proto} | {metric}{' (' + ', '.join(who) + ')' if who else ''} | {goals} | "
                     f"{vals} | {met} of {len(hs)} |")
    L += ["", f"Generated from `reports/accuracy.json` ({acc.get('generated', '?')}, code {acc.get('code_version', '?')}; "
              f"`xlt evaluate --all` took {acc.get('elapsed_s', 0) / 60:.1f} min wall"
              f"{'' if not acc.get('load') else ', load average ' + acc['load'] + ' at the end'}) "
              "by `python -m predictor.evaluate --readme`; every baseline, interval and table is in "
              "`reports/accuracy.md`."]
    return "\n".join(L)


def write_readme(acc: dict, path: Path = README) -> None:
    """Replace the text between the accuracy markers of README.md (added under '## Accuracy' when missing)."""
    text = Path(path).read_text(encoding="utf-8")
    block = f"{README_START}\n{readme_table(acc)}\n{README_END}"
    if README_START in text and README_END in text:
        a = text.index(README_START)
        b = text.index(README_END) + len(README_END)
        text = text[:a] + block + text[b:]
    elif "## Accuracy\n" in text:
        a = text.index("## Accuracy\n") + len("## Accuracy\n")
        text = text[:a] + "\n" + block + "\n" + text[a:]
    else:
        text = text.rstrip("\n") + "\n\n## Accuracy\n\n" + block + "\n"
    _atomic_write(Path(path), text)


def write_reports(rr: RunResult, out: Path, elapsed: float, n_obs: int, meta: dict | None = None) -> None:
    """accuracy.json + accuracy.md; `meta` (generated, cpu_s, load) keeps a re-rendered run's own timing facts."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    head = headline(rr)
    meta = meta or {}
    payload = {"generated": meta.get("generated") or time.strftime("%Y-%m-%d %H:%M:%S"),
               "elapsed_s": round(elapsed, 1), "cpu_s": meta.get("cpu_s") or round(_cpu_s(), 1),
               "load": meta.get("load") or _load(), "code_version": meta.get("code_version") or CODE_VERSION,
               "observations_rows": n_obs, "relevance_convention": RELEVANCE_NOTE, "headline": head,
               "jobs": meta.get("jobs") or rr.jobs, "protocols": rr.protocols, "methods": rr.methods,
               "timings_s": rr.timings, "timings_detail_s": rr.timing_detail, "results": rr.results}
    _atomic_write(out / "accuracy.json", json.dumps(payload, indent=1, default=_json_default))
    _atomic_write(out / "accuracy.md", render_markdown(rr, head, elapsed, n_obs, payload["cpu_s"], payload["load"]))


def _git_head() -> str:
    """The commit the code was loaded from (+ '-dirty' when the tree differs): what a report measured."""
    import subprocess
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "predictor", "features"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return ""


CODE_VERSION = _git_head()   # taken when the module is imported, i.e. when the evaluated code was loaded


def _cpu_s() -> float:
    """CPU seconds of this process and of its finished worker processes (user + system)."""
    import resource
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


def _load() -> str:
    """The 1/5/15-minute load averages when the report was written (the machine is shared)."""
    try:
        import os
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return ""


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, tuple):
        return list(o)
    return str(o)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def render_markdown(rr: RunResult, head: list[dict], elapsed: float, n_obs: int, cpu_s: float | None = None,
                    load: str | None = None) -> str:
    cpu_s = _cpu_s() if cpu_s is None else cpu_s
    L = ["# xlt accuracy report", "",
         f"Generated by `xlt evaluate --all` in {elapsed / 60:.1f} min wall, {cpu_s / 60:.1f} min CPU "
         f"of this process{f' and its {rr.jobs} worker processes' if rr.jobs > 1 else ''} (load average "
         f"{load or _load()} at the end; the machine is shared), on {n_obs:,} trainable "
         "observation rows. Regimes: seen languages with new configurations (`seen`), unseen languages (grouped "
         "leave-targets-out protocols), unseen dataset, unseen model family (see each section for the exact rule).",
         "", "## Headline: goal vs measured", "",
         "| regime | protocol | table | metric | goal | measured | status | method | note |",
         "|---|---|---|---|---|---|---|---|---|"]
    for h in head:
        L.append(f"| {h.get('regime', '')} | {h['protocol']} | {h['table']} | {h['metric']} | {h['goal']} | "
                 f"{_num(h['measured'])} | {h['status']} | {h['method']} | {h['note']} |")
    L += ["", "## Metrics and conventions", "", RELEVANCE_NOTE, ""]
    for pname, pinfo in rr.protocols.items():
        L += [f"## {pinfo['title']} (`{pname}`)", "", pinfo["description"], "",
              f"Folds: {pinfo['n_folds']} ({pinfo['grouping']}); {pinfo['n_test_rows']:,} test rows.", ""]
        res = rr.results.get(pname, {})
        tables = []
        for mres in res.values():
            for t in mres:
                if t != "error" and t not in tables:
                    tables.append(t)
        for t in tables:
            metrics = [k for k in ("rmse", "mae", "spearman", "ndcg3", "top1", "regret", "pl", "coverage80",
                                   "coverage90", "bestset90_coverage", "bestset90_size")
                       if any(k in (r.get(t) or {}) for r in res.values())]
            n = next((r[t].get("n_rank_groups", r[t].get("n_groups")) for r in res.values() if t in r), None)
            L += [f"### {t}" + (f" ({n} groups)" if n else ""), "",
                  "| method | " + " | ".join(METRIC_LABELS[k] for k in metrics) + " |",
                  "|---|" + "---|" * len(metrics)]
            for mname, r in res.items():
                if "error" in r:
                    continue
                if t in r:
                    L.append(f"| {mname} | " + " | ".join(_fmt(r[t], k) for k in metrics) + " |")
            for label, vals in (pinfo.get("peers") or {}).get(t, {}).items():
                L.append(f"| *{label}* | " + " | ".join(
                    (f"{vals[k]:.3f}" if k in ("ndcg3",) else f"{vals[k]:.2f}") if k in vals else "" for k in metrics)
                    + " |")
            L.append("")
        errs = {m: r["error"] for m, r in res.items() if "error" in r}
        if errs:
            L += ["Not applicable / failed: " + "; ".join(f"{m}: {e}" for m, e in errs.items()), ""]
    L += ["## Methods", "", "| method | kind | description | time (s, all protocols) |", "|---|---|---|---|"]
    for m, info in rr.methods.items():
        L.append(f"| {m} | {info['kind']} | {info['description']} | {rr.timings.get(m, 0):.0f} |")
    if rr.timing_detail:
        pnames = list(rr.protocols)
        L += ["", f"Time per method and protocol (seconds of fitting + scoring, measured inside the process that did "
                  f"it; the fits ran in {rr.jobs} worker process(es), so they add up to more than the wall time). A fit "
                  "shared by protocols with the same training set counts under the first of them.", "",
              "| method | " + " | ".join(f"`{p}`" for p in pnames) + " | total |", "|---|" + "---|" * (len(pnames) + 1)]
        for m, per in rr.timing_detail.items():
            cells = []
            for p in pnames:
                d = per.get(p)
                cells.append("" if not d else f"{d['fit_s']:.0f} + {d['score_s']:.0f}")
            L.append(f"| {m} | " + " | ".join(cells) + f" | {rr.timings.get(m, 0):.0f} |")
    L += ["", "Reproduce: `xlt evaluate --all` (or `python -m predictor.evaluate --all`).", ""]
    return "\n".join(L)


if __name__ == "__main__":  # `python -m predictor.evaluate --all` = `xlt evaluate --all` (the same typer command)
    from api.cli import run_command
    run_command("evaluate", prog_name="python -m predictor.evaluate")
