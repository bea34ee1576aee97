"""The torch multi-task model, an evaluated method (not served unless it wins under `xlt evaluate`).

    predictor.neural.anchors   URIEL anchors of the language embeddings (label-free projection)
    predictor.neural.model     NeuralTransferRegressor: network, fit/predict, npz + JSON persistence (no pickle)
    predictor.neural.compare   its results next to the LightGBM model's, from reports/accuracy.json → reports/neural.md

Importing this package does not import torch (the model imports it inside its methods).
"""
from predictor.neural.anchors import ANCHOR_DIMS, uriel_anchors
from predictor.neural.model import (CONFIG_FILE, FORMAT, NUMERIC_FEATURES, WEIGHTS_FILE, NeuralTransferRegressor,
                                    parse_mixes)

__all__ = ["ANCHOR_DIMS", "CONFIG_FILE", "FORMAT", "NUMERIC_FEATURES", "WEIGHTS_FILE", "NeuralTransferRegressor",
           "parse_mixes", "uriel_anchors", "neural_fit_predict", "EVAL_PARAMS"]

# Settings `xlt evaluate` uses for the neural method: cheap enough for every protocol inside the 15-minute budget.
# A training fold larger than EVAL_MAX_ROWS is subsampled with probability ∝ the dataset weights (which is what the
# weighted loss does in expectation), and then fitted unweighted.
EVAL_PARAMS = dict(epochs=5, batch_size=512, hidden=(128, 64), mono_penalty=1.0)
EVAL_MAX_ROWS = 20_000


def _eval_rows(train, p: dict, max_rows: int | None):
    """The training rows of one evaluation fit: a fold larger than `max_rows` is subsampled with probability ∝ the
    dataset weights (seeded) and then fitted unweighted (`p["weight_power"]` set to 0)."""
    import numpy as np

    from predictor.model import dataset_weights
    if max_rows and len(train) > max_rows and "dataset" in train.columns:
        w = dataset_weights(train, p.get("weight_power", 0.5))
        pick = np.random.default_rng(0).choice(len(train), size=max_rows, replace=False, p=w / w.sum())
        train = train.iloc[np.sort(pick)]
        p["weight_power"] = 0.0
    return train


class _NeuralFit:
    """`fit_predict(train, test)` of the neural model for predictor.evaluate (picklable, for the worker pool)."""
    __name__ = "neural"

    def __init__(self, params: dict | None, max_rows: int | None):
        self.params, self.max_rows = dict(params or {}), max_rows

    def __call__(self, train, test):
        from predictor.baselines import FEATURES
        p = {**EVAL_PARAMS, **self.params}
        train = _eval_rows(train, p, self.max_rows)
        m = NeuralTransferRegressor(**p).fit(train, X=FEATURES.get(train))
        return m.predict(test, X=FEATURES.get(test))

    def cache_use(self, train, test):   # the feature-cache calls a fit makes, in order (evaluate warms the cache)
        return [("features", _eval_rows(train, {**EVAL_PARAMS, **self.params}, self.max_rows)), ("features", test)]


def neural_fit_predict(params: dict | None = None, max_rows: int | None = EVAL_MAX_ROWS):
    """`fit_predict(train, test)` for predictor.evaluate; per-query features from the evaluation's shared cache."""
    return _NeuralFit(params, max_rows)
