"""`xlt evaluate`: run every protocol for the product model and every baseline; write reports/accuracy.{json,md}.

From Python, for experiments:
    from predictor.evaluate import evaluate_protocol
    res = evaluate_protocol("xpos", my_fit_predict)          # or a Protocol object; returns tables of metrics
Fits are shared: folds with the same training mask (e.g. the strict language-group folds used by xpos, the strict
LangRankPlus variant and SumEval) are fitted once per method with the union of their test rows.

Interval coverage (protocol 6) is cross-conformal: for the rows of one held-out language group, the conformal
quantiles (per task type, as `predictor.intervals.ConformalIntervals` does for the shipped model) are computed from
the out-of-fold residuals of all *other* groups, so the calibration never saw the languages it is judged on.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from predictor import metrics as M
from predictor import protocols as P
from predictor.baselines import Method, baseline_methods, relative_lambdarank, xlt_model

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "reports"
OURS = "xlt (LightGBM regressor)"
LANGRANK_OURS = "xlt ranker (relative LambdaRank)"
OBS_PROTOCOLS = ("xpos", "langrankplus", "langrankplus_strict", "sumeval", "leave_task_out")


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


def run_folds(protocols: list[P.Protocol], fit_predict: Callable, log=None) -> dict[str, np.ndarray]:
    """Out-of-fold predictions for each protocol (NaN on rows it does not test), one fit per distinct training set."""
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
    shared: dict[str, pd.Series] = {}
    for i, (k, e) in enumerate(plan.items()):
        t0 = time.perf_counter()
        data = e["data"]
        test = data.loc[e["test"]].copy()
        for c, v in e["overrides"].items():
            test[c] = v
        pred = _apply(fit_predict, data.loc[e["train"]], test)
        shared[k] = pd.Series(pred, index=test.index)
        if log:
            log(f"    fit {i + 1}/{len(plan)} {e['name']}: {int(e['train'].sum())} train, {len(test)} test rows, "
                f"{time.perf_counter() - t0:.1f}s")
    out = {}
    for proto in protocols:
        pred = np.full(len(proto.data), np.nan)
        for f in proto.folds:
            s = shared[_fold_key(proto, f)]
            idx = np.flatnonzero(f.test)
            pred[idx] = s.loc[idx].to_numpy()
        out[proto.name] = pred
    return out


def _groups(data: pd.DataFrame, cols) -> np.ndarray:
    key = data[cols[0]].astype(str)
    for c in cols[1:]:
        key = key + "|" + data[c].astype(str)
    return key.to_numpy()


def fold_ids(proto: P.Protocol) -> np.ndarray:
    fid = np.full(len(proto.data), -1)
    for i, f in enumerate(proto.folds):
        fid[f.test] = i
    return fid


def cross_conformal(proto: P.Protocol, pred: np.ndarray, levels=(0.8, 0.9)) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Intervals for each tested row, calibrated on residuals of the other folds (per task type, global fallback)."""
    from predictor.intervals import ConformalIntervals

    data = proto.data
    fid = fold_ids(proto)
    ok = ~np.isnan(pred)
    resid = data["score"].to_numpy(float) - pred
    tt = data["task_type"].astype(str).to_numpy() if "task_type" in data.columns else np.full(len(data), "*")
    out = {l: (np.full(len(data), np.nan), np.full(len(data), np.nan)) for l in levels}
    for i in np.unique(fid[ok]):
        cal = ok & (fid != i)
        te = ok & (fid == i)
        ci = ConformalIntervals(levels=levels).fit(resid[cal], tt[cal])
        for l in levels:
            hw = ci.halfwidth(tt[te], l)
            out[l][0][te] = pred[te] - hw
            out[l][1][te] = pred[te] + hw
    return out


def score_protocol(proto: P.Protocol, pred: np.ndarray, kind: str = "regression", intervals: bool = False,
                   n_boot: int = M.N_BOOT) -> dict:
    """Metrics per table from pooled out-of-fold predictions."""
    tables = {}
    ivals = cross_conformal(proto, pred) if (intervals and kind == "regression") else None
    for t in proto.tables:
        sel = np.asarray(t.select(proto.data), bool) & ~np.isnan(pred)
        if not sel.any():
            continue
        regression = t.regression and kind == "regression"
        if not (t.ranking or regression):
            continue
        d = proto.data.loc[sel]
        g = _groups(d, list(t.group_cols))
        res = M.summarize(g, d["score"].to_numpy(float), pred[sel], ranking=t.ranking, regression=regression,
                          n_boot=n_boot)
        if ivals is not None:
            for l, (lo, hi) in ivals.items():
                res[f"coverage{int(l * 100)}"] = M.coverage(g, d["score"].to_numpy(float), lo[sel], hi[sel],
                                                            n_boot=n_boot)
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
    timings: dict = field(default_factory=dict)       # method -> seconds
    methods: dict = field(default_factory=dict)       # method -> {kind, description}


def default_methods(include_model: bool = True) -> list[Method]:
    ms = []
    if include_model:
        try:
            import predictor.model  # noqa: F401
            ms.append(Method(OURS, xlt_model(), "regression", "predictor.model.TransferRegressor, default params",
                             applies_to=OBS_PROTOCOLS))   # LangRank's BiLSTM-era tables have no model/task to featurize
        except ImportError as e:   # the product model is not importable: report baselines only, and say so
            print(f"evaluate: product model unavailable ({e}); running baselines only", file=sys.stderr)
    ms.append(Method(LANGRANK_OURS, relative_lambdarank, "ranking",
                     "LambdaRank on features relative to the target's other candidates (our ranking recipe)",
                     applies_to=("langrank",)))
    return ms + baseline_methods()


def run_all(obs: pd.DataFrame, methods: list[Method], names: list[str], n_groups: int | None = P.DEFAULT_GROUPS,
            log=print, on_method: Callable[[RunResult], None] | None = None,
            previous: RunResult | None = None) -> RunResult:
    """Every method on every protocol; `on_method` is called after each method (incremental reports);
    `previous` results are kept for methods not run now (so one method can be re-run and merged)."""
    protos = []
    for n in names:
        if n == "langrank":
            protos.append(P.langrank_benchmark())
        elif n == "leave_task_out":
            protos.append(P.leave_task_out(obs))
        else:
            protos.append(P.build(n, obs, n_groups=n_groups))
    rr = RunResult()
    if previous is not None:
        for pname, per in previous.results.items():
            if pname in names:
                rr.results[pname] = {m: r for m, r in per.items() if m not in {x.name for x in methods}}
        for m, info in previous.methods.items():
            if m not in {x.name for x in methods}:
                rr.methods[m] = info
                rr.timings[m] = previous.timings.get(m, 0.0)
    for p in protos:
        rr.protocols[p.name] = {"title": p.title, "description": p.description, "grouping": p.grouping,
                                "goals": p.goals, "peers": p.peers, "n_folds": len(p.folds),
                                "n_test_rows": int(sum(f.test.sum() for f in p.folds))}
        rr.results.setdefault(p.name, {})
    batches: dict[int, list[P.Protocol]] = {}
    for p in protos:
        batches.setdefault(id(p.data), []).append(p)
    for m in methods:
        t0 = time.perf_counter()
        log(f"{m.name}: {len(protos)} protocols")
        for batch in batches.values():
            batch = [p for p in batch if m.applies_to is None or p.name in m.applies_to]
            if not batch:
                continue
            try:
                preds = run_folds(batch, m.fit_predict, log=log if m.name == OURS else None)
            except Exception as e:   # a method that cannot run on a data kind is reported as such, not hidden
                for p in batch:
                    rr.results[p.name][m.name] = {"error": f"{type(e).__name__}: {e}"[:300]}
                log(f"  {m.name} failed on {[p.name for p in batch]}: {type(e).__name__}: {e}")
                continue
            for p in batch:
                rr.results[p.name][m.name] = score_protocol(p, preds[p.name], m.kind,
                                                            intervals=p.name in ("xpos", "sumeval"))
        rr.timings[m.name] = time.perf_counter() - t0
        rr.methods[m.name] = {"kind": m.kind, "description": m.description}
        log(f"  done in {rr.timings[m.name]:.1f}s")
        if on_method:
            on_method(rr)
    return rr


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="xlt evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--all", action="store_true", help="run every protocol (default when none is named)")
    ap.add_argument("--protocol", action="append", default=[],
                    help="xpos, langrankplus, langrankplus_strict, sumeval, leave_task_out, langrank (repeatable)")
    ap.add_argument("--groups", type=int, default=P.DEFAULT_GROUPS,
                    help="language groups per fold (0 = exact leave-one-target-out)")
    ap.add_argument("--no-model", action="store_true", help="baselines only")
    ap.add_argument("--method", action="append", default=[],
                    help="run only methods whose name contains this text (repeatable); others are kept from the "
                         "existing accuracy.json")
    ap.add_argument("--observations", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=REPORTS)
    args = ap.parse_args(argv)
    names = args.protocol or ["xpos", "langrankplus", "langrankplus_strict", "sumeval", "leave_task_out", "langrank"]
    t0 = time.perf_counter()
    obs = P.load_observations(args.observations)
    methods = default_methods(not args.no_model)
    previous = None
    if args.method:
        methods = [m for m in methods if any(s.lower() in m.name.lower() for s in args.method)]
        previous = load_previous(args.out / "accuracy.json")
    write = lambda r: write_reports(r, args.out, elapsed=time.perf_counter() - t0, n_obs=len(obs))  # noqa: E731
    rr = run_all(obs, methods, names, n_groups=args.groups or None, on_method=write, previous=previous)
    write(rr)
    print(f"wrote {args.out / 'accuracy.md'} and accuracy.json in {time.perf_counter() - t0:.0f}s")
    return 0


def load_previous(path: Path) -> RunResult | None:
    """Results of an earlier run (to merge a partial re-run into); None when there is none."""
    if not Path(path).exists():
        return None
    js = json.loads(Path(path).read_text())
    return RunResult(protocols=js.get("protocols", {}), results=js.get("results", {}),
                     timings=js.get("timings_s", {}), methods=js.get("methods", {}))




# ---------------------------------------------------------------------------------------------------------------
# reports

METRIC_LABELS = {"rmse": "RMSE", "mae": "MAE", "spearman": "Spearman", "ndcg3": "NDCG@3", "top1": "top-1",
                 "regret": "regret", "pl": "PL%", "coverage80": "cov80", "coverage90": "cov90"}
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
    digits = 3 if key in ("ndcg3", "top1", "spearman", "coverage80", "coverage90") else 2
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
    """Goal vs measured rows for the product model (and the best method where ours does not apply)."""
    rows = []
    res = rr.results

    def add(proto, table, metric, op, goal, measured, who=ours, note=""):
        rows.append({"protocol": proto, "table": table, "metric": metric, "goal": f"{op} {goal:g}",
                     "measured": measured, "method": who, "status": _check(op, measured, goal), "note": note})

    if "xpos" in res and ours in res["xpos"]:
        t = res["xpos"][ours].get("udpos xlm-r-base", {})
        for metric, (op, goal) in rr.protocols["xpos"]["goals"]["*"].items():
            add("xpos", "udpos xlm-r-base", metric, op, goal, _val(t, metric))
    for pname in ("langrankplus", "langrankplus_strict"):
        if pname in res and ours in res[pname]:
            for table, g in rr.protocols[pname]["goals"].items():
                (op, goal), = g.values()
                eng = _val(res[pname].get("always English", {}).get(table), "pl")
                add(pname, table, "pl", op, goal, _val(res[pname][ours].get(table), "pl"),
                    note=f"our always-English PL {eng:.2f}" if eng is not None else "")
    if "sumeval" in res and ours in res["sumeval"] and "LITMUS regressor" in res["sumeval"]:
        for table in res["sumeval"][ours]:
            if not table.startswith("all files"):
                continue
            a = _val(res["sumeval"][ours].get(table), "mae")
            b = _val(res["sumeval"]["LITMUS regressor"].get(table), "mae")
            ratio = a / b if (a is not None and b) else None
            add("sumeval", table, "MAE ours / MAE LITMUS-style", "<=", 0.60, ratio,
                note=f"MAE {a:.2f} vs {b:.2f}" if ratio is not None else "")
    if "leave_task_out" in res and ours in res["leave_task_out"]:
        t = res["leave_task_out"][ours]
        for metric, (op, goal) in rr.protocols["leave_task_out"]["goals"]["mean"].items():
            vals = [_val(v, metric) for k, v in t.items() if isinstance(v, dict) and _val(v, metric) is not None]
            add("leave_task_out", "mean over tasks", metric, op, goal, float(np.mean(vals)) if vals else None)
    if "langrank" in res:
        who = next((m for m in (LANGRANK_OURS, ours) if m in res["langrank"] and "error" not in res["langrank"][m]),
                   None)
        if who:
            for table, g in rr.protocols["langrank"]["goals"].items():
                (op, goal), = g.values()
                add("langrank", table, "ndcg3", op, goal, _val(res["langrank"][who].get(table), "ndcg3"), who=who,
                    note="LangRank published")
    for pname in ("xpos", "sumeval"):
        if pname in res and ours in res[pname]:
            for table, t in res[pname][ours].items():
                if not isinstance(t, dict) or "coverage80" not in t:
                    continue
                if pname == "sumeval" and not table.startswith("all files"):
                    continue
                for lvl in (80, 90):
                    v = _val(t, f"coverage{lvl}")
                    rows.append({"protocol": f"coverage ({pname})", "table": table, "metric": f"coverage{lvl}",
                                 "goal": f"{lvl}% ± 3", "measured": v, "method": ours,
                                 "status": "n/a" if v is None else ("met" if abs(v * 100 - lvl) <= 3 else "not met"),
                                 "note": "cross-conformal over language groups"})
    return rows




def write_reports(rr: RunResult, out: Path, elapsed: float, n_obs: int) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    head = headline(rr)
    payload = {"generated": time.strftime("%Y-%m-%d %H:%M:%S"), "elapsed_s": round(elapsed, 1),
               "cpu_s": round(time.process_time(), 1),
               "observations_rows": n_obs, "relevance_convention": RELEVANCE_NOTE, "headline": head,
               "protocols": rr.protocols, "methods": rr.methods, "timings_s": rr.timings, "results": rr.results}
    _atomic_write(out / "accuracy.json", json.dumps(payload, indent=1, default=_json_default))
    _atomic_write(out / "accuracy.md", render_markdown(rr, head, elapsed, n_obs))


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


def render_markdown(rr: RunResult, head: list[dict], elapsed: float, n_obs: int) -> str:
    L = ["# xlt accuracy report", "",
         f"Generated by `xlt evaluate --all` in {elapsed / 60:.1f} min wall, {time.process_time() / 60:.1f} min CPU "
         f"of this process, on {n_obs:,} trainable observation rows. "
         "Every protocol holds out whole target languages (see each section for the exact rule).", "",
         "## Headline: goal vs measured", "",
         "| protocol | table | metric | goal | measured | status | method | note |", "|---|---|---|---|---|---|---|---|"]
    for h in head:
        m = h["measured"]
        ms = "—" if m is None else (f"{m:.3f}" if abs(m) < 2 else f"{m:.2f}")
        L.append(f"| {h['protocol']} | {h['table']} | {h['metric']} | {h['goal']} | {ms} | {h['status']} | "
                 f"{h['method']} | {h['note']} |")
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
                                   "coverage90") if any(k in (r.get(t) or {}) for r in res.values())]
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
    L += ["", "Reproduce: `xlt evaluate --all` (or `python -m predictor.evaluate --all`).", ""]
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
