"""A bag of boosters served as one LightGBM model (predictor.model.average_boosters): same predictions and SHAP as
the mean of its members, a file the artifact check accepts, and a bagged regressor that round-trips."""
from __future__ import annotations

import numpy as np
import pytest

from predictor import artifacts
from predictor.model import TransferRegressor, average_boosters, normalize_observations
from predictor.train import load_observations, trainable
from predictor.treeshap import TreeShap


@pytest.fixture(scope="module")
def members():
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    X = rng.random((400, 6)).astype(np.float32)
    X[:, 5] = rng.integers(0, 3, 400)
    y = 10 * X[:, 0] + 5 * X[:, 1] * X[:, 2] + 3 * (X[:, 5] == 1)
    data = lgb.Dataset(X, label=y, categorical_feature=[5], free_raw_data=False)
    params = {"verbose": -1, "bagging_fraction": 0.7, "bagging_freq": 1, "min_data_in_leaf": 5, "num_threads": 1}
    boosters = [lgb.train({**params, "seed": s}, data, num_boost_round=n) for s, n in ((1, 12), (2, 9), (3, 15))]
    return boosters, X


def test_the_merged_model_predicts_and_explains_the_mean_of_its_members(members):
    import lightgbm as lgb

    boosters, X = members
    merged = lgb.Booster(model_str=average_boosters(boosters))
    assert merged.num_trees() == 12 + 9 + 15
    mean = np.mean([b.predict(X) for b in boosters], axis=0)
    np.testing.assert_allclose(merged.predict(X), mean, rtol=0, atol=1e-10)
    contrib = np.mean([b.predict(X, pred_contrib=True) for b in boosters], axis=0)
    np.testing.assert_allclose(merged.predict(X, pred_contrib=True), contrib, rtol=0, atol=1e-10)


def test_the_merged_text_passes_the_artifact_check(members):
    boosters, _ = members
    artifacts.check_lightgbm_text(average_boosters(boosters).encode())


def test_a_bagged_regressor_round_trips_and_its_shap_tables_build():
    obs = trainable(load_observations()).sample(5000, random_state=2)
    m = TransferRegressor(n_estimators=30, n_bags=3, learning_rate=0.3, n_jobs=1).fit(obs)
    assert m.booster_.num_trees() == 30
    files = {k: v.encode() for k, v in m.to_files().items()}
    again = TransferRegressor.from_files(files)
    norm = normalize_observations(obs.head(200))
    assert np.array_equal(m.score_queries(norm)[1], again.score_queries(norm)[1])
    probe = np.random.default_rng(1).random((16, len(m.feature_names_))).astype(np.float32)
    assert TreeShap.build(again.booster_, check=probe) is not None
