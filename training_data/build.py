"""Build the tidy training table ``training_data/observations.csv`` (and the LangRank peer table) from raw copies.

Why one build step: every published result reaches the predictor through the same rules — canonical ISO 639-3
codes (``features.languages.resolve_code``), registry ids, one ``train_config`` notation, ``k`` = target-language
examples, scores on 0-100 — and the same exclusion and conflict rules, each listed with its reason. The output is
deterministic (sorted rows, fixed float format, no timestamps) so a rebuild has the same sha256, and every file is
written to a temporary file and renamed into place.

    python -m training_data.build [--raw-dir DIR] [--out-dir DIR] [--quiet]
"""
from __future__ import annotations

import hashlib
import math
import os
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from features.errors import UnknownLanguage
from features.languages import resolve_code
from features.registry import resolve_task
from training_data import parsers
from training_data.parsers import RawObs
from training_data.schema import COLUMNS, KEY_COLUMNS, validate_observations, validate_peer

HERE = Path(__file__).resolve().parent
RAW_DIR = HERE / "raw"
OUT_DIR = HERE
FLOAT_FORMAT = "%.12g"
DATASET_ORDER = ("xpos_devries2022", "sumeval2022", "mt5_xue2021", "langrankplus", "en_source_tables")


@dataclass
class BuildReport:
    """What a build read, kept, excluded and resolved; ``main`` prints it and the README is rendered from it."""

    read: Counter = field(default_factory=Counter)  # dataset -> rows read
    kept: Counter = field(default_factory=Counter)  # dataset -> rows in observations.csv
    exclusions: list[dict] = field(default_factory=list)  # one dict per excluded raw row (reason, values)
    conflicts: list[dict] = field(default_factory=list)  # one dict per resolved conflicting key
    exact_duplicates: int = 0
    peer_rows: int = 0
    peer_unresolved: list[str] = field(default_factory=list)
    peer_dropped: list[str] = field(default_factory=list)  # raw rows without a score (NaN in the file)
    n_rows: int = 0
    n_k_positive: int = 0
    files: dict[str, str] = field(default_factory=dict)  # name -> sha256

    def table(self) -> str:
        lines = [f"{'dataset':20s} {'read':>8s} {'excluded':>9s} {'dup/conflict':>13s} {'kept':>8s}"]
        exc = Counter(e["dataset"] for e in self.exclusions if e["kind"] == "anomaly/unusable")
        dup = Counter(e["dataset"] for e in self.exclusions if e["kind"] != "anomaly/unusable")
        for ds in DATASET_ORDER:
            lines.append(f"{ds:20s} {self.read[ds]:8d} {exc[ds]:9d} {dup[ds]:13d} {self.kept[ds]:8d}")
        lines.append(f"{'total':20s} {sum(self.read.values()):8d} {sum(exc.values()):9d} {sum(dup.values()):13d} "
                     f"{sum(self.kept.values()):8d}")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ helpers
class _Codes:
    """Memoised resolve_code that records failures instead of raising, so one bad code never stops a build."""

    def __init__(self) -> None:
        self.cache: dict[str, str | None] = {}

    def __call__(self, raw: str) -> str | None:
        if raw not in self.cache:
            try:
                self.cache[raw] = resolve_code(raw)
            except UnknownLanguage:
                self.cache[raw] = None
        return self.cache[raw]


def _fmt_config(mix: dict[str, int]) -> str:
    return ";".join(f"{lang}:{n}" for lang, n in sorted(mix.items()))


def _row_id(key: tuple) -> str:
    return hashlib.sha1("\x1f".join(map(str, key)).encode()).hexdigest()[:12]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_csv(path: Path, df: pd.DataFrame) -> None:
    atomic_write_text(path, df.to_csv(index=False, lineterminator="\n", float_format=FLOAT_FORMAT))


# ------------------------------------------------------------------------------------------------ rules
def _setting(obs: RawObs, k: int, source_size: int, n_sources: int) -> str:
    """zero-shot: one other language, no target data · multi-source: several other languages, no target data ·
    few-shot: target examples added to other-language data (any k) · in-language: target data only ·
    translate-train / in-language-multitask: fixed by the source (mT5 paper)."""
    if obs.setting:
        return obs.setting
    if source_size == 0:
        return "in-language"
    if k == 0:
        return "zero-shot" if n_sources == 1 else "multi-source"
    return "few-shot"


def _canonical_rows(obs_list: list[RawObs], codes: _Codes, report: BuildReport) -> list[dict]:
    rows: list[dict] = []
    for o in obs_list:
        report.read[o.dataset] += 1
        base = {"dataset": o.dataset, "dataset_file": o.dataset_file, "raw_line": o.raw_line, "model": o.model,
                "task": o.task, "target_raw": o.target, "score": o.score}
        if not (isinstance(o.score, float) and math.isfinite(o.score) and 0.0 <= o.score <= 100.0):
            report.exclusions.append({**base, "kind": "anomaly/unusable", "reason": "score missing or outside 0-100"})
            continue
        tgt = codes(o.target)
        mix: dict[str, int] = {}
        bad = [c for c in o.mix if codes(c) is None]
        if tgt is None or bad:
            report.exclusions.append({**base, "kind": "anomaly/unusable",
                                      "reason": f"language code not resolvable: {', '.join([o.target] * (tgt is None) + bad)}"})
            continue
        for c, n in o.mix.items():
            mix[codes(c)] = mix.get(codes(c), 0) + int(n)
        mix = {c: n for c, n in mix.items() if n > 0}
        k = mix.get(tgt, 0)
        others = {c: n for c, n in mix.items() if c != tgt}
        source_size = sum(others.values())
        n_sources = len(others)
        if len(mix) == 1:
            source = next(iter(mix))
        elif n_sources == 1:
            source = next(iter(others))
        else:
            source = "mix"
        setting = _setting(o, k, source_size, n_sources)
        target_data = "none" if k == 0 else ("gold" if (o.target_data == "machine-translated" and tgt == "eng")
                                             else o.target_data)
        spec = resolve_task(o.task)
        rows.append({
            "dataset": o.dataset, "dataset_file": o.dataset_file.rsplit("/", 1)[-1], "origin": o.origin,
            "_path": o.dataset_file, "model": o.model,
            "task": o.task, "task_type": spec.task_type, "metric": o.metric, "primary_metric": o.metric != "EM",
            "setting": setting, "train_task": o.train_task, "train_config": _fmt_config(mix), "source": source,
            "source_size": source_size, "n_sources": n_sources, "k": k, "target": tgt, "target_in_mix": k > 0,
            "target_data": target_data, "variant": o.variant, "source_size_basis": o.source_size_basis,
            "score": float(o.score), "_priority": o.priority, "_raw_line": o.raw_line, "_target_raw": o.target,
        })
    return rows


def _anomalies(df: pd.DataFrame) -> pd.Series:
    """Reason per row ('' = keep). Each rule names a published-data defect; scores are never altered.

    1. LangRankPlus xquad_mt5 with *source* Spanish: F1 0.13-1.74 on every target, spa->spa included, while the
       other sources reach a median 8-26 — a broken fine-tuning run, not a transfer result. (The folder's PROVENANCE
       says "target spa"; the file shows it is the spa *transfer_lang* column: Spanish as a target gets 26.6 from
       Arabic, 32.3 from German... Those rows are kept.)
    2. A score of exactly 0 where the same file, model, task and target average > 10 from the other sources: a failed
       run (in xpos: Naija (pcm) -> Assyrian Neo-Aramaic (aii) and -> Old Turkish (otk), 0.0 in all 9 files, while the
       64 other sources reach 16 and 35 on average).
    """
    reason = pd.Series("", index=df.index, dtype=object)
    m1 = ((df["dataset"] == "langrankplus") & (df["model"] == "mt5") & (df["task"] == "xquad")
          & (df["train_config"].str.split(":").str[0] == "spa"))
    reason[m1] = "LangRankPlus xquad_mt5 source spa: F1 < 2 on every target incl. spa->spa (broken fine-tuning run)"
    grp = df.groupby(["dataset_file", "model", "task", "metric", "target"])["score"]
    total, count = grp.transform("sum"), grp.transform("count")
    others_mean = (total - df["score"]) / (count - 1).where(count > 1)
    m2 = (df["score"] == 0.0) & (others_mean > 10.0) & (reason == "")
    reason[m2] = "score exactly 0 while the other sources to this target in the same file average > 10: failed run"
    return reason


def _resolve_duplicates(df: pd.DataFrame, report: BuildReport) -> pd.DataFrame:
    """One row per KEY_COLUMNS. Exact duplicates: keep the preferred copy. Conflicting scores: keep the row with the
    best (lowest) source priority — PRIMARY (the experiment's own authors) < REPRINT_PAPER < REPRINT_README — ties
    broken by dataset order then file and line, so the result never depends on reading order. Each drop is listed."""
    ds_rank = {d: i for i, d in enumerate(DATASET_ORDER)}
    df = df.assign(_ds=df["dataset"].map(ds_rank))
    df = df.sort_values(KEY_COLUMNS + ["_priority", "_ds", "dataset_file", "_raw_line"], kind="mergesort")
    dup = df.duplicated(KEY_COLUMNS, keep=False)
    if dup.any():
        for key, g in df[dup].groupby(KEY_COLUMNS, sort=True):
            keep = g.iloc[0]
            conflicting = g["score"].nunique() > 1
            if conflicting:
                report.conflicts.append({
                    "key": dict(zip(KEY_COLUMNS, key)), "kept": f"{keep['score']:g} ({keep['origin']})",
                    "dropped": "; ".join(f"{r['score']:g} ({r['origin']})" for r in g.iloc[1:].to_dict("records")),
                })
            else:
                report.exact_duplicates += len(g) - 1
            for r in g.iloc[1:].to_dict("records"):
                report.exclusions.append({
                    "dataset": r["dataset"], "dataset_file": r["_path"], "raw_line": r["_raw_line"],
                    "model": r["model"], "task": r["task"], "target_raw": r["_target_raw"], "score": r["score"],
                    "kind": "conflict" if conflicting else "exact duplicate",
                    "reason": (f"conflicts with {keep['score']:g} from {keep['origin']} (higher source priority)"
                               if conflicting else f"same score also in {keep['origin']}"),
                })
    return df.drop_duplicates(KEY_COLUMNS, keep="first").drop(columns="_ds")


# ------------------------------------------------------------------------------------------------ peer table
def _peer_table(raw_dir: Path, codes: _Codes, report: BuildReport) -> pd.DataFrame:
    el_map = parsers.read_el_codes(raw_dir)
    recs = []
    for r in parsers.read_langrank_peer(raw_dir):
        if not math.isfinite(r["score"]):
            report.peer_dropped.append(f"{r['dataset_file']}:{r['raw_line']} {r['target_raw']}<-{r['source_raw']}")
            continue

        def canon(raw: str) -> str:
            c = el_map.get(raw, raw) if r["task"] == "langrank-el" else raw
            got = codes(c)
            if got is None:
                report.peer_unresolved.append(f"{r['task']}:{raw}")
            return got or ""
        feats = {_snake(k): v for k, v in r["features"].items()}
        recs.append({"task": r["task"], "metric": r["metric"], "target": canon(r["target_raw"]),
                     "source": canon(r["source_raw"]), "score": r["score"], "target_raw": r["target_raw"],
                     "source_raw": r["source_raw"], "dataset_file": r["dataset_file"], **feats})
    df = pd.DataFrame(recs)
    feat_cols = sorted(c for c in df.columns if c not in
                       {"task", "metric", "target", "source", "score", "target_raw", "source_raw", "dataset_file"})
    for c in feat_cols:
        df[c] = pd.to_numeric(df[c], errors="coerce") if c not in {"target_lang", "mt_target_lang"} else df[c]
    df = df[["task", "metric", "target", "source", "score", "target_raw", "source_raw", "dataset_file"] + feat_cols]
    df = df.sort_values(["task", "target_raw", "source_raw"], kind="mergesort").reset_index(drop=True)
    report.peer_unresolved = sorted(set(report.peer_unresolved))
    return validate_peer(df)


def _snake(name: str) -> str:
    out = "".join(ch.lower() if ch.isalnum() else "_" for ch in name.strip())
    while "__" in out:
        out = out.replace("__", "_")
    out = out.strip("_")
    return {"target_lang": "mt_target_lang"}.get(out, out)


# ------------------------------------------------------------------------------------------------ build
def build(raw_dir: Path | str = RAW_DIR, out_dir: Path | str = OUT_DIR) -> BuildReport:
    """Read every raw source, apply the rules, validate, and write observations.csv, exclusions.csv,
    peer_langrank.csv and README.md into ``out_dir`` (atomically). Returns the BuildReport."""
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    report = BuildReport()
    codes = _Codes()
    dropped: list[dict] = []
    obs: list[RawObs] = []
    obs += parsers.read_xpos(raw_dir)
    obs += parsers.read_sumeval(raw_dir)
    obs += parsers.read_mt5(raw_dir, dropped)
    obs += parsers.read_langrankplus(raw_dir)
    obs += parsers.read_en_source(raw_dir)
    for d in dropped:
        report.read[d["dataset"]] += 1
        report.exclusions.append({"dataset": d["dataset"], "dataset_file": d["dataset_file"],
                                  "raw_line": d["raw_line"], "model": d["model"], "task": d["task"],
                                  "target_raw": d["target"], "score": float(d["score"]),
                                  "kind": "anomaly/unusable", "reason": d["reason"]})

    df = pd.DataFrame(_canonical_rows(obs, codes, report))
    reason = _anomalies(df)
    for r in df[reason != ""].assign(reason_=reason[reason != ""]).to_dict("records"):
        report.exclusions.append({"dataset": r["dataset"], "dataset_file": r["_path"],
                                  "raw_line": r["_raw_line"], "model": r["model"], "task": r["task"],
                                  "target_raw": r["_target_raw"], "score": r["score"], "kind": "anomaly/unusable",
                                  "reason": r["reason_"]})
    df = df[reason == ""]
    df = _resolve_duplicates(df, report)

    df = df.sort_values(KEY_COLUMNS, kind="mergesort").reset_index(drop=True)
    df["row_id"] = [_row_id(t) for t in df[KEY_COLUMNS].itertuples(index=False, name=None)]
    df = df[COLUMNS].astype({"source_size": "int64", "n_sources": "int64", "k": "int64", "score": "float64",
                             "primary_metric": "bool", "target_in_mix": "bool"})
    for c in df.columns:
        if df[c].dtype == object or str(df[c].dtype).startswith("str"):
            df[c] = df[c].astype(str)
    df = validate_observations(df)
    report.kept.update(df["dataset"].value_counts().to_dict())
    report.n_rows = len(df)
    report.n_k_positive = int((df["k"] > 0).sum())

    peer = _peer_table(raw_dir, codes, report)
    report.peer_rows = len(peer)

    exc = pd.DataFrame(report.exclusions, columns=["dataset", "dataset_file", "raw_line", "model", "task",
                                                   "target_raw", "score", "kind", "reason"])
    exc = exc.sort_values(["dataset", "dataset_file", "raw_line", "target_raw", "model"], kind="mergesort")

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(out_dir / "observations.csv", df)
    atomic_write_csv(out_dir / "exclusions.csv", exc)
    atomic_write_csv(out_dir / "peer_langrank.csv", peer)
    for name in ("observations.csv", "exclusions.csv", "peer_langrank.csv"):
        report.files[name] = _sha256(out_dir / name)

    from training_data.readme import render_readme

    atomic_write_text(out_dir / "README.md", render_readme(report, df, exc, peer))
    return report


def run(raw_dir: Path = RAW_DIR, out_dir: Path = OUT_DIR, quiet: bool = False) -> int:
    """Build and print the report (the `xlt data build` command); 2 when the raw copies are missing."""
    if not Path(raw_dir).is_dir():
        print(f"error: raw directory {raw_dir} does not exist", file=sys.stderr)
        return 2
    try:
        rep = build(Path(raw_dir), Path(out_dir))
    except FileNotFoundError as e:
        print(f"error: raw file missing: {e.filename}", file=sys.stderr)
        return 2
    if not quiet:
        print(rep.table())
        print()
        reasons = Counter(e["reason"] if e["kind"] == "anomaly/unusable" else e["kind"] for e in rep.exclusions)
        print("exclusions (rows, reason):")
        for r, n in sorted(reasons.items(), key=lambda t: (-t[1], t[0])):
            print(f"  {n:6d}  {r}")
        print(f"conflicts resolved by source priority: {len(rep.conflicts)}")
        for c in rep.conflicts[:20]:
            k = c["key"]
            print(f"  {k['model']} {k['task']} {k['metric']} {k['target']} [{k['train_config']}]: kept {c['kept']}; "
                  f"dropped {c['dropped']}")
        if len(rep.conflicts) > 20:
            print(f"  ... {len(rep.conflicts) - 20} more in README.md")
        print(f"peer_langrank.csv: {rep.peer_rows} rows; {len(rep.peer_dropped)} raw rows without a score dropped; "
              f"unresolved codes: {', '.join(rep.peer_unresolved) or '-'}")
    print(f"observations.csv: {rep.n_rows} rows, {rep.n_k_positive} with k > 0, sha256 "
          f"{rep.files['observations.csv'][:16]}")
    return 0




if __name__ == "__main__":
    sys.exit(run())
