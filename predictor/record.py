"""What the published record covers: which targets and sources have labelled results per task and task type.

Two uses at serving time, both from a small JSON summary written into the model artifact by `xlt train`:
- the *regime* of an answer: "record" when published results exist for this target on this task (the model has seen
  it; intervals are calibrated on folds where the target was seen), "similarity" when they do not (only typology and
  sizes speak; intervals come from folds that held the target out, so they are wider);
- the default candidate pool of a ranking: languages with labelled data for the task (or its type, for a task the
  registry does not know) ∪ the model's pretraining languages ∪ the target's closest relatives.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from features import registry, typology
from features.languages import all_languages

REGIMES = ("record", "similarity")
N_RELATIVES = 5
# "Close" means the same genus: a genetic distance up to this (Zulu→Xhosa 0.0, Belarusian→Ukrainian 0.11,
# Estonian→Finnish 0.18, Swedish→Danish 0.17); padding the list with distant languages of the same phylum (Shona or
# Sotho for Xhosa, 0.3+) would crowd a ranking with guesses that are not relatives in any useful sense.
RELATIVE_MAX_DISTANCE = 0.25


def summarize(obs: pd.DataFrame) -> dict:
    """{targets, sources} per task and per task type, from trainable observation rows (canonical codes)."""
    langs = obs["train_config"].astype(str).str.split(";").map(lambda ps: [p.split(":")[0] for p in ps if p])
    out: dict = {"targets_by_task": {}, "targets_by_type": {}, "sources_by_task": {}, "sources_by_type": {}}
    for key, col in (("task", "task"), ("type", "task_type")):
        for value, idx in obs.groupby(col).groups.items():
            out[f"targets_by_{key}"][str(value)] = sorted(set(obs.loc[idx, "target"].astype(str)))
            out[f"sources_by_{key}"][str(value)] = sorted({lang for ls in langs.loc[idx] for lang in ls})
    return out


class Record:
    """The summary, loaded (sets for membership tests)."""

    def __init__(self, summary: dict):
        self.summary = summary
        self._sets = {k: {g: frozenset(v) for g, v in d.items()} for k, d in summary.items()}

    def regime(self, task: str, target: str) -> str:
        return "record" if target in self._sets["targets_by_task"].get(task, ()) else "similarity"

    def regimes(self, tasks, targets) -> np.ndarray:
        return np.array([self.regime(t, g) for t, g in zip(tasks, targets)], dtype=object)

    def labelled_sources(self, task: str, task_type: str) -> frozenset:
        s = self._sets["sources_by_task"].get(task)
        return s if s is not None else self._sets["sources_by_type"].get(task_type, frozenset())

    def languages(self) -> frozenset:
        """Every language the record holds a result for (as target or inside a mix)."""
        if not hasattr(self, "_all"):
            self._all = frozenset().union(*self._sets["targets_by_type"].values(),
                                          *self._sets["sources_by_type"].values())
        return self._all

    def default_pool(self, model_id: str, task: str, task_type: str, target: str) -> tuple[str, ...]:
        pool = set(self.labelled_sources(task, task_type)) | set(registry.corpus_languages(model_id))
        pool |= set(closest_relatives(target, among=self.languages()))
        pool.discard(target)
        return tuple(sorted(pool))


def closest_relatives(target: str, k: int = N_RELATIVES, among: frozenset = frozenset()) -> tuple[str, ...]:
    """Up to k languages genetically closest to the target (ties: geographically closest), within
    RELATIVE_MAX_DISTANCE, among the *resourced* ones:
    languages with text in a pretraining corpus xlt knows (mC4, CC-100, mBERT's Wikipedia) or a published result
    (`among`). A relative with neither (Southern Ndebele for Xhosa) is not a practical source: labelled data for it
    is unlikely to exist. Empty for a language outside URIEL's family tree."""
    return _relatives(target, k, among)


_CACHE: dict[tuple, tuple[str, ...]] = {}


def _resourced(among: frozenset) -> np.ndarray:
    corpora = set()
    for corpus in registry.CORPORA:
        corpora |= {c for c, v in registry.corpus_sizes(corpus).items() if v > 0}
    codes = _known_codes()
    return codes[np.isin(codes, list(corpora | set(among)))]


def _relatives(target: str, k: int, among: frozenset) -> tuple[str, ...]:
    hit = _CACHE.get((target, k, len(among)))
    if hit is not None:
        return hit
    codes = _resourced(among)
    d = typology.pair_distances(codes, np.full(len(codes), target, dtype=object))
    gen, geo = d["genetic"].astype(np.float64), d["geographic"].astype(np.float64)
    ok = ~np.isnan(gen) & (gen <= RELATIVE_MAX_DISTANCE) & (codes != target)
    out: tuple[str, ...] = ()
    if ok.any():
        idx = np.flatnonzero(ok)
        order = np.lexsort((np.nan_to_num(geo[idx], nan=2.0), gen[idx]))
        out = tuple(str(codes[i]) for i in idx[order[:k]])
    if len(_CACHE) > 4096:
        _CACHE.clear()
    _CACHE[(target, k, len(among))] = out
    return out


_CODES: list[np.ndarray] = []


def _known_codes() -> np.ndarray:
    if not _CODES:
        _CODES.append(np.array([lang.code for lang in all_languages() if typology.has_language(lang.code)],
                               dtype=object))
    return _CODES[0]
