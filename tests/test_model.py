"""TransferRegressor on real observations: level + deviation boosters, additive SHAP, monotone data curve, text
round trip, and no leak of the query target through the neighbour features."""
import numpy as np
import pandas as pd
import pytest

from predictor.model import TransferRegressor, featurize_observations, normalize_observations, ranking_groups
from predictor.protocols import load_observations


@pytest.fixture(scope="module")
def small():
    obs = load_observations()
    keep = obs["dataset"].astype(str).str.startswith(("langrankplus", "sumeval2022"))
    obs = obs.loc[keep].reset_index(drop=True)
    X = featurize_observations(obs)
    return obs, X


@pytest.fixture(scope="module")
def fitted(small):
    obs, X = small
    targets = np.sort(obs["target"].unique())
    held = set(targets[::7])
    tr = ~obs["target"].isin(held)
    m = TransferRegressor(n_estimators=60, n_deviation_estimators=60, neighbors=True, decompose=True,
                          n_jobs=1).fit(obs[tr], X=X[tr])
    return m, obs, X, tr


def test_two_boosters_and_additive_contributions(fitted):
    m, obs, X, tr = fitted
    assert m.deviation_booster_ is not None
    te = obs[~tr].head(50)
    Xf = m.features(normalize_observations(te), X.loc[te.index])
    raw = m.predict_features(Xf)
    contrib = m.contributions(Xf)
    assert contrib.shape == (len(te), len(m.feature_names_) + 1)
    np.testing.assert_allclose(contrib.sum(axis=1), raw, atol=1e-6)
    assert m.booster_.num_trees() + m.deviation_booster_.num_trees() <= 400


def test_deviation_booster_ranks_within_groups(fitted):
    m, obs, X, tr = fitted
    tr_obs = obs[tr]
    g = ranking_groups(tr_obs)
    y = tr_obs["score"].to_numpy()
    dev = y - pd.Series(y).groupby(g).transform("mean").to_numpy()
    Xf = m.features(normalize_observations(tr_obs), X[tr])
    arr = Xf[m.feature_names_].to_numpy(np.float32)
    pred_dev = m.deviation_booster_.predict(arr)
    # fitted on these rows: the deviation booster explains a clear share of within-group variance
    assert np.corrcoef(pred_dev, dev)[0, 1] > 0.5


def test_monotone_in_source_size_and_k(fitted):
    m, obs, X, tr = fitted
    te = obs[~tr].head(20)
    Xf = m.features(normalize_observations(te), X.loc[te.index])
    for col in ("log_source_size", "log1p_k"):
        preds = []
        for v in np.linspace(0, 12, 13):
            Z = Xf.copy()
            Z[col] = np.float32(v)
            preds.append(m.predict_features(Z))
        assert (np.diff(np.vstack(preds), axis=0) >= -1e-9).all(), col


def test_text_round_trip_predicts_identically(fitted):
    m, obs, X, tr = fitted
    files = {k: v.encode() for k, v in m.to_files().items()}
    assert set(files) >= {"model.txt", "model_deviation.txt", "model_config.json", "neighbors.csv"}
    back = TransferRegressor.from_files(files)
    te = obs[~tr].head(30)
    np.testing.assert_allclose(back.predict(te, X=X.loc[te.index]), m.predict(te, X=X.loc[te.index]), atol=1e-9)
    files.pop("model_deviation.txt")
    with pytest.raises(ValueError, match="model_deviation.txt"):
        TransferRegressor.from_files(files)


def test_neighbour_features_never_see_the_query_target(fitted):
    m, obs, X, tr = fitted
    te = obs[~tr]
    assert not set(te["target"]) & set(m.neighbors_.memory_["target"])
    # a training row's own target is left out of its neighbours: features equal after dropping that target's rows
    row = obs[tr & (obs["k"] == 0)].iloc[[0]]
    full = m.features(normalize_observations(row), X.loc[row.index])
    from features.neighbors import NeighborTransfer
    mem = obs[tr & (obs["target"] != row["target"].iloc[0])]
    nb = NeighborTransfer(k=m.nb_k, tau=m.nb_tau).fit(mem)
    pf = nb.pair_features(row["task"].values, row["task_type"].values, row["model"].values, row["source"].values,
                          row["target"].values)
    for f in ("nb_score", "nb_level"):
        a, b = float(full[f].iloc[0]), float(pf[f][0])
        assert (np.isnan(a) and np.isnan(b)) or abs(a - b) < 1e-4, f


def test_default_is_one_booster_and_old_artifacts_load(small):
    obs, X = small
    sub = obs.head(400)
    m = TransferRegressor(n_estimators=20, n_jobs=1).fit(sub, X=X.loc[sub.index])
    assert m.deviation_booster_ is None
    files = {k: v.encode() for k, v in m.to_files().items()}
    assert "model_deviation.txt" not in files
    back = TransferRegressor.from_files(files)
    np.testing.assert_allclose(back.predict(sub, X=X.loc[sub.index]), m.predict(sub, X=X.loc[sub.index]), atol=1e-9)
