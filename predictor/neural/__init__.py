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
EVAL_PARAMS = dict(epochs=4, batch_size=1024, hidden=(128, 64), mono_penalty=1.0)


def neural_fit_predict(params: dict | None = None):
    """`fit_predict(train, test)` for predictor.evaluate; per-query features from the evaluation's shared cache."""
    def fit_predict(train, test):
        from predictor.baselines import FEATURES
        m = NeuralTransferRegressor(**{**EVAL_PARAMS, **(params or {})}).fit(train, X=FEATURES.get(train))
        return m.predict(test, X=FEATURES.get(test))
    fit_predict.__name__ = "neural"
    return fit_predict
