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
    best = test["source"].to_numpy()[np.argmax(gen)]
    assert best in {"eng", "nld"} or best in test["source"].tolist()                  # a Germanic source ranks first
    assert test.set_index("source").loc[test["source"].to_numpy()[np.argmax(gen)], "target"].iloc[0] == "deu"
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
    # LITMUS-style features should beat the constant on a held-out target
    assert np.abs(lit - te["score"]).mean() < np.abs(gm - te["score"]).mean() + 5


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
