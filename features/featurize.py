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
# The distances the model sees. URIEL's phonological and inventory vectors (and the featural one, which is mostly
# inventory: 158 of its 289 dimensions) are largely kNN-imputed sound-system features; they say Zulu is farther from
# Xhosa (phonological 0.34, featural 0.15) than Chichewa is (0.11, 0.13), and with them the trees rank Bantu cousins
# above the target's sister language. Genealogy, syntax and geography carry the transfer signal (LangRank's and
# LangRankPlus's strongest single rules are genetic and syntactic); the other three remain available to baselines.
MODEL_DISTANCE_KINDS = ("genetic", "syntactic", "geographic")
MODEL_FAMILIES = ("mt5", "xlm-r", "mbert", "tulrv6")
LITMUS_FEATURES = Path(__file__).resolve().parent / "data" / "litmus_type_overlap.json"
# Below this many rows (a request: one query, a 100-candidate ranking) per-value dicts replace pandas' vectorised
# factorize/indexer machinery, whose fixed set-up costs dominate at that size; same values either way (tests hold it).
SMALL_N = 2000

# One row per *component* of a training mix: a source language with its examples, or the target's own examples
# (the in-language component). A mix scores as its best component (predictor.model), so every feature here is
# defined for every language xlt accepts: no feature exists only for well-studied languages (LITMUS subword overlap
# and URIEL coverage were dropped for that reason; missing URIEL distances are imputed, see `impute_distances`).
FEATURE_NAMES: list[str] = (
    [f"dist_{k}" for k in MODEL_DISTANCE_KINDS]
    + [
        "same_script",
        "same_family",
        "in_language",
        "src_pretrain_log",
        "tgt_pretrain_log",
        "tgt_in_corpus",
        "tgt_relative_pretrain_log",
        "tgt_relative_distance",
        "log_source_size",
        "log1p_other_sources",
        "log1p_other_related",
        "log1p_k",
        "n_source_languages",
        "model_log_params",
        "model_family",
        "task_type",
    ]
)
CATEGORICAL_FEATURES = ("model_family", "task_type")
# More data never lowers a component's score: LightGBM monotone constraints (+1) on these. Adding a language to a mix
# raises the other components' `log1p_other_sources` and `n_source_languages` and adds a component, so with the
# best-component rule a mix never scores lower for more data.
# A larger model of the same family is not worse either (`model_log_params`): in the mT5 paper 35 of 1,000 steps up
# in size lower a result (16 by more than a point), as more data rarely hurts; without the constraint xlt ranked
# XLM-R large below XLM-R base on WikiANN and UD POS for some targets, and sizes beyond the record's went anywhere.
MONOTONE_INCREASING = ("log_source_size", "log1p_other_sources", "log1p_other_related", "log1p_k", "n_source_languages", "same_script",
                       "same_family", "src_pretrain_log", "tgt_pretrain_log", "tgt_relative_pretrain_log",
                       "model_log_params")
# All else equal, a closer source never transfers worse (the premise of choosing a transfer language; close
# relatives lead published POS and NER rankings): -1 monotone constraints on the genealogical, syntactic and
# geographic distances. The phonological, inventory and featural ones stay free: they are mostly kNN-imputed and
# say Zulu is phonologically farther from Xhosa (0.34) than Chichewa is (0.11).
MONOTONE_DECREASING = ("dist_genetic", "dist_syntactic", "dist_geographic")

FEATURE_LABELS: dict[str, str] = {
    **{f"dist_{k}": f"{k} distance to the target" for k in DISTANCE_KINDS},
    "same_script": "same script as the target",
    "same_family": "same language family as the target",
    "in_language": "the target's own examples",
    "src_pretrain_log": "source's share of pretraining data",
    "tgt_pretrain_log": "target's share of pretraining data",
    "tgt_in_corpus": "target is in the pretraining corpus",
    "tgt_relative_pretrain_log": "pretraining data of the target's nearest relative",
    "tgt_relative_distance": "distance to that relative",
    "log_source_size": "fine-tuning examples in this language",
    "log1p_other_sources": "fine-tuning examples in the other source languages",
    "log1p_other_related": "other sources' examples, weighted by closeness to the target",
    "log1p_k": "target-language examples (k)",
    "n_source_languages": "number of source languages",
    "model_log_params": "model size",
    "model_family": "model family",
    "task_type": "task type",
}


@lru_cache(maxsize=1)
def distance_fill() -> dict[str, float]:
    """Value for a URIEL distance that is undefined: genetic 1.0 (an isolate shares no family node with anyone);
    the others the median distance over pairs of 400 evenly spaced URIEL languages (a neutral value, so an unknown
    vector reads as 'typical', not as 'far' — which would make missingness a proxy for how studied a language is)."""
    codes = typology._store().codes
    sample = np.asarray([str(c) for c in codes[:: max(1, len(codes) // 400)]], dtype=object)
    a, b = np.meshgrid(np.arange(len(sample)), np.arange(len(sample)))
    off = a.ravel() != b.ravel()
    d = typology.pair_distances(sample[a.ravel()[off]], sample[b.ravel()[off]])
    fill = {k: float(np.nanmedian(d[k])) for k in DISTANCE_KINDS}
    fill["genetic"] = 1.0
    return fill


def impute_distances(dist: dict) -> dict:
    fill = distance_fill()
    return {k: (np.where(np.isnan(v), fill[k], v) if k in fill else v) for k, v in dist.items()}


def _ppm_log(share: np.ndarray) -> np.ndarray:
    """log1p of a corpus share in parts per million: comparable across corpora with different units."""
    return np.log1p(np.asarray(share, dtype=np.float64) * 1e6)


@lru_cache(maxsize=None)
def _corpus_shares(corpus: str) -> dict[str, float]:
    return dict(registry.corpus_share(corpus))


@lru_cache(maxsize=None)
def _model(model_id: str):
    return registry.resolve_model(model_id, allow_unsized=True)


SCRIPT_VARIANTS = {"Hans": "Hani", "Hant": "Hani"}


@lru_cache(maxsize=None)
def _script(code: str) -> str:
    """ISO 15924 script, '' when unknown (Zzzz/Zyyy never count as a shared script). Simplified and Traditional
    Han (Hans, Hant) are variants of one script (Hani) and share most characters, so Cantonese and Mandarin count
    as written in the same script (UD writes both as 'Chinese'; Mandarin is Cantonese's best POS source in xpos)."""
    try:
        script = resolve(code).script or ""
    except XltError:
        return ""
    script = SCRIPT_VARIANTS.get(script, script)
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


def subword_overlap(models: np.ndarray, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """LITMUS subword type overlap per (model family, source, target); NaN where LITMUS has no value. Partial
    coverage (~100 languages), so it is *not* a model feature: only the LITMUS-style baseline uses it."""
    table = _overlap_table()
    fam = _gather(np.asarray(models, dtype=object), lambda m: _model(m).family if m else "", dtype=object, default="")
    return np.array([table.get(f, {}).get((a, b), np.nan) for f, a, b in zip(fam, sources, targets)],
                    dtype=np.float64)


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
    rows, langs, counts, own = components(norm)
    keep = ~own
    return rows[keep], langs[keep], counts[keep]


def components(norm: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(row index, language, n, is the target's own data) for every language of every query's mix."""
    rows: list[int] = []
    langs: list[str] = []
    counts: list[int] = []
    own: list[bool] = []
    for i, (cfg, target) in enumerate(zip(norm["train_config"].to_numpy(), norm["target"].to_numpy())):
        if not cfg:
            continue
        for part in cfg.split(";"):
            lang, _, n = part.partition(":")
            rows.append(i)
            langs.append(lang)
            counts.append(int(n))
            own.append(lang == target)
    return (np.asarray(rows, dtype=np.int64), np.asarray(langs, dtype=object), np.asarray(counts, dtype=np.float64),
            np.asarray(own, dtype=bool))


def _is_na(value) -> bool:
    """What pd.factorize treats as missing (its code -1) among the values a query column holds."""
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _gather(values: np.ndarray, fn, dtype=np.float64, default=np.nan) -> np.ndarray:
    """fn applied once per distinct value of `values`, broadcast back (values may be millions of repeated codes)."""
    if len(values) == 0:
        return np.zeros(0, dtype=dtype)
    if len(values) < SMALL_N:  # a request's few rows: a dict beats pd.factorize's set-up by ~20x
        distinct = dict.fromkeys(values)
        if len(distinct) == 1:  # one query's rows (a ranking's model, target...): one value, no per-row loop
            v = next(iter(distinct))
            return np.full(len(values), default if _is_na(v) else fn(v), dtype=dtype)
        table: dict = {}
        for v in values:
            if v not in table:
                table[v] = default if _is_na(v) else fn(v)
        return np.array([table[v] for v in values], dtype=dtype)
    codes, uniques = pd.factorize(values)
    table = np.array([fn(u) for u in uniques] + [default], dtype=dtype)
    return table[codes]  # code -1 (missing) picks the trailing default


def _pair_features(langs: np.ndarray, tgts: np.ndarray, corpora: np.ndarray) -> dict:
    """Per (language, target) pair: six distances (imputed where undefined), script/family match, source share."""
    if len(langs) < SMALL_N:
        return _pair_features_small(np.asarray(langs, dtype=object), np.asarray(tgts, dtype=object), corpora)
    out = {k: np.asarray(v, dtype=np.float64) for k, v in impute_distances(typology.pair_distances(langs, tgts)).items()
           if k in DISTANCE_KINDS}
    both = np.concatenate([langs, tgts])
    codes, uniques = pd.factorize(both)
    li, ti = codes[: len(langs)], codes[len(langs):]
    same = li == ti
    for k in DISTANCE_KINDS:
        out[k][same] = 0.0
    script = np.array([_script(u) for u in uniques], dtype=object)
    sid = pd.factorize(script)[0]
    known = script != ""
    out["same_script"] = (((sid[li] == sid[ti]) & known[li]) | same).astype(np.float64)
    family = np.array([_family(u) for u in uniques], dtype=object)
    fid = pd.factorize(family)[0]
    fknown = family != ""
    out["same_family"] = (((fid[li] == fid[ti]) & fknown[li]) | same).astype(np.float64)
    src_share = np.zeros(len(langs))
    for corpus in pd.unique(corpora):
        sel = corpora == corpus
        shares = _corpus_shares(corpus) if corpus else {}
        per = np.array([shares.get(u, 0.0) for u in uniques], dtype=np.float64)
        src_share[sel] = per[li[sel]]
    out["src_pretrain_log"] = _ppm_log(src_share)
    return out


# (language, target) -> float64 row of _PAIR_COLUMNS: a pure function of the pair (the typology table is fixed for the
# process), kept for the serving path so a target asked about again (another model, task or size) skips URIEL.
# Bounded: ~0.2 kB a pair, emptied when full.
_PAIR_COLUMNS = (*DISTANCE_KINDS, "same_script", "same_family")
_PAIR_CACHE: dict[tuple[str, str], np.ndarray] = {}
PAIR_CACHE_MAX = 20_000


def _pair_static(langs: np.ndarray, tgts: np.ndarray) -> np.ndarray:
    """(pairs × _PAIR_COLUMNS) float64: distances (imputed, 0 for a language with itself), script/family match."""
    out = {k: np.asarray(v, dtype=np.float64) for k, v in impute_distances(typology.pair_distances(langs, tgts)).items()
           if k in DISTANCE_KINDS}
    same = np.array([a == b for a, b in zip(langs, tgts)], dtype=bool)
    for k in DISTANCE_KINDS:
        out[k][same] = 0.0
    for name, fn in (("same_script", _script), ("same_family", _family)):
        memo: dict = {}
        a = [memo[u] if u in memo else memo.setdefault(u, fn(u)) for u in langs]
        b = [memo[u] if u in memo else memo.setdefault(u, fn(u)) for u in tgts]
        out[name] = np.array([(x == y and x != "") or s for x, y, s in zip(a, b, same)], dtype=np.float64)
    return np.column_stack([out[c] for c in _PAIR_COLUMNS]) if len(langs) else np.zeros((0, len(_PAIR_COLUMNS)))


# (target, corpus, languages) -> `_pair_features_small`'s columns for one target's candidates (read-only arrays): the
# same target asked about again with the same candidates (another task, another size of the model, the default pool)
# stacks no per-pair rows. Bounded: ~8 kB an entry for 100 candidates, emptied when full.
_RANKING_PAIRS: dict[tuple, dict[str, np.ndarray]] = {}
RANKING_PAIRS_MAX = 512


def _pair_features_small(langs: np.ndarray, tgts: np.ndarray, corpora: np.ndarray) -> dict:
    """`_pair_features` for a request's few pairs: the same values from per-value dicts instead of pd.factorize,
    and each (language, target) pair's static features computed once per process (bounded cache); a ranking's
    candidates for one target and corpus are kept whole as well (`_RANKING_PAIRS`)."""
    if len(langs) and tgts[0] == tgts[-1] and corpora[0] == corpora[-1] and type(tgts[0]) is str \
            and type(corpora[0]) is str and (tgts == tgts[0]).all() and (corpora == corpora[0]).all():
        key = (tgts[0], corpora[0], tuple(langs.tolist()))
        hit = _RANKING_PAIRS.get(key)
        if hit is None:
            hit = _pair_features_rows(langs, tgts, corpora)
            for v in hit.values():
                v.setflags(write=False)
            if len(_RANKING_PAIRS) >= RANKING_PAIRS_MAX:
                _RANKING_PAIRS.clear()
            _RANKING_PAIRS[key] = hit
        return dict(hit)
    return _pair_features_rows(langs, tgts, corpora)


def _pair_features_rows(langs: np.ndarray, tgts: np.ndarray, corpora: np.ndarray) -> dict:
    """`_pair_features_small` from the per-pair cache, row by row."""
    keys = list(zip(langs, tgts))
    rows = {k: _PAIR_CACHE.get(k) for k in dict.fromkeys(keys)}  # local: a concurrent clear cannot lose a row
    miss = [k for k, v in rows.items() if v is None]
    if miss:
        fresh = _pair_static(np.array([k[0] for k in miss], dtype=object), np.array([k[1] for k in miss], dtype=object))
        if len(_PAIR_CACHE) + len(miss) > PAIR_CACHE_MAX:
            _PAIR_CACHE.clear()
        for k, row in zip(miss, fresh):
            rows[k] = row
            if type(k[0]) is str and type(k[1]) is str:
                _PAIR_CACHE[k] = row
    table = np.array([rows[k] for k in keys], dtype=np.float64).reshape(len(keys), len(_PAIR_COLUMNS))
    out = {c: table[:, j] for j, c in enumerate(_PAIR_COLUMNS)}
    shares = {c: (_corpus_shares(c) if c else {}) for c in dict.fromkeys(corpora)}
    out["src_pretrain_log"] = _ppm_log(np.array([shares[c].get(u, 0.0) for u, c in zip(langs, corpora)],
                                                dtype=np.float64))
    return out


def _target_features(corpora: np.ndarray, targets: np.ndarray) -> dict:
    """Per (corpus, target): the target's own pretraining share and its nearest present relative's."""
    if len(targets) < SMALL_N:
        return _target_features_small(corpora, targets)
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
    return _target_dict(table[codes])


def _target_one(corpus, target) -> tuple[float, float, float]:
    corpus = "" if _is_na(corpus) else corpus
    target = "" if _is_na(target) else target
    if not corpus or not target:
        return (np.nan, np.nan, np.nan)
    shares = _corpus_shares(corpus)
    rel, d = nearest_relative(corpus, target)
    return (shares.get(target, 0.0), shares.get(rel, 0.0) if rel else 0.0, d)


def _target_features_small(corpora: np.ndarray, targets: np.ndarray) -> dict:
    distinct = dict.fromkeys(zip(corpora, targets))
    if len(distinct) == 1:  # one query's rows: one (corpus, target)
        return _target_dict(np.tile(np.array(_target_one(*next(iter(distinct))), dtype=np.float64), (len(targets), 1)))
    memo: dict = {}
    table = []
    for key in zip(corpora, targets):
        v = memo.get(key)
        if v is None:
            v = memo[key] = _target_one(*key)
        table.append(v)
    return _target_dict(np.array(table, dtype=np.float64).reshape(-1, 3))


def _target_dict(t: np.ndarray) -> dict:
    return {"tgt_pretrain_log": _ppm_log(t[:, 0]), "tgt_in_corpus": (t[:, 0] > 0).astype(np.float64),
            "tgt_relative_pretrain_log": _ppm_log(t[:, 1]), "tgt_relative_distance": t[:, 2]}


def _featurize_core(models: np.ndarray, task_types: np.ndarray, targets: np.ndarray, k: np.ndarray,
                    rows: np.ndarray, langs: np.ndarray, counts: np.ndarray, own: np.ndarray) -> pd.DataFrame:
    """One float32 row of FEATURE_NAMES per component (rows[i] = its query; own[i] = the target's own data)."""
    return pd.DataFrame(_featurize_matrix(models, task_types, targets, k, rows, langs, counts, own),
                        columns=FEATURE_NAMES)


# the categorical features' codes: a model family's and a task type's position in their lists
_FAMILY_CODE = {f: i for i, f in enumerate(MODEL_FAMILIES)}
_TYPE_CODE = {t: i for i, t in enumerate(registry.TASK_TYPES)}


def _featurize_matrix(models: np.ndarray, task_types: np.ndarray, targets: np.ndarray, k: np.ndarray,
                      rows: np.ndarray, langs: np.ndarray, counts: np.ndarray, own: np.ndarray) -> np.ndarray:
    """`_featurize_core` as a float32 (components × FEATURE_NAMES) array: the serving path stays in numpy."""
    n = len(models)
    m = len(rows)
    models = np.asarray(models, dtype=object)
    targets = np.asarray(targets, dtype=object)
    if m == 0:
        return np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32)
    families = _gather(models, lambda mm: _model(mm).family if mm else "", dtype=object, default="")
    corpora = _gather(models, lambda mm: _model(mm).corpus if mm else "", dtype=object, default="")
    context = _target_features(corpora, targets)
    context["model_log_params"] = np.log10(_gather(models, lambda mm: (_model_params(mm) or np.nan) if mm else np.nan))
    context["model_family"] = _gather(families, lambda f: _FAMILY_CODE.get(f, np.nan))
    context["task_type"] = _gather(np.asarray(task_types, dtype=object), lambda t: _TYPE_CODE.get(t, np.nan))
    context["log1p_k"] = np.log1p(np.asarray(k, dtype=np.float64))
    return _component_matrix({c: v[rows] for c, v in context.items()}, targets[rows], corpora[rows], n, rows, langs,
                             counts, own)


def featurize_one_context(model: str, task_type: str, target: str, k, rows: np.ndarray, langs: np.ndarray,
                          counts: np.ndarray, own: np.ndarray) -> np.ndarray:
    """`_featurize_matrix` for the components of queries that share one model, task type and target (a ranking's,
    a curve's): the same matrix, the per-query columns computed once as numbers instead of per query; `k` is one
    number for all queries or one per query (`rows` index it)."""
    m = len(rows)
    if m == 0:
        return np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32)
    spec = _model(model)
    context = {c: v[0] for c, v in _target_features(np.array([spec.corpus], dtype=object),
                                                      np.array([target], dtype=object)).items()}
    context["model_log_params"] = np.log10(np.float64(_model_params(model) or np.nan))
    context["model_family"] = np.float64(_FAMILY_CODE.get(spec.family, np.nan))
    context["task_type"] = np.float64(_TYPE_CODE.get(task_type, np.nan))
    context["log1p_k"] = np.log1p(np.asarray(k, dtype=np.float64))[rows] if np.ndim(k) else np.log1p(np.float64(k))
    n = int(rows.max()) + 1
    return _component_matrix(context, np.full(m, target, dtype=object), np.full(m, spec.corpus, dtype=object), n,
                             rows, langs, counts, own)


def _component_matrix(context: dict, targets: np.ndarray, corpora: np.ndarray, n: int, rows: np.ndarray,
                      langs: np.ndarray, counts: np.ndarray, own: np.ndarray) -> np.ndarray:
    """The float32 matrix from the per-query columns (`context`: per component, or one number each) and each
    component's language pair, amount and query (`rows`, n queries)."""
    out = _pair_features(langs, targets, corpora)
    for kind in DISTANCE_KINDS:
        out[f"dist_{kind}"] = out.pop(kind)
    out["in_language"] = own.astype(np.float64)
    src_counts = np.where(own, 0.0, counts)
    total = np.bincount(rows, weights=src_counts, minlength=n)
    n_src = np.bincount(rows, weights=(~own).astype(np.float64), minlength=n)
    out["log_source_size"] = np.log1p(counts)
    out["log1p_other_sources"] = np.log1p(np.maximum(total[rows] - src_counts, 0.0))
    # the other sources' examples weighted by their closeness to the target (1 − mean of the three model distances):
    # a 20-language mix with the target's relatives in it is not the same as one without; never lowered by more data
    related = np.clip(1.0 - (out["dist_genetic"] + out["dist_syntactic"] + out["dist_geographic"]) / 3.0, 0.0, 1.0)
    related = related * src_counts
    related_total = np.bincount(rows, weights=related, minlength=n)
    out["log1p_other_related"] = np.log1p(np.maximum(related_total[rows] - related, 0.0))
    out["n_source_languages"] = n_src[rows]
    out.update(context)
    out["tgt_relative_distance"] = np.where(np.isnan(out["tgt_relative_distance"]), 1.0, out["tgt_relative_distance"])
    mat = np.empty((len(rows), len(FEATURE_NAMES)), dtype=np.float32)
    for j, c in enumerate(FEATURE_NAMES):
        mat[:, j] = out[c]
    return mat


def _model_params(model_id: str) -> float | None:
    """Parameters; a model of unknown size counts as its family's default size (registry.SIZED_DEFAULT: the size a
    user who types the family name gets), T-ULRv6 large as XLM-R large (the line it continues)."""
    spec = _model(model_id)
    if spec.n_params:
        return spec.n_params
    default = registry.SIZED_DEFAULT.get(spec.id) or ("xlm-r-large" if spec.family == "tulrv6" else None)
    return registry.resolve_model(default).n_params if default else None


def featurize_components(norm: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Features of every component of every canonical query, the query row each belongs to, and its language."""
    rows, langs, counts, own = components(norm)
    X = _featurize_core(norm["model"].to_numpy(dtype=object), norm["task_type"].to_numpy(dtype=object),
                        norm["target"].to_numpy(dtype=object), norm["k"].to_numpy(dtype=np.float64), rows, langs,
                        counts, own)
    return X, rows, langs


def representative(X: pd.DataFrame, rows: np.ndarray, n: int, score: np.ndarray | None = None) -> np.ndarray:
    """Per query, the component that stands for it: the highest `score` when given (the model's best component),
    else the source with the most examples (ties: genetically closest), else the target's own data."""
    if score is None:
        size = X["log_source_size"].to_numpy(dtype=np.float64)
        src = X["in_language"].to_numpy() == 0
        score = np.where(src, size * 10 - X["dist_genetic"].to_numpy(dtype=np.float64), -1e9 + size)
    order = np.lexsort((-score, rows))  # by query, best first
    first = np.ones(len(order), dtype=bool)
    first[1:] = rows[order][1:] != rows[order][:-1]
    pick = np.full(n, -1, dtype=np.int64)
    pick[rows[order][first]] = order[first]
    return pick


def featurize(norm: pd.DataFrame) -> pd.DataFrame:
    """One float32 row of FEATURE_NAMES per canonical query: its representative component (model-free rule; the
    model picks by its own scores instead). Rows with an empty train_config come out NaN."""
    X, rows, _ = featurize_components(norm)
    pick = representative(X, rows, len(norm))
    out = pd.DataFrame(np.full((len(norm), len(FEATURE_NAMES)), np.nan, dtype=np.float32), columns=FEATURE_NAMES,
                       index=norm.index)
    ok = pick >= 0
    out.iloc[np.flatnonzero(ok)] = X.to_numpy()[pick[ok]]
    return out


def featurize_pairs(model: str, task_type: str, sources: np.ndarray, targets: np.ndarray, source_size: int,
                    k: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Components of many single-source queries sharing model, task and sizes (all-pairs), without query strings:
    each query's source, plus the target's own k examples when k > 0. `model`, `task_type` and the language codes
    must already be canonical (resolve them first)."""
    n = len(sources)
    sources = np.asarray(sources, dtype=object)
    targets = np.asarray(targets, dtype=object)
    rows = np.arange(n, dtype=np.int64)
    langs, counts, own = sources, np.full(n, float(source_size)), sources == targets
    if k:
        rows = np.concatenate([rows, rows])
        langs = np.concatenate([langs, targets])
        counts = np.concatenate([counts, np.full(n, float(k))])
        own = np.concatenate([own, np.ones(n, dtype=bool)])
    X = _featurize_core(np.full(n, model, dtype=object), np.full(n, task_type, dtype=object), targets,
                        np.full(n, float(k)), rows, langs, counts, own)
    return X, rows, langs


def take_components(components: tuple, mask: np.ndarray) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The components of the queries selected by a boolean mask, with their row numbers renumbered to match."""
    X, rows, langs = components
    mask = np.asarray(mask, dtype=bool)
    keep = mask[rows]
    new_index = np.cumsum(mask) - 1
    return X.loc[keep].reset_index(drop=True), new_index[rows[keep]], langs[keep]
