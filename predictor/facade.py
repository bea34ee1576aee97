"""TransferPredictor: the one object HTTP, CLI and batch talk to.

Every call becomes the same table of queries (see features.queries), featurized and predicted at once; a single
request is a one-row table. Loading verifies the manifest's sha256 of every file and refuses a bad model.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from features import registry, typology
from features.errors import BadValue, ModelNotReady, XltError
from features.featurize import featurize_pairs
from features.languages import resolve, resolve_code
from features.queries import normalize, normalize_one, parse_count
from predictor import artifacts
from predictor.curve import DEFAULT_KS, fit_log_curve, k_to_reach
from predictor.explain import top_reasons
from predictor.intervals import ConformalIntervals, probability_best
from predictor.model import TransferRegressor

MODEL_FILE = "model.txt"
CALIBRATION_FILE = "calibration.json"
BACKGROUND_FILE = "background.csv"
MAX_CANDIDATES = 1000
ENGLISH = "eng"


class TransferPredictor:
    """A loaded, verified model plus its calibration; stateless per request and safe to share across threads."""

    def __init__(self, model: TransferRegressor, calibration: ConformalIntervals, manifest: dict,
                 background: pd.DataFrame | None = None, model_dir: Path | None = None):
        self.model = model
        self.calibration = calibration
        self.manifest = manifest
        self.background = background
        self.model_dir = model_dir
        self.feature_names = list(model.feature_names_)
        # Bounded by count: one entry is a ~100-row frame with reasons (tens of kB); the API keeps its own byte-capped
        # answer cache, so this memo only needs to cover bursts of the same question from the CLI or the page.
        self._rank_memo = lru_cache(maxsize=256)(self._rank_compute)

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
        return cls(model, calibration, manifest, background, Path(model_dir).resolve())

    # ------------------------------------------------------------------ core
    def _features(self, norm: pd.DataFrame) -> pd.DataFrame:
        return self.model.features(norm)

    def _raw(self, X: pd.DataFrame) -> np.ndarray:
        return self.model.predict_features(X, num_threads=1 if len(X) < 5000 else 2)

    def _contrib(self, X: pd.DataFrame) -> np.ndarray:
        return self.model.contributions(X)

    def _intervals(self, scores: np.ndarray, task_types) -> dict[str, np.ndarray]:
        out = {}
        for level in self.calibration.levels:
            h = self.calibration.halfwidth(task_types, level)
            tag = int(round(level * 100))
            out[f"lower{tag}"] = np.clip(scores - h, 0, 100)
            out[f"upper{tag}"] = np.clip(scores + h, 0, 100)
        return out

    def predict(self, queries: pd.DataFrame) -> pd.DataFrame:
        """Scores, 80/90% intervals and a per-row error for a table of queries (bad rows are not scored)."""
        norm, errors = normalize(queries)
        ok = (errors == "").to_numpy()
        out = pd.DataFrame(index=queries.index)
        score = np.full(len(queries), np.nan)
        bounds = {c: np.full(len(queries), np.nan) for c in ("lower80", "upper80", "lower90", "upper90")}
        if ok.any():
            X = self._features(norm[ok])
            s = np.clip(self._raw(X), 0, 100)
            score[ok] = s
            for c, v in self._intervals(s, norm.loc[ok, "task_type"].to_numpy()).items():
                bounds[c][ok] = v
        out["predicted_score"] = score
        for c, v in bounds.items():
            out[c] = v
        out["error"] = errors.to_numpy()
        return out

    def predict_pairs(self, model: str, task: str, sources, targets, task_type: str | None = None,
                      source_size: int | None = None, k: int = 0) -> pd.DataFrame:
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
        X = self.model.pair_features(featurize_pairs(spec.id, tspec.task_type, sources, targets, size,
                                                     parse_count(k, "k")), spec.id, tspec.id, tspec.task_type,
                                     sources, targets)
        scores = np.clip(self._raw(X), 0, 100)
        out = pd.DataFrame({"predicted_score": scores})
        for c, v in self._intervals(scores, np.full(len(scores), tspec.task_type)).items():
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
        X = self._features(norm)
        raw = float(self._raw(X)[0])
        score = min(100.0, max(0.0, raw))
        answer = {"predicted_score": score, "query": _query_echo(norm.iloc[0])}
        answer.update({k: float(v[0]) for k, v in self._intervals(np.array([score]), norm["task_type"]).items()})
        answer["yardsticks"] = self._yardsticks(norm.iloc[0])
        return answer

    def _yardsticks(self, row: pd.Series) -> dict:
        target = row["target"]
        size = int(row["source_size"]) or registry.resolve_task(row["task"], row["task_type"]).train_size or 10000
        out = {}
        closest = self.closest_source(row["model"], target, "syntactic")
        for name, source in (("always_english", ENGLISH), ("closest_by_syntax", closest)):
            if source is None or source == target:
                out[name] = None
                continue
            q = {"model": row["model"], "task": row["task"], "task_type": row["task_type"], "target": target,
                 "source": source, "source_size": size, "k": int(row["k"])}
            s = float(np.clip(self._raw(self._features(normalize_one(q))), 0, 100)[0])
            out[name] = {"source": source, "predicted_score": s}
        return out

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
        base = {k: v for k, v in query.items() if k not in ("source", "train_config", "candidates", "top")}
        model = registry.resolve_model(_str_field(_req(base, "model"), "model"))
        target = _field(resolve_code, _req(base, "target"), "target")
        if candidates is None:
            cands = tuple(c for c in registry.corpus_languages(model.id) if c != target)
        else:
            if not isinstance(candidates, (list, tuple)):
                raise BadValue("candidates must be a list of languages", field="candidates")
            if len(candidates) == 0:
                raise BadValue("candidates is empty: give at least one language or omit it", field="candidates")
            if len(candidates) > MAX_CANDIDATES:
                raise BadValue(f"at most {MAX_CANDIDATES} candidates, got {len(candidates)}", field="candidates")
            seen: list[str] = []
            for i, c in enumerate(candidates):
                code = _field(resolve_code, c, f"candidates[{i}]")
                if code != target and code not in seen:
                    seen.append(code)
            if not seen:
                raise BadValue("every candidate is the target itself", field="candidates")
            cands = tuple(seen)
        if top is not None:
            top = parse_count(top, "top")
            if top < 1:
                raise BadValue("top must be >= 1", field="top")
        key = (model.id, _str_field(_req(base, "task"), "task"), _opt_str(base.get("task_type"), "task_type"), target,
               cands, _opt_count(base.get("source_size"), "source_size"), _opt_count(base.get("k"), "k"), top,
               int(reasons), int(reasons_top))
        return self._rank_memo(key).copy()

    def _rank_compute(self, key) -> pd.DataFrame:
        model, task, task_type, target, cands, source_size, k, top, reasons, reasons_top = key
        first = {"model": model, "task": task, "task_type": task_type, "target": target, "source": cands[0],
                 "source_size": source_size, "k": k}
        norm0 = self._one(first)
        size = int(norm0["source_size"].iloc[0])
        kk = int(norm0["k"].iloc[0])
        n = len(cands)
        norm = _repeat_row(norm0, n)
        tail = f"{target}:{kk}" if kk else None
        norm["train_config"] = [";".join(sorted([f"{c}:{size}"] + ([tail] if tail else []))) for c in cands]
        X = self._features(norm)
        scores = np.clip(self._raw(X), 0, 100)
        order = np.argsort(-scores, kind="stable")
        if top:
            order = order[:top]
        out = pd.DataFrame({"source": np.asarray(cands)[order], "predicted_score": scores[order]})
        out["name"] = [resolve(c).name for c in out["source"]]
        for c, v in self._intervals(scores[order], norm["task_type"].to_numpy()[order]).items():
            out[c] = v
        out["p_best"] = probability_best(scores, self.calibration.within_target_sd_)[order]
        if reasons:
            explained = order[:reasons_top]
            contrib = self._contrib(X.iloc[explained])
            # Reasons say why this source beats the others: SHAP minus the mean over all candidates' SHAP, where
            # the mean is estimated on the explained rows (target-level features cancel out either way).
            mean = contrib.mean(axis=0) if len(explained) > 1 else None
            vals = X.to_numpy(dtype=np.float64)[explained]
            listed = [top_reasons(contrib[i], vals[i], reasons, mean, self.feature_names) for i in range(len(explained))]
            out["reasons"] = listed + [[] for _ in range(len(order) - len(explained))]  # not explained: empty
        return out.reset_index(drop=True)

    # ------------------------------------------------------------------ curve
    def curve(self, query: dict, ks=None, target_score: float | None = None) -> dict:
        """Predicted score over k target examples, the a + b·ln(1+k) fit and k_to_reach(target_score)."""
        ks = list(DEFAULT_KS if ks is None else ks)
        if not ks or len(ks) > 200:
            raise BadValue("ks must hold 1 to 200 values", field="ks")
        ks = sorted({parse_count(k, "ks") for k in ks})
        base = {k: v for k, v in query.items() if k not in ("k", "ks", "target_score")}
        norm0 = self._one(base)
        rows = _repeat_row(norm0, len(ks))
        target = norm0["target"].iloc[0]
        configs = []
        for k in ks:
            mix = {p.split(":")[0]: int(p.split(":")[1]) for p in norm0["train_config"].iloc[0].split(";")}
            mix.pop(target, None)
            if k:
                mix[target] = k
            configs.append(";".join(f"{l}:{n}" for l, n in sorted(mix.items())))
        rows["train_config"] = configs
        rows["k"] = ks
        X = self._features(rows)
        scores = np.clip(self._raw(X), 0, 100)
        scores = np.maximum.accumulate(scores)  # monotone by constraint; this only removes float noise
        a, b, r2 = fit_log_curve(ks, scores)
        intervals = self._intervals(scores, rows["task_type"].to_numpy())
        points = [{"k": int(k), "score": float(s), **{c: float(v[i]) for c, v in intervals.items()}}
                  for i, (k, s) in enumerate(zip(ks, scores))]
        reach = None
        if target_score is not None:
            ts = float(target_score)
            if not math.isfinite(ts) or not 0 <= ts <= 100:
                raise BadValue("target_score must be between 0 and 100", field="target_score")
            reach = k_to_reach(a, b, ts)
        return {"points": points, "a": a, "b": b, "r2": r2, "target_score": target_score, "k_to_reach": reach,
                "query": _query_echo(norm0.iloc[0])}

    # ------------------------------------------------------------------ explain
    def explain(self, query: dict) -> dict:
        """Base value + one SHAP value per feature; they add up to `prediction` (the unclipped model output)."""
        norm = self._one(query)
        X = self._features(norm)
        contrib = self._contrib(X)[0]
        values = X.to_numpy(dtype=np.float64)[0]
        prediction = float(self._raw(X)[0])
        return {
            "base_value": float(contrib[-1]),
            "contributions": {f: float(c) for f, c in zip(self.feature_names, contrib[:-1])},
            "feature_values": {f: (None if math.isnan(v) else float(v)) for f, v in zip(self.feature_names, values)},
            "prediction": prediction,
            "predicted_score": min(100.0, max(0.0, prediction)),
            "reasons": top_reasons(contrib, values, 3, feature_names=self.feature_names),
            "query": _query_echo(norm.iloc[0]),
        }

    # ------------------------------------------------------------------ plan
    def plan(self, query: dict, candidates: list[str], budget: int, steps: int = 20) -> dict:
        """Split a budget of examples over candidate languages (target included) to maximise the predicted score.

        Greedy marginal allocation in `steps` equal chunks; with several targets the mean predicted score is the
        objective. Compared with spending the whole budget on English.
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
        base = {k: query.get(k) for k in ("model", "task", "task_type")}
        chunk = max(1, budget // steps)

        def evaluate(allocs: list[dict[str, int]]) -> np.ndarray:
            rows = [{**base, "target": t, "train_config": ";".join(f"{l}:{n}" for l, n in a.items() if n > 0)}
                    for a in allocs for t in targets]
            norm, _ = normalize(pd.DataFrame(rows), strict=True)
            s = np.clip(self._raw(self._features(norm)), 0, 100)
            return s.reshape(len(allocs), len(targets)).mean(axis=1)

        alloc = {l: 0 for l in langs}
        spent = 0
        current = None
        while spent < budget:
            step = min(chunk, budget - spent)
            trials = []
            for l in langs:
                a = dict(alloc)
                a[l] += step
                trials.append(a)
            scores = evaluate(trials)
            best = int(np.argmax(scores))
            alloc, current = trials[best], float(scores[best])
            spent += step
        english = float(evaluate([{ENGLISH: budget}])[0])
        return {"plan": [{"language": l, "name": resolve(l).name, "examples": n} for l, n in alloc.items() if n > 0],
                "budget": budget, "targets": targets, "predicted_score": current,
                "english_only_score": english, "gain_over_english": current - english}

    # ------------------------------------------------------------------ misc
    def version(self) -> dict:
        return self.manifest


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
