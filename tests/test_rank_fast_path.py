"""Golden test of the serving fast path: a request's few rows (dict look-ups, numpy, the target's own component
scored once) must give what the vectorised batch path (pandas factorize / get_indexer, >= 2,000 rows) gives.

Each small query set is scored alone (fast path) and embedded in a 3,000-row frame of other queries (vectorised
path); features, evidence and scores must agree to 1e-6. `rank` must agree with the same queries scored in bulk.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import registry, typology
from features.evidence import EVIDENCE_FEATURES
from features.featurize import SMALL_N, featurize_components
from features.languages import all_languages
from features.queries import format_train_config, normalize
from predictor.explain import PAIR_RECORD, SOURCE_RECORD
from predictor.intervals import probability_best

MODELS = ["xlm-r-large", "xlm-r-base", "mt5-base", "mt5-large", "mbert", "tulrv6-large"]
TASKS = [("xnli", None), ("pawsx", None), ("tydiqa", None), ("wikiann", None), ("udpos", None),
         ("langrank-mt", None), ("my-new-task", "ner")]  # the last: ad-hoc, served from its type
COMMON = ["eng", "deu", "fra", "spa", "rus", "cmn", "arb", "hin", "jpn", "swh", "yor", "xho", "urd", "fin", "tur",
          "quy", "nav", "eus", "isl", "amh", "tam", "gug", "wol", "hau", "mlt", "cym", "kor", "vie", "tha", "ell"]
ATOL = 1e-6
# (canonical codes only: score_sources takes resolved codes, as rank gives it)


@pytest.fixture(scope="module")
def langs():
    """Common languages plus a random sample of all 8k (most unknown to the record, many outside URIEL)."""
    rng = np.random.default_rng(7)
    every = [lang.code for lang in all_languages()]
    rare = list(rng.choice(every, 60, replace=False))
    assert any(not typology.has_language(c) for c in rare)  # some have no typology vector at all
    return COMMON + rare


def _queries(rng, langs, n: int) -> pd.DataFrame:
    """Random canonical-to-be queries: single sources, sources + k target examples, 2-3 language mixtures."""
    rows = []
    for _ in range(n):
        target = str(rng.choice(langs))
        task, ttype = TASKS[rng.integers(len(TASKS))]
        pool = [c for c in rng.choice(langs, 4, replace=False) if c != target]
        kind = rng.integers(4)
        mix = {pool[0]: int(rng.integers(1, 60000))}
        if kind == 1:
            mix[target] = int(rng.integers(1, 3000))
        elif kind == 2:
            mix.update({c: int(rng.integers(1, 20000)) for c in pool[1:3]})
        elif kind == 3:
            mix.update({pool[1]: int(rng.integers(1, 20000)), target: int(rng.integers(0, 500))})
        rows.append({"model": MODELS[rng.integers(len(MODELS))], "task": task, "task_type": ttype, "target": target,
                     "train_config": format_train_config(mix)})
    norm, err = normalize(pd.DataFrame(rows))
    assert (err == "").all(), err[err != ""].head()
    return norm


def _embedded(small: pd.DataFrame, filler: pd.DataFrame, rng) -> tuple[pd.DataFrame, np.ndarray]:
    """`small` scattered among `filler` rows: (the big frame, where each small row went)."""
    big = pd.concat([filler, small], ignore_index=True)
    perm = rng.permutation(len(big))
    big = big.iloc[perm].reset_index(drop=True)
    where = np.empty(len(perm), dtype=np.int64)
    where[perm] = np.arange(len(perm))
    return big, where[len(filler):]


def _close(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, atol=ATOL, rtol=0)
    assert np.array_equal(np.isnan(a), np.isnan(b))


@pytest.fixture(scope="module")
def filler(langs):
    return _queries(np.random.default_rng(1), langs, 3000)


def test_scores_and_features_small_equal_vectorised(predictor, langs, filler):
    rng = np.random.default_rng(2)
    for trial in range(4):  # 4 × 100 random queries
        small = _queries(rng, langs, 100)
        assert len(small) < SMALL_N <= len(small) + len(filler)
        X1, s1 = predictor.model.score_queries(small)
        big, where = _embedded(small, filler, rng)
        X2, s2 = predictor.model.score_queries(big)
        _close(s1, s2[where])
        _close(X1.to_numpy(), X2.to_numpy()[where])
        assert list(X1.columns) == list(X2.columns) == predictor.feature_names


def test_static_features_and_evidence_small_equal_vectorised(predictor, langs, filler):
    rng = np.random.default_rng(3)
    small = _queries(rng, langs, 300)
    big, where = _embedded(small, filler, rng)
    Xs, rows_s, langs_s = featurize_components(small)
    Xb, rows_b, langs_b = featurize_components(big)
    # components of small row i in the big frame: those of big row where[i], in the same (config) order
    order = np.concatenate([np.flatnonzero(rows_b == w) for w in where])
    assert list(langs_b[order]) == list(langs_s)
    _close(Xs.to_numpy(), Xb.to_numpy()[order])
    ev = predictor.model.evidence_
    Es = ev.component_values(small, rows_s, langs_s)
    Eb = ev.component_values(big, rows_b, langs_b)
    assert list(Es.columns) == EVIDENCE_FEATURES
    _close(Es.to_numpy(), Eb.to_numpy()[order])
    assert Es.notna().any().all() and Es.isna().any().any()  # both regimes: record evidence and none


def test_pair_distances_small_equal_vectorised(langs):
    rng = np.random.default_rng(4)
    a, b = rng.choice(langs, 3000), rng.choice(langs, 3000)
    big = typology.pair_distances(a, b)
    small = typology.pair_distances(a[:150], b[:150])
    for k, v in small.items():
        _close(v, big[k][:150])


def _rank_reference(predictor, model, task, task_type, target, cands, size, k, filler, rng):
    """Scores and best-component features of a ranking's queries, scored among 3,000 others (vectorised path)."""
    rows = [{"model": model, "task": task, "task_type": task_type, "target": target,
             "train_config": format_train_config({c: size, **({target: k} if k else {})})} for c in cands]
    norm, err = normalize(pd.DataFrame(rows))
    assert (err == "").all()
    big, where = _embedded(norm, filler, rng)
    X, s = predictor.model.score_queries(big)
    return X.to_numpy()[where], s[where], predictor.model.query_source_offsets(norm)


@pytest.mark.parametrize("k", [0, 7, 300])
def test_score_sources_equals_score_queries(predictor, langs, filler, k):
    rng = np.random.default_rng(5 + k)
    for model, (task, ttype), target in [("xlm-r-large", ("xnli", None), "swh"), ("mt5-base", ("tydiqa", None), "tel"),
                                         ("mbert", ("udpos", None), str(langs[-1])),
                                         ("xlm-r-base", ("my-new-task", "ner"), "nav"),
                                         ("xlm-r-base", ("udpos", None), "xho"),   # source offsets: unseen target
                                         ("xlm-r-base", ("udpos", None), "deu")]:  # pair offsets: published target
        cands = [str(c) for c in rng.choice(langs, 80, replace=False) if c != target]
        norm1, _ = normalize(pd.DataFrame([{"model": model, "task": task, "task_type": ttype, "target": target,
                                            "source": cands[0], "source_size": 1000}]))
        tt = norm1["task_type"].iloc[0]
        X1, s1, o1 = predictor.model.score_sources(norm1["model"].iloc[0], norm1["task"].iloc[0], tt, target, cands,
                                                   1234, k)
        X2, s2, o2 = _rank_reference(predictor, model, task, ttype, target, cands, 1234, k, filler, rng)
        _close(o1, o2)  # the source or pair offset in each query's best component, as /explain names it
        _close(s1, s2)
        _close(X1, X2)


def test_rank_equals_bulk_scoring(predictor, langs, filler):
    rng = np.random.default_rng(6)
    cases = [({"model": "xlm-r-large", "task": "xnli", "target": "sw"}, 0, None),
             ({"model": "mt5-base", "task": "wikiann", "target": "yo", "k": 50}, 50, None),
             ({"model": "xlm-r-large", "task": "udpos", "target": "nv", "source_size": 800}, 0, 800),
             ({"model": "mbert", "task": "my-new-task", "task_type": "ner", "target": "qu", "source_size": 500}, 0,
              500)]
    for query, k, size in cases:
        cands = [str(c) for c in rng.choice(COMMON, 25, replace=False)]
        r = predictor.rank(query, cands)
        t = predictor.rank_table(query, cands)
        assert list(r["source"]) == list(t.columns["source"]) and r.attrs["regime"] == t.regime
        norm1, _ = normalize(pd.DataFrame([{**{f: query.get(f) for f in ("model", "task", "task_type", "target")},
                                            "source": "eng"}]))
        target, ttype = norm1["target"].iloc[0], norm1["task_type"].iloc[0]
        size = size or int(norm1["source_size"].iloc[0])
        src = list(r["source"])
        X, s, _ = _rank_reference(predictor, query["model"], query["task"], query.get("task_type"), target, src,
                               size, k, filler, rng)
        _close(r["predicted_score"], s)
        assert (np.diff(r["predicted_score"].to_numpy()) <= 0).all()
        # reasons: SHAP of the top 5 best components relative to their mean, features equal for all left out
        contrib = predictor.model.contributions(pd.DataFrame(X[:5], columns=predictor.feature_names))
        effect = contrib - contrib.mean(axis=0)
        # the source's / pair's record offset is a reason like any SHAP value, relative to the same rows' mean
        m = min(5, len(src))
        so = predictor.model.component_source_offsets(
            X[:m], np.full(m, registry.resolve_model(query["model"]).id, dtype=object),
            np.full(m, norm1["task"].iloc[0], dtype=object), np.full(m, target, dtype=object),
            np.asarray(src[:m], dtype=object))
        so = np.zeros(m) if so is None else so
        for i, reasons in enumerate(r["reasons"][:5]):
            for reason in reasons:
                if reason["feature"] in (PAIR_RECORD, SOURCE_RECORD):
                    assert abs(reason["contribution"] - (so[i] - so.mean())) < ATOL
                    continue
                j = predictor.feature_names.index(reason["feature"])
                assert abs(reason["contribution"] - effect[i, j]) < ATOL
        assert all(x == [] for x in r["reasons"][5:])
        p = probability_best(r["predicted_score"].to_numpy(), predictor.calibration.within_target_sd_)
        _close(r["p_best"], p)


def test_probability_best_matches_sampling():
    rng = np.random.default_rng(8)
    for n, spread, sd in [(3, 1.0, 1.0), (100, 6.0, 6.7), (40, 0.5, 2.0), (2, 0.0, 1.0)]:
        s = rng.normal(60, spread, n)
        p = probability_best(s, sd)
        assert abs(p.sum() - 1) < 1e-12 and (p >= 0).all()
        sims = s[None, :] + rng.normal(0.0, sd, size=(100_000, n))
        mc = np.bincount(np.argmax(sims, axis=1), minlength=n) / 100_000
        assert np.abs(p - mc).max() < 0.01  # ~6 standard errors of the 100k-draw estimate



def test_probability_best_default_grid_matches_a_fine_one():
    """The served trapezoid grid (0.4 sd) gives the integral a 0.005 grid gives, within 1e-6, on random rankings."""
    rng = np.random.default_rng(11)
    for _ in range(100):
        n = int(rng.integers(2, 120))
        s = rng.normal(60, rng.uniform(0.5, 15), n)
        sd = float(rng.uniform(0.5, 8))
        assert np.abs(probability_best(s, sd) - probability_best(s, sd, step=0.005)).max() < 1e-6

def test_warm_pairs_change_no_answer(model_dir):
    """The start-up warm-up featurizes the pairs of the default candidates ahead of time (`_warm_pairs`): rankings
    are bit-identical with and without it, and it stays within half the per-pair cache."""
    from features import featurize as F
    from predictor import TransferPredictor
    from predictor.facade import WARM_MODEL

    cands = ["en", "de", "sw", "yo", "qu", "la", "wo", "ta"]
    qs = [{"model": m, "task": t, "target": tg} for m in ("xlm-r-large", "mt5-base") for t in ("xnli", "udpos")
          for tg in ("fi", "yo")]
    F._PAIR_CACHE.clear()
    F._RANKING_PAIRS.clear()
    cold = TransferPredictor.load(model_dir)
    before = [cold.rank_table(q, cands, 5).columns for q in qs]
    F._PAIR_CACHE.clear()
    F._RANKING_PAIRS.clear()
    warm = TransferPredictor.load(model_dir)
    n = warm._warm_pairs(WARM_MODEL)
    assert 1000 < n <= F.PAIR_CACHE_MAX // 2 and len(F._PAIR_CACHE) >= n
    after = [warm.rank_table(q, cands, 5).columns for q in qs]
    for b, a in zip(before, after):
        assert list(b) == list(a)
        for c in b:
            if isinstance(b[c], np.ndarray) and b[c].dtype.kind == "f":
                np.testing.assert_array_equal(b[c], a[c])
            else:
                assert list(b[c]) == list(a[c]), c


def test_a_rankings_pair_features_are_kept_whole_and_cannot_be_changed():
    """One target's candidates (same corpus) are featurized once and kept whole (`_RANKING_PAIRS`): the kept
    columns equal the per-pair path's, come back as a fresh dict each time, and are read-only."""
    from features import featurize as F

    langs = np.array(["eng", "deu", "zul", "xho", "nav", "eng"], dtype=object)
    tgts = np.full(len(langs), "swh", dtype=object)
    corpora = np.full(len(langs), "cc100", dtype=object)
    F._RANKING_PAIRS.clear()
    first = F._pair_features_small(langs, tgts, corpora)
    assert len(F._RANKING_PAIRS) == 1
    first.pop("src_pretrain_log")
    again = F._pair_features_small(langs, tgts, corpora)
    rows = F._pair_features_rows(langs, tgts, corpora)
    assert set(again) == set(rows) and "src_pretrain_log" in again
    for c in rows:
        np.testing.assert_array_equal(again[c], rows[c])
        with pytest.raises(ValueError):
            again[c][0] = 1.0
    mixed = F._pair_features_small(langs, np.array(["swh"] * 5 + ["eng"], dtype=object), corpora)  # two targets
    assert len(F._RANKING_PAIRS) == 1 and mixed["genetic"][-1] == 0.0 and mixed["genetic"][0] > 0.5


def test_score_sources_takes_one_k_per_query(predictor):
    """A curve's points (one source, many k) in one call equal one call per k: scores, features and offsets."""
    m = predictor.model
    for model, task, ttype, target, source in [("xlm-r-large", "xnli", "classification", "swh", "eng"),
                                               ("xlm-r-base", "udpos", "pos", "deu", "nld"),
                                               ("xlm-r-xl", "wikiann", "ner", "yor", "eng")]:
        ks = np.array([0, 1, 7, 50, 300, 0, 5000])
        X, s, o = m.score_sources(model, task, ttype, target, np.full(len(ks), source, dtype=object), 2000, ks)
        for i, k in enumerate(ks):
            Xi, si, oi = m.score_sources(model, task, ttype, target, [source], 2000, int(k))
            _close(s[i:i + 1], si)
            _close(X[i:i + 1], Xi)
            _close(o[i:i + 1], oi)
