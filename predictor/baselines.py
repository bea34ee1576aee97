"""Baselines every evaluation table carries, as `fit_predict(train_df, test_df) -> np.ndarray` callables.

Rule baselines (always-English, closest source by one URIEL distance, biggest source corpus) only order candidates:
their outputs are not scores, so only ranking metrics are reported for them (`Method.kind == "ranking"`). Global mean
and the LITMUS-style regressor predict scores (kind "regression"). The LangRank-style LambdaRank predicts an ordering.

Features come from the product's own `features.featurize` (URIEL distances from `features.typology`, pretraining
shares, fine-tuning sizes, subword overlap), computed once per distinct query and cached, so a baseline costs one
LightGBM fit per fold. On LangRank's own benchmark (`protocols.load_langrank`) the frame already carries LangRank's
features (their URIEL distances, word overlap, dataset sizes, TTR) and those are used instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

DISTANCE_KINDS = ("genetic", "syntactic", "phonological", "inventory", "geographic", "featural")
LANGRANK_COLS = {"GENETIC": "genetic", "SYNTACTIC": "syntactic", "FEATURAL": "featural",
                 "PHONOLOGICAL": "phonological", "INVENTORY": "inventory", "GEOGRAPHIC": "geographic"}
ENGLISH = {"eng", "en"}
COMPOSITE = "closest composite (mean of six distances)"
SINGLE_RULES = ("always English",) + tuple(f"closest {k}" for k in DISTANCE_KINDS) + ("source corpus size",)
FEATURE_KEY_COLS = ("model", "task", "task_type", "target", "train_config")


@dataclass
class Method:
    """A named fit_predict plus what its output means: 'regression' (0–100 scores) or 'ranking' (order only)."""
    name: str
    fit_predict: Callable[[pd.DataFrame, pd.DataFrame], np.ndarray]
    kind: str = "regression"
    description: str = ""
    applies_to: tuple[str, ...] | None = None   # protocol names it runs on (None = all)


# ---------------------------------------------------------------------------------------------------------------
# feature cache: featurize each distinct query once per process

class FeatureCache:
    """Product features for observation rows, keyed by the query columns (so slices and overrides just work)."""

    def __init__(self):
        self._keys = pd.Index([], dtype=object)     # row key -> position in the matrix (a hash index, built once)
        self._blocks: list[pd.DataFrame] = []
        self._matrix: pd.DataFrame | None = None

    @staticmethod
    def row_keys(df: pd.DataFrame) -> pd.Series:
        cols = [df[c].astype(str) for c in FEATURE_KEY_COLS]
        key = cols[0]
        for c in cols[1:]:
            key = key + "|" + c
        return key

    def get(self, df: pd.DataFrame, keys: pd.Series | None = None, fill_only: bool = False) -> pd.DataFrame | None:
        """Features of `df`'s rows (index kept); rows not cached yet are featurized in one batch, in `df`'s order.
        `keys` = `row_keys(df)` when the caller has them; `fill_only` caches without gathering (returns None)."""
        from predictor.model import featurize_observations

        keys = self.row_keys(df) if keys is None else keys
        pos = self._keys.get_indexer(keys)
        new = (pos < 0) & ~keys.duplicated().to_numpy()
        if new.any():
            sub = df.loc[new]
            X = featurize_observations(sub)
            for c, v in _representative_pair_columns(sub).items():
                X[c] = v
            self._keys = self._keys.append(pd.Index(keys.to_numpy()[new], dtype=object))
            self._blocks.append(X.reset_index(drop=True))
            self._matrix = None
            pos = self._keys.get_indexer(keys)
        if fill_only:
            return None
        if self._matrix is None:
            self._matrix = pd.concat(self._blocks, ignore_index=True)
        out = self._matrix.iloc[pos]
        out.index = df.index
        return out


FEATURES = FeatureCache()


def _representative_pair_columns(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """For each row's largest source and its target: LITMUS subword overlap (NaN where LITMUS has none) and all six
    URIEL distances (imputed like the model's), since the model itself sees only some of them."""
    from features import typology
    from features.featurize import impute_distances, subword_overlap
    from predictor.model import normalize_observations
    norm = normalize_observations(df)
    tgt = norm["target"].to_numpy(dtype=object)
    src = []
    for cfg, t in zip(norm["train_config"], tgt):
        parts = [p.split(":") for p in cfg.split(";") if p and p.split(":")[0] != t]
        src.append(max(parts, key=lambda p: int(p[1]))[0] if parts else t)
    src = np.asarray(src, dtype=object)
    out = {"subword_overlap": subword_overlap(norm["model"].to_numpy(dtype=object), src, tgt)}
    dist = impute_distances(typology.pair_distances(src, tgt))
    for k in DISTANCE_KINDS:
        out[f"dist_{k}"] = np.where(src == tgt, 0.0, dist[k]).astype(np.float32)
    return out


def baseline_features(df: pd.DataFrame) -> pd.DataFrame:
    """The columns baselines use: dist_<kind>, log_source_size, src/tgt pretraining, overlap, k, ... .

    LangRank benchmark frames bring their own (uppercase URIEL columns); observation frames go through featurize."""
    if "GENETIC" in df.columns:
        out = pd.DataFrame(index=df.index)
        for c, k in LANGRANK_COLS.items():
            out[f"dist_{k}"] = df[c].astype(float)
        out["log_source_size"] = np.log1p(df["transfer_size"].astype(float))
        out["src_pretrain_log"] = out["log_source_size"]   # no pretraining corpus: the transfer data size
        for c in ("overlap_word", "overlap_subword", "target_size", "size_ratio", "transfer_ttr", "target_ttr",
                  "ttr_distance"):
            out[c] = df[c].astype(float)
        return out
    return FEATURES.get(df)


def _is_english_mix(df: pd.DataFrame) -> np.ndarray:
    parts = df["train_config"].astype(str).str.split(";")
    tgt = df["target"].astype(str).to_numpy()
    return np.array([any(p.split(":")[0] in ENGLISH for p in ps) and t not in ENGLISH
                     for ps, t in zip(parts, tgt)], dtype=bool)


def rank_groups(df: pd.DataFrame) -> pd.Series:
    """A ranking query (LambdaRank's query groups): `predictor.model.ranking_key`, the one definition of a ranking
    group. It used to add the dataset and metric columns; on the trainable observations that splits no group (every
    results file has one dataset, and the trainable rows one metric per file/model/task), so the two agreed row for
    row (tests/test_evaluate.py checks it) and the second definition went."""
    from predictor.model import ranking_key
    return pd.Series(ranking_key(df), index=df.index)


def langrank_relevance(groups: pd.Series, y: np.ndarray) -> np.ndarray:
    """LangRank's training labels: the true top-10 of each query get 10..1, the rest 0."""
    from predictor.metrics import _rank_within
    codes, _ = pd.factorize(groups)
    r = _rank_within(codes.astype(np.int64), np.asarray(y, float))
    return np.clip(10 - r, 0, None).astype(np.int32)


# ---------------------------------------------------------------------------------------------------------------
# baselines

def global_mean(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """Mean training score for every row (the 'knows nothing' floor for RMSE; ties give an arbitrary ranking)."""
    return np.full(len(test), float(train["score"].mean()))


def always_english(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """1 when English is in the training mixture, else 0 (ties among the rest keep row order)."""
    return _is_english_mix(test).astype(float)


def _uses_test(train: pd.DataFrame, test: pd.DataFrame) -> list:
    return [("features", test)]


def _uses_train_test(train: pd.DataFrame, test: pd.DataFrame) -> list:
    return [("features", train), ("features", test)]


class _Closest:
    """Rank sources by one URIEL distance to the target (closest first); a picklable fit_predict."""

    def __init__(self, kind: str):
        self.kind = kind
        self.__name__ = f"closest_{kind}"
        self.__doc__ = f"Rank sources by {kind} URIEL distance to the target (closest first)."

    def __call__(self, train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
        d = baseline_features(test)[f"dist_{self.kind}"].to_numpy(dtype=float)
        return -np.where(np.isnan(d), 10.0, d)   # uncovered pairs rank last

    cache_use = staticmethod(_uses_test)


def closest_by(kind: str) -> Callable:
    return _Closest(kind)


def distance_composite(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """Rank sources by the equal-weight mean of the six URIEL distances (closest first; undefined kinds skipped)."""
    f = baseline_features(test)
    d = f[[f"dist_{k}" for k in DISTANCE_KINDS]].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        m = np.nanmean(np.where(np.isfinite(d), d, np.nan), axis=1) if d.size else np.zeros(len(test))
    return -np.where(np.isnan(m), 10.0, m)


distance_composite.cache_use = _uses_test


def source_corpus_size(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """Rank sources by their share of the model's pretraining corpus (LangRank frames: transfer dataset size)."""
    x = baseline_features(test)["src_pretrain_log"].to_numpy(dtype=float)
    return np.where(np.isnan(x), -1e9, x)


source_corpus_size.cache_use = _uses_test


LANGRANK_PARAMS = dict(boosting_type="gbdt", num_leaves=16, max_depth=-1, learning_rate=0.1, n_estimators=100,
                       min_child_samples=5)   # neulab/langrank `train()` settings


def _langrank_matrix(df: pd.DataFrame) -> pd.DataFrame:
    f = baseline_features(df)
    cols = [f"dist_{k}" for k in ("genetic", "syntactic", "featural", "phonological", "inventory", "geographic")]
    if "overlap_word" in f.columns:
        # LangRank's own benchmark: their exact feature list (NaN where a task lacks one, e.g. EL has no TTR)
        cols = ["overlap_word", "overlap_subword", "log_source_size", "target_size", "size_ratio", "transfer_ttr",
                "target_ttr", "ttr_distance"] + cols
        return f[cols]
    X = f[cols].copy()
    # observations: dataset size = fine-tuning examples of the source(s); word overlap / TTR are not available,
    # the closest thing we have is the model's subword overlap (LITMUS's table), used where present.
    X["log_source_size"] = f["log_source_size"]
    X["log1p_k"] = f["log1p_k"]
    X["subword_overlap"] = f["subword_overlap"]
    return X


def _lambdarank_train(train: pd.DataFrame) -> pd.DataFrame:
    """The rows LambdaRank trains on: ranking groups of ≥ 2 rows, each group's rows together (column `_g`)."""
    tr = train.copy()
    tr["_g"] = rank_groups(tr).to_numpy()
    sizes = tr.groupby("_g", sort=False)["_g"].transform("size").to_numpy()
    tr = tr.loc[sizes >= 2]
    return tr.iloc[np.argsort(pd.factorize(tr["_g"])[0], kind="stable")]


def _uses_lambdarank(train: pd.DataFrame, test: pd.DataFrame) -> list:
    return [("features", _lambdarank_train(train)), ("features", test)]


def _fit_lambdarank(train: pd.DataFrame, test: pd.DataFrame, params: dict, matrix) -> np.ndarray:
    """LightGBM lambdarank with LangRank's top-10 relevance, one query group per ranking group (≥ 2 rows)."""
    import lightgbm as lgb

    tr = _lambdarank_train(train)
    y = langrank_relevance(tr["_g"], tr["score"].to_numpy())
    group = tr.groupby("_g", sort=False).size().to_numpy()
    model = lgb.LGBMRanker(**params, random_state=0, n_jobs=1, verbose=-1)
    model.fit(matrix(tr), y, group=group)
    return model.predict(matrix(test))


def langrank_lambdarank(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """LangRank-style LambdaRank (Lin et al. 2019): LightGBM lambdarank over their features, top-10 relevance."""
    return _fit_lambdarank(train, test, LANGRANK_PARAMS, _langrank_matrix)


langrank_lambdarank.cache_use = _uses_lambdarank


LITMUS_PARAMS = dict(n_estimators=100, learning_rate=0.3, max_depth=6, num_leaves=63, min_child_samples=1,
                     reg_lambda=1.0)  # XGBoost's defaults (LITMUS uses XGBRegressor with defaults)


def _litmus_matrix(df: pd.DataFrame) -> pd.DataFrame:
    f = baseline_features(df)
    cols = [f"dist_{k}" for k in DISTANCE_KINDS] + ["subword_overlap", "src_pretrain_log", "tgt_pretrain_log",
                                                    "log_source_size", "log1p_other_sources", "log1p_k",
                                                    "n_source_languages",
                                                    "model_family", "task_type"]
    return f[[c for c in cols if c in f.columns]]


def litmus_regressor(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """LITMUS-style regressor (Srinivasan et al. 2021): gradient boosting over pretraining sizes of source(s) and
    target, URIEL distances, subword type overlap and the fine-tuning mixture sizes."""
    import lightgbm as lgb

    model = lgb.LGBMRegressor(**LITMUS_PARAMS, random_state=0, n_jobs=1, verbose=-1)
    model.fit(_litmus_matrix(train), train["score"].to_numpy(dtype=float))
    return model.predict(_litmus_matrix(test))


litmus_regressor.cache_use = _uses_train_test


class ComponentCache:
    """`featurize_components` of each distinct observation query, computed once per process and gathered per fold.

    Keyed by the columns the static component features depend on (model, task type, target, mix), so a test frame
    whose task id is hidden (leave-task-out) reuses its components; the record's evidence, which does depend on the
    task, is computed by the model from the frame itself."""

    KEY_COLS = ("model", "task_type", "target", "train_config")

    def __init__(self):
        self._keys = pd.Index([], dtype=object)     # query key -> query number (a hash index, built once)
        self._blocks: list[tuple[pd.DataFrame, np.ndarray, np.ndarray]] = []
        self._all = None

    @classmethod
    def row_keys(cls, df: pd.DataFrame) -> pd.Series:
        key = df[cls.KEY_COLS[0]].astype(str)
        for c in cls.KEY_COLS[1:]:
            key = key + "|" + df[c].astype(str)
        return key

    def get(self, df: pd.DataFrame, keys: pd.Series | None = None, fill_only: bool = False):
        """(components, row of each component, language of each component) of `df`'s queries; queries not cached
        yet are featurized in one batch, in `df`'s order. `keys` = `row_keys(df)` when the caller has them;
        `fill_only` caches without gathering (returns None)."""
        from features.featurize import featurize_components
        from predictor.model import normalize_observations

        key = self.row_keys(df) if keys is None else keys
        q = self._keys.get_indexer(key)
        new = (q < 0) & ~key.duplicated().to_numpy()
        if new.any():
            sub = df.loc[new]
            Xc, rows, langs = featurize_components(normalize_observations(sub))
            offset = len(self._keys)
            self._keys = self._keys.append(pd.Index(key.to_numpy()[new], dtype=object))
            self._blocks.append((Xc.reset_index(drop=True), rows + offset, langs))
            self._all = None
            q = self._keys.get_indexer(key)
        if fill_only:
            return None
        if self._all is None:
            X = pd.concat([b[0] for b in self._blocks], ignore_index=True)
            rows = np.concatenate([b[1] for b in self._blocks])
            langs = np.concatenate([b[2] for b in self._blocks])
            self._all = (X, rows, langs, np.searchsorted(rows, np.arange(len(self._keys) + 1)))
        X, rows, langs, start = self._all
        q = q.astype(np.int64)
        counts = start[q + 1] - start[q]
        new_rows = np.repeat(np.arange(len(q)), counts)
        first = np.repeat(np.cumsum(counts) - counts, counts)
        pos = np.repeat(start[q], counts) + (np.arange(counts.sum()) - first)
        return X.iloc[pos].reset_index(drop=True), new_rows, langs[pos]


COMPONENTS = ComponentCache()


class _XltModel:
    """The product regressor (`predictor.model.TransferRegressor`) as a picklable fit_predict; components from the
    cache."""
    __name__ = "xlt_model"

    def __init__(self, params: dict | None = None):
        self.params = dict(params or {})

    def __call__(self, train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
        from predictor.model import TransferRegressor, normalize_observations
        m = TransferRegressor(**self.params).fit(train, components=COMPONENTS.get(train))
        return m.score_components(*COMPONENTS.get(test), normalize_observations(test))[1]

    @staticmethod
    def cache_use(train: pd.DataFrame, test: pd.DataFrame) -> list:
        return [("components", train), ("components", test)]


def xlt_model(params: dict | None = None) -> Callable:
    """The product regressor (`predictor.model.TransferRegressor`) as a fit_predict; components from the cache."""
    return _XltModel(params)


def baseline_methods(include_learned: bool = True) -> list[Method]:
    """Every baseline of the issue, in report order."""
    out = [Method("global mean", global_mean, "regression", "mean training score"),
           Method("always English", always_english, "ranking", "English first; others tied")]
    out += [Method(f"closest {k}", closest_by(k), "ranking", f"smallest URIEL {k} distance") for k in DISTANCE_KINDS]
    out.append(Method(COMPOSITE, distance_composite, "ranking",
                      "smallest mean of the six URIEL distances (equal weights)"))
    out.append(Method("source corpus size", source_corpus_size, "ranking",
                      "largest share of the model's pretraining corpus"))
    if include_learned:
        out.append(Method("LangRank LambdaRank", langrank_lambdarank, "ranking",
                          "LightGBM lambdarank, LangRank features and settings"))
        out.append(Method("LITMUS regressor", litmus_regressor, "regression",
                          "GBM over LITMUS features (XGBoost defaults)"))
    return out


# ---------------------------------------------------------------------------------------------------------------
# our ranking recipe (not a baseline): features relative to the target's other candidates + LambdaRank

def _ranker_matrix(df: pd.DataFrame) -> pd.DataFrame:
    """Base features plus each numeric feature minus its mean over the query's candidates.

    Which source is best is a within-target question; centring per query removes the target's level, which
    otherwise dominates the trees (see DESIGN.md: ~85% of variance is between (dataset, target))."""
    if "GENETIC" in df.columns:
        X = _langrank_matrix(df).copy()
    else:
        from features.featurize import CATEGORICAL_FEATURES, FEATURE_NAMES
        X = baseline_features(df)[[c for c in FEATURE_NAMES]].astype(float).copy()
        X = X.drop(columns=[c for c in CATEGORICAL_FEATURES if c in X.columns])
    g = rank_groups(df).to_numpy()
    centred = X.groupby(g).transform("mean")
    rel = (X - centred).add_suffix("_rel")
    return pd.concat([X, rel], axis=1)


RANKER_PARAMS = dict(n_estimators=150, learning_rate=0.1, num_leaves=16, min_child_samples=10,
                     subsample=0.8, subsample_freq=1, colsample_bytree=0.8)


def relative_lambdarank(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """LambdaRank on query-relative features (our ranking recipe; also run on LangRank's own benchmark)."""
    return _fit_lambdarank(train, test, RANKER_PARAMS, _ranker_matrix)


relative_lambdarank.cache_use = _uses_lambdarank
