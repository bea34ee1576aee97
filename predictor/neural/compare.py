"""The neural model next to the LightGBM model, from `xlt evaluate`'s results → reports/neural.md.

`xlt evaluate --all` runs the neural model (cheap settings, `predictor.neural.EVAL_PARAMS`) on every protocol as one
more method; this module only reads reports/accuracy.json and writes the side-by-side report: the issue's goals for
both models, every protocol table for both, and a verdict (the neural model would be served only where it wins).
`--monotonicity` also fits the neural model once on all rows and sweeps k and source size (its monotonicity is
trained, not guaranteed).

    python -m predictor.neural.compare [--accuracy reports/accuracy.json] [--out reports/neural.md] [--monotonicity]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "reports"
REPORT_METRICS = ("rmse", "mae", "spearman", "ndcg3", "top1", "regret", "pl")
_LABELS = {"rmse": "RMSE", "mae": "MAE", "spearman": "Spearman", "ndcg3": "NDCG@3", "top1": "top-1",
           "regret": "regret", "pl": "PL%"}
_BETTER_HIGH = {"spearman", "ndcg3", "top1"}
EARLIER = "<!-- earlier measurements -->"


def monotonicity_report(model, obs: pd.DataFrame, n_queries: int = 300, seed: int = 0) -> dict:
    """How often predictions rise with k (target examples) and with source size, on real single-source queries.

    For sampled zero-shot single-source observation rows, the mix is rewritten to `src:n;tgt:k` over a grid."""
    from predictor.protocols import single_source_mask

    base = obs.loc[single_source_mask(obs)].sample(n=n_queries, random_state=seed).reset_index(drop=True)
    src = base["train_config"].str.split(":").str[0]
    n_src = base["train_config"].str.split(":").str[1].astype(int)
    out = {}
    for label, grid, make in (
            ("k", [0, 10, 50, 100, 500, 1000, 5000, 10000],
             lambda g: src + ":" + n_src.astype(str) + ";" + base["target"] + ":" + str(g)),
            ("source_size", [100, 1000, 5000, 10000, 50000, 100000],
             lambda g: src + ":" + str(g))):
        curves = []
        for g in grid:
            q = base.copy()
            q["train_config"] = make(g) if g else src + ":" + n_src.astype(str)
            curves.append(model.predict(q))
        c = np.stack(curves, axis=1)
        steps = np.diff(c, axis=1)
        out[label] = {"grid": grid, "share_curves_monotone": float((steps >= -1e-9).all(axis=1).mean()),
                      "share_curves_monotone_within_0.5": float((steps >= -0.5).all(axis=1).mean()),
                      "worst_drop": float(-steps.min()), "mean_gain_first_to_last": float((c[:, -1] - c[:, 0]).mean())}
    return out


def _cell(v: dict | None, key: str, best: bool) -> str:
    x = (v or {}).get(key)
    if not x or x.get("value") is None:
        return "—"
    d = 3 if key in _BETTER_HIGH else 2
    s = f"{x['value']:.{d}f}"
    return f"**{s}**" if best else s


def render(acc: dict, methods: tuple[str, str], mono: dict | None = None) -> str:
    """Markdown: headline goals for both methods, then every protocol table for both (best value in bold)."""
    from predictor.evaluate import RunResult, _num, headline

    rr = RunResult(protocols=acc["protocols"], results=acc["results"], timings=acc.get("timings_s", {}),
                   methods=acc.get("methods", {}))
    heads = {m: {(h["protocol"], h["table"], h["metric"]): h for h in headline(rr, ours=m)} for m in methods}
    keys = list(dict.fromkeys(k for m in methods for k in heads[m]))
    short = [m.split(" (")[0] for m in methods]
    L = ["# Neural multi-task model vs the LightGBM model", "",
         f"From `reports/accuracy.json` ({acc.get('generated', '?')}): `xlt evaluate --all` runs both on every "
         "protocol (the neural model with the cheap settings of `predictor.neural.EVAL_PARAMS`: "
         f"{_params_text()}). Reproduce this page: `python -m predictor.neural.compare"
         f"{' --monotonicity' if mono else ''}`.", "",
         "## Goals", "", f"| protocol | table | measure | goal | {short[0]} | {short[1]} |", "|---|---|---|---|---|---|"]
    wins = {m: 0 for m in methods}
    for k in keys:
        row = [heads[m].get(k) for m in methods]
        h = next(r for r in row if r)
        vals = []
        for m, r in zip(methods, row):
            v = None if r is None else r["measured"]
            vals.append("—" if v is None else _num(v) + (" ✓" if r["status"] == "met" else ""))
            wins[m] += int(r is not None and r["status"] == "met")
        L.append(f"| {h['protocol']} | {h['table']} | {h['metric']} | {h['goal']} | {vals[0]} | {vals[1]} |")
    L += ["", f"Goals met: {short[0]} {wins[methods[0]]}, {short[1]} {wins[methods[1]]} (of {len(keys)} rows).", "",
          "**Verdict**: " + ("the neural model meets more goals; serving it is worth a closer look."
                             if wins[methods[1]] > wins[methods[0]] else
                             "the LightGBM model meets at least as many goals, and it carries the plausibility "
                             "guarantees (monotone in data, chance floors, in-language curve) by construction; the "
                             "neural model stays an evaluated method, not served."), ""]
    if mono:
        L += ["## Monotonicity of the neural model (fitted on all rows, EVAL_PARAMS)", "",
              "| sweep | curves monotone | within 0.5 pt | worst drop | mean gain first→last |", "|---|---|---|---|---|"]
        for lab, r in mono.items():
            L.append(f"| {lab} | {r['share_curves_monotone']:.2f} | {r['share_curves_monotone_within_0.5']:.2f} | "
                     f"{r['worst_drop']:.2f} | {r['mean_gain_first_to_last']:.2f} |")
        L.append("")
    L += ["## Every table", ""]
    for pn, per in acc["results"].items():
        if not all(m in per and "error" not in per[m] for m in methods):
            continue
        L += [f"### {acc['protocols'][pn]['title']} (`{pn}`)", ""]
        for t in per[methods[0]]:
            metrics = [k for k in REPORT_METRICS if k in per[methods[0]][t]]
            if not metrics:
                continue
            best = {}
            for k in metrics:
                vals = {m: per[m][t][k]["value"] for m in methods if (per[m].get(t) or {}).get(k, {}).get("value")
                        is not None}
                if vals:
                    best[k] = (max if k in _BETTER_HIGH else min)(vals, key=vals.get)
            L += [f"**{t}**", "", "| method | " + " | ".join(_LABELS[k] for k in metrics) + " |",
                  "|---|" + "---|" * len(metrics)]
            for m in methods:
                L.append(f"| {m} | " + " | ".join(_cell(per[m].get(t), k, best.get(k) == m) for k in metrics) + " |")
            L.append("")
    return "\n".join(L)


def _params_text() -> str:
    from predictor.neural import EVAL_PARAMS
    return ", ".join(f"{k}={v}" for k, v in EVAL_PARAMS.items())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m predictor.neural.compare", description=__doc__.split("\n\n")[0])
    ap.add_argument("--accuracy", type=Path, default=REPORTS / "accuracy.json")
    ap.add_argument("--out", type=Path, default=REPORTS / "neural.md")
    ap.add_argument("--monotonicity", action="store_true", help="fit once on all rows and sweep k / source size")
    args = ap.parse_args(argv)
    mono = None
    if args.monotonicity:
        from predictor import protocols as P
        from predictor.neural import EVAL_PARAMS, NeuralTransferRegressor
        obs = P.load_observations()
        mono = monotonicity_report(NeuralTransferRegressor(**EVAL_PARAMS).fit(obs), obs)
    print(f"wrote {write_report(args.accuracy, args.out, mono)}")
    return 0


def write_report(accuracy: Path = REPORTS / "accuracy.json", out: Path = REPORTS / "neural.md",
                 mono: dict | None = None) -> Path | None:
    """Rewrite `out` from `accuracy` (atomically), keeping its earlier-measurements part. `xlt evaluate` calls it
    after every run, so the page never describes an older accuracy.json than the README's table; None when the run
    holds no neural results (`--no-neural`, or only other methods re-run and none stored)."""
    from predictor.evaluate import NEURAL, OURS, _atomic_write

    acc = json.loads(Path(accuracy).read_text())
    if not any(NEURAL in per for per in acc.get("results", {}).values()):
        return None
    text = render(acc, (OURS, NEURAL), mono)
    out = Path(out)
    earlier = out.read_text(encoding="utf-8") if out.exists() else ""
    if EARLIER in earlier:   # earlier measurements (other feature sets, removed ensembles) are kept as evidence
        text += "\n" + earlier[earlier.index(EARLIER):]
    _atomic_write(out, text)
    return out


if __name__ == "__main__":
    sys.exit(main())
