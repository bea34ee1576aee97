"""The record as evidence (features.evidence): exact values on a small hand-made record.

Pair evidence is kept per model family and from the other families apart; a source's own record (this model) relative
to the other sources of the same targets leaves the query's pair out and is 0 where nothing is published.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from features.evidence import EVIDENCE_FEATURES, GRAINS, SOURCE_PRIOR, RecordEvidence
from features.featurize import featurize_components
from predictor.model import normalize_observations

# xnli, single-source zero-shot rows: two XLM-R models and one mT5 model, targets swh and urd, sources eng/deu/hin
ROWS = [  # model, source, target, score
    ("xlm-r-large", "eng", "swh", 70.0), ("xlm-r-large", "deu", "swh", 66.0),
    ("xlm-r-base", "eng", "swh", 62.0), ("xlm-r-base", "deu", "swh", 60.0),
    ("xlm-r-large", "eng", "urd", 68.0), ("xlm-r-large", "hin", "urd", 74.0),
    ("mt5-base", "eng", "swh", 50.0), ("mt5-base", "deu", "swh", 56.0),
]


def _frame(rows) -> pd.DataFrame:
    return pd.DataFrame({"model": [r[0] for r in rows], "task": "xnli", "task_type": "classification",
                         "target": [r[2] for r in rows], "train_config": [f"{r[1]}:1000" for r in rows],
                         "k": 0, "score": [r[3] for r in rows]})


@pytest.fixture(scope="module")
def record():
    obs = _frame(ROWS)
    return RecordEvidence().fit(normalize_observations(obs), obs["score"].to_numpy()), obs


def _serve(ev: RecordEvidence, model: str, source: str, target: str) -> dict[str, float]:
    norm = normalize_observations(_frame([(model, source, target, 0.0)]))
    _, rows, langs = featurize_components(norm)
    E = ev.component_matrix(norm["model"].to_numpy(object), norm["task"].to_numpy(object),
                            norm["task_type"].to_numpy(object), norm["target"].to_numpy(object), rows, langs, GRAINS)
    return dict(zip(GRAINS, E[list(langs).index(source)].astype(float)))


def test_pair_evidence_is_split_by_model_family(record):
    ev, _ = record
    v = _serve(ev, "xlm-r-large", "deu", "swh")
    assert v["ev_pair"] == pytest.approx((66 + 60) / 2)                  # XLM-R rows only
    assert v["ev_pair_other"] == pytest.approx(56.0)                     # the mT5 row only
    xlmr_level = (70 + 66 + 62 + 60) / 4                                 # the target's XLM-R single sources
    assert v["ev_pair_vs_others"] == pytest.approx(63.0 - xlmr_level)
    assert v["ev_pair_other_vs_others"] == pytest.approx(56.0 - (50 + 56) / 2)
    m = _serve(ev, "mt5-base", "deu", "swh")
    assert m["ev_pair"] == pytest.approx(56.0) and m["ev_pair_other"] == pytest.approx(63.0)


def test_source_record_leaves_the_pair_out_and_is_zero_where_nothing_is_published(record):
    ev, _ = record
    # eng→swh for xlm-r: eng's other XLM-R target is urd, where it scored 68 against the target's mean 71
    v = _serve(ev, "xlm-r-large", "eng", "swh")
    assert v["ev_source_vs_others"] == pytest.approx((68 - 71) / (1 + SOURCE_PRIOR))
    # deu has XLM-R rows only for swh, the query's own target: nothing else to go on
    assert _serve(ev, "xlm-r-large", "deu", "swh")["ev_source_vs_others"] == 0.0
    # per model, not family: eng has no other xlm-r-base target, whatever xlm-r-large says
    assert _serve(ev, "xlm-r-base", "eng", "swh")["ev_source_vs_others"] == 0.0
    # a source nobody published from: 0 (average), not NaN, so absence cannot stand for obscurity
    assert _serve(ev, "xlm-r-large", "fra", "swh")["ev_source_vs_others"] == 0.0
    assert math.isnan(_serve(ev, "xlm-r-large", "fra", "swh")["ev_pair"])


def test_training_values_never_hold_the_rows_own_score(record):
    ev, obs = record
    norm = normalize_observations(obs)
    _, rows, langs = featurize_components(norm)
    tv = RecordEvidence(mask_rate=0.0, language_mask_rate=0.0).fit(norm, obs["score"].to_numpy()) \
        .training_values(norm, obs["score"].to_numpy(), rows, langs)
    assert list(tv.columns) == EVIDENCE_FEATURES
    comp = pd.DataFrame({"row": rows, "lang": langs}).assign(**tv)
    src = comp[comp["lang"] != obs["target"].to_numpy()[comp["row"]]]
    first = src[src["row"] == 1].iloc[0]          # xlm-r-large deu→swh 66: its family's other deu→swh row is 60
    assert first["ev_pair"] == pytest.approx(60.0)
    assert first["ev_pair_other"] == pytest.approx(56.0)
    assert first["ev_source_vs_others"] == 0.0    # deu's XLM-R record is swh only: its own pair, left out


def test_small_and_vectorised_paths_agree():
    from predictor.train import load_observations, trainable
    obs = trainable(load_observations())
    sub = obs.sample(4000, random_state=3)
    norm = normalize_observations(sub)
    ev = RecordEvidence().fit(norm, sub["score"].to_numpy())
    _, rows, langs = featurize_components(norm)
    args = [norm[c].to_numpy(object) for c in ("model", "task", "task_type", "target")]
    big = ev.component_matrix(*args, rows, langs, GRAINS)          # > SMALL_N components: vectorised
    idx = np.arange(500)
    small = ev.component_matrix(*args, rows[idx], langs[idx], GRAINS)
    np.testing.assert_array_equal(big[idx], small)
    again = RecordEvidence.from_csv(ev.to_csv())
    np.testing.assert_array_equal(again.component_matrix(*args, rows, langs, GRAINS), big)


def test_one_target_path_equals_the_per_component_paths():
    """A ranking's evidence (`one_target_matrix`: one model, task and target, many languages, the target's own
    examples among them, repeated) holds the same values as the per-component path, for published targets and
    sources, unpublished ones and a task the record lacks."""
    from predictor.train import load_observations, trainable
    obs = trainable(load_observations())
    norm = normalize_observations(obs)
    ev = RecordEvidence().fit(norm, obs["score"].to_numpy())
    langs = sorted(set(norm["target"]))[:60] + ["xho", "zul", "nav", "qxx"]
    cases = [("xlm-r-large", "xnli", "classification", "swh"), ("mt5-base", "tydiqa", "qa", "tel"),
             ("xlm-r-base", "udpos", "structured", "deu"), ("xlm-r-base", "udpos", "structured", "xho"),
             ("mt5", "xquad", "qa", "hin"), ("xlm-r-base", "my-new-task", "ner", "nav")]
    for model, task, ttype, target in cases:
        for cands in (langs, langs + [target, target], [target]):
            n = len(cands)
            per_component = ev.component_matrix(np.array([model], object), np.array([task], object),
                                                np.array([ttype], object), np.array([target], object),
                                                np.zeros(n, dtype=np.int64), np.array(cands, dtype=object), GRAINS)
            one = ev.one_target_matrix(model, task, ttype, target, np.array(cands, dtype=object), GRAINS)
            np.testing.assert_array_equal(one, per_component)
            assert not np.isnan(one).all(axis=0)[GRAINS.index("ev_target")] or target in ("xho", "nav")


def test_langrankplus_xquad_runs_are_a_pool_of_their_own():
    """LangRankPlus's unsized XQuAD runs (a tiny training set recorded at SQuAD's size) never set a sized model's
    XQuAD level; their own rows still read their pool, and the family's other tasks still pool the unsized runs."""
    rows = [("xlm-r", "eng", "hin", 18.0), ("xlm-r", "mar", "hin", 24.0), ("xlm-r-large", "eng", "hin", 76.7)]
    obs = pd.DataFrame({"model": [r[0] for r in rows], "task": "xquad", "task_type": "qa",
                        "target": [r[2] for r in rows], "train_config": [f"{r[1]}:87599" for r in rows],
                        "k": 0, "score": [r[3] for r in rows]})
    xnli = _frame([("xlm-r", "eng", "swh", 60.0), ("xlm-r-large", "eng", "swh", 70.0)])
    both = pd.concat([obs, xnli], ignore_index=True)
    ev = RecordEvidence().fit(normalize_observations(both), both["score"].to_numpy())

    def serve(model, task, task_type, source, target):
        norm = normalize_observations(pd.DataFrame({"model": [model], "task": task, "task_type": task_type,
                                                    "target": target, "train_config": f"{source}:1000", "k": 0}))
        _, r, langs = featurize_components(norm)
        E = ev.component_matrix(norm["model"].to_numpy(object), norm["task"].to_numpy(object),
                                norm["task_type"].to_numpy(object), norm["target"].to_numpy(object), r, langs, GRAINS)
        return dict(zip(GRAINS, E[list(langs).index(source)].astype(float)))

    sized = serve("xlm-r-base", "xquad", "qa", "mar", "hin")
    assert sized["ev_target"] == pytest.approx(76.7)          # the sized model's result only, not (18 + 24 + 76.7) / 3
    assert math.isnan(sized["ev_pair"])                        # mar → hin is published only by the unsized runs
    assert sized["ev_pair_other"] == pytest.approx(24.0)      # ... which speak as another pool's pair
    own = serve("xlm-r", "xquad", "qa", "mar", "hin")
    assert own["ev_target"] == pytest.approx((18 + 24) / 2) and own["ev_pair"] == pytest.approx(24.0)
    assert serve("xlm-r-base", "xnli", "classification", "eng", "swh")["ev_target"] == pytest.approx(65.0)
