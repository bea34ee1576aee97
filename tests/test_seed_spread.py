"""bench/seed_spread.py: the yardstick is the best single-distance rule per matrix (not the composite, not a learned
ranker), and the report marks each seed's PL that beats it and gives the spread."""
from bench.seed_spread import best_rules, render


def _acc():
    pl = lambda v: {"pl": {"value": v}}  # noqa: E731
    return {"generated": "2026-12-07 16:03:25", "results": {"unseen_dataset": {
        "closest genetic": {"xpos": pl(15.2), "tydiqa_mt5": pl(9.0)},
        "closest syntactic": {"xpos": pl(17.0), "tydiqa_mt5": pl(6.6)},
        "closest composite (mean of six distances)": {"xpos": pl(1.0), "tydiqa_mt5": pl(1.0)},
        "LangRank LambdaRank": {"xpos": pl(0.5)},
        "xlt (LightGBM regressor)": {"xpos": pl(18.8), "tydiqa_mt5": pl(8.8)}}}}


def test_best_rule_is_the_smallest_single_distance_pl_per_matrix():
    assert best_rules(_acc()) == {"xpos": ("closest genetic", 15.2), "tydiqa_mt5": ("closest syntactic", 6.6)}


def test_report_marks_wins_per_seed_and_the_spread():
    r = {"protocol": "unseen_dataset", "seeds": [0, 1], "accuracy_json": "2026-12-07 16:03:25",
         "rules": {t: list(v) for t, v in best_rules(_acc()).items()},
         "runs": [{"seed": 0, "tables": {"xpos": {"pl": 18.82, "ndcg3": 0.3}, "tydiqa_mt5": {"pl": 5.0, "ndcg3": 0.5}},
                   "below_rule": 1, "mean_pl": 11.91, "mean_ndcg3": 0.4},
                  {"seed": 1, "tables": {"xpos": {"pl": 13.94, "ndcg3": 0.3}, "tydiqa_mt5": {"pl": 9.89, "ndcg3": 0.4}},
                   "below_rule": 1, "mean_pl": 11.92, "mean_ndcg3": 0.35}]}
    text = render(r)
    assert "| xpos | genetic (15.20) | 18.82 | 13.94 ✓ | 4.88 |" in text
    assert "| tydiqa_mt5 | syntactic (6.60) | 5.00 ✓ | 9.89 | 4.89 |" in text
    assert "| 0 | 1 | 11.91 | 0.400 |" in text and "range 11.91–11.92" in text
