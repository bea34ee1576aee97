"""The tabulated TreeSHAP (predictor.treeshap) gives LightGBM's pred_contrib values: on the shipped model (real rows,
rows with missing values, zeros, negative and unseen categories) and on small boosters that exercise every split
kind (NaN and zero as missing, categorical splits, one-leaf trees); and the facade's answers built from it are the
ones LightGBM's own TreeSHAP gives."""
from __future__ import annotations

import numpy as np
import pytest

from predictor.treeshap import TreeShap


def _perturbed(X: np.ndarray, seed: int = 0, n: int = 600) -> np.ndarray:
    rng = np.random.default_rng(seed)
    Y = X[rng.integers(0, len(X), n)].astype(np.float32)
    for value, rate in ((np.nan, 0.15), (0.0, 0.05), (-1.0, 0.05)):
        Y[rng.random(Y.shape) < rate] = value
    m = rng.random(Y.shape) < 0.05
    Y[m] = rng.integers(0, 40, int(m.sum()))  # categories never seen in training, among others
    return Y


def _assert_same(shap: TreeShap, booster, X: np.ndarray) -> None:
    want = booster.predict(X, pred_contrib=True, num_threads=1)
    got = shap(X)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    # the contract the /explain answer states: base value + Σ SHAP = the trees' raw output
    np.testing.assert_allclose(got.sum(axis=1), booster.predict(X, num_threads=1), rtol=0, atol=1e-9)


def test_shipped_model_matches_pred_contrib(predictor):
    booster = predictor.model.booster_
    shap = TreeShap.build(booster)
    assert shap is not None, "the shipped model (depth <= 6) is within the tabulated explainer's reach"
    X = predictor.background[predictor.feature_names].to_numpy(dtype=np.float32)
    _assert_same(shap, booster, X)
    _assert_same(shap, booster, _perturbed(X))
    for n in (1, 5, 8, 9, 17):  # one to several 8-row blocks
        _assert_same(shap, booster, X[:n])
    assert shap(X[:0]).shape == (0, len(predictor.feature_names) + 1)
    for Y in (X[:5], _perturbed(X, seed=4, n=8), X[10:12]):  # SHAP relative to the rows' mean, from differing leaves
        full, rel = shap(Y), shap.relative(Y)
        np.testing.assert_allclose(rel - rel.mean(axis=0), full - full.mean(axis=0), rtol=0, atol=1e-9)


@pytest.mark.parametrize("params", [
    {"zero_as_missing": True},                       # missing type Zero
    {"use_missing": True},                           # missing type NaN where the training data had NaN
    {"use_missing": False},                          # missing type None: NaN counts as 0
    {"max_depth": 3, "num_leaves": 8},
    {"num_leaves": 4, "max_depth": -1, "min_data_in_leaf": 400},  # shallow, with one-leaf trees at the end
])
def test_small_boosters_with_every_split_kind(params):
    import lightgbm as lgb

    rng = np.random.default_rng(1)
    n = 3000
    X = np.column_stack([rng.normal(size=n), rng.integers(0, 6, n), rng.normal(size=n), rng.integers(0, 3, n),
                         np.where(rng.random(n) < 0.3, 0.0, rng.normal(size=n))]).astype(np.float64)
    X[rng.random(n) < 0.1, 0] = np.nan
    y = X[:, 0] * 2 + np.isin(X[:, 1], [1, 4]) * 3 + np.nan_to_num(X[:, 4]) + rng.normal(size=n) * 0.1
    y = np.nan_to_num(y)
    data = lgb.Dataset(X, label=y, categorical_feature=[1, 3], free_raw_data=False)
    booster = lgb.train({"objective": "regression", "verbose": -1, "num_leaves": 15, "max_depth": 5,
                         "min_data_per_group": 5, "cat_smooth": 1, **params}, data, num_boost_round=30)
    shap = TreeShap.build(booster, check=X[:50])
    assert shap is not None
    Y = X.astype(np.float32)
    _assert_same(shap, booster, Y[:300])
    _assert_same(shap, booster, _perturbed(Y, seed=2, n=300))
    # `relative` (only the leaves where the rows' patterns differ): the same differences between rows as full
    # TreeSHAP, for rows that share most features (as a ranking's top rows do), with NaN and zeros among them
    for start in range(0, 400, 8):
        block = Y[start:start + 8].copy()
        if start % 16 == 0:
            block[:, [0, 2, 3]] = block[0, [0, 2, 3]]
        if start % 24 == 0:
            block[::2, 4] = 0.0
            block[1::3, 0] = np.nan
        full, rel = shap(block), shap.relative(block)
        np.testing.assert_allclose(rel - rel.mean(axis=0), full - full.mean(axis=0), rtol=0, atol=1e-9)
    np.testing.assert_allclose(shap.relative(np.repeat(Y[:1], 4, axis=0)), 0.0)  # identical rows: nothing differs


def test_out_of_reach_model_falls_back():
    """Trees deeper than the table allows: no explainer (the facade then keeps LightGBM's pred_contrib)."""
    import lightgbm as lgb

    rng = np.random.default_rng(3)
    X = rng.normal(size=(4000, 12))
    y = (X ** 2).sum(axis=1)
    booster = lgb.train({"objective": "regression", "verbose": -1, "num_leaves": 255, "max_depth": -1,
                         "min_data_in_leaf": 2}, lgb.Dataset(X, label=y), num_boost_round=3)
    assert TreeShap.build(booster) is None


def test_rank_and_explain_answers_equal_lightgbm_treeshap(predictor):
    """The answers a user sees (ranked reasons, /explain contributions) are LightGBM's TreeSHAP's."""
    from predictor import TransferPredictor

    plain = TransferPredictor(predictor.model, predictor.calibration, predictor.manifest, predictor.background,
                              predictor.model_dir, predictor.record)
    plain._treeshap, plain._treeshap_built = None, True  # LightGBM's pred_contrib
    assert predictor.treeshap() is not None
    for q in ({"model": "xlm-r-large", "task": "xnli", "target": "sw"},
              {"model": "mt5-base", "task": "wikiann", "target": "yo", "k": 100},
              {"model": "xlm-r-base", "task": "udpos", "target": "fo", "source_size": 500}):
        fast = predictor.rank(q, None, 8, reasons=3)
        slow = plain.rank(q, None, 8, reasons=3)
        assert fast["source"].tolist() == slow["source"].tolist()
        for a, b in zip(fast["reasons"], slow["reasons"]):
            assert [r["feature"] for r in a] == [r["feature"] for r in b]
            assert [r["text"] for r in a] == [r["text"] for r in b]
            np.testing.assert_allclose([r["contribution"] for r in a], [r["contribution"] for r in b], atol=1e-9)
        e_fast = predictor.explain({**q, "source": "en"})
        e_slow = plain.explain({**q, "source": "en"})
        assert e_fast["contributions"].keys() == e_slow["contributions"].keys()
        for f, v in e_fast["contributions"].items():
            assert v == pytest.approx(e_slow["contributions"][f], abs=1e-9)
        assert e_fast["base_value"] == pytest.approx(e_slow["base_value"], abs=1e-9)
        assert [r["text"] for r in e_fast["reasons"]] == [r["text"] for r in e_slow["reasons"]]

