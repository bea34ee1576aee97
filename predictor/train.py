"""`xlt train`: fit the shipped model on every usable observation and write a verified artifact.

Intervals are calibrated on out-of-fold residuals from folds that hold out whole target languages, so the interval
describes a language the model never saw. The final booster is then refit on all rows.
"""
from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from predictor import artifacts
from predictor import record
from predictor.facade import BACKGROUND_FILE, CALIBRATION_FILE, RECORD_FILE
from predictor.intervals import NEW_TASK, NEW_TASK_MIN_ROWS, ConformalIntervals, evidence_bins
from features.featurize import featurize_components, take_components
from predictor.model import TransferRegressor, normalize_observations

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


def cross_task_id(task: str, train_task: str) -> str:
    """Task id of a row fine-tuned on another task's data than it is scored on (SumEval's TyDiQA-trained models
    scored on XQuAD): `xquad-from-tydiqa`, a task of its own type that the registry does not know."""
    return f"{task}-from-{train_task}"


def trainable(obs: pd.DataFrame) -> pd.DataFrame:
    """Rows the model learns from (see the module constants for what is left out and why).

    A row trained on another task's data keeps its own task id (`cross_task_id`): otherwise its mix's languages count
    as labelled sources of the scored task (TyDiQA's Swahili and Telugu as XQuAD sources in the default pool) and its
    scores enter that task's evidence and residuals (286 of xlm-r-large's 297 XQuAD rows are TyDiQA-trained)."""
    keep = ~obs["setting"].isin(TRAINABLE_SETTINGS_EXCLUDED) & ~obs["metric"].isin(SECONDARY_METRICS)
    if "excluded" in obs.columns:
        keep &= obs["excluded"].astype(str).isin(["", "False", "false", "0"])
    keep &= obs["train_config"].astype(str).str.len() > 0
    out = obs.loc[keep].reset_index(drop=True)
    if "train_task" in out.columns:
        tt = out["train_task"].astype(str)
        task = out["task"].astype(str)
        # (a row already given its cross-task id keeps it: trainable twice is trainable once)
        cross = (tt != "") & (tt != task) & ~(task.str.split("-from-").str[0] + "-from-" + tt).eq(task)
        if cross.any():
            out["task"] = out["task"].astype(object)
            out.loc[cross, "task"] = [cross_task_id(t, s) for t, s in zip(out.loc[cross, "task"], tt[cross])]
    return out


def out_of_fold(obs: pd.DataFrame, comps: tuple, make_model, n_folds: int = 5) -> np.ndarray:
    """Predictions for each row from a model that never saw its target (neither as target nor inside a mix): the
    "similarity" regime. Folds are the evaluation protocols' seeded language groups (one fold system)."""
    from predictor.protocols import involving, language_partition, row_languages
    part = language_partition(obs["target"].astype(str).unique(), n_folds)
    rl = row_languages(obs)
    tgt = obs["target"].astype(str).to_numpy()
    pred = np.full(len(obs), np.nan)
    pair = np.full(len(obs), np.nan)
    for g in range(n_folds):
        held = [lang for lang, gg in part.items() if gg == g]
        test = np.isin(tgt, held)
        train = ~involving(obs, held, strict=True, _row_langs=rl)
        pred[test], pair[test] = _fit_predict(obs, comps, make_model, train, test)
    return pred, pair


def out_of_fold_seen(obs: pd.DataFrame, comps: tuple, make_model, n_folds: int = 5) -> np.ndarray:
    """Predictions for each row from a model that saw its target in other ranking groups but not this row's group
    (a results file's target, model and variant): the "record" regime, new configurations of seen languages."""
    from predictor.model import ranking_key
    keys = ranking_key(obs)
    uniq = np.unique(keys)
    fold_of = dict(zip(np.random.default_rng(0).permutation(uniq), np.arange(len(uniq)) % n_folds))
    folds = np.array([fold_of[k] for k in keys])
    pred = np.full(len(obs), np.nan)
    pair = np.full(len(obs), np.nan)
    for g in range(n_folds):
        test = folds == g
        pred[test], pair[test] = _fit_predict(obs, comps, make_model, ~test, test)
    return pred, pair


def out_of_fold_task(obs: pd.DataFrame, comps: tuple, make_model, min_rows: int = NEW_TASK_MIN_ROWS) -> np.ndarray:
    """Predictions for each row of a task from a model that never saw the task: its rows (and those scored on it
    after training on another task's data, `xquad-from-tydiqa`) leave training, and the test rows' task id is
    replaced by an unseen one, so only its type speaks: the served regime of a task the record has no rows for
    (NEW_TASK). The languages stay in the record (as for a new task of known languages). One fit per task with at
    least `min_rows` rows; NaN elsewhere."""
    base = obs["task"].astype(str).str.split("-from-").str[0].to_numpy()
    pred = np.full(len(obs), np.nan)
    names, counts = np.unique(base, return_counts=True)
    for task in names[counts >= min_rows]:
        test = base == task
        pred[test], _ = _fit_predict(obs, comps, make_model, ~test, test, task=f"unseen-{task}")
    return pred


def _fit_predict(obs, comps, make_model, train: np.ndarray, test: np.ndarray, task: str | None = None) -> np.ndarray:
    model = make_model().fit(obs.loc[train], components=take_components(comps, train))
    Xc, rows, langs = take_components(comps, test)
    norm = normalize_observations(obs.loc[test])
    if task is not None:   # the test rows' task id replaced by an unseen one
        norm = norm.assign(task=task)
    X, score, _ = model.score_components(Xc, rows, langs, norm)
    pair = X["ev_pair"].to_numpy() if "ev_pair" in X.columns else np.full(len(X), np.nan)
    return score, pair


def within_target_residuals(obs: pd.DataFrame, resid: np.ndarray) -> np.ndarray:
    """Residuals minus their (dataset, model, task, target) mean: the error that reorders sources for one target."""
    key = obs["dataset"].astype(str) + "|" + obs["model"] + "|" + obs["task"] + "|" + obs["target"]
    r = pd.Series(resid, index=obs.index)
    return (r - r.groupby(key).transform("mean")).to_numpy()


def train(observations: Path = OBSERVATIONS, models_dir: Path | None = None, params: dict | None = None,
          n_folds: int = 3, log=print) -> Path:
    t0 = time.time()
    data_bytes = Path(observations).read_bytes()
    obs = trainable(load_observations(observations))
    log(f"training rows: {len(obs):,} of {observations}")
    comps = featurize_components(normalize_observations(obs))
    log(f"featurized {comps[0].shape[0]:,} components × {comps[0].shape[1]} in {time.time() - t0:.1f}s")
    params = params or {}
    make_model = lambda: TransferRegressor(**params)  # noqa: E731

    oof, _ = out_of_fold(obs, comps, make_model, n_folds)
    seen, seen_pair = out_of_fold_seen(obs, comps, make_model, n_folds)
    new_task = out_of_fold_task(obs, comps, make_model)
    y = obs["score"].to_numpy()
    resid = np.concatenate([y - oof, y - seen, y - new_task])
    regimes = np.concatenate([np.full(len(obs), "similarity", dtype=object),
                              evidence_bins(np.full(len(obs), "record", dtype=object), seen_pair),
                              np.full(len(obs), NEW_TASK, dtype=object)])
    types = np.concatenate([obs["task_type"].to_numpy()] * 3)
    within = np.concatenate([within_target_residuals(obs, y - oof), within_target_residuals(obs, y - seen)])
    # the unit each fold system holds out, whose errors move together: a bin of < MIN_UNITS of them is no narrower
    # than its regime
    # (target languages for the similarity and record folds, tasks for the leave-task-out ones)
    units = np.concatenate([obs["target"].astype(str).to_numpy()] * 2
                           + [obs["task"].astype(str).str.split("-from-").str[0].to_numpy()])
    # normalized by the difficulty scale of each residual's own prediction (fitted per regime; predictor.intervals)
    calib = ConformalIntervals().fit(resid, regimes, types, within, scores=np.concatenate([oof, seen, new_task]),
                                     units=units)
    from predictor.model import ranking_key
    from predictor.protocols import single_source_mask
    single = np.concatenate([single_source_mask(obs)] * 2)  # the rows a ranking chooses among
    # record / similarity (the best-source set of a new task is the similarity regime's: its ranking is served so)
    coarse = np.array([r.split("+")[0] for r in regimes[:2 * len(obs)]], dtype=object)
    calib.fit_best_set(np.concatenate([ranking_key(obs)] * 2)[single], np.concatenate([y, y])[single],
                       np.concatenate([oof, seen])[single], coarse[single])
    metrics = {"oof_rmse": float(np.sqrt(np.nanmean((y - oof) ** 2))), "oof_mae": float(np.nanmean(np.abs(y - oof))),
               "oof_protocol": f"{n_folds} seeded language groups (predictor.protocols.language_partition): the "
                               "target is held out as target and inside mixes",
               "seen_rmse": float(np.sqrt(np.nanmean((y - seen) ** 2))),
               "seen_mae": float(np.nanmean(np.abs(y - seen))),
               "seen_protocol": f"{n_folds} folds over ranking groups (file, model, variant, task, target)",
               "new_task_rmse": float(np.sqrt(np.nanmean((y - new_task) ** 2))),
               "new_task_protocol": f"one fold per task with >= {NEW_TASK_MIN_ROWS} rows, its id replaced by an "
                                    "unseen one (only its type known)",
               "interval_halfwidth": calib.quantiles_, "interval_scale": calib.scale_,
               "within_target_sd": calib.within_target_sd_,
               "best_source_set": calib.best_set_}
    log(f"out-of-fold RMSE unseen target {metrics['oof_rmse']:.2f}, seen target {metrics['seen_rmse']:.2f} "
        f"({time.time() - t0:.1f}s)")

    model = make_model().fit(obs, components=comps)
    sample = obs.sample(n=min(1000, len(obs)), random_state=0)
    background = model.score_queries(normalize_observations(sample))[0]
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
                                     BACKGROUND_FILE: buf.getvalue(),
                                     RECORD_FILE: json.dumps(record.summarize(obs), separators=(",", ":"))},
                                    manifest, models_dir)
    log(f"model written to {out} ({time.time() - t0:.1f}s)")
    return out


def _typology_version() -> str:
    from features import typology
    return getattr(typology, "TYPOLOGY_VERSION", "unknown")


if __name__ == "__main__":
    train()
