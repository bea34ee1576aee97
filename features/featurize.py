"""Numbers for canonical queries: URIEL distances, pretraining and fine-tuning sizes, script/family match, overlap.

Mixtures are exploded into (query, source language, n) pairs, per-pair features are computed in one vectorized
pass, then reduced back per query (size-weighted mean and minimum). The target's own examples are not a "source":
they enter as k. Feature names are snake_case; FEATURE_LABELS gives the words a SHAP plot or a reason shows.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from features import registry, typology
from features.languages import resolve, resolve_code
from features.errors import XltError

DISTANCE_KINDS = typology.DISTANCE_KINDS
MODEL_FAMILIES = ("mt5", "xlm-r", "mbert", "tulrv6")
LITMUS_FEATURES = Path(__file__).resolve().parent / "data" / "litmus_type_overlap.json"

FEATURE_NAMES: list[str] = (
    [f"dist_{k}" for k in DISTANCE_KINDS]
    + [f"dist_{k}_min" for k in DISTANCE_KINDS]
    + [
        "uriel_coverage",
        "same_script",
        "same_family",
        "subword_overlap",
        "src_pretrain_log",
        "tgt_pretrain_log",
        "tgt_in_corpus",
        "tgt_relative_pretrain_log",
        "tgt_relative_distance",
        "log_source_size",
        "log1p_k",
        "n_source_languages",
        "model_log_params",
        "model_family",
        "task_type",
    ]
)
CATEGORICAL_FEATURES = ("model_family", "task_type")
# The score may only grow with more data: LightGBM monotone constraints (+1) on these.
MONOTONE_INCREASING = ("log_source_size", "log1p_k")

FEATURE_LABELS: dict[str, str] = {
    **{f"dist_{k}": f"{k} distance to the target" for k in DISTANCE_KINDS},
    **{f"dist_{k}_min": f"closest source's {k} distance" for k in DISTANCE_KINDS},
    "uriel_coverage": "URIEL coverage of the pair",
    "same_script": "same script as the target",
    "same_family": "same language family as the target",
    "subword_overlap": "subword vocabulary overlap with the target",
    "src_pretrain_log": "source's share of pretraining data",
    "tgt_pretrain_log": "target's share of pretraining data",
    "tgt_in_corpus": "target is in the pretraining corpus",
    "tgt_relative_pretrain_log": "pretraining data of the target's nearest relative",
    "tgt_relative_distance": "distance to that relative",
    "log_source_size": "fine-tuning examples in the source language(s)",
    "log1p_k": "target-language examples (k)",
    "n_source_languages": "number of source languages",
    "model_log_params": "model size",
    "model_family": "model family",
    "task_type": "task type",
}


def _ppm_log(share: np.ndarray) -> np.ndarray:
    """log1p of a corpus share in parts per million: comparable across corpora with different units."""
    return np.log1p(np.asarray(share, dtype=np.float64) * 1e6)


@lru_cache(maxsize=None)
def _corpus_shares(corpus: str) -> dict[str, float]:
    return dict(registry.corpus_share(corpus))


@lru_cache(maxsize=None)
def _model(model_id: str):
    return registry.resolve_model(model_id)


@lru_cache(maxsize=None)
def _script(code: str) -> str:
    """ISO 15924 script, '' when unknown (Zzzz/Zyyy never count as a shared script)."""
    try:
        script = resolve(code).script or ""
    except XltError:
        return ""
    return "" if script in ("Zzzz", "Zyyy", "Zxxx") else script


@lru_cache(maxsize=None)
def _family(code: str) -> str:
    return typology.family_of(code) or ""


@lru_cache(maxsize=None)
def _overlap_table() -> dict[str, dict[tuple[str, str], float]]:
    """LITMUS subword type overlap per model family, keyed by canonical codes (mT5 uses XLM-R's: both 250k SPM)."""
    if not LITMUS_FEATURES.exists():
        return {}
    raw = json.loads(LITMUS_FEATURES.read_text())
    table: dict[str, dict[tuple[str, str], float]] = {}
    for family, matrix in raw.items():
        out: dict[tuple[str, str], float] = {}
        for a, row in matrix.items():
            for b, v in row.items():
                try:
                    out[(resolve_code(a), resolve_code(b))] = float(v)
                except XltError:
                    continue
        table[family] = out
    if "xlm-r" in table:
        table.setdefault("mt5", table["xlm-r"])
    return table


@lru_cache(maxsize=4096)
def nearest_relative(corpus: str, target: str) -> tuple[str | None, float]:
    """The corpus language closest to `target` (genetic, ties broken geographically), and its genetic distance."""
    shares = _corpus_shares(corpus)
    if target in shares and shares[target] > 0:
        return target, 0.0
    langs = np.array([c for c, s in shares.items() if s > 0])
    if len(langs) == 0 or not typology.has_language(target):
        return None, float("nan")
    d = typology.pair_distances(langs, np.full(len(langs), target))
    gen = np.nan_to_num(d["genetic"], nan=2.0)
    geo = np.nan_to_num(d["geographic"], nan=2.0)
    best = int(np.argmin(gen + 0.01 * geo))
    return str(langs[best]), float(d["genetic"][best])


def explode(norm: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row index, source language, n) for every non-target language of every query's mix."""
    rows: list[int] = []
    langs: list[str] = []
    counts: list[int] = []
    for i, (cfg, target) in enumerate(zip(norm["train_config"].to_numpy(), norm["target"].to_numpy())):
        if not cfg:
            continue
        for part in cfg.split(";"):
            lang, _, n = part.partition(":")
            if lang != target:
                rows.append(i)
                langs.append(lang)
                counts.append(int(n))
    return np.asarray(rows, dtype=np.int64), np.asarray(langs, dtype=object), np.asarray(counts, dtype=np.float64)


def _weighted_mean(rows: np.ndarray, w: np.ndarray, x: np.ndarray, n: int) -> np.ndarray:
    ok = ~np.isnan(x)
    num = np.bincount(rows[ok], weights=w[ok] * x[ok], minlength=n)
    den = np.bincount(rows[ok], weights=w[ok], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _group_min(rows: np.ndarray, x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, np.inf)
    np.fmin.at(out, rows, np.where(np.isnan(x), np.inf, x))
    return np.where(np.isinf(out), np.nan, out)


def featurize(norm: pd.DataFrame) -> pd.DataFrame:
    """One float32 row of FEATURE_NAMES per canonical query (rows with empty train_config come out NaN)."""
    n = len(norm)
    out = {name: np.full(n, np.nan) for name in FEATURE_NAMES}
    if n == 0:
        return pd.DataFrame({k: v.astype(np.float32) for k, v in out.items()}, columns=FEATURE_NAMES)

    model_ids = norm["model"].to_numpy()
    targets = norm["target"].to_numpy().astype(object)
    specs = {m: _model(m) for m in pd.unique(model_ids) if m}
    families = np.array([specs[m].family if m else "" for m in model_ids], dtype=object)
    corpora = np.array([specs[m].corpus if m else "" for m in model_ids], dtype=object)

    rows, langs, counts = explode(norm)
    if len(rows):
        w = counts / np.bincount(rows, weights=counts, minlength=n)[rows]
        tgt_of_pair = targets[rows]
        dist = typology.pair_distances(langs.astype(str), tgt_of_pair.astype(str))
        for kind in DISTANCE_KINDS:
            x = np.asarray(dist[kind], dtype=np.float64)
            out[f"dist_{kind}"] = _weighted_mean(rows, w, x, n)
            out[f"dist_{kind}_min"] = _group_min(rows, x, n)
        out["uriel_coverage"] = _weighted_mean(rows, w, np.asarray(dist["coverage"], dtype=np.float64), n)

        script_pair = np.array([_script(a) == _script(b) and _script(a) != "" for a, b in zip(langs, tgt_of_pair)],
                               dtype=np.float64)
        out["same_script"] = _weighted_mean(rows, w, script_pair, n)
        fam_pair = np.array([(_family(a) == _family(b)) and _family(a) != "" for a, b in zip(langs, tgt_of_pair)],
                            dtype=np.float64)
        out["same_family"] = _weighted_mean(rows, w, fam_pair, n)

        overlap = _overlap_table()
        fam_of_pair = families[rows]
        ov = np.array([overlap.get(f, {}).get((a, b), np.nan) for f, a, b in zip(fam_of_pair, langs, tgt_of_pair)],
                      dtype=np.float64)
        out["subword_overlap"] = _weighted_mean(rows, w, ov, n)

        corp_of_pair = corpora[rows]
        src_share = np.array([_corpus_shares(c).get(a, 0.0) for c, a in zip(corp_of_pair, langs)], dtype=np.float64)
        out["src_pretrain_log"] = _weighted_mean(rows, w, _ppm_log(src_share), n)
        out["n_source_languages"] = np.bincount(rows, minlength=n).astype(np.float64)
    else:
        out["n_source_languages"] = np.zeros(n)

    tgt_share = np.zeros(n)
    rel_share = np.zeros(n)
    rel_dist = np.full(n, np.nan)
    for key in pd.unique(pd.Series(corpora.astype(str)) + "\x00" + pd.Series(targets.astype(str))):
        corpus, _, target = key.partition("\x00")
        if not corpus or not target:
            continue
        sel = (corpora == corpus) & (targets == target)
        shares = _corpus_shares(corpus)
        tgt_share[sel] = shares.get(target, 0.0)
        rel, d = nearest_relative(corpus, target)
        rel_share[sel] = shares.get(rel, 0.0) if rel else 0.0
        rel_dist[sel] = d
    out["tgt_pretrain_log"] = _ppm_log(tgt_share)
    out["tgt_in_corpus"] = (tgt_share > 0).astype(np.float64)
    out["tgt_relative_pretrain_log"] = _ppm_log(rel_share)
    out["tgt_relative_distance"] = rel_dist

    out["log_source_size"] = np.log1p(norm["source_size"].to_numpy(dtype=np.float64))
    out["log1p_k"] = np.log1p(norm["k"].to_numpy(dtype=np.float64))
    params = np.array([specs[m].n_params if m and specs[m].n_params else np.nan for m in model_ids], dtype=np.float64)
    out["model_log_params"] = np.log10(params)
    fam_code = {f: i for i, f in enumerate(MODEL_FAMILIES)}
    out["model_family"] = np.array([fam_code.get(f, np.nan) for f in families], dtype=np.float64)
    type_code = {t: i for i, t in enumerate(registry.TASK_TYPES)}
    out["task_type"] = np.array([type_code.get(t, np.nan) for t in norm["task_type"].to_numpy()], dtype=np.float64)

    return pd.DataFrame({k: out[k].astype(np.float32) for k in FEATURE_NAMES}, index=norm.index, columns=FEATURE_NAMES)
