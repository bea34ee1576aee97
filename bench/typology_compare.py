"""Default URIEL (lang2vec) vs URIEL+ typology under the same protocols: writes reports/urielplus.{md,json}.

    .venv/bin/python -m bench.typology_compare                       # both tables, cheap settings (~10-20 min)
    .venv/bin/python -m bench.typology_compare --report-only         # re-render the report from the JSON

Each typology runs in its own child process (`nice -n 10`, one after the other) with `XLT_TYPOLOGY` set (or unset
for the default), because features.typology reads its table once per process and featurize caches per process.
In each child, the same protocols and folds (predictor.protocols; nothing there depends on typology) are scored with
predictor.evaluate.run_folds / score_protocol for:
  * the product model, predictor.model.TransferRegressor with cheap settings (n_estimators=100);
  * the distance rules of predictor.baselines (closest by each URIEL distance, equal-weight composite), which read
    the typology directly and show what each table's distances are worth on their own.
Protocols: xpos (grouped unseen languages), one LangRankPlus matrix in the strict grouped variant (its folds are the
xpos folds, so no extra fits), and unseen_dataset (each results matrix held out whole).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "features" / "data"
REPORT_MD = ROOT / "reports" / "urielplus.md"
REPORT_JSON = ROOT / "reports" / "urielplus.json"
TABLES = {"URIEL (lang2vec, default)": None, "URIEL+": str(DATA / "urielplus_vectors.npz"),
          "URIEL+ lineage-kNN": str(DATA / "urielplus_lknn_vectors.npz")}
LRP_MATRIX = "wikiann_xlm-r"
MODEL_PARAMS = {"n_estimators": 100}
MODEL = "xlt LightGBM (n_estimators=100)"
SHORT = {"URIEL (lang2vec, default)": "URIEL", "URIEL+": "URIEL+", "URIEL+ lineage-kNN": "URIEL+ lkNN"}
KEY_METRICS = ("top1", "regret", "pl", "ndcg3", "spearman", "rmse", "mae")


def _protocols(obs, only: list[str] | None = None):
    from predictor import protocols as P

    xp = P.build("xpos", obs)
    lrp = P.build("langrankplus_strict", obs)
    keep = [t for t in lrp.tables if t.name == LRP_MATRIX]
    mask = np.asarray(keep[0].select(obs), bool)
    lrp.tables = keep
    for f in lrp.folds:
        f.test = f.test & mask
    lrp.name = f"langrankplus_strict:{LRP_MATRIX}"
    out = [xp, lrp]
    if not only or "unseen_dataset" in only:
        out.append(P.build("unseen_dataset", obs))
    return [p for p in out if not only or any(o in p.name for o in only)]


def child(out: str, only: list[str], protocols: list[str]) -> None:
    from predictor import evaluate as E
    from predictor import protocols as P
    from predictor.baselines import COMPOSITE, DISTANCE_KINDS, closest_by, distance_composite, xlt_model
    from features import typology

    t0 = time.time()
    obs = P.load_observations()
    protos = _protocols(obs, protocols)
    methods = [(MODEL, xlt_model(MODEL_PARAMS), "regression")]
    methods += [(f"closest {k}", closest_by(k), "ranking") for k in DISTANCE_KINDS]
    methods += [(COMPOSITE if isinstance(COMPOSITE, str) else "distance composite", distance_composite, "ranking")]
    if only:
        methods = [m for m in methods if any(o in m[0] for o in only)]
    res: dict = {p.name: {} for p in protos}
    timings = {}
    for name, fp, kind in methods:
        t = time.time()
        preds = E.run_folds(protos, fp, log=(lambda s: print(s, flush=True)) if name == MODEL else None)
        for p in protos:
            res[p.name][name] = E.score_protocol(p, preds[p.name], kind)
        timings[name] = round(time.time() - t, 1)
        print(f"{name}: {timings[name]}s", flush=True)
    Path(out).write_text(json.dumps({
        "typology_file": str(typology.VECTORS_PATH), "typology_version": typology.TYPOLOGY_VERSION,
        "protocols": {p.name: {"title": p.title, "n_folds": len(p.folds), "grouping": p.grouping,
                               "n_test_rows": int(sum(f.test.sum() for f in p.folds))} for p in protos},
        "results": res, "timings_s": timings, "seconds": round(time.time() - t0, 1)}, default=float))


def run(tables: dict, only: list[str], protocols: list[str]) -> dict:
    runs = {}
    for label, path in tables.items():
        env = {k: v for k, v in os.environ.items() if k != "XLT_TYPOLOGY"}
        if path:
            env["XLT_TYPOLOGY"] = path
        out = ROOT / "reports" / f".typology_compare_{abs(hash(label)) % 10**8}.json"
        print(f"== {label}: {path or 'default'}", flush=True)
        subprocess.run(["nice", "-n", "10", sys.executable, "-m", "bench.typology_compare", "--child", str(out),
                        *sum((["--only", o] for o in only), []), *sum((["--protocol", o] for o in protocols), [])],
                       cwd=ROOT, env=env, stdin=subprocess.DEVNULL, check=True)
        runs[label] = json.loads(out.read_text())
        out.unlink()
    return runs


# ---------------------------------------------------------------------------------------------------------------
# report

def _v(m: dict | None, key: str):
    if not m or key not in m or m[key] is None:
        return None
    x = m[key]
    return x.get("value") if isinstance(x, dict) else x


def _f(x, nd=3) -> str:
    return "–" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{nd}f}"


def _ci(m: dict | None, key: str) -> str:
    if not m or key not in m or not isinstance(m[key], dict) or m[key].get("lo") is None:
        return ""
    return f" [{m[key]['lo']:.2f}, {m[key]['hi']:.2f}]"


def render(runs: dict, manifest: dict, commands: list[str]) -> str:
    labels = list(runs)
    first = runs[labels[0]]
    short = {lab: SHORT.get(lab, lab) for lab in labels}
    lines = ["# URIEL+ as xlt's typology source: evaluation", "",
             "Generated by `bench/typology_compare.py` (do not edit by hand). Same observations, protocols, folds and "
             "settings for both tables; only `XLT_TYPOLOGY` differs.", ""]
    lines += ["Commands:", "", "```", *commands, "```", ""]
    lines += ["| table | label | file | version |", "|---|---|---|---|"]
    for lab in labels:
        lines.append(f"| {lab} | {short[lab]} | `{Path(runs[lab]['typology_file']).relative_to(ROOT)}` | "  # noqa
                     f"`{runs[lab]['typology_version']}` |")
    lines += ["", "## Product model, side by side", "",
              f"{MODEL}, out-of-fold. Lower is better for regret, PL (percentage loss vs the best source), RMSE, "
              "MAE; higher for top-1, NDCG@3, Spearman. Brackets: 95% bootstrap interval over ranking groups.", ""]
    for pname, pinfo in first["protocols"].items():
        lines += [f"### {pname}: {pinfo['title']}", "", f"{pinfo['grouping']}; {pinfo['n_test_rows']} test rows.", ""]
        tabs = list(first["results"][pname][MODEL])
        lines += ["| table | metric | " + " | ".join(short[lab] for lab in labels) + " | "
                  + " | ".join(f"Δ {short[lab]}" for lab in labels[1:]) + " |",
                  "|---|---|" + "---|" * (2 * len(labels) - 1)]
        for t in tabs:
            for met in KEY_METRICS:
                vals = [_v(_res(runs[lab], pname, MODEL).get(t), met) for lab in labels]
                if all(v is None for v in vals):
                    continue
                cells = [_f(v) + _ci(_res(runs[lab], pname, MODEL).get(t), met) for v, lab in zip(vals, labels)]
                deltas = [_f(v - vals[0]) if None not in (v, vals[0]) else "–" for v in vals[1:]]
                lines.append(f"| {t} | {met} | " + " | ".join(cells + deltas) + " |")
        lines.append("")
    # unseen_dataset mean over matrices
    lines += ["## Summary", ""]
    summary = summarize(runs)
    lines += ["| protocol | metric | " + " | ".join(short[lab] for lab in labels) + " |",
              "|---|---|" + "---|" * len(labels)]
    for (p, met), vals in summary.items():
        lines.append(f"| {p} | {met} | " + " | ".join(_f(vals.get(lab)) for lab in labels) + " |")
    lines += ["", "## Distance rules alone (no learning): PL per matrix / table", "",
              "Each rule ranks sources by one distance of the table (closest first). This isolates what the distances "
              "themselves are worth.", ""]
    rules = [m for m in first["results"][next(iter(first["results"]))] if m != MODEL]
    lines += ["Mean PL of each rule over every scored table (xpos, the LangRankPlus matrix, the 9 unseen-dataset "
              "matrices; lower is better):", "",
              "| rule | " + " | ".join(short[lab] for lab in labels) + " |", "|---|" + "---|" * len(labels)]
    for r in rules:
        means = []
        for lab in labels:
            v = [_v(m, "pl") for pname in runs[lab]["results"] for m in _res(runs[lab], pname, r).values()]
            v = [x for x in v if x is not None]
            means.append(_f(float(np.mean(v)), 2) if v else "–")
        lines.append(f"| {r} | " + " | ".join(means) + " |")
    lines.append("")
    for pname in first["protocols"]:
        tabs = list(first["results"][pname][MODEL])
        lines += [f"### {pname} (PL; lower is better)", "",
                  "| rule | " + " | ".join(f"{t} {short[lab]}" for t in tabs for lab in labels) + " |",
                  "|---|" + "---|" * (len(tabs) * len(labels))]
        for r in rules:
            cells = [_f(_v(_res(runs[lab], pname, r).get(t), "pl"), 2) for t in tabs for lab in labels]
            lines.append(f"| {r} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## URIEL+ table", "", "From `features/data/urielplus_manifest.json`:", "", "```json",
              json.dumps({k: manifest.get(k) for k in (
                  "version", "languages", "features", "features_by_prefix", "languages_with_glottocode",
                  "languages_with_own_typology_value", "languages_with_value_after_lineage_fill",
                  "languages_imputed_by_urielplus", "languages_filled_from_neighbours", "genetic_nodes",
                  "genetic_max_depth", "languages_without_family", "languages_with_glottolog_coordinates",
                  "urielplus_options", "xlt_options")}, indent=1), "```", ""]
    lines += ["Timings (s): " + "; ".join(f"{lab}: {runs[lab]['seconds']}" for lab in labels), ""]
    lines += ["## Verdict (computed from the summary above)", ""]
    lines += verdict(summary, labels, short)
    lines += ["", DECISION, "", NOTES]
    return "\n".join(lines)


LOWER_BETTER = ("regret", "pl", "rmse", "mae")


def verdict(summary: dict, labels: list[str], short: dict) -> list[str]:
    """Per alternative table: on how many headline numbers it beats the default, and by how much."""
    base = labels[0]
    out = []
    for lab in labels[1:]:
        wins, losses, rows = 0, 0, []
        for (p, met), vals in summary.items():
            if base not in vals or lab not in vals:
                continue
            d = vals[lab] - vals[base]
            better = (d < 0) if any(x in met for x in LOWER_BETTER) else (d > 0)
            if abs(d) < 1e-9:
                continue
            wins += better
            losses += not better
            rows.append(f"{p} {met} {'better' if better else 'worse'} by {abs(d):.3f}")
        out.append(f"- **{short[lab]}** vs {short[base]}: better on {wins}, worse on {losses} of the headline numbers "
                   f"({'; '.join(rows)}).")
    return out


DECISION = """## Decision: URIEL+ did not help; the default stays lang2vec's URIEL

On the unseen-language protocols, the regime where typology is the model's main information about a target, both
URIEL+ tables are worse than the default: xpos PL +1.6 (SoftImpute) / +1.8 (lineage-kNN), regret +0.6; the LangRankPlus
wikiann_xlm-r matrix PL +0.7 / +0.4. On the unseen-dataset protocol they are slightly better (mean PL −0.95 / −0.73,
mean NDCG@3 +0.025 / +0.007). Every difference is well inside the bootstrap intervals, and the signs disagree
between regimes, so the protocols do not say URIEL+ helps. The distance rules tell the same story: Glottolog's
deeper tree makes `closest genetic` slightly better on WikiANN and worse on xpos; URIEL+'s imputed syntax/phonology
are worse rules than lang2vec's kNN predictions on average (mean PL 16.05 → 16.95 / 17.94 syntactic).

Why, as far as the numbers show: URIEL+ adds Grambank/APiCS features, but for most languages they are imputed, and
imputation pulls sparsely observed languages toward the average (Hindi–Urdu syntactic distance 0.40 with SoftImpute,
0.19 with the lineage-kNN fill, 0.05 in lang2vec). Its share of observed cells per language is lower than lang2vec's
(the feature set is twice as large), so `observed` falls for everyone.

So the build script, the env switch and this report stay as evidence; the derived URIEL+ tables were removed from
`features/data/` after the comparison (rebuild with the commands above, ~20 min on 2 shared cores; or restore them
from commit 4ff23b6)."""


NOTES = """## Notes

- Same observations, protocol folds, model settings (TransferRegressor n_estimators=100, everything else default) and
  seeds for every table; only the typology file differs. Differences of a few hundredths in top-1 / NDCG or a few
  tenths of PL are within the bootstrap intervals shown in brackets.
- The distance rules show the tables' distances on their own; the model uses the six distances, `same_family`
  (top-level family of the table's tree) and the nearest pretraining relative (genetic distance of the table).
- URIEL+ family tree = Glottolog lineages (8,887 nodes, depth up to 26); lang2vec's = Ethnologue-style (3,718 nodes,
  depth 14). Top-level families differ in places (e.g. Glottolog's Atlantic-Congo for Niger-Congo).
- Licence: the URIEL+ tables are CC BY-SA 4.0 (features/data/URIELPLUS_ATTRIBUTION.md); they are only read when
  `XLT_TYPOLOGY` points to them."""


def _res(run: dict, pname: str, method: str) -> dict:
    return run["results"].get(pname, {}).get(method, {})


def summarize(runs: dict) -> dict:
    """Headline numbers per protocol: means over the protocol's tables of the product model's metrics."""
    out: dict = {}
    for lab, r in runs.items():
        for pname, per in r["results"].items():
            m = per[MODEL]
            for met in ("top1", "regret", "pl", "ndcg3", "rmse"):
                vals = [_v(m[t], met) for t in m]
                vals = [v for v in vals if v is not None]
                if vals:
                    out.setdefault((pname, f"mean {met}" if len(m) > 1 else met), {})[lab] = float(np.mean(vals))
            if pname == "unseen_dataset":   # matrices where the model beats the best single-distance rule
                rules = [k for k in per if k.startswith("closest")]
                n = 0
                for t in m:
                    best = min((_v(per[k].get(t), "pl") for k in rules if _v(per[k].get(t), "pl") is not None),
                               default=None)
                    n += int(best is not None and _v(m[t], "pl") is not None and _v(m[t], "pl") < best)
                out.setdefault((pname, "matrices with PL below the best single-distance rule"), {})[lab] = float(n)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--only", action="append", default=[], help="methods whose name contains this text")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--protocol", action="append", default=[], help="xpos, langrankplus, unseen_dataset (repeatable)")
    ap.add_argument("--table", action="append", default=[],
                    help="run only the tables whose label contains this text (merged into the existing JSON)")
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.only, args.protocol)
        return 0
    if not args.report_only:
        tables = {k: v for k, v in TABLES.items() if not args.table or any(t in k for t in args.table)}
        runs = json.loads(REPORT_JSON.read_text()) if (args.table and REPORT_JSON.exists()) else {}
        runs.update(run(tables, args.only, args.protocol))
        runs = {k: runs[k] for k in TABLES if k in runs}
        REPORT_JSON.write_text(json.dumps(runs, indent=1, default=float) + "\n")
        if len(runs) < 2:
            print(f"ran {list(runs)}; run the other table to write the report")
            return 0
    runs = json.loads(REPORT_JSON.read_text())
    man_path = DATA / "urielplus_manifest.json"
    if not man_path.exists():   # the tables were removed after the comparison: the manifest kept with the report
        man_path = REPORT_JSON.with_name("urielplus_manifest.json")
    manifest = json.loads(man_path.read_text())
    commands = [f"{manifest.get('built_by', 'python -m features.build_urielplus')}   # the URIEL+ table",
                ".venv/bin/python -m bench.typology_compare"]
    REPORT_MD.write_text(render(runs, manifest, commands) + "\n")
    print(f"wrote {REPORT_MD.relative_to(ROOT)} and {REPORT_JSON.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
