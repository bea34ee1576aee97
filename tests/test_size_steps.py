"""A model size the record holds no result of (XLM-R XL, XXL) is answered from its family's nearest held size plus a
scaling step fitted on the record's own within-family steps (predictor.size_steps)."""
import math

import numpy as np
import pandas as pd
import pytest

from features import registry
from predictor.size_steps import SizeSteps


def _ladder(rows):
    """Observation-like rows: (model, target, score) of one task, training mix and k."""
    return pd.DataFrame([{"model": m, "task": "xnli", "train_config": "eng:392702", "target": t, "k": 0,
                          "metric": "accuracy", "score": s} for m, t, s in rows])


def _logit_share(score, chance=100 / 3):
    p = (score - chance) / (100 - chance)
    return math.log(p / (1 - p))


def test_step_is_the_logit_of_the_share_above_chance_per_doubling_of_billion_parameter_steps():
    # mt5-large (1.2B) -> mt5-xl (3.7B): 1.62 doublings; XNLI, chance 1/3
    # mt5-small -> mt5-base (below a billion) moves far more and must not set the step
    obs = _ladder([("mt5-large", "deu", 60), ("mt5-xl", "deu", 70), ("mt5-large", "fra", 80), ("mt5-xl", "fra", 85),
                   ("mt5-small", "deu", 20), ("mt5-base", "deu", 60)])
    obs["task_type"] = "classification"
    ss = SizeSteps().fit(obs)
    d = math.log2(3.7e9 / 1.2e9)
    steps = [(_logit_share(70) - _logit_share(60)) / d, (_logit_share(85) - _logit_share(80)) / d]
    assert ss.step_ == pytest.approx(np.median(steps))
    # the registry's other sizes of a held family get an anchor: the largest held size not larger, else the smallest
    assert ss.anchors_["mt5-xxl"] == ("mt5-xl", pytest.approx(math.log2(13e9 / 3.7e9)))
    assert not {"mt5-small", "mt5-base", "mt5-large"} & set(ss.anchors_), "a held size needs no anchor"
    assert "xlm-r-xl" not in ss.anchors_, "a family the rows do not hold has nothing to anchor on"
    # round trip through the artifact's JSON
    again = SizeSteps.from_dict(ss.to_dict())
    assert again.step_ == ss.step_ and again.anchors_ == ss.anchors_
    # an artifact of the first (headroom-share) form: its sizes score as their anchor, no step
    assert SizeSteps.from_dict({"rate": 0.075, "anchors": {"xlm-r-xl": ["xlm-r-large", 2.67]}}).step_ == 0.0


def test_steps_move_scores_within_bounds_and_keep_their_order():
    ss = SizeSteps()
    ss.step_ = 0.3
    chance = 100 / 3
    s = np.array([40.0, 50.0, 70.0, 99.0, np.nan])
    up = ss.apply(s, np.full(5, 2.0), floor=chance)
    p = 1 / (1 + np.exp(-(np.array([_logit_share(x) for x in s[:4]]) + 0.6)))
    assert up[:4] == pytest.approx(chance + (100 - chance) * p) and np.isnan(up[4])
    down = ss.apply(up, np.full(5, -2.0), floor=chance)
    assert down[:4] == pytest.approx(s[:4]), "a step down is the inverse of a step up"
    assert (np.diff(up[:4]) > 0).all(), "monotone: a better anchor score stays better"
    # a language the model does not know (at chance) gains nothing; 100 stays 100; near chance the distance above
    # it grows at most by the odds factor e^(step·d) (0.5 -> < 1.66 points), not by a share of a 66-point headroom
    edge = ss.apply(np.array([chance, 100.0, chance + 0.5]), np.full(3, 4.0), floor=chance)
    assert edge[0] == chance and edge[1] == 100.0 and 0.5 < edge[2] - chance < 0.5 * math.exp(1.2)
    # the gain is largest mid-scale, small near either end (the record's mT5 ladder: reports/size_steps.md)
    gains = ss.apply(np.array([38.0, 66.0, 95.0]), np.full(3, 2.0), floor=chance) - np.array([38.0, 66.0, 95.0])
    assert gains[1] > gains[0] and gains[1] > gains[2]
    assert ss.apply(np.array([40.0]), np.array([-5.0]), floor=chance)[0] >= chance, "never below the chance floor"
    # no chance level given: the scale starts at 0 (NER, QA F1)
    assert ss.apply(np.array([50.0]), np.array([1.0]))[0] == pytest.approx(100 / (1 + math.exp(-0.3)))
    models, doublings = ss.anchored(np.array(["xlm-r-xl"], dtype=object))
    assert doublings is None and models[0] == "xlm-r-xl", "no anchors fitted: every model as asked"


def test_the_shipped_model_answers_xlm_r_xl_from_large_plus_the_records_step(predictor):
    steps = predictor.model.size_steps_
    assert steps.anchors_["xlm-r-xl"][0] == "xlm-r-large" and steps.anchors_["xlm-r-xxl"][0] == "xlm-r-large"
    assert 0.03 < steps.step_ < 0.3, "fitted on mT5 large -> XL -> XXL"
    assert {s["from"] for s in steps.steps_} >= {"mt5-large", "mt5-xl", "xlm-r-base"}
    targets = ["deu", "swh", "hin", "tha", "arb", "tur", "vie", "cmn"]
    for task in ("xnli", "tydiqa", "wikiann"):
        q = pd.DataFrame({"model": "xlm-r-large", "task": task, "target": targets, "source": "en"})
        large = predictor.predict(q)["predicted_score"].to_numpy()
        got = {}
        for size in ("xlm-r-xl", "xlm-r-xxl"):
            got[size] = predictor.predict(q.assign(model=size))["predicted_score"].to_numpy()
            chance = 100 / 3 if task == "xnli" else 0.0
            p = np.clip((large - chance) / (100 - chance), 1e-12, 1 - 1e-12)   # (0 stays 0: Thai WikiANN)
            want = chance + (100 - chance) / (1 + np.exp(-(np.log(p / (1 - p)) + steps.step_ * steps.anchors_[size][1])))
            assert got[size] == pytest.approx(want, abs=1e-3)
        inside = (large > chance + 1e-6) & (large < 100)   # Thai WikiANN is 0.0 F1 for XLM-R large: stays 0
        assert (got["xlm-r-xxl"][inside] > got["xlm-r-xl"][inside]).all() and (got["xlm-r-xl"][inside] > large[inside]).all()
        assert (got["xlm-r-xl"][~inside] == large[~inside]).all()
        # below the +9 (XNLI) to +18 (TyDiQA) points the trees alone gave XL
        assert (got["xlm-r-xl"] - large).mean() < 9
    # a language outside CC-100 near chance on XNLI stays near it: more parameters do not teach XLM-R Wolof (the
    # headroom form took it from 33.3 to 52.2 at XXL); from large to XXL it gains less than its own distance from
    # chance (model 20261207-213147: 35.5 → 36.6)
    q = pd.DataFrame({"model": ["xlm-r-large", "xlm-r-xl", "xlm-r-xxl"], "task": "xnli", "target": "wol", "source": "en"})
    wol = predictor.predict(q)["predicted_score"].to_numpy()
    assert wol[0] < 36 and wol[2] - wol[0] < max(wol[0] - 100 / 3, 0.1)
    # rankings: the same order as the anchor's (the step is monotone), every row moved up
    big = predictor.rank({"model": "xlm-r-xl", "task": "wikiann", "target": "sw"}, top=15)
    base = predictor.rank({"model": "xlm-r-large", "task": "wikiann", "target": "sw"}, top=15)
    assert list(big.source) == list(base.source) and (big.predicted_score.to_numpy()
                                                       > base.predicted_score.to_numpy()).all()


def test_explain_names_the_size_step_and_still_adds_up(predictor):
    q = {"model": "xlm-r-xl", "task": "xnli", "target": "sw", "source": "en"}
    e = predictor.explain(q)
    assert abs(e["base_value"] + sum(e["contributions"].values()) - e["prediction"]) < 1e-6
    assert e["contributions"]["size_step"] > 0
    assert e["feature_values"]["size_step"] == pytest.approx(math.log2(3.5e9 / 5.5e8))
    assert e["predicted_score"] == pytest.approx(predictor.explain({**q, "model": "xlm-r-large"})["predicted_score"]
                                                 + e["contributions"]["size_step"], abs=1e-6)
    held = predictor.explain({**q, "model": "xlm-r-large"})
    assert "size_step" not in held["contributions"], "a size the record holds needs no step"
    assert registry.resolve_model("xlm-r-xl").n_params == 3.5e9


def test_labels_say_the_size_was_scored_from_its_anchor():
    from api.labels import describe, value_text
    q = {"model": "xlm-r-xl"}
    large = math.log10(5.5e8)
    text = value_text("model_log_params", large, q)
    assert text.startswith("550M parameters, the nearest size with published results") and "3.5B" in text
    assert describe("model_log_params", large, q).startswith("model size = 550M parameters")
    # a size the record holds reads as before
    assert describe("model_log_params", large, {"model": "xlm-r-large"}) == "model = XLM-R-large, 550M parameters"
    assert value_text("size_step", math.log2(3.5e9 / 5.5e8), q) == "2.67 doublings (×6.4 parameters)"


def test_a_bigger_size_of_the_shipped_family_is_not_answered_lower(predictor):
    """Published results of consecutive sizes rarely go down (2.6% of the record's pairs by more than a point): from
    English, on the tasks whose sizes share one publication's setup (the mT5 paper's tables, XTREME-style XNLI /
    PAWS-X / QA / WikiANN), every size of mT5 and XLM-R answers at least its smaller sibling minus a point. (UD POS is
    left out: XLM-R base's and large's records come from different setups that disagree per target,
    reports/model_experiments.md, twelfth session; so is WikiANN Yoruba, which the mT5 paper itself publishes at
    58.8 / 56.5 / 47.2 for small / base / large, and xlt answers as published.)"""
    ladders = {"mt5": ["mt5-small", "mt5-base", "mt5-large", "mt5-xl", "mt5-xxl"],
               "xlm-r": ["xlm-r-base", "xlm-r-large", "xlm-r-xl", "xlm-r-xxl"]}
    targets = {"xnli": ["de", "sw", "hi", "ur"], "pawsx": ["de", "ja"], "xquad": ["hi", "ar", "th"],
               "tydiqa": ["sw", "fi", "bn"], "wikiann": ["de", "ta", "qu", "xh"]}
    rows = [dict(model=m, task=t, source="en", target=g) for t, gs in targets.items() for g in gs
            for ladder in ladders.values() for m in ladder]
    s = predictor.predict(pd.DataFrame(rows))["predicted_score"].to_numpy()
    i = 0
    for t, gs in targets.items():
        for g in gs:
            for family, ladder in ladders.items():
                v = s[i:i + len(ladder)]
                i += len(ladder)
                assert np.all(np.diff(np.maximum.accumulate(v)) >= 0)     # (the running best, for the message)
                assert np.all(v[1:] >= np.maximum.accumulate(v)[:-1] - 1.0), (t, g, family, v.round(1).tolist())
