"""The published record as evidence: what was measured for this target, this source, this pair, at several grains.

Why: for languages the record covers, the record is the best evidence, and a model fed only typology and sizes loses
to simple per-language baselines there (DESIGN.md). For languages it does not cover, the evidence is absent and the
model must fall back to similarity. One model serves both because it learns from evidence that is sometimes hidden:

- in training every value is *leave-one-out* (a row never sees its own score), and it is masked at random — per row,
  and for whole languages at a time, which is how an unseen language looks — so the trees learn to do without;
- at serving time the full record speaks; a language, task or pair it does not hold gets NaN, exactly as in the
  masked training rows.

Grains (means of published scores, 0–100):
  ev_target        this target, this task, this model family (any source or mix)
  ev_target_type   this target in *other* tasks of the same type (any family)
  ev_source        this source as the single source, this task, this model family (any target)
  ev_pair          this source → this target as a single source, same task type (any task), same model family
  ev_pair_vs_others  ev_pair minus the mean over the target's published single sources (same type and family): the
                   within-target ordering the record shows, which is what a ranking needs (most variance lies
                   between targets)
  ev_pair_other, ev_pair_other_vs_others   the same two from the *other* model families' results
  ev_source_vs_others  how this source did for the task's *other* targets with this very model, relative to those
                   targets' other sources: the mean within-target deviation of its published single-source scores,
                   shrunk toward 0 by SOURCE_PRIOR pseudo-rows, 0 where nothing is published (see below). Per model,
                   not family: LangRankPlus's unsized XLM-R finds Korean the worst TyDiQA source for every target,
                   which SumEval's XLM-R-large does not; pooled by family it moved SumEval's TyDiQA errors by 2–4
                   points RMSE.

Why pair evidence is split by model family: a family's own results repeat themselves (xpos publishes nine size and
epoch variants of one matrix), so a leave-one-row-out pair mean pooled over families is, in training, almost always
a near-copy of the row's own score, and the trees learn to trust it blindly. At serving time for a model family or a
dataset the record lacks, the only pair evidence is another family's, which orders sources much less faithfully
(mT5 TyDiQA ranks Korean first for Bengali, XLM-R last). Kept apart, and masked independently in training, the trees
learn what each is worth.

Fitted on canonical observation rows; stored as a CSV of (grain, key, sum, count), so the artifact needs no pickle.
"""
from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
import pandas as pd

GRAINS = ["ev_target", "ev_target_type", "ev_source", "ev_pair", "ev_pair_vs_others", "ev_pair_other",
          "ev_pair_other_vs_others", "ev_source_vs_others"]
# sum/count tables behind the grains: pair and level (the target's single sources) per family and over all families
TABLES = ["ev_target", "ev_target_type", "ev_source", "ev_pair", "_pair_level", "_pair_all", "_level_all",
          "_src_dev", "_src_dev_pair"]
# ev_source_vs_others: pseudo-rows of deviation 0 added to a source's published rows (two targets' worth of record
# move it half-way), so one lucky result does not make a source look good
SOURCE_PRIOR = 2.0
# The grain whose "nothing published" is 0 (read as average), not NaN: what a plot or a reason says at exactly 0
ZERO_WHEN_UNPUBLISHED = ("ev_source_vs_others",)
# ev_source is computed but not a model feature: "this source has a good record" is absent for every source nobody
# published from, so in the similarity regime it ranks well-studied sources above the target's close relatives
# (Swahili or Afrikaans above Zulu for Xhosa) — a popularity proxy, which the design rule excludes.
# ev_source_vs_others is its centred, shrunk, full-coverage form: a deviation from the other sources of the same
# targets, 0 ("as good as the others") where the record holds nothing, in training (masked) as at serving, so its
# absence reads as average, not as obscure; it leaves out the query's own pair (that is ev_pair's job), so a
# training row never sees its own score or a near-copy of it (xpos's size variants of the same pair).
EVIDENCE_FEATURES = [g for g in GRAINS if g != "ev_source"]
# what a target the record does not hold (for this task and family) has none of: every grain keyed by the target
TARGET_GRAINS = ("ev_target", "ev_target_type", "ev_pair", "ev_pair_vs_others", "ev_pair_other",
                 "ev_pair_other_vs_others")
EVIDENCE_LABELS = {
    "ev_target": "published scores of this target on this task",
    "ev_target_type": "published scores of this target on other tasks of the type",
    "ev_source": "published transfer from this source on this task",
    "ev_pair": "published transfer from this source to this target",
    "ev_pair_vs_others": "this source vs. the target's other published sources",
    "ev_pair_other": "published transfer from this source to this target with other model families",
    "ev_pair_other_vs_others": "this source vs. the target's other sources, other model families",
    "ev_source_vs_others": "this source vs. other sources for the task's other targets",
}
# Evidence that a score is higher is evidence that this score is higher: +1 monotone constraints on all of them.
MONOTONE_EVIDENCE = tuple(EVIDENCE_FEATURES)
SEP = "\x1f"
# Results whose setup differs from every other result of their task in a way the record cannot express, kept as an
# evidence pool of their own (their family key gets SEPARATE_SUFFIX). LangRankPlus's XQuAD runs (unsized `mt5` and
# `xlm-r`, the only unsized models of the record): XQuAD has no training split, and their scores (15-24 F1 from
# English, against 59-82 for every sized model's English → X XQuAD result) are those of a tiny training set recorded at
# SQuAD's 87,599 examples (training_data/README.md). Pooled with the family they set its XQuAD level: XLM-R large,
# English → Hindi, published at 76.7, was answered 66.8 (the family's XQuAD Hindi mean 19.8 pulled it down), and
# with XLM-R large held out whole its XQuAD rows were predicted 40-44 points too low. In their own pool they still
# teach the trees (their rows see their own pool's evidence), they still order LangRankPlus's sources (the per-model
# deviation grains and offsets never pooled families), and no sized model reads their level
# (reports/model_experiments.md, eleventh session).
SEPARATE_POOLS = frozenset({("mt5", "xquad"), ("xlm-r", "xquad")})
SEPARATE_POOL_MODELS = frozenset(m for m, _ in SEPARATE_POOLS)
SEPARATE_SUFFIX = "/own-setup"
# Below this many components, dict lookups replace pandas' Index.get_indexer (whose set-up on string keys costs
# milliseconds): a request's ranking of 100 sources is served from plain dicts; batches keep the vectorised path.
SMALL_N = 2000
_NONE = (0.0, 0.0)


def _keys(*cols) -> np.ndarray:
    """Row-wise 'a␟b␟c' keys (object strings; pandas concatenation is ~20× faster than np.char on these, a plain
    comprehension faster still for the few rows of a single request)."""
    if len(cols[0]) < 5000:
        return np.array([SEP.join(map(str, t)) for t in zip(*cols)], dtype=object)
    out = pd.Series(np.asarray(cols[0], dtype=object)).astype(str)
    for c in cols[1:]:
        out = out + SEP + pd.Series(np.asarray(c, dtype=object)).astype(str)
    return out.to_numpy(dtype=object)


def _separate(models: np.ndarray, tasks: np.ndarray) -> np.ndarray | None:
    """Rows of a (model, task) in SEPARATE_POOLS, or None when there are none (every served query)."""
    models = np.asarray(models, dtype=object)
    if SEPARATE_POOL_MODELS.isdisjoint(models if len(models) < SMALL_N else pd.unique(models)):
        return None
    sep = np.array([(m, t) in SEPARATE_POOLS for m, t in zip(models, np.asarray(tasks, dtype=object))], dtype=bool)
    return sep if sep.any() else None


def _family(models: np.ndarray, tasks: np.ndarray) -> np.ndarray:
    """The evidence pool of each row: its model's family, or the family's separate pool for a (model, task) of
    SEPARATE_POOLS (a served model is never in one)."""
    models = np.asarray(models, dtype=object)
    if len(models) < SMALL_N:
        memo: dict = {}
        fam = np.array([memo[m] if m in memo else memo.setdefault(m, family_of(m)) for m in models], dtype=object)
    else:
        codes, uniq = pd.factorize(models)
        fam = np.array([family_of(m) for m in uniq] + [""], dtype=object)[codes]
    sep = _separate(models, tasks)
    if sep is not None:
        fam = fam.copy()
        fam[sep] = fam[sep] + SEPARATE_SUFFIX
    return fam


@lru_cache(maxsize=1024)
def family_of(model) -> str:
    """The family key the record's evidence is kept under (mt5, xlm-r, ...); "" for a missing model."""
    from features.registry import resolve_model
    if model is None or (isinstance(model, float) and model != model):
        return ""  # what pd.factorize's missing code picks
    return resolve_model(model, allow_unsized=True).family


def _single_source(norm: pd.DataFrame) -> np.ndarray:
    """(is a zero-shot single-source row, its source) per canonical query row."""
    src = np.full(len(norm), "", dtype=object)
    ok = np.zeros(len(norm), dtype=bool)
    for i, (cfg, t, k) in enumerate(zip(norm["train_config"], norm["target"], norm["k"])):
        if k == 0 and ";" not in cfg and cfg:
            lang = cfg.split(":", 1)[0]
            if lang != t:
                ok[i], src[i] = True, lang
    return ok, src


class RecordEvidence:
    """Leave-one-out, masked evidence for training; the full record's means for serving."""

    def __init__(self, mask_rate: float = 0.3, language_mask_rate: float = 0.25, random_state: int = 0):
        self.mask_rate = mask_rate
        self.language_mask_rate = language_mask_rate
        self.random_state = random_state

    # ------------------------------------------------------------------ fit
    def _grain_keys(self, norm: pd.DataFrame) -> dict[str, np.ndarray]:
        fam = _family(norm["model"].to_numpy(dtype=object), norm["task"].to_numpy(dtype=object))
        single, src = _single_source(norm)
        tgt = norm["target"].to_numpy(dtype=object)
        keys = {
            "ev_target": _keys(norm["task"], fam, tgt),
            "ev_target_type": _keys(norm["task_type"], tgt),
            "ev_source": np.where(single, _keys(norm["task"], fam, src), None),
            "ev_pair": np.where(single, _keys(norm["task_type"], fam, src, tgt), None),
            "_pair_level": np.where(single, _keys(norm["task_type"], fam, tgt), None),
            "_pair_all": np.where(single, _keys(norm["task_type"], src, tgt), None),
            "_level_all": np.where(single, _keys(norm["task_type"], tgt), None),
            "_src_dev": np.where(single, _keys(norm["task"], norm["model"], src), None),
            "_src_dev_pair": np.where(single, _keys(norm["task"], norm["model"], src, tgt), None),
            "_src_dev_level": _keys(norm["task"], norm["model"], tgt),
        }
        keys["_task"] = norm["task"].to_numpy(dtype=object)
        return keys

    def fit(self, norm: pd.DataFrame, y: np.ndarray):
        y = np.asarray(y, dtype=np.float64)
        keys = self._grain_keys(norm)
        tables = {}
        # a single-source score's deviation from its target's mean over single sources (same task and model)
        single = np.array([x is not None for x in keys["_src_dev"]])
        level = pd.Series(y).where(single).groupby(keys["_src_dev_level"]).transform("mean").to_numpy()
        dev = np.where(single, y - level, np.nan)
        for g in TABLES:
            k = keys[g]
            ok = np.array([x is not None for x in k])
            frame = pd.DataFrame({"key": k[ok], "y": (dev if g.startswith("_src_dev") else y)[ok]})
            agg = frame.groupby("key")["y"].agg(["sum", "count"])
            tables[g] = agg
        # other-task means for ev_target_type: keep per (type, target, task) sums to subtract this task's share
        frame = pd.DataFrame({"key": keys["ev_target_type"], "task": keys["_task"], "y": y})
        tables["_type_task"] = frame.groupby(["key", "task"])["y"].agg(["sum", "count"])
        self.tables_ = tables
        return self

    # ------------------------------------------------------------------ values
    def _dict(self, grain: str) -> dict:
        """{key: (sum, count)} of one grain's table (built once, on first use; `_type_task` keys are (key, task))."""
        cache = self.__dict__.setdefault("_dicts", {})
        d = cache.get(grain)
        if d is None:
            t = self.tables_[grain]
            keys = list(t.index) if grain == "_type_task" else [str(k) for k in t.index]
            d = dict(zip(keys, zip(t["sum"].to_numpy(dtype=np.float64).tolist(),
                                   t["count"].to_numpy(dtype=np.float64).tolist())))
            cache[grain] = d
        return d

    def _by_source(self, grain: str, position: int) -> dict:
        """{key without its source part: {source: (sum, count)}} of a grain whose key holds the source at
        `position`: a one-target ranking finds its target's row once and then looks each candidate up by its code,
        instead of building and hashing one new key string per candidate and grain (built once, on first use)."""
        cache = self.__dict__.setdefault("_by_source_dicts", {})
        d = cache.get(grain)
        if d is None:
            d = {}
            for key, value in self._dict(grain).items():
                parts = key.split(SEP)
                src = parts.pop(position)
                d.setdefault(SEP.join(parts), {})[src] = value
            cache[grain] = d
        return d

    def _lookup(self, grain: str, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(keys) < SMALL_N:
            d = self._dict(grain)
            sc = np.array([d.get(k if type(k) is str else str(k), _NONE) for k in keys], dtype=np.float64)
            sc = sc.reshape(len(keys), 2)
            return sc[:, 0], sc[:, 1]
        t = self.tables_[grain]
        idx = t.index.get_indexer(pd.Index(keys.astype(str) if len(keys) else keys))
        s = np.where(idx >= 0, t["sum"].to_numpy()[idx], 0.0)
        c = np.where(idx >= 0, t["count"].to_numpy()[idx], 0.0)
        return s, c

    def _type_other(self, type_keys: np.ndarray, tasks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s, c = self._lookup("ev_target_type", type_keys)
        if len(type_keys) < SMALL_N:
            d = self._dict("_type_task")
            sc = np.array([d.get((str(k), str(t)), _NONE) for k, t in zip(type_keys, tasks)], dtype=np.float64)
            sc = sc.reshape(len(type_keys), 2)
            return s - sc[:, 0], c - sc[:, 1]
        t = self.tables_["_type_task"]
        idx = t.index.get_indexer(pd.MultiIndex.from_arrays([type_keys.astype(str), tasks.astype(str)]))
        s_own = np.where(idx >= 0, t["sum"].to_numpy()[idx], 0.0)
        c_own = np.where(idx >= 0, t["count"].to_numpy()[idx], 0.0)
        return s - s_own, c - c_own

    def component_values(self, norm: pd.DataFrame, rows: np.ndarray, langs: np.ndarray,
                         grains: list[str] | None = None) -> pd.DataFrame:
        """Serving: evidence per component (query row `rows[i]`, language `langs[i]`), from the full record."""
        grains = grains or EVIDENCE_FEATURES
        E = self.component_matrix(norm["model"].to_numpy(dtype=object), norm["task"].to_numpy(dtype=object),
                                  norm["task_type"].to_numpy(dtype=object), norm["target"].to_numpy(dtype=object),
                                  rows, langs, grains)
        return pd.DataFrame(E, columns=grains, index=range(len(rows)))

    def component_matrix(self, models: np.ndarray, tasks: np.ndarray, task_types: np.ndarray, targets: np.ndarray,
                         rows: np.ndarray, langs: np.ndarray, grains: list[str] | None = None) -> np.ndarray:
        """`component_values` from per-query arrays, as a float32 (components × grains) array."""
        grains = grains or EVIDENCE_FEATURES
        n = len(rows)
        tgt = np.asarray(targets, dtype=object)[rows]
        task = np.asarray(tasks, dtype=object)[rows]
        ttype = np.asarray(task_types, dtype=object)[rows]
        fam = _family(np.asarray(models, dtype=object), np.asarray(tasks, dtype=object))[rows]
        mdl = np.asarray(models, dtype=object)[rows]
        src = np.asarray(langs, dtype=object)
        if n < SMALL_N:
            full = self._component_matrix_small(tgt, task, ttype, fam, mdl, src)
            return full[:, [GRAINS.index(g) for g in grains]]
        own = src == tgt
        out = {}
        s, c = self._lookup("ev_target", _keys(task, fam, tgt))
        out["ev_target"] = _mean(s, c)
        s, c = self._type_other(_keys(ttype, tgt), task)
        out["ev_target_type"] = _mean(s, c)
        s, c = self._lookup("ev_source", _keys(task, fam, src))
        out["ev_source"] = np.where(own, np.nan, _mean(s, c))
        s, c = self._lookup("ev_pair", _keys(ttype, fam, src, tgt))
        sl, cl = self._lookup("_pair_level", _keys(ttype, fam, tgt))
        sa, ca = self._lookup("_pair_all", _keys(ttype, src, tgt))
        sla, cla = self._lookup("_level_all", _keys(ttype, tgt))
        out["ev_pair"] = np.where(own, np.nan, _mean(s, c))
        out["ev_pair_vs_others"] = out["ev_pair"] - _mean(sl, cl)
        out["ev_pair_other"] = np.where(own, np.nan, _mean(sa - s, ca - c))
        out["ev_pair_other_vs_others"] = out["ev_pair_other"] - _mean(sla - sl, cla - cl)
        s, c = self._lookup("_src_dev", _keys(task, mdl, src))
        sp, cp = self._lookup("_src_dev_pair", _keys(task, mdl, src, tgt))
        out["ev_source_vs_others"] = np.where(own, 0.0, (s - sp) / (c - cp + SOURCE_PRIOR))
        E = np.empty((n, len(grains)), dtype=np.float32)
        for j, f in enumerate(grains):
            E[:, j] = out[f]
        return E

    def _target_context(self, t: str, ta: str, ty: str, f: str, md: str) -> tuple:
        """What every component with target t, task ta, type ty, family f and model md shares: the target-level
        grains (ev_target, ev_target_type, the pair levels of this family and of the others) and the per-source
        dicts of the source-level grains for this target (`_by_source`)."""
        d_type, d_task = self._dict("ev_target_type"), self._dict("_type_task")
        d_level, d_level_all = self._dict("_pair_level"), self._dict("_level_all")
        type_key = ty + SEP + t
        s1, c1 = d_type.get(type_key, _NONE)
        s2, c2 = d_task.get((type_key, ta), _NONE)
        sl, cl = d_level.get(ty + SEP + f + SEP + t, _NONE)
        sla, cla = d_level_all.get(type_key, _NONE)
        empty = {}
        return (_mean1(*self._dict("ev_target").get(ta + SEP + f + SEP + t, _NONE)), _mean1(s1 - s2, c1 - c2),
                _mean1(sl, cl), _mean1(sla - sl, cla - cl), t,
                self._by_source("ev_source", 2).get(ta + SEP + f, empty),
                self._by_source("ev_pair", 2).get(ty + SEP + f + SEP + t, empty),
                self._by_source("_pair_all", 1).get(type_key, empty),
                self._by_source("_src_dev", 2).get(ta + SEP + md, empty),
                self._by_source("_src_dev_pair", 2).get(ta + SEP + md + SEP + t, empty))

    def _component_matrix_small(self, tgt, task, ttype, fam, mdl, src) -> np.ndarray:
        """The same values as the vectorised path, one dict lookup per key; the target-level grains (equal for every
        component of a one-target ranking) once per distinct (task, family, type, target), and the source-level
        grains from that target's per-source dicts (`_by_source`)."""
        nan = float("nan")
        per_target: dict = {}
        values = []
        for t, ta, ty, f, md, sr in zip(tgt, task, ttype, fam, mdl, src):
            key = (t, ta, ty, f, md)
            hit = per_target.get(key)
            if hit is None:
                hit = per_target[key] = self._target_context(_s(t), _s(ta), _s(ty), _s(f), _s(md))
            ev_target, ev_type, level, level_other, t, source, pair, pair_all, dev, dev_pair = hit
            if type(sr) is not str:
                sr = str(sr)
            if sr == t:  # the target's own examples: no source or pair evidence
                values.append((ev_target, ev_type, nan, nan, nan, nan, nan, 0.0))
                continue
            s1, c1 = source.get(sr, _NONE)
            s2, c2 = pair.get(sr, _NONE)
            sa, ca = pair_all.get(sr, _NONE)
            ev_pair = s2 / c2 if c2 > 0 else nan
            ev_other = (sa - s2) / (ca - c2) if ca - c2 > 0 else nan
            sd, cd = dev.get(sr, _NONE)
            sdp, cdp = dev_pair.get(sr, _NONE)
            values.append((ev_target, ev_type, s1 / c1 if c1 > 0 else nan, ev_pair, ev_pair - level,
                           ev_other, ev_other - level_other, (sd - sdp) / (cd - cdp + SOURCE_PRIOR)))
        return np.array(values, dtype=np.float64).reshape(len(values), len(GRAINS)).astype(np.float32)

    def one_target_matrix(self, model: str, task: str, task_type: str, target: str, langs,
                          grains: list[str] | None = None) -> np.ndarray:
        """`component_matrix` for components that all share one model, task and target (a ranking's candidates,
        the target's own examples among them or not), as a float32 (components × grains) array: the same values,
        computed per grain over the languages in numpy. Why: a fresh /rank over 100 candidates
        spent a tenth of its time in the per-candidate look-ups of `_component_matrix_small`; here a per-source
        dict is walked once over its own few entries."""
        grains = grains or EVIDENCE_FEATURES
        fam = _family(np.array([model], dtype=object), np.array([task], dtype=object))[0]
        ev_target, ev_type, level, level_other, t, *dicts = self._target_context(
            _s(target), _s(task), _s(task_type), _s(fam), _s(model))
        keys = langs.tolist() if isinstance(langs, np.ndarray) else list(langs)
        codes = dict(zip(keys, range(len(keys))))  # each language's last position (codes are strings)
        inverse = None if len(codes) == len(keys) else np.fromiter((codes[x] for x in keys), np.int64, len(keys))
        m = len(keys)
        sums, counts = np.zeros((len(dicts), m)), np.zeros((len(dicts), m))
        for j, d in enumerate(dicts):
            if len(d) <= m:
                hits = [(codes[x], v) for x, v in d.items() if x in codes]
            else:
                hits = [(i, d[x]) for x, i in codes.items() if x in d]
            if hits:
                idx = [h[0] for h in hits]
                sums[j, idx] = [h[1][0] for h in hits]
                counts[j, idx] = [h[1][1] for h in hits]
        (s1, s2, sa, sd, sdp), (c1, c2, ca, cd, cdp) = sums, counts
        with np.errstate(invalid="ignore", divide="ignore"):
            ev_pair = _mean(s2, c2)
            ev_other = _mean(sa - s2, ca - c2)
            per_code = {"ev_source": _mean(s1, c1), "ev_pair": ev_pair, "ev_pair_vs_others": ev_pair - level,
                        "ev_pair_other": ev_other, "ev_pair_other_vs_others": ev_other - level_other,
                        "ev_source_vs_others": (sd - sdp) / (cd - cdp + SOURCE_PRIOR)}
        own = codes.get(t)
        if own is not None:  # the target's own examples: no source or pair evidence
            for g, v in per_code.items():
                v[own] = 0.0 if g == "ev_source_vs_others" else np.nan
        out = np.empty((len(keys), len(grains)), dtype=np.float32)
        for j, g in enumerate(grains):
            if g == "ev_target":
                out[:, j] = ev_target
            elif g == "ev_target_type":
                out[:, j] = ev_type
            else:
                out[:, j] = per_code[g] if inverse is None else per_code[g][inverse]
        return out

    def training_values(self, norm: pd.DataFrame, y: np.ndarray, rows: np.ndarray, langs: np.ndarray,
                        seed: int | None = None) -> pd.DataFrame:
        """Training: like `component_values`, minus each row's own score (leave-one-out), then masked at random
        (`seed`: which draw of the masks; default `random_state`)."""
        y = np.asarray(y, dtype=np.float64)
        base = self.component_values(norm, rows, langs, GRAINS)
        keys = self._grain_keys(norm)
        yr = y[rows]
        tgt = norm["target"].to_numpy(dtype=object)[rows]
        src = np.asarray(langs, dtype=object)
        out = {}
        # the row's own score sits in the target grains always, in the source/pair grains when it is single-source
        for g in ("ev_target",):
            s, c = self._lookup(g, keys[g][rows])
            out[g] = _mean(s - yr, c - 1)
        out["ev_target_type"] = base["ev_target_type"].to_numpy(dtype=np.float64)  # other tasks: never its own row
        single, ssrc = _single_source(norm)
        mine = single[rows] & (ssrc[rows] == src)
        for g in ("ev_source", "ev_pair"):
            s, c = self._lookup(g, np.where(mine, keys[g][rows], ""))
            out[g] = np.where(mine, _mean(s - yr, c - 1), base[g].to_numpy(dtype=np.float64))
            out[g] = np.where(src == tgt, np.nan, out[g])
        # the row's own score is in its family's pair level; the other families' grains never hold it
        fam_rows = _family(norm["model"].to_numpy(dtype=object), norm["task"].to_numpy(dtype=object))[rows]
        ttype_rows = norm["task_type"].to_numpy(dtype=object)[rows]
        s, c = self._lookup("_pair_level", _keys(ttype_rows, fam_rows, tgt))
        level = np.where(mine, _mean(s - yr, c - 1), _mean(s, c))
        out["ev_pair_vs_others"] = out["ev_pair"] - level
        out["ev_pair_other"] = base["ev_pair_other"].to_numpy(dtype=np.float64)
        out["ev_pair_other_vs_others"] = base["ev_pair_other_vs_others"].to_numpy(dtype=np.float64)
        out["ev_source_vs_others"] = base["ev_source_vs_others"].to_numpy(dtype=np.float64)  # never holds its pair
        rng = np.random.default_rng(self.random_state if seed is None else seed)
        langs_all = np.unique(np.concatenate([tgt.astype(str), src.astype(str)]))
        hidden = set(langs_all[rng.random(len(langs_all)) < self.language_mask_rate])
        tgt_hidden = np.isin(tgt.astype(str), list(hidden))
        src_hidden = np.isin(src.astype(str), list(hidden))
        # mask per query row (all components of a row alike), so a row is wholly in one regime per grain
        row_mask = {g: rng.random(len(norm)) < self.mask_rate for g in GRAINS}
        out["ev_target"] = np.where(tgt_hidden | row_mask["ev_target"][rows], np.nan, out["ev_target"])
        out["ev_target_type"] = np.where(tgt_hidden | row_mask["ev_target_type"][rows], np.nan, out["ev_target_type"])
        out["ev_source"] = np.where(src_hidden | row_mask["ev_source"][rows], np.nan, out["ev_source"])
        out["ev_pair"] = np.where(src_hidden | tgt_hidden | row_mask["ev_pair"][rows], np.nan, out["ev_pair"])
        out["ev_pair_vs_others"] = np.where(np.isnan(out["ev_pair"]), np.nan, out["ev_pair_vs_others"])
        out["ev_pair_other"] = np.where(src_hidden | tgt_hidden | row_mask["ev_pair_other"][rows], np.nan,
                                        out["ev_pair_other"])
        out["ev_pair_other_vs_others"] = np.where(np.isnan(out["ev_pair_other"]), np.nan,
                                                  out["ev_pair_other_vs_others"])
        out["ev_source_vs_others"] = np.where(src_hidden | row_mask["ev_source_vs_others"][rows], 0.0,
                                              out["ev_source_vs_others"])
        return pd.DataFrame({f: np.asarray(out[f], dtype=np.float32) for f in EVIDENCE_FEATURES}, index=range(len(rows)))

    # ------------------------------------------------------------------ persistence
    def to_csv(self) -> str:
        parts = []
        for g, t in self.tables_.items():
            if g == "_type_task":
                frame = pd.DataFrame({"grain": g, "key": [k + SEP + "|" + task for k, task in t.index],
                                      "sum": t["sum"].to_numpy(), "count": t["count"].to_numpy()})
            else:
                frame = pd.DataFrame({"grain": g, "key": t.index.astype(str), "sum": t["sum"].to_numpy(),
                                      "count": t["count"].to_numpy()})
            parts.append(frame)
        buf = io.StringIO()
        pd.concat(parts).to_csv(buf, index=False, float_format="%.17g")
        return buf.getvalue()

    @classmethod
    def from_csv(cls, text: str, **params) -> "RecordEvidence":
        frame = pd.read_csv(io.StringIO(text), keep_default_na=False, dtype={"key": str})
        obj = cls(**params)
        tables = {}
        for g, part in frame.groupby("grain"):
            if g == "_type_task":
                k, task = zip(*(x.rsplit(SEP + "|", 1) for x in part["key"]))
                idx = pd.MultiIndex.from_arrays([list(k), list(task)], names=["key", "task"])
            else:
                idx = pd.Index(part["key"].to_numpy(), name="key")
            tables[g] = pd.DataFrame({"sum": part["sum"].to_numpy(dtype=np.float64),
                                      "count": part["count"].to_numpy(dtype=np.float64)}, index=idx)
        for g in TABLES + ["_type_task"]:
            tables.setdefault(g, pd.DataFrame({"sum": [], "count": []}))
        obj.tables_ = tables
        return obj


def _s(value) -> str:
    return value if type(value) is str else str(value)


def _mean1(s: float, c: float) -> float:
    """`_mean` of one (sum, count)."""
    return s / c if c > 0 else float("nan")


def _mean(s: np.ndarray, c: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c > 0, s / np.where(c > 0, c, 1), np.nan)
