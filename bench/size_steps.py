"""What answering an unheld model size from a held one (`predictor.size_steps.SizeSteps`) buys →
reports/size_steps.{md,json}.

Three questions, the first two answered with the size step on and off (off: the trees given the asked model's own
size):

1. *A model size the record does not hold*: every row of one or more sizes is held out (mT5-XXL; mT5-XL and XXL;
   XLM-R large), the model refitted on the rest (its size step fitted on the rest too), and the held-out rows
   predicted: RMSE, MAE, mean error.
2. *The shipped model on XLM-R XL / XXL* (no published transfer result, so no error to measure): the mean predicted
   gain over XLM-R large from English into 20 targets, per task, beside the record's own mT5 large → XL gain on the
   same tasks; and the gain for targets outside XLM-R's pretraining corpus (CC-100), which more parameters should
   not make it know.
3. *The form of the step*: the record's own mT5 steps from >= 1B parameters, binned by how far the smaller model's
   score is from chance to 100, against what the fitted logit step and a share of the headroom (100 - score, the
   first form shipped) predict for them (in-sample: one parameter each, fitted on these steps).

    .venv/bin/python bench/size_steps.py     (~2.5 min on 2 cores)
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HOLD_OUTS = (("mt5-xxl",), ("mt5-xl", "mt5-xxl"), ("xlm-r-large",))
TARGETS = ["deu", "fra", "rus", "arb", "hin", "swh", "tha", "tur", "vie", "cmn", "ell", "bul", "urd", "spa", "fin",
           "ind", "kor", "tel", "ben", "jpn"]
TASKS = ["xnli", "pawsx", "wikiann", "udpos", "xquad", "mlqa", "tydiqa"]
# targets outside CC-100 (the ones in it are dropped at run time), and the tasks their gain is shown for
UNSEEN_CANDIDATES = ["gug", "quy", "wol", "yor", "ibo", "zul", "aym", "lin"]
UNSEEN_TASKS = ["xnli", "wikiann", "americasnli"]


def _errors(pred: np.ndarray, y: np.ndarray) -> dict:
    e = pred - y
    return {"rmse": float(np.sqrt(np.mean(e ** 2))), "mae": float(np.mean(np.abs(e))), "bias": float(np.mean(e))}


def held_out_sizes(obs: pd.DataFrame) -> list[dict]:
    from predictor.model import TransferRegressor
    from predictor.size_steps import SizeSteps

    out = []
    for held in HOLD_OUTS:
        mask = obs["model"].isin(held).to_numpy()
        t0 = time.time()
        model = TransferRegressor().fit(obs[~mask])
        test = obs[mask]
        steps = model.size_steps_
        with_step = model.predict(test)
        model.size_steps_ = SizeSteps()   # the same trees, every size as asked
        without = model.predict(test)
        out.append({"held_out": list(held), "rows": int(mask.sum()), "fit_s": round(time.time() - t0, 1),
                    "anchors": {m: list(steps.anchors_[m]) for m in held if m in steps.anchors_},
                    "step": steps.step_, "with": _errors(with_step, test["score"].to_numpy()),
                    "without": _errors(without, test["score"].to_numpy())})
    return out


def step_forms(obs: pd.DataFrame, step: float) -> list[dict]:
    """Observed gain per doubling of the record's mT5 steps from >= 1B parameters, by the smaller model's share of
    the way from chance to 100, beside the logit step's and the headroom share's predictions."""
    from predictor.size_steps import BILLION, SizeSteps, ladder_steps

    parts = [st["pairs"].assign(d=st["doublings"]) for st in ladder_steps(obs)
             if st["family"] == "mt5" and st["n_from"] >= BILLION]
    df = pd.concat(parts, ignore_index=True)
    logit = SizeSteps()
    logit.step_ = step
    df["logit"] = logit.apply(df["a"].to_numpy(), df["d"].to_numpy(), df["chance"].to_numpy())
    left = np.clip((100 - df["b"]) / (100 - df["a"]).clip(lower=1e-6), 1e-6, None) ** (1 / df["d"])
    rate = float(np.median(1 - left))
    df["headroom"] = 100 - (100 - df["a"]) * (1 - rate) ** df["d"]
    share = (df["a"] - df["chance"]) / (100 - df["chance"])
    df["bin"] = pd.cut(share, [-1, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0],
                       labels=["< 0.2", "0.2-0.4", "0.4-0.6", "0.6-0.8", "0.8-0.9", ">= 0.9"])
    rows = []
    for label, g in df.groupby("bin", observed=True):
        rows.append({"bin": str(label), "n": int(len(g)), "observed": float(((g["b"] - g["a"]) / g["d"]).mean()),
                     "logit": float(((g["logit"] - g["a"]) / g["d"]).mean()),
                     "headroom": float(((g["headroom"] - g["a"]) / g["d"]).mean()), "headroom_rate": rate})
    return rows


def shipped_gains(obs: pd.DataFrame) -> dict:
    from features import registry
    from predictor import TransferPredictor
    from predictor.size_steps import SizeSteps

    p = TransferPredictor.load()
    steps = p.model.size_steps_
    unseen = [c for c in UNSEEN_CANDIDATES if c not in registry.corpus_sizes("cc100")]
    rows = []
    for task, outside in [(t, False) for t in TASKS] + [(t, True) for t in UNSEEN_TASKS]:
        if outside:
            q = pd.DataFrame({"model": "xlm-r-large", "task": task, "target": unseen, "source": "en"})
            large = p.predict(q)["predicted_score"].to_numpy()
            xl = p.predict(q.assign(model="xlm-r-xl"))["predicted_score"].to_numpy()
            rows.append({"task": task, "unseen_targets": unseen, "large": float(large.mean()),
                         "xlm-r-xl": float(xl.mean()),
                         "xlm-r-xxl": float(p.predict(q.assign(model="xlm-r-xxl"))["predicted_score"].mean())})
            continue
        q = pd.DataFrame({"model": "xlm-r-large", "task": task, "target": TARGETS, "source": "en"})
        large = p.predict(q)["predicted_score"].to_numpy()
        row = {"task": task, "large": float(large.mean())}
        for size in ("xlm-r-xl", "xlm-r-xxl"):
            row[size] = float(p.predict(q.assign(model=size))["predicted_score"].mean())
        p.model.size_steps_ = SizeSteps()
        row["xlm-r-xl trees alone"] = float(p.predict(q.assign(model="xlm-r-xl"))["predicted_score"].mean())
        p.model.size_steps_ = steps
        zs = obs[(obs["task"] == task) & (obs["k"] == 0) & (obs["train_config"].str.startswith("eng:"))
                 & ~obs["train_config"].str.contains(";") & (obs["target"] != "eng")]
        a = zs[zs["model"] == "mt5-large"].groupby("target")["score"].mean()
        b = zs[zs["model"] == "mt5-xl"].groupby("target")["score"].mean()
        both = a.index.intersection(b.index)
        row["record mt5 large->xl"] = float((b[both] - a[both]).mean()) if len(both) else None
        rows.append(row)
    return {"model": p.manifest.get("version"), "step": steps.step_,
            "anchors": {m: list(v) for m, v in steps.anchors_.items()}, "tasks": rows}


def main() -> int:
    from predictor import protocols

    obs = protocols.load_observations()
    r = {"held_out_sizes": held_out_sizes(obs), "shipped": shipped_gains(obs)}
    r["step_forms"] = step_forms(obs, r["shipped"]["step"])
    reports = ROOT / "reports"
    (reports / "size_steps.json").write_text(json.dumps(r, indent=1))
    s = r["shipped"]
    lines = ["# Model sizes the record does not hold (SizeSteps)", "",
             "Generated by `bench/size_steps.py`. A size the record holds no result of is scored as its family's "
             "nearest held size and moved by a step fitted on the record's within-family steps "
             "(`predictor/size_steps.py`); off = the same trees given the asked size.", "",
             "## Sizes held out of the record, then predicted", "",
             "| held out | rows | answered from | fitted step | RMSE off → on | MAE off → on | mean error off → on |",
             "|---|---|---|---|---|---|---|"]
    for h in r["held_out_sizes"]:
        anchors = ", ".join(f"{m} ← {a} ({d:+.2f} doublings)" for m, (a, d) in h["anchors"].items())
        lines.append(f"| {', '.join(h['held_out'])} | {h['rows']:,} | {anchors} | {h['step']:.3f} | "
                     f"{h['without']['rmse']:.2f} → {h['with']['rmse']:.2f} | {h['without']['mae']:.2f} → "
                     f"{h['with']['mae']:.2f} | {h['without']['bias']:+.2f} → {h['with']['bias']:+.2f} |")
    lines += ["", "The step is on the logit of the score's share of the way from chance to 100, per doubling of "
                  "parameters. With mT5-XL and XXL both held out no step from a billion-parameter size is left, so "
                  "it comes from the smaller steps, which move further per doubling.", "",
              "## The form of the step: the record's mT5 steps from >= 1B parameters", "",
              "Mean gain in points per doubling, by how far mT5's smaller size is from chance to 100 (its share "
              "p = (score − chance)/(100 − chance)); in-sample, one fitted parameter per form (logit step "
              f"{s['step']:.3f}; headroom share {r['step_forms'][0]['headroom_rate']:.3f} of 100 − score per "
              "doubling, the form shipped first).", "",
              "| p of the smaller size | steps | observed | logit step | headroom share |", "|---|---|---|---|---|"]
    for b in r["step_forms"]:
        lines.append(f"| {b['bin']} | {b['n']} | {b['observed']:+.2f} | {b['logit']:+.2f} | {b['headroom']:+.2f} |")
    lines += ["",
              f"## Shipped model {s['model']}: XLM-R XL / XXL (logit step {s['step']:.3f} per doubling)", "",
              "Mean predicted score from English into 20 targets; no XLM-R XL or XXL transfer result is published in "
              "the record, so the last column is the nearest yardstick: the record's own mT5 large → XL gain.", "",
              "| task | XLM-R large | XL | XXL | XL, trees alone | record: mT5 large → XL gain |",
              "|---|---|---|---|---|---|"]
    for t in s["tasks"]:
        if "unseen_targets" in t:
            continue
        rec = "—" if t["record mt5 large->xl"] is None else f"{t['record mt5 large->xl']:+.1f}"
        lines.append(f"| {t['task']} | {t['large']:.1f} | {t['xlm-r-xl']:.1f} ({t['xlm-r-xl'] - t['large']:+.1f}) | "
                     f"{t['xlm-r-xxl']:.1f} | {t['xlm-r-xl trees alone']:.1f} "
                     f"({t['xlm-r-xl trees alone'] - t['large']:+.1f}) | {rec} |")
    unseen = [t for t in s["tasks"] if "unseen_targets" in t]
    if unseen:
        lines += ["", f"Targets outside CC-100 ({', '.join(unseen[0]['unseen_targets'])}): mean predicted score from "
                      "English. More parameters should not teach XLM-R a language it never saw.", "",
                  "| task | XLM-R large | XL | XXL |", "|---|---|---|---|"]
        for t in unseen:
            lines.append(f"| {t['task']} | {t['large']:.1f} | {t['xlm-r-xl']:.1f} ({t['xlm-r-xl'] - t['large']:+.1f}) | "
                         f"{t['xlm-r-xxl']:.1f} ({t['xlm-r-xxl'] - t['large']:+.1f}) |")
    (reports / "size_steps.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
