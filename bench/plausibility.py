"""Plausibility sweeps on the shipped model → reports/plausibility.{md,json}.

The six properties published transfer results obey (issue 8; the shared check `plausibility` asks the same through
HTTP and the batch CLI), measured here in-process on many queries so the README can quote generated figures:
chance floors, more data never lowering a score, a handful of own examples as the start of a learning curve,
close relatives in the default top 3, k_to_reach as the model's own answer independent of the ks grid, and
intervals wider where nothing was published. A seventh the shared check does not ask: a bigger size of a family
answers lower than a smaller one no more often than the record's own consecutive sizes do.

    .venv/bin/python bench/plausibility.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LANGS = ["en", "de", "fr", "es", "ru", "zh", "ar", "hi", "ja", "ko", "tr", "fi", "hu", "id", "vi", "th", "el", "bg", "ur",
         "fa", "he", "it", "pt", "nl", "sv", "da", "pl", "cs", "sk", "sl", "hr", "sr", "uk", "be", "lt", "lv", "et",
         "ro", "ca", "eu", "gl", "cy", "ga", "is", "mt", "sq", "mk", "hy", "ka", "az", "kk", "uz", "bn", "ta", "te",
         "ml", "ne", "my", "km", "ms", "tl", "jv", "yo", "ig", "ha", "am", "so", "xh", "zu", "af", "qu", "fo", "lb",
         "oc", "sah", "bo", "sn", "lg", "tn", "ee"]
MODELS = ["xlm-r-large", "xlm-r-base", "mt5-base", "mt5-xl", "mbert"]
RELATIVES = [("xlm-r-large", "wikiann", "xh", {"zul"}), ("xlm-r-large", "udpos", "ur", {"hin"}),
             ("xlm-r-large", "udpos", "hi", {"urd"}), ("xlm-r-large", "udpos", "uk", {"bel", "rus"}),
             ("xlm-r-large", "udpos", "fi", {"ekk"}), ("xlm-r-large", "udpos", "pt", {"spa", "glg", "cat"}),
             ("xlm-r-large", "udpos", "da", {"swe", "nob", "nno"}), ("xlm-r-large", "udpos", "sk", {"ces"}),
             ("mt5-base", "wikiann", "xh", {"zul"}), ("mt5-base", "udpos", "ur", {"hin"})]


def measure(p, seed: int = 7) -> dict:
    rng = np.random.default_rng(seed)
    out: dict = {}
    # 1. chance floors
    q = pd.DataFrame([dict(model=m, task=t, target=tg, source=s) for m in MODELS for t in ("xnli", "pawsx")
                      for tg in LANGS for s in list(rng.choice(LANGS, 3)) + ["en"] if s != tg])
    s = p.predict(q).predicted_score
    chance = q.task.map({"xnli": 100 / 3, "pawsx": 50.0})
    out["chance"] = {"n": int(s.notna().sum()), "below": int((s < chance - 1e-6).sum())}
    # 2. more data
    base, more = [], []
    for _ in range(1000):
        m, t = MODELS[rng.integers(4)], ["xnli", "wikiann", "udpos", "tydiqa"][rng.integers(4)]
        tg = LANGS[rng.integers(len(LANGS))]
        pool = [x for x in LANGS if x != tg]
        mix = {x: int(rng.choice([100, 1000, 5000, 20000])) for x in rng.choice(pool, rng.integers(1, 4), replace=False)}
        bigger = dict(mix)
        if rng.random() < 0.5:
            rest = [x for x in pool if x not in mix]
            bigger[rest[rng.integers(len(rest))]] = int(rng.choice([100, 1000, 5000]))
        else:
            first = next(iter(mix))
            bigger[first] *= int(rng.choice([2, 5, 10]))
        fmt = lambda d: ";".join(f"{a}:{b}" for a, b in d.items())  # noqa: E731
        base.append(dict(model=m, task=t, target=tg, train_config=fmt(mix)))
        more.append(dict(model=m, task=t, target=tg, train_config=fmt(bigger)))
    d = (p.predict(pd.DataFrame(more)).predicted_score.to_numpy() - p.predict(pd.DataFrame(base)).predicted_score.to_numpy())
    out["more_data"] = {"n": int(len(d)), "drop_gt_1": float((d < -1).mean()), "drop_gt_3": float((d < -3).mean()),
                        "worst": float(d.min())}
    # 3. tiny own data vs English zero-shot
    rows = []
    for m in MODELS[:4]:
        for tg in LANGS[1:]:
            rows += [dict(model=m, task="xnli", target=tg, train_config=f"{tg}:{k}") for k in (1, 5, 10)]
            rows.append(dict(model=m, task="xnli", target=tg, source="en"))
    s = p.predict(pd.DataFrame(rows)).predicted_score.to_numpy().reshape(-1, 4)
    gap = s[:, :3] - s[:, 3:4]
    out["tiny_own"] = {"n": int(gap.size), "beat_english_by_gt_1": int((gap > 1).sum()), "worst": float(gap.max())}
    # 4. relatives
    hits, misses = 0, []
    for m, t, tg, rel in RELATIVES:
        top = list(p.rank({"model": m, "task": t, "target": tg}, top=3).source)
        hits += bool(rel & set(top))
        if not rel & set(top):
            misses.append(f"{tg}/{t}/{m}: {top}")
    out["relatives"] = {"n": len(RELATIVES), "hits": hits, "misses": misses}
    # 5. k_to_reach
    bad, n = [], 0
    for tg, src, task in [("sw", "en", "xnli"), ("hi", "en", "xnli"), ("ar", "de", "xnli"), ("fi", "en", "wikiann"),
                          ("ur", "en", "udpos"), ("yo", "en", "udpos"), ("qu", "es", "wikiann")]:
        q0 = {"model": "xlm-r-large", "task": task, "target": tg, "source": src}
        s0 = p.predict_one(q0)["predicted_score"]
        for goal in (s0 + 2, s0 + 5):
            if goal > 100:
                continue
            n += 1
            ks = {p.curve(q0, ks=g, target_score=goal)["k_to_reach"] for g in (None, [0, 10, 100, 1000],
                                                                              [0, 3, 30, 300, 3000, 30000])}
            k = next(iter(ks))
            if len(ks) > 1 or (k is not None and p.predict_one({**q0, "k": k})["predicted_score"] < goal):
                bad.append(f"{tg}/{task} goal {goal:.1f}: {sorted(ks, key=str)}")
    out["k_to_reach"] = {"n": n, "consistent": n - len(bad), "bad": bad}
    # 6. interval width by regime
    w = {}
    published = set().union(*p.record.summary["targets_by_task"].values())
    unseen = [t for t in ["quy", "ayr", "grn", "fao", "ltz", "oci", "bak", "chv", "sah", "bod", "div", "sna", "kin",
                          "lug", "tsn", "ewe", "fon", "twi", "nya", "aka"] if t not in published]
    for name, targets in (("seen", ["de", "fr", "es", "ru", "hi", "ar", "ja", "tr", "fi", "id"]), ("unseen", unseen)):
        a = [p.predict_one({"model": "xlm-r-large", "task": "wikiann", "target": t, "source": "en"}) for t in targets]
        w[name] = {"width80": float(np.mean([x["upper80"] - x["lower80"] for x in a])),
                   "regimes": sorted({x["regime"] for x in a})}
    out["intervals"] = {**w, "ratio": w["unseen"]["width80"] / w["seen"]["width80"]}
    # 7. a bigger size of the same family: as often lower by more than a point as the record's own consecutive sizes, no
    # more (beyond 3 points the record holds 4 such pairs of 578: too few to set a goal, so it is reported only)
    out["sizes"] = size_sweep(p, rng)
    return out


def registry_ladders() -> dict[str, list[str]]:
    """Per family with two or more sized models in the registry (mT5 small → XXL, XLM-R base → XXL), its ids from
    the smallest up."""
    from features import registry

    sized: dict[str, list] = {}
    for m in registry.models():
        if m.n_params:
            sized.setdefault(m.family, []).append(m)
    return {f: [m.id for m in sorted(ms, key=lambda m: m.n_params)] for f, ms in sized.items() if len(ms) > 1}


def size_sweep(p, rng, n: int = 600) -> dict:
    """Random (task, source, target, k) questions asked of every size of a family: how often a bigger size answers
    more than 1 (3) points lower than a smaller one, against how often the record's published consecutive sizes
    (same task, mix, target, k, metric) do."""
    from predictor.size_steps import ladder_steps
    from predictor.train import load_observations, trainable

    ladders = registry_ladders()
    tasks = ["xnli", "pawsx", "xquad", "mlqa", "tydiqa", "wikiann", "udpos"]
    rows, groups = [], []
    for i in range(n):
        family = list(ladders)[i % len(ladders)]
        t, tg = tasks[rng.integers(len(tasks))], LANGS[rng.integers(len(LANGS))]
        src = "en" if rng.random() < 0.5 else LANGS[rng.integers(len(LANGS))]
        src = src if src != tg else ("en" if tg != "en" else "de")
        k = int(rng.choice([0, 0, 0, 10, 100, 1000]))
        rows += [dict(model=m, task=t, source=src, target=tg, k=k) for m in ladders[family]]
        groups.append(len(ladders[family]))
    s = p.predict(pd.DataFrame(rows)).predicted_score.to_numpy()
    drops, start = [], 0
    for g in groups:
        v = s[start:start + g]
        drops += [v[b] - v[a] for a in range(g) for b in range(a + 1, g)]
        start += g
    d = np.array(drops)
    steps = ladder_steps(trainable(load_observations()))
    pub = np.concatenate([(st["pairs"]["b"] - st["pairs"]["a"]).to_numpy() for st in steps])
    return {"n": int(len(d)), "lower_gt_1": float((d < -1).mean()), "lower_gt_3": float((d < -3).mean()),
            "worst": float(d.min()), "published_pairs": int(len(pub)),
            "published_lower_gt_1": float((pub < -1).mean()), "published_lower_gt_3": float((pub < -3).mean())}


def verdicts(r: dict) -> list[tuple[str, str, str, bool]]:
    return [
        ("no XNLI/PAWS-X prediction below chance", "0 below",
         f"{r['chance']['below']} of {r['chance']['n']} below", r["chance"]["below"] == 0),
        ("adding data lowers a score by > 1 / > 3 points", "≤ 2% / ≤ 0.5% of sweeps",
         f"{r['more_data']['drop_gt_1']:.1%} / {r['more_data']['drop_gt_3']:.1%} of {r['more_data']['n']} "
         f"(worst {r['more_data']['worst']:+.2f})",
         r["more_data"]["drop_gt_1"] <= 0.02 and r["more_data"]["drop_gt_3"] <= 0.005),
        ("≤ 10 own examples alone beat English zero-shot by > 1 point", "never",
         f"{r['tiny_own']['beat_english_by_gt_1']} of {r['tiny_own']['n']} (worst {r['tiny_own']['worst']:+.2f})",
         r["tiny_own"]["beat_english_by_gt_1"] == 0),
        ("close relative in the default top 3", "all", f"{r['relatives']['hits']}/{r['relatives']['n']}",
         r["relatives"]["hits"] == r["relatives"]["n"]),
        ("k_to_reach reached by /predict at that k, same for every ks grid", "all",
         f"{r['k_to_reach']['consistent']}/{r['k_to_reach']['n']}",
         r["k_to_reach"]["consistent"] == r["k_to_reach"]["n"]),
        ("80% interval width (wikiann, xlm-r-large, from English), targets with no published result vs "
         "well-covered ones", "≥ 1.25×",
         f"{r['intervals']['unseen']['width80']:.1f} vs {r['intervals']['seen']['width80']:.1f} "
         f"= {r['intervals']['ratio']:.2f}×", r["intervals"]["ratio"] >= 1.25),
        ("a bigger size of the same family answers lower by > 1 point (mT5 small → XXL, XLM-R base → XXL)",
         f"≤ the record's consecutive sizes ({r['sizes']['published_lower_gt_1']:.1%} of "
         f"{r['sizes']['published_pairs']}; > 3 points: {r['sizes']['published_lower_gt_3']:.1%})",
         f"{r['sizes']['lower_gt_1']:.1%} of {r['sizes']['n']} size pairs (> 3 points: "
         f"{r['sizes']['lower_gt_3']:.1%}, worst {r['sizes']['worst']:+.1f})",
         r["sizes"]["lower_gt_1"] <= r["sizes"]["published_lower_gt_1"]),
    ]


def main() -> int:
    from predictor import TransferPredictor
    p = TransferPredictor.load()
    r = measure(p)
    rows = verdicts(r)
    reports = ROOT / "reports"
    (reports / "plausibility.json").write_text(json.dumps({"model": p.manifest.get("version"), **r}, indent=1))
    lines = [f"# Plausibility of the shipped model ({p.manifest.get('version')})", "",
             "Generated by `bench/plausibility.py` (in-process sweeps through the facade; the shared check "
             "`plausibility` asks the same over HTTP and the batch CLI).", "",
             "| property | goal | measured | holds |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {'yes' if ok else 'no'} |" for a, b, c, ok in rows]
    if r["relatives"]["misses"]:
        lines += ["", "Relatives missed: " + "; ".join(r["relatives"]["misses"])]
    (reports / "plausibility.md").write_text("\n".join(lines) + "\n")
    readme = ROOT / "README.md"
    text = readme.read_text()
    a, b = "<!-- plausibility:start -->", "<!-- plausibility:end -->"
    if a in text and b in text:
        section = "\n".join([a, "What published results obey, measured on the shipped model by `bench/plausibility.py` "
                             f"(`reports/plausibility.md`, model {p.manifest.get('version')}):", "", *lines[4:], b])
        readme.write_text(text[: text.index(a)] + section + text[text.index(b) + len(b):])
    print("\n".join(lines))
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
