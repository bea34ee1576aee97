"""TransferPredictor: the one object HTTP, CLI and batch talk to.

Every call becomes the same table of queries (see features.queries), featurized and predicted at once; a single
request is a one-row table. Loading verifies the manifest's sha256 of every file and refuses a bad model.
"""
from __future__ import annotations

import json
import logging
import math
import threading
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from features import registry, typology
from features.errors import BadValue, ModelNotReady, XltError
from features.evidence import SEP as EVIDENCE_SEP, family_of as evidence_family
from features.featurize import featurize_pairs
from features.languages import get as language_record, resolve, resolve_code
from features.queries import combine, normalize, normalize_one, parse_count, parse_train_config
from predictor import artifacts
from predictor.curve import DEFAULT_KS, MAX_K, fit_log_curve
from predictor.explain import RECORD_RESIDUAL, SIZE_STEP, offset_term, top_reasons, top_reasons_rows
from predictor.intervals import (ConformalIntervals, evidence_bins, interval_bounds, new_task_regimes,
                                 probability_best, scale_from)
from predictor.model import TransferRegressor, chance_level, chance_levels
from predictor.record import Record
from predictor.treeshap import TreeShap

log = logging.getLogger("xlt.predictor")

MODEL_FILE = "model.txt"
CALIBRATION_FILE = "calibration.json"
BACKGROUND_FILE = "background.csv"
RECORD_FILE = "record.json"
MAX_CANDIDATES = 1000
# How /rank sizes its candidates. "assumed": every candidate at one size (`source_size`, default the task's usual
# training-set size), so the ranking compares languages, not datasets; the default, and what the plausibility
# properties are stated for. "published": each candidate at its own training-set size for the task where xlt holds
# one (registry_train_sizes.csv: TyDiQA-GoldP, UD POS, WikiANN), the assumed size elsewhere; for "which existing
# dataset should I train on?" (WikiANN's Zulu has 100 training sentences, English 20,000).
CANDIDATE_SIZES = ("assumed", "published")
ENGLISH = "eng"
# LightGBM threads a ranking's 100-odd rows are scored with. 1 unless the caller knows this request is the only work
# of the process (the API's inline path: see api.routers.queries), where both cores of the box score it: LightGBM on
# 99 rows takes 0.15 instead of 0.25 ms back to back, a fresh /rank over 100 candidates 1.80 instead of 1.94 ms p50
# in-process, and 3.0-3.1 instead of 3.1-3.3 ms on the shared latency check (the OpenMP threads sleep between
# requests). Under concurrent requests each keeps one thread (two OpenMP teams per request on 2 cores would contend).
REQUEST_THREADS: ContextVar[int] = ContextVar("xlt_request_threads", default=1)
WARM_MODEL = "xlm-r-large"  # the model the warm-up asks about; its pretraining languages' pairs are featurized then


@lru_cache(maxsize=256)
def _candidate_codes(candidates: tuple[str, ...]) -> tuple[str, ...] | None:
    """Canonical codes of a candidate list (None if one fails): the same list comes back with every question of a
    user or a page, so its ~100 resolutions are paid once."""
    try:
        return tuple(resolve_code(c) for c in candidates)
    except XltError:
        return None


class TransferPredictor:
    """A loaded, verified model plus its calibration; stateless per request and safe to share across threads."""

    def __init__(self, model: TransferRegressor, calibration: ConformalIntervals, manifest: dict,
                 background: pd.DataFrame | None = None, model_dir: Path | None = None,
                 record: Record | None = None):
        self.model = model
        self.record = record or Record({"targets_by_task": {}, "targets_by_type": {}, "sources_by_task": {},
                                        "sources_by_type": {}})
        self.calibration = calibration
        self.manifest = manifest
        self.background = background
        self.model_dir = model_dir
        self.feature_names = list(model.feature_names_)
        # Bounded by count: one entry is a ~100-row frame with reasons (tens of kB); the API keeps its own byte-capped
        # answer cache, so this memo only needs to cover bursts of the same question from the CLI or the page.
        self._rank_memo = lru_cache(maxsize=256)(self._rank_compute)
        self._treeshap: TreeShap | None = None
        self._treeshap_built = False
        self._treeshap_lock = threading.Lock()
        self._bin_memo: dict[tuple, np.ndarray] = {}
        self._family_memo: dict[tuple, bool] = {}
        self._observed: frozenset | None = None
        self.warm = False  # set once `warm_up` has run: no first-use cost (imports, tables) is left on any path

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path=None) -> "TransferPredictor":
        model_dir = artifacts.resolve_model_dir(path)
        manifest, files = artifacts.read_verified(model_dir)
        if MODEL_FILE not in files or CALIBRATION_FILE not in files:
            raise ModelNotReady(f"model at {model_dir} lacks {MODEL_FILE} or {CALIBRATION_FILE} in its manifest")
        try:
            model = TransferRegressor.from_files(files)
            calibration = ConformalIntervals.from_dict(json.loads(files[CALIBRATION_FILE]))
        except Exception as e:  # a file that passed its hash but does not parse is still a bad model
            raise ModelNotReady(f"model at {model_dir} does not load: {e}") from e
        if manifest.get("features") != model.feature_names_ or model.feature_names_ != model.feature_names:
            raise ModelNotReady(f"model at {model_dir} was trained on other features than this code computes; "
                                "retrain with `xlt train`")
        background = None
        if BACKGROUND_FILE in files:
            import io
            background = pd.read_csv(io.BytesIO(files[BACKGROUND_FILE]))
        rec = Record(json.loads(files[RECORD_FILE])) if RECORD_FILE in files else None
        return cls(model, calibration, manifest, background, Path(model_dir).resolve(), rec)

    # ------------------------------------------------------------------ core
    def _score(self, norm: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """(feature row of each query's best component, final score): the one scoring path."""
        return self.model.score_queries(norm, num_threads=1 if len(norm) < 5000 else 2)

    def _contrib(self, X: pd.DataFrame) -> np.ndarray:
        return self._contrib_matrix(X[self.feature_names].to_numpy(dtype=np.float32))

    def _contrib_matrix(self, arr: np.ndarray) -> np.ndarray:
        """TreeSHAP (rows, features + 1; last column the base value) of float32 rows in `feature_names` order:
        the tabulated numpy explainer (`predictor.treeshap`, a fraction of LightGBM's cost for a few rows), or
        LightGBM's `pred_contrib` for a model it does not cover."""
        shap = self.treeshap()
        return shap(arr) if shap is not None else self.model.contributions_matrix(arr)

    def treeshap(self) -> TreeShap | None:
        """The tabulated TreeSHAP explainer, built once on first use (~0.2 s; the API's warm-up builds it) and
        checked against LightGBM's `pred_contrib` on background rows, a row of zeros and one of missing values;
        None (LightGBM's own is used) when the model is out of its reach or they disagree."""
        if not self._treeshap_built:
            with self._treeshap_lock:
                if not self._treeshap_built:
                    n = len(self.feature_names)
                    check = [np.zeros((1, n)), np.full((1, n), np.nan)]
                    if self.background is not None:
                        check.insert(0, self.background[self.feature_names].to_numpy(dtype=np.float64)[:64])
                    try:
                        self._treeshap = TreeShap.build(self.model.booster_, check=np.concatenate(check))
                    except Exception:  # any surprise in the dump: LightGBM's own TreeSHAP stays in use
                        log.exception("tabulated TreeSHAP not built; using LightGBM's pred_contrib")
                        self._treeshap = None
                    if self._treeshap is None:
                        log.warning("tabulated TreeSHAP does not cover this model; using LightGBM's pred_contrib")
                    self._treeshap_built = True
        return self._treeshap

    def warm_up(self) -> None:
        """Pay every first-use cost once (the tabulated TreeSHAP, lazy imports and tables of the ranking, prediction
        and explanation paths) by answering one question of each kind, and fill the per-language-pair typology
        features of the default candidates (`_warm_pairs`); then `warm` is True. Answers are pure functions of the
        model, so this changes none of them."""
        try:
            self.treeshap()
            q = {"model": WARM_MODEL, "task": "xnli", "target": "sw"}
            self._rank_compute_uncached(q)
            self.predict_one({**q, "source": "en"})
            self.explain({**q, "source": "en"})
            self._warm_pairs(WARM_MODEL)
        except Exception:  # a warm-up failure only leaves the costs to the first requests
            log.exception("warm-up failed")
        self.warm = True

    @staticmethod
    def _warm_pairs(model: str) -> int:
        """Typology features (distances, same script/family) of every ordered pair of `model`'s pretraining
        languages, the default candidates of a ranking, computed once at start-up (~0.1 s for ~90 languages)
        instead of by the first ranking of each target: that ranking paid ~0.7 ms more for its 100 pairs, and with
        one cache per worker process each worker paid it again. They go into the featurizer's bounded per-pair
        cache (a pure function of the pair), filled by its public entry point, and use at most half of that cache,
        so later pairs still have room. Returns the number of pairs featurized."""
        from features import featurize as F

        spec = registry.resolve_model(model)
        langs = sorted(registry.corpus_languages(spec.id))
        langs = langs[:math.isqrt(F.PAIR_CACHE_MAX // 2)]  # n² pairs: at most half the cache
        n = 0
        for target in langs:
            sources = np.array([c for c in langs if c != target], dtype=object)
            featurize_pairs(spec.id, "classification", sources, np.full(len(sources), target, dtype=object), 1)
            n += len(sources)
        return n

    def _rank_compute_uncached(self, q: dict) -> None:
        model = registry.resolve_model(q["model"]).id
        target = resolve_code(q["target"])
        cands = tuple(c for c in (ENGLISH, "deu", "fra", "hin") if c != target)
        self._rank_compute((model, q["task"], None, target, cands, None, None, None, 3, 5, "assumed"))

    def _bins(self, X, tasks, targets, models) -> np.ndarray:
        """Calibration bin per answer: regime (record / similarity) + whether the record holds the pair itself."""
        return evidence_bins(_per_distinct(self._regimes, tasks, targets, models), self._ev_pair(X))

    def _ev_pair(self, X) -> np.ndarray:
        """The `ev_pair` feature of each row of X (array or frame); NaN for a model without record evidence."""
        if "ev_pair" not in self.feature_names:
            return np.full(len(X), np.nan)
        return X[:, self.feature_names.index("ev_pair")] if isinstance(X, np.ndarray) else X["ev_pair"].to_numpy()

    def _regimes(self, tasks, targets, models) -> np.ndarray:
        """The calibration regime per answer: the served one (`regime`); a task the record holds no rows for is its
        own bin (NEW_TASK)."""
        served = np.array([self.regime(t, g, m) for t, g, m in zip(tasks, targets, models)], dtype=object)
        return new_task_regimes(served, tasks, self.record.summary["targets_by_task"])

    def regime(self, task: str, target: str, model: str) -> str:
        """'record' when published results exist for this target on this task *with this model's family* (and the
        record holds results of the model itself), else 'similarity'. A target the record holds only for another
        family (every UD POS result is XLM-R's, so mT5 on udpos) is answered without this family's own evidence for
        it: the narrow record intervals, calibrated on targets seen with the query's family, would claim knowledge
        the model does not have (held out whole, a family is predicted about as well as an unseen target: `xlt
        evaluate`'s unseen_family protocol)."""
        base = self.record.regime(task, target)
        if base != "record":
            return base
        key = (task, target, model)
        hit = self._family_memo.get(key)
        if hit is None:
            hit = self._family_memo[key] = self._family_has_target(task, target, model)
        return "record" if hit else "similarity"

    def _family_has_target(self, task: str, target: str, model: str) -> bool:
        ev = self.model.evidence_ if getattr(self.model, "evidence", False) else None
        if ev is None:  # a model without record evidence: the record's regime as it is
            return True
        if model not in self._observed_models(ev):  # XLM-R XL / XXL: the family's record, but none of this model's
            return False
        return f"{task}{EVIDENCE_SEP}{evidence_family(model)}{EVIDENCE_SEP}{target}" in ev._dict("ev_target")

    def _observed_models(self, ev) -> frozenset:
        """Model ids with results in the record (the per-model source grain `_src_dev` is keyed task|model|source):
        a registered model without any (XLM-R XL, XXL) is answered by extrapolating its family's size trend, which
        the record-regime intervals, calibrated on models the record holds, do not cover."""
        if self._observed is None:
            self._observed = frozenset(k.split(EVIDENCE_SEP)[1] for k in ev._dict("_src_dev"))
        return self._observed

    def _bin_table(self, bins, task_types) -> np.ndarray:
        """`calibration.bin_table` per answer (each level's quantile, then the scale's slope and center), each
        distinct (bin, task type) looked up once per process: the row is a function of the pair alone, and building
        the calibration's string keys with numpy costs more than a ranking's other bookkeeping together."""
        memo = self._bin_memo
        out = []
        for key in zip(bins, task_types):
            row = memo.get(key)
            if row is None:
                if len(memo) >= 1024:  # bins × task types: a few dozen; bounded all the same
                    memo.clear()
                row = memo[key] = self.calibration.bin_table(np.array([key[0]], dtype=object),
                                                             np.array([key[1]], dtype=object))[0]
            out.append(row)
        return np.array(out, dtype=np.float64).reshape(len(out), len(self.calibration.levels) + 2)

    def _intervals(self, scores: np.ndarray, task_types, regimes, chance) -> dict[str, np.ndarray]:
        """80/90% bounds per answer; `chance` (per answer or one number) floors the lower bound (interval_bounds)."""
        out = {}
        # per distinct (bin, task type): each level's quantile and the regime's difficulty-scale parameters
        table = _per_distinct(self._bin_table, regimes, task_types)
        scale = scale_from(table[:, -2:], scores)
        for j, level in enumerate(self.calibration.levels):
            tag = int(round(level * 100))
            out[f"lower{tag}"], out[f"upper{tag}"] = interval_bounds(scores, table[:, j] * scale, chance)
        return out

    def predict(self, queries: pd.DataFrame) -> pd.DataFrame:
        """Scores, 80/90% intervals and a per-row error for a table of queries (bad rows are not scored)."""
        norm, errors = normalize(queries)
        ok = (errors == "").to_numpy()
        out = pd.DataFrame(index=queries.index)
        score = np.full(len(queries), np.nan)
        bounds = {c: np.full(len(queries), np.nan) for c in ("lower80", "upper80", "lower90", "upper90")}
        if ok.any():
            X, s = self._score(norm[ok])
            score[ok] = s
            regimes = self._bins(X, norm.loc[ok, "task"], norm.loc[ok, "target"], norm.loc[ok, "model"])
            for c, v in self._intervals(s, norm.loc[ok, "task_type"].to_numpy(), regimes,
                                        chance_levels(norm[ok])).items():
                bounds[c][ok] = v
        out["predicted_score"] = score
        for c, v in bounds.items():
            out[c] = v
        out["error"] = errors.to_numpy()
        return out

    def predict_pairs(self, model: str, task: str, sources, targets, task_type: str | None = None,
                      source_size: int | None = None, k: int = 0, num_threads: int | None = None) -> pd.DataFrame:
        """Scores for many (source, target) pairs under one model/task/size: the all-pairs fast path.

        Skips per-row query parsing (the languages must be canonical codes); same features, same model.
        """
        spec = registry.resolve_model(model)
        tspec = registry.resolve_task(task, task_type)
        size = parse_count(source_size, "source_size") if source_size is not None else tspec.train_size
        if not size:
            raise BadValue(f"source_size is required: task {tspec.id!r} has no known training-set size",
                           field="source_size")
        sources = np.asarray(sources, dtype=object)
        targets = np.asarray(targets, dtype=object)
        k = parse_count(k, "k")
        Xc, rows, langs = featurize_pairs(spec.id, tspec.task_type, sources, targets, size, k)
        # the canonical query columns the model reads per query (k: the record's residual is a function of it)
        # (object columns: pandas would otherwise convert millions of codes to Arrow strings and the model back)
        n = len(sources)
        frame = pd.DataFrame({"model": pd.Series(np.full(n, spec.id, dtype=object), dtype=object),
                              "task": pd.Series(np.full(n, tspec.id, dtype=object), dtype=object),
                              "task_type": pd.Series(np.full(n, tspec.task_type, dtype=object), dtype=object),
                              "target": pd.Series(targets, dtype=object), "k": np.full(n, k, dtype=np.int64)})
        X, scores, _ = self.model.score_components(Xc, rows, langs, frame,
                                                   num_threads=num_threads or (1 if len(rows) < 5000 else 2))
        out = pd.DataFrame({"predicted_score": scores})
        for c, v in self._intervals(scores, np.full(len(scores), tspec.task_type),
                                    self._bins(X, np.full(len(targets), tspec.id), targets,
                                               np.full(len(targets), spec.id, dtype=object)),
                                    chance_level(tspec.id, tspec.task_type)).items():
            out[c] = v
        return out

    def background_shap(self) -> tuple[np.ndarray, np.ndarray]:
        """A sample of training feature rows and their SHAP values (for the beeswarm importance plot)."""
        if self.background is None:
            raise ModelNotReady("this model was saved without a background sample; retrain with `xlt train`")
        X = self.background[self.feature_names]
        return X.to_numpy(dtype=np.float64), self._contrib(X)

    def _one(self, query: dict) -> pd.DataFrame:
        """Normalise a single query strictly: raises the XltError of its first bad field."""
        if not isinstance(query, dict):
            raise BadValue("a query must be a JSON object", field="body")
        return normalize_one(query)

    def predict_one(self, query: dict) -> dict:
        """One prediction with its interval and two yardsticks: always-English and the syntactically closest source."""
        norm = self._one(query)
        row = norm.iloc[0]
        single = _single_source(row["train_config"], row["target"])
        if single is not None:  # `source:size` (+ `target:k`): the ranking's numpy path, the same score (tested)
            X, s, _ = self.model.score_sources(row["model"], row["task"], row["task_type"], row["target"],
                                               [single[0]], single[1], int(row["k"]))
        else:
            X, s = self._score(norm)
        score = float(s[0])
        answer = {"predicted_score": score, "query": _query_echo(row)}
        answer["regime"] = self.regime(norm["task"].iloc[0], norm["target"].iloc[0], norm["model"].iloc[0])
        answer.update({k: float(v[0]) for k, v in self._intervals(np.array([score]), norm["task_type"],
                                                                  self._bins(X, norm["task"], norm["target"],
                                                                             norm["model"]),
                                                                  chance_levels(norm)).items()})
        tspec = registry.resolve_task(row["task"], row["task_type"])
        notes = [registry.assumed_size(query.get("model")),
                 f"task {tspec.id!r} is not in the registry: answered as a new {tspec.task_type} task (the type's "
                 f"published results and language similarity; default source size {tspec.train_size:,})"
                 if tspec.adhoc else None]
        if any(notes):
            answer["notes"] = [n for n in notes if n]
        answer["yardsticks"] = self._yardsticks(row)
        return answer

    def _yardsticks(self, row: pd.Series) -> dict:
        target = row["target"]
        size = int(row["source_size"]) or registry.resolve_task(row["task"], row["task_type"]).train_size or 10000
        closest = self.closest_source(row["model"], target, "syntactic")
        named = {name: source for name, source in (("always_english", ENGLISH), ("closest_by_syntax", closest))
                 if source is not None and source != target}
        # both are the single-source query `source:size` (+ `target:k`): scored together on the ranking's numpy path
        sources = list(dict.fromkeys(named.values()))
        scores = dict(zip(sources, self.model.score_sources(row["model"], row["task"], row["task_type"], target,
                                                            sources, size, int(row["k"]))[1].tolist())) \
            if sources else {}
        return {name: ({"source": named[name], "predicted_score": float(scores[named[name]])} if name in named
                       else None) for name in ("always_english", "closest_by_syntax")}

    @staticmethod
    @lru_cache(maxsize=4096)
    def closest_source(model: str, target: str, kind: str = "syntactic") -> str | None:
        langs = np.array([c for c in registry.corpus_languages(model) if c != target])
        if len(langs) == 0:
            return None
        d = typology.pair_distances(langs, np.full(len(langs), target))[kind]
        if np.all(np.isnan(d)):
            return None
        return str(langs[int(np.nanargmin(d))])

    # ------------------------------------------------------------------ rank
    def rank(self, query: dict, candidates: list[str] | None = None, top: int | None = None,
             reasons: int = 3, reasons_top: int = 5) -> pd.DataFrame:
        """Candidate sources ordered by predicted score, with intervals, P(best) and the top SHAP reasons.

        Reasons (TreeSHAP, relative to the candidates' mean) are computed for the first `reasons_top` sources: SHAP
        costs ~1–2 ms a row, so explaining 100 candidates would dominate the request. Answers are memoised per
        canonical request (the model is immutable once loaded), so a repeated query costs microseconds.
        """
        return self.rank_table(query, candidates, top, reasons, reasons_top).frame()

    def rank_table(self, query: dict, candidates: list[str] | None = None, top: int | None = None,
                   reasons: int = 3, reasons_top: int = 5) -> "RankTable":
        """`rank` as plain columns (numpy arrays and lists, rank order) and the regime: what an answer is built
        from without a DataFrame (shared by every caller of the same question: do not mutate)."""
        base = {k: v for k, v in query.items() if k not in ("source", "train_config", "candidates", "top")}
        sizing = _opt_str(base.get("candidate_sizes"), "candidate_sizes") or CANDIDATE_SIZES[0]
        if sizing not in CANDIDATE_SIZES:
            raise BadValue(f"candidate_sizes must be one of {', '.join(CANDIDATE_SIZES)}, got {sizing!r}",
                           field="candidate_sizes")
        model = registry.resolve_model(_str_field(_req(base, "model"), "model"))
        target = _field(resolve_code, _req(base, "target"), "target")
        task_spec = registry.resolve_task(_str_field(_req(base, "task"), "task"),
                                          _opt_str(base.get("task_type"), "task_type") or None)
        if candidates is None:
            cands = self.record.default_pool(model.id, task_spec.id, task_spec.task_type, target)
        else:
            if not isinstance(candidates, (list, tuple)):
                raise BadValue("candidates must be a list of languages", field="candidates")
            if len(candidates) == 0:
                raise BadValue("candidates is empty: give at least one language or omit it", field="candidates")
            if len(candidates) > MAX_CANDIDATES:
                raise BadValue(f"at most {MAX_CANDIDATES} candidates, got {len(candidates)}", field="candidates")
            codes = _candidate_codes(tuple(candidates)) if set(map(type, candidates)) == {str} else None
            if codes is None:  # some candidate fails: resolve one by one for the error naming its index
                codes = []
                for i, c in enumerate(candidates):  # _field's checks inline: no per-candidate field name unless it fails
                    if not isinstance(c, str):
                        raise BadValue(f"candidates[{i}] must be a string, got {type(c).__name__}",
                                       field=f"candidates[{i}]")
                    try:
                        codes.append(resolve_code(c))
                    except XltError as e:
                        e.field = f"candidates[{i}]"
                        raise
            seen = dict.fromkeys(codes)  # insertion-ordered set, without the target
            seen.pop(target, None)
            if not seen and query.get("source") is None:
                raise BadValue("every candidate is the target itself", field="candidates")
            cands = tuple(seen)
        if query.get("source") is not None:  # a named source is always ranked, whatever the pool
            code = _field(resolve_code, query["source"], "source")
            if code != target and code not in cands:
                cands = cands + (code,)
        if not cands:
            raise BadValue("no candidate source other than the target itself", field="candidates")
        if top is not None:
            top = parse_count(top, "top")
            if top < 1:
                raise BadValue("top must be >= 1", field="top")
        key = (model.id, _str_field(_req(base, "task"), "task"), _opt_str(base.get("task_type"), "task_type"), target,
               cands, _opt_count(base.get("source_size"), "source_size"), _opt_count(base.get("k"), "k"), top,
               int(reasons), int(reasons_top), sizing)
        return self._rank_memo(key)

    def _rank_compute(self, key) -> "RankTable":
        model, task, task_type, target, cands, source_size, k, top, reasons, reasons_top, sizing = key
        # the canonical query `cands[0]:source_size` (+ k), as `normalize_one` makes it (same resolvers, same
        # `combine`: defaults and errors as for /predict) without its one-row DataFrame
        spec = registry.resolve_model(model)
        tspec = registry.resolve_task(task, task_type if task_type is not None and task_type.strip() else None)
        _, kk, size = combine(tspec, target, cands[0], None, source_size, k)
        model_id, task_id, ttype = spec.id, tspec.id, tspec.task_type
        sizes, published = np.full(len(cands), size, dtype=np.int64), np.zeros(len(cands), dtype=bool)
        if sizing == "published" and not tspec.adhoc:  # a task the registry does not know has no published sizes
            held = registry.train_sizes(task_id, cands)
            published = np.array([h is not None for h in held])
            sizes = np.array([h or size for h in held], dtype=np.int64)
        # every candidate is the query `source:size` (+ `target:k`): scored in numpy, no per-candidate query rows
        X, scores, source_offsets = self.model.score_sources(model_id, task_id, ttype, target, cands, sizes, kk,
                                                             num_threads=REQUEST_THREADS.get())
        # ties (the trees cannot tell two sources apart) go to the genetically closer one, then the given order
        gen = X[:, self.feature_names.index("dist_genetic")]
        order = np.lexsort((np.arange(len(scores)), gen, -np.round(scores, 9)))
        if top:
            order = order[:top]
        ranked = scores[order]
        regime = self.regime(task_id, target, model_id)
        cols = {"source": np.asarray(cands, dtype=object)[order], "predicted_score": ranked,
                "source_size": sizes[order], "size_published": published[order]}
        cols["name"] = [language_record(c).name for c in cols["source"]]  # candidates are canonical codes already
        # every row shares the task and target, so the regime: `_bins` without its per-row regime look-ups (the
        # calibration bin may differ from the answer's regime: a task the record lacks has a bin of its own)
        bin_regime = self._regimes(np.array([task_id], dtype=object), np.array([target], dtype=object),
                                   np.array([model_id], dtype=object))[0]
        bins = evidence_bins(np.full(len(order), bin_regime, dtype=object), self._ev_pair(X[order]))
        cols.update(self._intervals(ranked, np.full(len(order), ttype, dtype=object), bins,
                                    chance_level(task_id, ttype)))
        cols["p_best"] = probability_best(scores, self.calibration.within_target_sd_)[order]
        gap = self.calibration.best_set_gap(regime)
        if gap is not None:  # the 90% best-source set: candidates within the calibrated gap of the leader
            cols["in_best_set"] = ranked >= scores.max() - gap - 1e-9
        if reasons:
            explained = order[:reasons_top]
            shap = self.treeshap()
            # only each explained source against the others matters: the tabulated TreeSHAP then looks up only the
            # leaves where those rows differ (`TreeShap.relative`: the same effects, up to rounding)
            contrib = shap.relative(X[explained]) if shap is not None and len(explained) > 1 \
                else self._contrib_matrix(X[explained])
            # Reasons say why this source beats the others: SHAP minus the mean over all candidates' SHAP, where
            # the mean is estimated on the explained rows (target-level features cancel out either way).
            mean = contrib.mean(axis=0) if len(explained) > 1 else None
            allv = X.astype(np.float64)
            # a feature equal for every candidate (task, model, target's data...) cannot say why one source wins
            filled = np.where(np.isnan(allv), -1e30, allv)  # NaN is a value too: missing for all = constant
            constant = np.append(filled.max(axis=0) - filled.min(axis=0) < 1e-9, True)
            vals = allv[explained]
            names = self.feature_names
            so = source_offsets[explained]
            if np.any(so != 0.0):  # the source's record: a reason like any SHAP value
                contrib = np.concatenate([contrib[:, :-1], so[:, None], contrib[:, -1:]], axis=1)
                mean = contrib.mean(axis=0) if mean is not None else None
                vals = np.concatenate([vals, so[:, None]], axis=1)
                constant = np.concatenate([constant[:-1], [False], constant[-1:]])
                seen = bool(self.model.target_published(X[explained[:1]])[0])  # one target: same for every candidate
                names = [*names, offset_term(seen)]
            listed = top_reasons_rows(contrib, vals, reasons, mean, names, constant)
            cols["reasons"] = listed + [[] for _ in range(len(order) - len(explained))]  # not explained: empty
        return RankTable(cols, regime)

    # ------------------------------------------------------------------ curve
    def curve(self, query: dict, ks=None, target_score: float | None = None) -> dict:
        """Predicted score over k target examples, the a + b·ln(1+k) fit and k_to_reach(target_score)."""
        ks = list(DEFAULT_KS if ks is None else ks)
        if not ks or len(ks) > 200:
            raise BadValue("ks must hold 1 to 200 values", field="ks")
        ks = sorted({parse_count(k, "ks") for k in ks})
        base = {k: v for k, v in query.items() if k not in ("k", "ks", "target_score")}
        norm0 = self._one(base)
        rows = self._with_k(norm0, ks)
        Xk, scores = self._scores_at_ks(norm0, ks, rows)
        a, b, r2 = fit_log_curve(ks, scores)
        intervals = self._intervals(scores, rows["task_type"].to_numpy(),
                                    self._bins(Xk, rows["task"], rows["target"], rows["model"]),
                                    chance_levels(rows))
        points = [{"k": int(k), "score": float(s), **{c: float(v[i]) for c, v in intervals.items()}}
                  for i, (k, s) in enumerate(zip(ks, scores))]
        reach = None
        if target_score is not None:
            ts = float(target_score)
            if not math.isfinite(ts) or not 0 <= ts <= 100:
                raise BadValue("target_score must be between 0 and 100", field="target_score")
            reach = self.k_to_reach(norm0, ts)
        return {"points": points, "a": a, "b": b, "r2": r2, "target_score": target_score, "k_to_reach": reach,
                "query": _query_echo(norm0.iloc[0])}

    @staticmethod
    def _with_k(norm0: pd.DataFrame, ks) -> pd.DataFrame:
        """Copies of a one-row canonical query whose target count is each k in turn (the rest of the mix kept)."""
        target = norm0["target"].iloc[0]
        mix = parse_train_config(norm0["train_config"].iloc[0])
        mix.pop(target, None)
        base = [f"{lang}:{n}" for lang, n in sorted(mix.items())]
        rows = _repeat_row(norm0, len(ks))
        rows["train_config"] = [";".join(sorted(base + ([f"{target}:{int(k)}"] if k else []))) for k in ks]
        rows["k"] = np.asarray(ks, dtype=np.int64)
        return rows

    def _scores_at_ks(self, norm0: pd.DataFrame, ks, rows: pd.DataFrame | None = None) -> tuple[object, np.ndarray]:
        """(feature rows, scores) of a one-row canonical query at each k target examples: a single-source mix on the
        ranking's numpy path (`score_sources` with one k per point: the same scores, tested), any other mix on the
        table path (`rows`: its `_with_k` frame, when the caller has it)."""
        row = norm0.iloc[0]
        single = _single_source(row["train_config"], row["target"])
        if single is None:
            return self._score(self._with_k(norm0, ks) if rows is None else rows)
        ks = np.asarray(ks, dtype=np.int64)
        X, scores, _ = self.model.score_sources(row["model"], row["task"], row["task_type"], row["target"],
                                                np.full(len(ks), single[0], dtype=object), single[1], ks)
        return X, scores

    def k_to_reach(self, norm0: pd.DataFrame, goal: float, k_max: int = MAX_K) -> int | None:
        """The smallest k whose own prediction reaches `goal` (None when even k_max does not): a search over the
        model, which is monotone in k by construction, so the answer is exact and no grid changes it."""
        lo, hi = 0, int(k_max)
        at = self._scores_at_ks(norm0, [lo, hi])[1]
        if at[0] >= goal:
            return 0
        if at[1] < goal:
            return None
        while hi - lo > 1:  # invariant: score(lo) < goal <= score(hi); 31 probes per round narrow it 32-fold
            probes = np.unique(np.linspace(lo, hi, 33).round().astype(np.int64)[1:-1])
            probes = probes[(probes > lo) & (probes < hi)]
            if len(probes) == 0:
                break
            s = self._scores_at_ks(norm0, probes)[1]
            reached = s >= goal
            if reached.any():
                first = int(np.argmax(reached))
                hi = int(probes[first])
                lo = int(probes[first - 1]) if first > 0 else lo
            else:
                lo = int(probes[-1])
        return hi

    # ------------------------------------------------------------------ explain
    def explain(self, query: dict) -> dict:
        """Base value + one SHAP value per feature; they add up to `prediction` (the unclipped model output)."""
        norm = self._one(query)
        arr, final, residual, source_offset, step = self._explained_terms(norm)
        contrib = self._contrib_matrix(arr)[0]
        values = arr.astype(np.float64)[0]
        names = list(self.feature_names)
        prediction = float(self.model.booster_.predict(arr, num_threads=1)[0])
        # the record's residual for this target and the source's offset where the target is unseen: additive terms
        # outside the trees, so each is one more contribution and Σ still adds up
        seen = bool(self.model.target_published(values[None, :])[0])
        doublings = self.model.size_steps_.anchors_.get(norm["model"].iloc[0], ("", 0.0))[1] if step else 0.0
        for name, offset, value in ((RECORD_RESIDUAL, residual, None), (offset_term(seen), source_offset, None),
                                    (SIZE_STEP, step, doublings)):
            if offset != 0.0:
                names.append(name)
                contrib = np.concatenate([contrib[:-1], [offset], contrib[-1:]])
                values = np.append(values, offset if value is None else value)
                prediction += offset
        return {
            "base_value": float(contrib[-1]),
            "contributions": {f: float(c) for f, c in zip(names, contrib[:-1])},
            "feature_values": {f: (None if math.isnan(v) else float(v)) for f, v in zip(names, values)},
            "prediction": prediction,
            "predicted_score": final,
            "reasons": top_reasons(contrib, values, 3, feature_names=names),
            "query": _query_echo(norm.iloc[0]),
        }

    def _explained_terms(self, norm: pd.DataFrame) -> tuple[np.ndarray, float, float, float, float]:
        """(float32 feature row of the best component, final score, the record's offset, the source or pair
        offset, the size step) of one canonical query: what /explain adds up. A single-source query (with or
        without target examples) takes the ranking's numpy path (`score_sources`, scored as the model's anchor
        when the record lacks its size), a mixture the table path."""
        row = norm.iloc[0]
        single = _single_source(row["train_config"], row["target"])
        if single is None:
            X, final = self._score(norm)
            return (X[self.feature_names].to_numpy(dtype=np.float32), float(final[0]),
                    float(self.model.query_offsets(norm)[0]), float(self.model.query_source_offsets(norm)[0]),
                    float(self.model.size_steps(norm)[0]))
        model, task, ttype, target, k = row["model"], row["task"], row["task_type"], row["target"], int(row["k"])
        steps = getattr(self.model, "size_steps_", None)
        anchor, doublings = steps.anchors_[model] if steps is not None and model in steps.anchors_ else (model, None)
        arr, base, so = self.model.score_sources(anchor, task, ttype, target, [single[0]], single[1], k)
        final = float(base[0]) if doublings is None else \
            float(steps.apply(base, np.full(1, doublings), chance_level(task, ttype))[0])  # as score_sources does
        return (arr, final, float(self.model.record_offset(anchor, task, target, k, single[1])[0]), float(so[0]),
                final - float(base[0]))

    # ------------------------------------------------------------------ plan
    def plan(self, query: dict, candidates: list[str], budget: int, steps: int = 20,
             costs: dict | None = None) -> dict:
        """Spend a labelling budget over candidate languages (target included) to maximise the predicted score.

        The plan starts from the mix you already own (`train_config` in the query) and spends `budget` cost units
        (one unit per example unless `costs` gives a cost per example per language). Greedy marginal allocation in
        `steps` equal parts, then compared with every all-in-one-language plan (English included), so it is never
        worse than the English-only plan it reports. With several targets the mean predicted score is the objective.
        `next_100` says what 100 more examples of each language would add on top of the plan.
        """
        budget = parse_count(budget, "budget")
        if budget < 1:
            raise BadValue("budget must be at least 1 example", field="budget")
        targets_in = query.get("targets") or query.get("target")
        targets_in = targets_in if isinstance(targets_in, list) else [targets_in]
        if not targets_in or targets_in == [None]:
            raise BadValue("target is required", field="target")
        targets = [_field(resolve_code, t, "target") for t in targets_in]
        if not isinstance(candidates, (list, tuple)) or not candidates:
            raise BadValue("candidates must be a non-empty list of languages", field="candidates")
        if len(candidates) > 50:
            raise BadValue("at most 50 candidates for a plan", field="candidates")
        langs = []
        for i, c in enumerate(candidates):
            code = _field(resolve_code, c, f"candidates[{i}]")
            if code not in langs:
                langs.append(code)
        for t in targets:
            if t not in langs:
                langs.append(t)
        start: dict[str, int] = {}
        if query.get("train_config"):
            start = parse_train_config(_str_field(query["train_config"], "train_config"))
        cost = {lang: 1.0 for lang in [*langs, ENGLISH]}
        for i, (lang, c) in enumerate((costs or {}).items()):
            code = _field(resolve_code, lang, f"costs[{i}]")
            if not isinstance(c, (int, float)) or isinstance(c, bool) or not math.isfinite(c) or c <= 0:
                raise BadValue(f"the cost of {lang!r} must be a positive number of units per example, got {c!r}",
                               field="costs")
            cost[code] = float(c)
        base = {k: query.get(k) for k in ("model", "task", "task_type")}
        chunk = max(1.0, budget / steps)

        def with_start(a: dict[str, int]) -> dict[str, int]:
            out = dict(start)
            for lang, n in a.items():
                out[lang] = out.get(lang, 0) + n
            return out

        def evaluate(allocs: list[dict[str, int]]) -> np.ndarray:
            rows = [{**base, "target": t, "train_config": ";".join(f"{l}:{n}" for l, n in with_start(a).items()
                                                                   if n > 0)}
                    for a in allocs for t in targets]
            norm, _ = normalize(pd.DataFrame(rows), strict=True)
            s = self._score(norm)[1]
            return s.reshape(len(allocs), len(targets)).mean(axis=1)

        alloc = {lang: 0 for lang in langs}
        spent, current = 0.0, None
        while budget - spent >= min(cost[lang] for lang in langs):
            step = min(chunk, budget - spent)
            trials, used = [], []
            for lang in langs:
                n = int(step // cost[lang])
                if n < 1:
                    continue
                a = dict(alloc)
                a[lang] += n
                trials.append(a)
                used.append(n * cost[lang])
            if not trials:
                break
            scores = evaluate(trials)
            best = int(np.argmax(scores))
            alloc, current = trials[best], float(scores[best])
            spent += used[best]
        # the greedy path can miss a plan that puts everything in one language (English included): try them all
        singles = [{lang: int(budget // cost[lang])} for lang in dict.fromkeys([ENGLISH, *langs])]
        single_scores = evaluate(singles)
        english = float(single_scores[0])
        best = int(np.argmax(single_scores))
        if current is None or single_scores[best] > current:
            alloc, current = {**{l: 0 for l in langs}, **singles[best]}, float(single_scores[best])
        start_score = float(evaluate([{}])[0]) if start else None
        more = evaluate([{**alloc, lang: alloc.get(lang, 0) + 100} for lang in langs])
        return {"plan": [{"language": l, "name": resolve(l).name, "examples": n} for l, n in alloc.items() if n > 0],
                "budget": budget, "targets": targets, "predicted_score": current,
                "english_only_score": english, "gain_over_english": current - english,
                "start_score": start_score, "spent": float(sum(n * cost[l] for l, n in alloc.items())),
                "next_100": [{"language": l, "name": resolve(l).name, "gain": float(g - current)}
                             for l, g in sorted(zip(langs, more), key=lambda x: -x[1])]}

    # ------------------------------------------------------------------ misc
    def version(self) -> dict:
        return self.manifest


class RankTable(NamedTuple):
    """A ranking as columns in rank order (source, predicted_score, name, lower/upper80/90, p_best, then the optional
    ones such as reasons) and its regime; memoised and shared, so read-only."""
    columns: dict
    regime: str

    def __len__(self) -> int:
        return len(self.columns["source"])

    def frame(self) -> pd.DataFrame:
        out = pd.DataFrame({c: (list(v) if isinstance(v, list) else np.array(v)) for c, v in self.columns.items()})
        out.attrs["regime"] = self.regime
        return out


BULK_ROWS = 2000


def _single_source(train_config: str, target: str) -> tuple[str, int] | None:
    """(source, size) of a canonical mix that is one source other than the target, with or without the target's
    own examples; None for any other mix (several sources, or the target's examples alone)."""
    sources = [(lang, n) for lang, n in parse_train_config(train_config).items() if lang != target]
    return sources[0] if len(sources) == 1 else None


def _per_distinct(fn, *columns) -> np.ndarray:
    """fn(*columns) for per-row arrays, computed once per distinct combination of their values when there are many
    rows (all-pairs and batches repeat a few tasks, models, regimes and targets over millions of rows; the look-ups
    are per-row Python loops)."""
    columns = [np.asarray(c, dtype=object) for c in columns]
    if len(columns[0]) < BULK_ROWS:
        return fn(*columns)
    combined = np.zeros(len(columns[0]), dtype=np.int64)
    uniques = []
    for c in columns:  # one integer per row: the mixed-radix number of its codes (few distinct values per column)
        codes, u = pd.factorize(c, use_na_sentinel=False)
        combined = combined * len(u) + codes
        uniques.append(np.asarray(u, dtype=object))
    rows, distinct = pd.factorize(combined, use_na_sentinel=False)
    rest = np.asarray(distinct, dtype=np.int64)
    picked = []
    for u in reversed(uniques):
        picked.append(u[rest % len(u)])
        rest = rest // len(u)
    return np.asarray(fn(*reversed(picked)))[rows]


def _repeat_row(one: pd.DataFrame, n: int) -> pd.DataFrame:
    """n copies of a one-row table, built column-wise (pd.concat of n frames costs milliseconds)."""
    return pd.DataFrame({c: np.repeat(one[c].to_numpy(), n) for c in one.columns})


def _req(d: dict, key: str):
    value = d.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadValue(f"{key} is required", field=key)
    return value


def _str_field(value, field: str) -> str:
    if not isinstance(value, str):
        raise BadValue(f"{field} must be a string, got {type(value).__name__}", field=field)
    return value


def _opt_str(value, field: str) -> str | None:
    return None if value is None else _str_field(value, field)


def _opt_count(value, field: str) -> int | None:
    return None if value is None else parse_count(value, field)


def _field(fn, value, field: str):
    if not isinstance(value, str):
        raise BadValue(f"{field} must be a string, got {type(value).__name__}", field=field)
    try:
        return fn(value)
    except XltError as e:
        e.field = field
        raise


def _query_echo(row: pd.Series) -> dict:
    return {"model": row["model"], "task": row["task"], "task_type": row["task_type"], "target": row["target"],
            "train_config": row["train_config"], "k": int(row["k"])}
