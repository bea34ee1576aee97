"""The transfer regressor: LightGBM over `features.featurize`, monotone in the amount of training data.

scikit-learn conventions: parameters in __init__, `fit` learns, fitted attributes end in `_`. `fit` takes the tidy
observations table (query columns + `score`), so every protocol and the shipped model go through the same code path.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from features.featurize import CATEGORICAL_FEATURES, FEATURE_NAMES, MONOTONE_INCREASING, featurize
from features.queries import normalize

OBS_QUERY_COLUMNS = ["model", "task", "task_type", "target", "train_config", "k"]


def observation_queries(obs: pd.DataFrame) -> pd.DataFrame:
    """The query view of observation rows: the mix is in train_config (k is already inside it)."""
    q = obs[["model", "task", "task_type", "target", "train_config"]].copy()
    return q


def featurize_observations(obs: pd.DataFrame) -> pd.DataFrame:
    """Features for observation rows; raises if any row fails to normalise (the build validated them)."""
    norm, errors = normalize(observation_queries(obs))
    bad = errors != ""
    if bad.any():
        first = obs.loc[bad].head(3)
        raise ValueError(f"{int(bad.sum())} observation rows do not normalise, e.g. "
                         f"{first[OBS_QUERY_COLUMNS].to_dict('records')}: {errors[bad].head(3).tolist()}")
    return featurize(norm)


def dataset_weights(obs: pd.DataFrame, power: float = 0.5) -> np.ndarray:
    """Down-weight big datasets so xpos's 60k rows do not drown the few hundred mT5 rows: w ∝ n_dataset^-power."""
    key = obs["dataset"].astype(str) + "|" + obs["model"].astype(str) + "|" + obs["task"].astype(str)
    counts = key.map(key.value_counts()).to_numpy(dtype=np.float64)
    w = counts ** (-power)
    return w / w.mean()


class TransferRegressor(BaseEstimator, RegressorMixin):
    """LightGBM regressor of the transfer score (0–100) with +1 monotone constraints on source size and k."""

    def __init__(self, n_estimators: int = 300, learning_rate: float = 0.08, num_leaves: int = 31,
                 min_child_samples: int = 20, subsample: float = 0.8, colsample_bytree: float = 0.8,
                 reg_lambda: float = 1.0, weight_power: float = 0.5, monotone: bool = True,
                 random_state: int = 0, n_jobs: int = 2):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.weight_power = weight_power
        self.monotone = monotone
        self.random_state = random_state
        self.n_jobs = n_jobs

    def lgb_params(self) -> dict:
        return {
            "objective": "regression", "learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_child_samples, "bagging_fraction": self.subsample, "bagging_freq": 1,
            "feature_fraction": self.colsample_bytree, "lambda_l2": self.reg_lambda, "seed": self.random_state,
            "num_threads": self.n_jobs, "verbose": -1, "max_bin": 127,
            "monotone_constraints": [1 if (self.monotone and f in MONOTONE_INCREASING) else 0 for f in FEATURE_NAMES],
            "monotone_constraints_method": "intermediate",
        }

    def fit_features(self, X: pd.DataFrame, y: np.ndarray, sample_weight: np.ndarray | None = None):
        import lightgbm as lgb

        data = lgb.Dataset(X[FEATURE_NAMES], label=np.asarray(y, dtype=np.float64), weight=sample_weight,
                           categorical_feature=list(CATEGORICAL_FEATURES), free_raw_data=True)
        self.booster_ = lgb.train(self.lgb_params(), data, num_boost_round=self.n_estimators)
        self.feature_names_ = list(FEATURE_NAMES)
        return self

    def fit(self, obs: pd.DataFrame, y=None, X: pd.DataFrame | None = None):
        """Fit on observation rows (`score` column unless y given); pass precomputed X to skip featurizing."""
        X = featurize_observations(obs) if X is None else X
        y = obs["score"].to_numpy(dtype=np.float64) if y is None else y
        return self.fit_features(X, y, dataset_weights(obs, self.weight_power))

    def predict_features(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        arr = X[self.feature_names_].to_numpy(dtype=np.float32) if isinstance(X, pd.DataFrame) else X
        return self.booster_.predict(arr, num_threads=self.n_jobs)

    def predict(self, obs: pd.DataFrame, X: pd.DataFrame | None = None) -> np.ndarray:
        X = featurize_observations(obs) if X is None else X
        return np.clip(self.predict_features(X), 0.0, 100.0)

    def contributions(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """TreeSHAP values (n, n_features + 1; last column = base value) via LightGBM's pred_contrib."""
        arr = X[self.feature_names_].to_numpy(dtype=np.float32) if isinstance(X, pd.DataFrame) else X
        return self.booster_.predict(arr, pred_contrib=True, num_threads=self.n_jobs)
