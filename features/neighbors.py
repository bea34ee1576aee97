"""What published transfer to *similar targets* says: a memory of single-source results, queried by typology.

Most of the variance in the data lies between (task, target) pairs, and which source is best for a target is the small
remainder. A typological distance alone ranks sources poorly; what works is asking the published record: how did this
source do on the target's nearest typological neighbours (same task and model, else same task, else same task type)?
The query's own target is always left out, in training as in serving, so a feature never contains the score it is
asked to predict, and a target never seen anywhere (the leave-target-out protocols) gets the same kind of number as a
known one.

Fitted on observation rows (scikit-learn style: `fit` learns, attributes end in `_`); stored as a plain CSV of
(level, group, source, target, score) so the artifact never needs unpickling.
"""
from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
import pandas as pd

from features import typology

NEIGHBOR_FEATURES = ["nb_score", "nb_level", "nb_relative", "nb_source_donor", "nb_distance", "nb_fallback"]
NEIGHBOR_LABELS = {
    "nb_score": "published transfer from this source to similar targets",
    "nb_level": "published scores of similar targets (any source)",
    "nb_relative": "this source vs. other sources on similar targets",
    "nb_source_donor": "this source's record as a donor for the task",
    "nb_distance": "typological distance to the nearest published target",
    "nb_fallback": "evidence level (0 task+model, 1 task, 2 task type)",
}
LEVELS = ("task_model", "task", "task_type")
_DIST_KINDS = ("genetic", "syntactic", "featural", "phonological", "inventory")


def _memory_rows(obs: pd.DataFrame) -> pd.DataFrame:
    """Single-source rows without target data: the comparable record of 'train on s, test on t'."""
    n_src = obs["train_config"].astype(str).str.count(";") + 1
    keep = (obs["k"].astype(int) == 0) & (n_src == 1) & (obs["source"].astype(str) != obs["target"].astype(str))
    if "primary_metric" in obs.columns:
        keep &= obs["primary_metric"].astype(str).isin(["True", "true", "1"])
    keep &= ~obs["setting"].astype(str).isin(["translate-train"])
    return obs.loc[keep, ["task", "task_type", "model", "source", "target", "score"]]


class _Group:
    """One evidence group: a sources × targets matrix of mean published scores."""

    def __init__(self, frame: pd.DataFrame):
        m = frame.pivot_table(index="source", columns="target", values="score", aggfunc="mean")
        self.sources = {s: i for i, s in enumerate(m.index)}
        self.targets = np.asarray(m.columns, dtype=object)
        self.target_index = {t: j for j, t in enumerate(self.targets)}
        self.M = m.to_numpy(dtype=np.float64)
        self.level = np.nanmean(self.M, axis=0)              # per target: mean over sources
        dev = self.M - self.level[None, :]
        self.dev_sum = np.nansum(dev, axis=1)
        self.dev_cnt = np.sum(~np.isnan(dev), axis=1).astype(np.float64)
        self.dev = dev

    @lru_cache(maxsize=8192)
    def neighbours(self, target: str, k: int, tau: float) -> tuple[np.ndarray, np.ndarray, float]:
        """Indices and weights of the k typologically nearest targets other than `target`."""
        cols = np.array([j for j, t in enumerate(self.targets) if t != target], dtype=np.int64)
        if len(cols) == 0 or not typology.has_language(target):
            return np.zeros(0, np.int64), np.zeros(0), np.nan
        d = typology.pair_distances(np.full(len(cols), target, dtype=object), self.targets[cols])
        stack = np.vstack([d[kind] for kind in _DIST_KINDS]).astype(np.float64)
        have = (~np.isnan(stack)).sum(axis=0)
        dist = np.where(have > 0, np.nansum(stack, axis=0) / np.maximum(have, 1), np.nan)
        ok = ~np.isnan(dist)
        cols, dist = cols[ok], dist[ok]
        if len(cols) == 0:
            return np.zeros(0, np.int64), np.zeros(0), np.nan
        order = np.argsort(dist, kind="stable")[:k]
        w = np.exp(-(dist[order] - dist[order[0]]) / tau)
        return cols[order], w, float(dist[order[0]])


class NeighborTransfer:
    """Neighbour-target evidence features for (task, task_type, model, source, target) pairs."""

    def __init__(self, k: int = 5, tau: float = 0.05):
        self.k = k
        self.tau = tau

    def fit(self, obs: pd.DataFrame) -> "NeighborTransfer":
        self.memory_ = _memory_rows(obs).reset_index(drop=True)
        self._build()
        return self

    def _build(self) -> None:
        mem = self.memory_
        self.groups_: dict[tuple[str, str], _Group] = {}
        for key, frame in mem.groupby(["task", "model"]):
            self.groups_[("task_model", f"{key[0]}|{key[1]}")] = _Group(frame)
        for key, frame in mem.groupby("task"):
            self.groups_[("task", key)] = _Group(frame)
        for key, frame in mem.groupby("task_type"):
            self.groups_[("task_type", key)] = _Group(frame)

    # ------------------------------------------------------------------ persistence (CSV, no pickle)
    def to_csv(self) -> str:
        buf = io.StringIO()
        self.memory_.to_csv(buf, index=False, float_format="%.6g")
        return buf.getvalue()

    @classmethod
    def from_csv(cls, text: str, k: int = 5, tau: float = 0.05) -> "NeighborTransfer":
        obj = cls(k=k, tau=tau)
        obj.memory_ = pd.read_csv(io.StringIO(text), keep_default_na=False,
                                  dtype={"task": str, "task_type": str, "model": str, "source": str, "target": str})
        obj.memory_["score"] = obj.memory_["score"].astype(np.float64)
        obj._build()
        return obj

    # ------------------------------------------------------------------ features
    def pair_features(self, tasks, task_types, models, sources, targets) -> dict[str, np.ndarray]:
        """Features per pair; the first evidence level whose group knows the source and has a neighbour wins."""
        n = len(sources)
        out = {f: np.full(n, np.nan) for f in NEIGHBOR_FEATURES}
        if n == 0:
            return out
        tasks = np.asarray(tasks, dtype=object)
        task_types = np.asarray(task_types, dtype=object)
        models = np.asarray(models, dtype=object)
        sources = np.asarray(sources, dtype=object)
        targets = np.asarray(targets, dtype=object)
        todo = np.ones(n, dtype=bool)
        for level_no, level in enumerate(LEVELS):
            if not todo.any():
                break
            if level == "task_model":
                keys = np.array([f"{t}|{m}" for t, m in zip(tasks, models)], dtype=object)
            elif level == "task":
                keys = tasks
            else:
                keys = task_types
            for key in pd.unique(keys[todo]):
                group = self.groups_.get((level, key))
                if group is None:
                    continue
                sel = np.flatnonzero(todo & (keys == key))
                self._fill(group, sel, sources, targets, out, level_no)
            todo = np.isnan(out["nb_score"])
        return out

    def _fill(self, g: _Group, sel: np.ndarray, sources, targets, out, level_no: int) -> None:
        s_idx = np.array([g.sources.get(s, -1) for s in sources[sel]], dtype=np.int64)
        known = s_idx >= 0
        sel, s_idx = sel[known], s_idx[known]
        if len(sel) == 0:
            return
        tg = targets[sel]
        for t in pd.unique(tg):
            rows = np.flatnonzero(tg == t)
            cols, w, d0 = g.neighbours(t, self.k, self.tau)
            if len(cols) == 0:
                continue
            vals = g.M[np.ix_(s_idx[rows], cols)]                       # (rows, k)
            have = ~np.isnan(vals)
            wsum = (have * w[None, :]).sum(axis=1)
            ok = wsum > 0
            score = np.where(ok, np.nansum(vals * w[None, :], axis=1) / np.where(ok, wsum, 1), np.nan)
            lev_w = np.where(have, w[None, :], 0.0)
            level = np.where(ok, (lev_w * g.level[cols][None, :]).sum(axis=1) / np.where(ok, wsum, 1), np.nan)
            # donor record: the source's mean deviation from target levels, leaving the query target out
            tj = g.target_index.get(t)
            dsum, dcnt = g.dev_sum[s_idx[rows]].copy(), g.dev_cnt[s_idx[rows]].copy()
            if tj is not None:
                own = g.dev[s_idx[rows], tj]
                has_own = ~np.isnan(own)
                dsum[has_own] -= own[has_own]
                dcnt[has_own] -= 1
            donor = np.where(dcnt > 0, dsum / np.where(dcnt > 0, dcnt, 1), np.nan)
            idx = sel[rows]
            out["nb_score"][idx] = score
            out["nb_level"][idx] = level
            out["nb_relative"][idx] = score - level
            out["nb_source_donor"][idx] = donor
            out["nb_distance"][idx] = d0
            out["nb_fallback"][idx] = np.where(ok, level_no, np.nan)
