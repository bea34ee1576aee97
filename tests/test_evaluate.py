"""Baselines on small real slices, fold running and the report on real data."""
import json

import numpy as np
import pandas as pd
import pytest

from predictor import baselines as B
from predictor import evaluate as E
from predictor import protocols as P


@pytest.fixture(scope="module")
def obs():
    return P.load_observations()


@pytest.fixture(scope="module")
def xnli(obs):
    """The two LangRankPlus XNLI matrices (15 × 15 each, mT5 and XLM-R)."""
    m = obs["dataset"].eq("langrankplus") & obs["dataset_file"].str.startswith("xnli")
    return obs[m].reset_index(drop=True)


def test_rule_baselines_order_sources_sensibly(xnli):
    test = xnli[(xnli["target"] == "deu") & (xnli["k"] == 0)]
    eng = B.always_english(xnli, test)
    assert eng[test["source"].eq("eng").to_numpy()].min() == 1 and eng.sum() == 2    # one English row per model
    gen = B.closest_by("genetic")(xnli, test)
    # English is XNLI's only other Germanic language: it alone ranks first (its row in each model's matrix)
    assert test["source"].to_numpy()[gen == gen.max()].tolist() == ["eng", "eng"]
    comp = B.distance_composite(xnli, test)
    assert set(test["source"].to_numpy()[np.argsort(-comp, kind="stable")][:4]) == {"eng", "fra"}
    assert set(test["source"].to_numpy()[comp == comp.min()]) <= {"tha", "vie", "cmn", "swh", "arb", "hin", "urd",
                                                                 "tur"}          # the farthest is not European
    size = B.source_corpus_size(xnli, test)
    assert test["source"].to_numpy()[np.argmax(size)] == "eng"                        # English dominates mC4/CC-100


def test_global_mean_and_litmus_predict_scores(xnli):
    tr = xnli[xnli["target"] != "swh"]
    te = xnli[xnli["target"] == "swh"]
    gm = B.global_mean(tr, te)
    assert np.allclose(gm, tr["score"].mean())
    lit = B.litmus_regressor(tr, te)
    assert lit.shape == (len(te),) and np.isfinite(lit).all()
    assert 20 < lit.mean() < 100
    # LITMUS-style features beat the constant on a held-out target by a wide margin (measured 1.2 vs 7.2 points)
    assert np.abs(lit - te["score"]).mean() < 0.5 * np.abs(gm - te["score"]).mean()


def test_langrank_lambdarank_learns_on_their_benchmark():
    proto = P.langrank_benchmark()
    el = proto.data["task"].eq("EL").to_numpy()
    sub = P.Protocol("el", "EL", "", proto.data, [f for f in proto.folds if f.name.startswith("EL/")],
                     [t for t in proto.tables if t.name == "EL"])
    res = E.evaluate_protocol(sub, B.langrank_lambdarank, kind="ranking")
    nd = res["EL"]["ndcg3"]
    assert res["EL"]["n_rank_groups"] == 9 and el.sum() > 400
    assert 0.45 < nd["value"] < 0.85 and nd["lo"] <= nd["value"] <= nd["hi"]   # LangRank published 0.630
    assert "rmse" not in res["EL"]                                             # orderings get no RMSE


def test_run_folds_shares_fits_and_rejects_bad_output(xnli):
    a = P.langrankplus(xnli, strict=True, extra=False)
    b = P.sumeval(xnli)            # no SumEval rows here: no folds
    calls = []

    def fp(train, test):
        calls.append(len(test))
        return np.full(len(test), float(train["score"].mean()))

    preds = E.run_folds([a, a.__class__(**{**a.__dict__, "name": "copy"})], fp)
    assert len(calls) == len(a.folds)                         # same training masks -> one fit each
    assert not np.isnan(preds["copy"][np.any([f.test for f in a.folds], axis=0)]).any()
    assert len(b.folds) == 0
    with pytest.raises(ValueError, match="shape"):
        E.run_folds([a], lambda tr, te: np.zeros(3))


def test_score_protocol_and_reports(tmp_path, xnli):
    proto = P.langrankplus(xnli, strict=True, extra=False)
    rr = E.RunResult()
    rr.protocols[proto.name] = {"title": proto.title, "description": proto.description, "grouping": proto.grouping,
                                "goals": proto.goals, "peers": proto.peers, "n_folds": len(proto.folds),
                                "n_test_rows": 420}
    rr.results[proto.name] = {}
    for m in [E.Method("always English", B.always_english, "ranking"),
              E.Method("LITMUS regressor", B.litmus_regressor, "regression")]:
        pred = E.run_folds([proto], m.fit_predict)[proto.name]
        rr.results[proto.name][m.name] = E.score_protocol(proto, pred, m.kind, intervals=True)
        rr.methods[m.name] = {"kind": m.kind, "description": ""}
    lit = rr.results[proto.name]["LITMUS regressor"]["xnli_mt5"]
    assert lit["n_rank_groups"] == 15 and lit["rmse"]["value"] > 0
    assert 0 <= lit["coverage80"]["value"] <= 1
    E.write_reports(rr, tmp_path, elapsed=1.0, n_obs=len(xnli))
    md = (tmp_path / "accuracy.md").read_text()
    assert "LangRank's relevance convention" in md and "xnli_mt5" in md and "LangRankPlus best" in md
    js = json.loads((tmp_path / "accuracy.json").read_text())
    assert js["results"][proto.name]["always English"]["xnli_xlm-r"]["pl"]["value"] >= 0


def test_interpret_on_langrankplus_rows(obs, tmp_path):
    from predictor import interpret as I
    sub = obs[obs["dataset"].eq("langrankplus")].reset_index(drop=True)
    res = I.interpret(sub)
    assert res["n_rows"] > 5000 and res["n_targets"] > 50
    for spec in ("pooled", "within-target"):
        s = res["specs"][spec]
        assert 0 < s["r2"] < 1
        assert set(s["partial_r2"]) <= set(I.GROUPS)
        assert all(0 <= v < 1 for v in s["partial_r2"].values())
        syn = next(c for c in s["coefficients"] if c["feature"] == "dist_syntactic")
        assert syn["se"] > 0 and 0 <= syn["p"] <= 1
    assert "lexical" in res["verdict"] and ("AGREE" in res["verdict"] or "agree" in res["verdict"])
    md = I.render(res)
    assert "| syntax |" in md and "clustered by target" in md


def test_rank_groups_is_the_one_ranking_key(obs):
    from predictor.model import ranking_key
    a = B.rank_groups(obs)
    assert (a.to_numpy() == ranking_key(obs)).all()
    # the columns the old definition added (dataset, metric) split no group of the trainable rows
    old = obs[["dataset", "metric"]].astype(str).agg("|".join, axis=1) + "|" + a
    assert old.nunique() == a.nunique() == 2052


def test_component_cache_equals_featurize_components(obs):
    from features.featurize import featurize_components
    from predictor.model import normalize_observations
    sub = obs[obs["dataset"].isin(["langrankplus", "sumeval2022"])].sample(1500, random_state=0)
    cache = B.ComponentCache()
    cache.get(sub.iloc[:500])
    for frame in (sub, sub.sample(frac=1, random_state=1), sub.iloc[:3].assign(task="unseen-x")):
        X, rows, langs = cache.get(frame)
        rX, rrows, rlangs = featurize_components(normalize_observations(frame))
        np.testing.assert_allclose(X.to_numpy(), rX.to_numpy(), rtol=1e-4, atol=1e-6)   # float32, batch order
        assert (rows == rrows).all() and (langs == rlangs).all()


def _rr(protocol, results):
    rr = E.RunResult()
    rr.protocols[protocol.name] = {"title": protocol.title, "description": "", "grouping": "", "goals": protocol.goals,
                                   "peers": {}, "n_folds": len(protocol.folds), "n_test_rows": 0}
    rr.results[protocol.name] = results
    return rr


def _v(x):
    return {"value": x, "lo": None, "hi": None}


def test_headline_judges_the_new_regimes(obs):
    seen = P.seen(obs)
    rr = _rr(seen, {E.OURS: {"all files": {"rmse": _v(6.0), "mae": _v(4.0)}},
                    E.LITMUS: {"all files": {"rmse": _v(10.0), "mae": _v(7.0)}}})
    (h,) = [h for h in E.headline(rr) if h["protocol"] == "seen"]
    assert h["measured"] == pytest.approx(0.6) and h["status"] == "met"
    rr.results["seen"][E.OURS]["all files"]["rmse"] = _v(7.5)
    (h,) = [h for h in E.headline(rr) if h["protocol"] == "seen"]
    assert h["measured"] == pytest.approx(0.75) and h["status"] == "not met"

    ud = P.unseen_dataset(obs)
    names = [t.name for t in ud.tables]
    assert len(names) == 9
    res = {E.OURS: {n: {"pl": _v(5.0 if i < 7 else 30.0), "ndcg3": _v(0.5)} for i, n in enumerate(names)}}
    for k in B.DISTANCE_KINDS:
        res[f"closest {k}"] = {n: {"pl": _v(10.0 if k == "genetic" else 40.0)} for n in names}
    head = {h["metric"]: h for h in E.headline(_rr(ud, res)) if h["table"] == "9 matrices"}
    assert head["matrices with PL below the best distance rule"]["measured"] == 7
    assert head["matrices with PL below the best distance rule"]["status"] == "met"
    assert head["mean PL"]["measured"] == pytest.approx((7 * 5 + 2 * 30) / 9) and head["mean PL"]["status"] == "met"
    assert head["mean NDCG@3"]["status"] == "met"

    uf = P.unseen_family(obs)
    res = {E.OURS: {"mt5 single-source": {"pl": _v(9.0)}, "xlm-r single-source": {"pl": _v(9.0)}}}
    for r in B.SINGLE_RULES:
        res[r] = {"mt5 single-source": {"pl": _v(10.0)}, "xlm-r single-source": {"pl": _v(8.0 if r == "always English"
                                                                                      else 12.0)}}
    fam = {h["table"]: h for h in E.headline(_rr(uf, res)) if h["protocol"] == "unseen_family"}
    assert fam["mt5 single-source"]["status"] == "met"
    assert fam["xlm-r single-source"]["status"] == "not met" and "always English" in fam["xlm-r single-source"]["note"]


def test_readme_table_is_rewritten_between_markers(tmp_path):
    acc = {"generated": "now", "elapsed_s": 600, "headline": [
        {"regime": "seen languages, new configurations", "protocol": "seen", "table": "all files",
         "metric": "RMSE / LITMUS-style RMSE", "goal": "<= 0.7", "measured": 0.5, "method": E.OURS, "status": "met",
         "note": ""},
        *[{"regime": "unseen languages", "protocol": "langrankplus", "table": t, "metric": "pl", "goal": "< 3",
           "measured": m, "method": E.OURS, "status": s, "note": ""}
          for t, m, s in (("xnli_mt5", 1.0, "met"), ("xquad_mt5", 9.0, "not met"))]]}
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n## Accuracy\n\nintro\n\n## Next\n")
    E.write_readme(acc, readme)
    text = readme.read_text()
    assert text.index("## Accuracy") < text.index(E.README_START) < text.index(E.README_END) < text.index("## Next")
    assert "| seen languages, new configurations | seen · all files | RMSE / LITMUS-style RMSE | <= 0.7 | 0.500 | yes |" in text
    assert "| 1.000 · 9.00 | 1 of 2 |" in text
    acc["headline"][0]["measured"] = 0.9
    acc["headline"][0]["status"] = "not met"
    E.write_readme(acc, readme)
    text2 = readme.read_text()
    assert text2.count(E.README_START) == 1 and "| 0.900 | no |" in text2 and "intro" in text2


def test_best_source_sets_cover_and_stay_small():
    rng = np.random.default_rng(0)
    n_groups, n_cand = 200, 8
    d = pd.DataFrame({"dataset_file": "f", "model": "m", "variant": "", "task": "t",
                      "target": np.repeat([f"t{i}" for i in range(n_groups)], n_cand),
                      "score": rng.uniform(20, 80, n_groups * n_cand)})
    fold_of = np.repeat(np.arange(n_groups) % 4, n_cand)
    folds = [P.Fold(f"f{i}", fold_of != i, fold_of == i, (f"g{i}",)) for i in range(4)]
    proto = P.Protocol("synthetic", "", "", d, folds, [P.Table("all", lambda x: np.ones(len(x), bool))])
    exact = E.best_source_sets(proto, d["score"].to_numpy())["all"]
    assert exact["bestset90_coverage"]["value"] == 1.0 and exact["bestset90_size"]["value"] == 1.0
    noisy = E.best_source_sets(proto, d["score"].to_numpy() + rng.normal(0, 8, len(d)))["all"]
    assert 0.85 <= noisy["bestset90_coverage"]["value"] <= 0.97
    assert 1.0 < noisy["bestset90_size"]["value"] < n_cand and noisy["bestset90_candidates"] == n_cand
    useless = E.best_source_sets(proto, rng.normal(0, 1, len(d)))["all"]          # a random ranking needs big sets
    assert useless["bestset90_size"]["value"] > noisy["bestset90_size"]["value"]


def test_parallel_run_equals_the_sequential_run(xnli, monkeypatch):
    """`run_all` with 2 forked workers gives exactly the numbers of the sequential run (the product model, the neural
    model, the learned baselines and the rules), and times every method per protocol."""
    from predictor.neural import neural_fit_predict
    methods = [B.Method(E.OURS, B.xlt_model(), "regression"),
               B.Method(E.NEURAL, neural_fit_predict(max_rows=300), "regression"),
               B.Method("LITMUS regressor", B.litmus_regressor, "regression"),
               B.Method("LangRank LambdaRank", B.langrank_lambdarank, "ranking"),
               B.Method("closest geographic", B.closest_by("geographic"), "ranking"),
               B.Method("always English", B.always_english, "ranking")]
    runs = {}
    for jobs in (1, 2):
        monkeypatch.setattr(B, "FEATURES", B.FeatureCache())      # each run starts from empty caches
        monkeypatch.setattr(B, "COMPONENTS", B.ComponentCache())
        logged = []
        runs[jobs] = E.run_all(xnli, methods, ["langrankplus", "unseen_dataset"], jobs=jobs, log=logged.append)
        assert any("fits on" in line for line in logged)
    seq, par = runs[1], runs[2]
    assert list(par.results["langrankplus"]) == [m.name for m in methods]      # report order = method order
    assert json.dumps(par.results, sort_keys=True) == json.dumps(seq.results, sort_keys=True)
    ours = par.results["langrankplus"][E.OURS]["xnli_mt5"]
    assert ours["n_rank_groups"] == 15 and ours["rmse"]["value"] > 0
    for run in (seq, par):
        d = run.timing_detail[E.OURS]
        assert d["langrankplus"]["fits"] == 5 and d["unseen_dataset"]["fits"] == 2     # 5 language groups, 2 matrices
        assert d["langrankplus"]["fit_s"] > 0 and d["langrankplus"]["score_s"] >= 0
        assert run.timings[E.OURS] == pytest.approx(sum(v["fit_s"] + v["score_s"] for v in d.values()), abs=0.05)
    assert par.jobs == 2 and seq.jobs == 1


def test_a_partial_run_keeps_the_protocols_it_does_not_run(xnli):
    """`xlt evaluate --protocol X` re-runs X and keeps every other protocol of the previous report (results and
    description): a re-run of one protocol once left a report of that protocol alone."""
    methods = [B.Method("always English", B.always_english, "ranking")]
    first = E.run_all(xnli, methods, ["langrankplus", "unseen_dataset"], jobs=1, log=lambda *_: None)
    again = E.run_all(xnli, methods, ["unseen_dataset"], jobs=1, log=lambda *_: None, previous=first)
    assert set(again.protocols) == {"langrankplus", "unseen_dataset"}
    assert json.dumps(again.results["langrankplus"], sort_keys=True) == \
        json.dumps(first.results["langrankplus"], sort_keys=True)
    assert json.dumps(again.results["unseen_dataset"], sort_keys=True) == \
        json.dumps(first.results["unseen_dataset"], sort_keys=True)


def test_feature_cache_filled_in_advance_gives_the_same_features(obs):
    """The evaluation fills the feature caches ahead of the fits (`fill_only`, keys computed once): a later lookup
    returns what a lookup that featurizes the rows itself returns, row for row (index kept)."""
    sub = obs[obs["dataset"].isin(["langrankplus", "sumeval2022"])].sample(400, random_state=3)
    direct = B.FeatureCache().get(sub)
    filled = B.FeatureCache()
    assert filled.get(sub, keys=B.FeatureCache.row_keys(sub), fill_only=True) is None
    again = filled.get(sub.sample(frac=1, random_state=4))
    assert again.index.tolist() != sub.index.tolist()
    again = again.loc[sub.index]
    num = direct.select_dtypes("number").columns
    np.testing.assert_array_equal(again[num].to_numpy(float), direct[num].to_numpy(float))
    comp = B.ComponentCache()
    assert comp.get(sub, fill_only=True) is None
    X, rows, langs = comp.get(sub)
    rX, rrows, rlangs = B.ComponentCache().get(sub)
    np.testing.assert_array_equal(X.to_numpy(float), rX.to_numpy(float))
    assert (rows == rrows).all() and (langs == rlangs).all() and rows.max() == len(sub) - 1
