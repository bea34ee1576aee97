"""TransferRegressor on a slice of the real observations: best-component scoring, evidence, persistence."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.evidence import EVIDENCE_FEATURES
from features.featurize import featurize_components
from predictor.model import TransferRegressor, normalize_observations
from predictor.train import load_observations, trainable


@pytest.fixture(scope="module")
def fitted():
    obs = trainable(load_observations())
    rng = np.random.default_rng(0)
    sub = obs.iloc[rng.choice(len(obs), 6000, replace=False)].reset_index(drop=True)
    held = "swh"
    train = sub[(sub.target != held) & ~sub.train_config.str.contains(held)]
    return TransferRegressor(n_estimators=40, n_jobs=1).fit(train), sub, held


def test_a_mix_scores_as_its_best_component(fitted):
    m, _, _ = fitted
    q = pd.DataFrame({"model": ["xlm-r-large"] * 3, "task": ["xnli"] * 3, "task_type": ["classification"] * 3,
                      "target": ["swh"] * 3, "train_config": ["eng:1000", "deu:1000", "deu:1000;eng:1000"],
                      "k": [0, 0, 0], "source_size": [1000, 1000, 2000]})
    _, s = m.score_queries(q)
    assert s[2] >= max(s[0], s[1]) - 1e-9


def test_evidence_is_absent_for_a_language_the_record_lacks(fitted):
    m, sub, held = fitted
    rows = sub[sub.target == held]
    if rows.empty:
        pytest.skip("no held-out rows in this slice")
    X, _ = m.score_queries(normalize_observations(rows))
    assert X[["ev_target", "ev_pair"]].isna().all().all()
    seen = sub[sub.target == "deu"].head(20)
    Xs, _ = m.score_queries(normalize_observations(seen))
    assert Xs["ev_target"].notna().all()


def test_training_evidence_never_holds_the_rows_own_score(fitted):
    m, sub, _ = fitted
    one = sub[(sub.k == 0) & ~sub.train_config.str.contains(";")].head(200).reset_index(drop=True)
    norm = normalize_observations(one)
    Xc, rows, langs = featurize_components(norm)
    full = m.evidence_.component_values(norm, rows, langs)
    y = one["score"].to_numpy()
    loo = m.evidence_.training_values(norm, y, rows, langs)
    # where both are defined and the grain held only this row, leave-one-out must be NaN, never the row's score
    assert not np.isclose(loo["ev_pair"].to_numpy(), y[rows], atol=1e-4).all()
    assert list(loo.columns) == EVIDENCE_FEATURES and len(loo) == len(full)


def test_round_trip_through_files_gives_identical_scores(fitted):
    m, sub, _ = fitted
    files = {k: v.encode() for k, v in m.to_files().items()}
    assert set(files) == {"model.txt", "model_config.json", "evidence.csv", "residuals.csv", "source_offsets.csv",
                          "pair_offsets.csv", "size_offsets.csv"}
    again = TransferRegressor.from_files(files)
    norm = normalize_observations(sub.head(300))
    assert np.array_equal(m.score_queries(norm)[1], again.score_queries(norm)[1])


def test_monotone_constraints_cover_every_data_amount(fitted):
    m, _, _ = fitted
    cons = dict(zip(m.feature_names_, m.lgb_params()["monotone_constraints"]))
    assert {f for f, c in cons.items() if c == 1} == {"log_source_size", "log1p_other_sources", "log1p_other_related", "log1p_k",
                                                        "n_source_languages", "same_script", "same_family",
                                                        "src_pretrain_log", "tgt_pretrain_log",
                                                        "tgt_relative_pretrain_log", "model_log_params",
                                                        *EVIDENCE_FEATURES}
    assert {f for f, c in cons.items() if c == -1} == {"dist_genetic", "dist_syntactic", "dist_geographic"}
    assert "ev_source" not in cons, "a source's own record is a popularity proxy: not a model feature"


def test_a_larger_model_of_a_family_never_scores_lower(predictor):
    # targets the record holds for no model (where it does, each model's own published result leads, as it should)
    for family in (("xlm-r-base", "xlm-r-large", "xlm-r-xl", "xlm-r-xxl"),
                   ("mt5-small", "mt5-base", "mt5-large", "mt5-xl", "mt5-xxl")):
        for task, target in (("xnli", "lug"), ("wikiann", "tsn"), ("udpos", "haw"), ("tydiqa", "sot")):
            q = pd.DataFrame([{"model": m, "task": task, "source": "en", "target": target} for m in family])
            s = predictor.predict(q)["predicted_score"].to_numpy()
            assert np.all(np.diff(s) >= -1e-9), (task, target, dict(zip(family, s.round(2))))


def test_the_records_residual_shifts_a_recorded_target_and_leaves_an_unrecorded_one_alone(fitted):
    m, sub, held = fitted
    norm = normalize_observations(sub[sub.target.isin(["deu", held])].head(400))
    off = m.query_offsets(norm)
    # an unrecorded target gets no target offset, only the (model, task)'s one for the mix's amount of data
    by_size = m.size_offsets_.offsets(norm["model"], norm["task"], norm["source_size"])
    assert np.all(off[norm.target.to_numpy() == held] == by_size[norm.target.to_numpy() == held])
    assert m.residuals_.offset(norm["model"].iat[0], norm["task"].iat[0], held, 0) == 0.0
    recorded = norm.target.to_numpy() == "deu"
    assert recorded.any() and np.any(off[recorded] != 0.0)
    # the offset is what the served trees miss on the record: without it the fit to the record is worse
    y = sub.loc[norm.index, "score"].to_numpy()
    with_offset = m.score_queries(norm)[1]
    plain = TransferRegressor.from_files({k: v.encode() for k, v in m.to_files().items() if k != "residuals.csv"})
    without = plain.score_queries(norm)[1]
    assert np.mean(np.abs(with_offset - y)[recorded]) < np.mean(np.abs(without - y)[recorded])


def test_rows_trained_on_another_task_keep_a_task_of_their_own():
    """SumEval's TyDiQA-trained models scored on XQuAD: not XQuAD training data, not XQuAD evidence."""
    from predictor import record

    obs = trainable(load_observations())
    cross = obs[obs.task == "xquad-from-tydiqa"]
    assert len(cross) == 572 and (cross.train_task == "tydiqa").all() and (cross.task_type == "qa").all()
    assert not ((obs.task == "xquad") & (obs.train_task == "tydiqa")).any()
    summary = record.summarize(obs)
    # Telugu has TyDiQA training data, not XQuAD: it is a labelled source of TyDiQA only
    assert "tel" in summary["sources_by_task"]["tydiqa"]
    assert "tel" not in summary["sources_by_task"]["xquad"]
    assert "tel" in summary["sources_by_task"]["xquad-from-tydiqa"]
    norm = normalize_observations(cross.head(3))
    assert (norm.task == "xquad-from-tydiqa").all()


def test_source_offsets_move_a_source_only_where_the_target_is_unseen(fitted):
    from predictor.residuals import PairOffsets, SourceOffsets
    m, sub, held = fitted
    pairs, m.pair_offsets_ = m.pair_offsets_, PairOffsets()   # this test is about the unseen target's offsets
    try:
        _check_source_offsets(m, sub, held, SourceOffsets)
    finally:
        m.pair_offsets_ = pairs


def _scored_without(m, attr: str, empty, norm):
    """Scores of `norm` with one of the model's offset tables swapped for an empty one (restored afterwards)."""
    saved = getattr(m, attr)
    setattr(m, attr, empty)
    try:
        return m.score_queries(norm)[1]
    finally:
        setattr(m, attr, saved)


def _check_source_offsets(m, sub, held, SourceOffsets):
    t = m.source_offsets_.table_
    assert len(t) > 0 and np.isfinite(t["deviation"]).all()
    row = t.loc[t["deviation"].abs().idxmax()]
    expected = m.source_offsets_.offsets([row.model], [row.task], [held], [row.source])[0]
    assert expected != 0.0
    recorded = sub[(sub.model == row.model) & (sub.task == row.task) & (sub.target != held)
                   & (sub.target != row.source)]["target"].iloc[0]
    q = pd.DataFrame({"model": [row.model] * 2, "task": [row.task] * 2,
                      "task_type": [sub.loc[sub.task == row.task, "task_type"].iloc[0]] * 2,
                      "target": [held, recorded], "train_config": [f"{row.source}:1000"] * 2, "k": [0, 0]})
    norm = normalize_observations(q.assign(score=0.0))
    with_off = m.score_queries(norm)[1]
    without = _scored_without(m, "source_offsets_", SourceOffsets(), norm)
    shift = with_off - without
    assert shift[1] == 0.0                          # a recorded target: the evidence speaks, no offset
    assert np.isclose(shift[0], expected) or with_off[0] <= without[0] + 1e-9  # unseen: the offset (or a floor)
    assert np.isclose(m.query_source_offsets(norm)[0], expected) and m.query_source_offsets(norm)[1] == 0.0


def test_pair_offsets_bring_a_published_pair_towards_its_result_and_leave_unseen_targets_alone(fitted):
    """Where the record holds the target, a published single-source pair gets what the served model still misses
    on it (PairOffsets): its prediction moves towards the published score; an unseen target gets no pair offset."""
    from predictor.residuals import PairOffsets
    m, sub, held = fitted
    t = m.pair_offsets_.table_
    assert len(t) > 0 and np.isfinite(t["offset"]).all() and (t["rows"] >= 1).all()
    single = sub[(sub.k == 0) & ~sub.train_config.str.contains(";") & (sub.target != held)
                 & (sub.source != sub.target)].head(300)
    norm = normalize_observations(single)
    with_po = m.score_queries(norm)[1]
    without = _scored_without(m, "pair_offsets_", PairOffsets(), norm)
    y = single["score"].to_numpy()
    moved = with_po != without
    assert moved.sum() > 50
    assert np.mean(np.abs(with_po - y)[moved]) < np.mean(np.abs(without - y)[moved])
    # the offset is this pair's: PAIR_PRIOR's, or AT_SIZE_PRIOR's at the published size and beyond it in the
    # correction's direction (never lower for more data: the 100,000-example shift is at least the 1,000-example one)
    row = t.loc[t["offset"].abs().idxmax()]
    q = pd.DataFrame({"model": [row.model] * 3, "task": [row.task] * 3,
                      "task_type": [sub.loc[sub.task == row.task, "task_type"].iloc[0]] * 3,
                      "target": [row.target, row.target, held],
                      "train_config": [f"{row.source}:1000", f"{row.source}:100000", f"{row.source}:1000"],
                      "k": [0, 0, 0]})
    qn = normalize_observations(q.assign(score=0.0))
    offs = m.query_source_offsets(qn)

    def expected(n):
        up = row.offset_at_size > row.offset
        at = n >= row["size"] * (1 - 1e-5) if up else n <= row["size"] * (1 + 1e-5)
        return row.offset_at_size if at else row.offset
    assert np.allclose(offs[:2], [expected(1000), expected(100000)]) and offs[0] <= offs[1]
    assert row.offset_at_size != row.offset          # the record's published size is kept: the two differ
    # the unseen target: no pair offset, only its source offset from the task's other targets (SourceOffsets)
    assert offs[2] == m.source_offsets_.offsets([row.model], [row.task], [held], [row.source])[0]
