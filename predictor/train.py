"""`xlt train`: fit the shipped model on every usable observation and write a verified artifact.

Intervals are calibrated on out-of-fold residuals from folds that hold out whole target languages, so the interval
describes a language the model never saw. The final booster is then refit on all rows.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from predictor import artifacts
from predictor.facade import BACKGROUND_FILE, CALIBRATION_FILE
from predictor.intervals import ConformalIntervals
from predictor.model import TransferRegressor, featurize_observations, normalize_observations

OBSERVATIONS = artifacts.ROOT / "training_data" / "observations.csv"
# Which observation rows a query can express: one score per (mix, target), F1 not EM for QA, and no machine-translated
# training data (translate-train has no language:count form).
TRAINABLE_SETTINGS_EXCLUDED = ("translate-train",)
SECONDARY_METRICS = ("EM",)


def load_observations(path: Path = OBSERVATIONS) -> pd.DataFrame:
    obs = pd.read_csv(path, keep_default_na=False, low_memory=False)
    obs["score"] = pd.to_numeric(obs["score"])
    obs["k"] = pd.to_numeric(obs["k"]).astype(int)
    return obs


def trainable(obs: pd.DataFrame) -> pd.DataFrame:
    """Rows the model learns from (see the module constants for what is left out and why)."""
    keep = ~obs["setting"].isin(TRAINABLE_SETTINGS_EXCLUDED) & ~obs["metric"].isin(SECONDARY_METRICS)
    if "excluded" in obs.columns:
        keep &= obs["excluded"].astype(str).isin(["", "False", "false", "0"])
    keep &= obs["train_config"].astype(str).str.len() > 0
    return obs.loc[keep].reset_index(drop=True)


def target_folds(targets: np.ndarray, n_folds: int = 5, seed: int = 0) -> np.ndarray:
    """Fold id per row such that every row of a target language falls in the same fold."""
    uniq = np.unique(targets)
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(rng.permutation(uniq), np.arange(len(uniq)) % n_folds))
    return np.array([fold_of[t] for t in targets])


def mix_languages(train_config: pd.Series) -> list[set[str]]:
    return [set(p.split(":")[0] for p in str(c).split(";") if p) for c in train_config]


def out_of_fold(obs: pd.DataFrame, X: pd.DataFrame, make_model, n_folds: int = 5) -> np.ndarray:
    """Predictions for each row from a model trained without its target (neither as target nor inside a mix)."""
    folds = target_folds(obs["target"].to_numpy(), n_folds)
    mixes = mix_languages(obs["train_config"])
    pred = np.full(len(obs), np.nan)
    for f in range(n_folds):
        test = folds == f
        held = set(obs.loc[test, "target"])
        train = ~test & np.array([not (m & held) for m in mixes])
        model = make_model().fit(obs.loc[train], X=X.loc[train])
        pred[test] = model.predict(obs.loc[test], X=X.loc[test])
    return pred


def within_target_residuals(obs: pd.DataFrame, resid: np.ndarray) -> np.ndarray:
    """Residuals minus their (dataset, model, task, target) mean: the error that reorders sources for one target."""
    key = obs["dataset"].astype(str) + "|" + obs["model"] + "|" + obs["task"] + "|" + obs["target"]
    r = pd.Series(resid, index=obs.index)
    return (r - r.groupby(key).transform("mean")).to_numpy()


def train(observations: Path = OBSERVATIONS, models_dir: Path | None = None, params: dict | None = None,
          n_folds: int = 5, log=print) -> Path:
    t0 = time.time()
    data_bytes = Path(observations).read_bytes()
    obs = trainable(load_observations(observations))
    log(f"training rows: {len(obs):,} of {observations}")
    X = featurize_observations(obs)
    log(f"featurized {X.shape[0]:,} × {X.shape[1]} in {time.time() - t0:.1f}s")
    params = params or {}
    make_model = lambda: TransferRegressor(**params)  # noqa: E731

    oof = out_of_fold(obs, X, make_model, n_folds)
    resid = obs["score"].to_numpy() - oof
    calib = ConformalIntervals().fit(resid, obs["task_type"].to_numpy(), within_target_residuals(obs, resid))
    metrics = {"oof_rmse": float(np.sqrt(np.mean(resid ** 2))), "oof_mae": float(np.mean(np.abs(resid))),
               "oof_protocol": f"{n_folds}-fold grouped by target language (target also removed from mixes)",
               "interval_halfwidth": calib.quantiles_["*"], "within_target_sd": calib.within_target_sd_}
    log(f"out-of-fold RMSE {metrics['oof_rmse']:.2f}, MAE {metrics['oof_mae']:.2f} ({time.time() - t0:.1f}s)")

    model = make_model().fit(obs, X=X)
    sample = obs.sample(n=min(1000, len(obs)), random_state=0)
    background = model.features(normalize_observations(sample), X.loc[sample.index])
    buf = io.StringIO()
    background.to_csv(buf, index=False, float_format="%.6g")
    data_hash = hashlib.sha256(data_bytes).hexdigest()
    manifest = {
        "version": time.strftime("%Y%m%d-%H%M%S") + "-" + data_hash[:8],
        "data": {"path": "training_data/observations.csv", "sha256": data_hash, "rows_used": int(len(obs))},
        "features": list(model.feature_names_), "model": "TransferRegressor (LightGBM)",
        "params": model.get_params(), "metrics": metrics, "typology_version": _typology_version(),
    }
    out = artifacts.write_model_dir({**model.to_files(), CALIBRATION_FILE: json.dumps(calib.to_dict(), indent=1),
                                     BACKGROUND_FILE: buf.getvalue()}, manifest, models_dir)
    log(f"model written to {out} ({time.time() - t0:.1f}s)")
    return out


def _typology_version() -> str:
    from features import typology
    return getattr(typology, "TYPOLOGY_VERSION", "unknown")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="xlt train", description=__doc__)
    ap.add_argument("--observations", type=Path, default=OBSERVATIONS)
    ap.add_argument("--models-dir", type=Path, default=None)
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args(argv)
    train(args.observations, args.models_dir, n_folds=args.folds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
