"""The transfer regressor: LightGBM over per-component features, a mix scoring as its best component.

Why this shape: published results obey laws a tree ensemble does not know unless it is built in (DESIGN.md). A mix is
split into components — each source language with its examples, and the target's own examples — and scored as its
best component, each component seeing the rest of the mix only through monotone features (examples in the other
sources, number of sources, k). With +1 monotone constraints on those, adding a language or more examples can never
lower a prediction. Two more laws are applied to the trees' output, not learned: no prediction below the task's
chance level, and the target's own examples alone start a learning curve at chance (below ten examples a fine-tuned
model has learned nothing; from there the score climbs log-linearly to what the trees predict at the smallest
in-language training set the published record holds for that task type).

Training is hard EM on the best-component rule: rows are first represented by their largest source, the booster is
fitted, every row is re-represented by the component the booster scores highest, and the booster is refitted.

scikit-learn conventions: parameters in __init__, `fit` learns, fitted attributes end in `_`. `fit` takes the tidy
observations table (query columns + `score`), so every protocol and the shipped model go through the same code path.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from features import registry
from features.featurize import (CATEGORICAL_FEATURES, FEATURE_NAMES, MONOTONE_DECREASING, MONOTONE_INCREASING, SMALL_N,
                                _featurize_matrix, _is_na, _model_params, components, featurize_components,
                                featurize_one_context, representative)
from features.evidence import EVIDENCE_FEATURES, MONOTONE_EVIDENCE, TARGET_GRAINS, RecordEvidence
from predictor.residuals import PairOffsets, RecordResiduals, SizeOffsets, SourceOffsets
from predictor.size_steps import SizeSteps
from features.queries import normalize

OBS_QUERY_COLUMNS = ["model", "task", "task_type", "target", "train_config", "k"]
MODEL_FEATURES = list(FEATURE_NAMES) + EVIDENCE_FEATURES
# bag b's seeds (LightGBM's and the evidence masks') are random_state + BAG_SEED_STEP·b
BAG_SEED_STEP = 7919
NO_LEARNING_K = 10        # the target's own examples up to this many teach a fine-tuned model nothing on their own
DEFAULT_INLANG_K = 100    # start of the in-language record for a task type the record has no in-language row of


def observation_queries(obs: pd.DataFrame) -> pd.DataFrame:
    """The query view of observation rows: the mix is in train_config (k is already inside it)."""
    return obs[["model", "task", "task_type", "target", "train_config"]].copy()


def normalize_observations(obs: pd.DataFrame) -> pd.DataFrame:
    """Canonical query rows for observation rows; raises if any row fails (the build validated them)."""
    norm, errors = normalize(observation_queries(obs), published=True)
    bad = errors != ""
    if bad.any():
        first = obs.loc[bad].head(3)
        raise ValueError(f"{int(bad.sum())} observation rows do not normalise, e.g. "
                         f"{first[OBS_QUERY_COLUMNS].to_dict('records')}: {errors[bad].head(3).tolist()}")
    return norm


def featurize_observations(obs: pd.DataFrame) -> pd.DataFrame:
    """One feature row per observation (its representative component, model-free rule): for baselines and plots."""
    from features.featurize import featurize
    return featurize(normalize_observations(obs))


def dataset_weights(obs: pd.DataFrame, power: float = 0.5) -> np.ndarray:
    """Down-weight big datasets so xpos's 60k rows do not drown the few hundred mT5 rows: w ∝ n_dataset^-power."""
    key = obs["dataset"].astype(str) + "|" + obs["model"].astype(str) + "|" + obs["task"].astype(str)
    counts = key.map(key.value_counts()).to_numpy(dtype=np.float64)
    w = counts ** (-power)
    return w / w.mean()


def ranking_key(obs: pd.DataFrame) -> np.ndarray:
    """Row → comparable group (one results file, model, variant, task and target): the rows a ranking compares.
    The one definition of a ranking group (evaluation metrics and calibration use it)."""
    cols = [c for c in ("dataset_file", "model", "variant", "task", "target") if c in obs.columns]
    key = obs[cols[0]].astype(str)
    for c in cols[1:]:
        key = key + "|" + obs[c].astype(str)
    return key.to_numpy()


ranking_groups = ranking_key  # older name


@lru_cache(maxsize=4096)
def _chance(task: str, task_type: str) -> float:
    """The registry's chance level of a task (its type's for a task the registry does not know); memoised: the
    registry is fixed for the process, and an unknown task's look-up raises (with suggestions) every time."""
    try:
        return float(registry.resolve_task(task).chance)
    except Exception:
        return float(registry.CHANCE_BY_TYPE.get(task_type, 0.0))


def _chance_small(tasks: np.ndarray, task_types: np.ndarray) -> np.ndarray:
    """`chance_levels` for a request's few rows: one registry look-up per distinct (task, type), no pandas."""
    memo: dict = {}
    out = np.empty(len(tasks), dtype=np.float64)
    for i, key in enumerate(zip(tasks, task_types)):
        v = memo.get(key)
        if v is None:
            task, ttype = key
            # a missing task or type makes the vectorised key missing too, which picks the table's trailing 0.0
            raw = 0.0 if _is_na(task) or _is_na(ttype) else _chance(str(task), str(ttype))
            v = memo[key] = float(np.ceil(np.float64(raw) * 1e4) / 1e4)
        out[i] = v
    return out


def chance_level(task: str, task_type: str) -> float:
    """`chance_levels` of one (task, task type): the same value, rounded the same way, without a frame."""
    return float(_chance_small(np.array([task], dtype=object), np.array([task_type], dtype=object))[0])


def chance_levels(norm: pd.DataFrame) -> np.ndarray:
    """Per query: its task's chance level (registry), or its task type's for a task the registry does not know."""
    if len(norm) < SMALL_N:
        return _chance_small(norm["task"].to_numpy(dtype=object), norm["task_type"].to_numpy(dtype=object))
    keys = (norm["task"].astype(str) + "\x00" + norm["task_type"].astype(str)).to_numpy(dtype=object)
    codes, uniq = pd.factorize(keys)
    # rounded *up* to the 4 decimals scores are written with, so a floored score never prints below chance
    raw = [_chance(*u.split("\x00", 1)) for u in uniq]   # (task, task type)
    table = np.ceil(np.array(raw + [0.0]) * 1e4) / 1e4
    return table[codes]


def _single_source_components(norm: pd.DataFrame, rows: np.ndarray, langs: np.ndarray) -> np.ndarray:
    """Indices of the components that are a whole query's only source at k = 0, not the target itself: the
    published single-source zero-shot results, which source and pair offsets learn from."""
    n_comp = np.bincount(rows, minlength=len(norm))
    own = langs == norm["target"].to_numpy(dtype=object)[rows]
    k = norm["k"].to_numpy(dtype=np.float64)
    return np.flatnonzero((n_comp[rows] == 1) & ~own & (k[rows] == 0))


class TransferRegressor(BaseEstimator, RegressorMixin):
    """LightGBM regressor of the transfer score (0–100): best component of the mix, monotone in data, floored."""

    # 120 trees of depth <= 6: as accurate as 300 unbounded ones out of fold (unseen-target RMSE 13.55 vs 13.68,
    # seen-target 7.90 vs 7.56) at a quarter of the TreeSHAP cost that a ranking's reasons pay per request.
    # Served as a bag of 2 × 60 trees (learning rate 0.3, each from its own draw of the evidence masks and seed),
    # merged into one model of the same 120 trees: at seeds 0 and 1 the seen-language ratio spread 0.687–0.697
    # instead of 0.663–0.717, xpos RMSE 13.72 / 13.59 vs 14.41 / 13.95, regret 6.07 / 5.35 vs 6.48 / 5.67
    # (reports/model_experiments.md); the serving cost is unchanged.
    # monotone_method: how LightGBM enforces the monotone constraints. "intermediate": "advanced" (tried in the eighth
    # session, a little more accurate within the seed noise) does not always hold them (LightGBM issues #5358 and
    # #6155): the model retrained in the eleventh session scored XLM-R base, UD POS, Turkish with k = 10 and
    # `qu:1000;zu:20000;de:5000` 0.53 points lower with Quechua at 10,000 (a tree lowered German's component as
    # `log1p_other_related`, constrained +1, rose): 1 violation in 4,000 random sweeps, 0 with "intermediate"
    # (reports/model_experiments.md). The output laws are meant to hold by construction, not by luck.
    def __init__(self, n_estimators: int = 120, learning_rate: float = 0.3, num_leaves: int = 31,
                 max_depth: int = 6, min_child_samples: int = 20, subsample: float = 0.8,
                 colsample_bytree: float = 0.8, reg_lambda: float = 1.0, weight_power: float = 0.5,
                 monotone: bool = True, em_rounds: int = 1, evidence: bool = True, mask_rate: float = 0.15,
                 language_mask_rate: float = 0.25, mask_replicas: int = 1, record_residuals: bool = True,
                 n_bags: int = 2, source_offsets: bool = True, pair_offsets: bool = True, size_offsets: bool = True,
                 random_state: int = 0,
                 n_jobs: int = 2, monotone_method: str = "intermediate",
                 monotone_penalty: float = 0.0):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.weight_power = weight_power
        self.monotone = monotone
        self.em_rounds = em_rounds
        self.evidence = evidence
        self.mask_rate = mask_rate
        self.language_mask_rate = language_mask_rate
        self.mask_replicas = mask_replicas
        self.record_residuals = record_residuals
        self.n_bags = n_bags
        self.source_offsets = source_offsets
        self.pair_offsets = pair_offsets
        self.size_offsets = size_offsets
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.monotone_method = monotone_method
        self.monotone_penalty = monotone_penalty

    @property
    def feature_names(self) -> list[str]:
        return list(FEATURE_NAMES) + (EVIDENCE_FEATURES if self.evidence else [])


    def lgb_params(self) -> dict:
        return {
            "objective": "regression", "learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
            "max_depth": self.max_depth, "min_data_in_leaf": self.min_child_samples, "bagging_fraction": self.subsample,
            "bagging_freq": 1, "feature_fraction": self.colsample_bytree, "lambda_l2": self.reg_lambda,
            "seed": self.random_state, "num_threads": self.n_jobs, "verbose": -1, "max_bin": 127,
            "monotone_constraints": [(1 if f in MONOTONE_INCREASING + MONOTONE_EVIDENCE else
                                      -1 if f in MONOTONE_DECREASING else 0) if self.monotone else 0
                                     for f in self.feature_names],
            "monotone_constraints_method": self.monotone_method, "monotone_penalty": self.monotone_penalty,
        }

    # ------------------------------------------------------------------ fit
    def fit(self, obs: pd.DataFrame, y=None, components: tuple | None = None):
        """Fit on observation rows (`score` column unless y given); `components` = featurize_components(norm) of
        exactly these rows, to skip featurizing (protocols cache it)."""
        import lightgbm as lgb

        norm = normalize_observations(obs)
        Xc, rows, langs = featurize_components(norm) if components is None else components
        static = Xc[list(FEATURE_NAMES)].to_numpy(dtype=np.float32)
        y = obs["score"].to_numpy(dtype=np.float64) if y is None else np.asarray(y, dtype=np.float64)
        if self.evidence:  # leave-one-out and masked: training evidence (serving adds it in `_matrix`)
            self.evidence_ = RecordEvidence(self.mask_rate, self.language_mask_rate, self.random_state).fit(norm, y)
        w = dataset_weights(obs, self.weight_power) if "dataset" in obs.columns else np.ones(len(obs))
        self.inlang_min_k_ = self._inlang_start(norm)
        self.feature_names_ = list(self.feature_names)
        chance, types = chance_levels(norm), norm["task_type"].to_numpy(dtype=object)
        n_bags = max(1, int(self.n_bags))
        boosters = []
        for bag in range(n_bags):  # bag 0 is the unbagged model: same seeds as before bagging existed
            seed = self.random_state + BAG_SEED_STEP * bag
            if self.evidence:
                # each row once per draw of the masks: the trees learn the average over draws, not one draw's accidents
                draws = [self.evidence_.training_values(norm, y, rows, langs, seed=seed + r)
                         for r in range(max(1, int(self.mask_replicas)))]
                arrs = [np.concatenate([static, E[EVIDENCE_FEATURES].to_numpy(np.float32)], axis=1) for E in draws]
            else:
                arrs = [static]
            boosters.append(self._fit_member(arrs, y, w, Xc, rows, chance, types, seed,
                                             max(1, self.n_estimators // n_bags)))
        self.booster_ = boosters[0] if n_bags == 1 else lgb.Booster(model_str=average_boosters(boosters))
        self.source_offsets_ = SourceOffsets()
        if self.source_offsets and self.evidence:
            self.source_offsets_.fit(*self._similarity_residuals(obs, norm, static, np.asarray(rows), langs, y))
        self.residuals_ = RecordResiduals()
        self.pair_offsets_ = PairOffsets()
        self.size_offsets_ = SizeOffsets()
        if self.record_residuals:  # what the served trees (full-record evidence) still miss on the record's rows
            fitted = self._score_matrix(static, np.asarray(rows), langs, norm)[1]
            self.residuals_.fit(norm, y - fitted)
            if self.size_offsets:  # then what the trees and the target's offset miss by the mix's amount of data
                self.size_offsets_.fit(norm["model"].to_numpy(dtype=object), norm["task"].to_numpy(dtype=object),
                                       norm["source_size"].to_numpy(dtype=np.float64),
                                       y - fitted - self.query_offsets(norm))
            if self.pair_offsets and self.evidence:  # and what trees + the target's offset miss on each pair
                comp = _single_source_components(norm, np.asarray(rows), langs)
                sel = np.asarray(rows)[comp]
                served = fitted[sel] + self.query_offsets(norm.iloc[sel])
                sizes = np.expm1(static[comp, list(FEATURE_NAMES).index("log_source_size")].astype(np.float64))
                self.pair_offsets_.fit(norm["model"].to_numpy(dtype=object)[sel], norm["task"].to_numpy(dtype=object)[sel],
                                       langs[comp], norm["target"].to_numpy(dtype=object)[sel], y[sel] - served, sizes)
                self.pair_offsets_.attach_record(self.residuals_.cells())
        # sizes of a family the record holds no result of (XLM-R XL, XXL): scored as a held size + a fitted step
        self.size_steps_ = SizeSteps().fit(obs)
        return self

    def _fit_member(self, arrs, y, w, Xc, rows, chance, types, seed: int, n_trees: int):
        """One booster by hard EM on the best-component rule (rows first represented by their largest source, then
        by the component the booster scores highest), from one draw of the evidence masks and LightGBM seed."""
        import lightgbm as lgb

        n = len(y)
        params = {**self.lgb_params(), "seed": seed}
        picks = [representative(Xc, rows, n)] * len(arrs)
        for round_ in range(self.em_rounds + 1):
            oks = [pick >= 0 for pick in picks]
            data = lgb.Dataset(np.concatenate([a[p[ok]] for a, p, ok in zip(arrs, picks, oks)]),
                               label=np.concatenate([y[ok] for ok in oks]),
                               weight=np.concatenate([w[ok] for ok in oks]), feature_name=self.feature_names,
                               categorical_feature=list(CATEGORICAL_FEATURES), free_raw_data=True)
            self.booster_ = lgb.train(params, data, num_boost_round=n_trees)
            if round_ < self.em_rounds:
                picks = [representative(Xc, rows, n, self._scores(a, rows, chance, types)) for a in arrs]
        return self.booster_

    def _similarity_residuals(self, obs, norm, static, rows, langs, y):
        """(model, task, source, ranking group, residual) of every single-source zero-shot row, the residual taken
        against the served trees with the row's target evidence hidden: what a ranking for an unseen target gets
        wrong about this source (`SourceOffsets`)."""
        comp = _single_source_components(norm, rows, langs)
        sel = rows[comp]
        q = {c: norm[c].to_numpy(dtype=object)[sel] for c in ("model", "task", "task_type", "target")}
        local = np.arange(len(sel))
        arr = self._matrix(static[comp], local, langs[comp], q["model"], q["task"], q["task_type"], q["target"])
        for g in TARGET_GRAINS:
            arr[:, self.feature_names_.index(g)] = np.nan
        fitted = self._scores(arr, local, chance_levels(norm.iloc[sel]), q["task_type"])
        return q["model"], q["task"], langs[comp], q["target"], ranking_key(obs.iloc[sel]), y[sel] - fitted

    def component_source_offsets(self, arr: np.ndarray, models: np.ndarray, tasks: np.ndarray, targets: np.ndarray,
                                 langs: np.ndarray) -> np.ndarray | None:
        """Per component that is a source (not the target's own examples): where the target is unseen for this task
        and family (no ev_target), the source's offset from the task's other targets (`SourceOffsets`); where the
        record holds the target, the offset of this very source → target pair (`PairOffsets`). The two never meet
        in one component. None when there is nothing to add."""
        tables = self._offset_tables()
        if "ev_target" not in self.feature_names_ or not any(len(t.table_) for t in tables):
            return None
        steps = getattr(self, "size_steps_", None)
        if steps is not None and steps.anchors_:  # a size the record lacks takes its anchor's offsets
            models = steps.anchored(models)[0]
        source = arr[:, self.feature_names_.index("in_language")] < 0.5
        seen = self.target_published(arr)
        return self._offsets_by_table(tables, arr, source, seen, models, tasks, targets, langs)

    def one_context_source_offsets(self, arr: np.ndarray, model: str, task: str, target: str,
                                   langs: np.ndarray) -> np.ndarray | None:
        """`component_source_offsets` for components that share one model, task and target (a ranking's): the
        anchor and the regime (one `ev_target` for all of them) looked up once."""
        tables = self._offset_tables()
        if "ev_target" not in self.feature_names_ or not any(len(t.table_) for t in tables):
            return None
        steps = getattr(self, "size_steps_", None)
        if steps is not None and model in steps.anchors_:
            model = steps.anchors_[model][0]
        source = np.flatnonzero(arr[:, self.feature_names_.index("in_language")] < 0.5)
        if not len(source):
            return None
        seen = not math.isnan(float(arr[0, self.feature_names_.index("ev_target")]))
        # the regime's table; the published size reads a pair's stronger offset (AT_SIZE_PRIOR)
        sizes = np.expm1(arr[source, self.feature_names_.index("log_source_size")].astype(np.float64))
        vals = tables[1 if seen else 0].offsets_one(model, task, target, np.asarray(langs, dtype=object)[source],
                                                    sizes)
        if not np.any(vals != 0.0):
            return None
        out = np.zeros(len(arr))
        out[source] = vals
        return out

    def _offsets_by_table(self, tables, arr, source, seen, models, tasks, targets, langs) -> np.ndarray | None:
        """Each source component's offset from the table of its regime (no ev_target: SourceOffsets; else
        PairOffsets, at the component's size), or None when every one is 0."""
        out = None
        for table, mask in zip(tables, (source & ~seen, source & seen)):
            if not len(table.table_) or not mask.any():
                continue
            idx = np.flatnonzero(mask)
            sizes = np.expm1(arr[idx, self.feature_names_.index("log_source_size")].astype(np.float64))
            vals = table.offsets(models[idx], tasks[idx], targets[idx], langs[idx], sizes)
            if np.any(vals != 0.0):
                out = np.zeros(len(arr)) if out is None else out
                out[idx] = vals
        return out

    def _offset_tables(self) -> tuple[SourceOffsets, PairOffsets]:
        """(source offsets, pair offsets); empty tables for a model fitted or saved without them."""
        return (getattr(self, "source_offsets_", None) or SourceOffsets(),
                getattr(self, "pair_offsets_", None) or PairOffsets())

    def target_published(self, arr: np.ndarray) -> np.ndarray:
        """Per input row: whether the record holds its target for this task and model family (`ev_target`
        published). Decides which offset a source component gets, and which term /explain and /rank name it."""
        if "ev_target" not in self.feature_names_:
            return np.zeros(len(arr), dtype=bool)
        return ~np.isnan(np.asarray(arr, dtype=np.float64)[:, self.feature_names_.index("ev_target")])

    def has_source_offsets(self, model: str, task: str) -> bool:
        """Whether any component of (model, task) can get a source or pair offset (a ranking skips the look-ups
        otherwise)."""
        return any(t.holds(model, task) for t in self._offset_tables())

    def _inlang_start(self, norm: pd.DataFrame) -> dict[str, float]:
        """Smallest in-language training set per task type in the record (the mix is only the target's data)."""
        own_only = norm["train_config"].astype(str) == (norm["target"].astype(str) + ":" + norm["k"].astype(str))
        sel = norm.loc[own_only & (norm["k"] > 0)]
        return {str(t): float(k) for t, k in sel.groupby("task_type")["k"].min().items()}

    # ------------------------------------------------------------------ scoring
    def _ramp(self, k: np.ndarray, task_types: np.ndarray) -> np.ndarray:
        """Share of the way from chance to the trees' in-language score that k own examples alone reach."""
        start = math.log1p(NO_LEARNING_K)
        full = np.array([self.inlang_min_k_.get(str(t), DEFAULT_INLANG_K) for t in task_types], dtype=np.float64)
        span = np.maximum(np.log1p(full) - start, 1e-9)
        return np.clip((np.log1p(k) - start) / span, 0.0, 1.0)

    def _scores(self, arr: np.ndarray, rows: np.ndarray, chance: np.ndarray, task_types: np.ndarray,
                num_threads: int | None = None, offset: np.ndarray | None = None,
                comp_offset: np.ndarray | None = None) -> np.ndarray:
        """Final score of every component (chance level, task type and record offset given per query): trees plus
        the record's offset, then the in-language learning-curve start, chance floor, 0–100."""
        raw = self.booster_.predict(arr, num_threads=num_threads or self.n_jobs)
        if offset is not None:
            raw = raw + offset[rows]
        if comp_offset is not None:
            raw = raw + comp_offset
        floor = chance[rows]
        own = arr[:, self.feature_names_.index("in_language")] > 0.5
        if own.any():
            k = np.expm1(arr[own, self.feature_names_.index("log1p_k")].astype(np.float64))
            ramp = self._ramp(k, np.asarray(task_types, dtype=object)[rows[own]])
            raw = raw.copy()
            raw[own] = floor[own] + np.maximum(raw[own] - floor[own], 0.0) * ramp
        return np.clip(np.maximum(raw, floor), 0.0, 100.0)

    def _matrix(self, static: np.ndarray, rows: np.ndarray, langs: np.ndarray, models: np.ndarray,
                tasks: np.ndarray, task_types: np.ndarray, targets: np.ndarray,
                one: tuple[str, str, str, str] | None = None) -> np.ndarray:
        """The model's float32 input (components × feature_names_): static features (FEATURE_NAMES order) plus the
        record's evidence (serving values: the full record), from per-query arrays, without frames. `one`: the
        (model, task, task type, target) every component shares, when they do (a one-target ranking)."""
        names = list(FEATURE_NAMES)
        full = static
        if self.evidence:
            E = self.evidence_.one_target_matrix(*one, langs) if one is not None else \
                self.evidence_.component_matrix(models, tasks, task_types, targets, rows, langs)
            full = np.concatenate([static, E], axis=1)
            names = names + EVIDENCE_FEATURES
        if self.feature_names_ != names:
            full = full[:, [names.index(f) for f in self.feature_names_]]
        return np.ascontiguousarray(full, dtype=np.float32)

    def _score_matrix(self, static: np.ndarray, rows: np.ndarray, langs: np.ndarray, norm: pd.DataFrame,
                      num_threads: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(float32 feature row of each query's best component, its score, which component): numpy throughout."""
        arr, comp, _ = self._component_scores(static, rows, langs, norm, num_threads)
        n = len(norm)
        pick = representative(None, rows, n, comp)
        ok = pick >= 0
        X = np.full((n, arr.shape[1]), np.nan, dtype=np.float32)
        X[ok] = arr[pick[ok]]
        score = np.full(n, np.nan)
        score[ok] = comp[pick[ok]]
        return X, score, pick

    def _component_scores(self, static: np.ndarray, rows: np.ndarray, langs: np.ndarray, norm: pd.DataFrame,
                          num_threads: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(float32 input, final score, source offset or None) of every component of the canonical queries."""
        q = [norm[c].to_numpy(dtype=object) for c in ("model", "task", "task_type", "target")]
        arr = self._matrix(static, rows, langs, *q)
        so = self.component_source_offsets(arr, q[0][rows], q[1][rows], q[3][rows], np.asarray(langs, dtype=object))
        totals = None if "source_size" in norm.columns else _source_totals(static, rows, len(norm))
        comp = self._scores(arr, rows, chance_levels(norm), q[2], num_threads, self.query_offsets(norm, totals), so)
        return arr, comp, so

    def score_components(self, Xc: pd.DataFrame, rows: np.ndarray, langs: np.ndarray, norm: pd.DataFrame,
                         num_threads: int | None = None) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """(feature row of each query's best component, its score, which component) for precomputed static
        component features (the record's evidence is added here)."""
        static = Xc[list(FEATURE_NAMES)].to_numpy(dtype=np.float32)
        norm, doublings = self._anchored(norm)
        if doublings is not None:  # the anchor's size in the features (they were built for the model asked about)
            static = static.copy()
            codes, ids = pd.factorize(norm["model"].to_numpy(dtype=object))  # all-pairs: millions of rows, few ids
            params = np.array([_model_params(m) for m in ids], dtype=np.float64)[codes]
            static[:, list(FEATURE_NAMES).index("model_log_params")] = np.log10(params)[np.asarray(rows)]
        X, score, pick = self._score_matrix(static, np.asarray(rows), langs, norm, num_threads)
        score = self._size_step(score, doublings, norm)
        return pd.DataFrame(X, columns=self.feature_names_, index=norm.index), score, pick

    def score_queries(self, norm: pd.DataFrame, num_threads: int | None = None) -> tuple[pd.DataFrame, np.ndarray]:
        """(feature row of each query's best component, final score) for canonical query rows."""
        norm, doublings = self._anchored(norm)
        rows, langs, static = _static_components(norm)
        X, score, _ = self._score_matrix(static, rows, langs, norm, num_threads)
        score = self._size_step(score, doublings, norm)
        return pd.DataFrame(X, columns=self.feature_names_, index=norm.index), score

    def _anchored(self, norm: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray | None]:
        """The queries with each model the record holds no result of replaced by its anchor (`SizeSteps`), and the
        doublings of parameters from it (None when no query needs it: the queries unchanged)."""
        steps = getattr(self, "size_steps_", None)
        if steps is None or not steps.anchors_ or (len(norm) == 1 and norm["model"].iat[0] not in steps.anchors_):
            return norm, None   # (one query, the common case: no array conversion)
        ids, doublings = steps.anchored(norm["model"].to_numpy(dtype=object))
        if doublings is None:
            return norm, None
        return norm.assign(model=pd.Series(ids, index=norm.index, dtype=object)), doublings

    def _size_step(self, scores: np.ndarray, doublings: np.ndarray | None, norm: pd.DataFrame) -> np.ndarray:
        return scores if doublings is None else self.size_steps_.apply(scores, doublings, chance_levels(norm))

    def size_steps(self, norm: pd.DataFrame) -> np.ndarray:
        """Per canonical query, what the size step adds to its anchor's score (0 for a model the record holds):
        the term /explain lists beside the trees' SHAP values."""
        anchored, doublings = self._anchored(norm)
        if doublings is None:
            return np.zeros(len(norm))
        rows, langs, static = _static_components(anchored)
        base = self._score_matrix(static, rows, langs, anchored)[1]
        return self._size_step(base, doublings, anchored) - base

    def score_sources(self, model: str, task: str, task_type: str, target: str, sources, size, k=0,
                      num_threads: int | None = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(float32 feature row of each query's best component, final score, the source or pair offset in it: 0 for
        the target's own examples or where there is none) for the single-source queries of a one-target ranking:
        `source:size` (+ `target:k` when k > 0) for each source, under one canonical model, task and target; `size`
        and `k` are one number for all queries or one per query (a curve: one source at many k). Equal to
        `score_queries` on those canonical rows, without building them: no query strings, no frames (the target's
        own component is scored per query: its features see that query's source)."""
        sources = np.asarray(sources, dtype=object)
        n = len(sources)
        if n == 0:
            return np.zeros((0, len(self.feature_names_)), dtype=np.float32), np.zeros(0), np.zeros(0)
        steps = getattr(self, "size_steps_", None)
        if steps is not None and model in steps.anchors_:  # scored as its anchor, then moved by the size step
            anchor, doublings = steps.anchors_[model]
            X, base, so = self.score_sources(anchor, task, task_type, target, sources, size, k, num_threads)
            return X, steps.apply(base, np.full(n, doublings), chance_level(task, task_type)), so
        if target in sources.tolist():
            raise ValueError("score_sources: a source equal to the target is an in-language mix, not a source")
        sizes = np.broadcast_to(np.asarray(size, dtype=np.float64), (n,)).copy()
        if (sizes <= 0).any():
            raise ValueError("score_sources: size must be > 0")
        ks = np.broadcast_to(np.asarray(k, dtype=np.float64), (n,)).astype(np.int64).astype(np.float64)
        # the target's own examples: one more component per query with k > 0 (its features see that query's source)
        with_own = np.flatnonzero(ks > 0)
        rows = np.concatenate([np.arange(n, dtype=np.int64), with_own])
        langs = np.concatenate([sources, np.full(len(with_own), target, dtype=object)])
        counts = np.concatenate([sizes, ks[with_own]])
        own = np.concatenate([np.zeros(n, dtype=bool), np.ones(len(with_own), dtype=bool)])
        models, tasks = np.full(n, model, dtype=object), np.full(n, task, dtype=object)
        types, targets = np.full(n, task_type, dtype=object), np.full(n, target, dtype=object)
        one_k = len(with_own) in (0, n) and (ks == ks[0]).all()  # one k for all: its column computed once
        static = featurize_one_context(model, task_type, target, float(ks[0]) if one_k else ks, rows, langs, counts,
                                       own)
        arr = self._matrix(static, rows, langs, models, tasks, types, targets, one=(model, task, task_type, target))
        so = self.one_context_source_offsets(arr, model, task, target, langs) \
            if self.has_source_offsets(model, task) else None
        comp = self._scores(arr, rows, _chance_small(tasks[:1], types[:1])[np.zeros(n, dtype=np.int64)], types,
                            num_threads, self.record_offset(model, task, target, float(ks[0]) if one_k else ks, sizes),
                            so)
        so = np.zeros(len(arr)) if so is None else so
        if not len(with_own):
            return arr, comp, so
        # best component per query, as `representative`: the higher score; a tie goes to the component listed first
        # in the canonical train_config (languages sorted), i.e. the target's own when its code sorts first
        X, score, offset = arr[:n].copy(), comp[:n].copy(), so[:n].copy()
        src, own_score = comp[with_own], comp[n:]
        own_wins = (own_score > src) | ((own_score == src) & (sources[with_own] > target))
        won = with_own[own_wins]
        X[won], score[won], offset[won] = arr[n:][own_wins], own_score[own_wins], 0.0
        return X, score, offset

    def query_offsets(self, norm: pd.DataFrame, totals: np.ndarray | None = None) -> np.ndarray:
        """The record's offset for each canonical query: its target's (0 where the record has no row for its model,
        task and target) plus its amount of source data's (`SizeOffsets`; `totals`: the queries' examples in other
        languages than the target, default the `source_size` column). Added to the trees' output of every
        component (`predictor.residuals`)."""
        norm = self._anchored(norm)[0]
        models, tasks = norm["model"].to_numpy(dtype=object), norm["task"].to_numpy(dtype=object)
        out = self.residuals_.offsets(models, tasks, norm["target"].to_numpy(dtype=object),
                                      norm["k"].to_numpy(dtype=np.float64))
        sizes = getattr(self, "size_offsets_", None)
        if sizes is not None and sizes._cells:
            totals = norm["source_size"].to_numpy(dtype=np.float64) if totals is None else totals
            out = out + sizes.offsets(models, tasks, totals)
        return out

    def record_offset(self, model: str, task: str, target: str, k, totals) -> np.ndarray:
        """`query_offsets` of single-source queries of one (model, task, target) at each of `totals` source
        examples and k target examples (one number, or one per query), without frames (a ranking's candidates, a
        curve's points; `model` is scored as itself: pass an anchor's id)."""
        totals = np.atleast_1d(np.asarray(totals, dtype=np.float64))
        if np.ndim(k):
            by_k = {v: self.residuals_.offset(model, task, target, v) for v in np.unique(k).tolist()}
            out = np.array([by_k[v] for v in np.asarray(k).tolist()], dtype=np.float64)
        else:
            out = np.full(len(totals), self.residuals_.offset(model, task, target, k))
        sizes = getattr(self, "size_offsets_", None)
        if sizes is not None and sizes._cells:
            out = out + sizes.offsets_one(model, task, totals)
        return out

    def query_source_offsets(self, norm: pd.DataFrame) -> np.ndarray:
        """The source offset in each canonical query's best component (0 for the target's own examples, a target the
        record holds, or a source it lacks): the term /explain lists beside the trees' SHAP values."""
        out = np.zeros(len(norm))
        norm = self._anchored(norm)[0]
        rows, langs, static = _static_components(norm)
        if len(rows) == 0:
            return out
        _, comp, so = self._component_scores(static, rows, langs, norm)
        if so is None:
            return out
        pick = representative(None, rows, len(norm), comp)
        ok = pick >= 0
        out[ok] = so[pick[ok]]
        return out

    def predict(self, obs: pd.DataFrame) -> np.ndarray:
        return self.score_queries(normalize_observations(obs))[1]

    def raw(self, X: pd.DataFrame, num_threads: int | None = None) -> np.ndarray:
        """The trees' output for feature rows (before the floors): what SHAP values add up to."""
        return self.booster_.predict(X[self.feature_names_].to_numpy(dtype=np.float32),
                                     num_threads=num_threads or self.n_jobs)

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        """TreeSHAP values (n, n_features + 1; last column = base value) via LightGBM's pred_contrib."""
        return self.contributions_matrix(X[self.feature_names_].to_numpy(dtype=np.float32))

    def contributions_matrix(self, arr: np.ndarray) -> np.ndarray:
        """`contributions` of float32 rows already in `feature_names_` order (the numpy serving path)."""
        return self.booster_.predict(np.asarray(arr, dtype=np.float32), pred_contrib=True, num_threads=1)

    # ------------------------------------------------------------------ persistence (text + JSON, no pickle)
    def to_files(self) -> dict[str, str]:
        files = {"model.txt": self.booster_.model_to_string(),
                 "model_config.json": json.dumps({"params": self.get_params(), "features": self.feature_names_,
                                                  "inlang_min_k": self.inlang_min_k_,
                                                  "size_steps": self.size_steps_.to_dict()}, indent=1)}
        if self.evidence:
            files["evidence.csv"] = self.evidence_.to_csv()
        if self.record_residuals:
            files["residuals.csv"] = self.residuals_.to_csv()
        if self.source_offsets and self.evidence:
            files["source_offsets.csv"] = self.source_offsets_.to_csv()
        if self.pair_offsets and self.evidence and self.record_residuals:
            files["pair_offsets.csv"] = self.pair_offsets_.to_csv()
        if self.size_offsets and self.record_residuals:
            files["size_offsets.csv"] = self.size_offsets_.to_csv()
        return files

    @classmethod
    def from_files(cls, files: dict[str, bytes]) -> "TransferRegressor":
        import lightgbm as lgb

        config = json.loads(files["model_config.json"])
        params = {k: v for k, v in config["params"].items() if k in cls().get_params()}
        model = cls(**params)
        model.booster_ = lgb.Booster(model_str=files["model.txt"].decode())
        model.feature_names_ = list(config["features"])
        model.inlang_min_k_ = dict(config.get("inlang_min_k", {}))
        # an artifact from before size steps answers every size with the trees alone, as it did
        model.size_steps_ = SizeSteps.from_dict(config.get("size_steps"))
        if model.evidence:
            model.evidence_ = RecordEvidence.from_csv(files["evidence.csv"].decode(), mask_rate=model.mask_rate,
                                                      language_mask_rate=model.language_mask_rate,
                                                      random_state=model.random_state)
        model.residuals_ = (RecordResiduals.from_csv(files["residuals.csv"].decode())
                            if model.record_residuals and "residuals.csv" in files else RecordResiduals())
        # an artifact from before source offsets has none: it scores as it did
        model.source_offsets_ = (SourceOffsets.from_csv(files["source_offsets.csv"].decode())
                                 if "source_offsets.csv" in files else SourceOffsets())
        model.pair_offsets_ = (PairOffsets.from_csv(files["pair_offsets.csv"].decode())
                               if "pair_offsets.csv" in files else PairOffsets()).attach_record(model.residuals_.cells())
        # an artifact from before size offsets has none: it scores as it did
        model.size_offsets_ = (SizeOffsets.from_csv(files["size_offsets.csv"].decode())
                               if "size_offsets.csv" in files else SizeOffsets())
        return model


def _source_totals(static: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """Each of n queries' examples in languages other than its target, from its components' features."""
    names = list(FEATURE_NAMES)
    size = np.expm1(static[:, names.index("log_source_size")].astype(np.float64))
    source = static[:, names.index("in_language")] < 0.5
    return np.bincount(np.asarray(rows), weights=np.where(source, size, 0.0), minlength=n)


def _static_components(norm: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query of each component, its language, its static features) for canonical query rows."""
    rows, langs, counts, own = components(norm)
    static = _featurize_matrix(norm["model"].to_numpy(dtype=object), norm["task_type"].to_numpy(dtype=object),
                               norm["target"].to_numpy(dtype=object), norm["k"].to_numpy(dtype=np.float64),
                               rows, langs, counts, own)
    return rows, langs, static


def average_boosters(boosters) -> str:
    """One LightGBM text model whose prediction is the mean of `boosters`' predictions: every tree of every booster,
    its leaf and internal values divided by their number, renumbered, with `tree_sizes` recomputed.

    Why one model: a bag of boosters fitted on different draws of the evidence masks and seeds averages away much of
    the seed-to-seed spread, and merged this way it is served, explained (TreeSHAP is additive over trees) and stored
    exactly like a single booster of the same total number of trees.
    """
    import re

    texts = [b.model_to_string() for b in boosters]
    k = float(len(texts))
    trees: list[str] = []
    for text in texts:
        start, end = text.index("\nTree=0\n") + 1, text.index("end of trees")
        for block in re.split(r"(?=^Tree=\d+\n)", text[start:end], flags=re.M):
            if not block:
                continue
            body = block.split("\n", 1)[1]
            lines = []
            for line in body.split("\n"):
                key, eq, values = line.partition("=")
                if eq and key in ("leaf_value", "internal_value"):
                    line = key + "=" + " ".join(repr(float(v) / k) for v in values.split(" "))
                lines.append(line)
            trees.append(f"Tree={len(trees)}\n" + "\n".join(lines))
    first = texts[0]
    head = first[:first.index("\nTree=0\n") + 1]
    head = re.sub(r"(?m)^tree_sizes=.*$", "tree_sizes=" + " ".join(str(len(t.encode())) for t in trees), head)
    return head + "".join(trees) + first[first.index("end of trees"):]
