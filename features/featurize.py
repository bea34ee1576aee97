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


def _gather(values: np.ndarray, fn, dtype=np.float64, default=np.nan) -> np.ndarray:
    """fn applied once per distinct value of `values`, broadcast back (values may be millions of repeated codes)."""
    if len(values) == 0:
        return np.zeros(0, dtype=dtype)
    codes, uniques = pd.factorize(values)
    table = np.array([fn(u) for u in uniques] + [default], dtype=dtype)
    return table[codes]  # code -1 (missing) picks the trailing default


@lru_cache(maxsize=None)
def _overlap_dense(family: str) -> tuple[dict[str, int], np.ndarray]:
    table = _overlap_table().get(family, {})
    langs = sorted({a for a, _ in table} | {b for _, b in table})
    index = {c: i for i, c in enumerate(langs)}
    m = np.full((len(langs) + 1, len(langs) + 1), np.nan)  # last row/column: language without overlap data
    for (a, b), v in table.items():
        m[index[a], index[b]] = v
    return index, m


def _pair_features(langs: np.ndarray, tgts: np.ndarray, families: np.ndarray, corpora: np.ndarray) -> dict:
    """Per (source, target) pair: six distances, coverage, script/family match, subword overlap, source share."""
    dist = typology.pair_distances(langs, tgts)
    out = {k: np.asarray(dist[k], dtype=np.float64) for k in (*DISTANCE_KINDS, "coverage")}
    both = np.concatenate([langs, tgts])
    codes, uniques = pd.factorize(both)
    li, ti = codes[: len(langs)], codes[len(langs):]
    script = np.array([_script(u) for u in uniques], dtype=object)
    sid = pd.factorize(script)[0]
    known = script != ""
    out["same_script"] = ((sid[li] == sid[ti]) & known[li]).astype(np.float64)
    family = np.array([_family(u) for u in uniques], dtype=object)
    fid = pd.factorize(family)[0]
    fknown = family != ""
    out["same_family"] = ((fid[li] == fid[ti]) & fknown[li]).astype(np.float64)
    ov = np.full(len(langs), np.nan)
    src_share = np.zeros(len(langs))
    for fam in pd.unique(families):
        sel = families == fam
        index, m = _overlap_dense(fam)
        oi = np.array([index.get(u, len(index)) for u in uniques], dtype=np.int64)
        ov[sel] = m[oi[li[sel]], oi[ti[sel]]]
    for corpus in pd.unique(corpora):
        sel = corpora == corpus
        shares = _corpus_shares(corpus) if corpus else {}
        per = np.array([shares.get(u, 0.0) for u in uniques], dtype=np.float64)
        src_share[sel] = per[li[sel]]
    out["subword_overlap"] = ov
    out["src_pretrain_log"] = _ppm_log(src_share)
    return out


def _target_features(corpora: np.ndarray, targets: np.ndarray) -> dict:
    """Per (corpus, target): the target's own pretraining share and its nearest present relative's."""
    cc, cu = pd.factorize(np.asarray(corpora, dtype=object))
    tc, tu = pd.factorize(np.asarray(targets, dtype=object))
    codes, uniques = pd.factorize(cc.astype(np.int64) * (len(tu) + 1) + tc)

    def one(key: int) -> tuple[float, float, float]:
        ci, ti = divmod(int(key), len(tu) + 1)
        corpus, target = (cu[ci] if ci >= 0 else ""), (tu[ti] if 0 <= ti < len(tu) else "")
        if not corpus or not target:
            return (np.nan, np.nan, np.nan)
        shares = _corpus_shares(corpus)
        rel, d = nearest_relative(corpus, target)
        return (shares.get(target, 0.0), shares.get(rel, 0.0) if rel else 0.0, d)

    table = np.array([one(u) for u in uniques] + [(np.nan, np.nan, np.nan)], dtype=np.float64)
    t = table[codes]
    return {"tgt_pretrain_log": _ppm_log(t[:, 0]), "tgt_in_corpus": (t[:, 0] > 0).astype(np.float64),
            "tgt_relative_pretrain_log": _ppm_log(t[:, 1]), "tgt_relative_distance": t[:, 2]}


def _featurize_core(models: np.ndarray, task_types: np.ndarray, targets: np.ndarray, source_size: np.ndarray,
                    k: np.ndarray, rows: np.ndarray, langs: np.ndarray, counts: np.ndarray, index=None) -> pd.DataFrame:
    n = len(models)
    out = {name: np.full(n, np.nan) for name in FEATURE_NAMES}
    if n == 0:
        return pd.DataFrame({c: v.astype(np.float32) for c, v in out.items()}, columns=FEATURE_NAMES)
    models = np.asarray(models, dtype=object)
    targets = np.asarray(targets, dtype=object)
    families = _gather(models, lambda m: _model(m).family if m else "", dtype=object, default="")
    corpora = _gather(models, lambda m: _model(m).corpus if m else "", dtype=object, default="")

    if len(rows):
        single = len(rows) == n and bool((rows == np.arange(n)).all())  # one source per query: no reduction
        pair = _pair_features(langs, targets[rows], families[rows], corpora[rows])
        w = np.ones(len(rows)) if single else counts / np.bincount(rows, weights=counts, minlength=n)[rows]
        mean = (lambda x: x) if single else (lambda x: _weighted_mean(rows, w, x, n))  # noqa: E731
        for kind in DISTANCE_KINDS:
            out[f"dist_{kind}"] = mean(pair[kind])
            out[f"dist_{kind}_min"] = pair[kind] if single else _group_min(rows, pair[kind], n)
        out["uriel_coverage"] = mean(pair["coverage"])
        for name in ("same_script", "same_family", "subword_overlap", "src_pretrain_log"):
            out[name] = mean(pair[name])
        out["n_source_languages"] = np.bincount(rows, minlength=n).astype(np.float64)
    else:
        out["n_source_languages"] = np.zeros(n)

    out.update(_target_features(corpora, targets))
    out["log_source_size"] = np.log1p(np.asarray(source_size, dtype=np.float64))
    out["log1p_k"] = np.log1p(np.asarray(k, dtype=np.float64))
    params = _gather(models, lambda m: (_model(m).n_params or np.nan) if m else np.nan)
    out["model_log_params"] = np.log10(params)
    fam_code = {f: i for i, f in enumerate(MODEL_FAMILIES)}
    out["model_family"] = _gather(families, lambda f: fam_code.get(f, np.nan))
    type_code = {t: i for i, t in enumerate(registry.TASK_TYPES)}
    out["task_type"] = _gather(np.asarray(task_types, dtype=object), lambda t: type_code.get(t, np.nan))
    return pd.DataFrame({c: out[c].astype(np.float32) for c in FEATURE_NAMES}, index=index, columns=FEATURE_NAMES)


def featurize(norm: pd.DataFrame) -> pd.DataFrame:
    """One float32 row of FEATURE_NAMES per canonical query (rows with empty train_config come out NaN)."""
    rows, langs, counts = explode(norm)
    return _featurize_core(norm["model"].to_numpy(dtype=object), norm["task_type"].to_numpy(dtype=object),
                           norm["target"].to_numpy(dtype=object), norm["source_size"].to_numpy(dtype=np.float64),
                           norm["k"].to_numpy(dtype=np.float64), rows, langs, counts, index=norm.index)


def featurize_pairs(model: str, task_type: str, sources: np.ndarray, targets: np.ndarray, source_size: int,
                    k: int = 0) -> pd.DataFrame:
    """Features for many single-source queries sharing model, task and sizes (all-pairs), without query strings.

    `model`, `task_type` and the language codes must already be canonical (resolve them first).
    """
    n = len(sources)
    sources = np.asarray(sources, dtype=object)
    targets = np.asarray(targets, dtype=object)
    return _featurize_core(np.full(n, model, dtype=object), np.full(n, task_type, dtype=object), targets,
                           np.full(n, float(source_size)), np.full(n, float(k)), np.arange(n, dtype=np.int64),
                           sources, np.full(n, float(source_size)))
