"""The facade on the real trained model: values, shapes, monotonicity, additivity, artifact integrity."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from features.errors import BadValue, ModelNotReady, UnknownLanguage
from features.queries import normalize_one
from predictor.model import MODEL_FEATURES
from predictor import TransferPredictor, artifacts
from predictor.curve import fit_log_curve
from predictor.intervals import conformal_quantile, probability_best

Q = {"model": "xlm-r-large", "task": "xnli", "target": "sw", "source": "en"}


def test_predict_table_scores_good_rows_and_reports_bad(predictor):
    q = pd.DataFrame([Q, {**Q, "target": "notalang"}, {**Q, "source": "de"}])
    out = predictor.predict(q)
    assert list(out.columns) == ["predicted_score", "lower80", "upper80", "lower90", "upper90", "error"]
    assert out.loc[0, "error"] == "" and out.loc[2, "error"] == ""
    assert "notalang" in out.loc[1, "error"] and np.isnan(out.loc[1, "predicted_score"])
    good = out.loc[[0, 2]]
    assert good.predicted_score.between(0, 100).all()
    assert (good.lower90 <= good.lower80).all() and (good.lower80 <= good.predicted_score).all()
    assert (good.predicted_score <= good.upper80).all() and (good.upper80 <= good.upper90).all()


def test_swahili_xnli_from_english_is_plausible(predictor):
    # XLM-R large's published English→Swahili XNLI accuracy is in the low 70s; a sane model lands near it.
    s = predictor.predict_one(Q)["predicted_score"]
    assert 55 < s < 85


def test_predict_one_carries_yardsticks(predictor):
    a = predictor.predict_one({**Q, "source": "ar"})
    assert a["yardsticks"]["always_english"]["source"] == "eng"
    assert a["yardsticks"]["closest_by_syntax"]["source"] != "swh"
    assert 0 <= a["yardsticks"]["always_english"]["predicted_score"] <= 100


def test_predict_one_and_its_yardsticks_equal_the_table_path(predictor):
    """/predict scores a single-source query and its two yardsticks on the ranking's numpy path: the same scores
    and intervals as the table path (`predict`, what a batch uses), for a size the record lacks (XLM-R XL), a task
    the registry does not know, the target's own examples added (k) and a mixture (the table path itself)."""
    queries = [Q, {**Q, "source": "ar", "k": 50}, {**Q, "model": "xlm-r-xl", "source_size": 1234},
               {"model": "mt5-base", "task": "my-new-task", "task_type": "ner", "target": "yo", "source": "ha"},
               {"model": "xlm-r-base", "task": "udpos", "target": "de", "source": "nl", "source_size": 12000},
               {"model": "xlm-r-large", "task": "xnli", "target": "sw", "train_config": "en:100;de:300;sw:20"}]
    for q in queries:
        a = predictor.predict_one(q)
        ref = predictor.predict(pd.DataFrame([q]))
        assert ref.loc[0, "error"] == ""
        for c in ("predicted_score", "lower80", "upper80", "lower90", "upper90"):
            assert abs(a[c] - ref.loc[0, c]) < 1e-6, (q, c)
        row = normalize_one(q).iloc[0]  # the yardsticks ask the query's source size (a mix's: its sources' sum)
        for name, y in a["yardsticks"].items():
            if y is None:
                continue
            yq = {k: v for k, v in q.items() if k not in ("source", "train_config", "source_size", "k")}
            yq = {**yq, "source": y["source"], "source_size": int(row["source_size"]), "k": int(row["k"])}
            assert abs(y["predicted_score"] - predictor.predict(pd.DataFrame([yq])).loc[0, "predicted_score"]) < 1e-6


def test_rank_orders_sources_and_explains(predictor):
    r = predictor.rank({k: v for k, v in Q.items() if k != "source"}, ["en", "de", "ar", "hi", "zh", "fr"])
    assert len(r) == 6
    assert (np.diff(r.predicted_score.to_numpy()) <= 1e-12).all()
    assert abs(r.p_best.sum() - 1) < 1e-9 and r.p_best.between(0, 1).all()
    assert all(1 <= len(x) <= 3 for x in r.reasons[:5]), "the five leading sources carry their SHAP reasons"
    assert all(len(x) == 0 for x in r.reasons[5:])
    assert all(isinstance(x["text"], str) and ":" in x["text"] for rs in r.reasons for x in rs)
    r10 = predictor.rank({k: v for k, v in Q.items() if k != "source"}, ["en", "de", "ar", "hi", "zh", "fr"],
                         reasons_top=10)
    assert all(1 <= len(x) <= 3 for x in r10.reasons)


def test_rank_default_candidates_cover_the_corpus(predictor):
    r = predictor.rank({"model": "xlm-r-large", "task": "xnli", "target": "sw"}, top=10)
    assert len(r) == 10 and "swh" not in set(r.source)


def test_rank_rejects_bad_candidates(predictor):
    with pytest.raises(UnknownLanguage) as e:
        predictor.rank({"model": "xlm-r-large", "task": "xnli", "target": "sw"}, ["en", "Swahilli2x"])
    assert e.value.field == "candidates[1]"
    with pytest.raises(BadValue):
        predictor.rank({"model": "xlm-r-large", "task": "xnli", "target": "sw"}, [])


def test_curve_is_monotone_and_fit_is_consistent(predictor):
    c = predictor.curve(Q, target_score=90)
    ys = [p["score"] for p in c["points"]]
    assert len(ys) >= 5 and all(b >= a for a, b in zip(ys, ys[1:]))
    assert c["points"][0]["k"] == 0
    assert 0 <= c["r2"] <= 1
    if c["k_to_reach"] is not None:
        assert c["a"] + c["b"] * np.log1p(c["k_to_reach"]) >= 90 - 1e-6


def test_explain_adds_up(predictor):
    e = predictor.explain(Q)
    total = e["base_value"] + sum(e["contributions"].values())
    assert abs(total - e["prediction"]) < 1e-6
    # the trees' features, plus the record's residual for this (model, task, target) where the record has one
    # and the offset of this very source → target pair where the record holds it (a published single-source result)
    assert set(e["contributions"]) == set(predictor.feature_names) | {"record_residual", "pair_record"}
    assert e["contributions"]["record_residual"] == predictor.model.query_offsets(predictor._one(Q))[0] != 0.0
    assert e["contributions"]["pair_record"] == predictor.model.query_source_offsets(predictor._one(Q))[0] != 0.0
    new = predictor.explain({**Q, "target": "qu"})  # Quechua: no published XNLI result, no target offset
    assert set(new["contributions"]) - {"source_record", "record_residual"} == set(predictor.feature_names)
    assert abs(new["base_value"] + sum(new["contributions"].values()) - new["prediction"]) < 1e-6
    # what remains of the record's term is the (model, task)'s offset for this amount of data (SizeOffsets)
    by_size = predictor.model.size_offsets_.offsets(["xlm-r-large"], ["xnli"], [392702])[0]
    assert new["contributions"].get("record_residual", 0.0) == by_size


def test_explain_and_rank_show_the_source_record_where_the_target_is_unseen(predictor):
    # Xhosa has no UD POS result: English's offset from XLM-R base's other UD POS targets is one more term
    q = {"model": "xlm-r-base", "task": "udpos", "target": "xh", "source": "de"}
    assert predictor.regime("udpos", "xho", "xlm-r-base") == "similarity"
    offset = predictor.model.query_source_offsets(predictor._one(q))[0]
    t = predictor.model.source_offsets_.table_
    assert ((t.model == "xlm-r-base") & (t.task == "udpos") & (t.source == "deu")).sum() > 50  # xpos: ~100 targets
    assert offset == predictor.model.source_offsets_.offsets(["xlm-r-base"], ["udpos"], ["xho"], ["deu"])[0] != 0.0
    e = predictor.explain(q)
    assert e["contributions"]["source_record"] == offset
    assert abs(e["base_value"] + sum(e["contributions"].values()) - e["prediction"]) < 1e-6
    seen = predictor.explain({**q, "target": "de", "source": "en"})  # German is in the record: no source term
    assert "source_record" not in seen["contributions"]
    ranked = predictor.rank({k: v for k, v in q.items() if k != "source"},
                            candidates=["de", "en", "fi", "zu", "ar", "hi"], top=6, reasons=8, reasons_top=6)
    words = [r["feature"] for rs in ranked["reasons"] for r in rs]
    assert "source_record" in words
    for r in (r for rs in ranked["reasons"] for r in rs if r["feature"] == "source_record"):
        # a candidate the record lacks is told so, not shown an offset of +0.0
        assert r["text"].startswith("no published result of this source" if r["value"] == 0.0
                                    else "this source on the task's other targets, beyond what the model expects: ")


def test_explain_and_rank_show_the_pairs_own_record_where_the_target_is_published(predictor):
    """XLM-R large, XNLI, English → Swahili is a published result: its pair offset (at the published size, the
    stronger one) moves the prediction towards it, /explain lists it as `pair_record` (adding up), and /rank's
    reasons say it in words."""
    import pandas as pd

    from predictor import protocols
    q = {"model": "xlm-r-large", "task": "xnli", "target": "sw", "source": "en"}
    obs = protocols.load_observations()
    published = obs[(obs.model == "xlm-r-large") & (obs.task == "xnli") & (obs.target == "swh")
                    & (obs.train_config == "eng:392702")]["score"].mean()
    pair = predictor.model.pair_offsets_.offsets(["xlm-r-large"], ["xnli"], ["swh"], ["eng"], [392702.0])[0]
    other_size = predictor.model.pair_offsets_.offsets(["xlm-r-large"], ["xnli"], ["swh"], ["eng"], [1000.0])[0]
    assert pair > other_size > 0.0 and not pd.isna(published)   # the published size reads the stronger offset
    e = predictor.explain(q)
    assert e["contributions"]["pair_record"] == pair and "source_record" not in e["contributions"]
    assert abs(e["base_value"] + sum(e["contributions"].values()) - e["prediction"]) < 1e-6
    # towards the published score: closer with the offset than without it
    assert abs(e["predicted_score"] - published) < abs(e["predicted_score"] - pair - published)
    ranked = predictor.rank({k: v for k, v in q.items() if k != "source"},
                            candidates=["en", "ar", "hi", "fr", "de", "ru"], top=6, reasons=8, reasons_top=6)
    texts = [r["text"] for rs in ranked["reasons"] for r in rs if r["feature"] == "pair_record"]
    assert texts and all(t.startswith(("this source's published results for this target",
                                       "no published result of this source for this target")) for t in texts)


def test_plan_spends_the_budget_and_beats_or_ties_english(predictor):
    p = predictor.plan({"model": "xlm-r-large", "task": "xnli", "target": "sw"}, ["en", "ar", "hi", "sw"], 1000)
    assert sum(x["examples"] for x in p["plan"]) == 1000
    assert p["gain_over_english"] >= -1e-9


def test_curve_helpers():
    a, b, r2 = fit_log_curve([0, 10, 100, 1000], [50 + 3 * np.log1p(k) for k in (0, 10, 100, 1000)])
    assert abs(a - 50) < 1e-9 and abs(b - 3) < 1e-9 and abs(r2 - 1) < 1e-9


def test_conformal_helpers():
    assert conformal_quantile(np.arange(1, 11), 0.8) == 9  # ceil(11·0.8) = 9th smallest
    p = probability_best(np.array([80.0, 70.0, 79.0]), sd=1.0)
    assert p[0] > p[2] > p[1] and abs(p.sum() - 1) < 1e-12


def test_tampered_truncated_or_missing_model_is_refused(model_dir, tmp_path):
    copy = tmp_path / "m"
    shutil.copytree(model_dir, copy)
    TransferPredictor.load(copy)  # intact copy loads
    with open(copy / "model.txt", "a") as f:
        f.write("\n# tampered\n")
    with pytest.raises(ModelNotReady, match="sha256"):
        TransferPredictor.load(copy)
    shutil.copy(model_dir / "model.txt", copy / "model.txt")
    data = (copy / "calibration.json").read_bytes()
    (copy / "calibration.json").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelNotReady, match="sha256"):
        TransferPredictor.load(copy)
    with pytest.raises(ModelNotReady, match="missing"):
        TransferPredictor.load(tmp_path / "nothing")


def test_manifest_records_data_hash_features_and_versions(model_dir):
    m = json.loads((model_dir / "manifest.json").read_text())
    assert len(m["data"]["sha256"]) == 64
    assert m["features"] == MODEL_FEATURES
    assert {"lightgbm", "numpy", "python"} <= set(m["versions"])
    assert set(m["files"]) >= {"model.txt", "model_config.json", "calibration.json"}
    assert m["metrics"]["oof_rmse"] > 0


def test_atomic_write_leaves_previous_model_on_failure(tmp_path):
    first = artifacts.write_model_dir({"a.txt": "one"}, {"version": "v1"}, tmp_path)
    with pytest.raises(TypeError):
        artifacts.write_model_dir({"a.txt": "two", "b.txt": object()}, {"version": "v2"}, tmp_path)
    assert (tmp_path / "current").resolve() == first.resolve()
    assert not (tmp_path / "v2").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".v2")]


def test_per_distinct_equals_the_row_by_row_answer_for_many_rows():
    """Batches and all-pairs compute per-row look-ups once per distinct combination of their columns (bins from task,
    target and model; interval rows from bin and task type): the same values as computing every row."""
    from predictor.facade import BULK_ROWS, _per_distinct

    rng = np.random.default_rng(0)
    n = BULK_ROWS * 3
    cols = [rng.choice(np.array(v, dtype=object), n) for v in (["xnli", "udpos", "pawsx"], ["deu", "swh"],
                                                               ["mt5-base", "xlm-r-large", "mbert", "x"])]

    def fn(a, b, c):
        return np.array([f"{x}|{y}|{z}" for x, y, z in zip(a, b, c)], dtype=object)

    assert _per_distinct(fn, *cols).tolist() == fn(*cols).tolist()
    assert _per_distinct(fn, *(c[:10] for c in cols)).tolist() == fn(*(c[:10] for c in cols)).tolist()


def test_explain_of_a_single_source_query_equals_the_table_path(predictor, monkeypatch):
    """/explain of a single-source query takes the ranking's numpy path: every contribution, value and the
    prediction equal the table path's (which a mixture takes), for a size the record lacks (the size step), the
    target's own examples added, a target the record holds (pair offset) and one it lacks (source offset)."""
    import predictor.facade as facade

    queries = [Q, {**Q, "source": "ar", "k": 50}, {**Q, "model": "xlm-r-xl", "source_size": 1234},
               {"model": "xlm-r-base", "task": "udpos", "target": "de", "source": "nl", "source_size": 12000},
               {"model": "xlm-r-base", "task": "udpos", "target": "xh", "source": "zu"},
               {"model": "mt5-base", "task": "my-new-task", "task_type": "ner", "target": "yo", "source": "ha"}]
    fast = [predictor.explain(q) for q in queries]
    monkeypatch.setattr(facade, "_single_source", lambda train_config, target: None)
    for q, a in zip(queries, fast):
        b = predictor.explain(q)
        assert list(a["contributions"]) == list(b["contributions"]), q
        for f in a["contributions"]:
            assert abs(a["contributions"][f] - b["contributions"][f]) < 1e-6, (q, f)
        assert a["feature_values"].keys() == b["feature_values"].keys()
        for key in ("prediction", "predicted_score", "base_value"):
            assert abs(a[key] - b[key]) < 1e-6, (q, key)
        assert abs(a["base_value"] + sum(a["contributions"].values()) - a["prediction"]) < 1e-6


def test_a_task_named_by_its_type_is_answered_with_a_note(predictor):
    """"NER" names no dataset: the answer is a new NER task's, and says so (with the model size it assumed)."""
    a = predictor.predict_one({"model": "XLM-R", "task": "NER", "target": "sw", "source": "en"})
    assert a["query"]["task"] == "ner" and a["query"]["task_type"] == "ner" and 0 <= a["predicted_score"] <= 100
    assert any("not in the registry" in n and "new ner task" in n for n in a["notes"])
    assert any("assumed xlm-r-large" in n for n in a["notes"])
    assert "notes" not in predictor.predict_one(Q)


def test_a_single_source_curve_equals_the_table_path(predictor, monkeypatch):
    """/curve of a single-source query scores its k grid on the ranking's numpy path (`score_sources` with one k per
    point), and `k_to_reach` searches it there: the same points, intervals, fit and k as the table path, for a size
    the record lacks, a target the record holds and one it lacks, and an unknown task."""
    import predictor.facade as facade

    queries = [(Q, 75.0), ({**Q, "model": "xlm-r-xl", "source_size": 1234}, 80.0),
               ({"model": "xlm-r-base", "task": "udpos", "target": "xh", "source": "zu"}, 85.0),
               ({"model": "mt5-base", "task": "my-new-task", "task_type": "ner", "target": "yo", "source": "ha"}, 70.0)]
    ks = [0, 1, 5, 10, 20, 50, 100, 300, 1000, 5000]
    fast = [predictor.curve(q, ks, goal) for q, goal in queries]
    monkeypatch.setattr(facade, "_single_source", lambda train_config, target: None)
    for (q, goal), a in zip(queries, fast):
        b = predictor.curve(q, ks, goal)
        assert a["k_to_reach"] == b["k_to_reach"], q
        for pa, pb in zip(a["points"], b["points"]):
            assert pa["k"] == pb["k"] and all(abs(pa[c] - pb[c]) < 1e-6 for c in pa if c != "k"), (q, pa, pb)
        assert abs(a["a"] - b["a"]) < 1e-6 and abs(a["b"] - b["b"]) < 1e-6
