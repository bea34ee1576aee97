"""Metrics against hand-computed values and against the shared acceptance check's own NDCG@3 / ranking code."""
import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predictor import metrics as M

CHECK_LIB = Path("/work/shared/checks/lib/xltcheck.py")


def _xltcheck():
    if not CHECK_LIB.exists():
        pytest.skip("shared checks library not present on this machine")
    spec = importlib.util.spec_from_file_location("xltcheck", CHECK_LIB)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ndcg3_hand_computed():
    # truth ranks: c(30) > a(20) > b(10); prediction ranks b > c > a
    t = [20.0, 10.0, 30.0]
    p = [0.1, 0.9, 0.5]
    rel = {"c": 10, "a": 9, "b": 8}
    g = {k: 2 ** v - 1 for k, v in rel.items()}
    disc = [1 / math.log2(2), 1 / math.log2(3), 1 / math.log2(4)]
    dcg = g["b"] * disc[0] + g["c"] * disc[1] + g["a"] * disc[2]
    idcg = g["c"] * disc[0] + g["a"] * disc[1] + g["b"] * disc[2]
    assert M.ndcg3_langrank(t, p) == pytest.approx(dcg / idcg, rel=1e-12)
    assert M.ndcg3_langrank(t, [3, 2, 1]) < 1.0
    assert M.ndcg3_langrank(t, t) == pytest.approx(1.0)


def test_ndcg3_beyond_top10_has_zero_gain():
    t = np.arange(15, dtype=float)          # rows 0..4 are outside the true top-10
    p = -np.arange(15, dtype=float)         # predicted top-3 = rows 0,1,2 -> relevance 0
    assert M.ndcg3_langrank(t, p) == 0.0


def test_ndcg3_matches_shared_check_on_random_groups():
    x = _xltcheck()
    rng = np.random.default_rng(0)
    for n in [1, 2, 3, 5, 12, 40]:
        for _ in range(30):
            t = np.round(rng.uniform(0, 100, n), 0)   # rounding creates ties
            p = np.round(rng.normal(size=n), 1)
            assert M.ndcg3_langrank(t, p) == pytest.approx(x.ndcg3_langrank(t, p), abs=1e-12)


def test_per_group_ranking_matches_shared_ranking_metrics():
    x = _xltcheck()
    rng = np.random.default_rng(1)
    rows = []
    for g in range(60):
        n = int(rng.integers(1, 25))
        t = np.round(rng.uniform(5, 95, n))
        p = t + rng.normal(0, 15, n)
        rows += [dict(target=f"t{g}", score=a, pred=b) for a, b in zip(t, p)]
    df = pd.DataFrame(rows)
    ref = x.ranking_metrics(df)
    ours = M.per_group_ranking(df.target, df.score, df.pred)
    assert len(ours) == ref["n"]
    assert ours.pl.mean() == pytest.approx(ref["PL"], abs=1e-9)
    assert ours.regret.mean() == pytest.approx(ref["regret"], abs=1e-9)
    assert ours.top1.mean() == pytest.approx(ref["top1"], abs=1e-12)
    assert ours.ndcg3.mean() == pytest.approx(ref["ndcg3"], abs=1e-12)


def test_top1_regret_pl_spearman_hand_computed():
    groups = ["A"] * 3 + ["B"] * 3
    y = [50, 40, 30, 80, 60, 20]
    p = [1, 2, 3, 3, 2, 1]          # A: picks 30 (worst); B: picks 80 (best), order perfect
    r = M.per_group_ranking(groups, y, p).set_index("group")
    assert r.loc["A", "top1"] == 0 and r.loc["B", "top1"] == 1
    assert r.loc["A", "regret"] == 20 and r.loc["B", "regret"] == 0
    assert r.loc["A", "pl"] == pytest.approx(40.0)
    assert r.loc["A", "spearman"] == pytest.approx(-1.0) and r.loc["B", "spearman"] == pytest.approx(1.0)


def test_spearman_with_ties_equals_scipy():
    from scipy.stats import spearmanr
    y = [1, 2, 2, 3, 5, 5, 7]
    p = [0.3, 0.1, 0.2, 0.2, 0.9, 0.4, 0.4]
    r = M.per_group_ranking(["g"] * 7, y, p)
    assert r.spearman[0] == pytest.approx(spearmanr(y, p).statistic, abs=1e-12)


def test_singleton_groups_are_not_ranked():
    r = M.per_group_ranking(["a", "b", "b"], [1, 2, 3], [0, 0, 1])
    assert list(r.group) == ["b"]


def test_nan_prediction_is_an_error():
    with pytest.raises(ValueError, match="NaN"):
        M.per_group_ranking(["a", "a"], [1, 2], [np.nan, 1])


def test_rmse_mae_and_interval():
    groups = ["a", "a", "b", "b"]
    y = np.array([10.0, 20.0, 30.0, 40.0])
    p = np.array([12.0, 18.0, 30.0, 44.0])
    s = M.summarize(groups, y, p, ranking=False)
    assert s["rmse"]["value"] == pytest.approx(math.sqrt((4 + 4 + 0 + 16) / 4))
    assert s["mae"]["value"] == pytest.approx((2 + 2 + 0 + 4) / 4)
    # group a: sse 8 over 2 rows; group b: sse 16 -> bootstrap values lie between the pure-group values
    assert s["rmse"]["lo"] >= 2.0 - 1e-9 and s["rmse"]["hi"] <= math.sqrt(8) + 1e-9
    assert s["rmse"]["lo"] <= s["rmse"]["value"] <= s["rmse"]["hi"]


def test_bootstrap_is_deterministic_and_sane():
    rng = np.random.default_rng(3)
    v = rng.normal(5, 1, 400)
    a = M.mean_with_ci(v)
    b = M.mean_with_ci(v)
    assert a == b
    se = v.std(ddof=1) / math.sqrt(len(v))
    assert a["hi"] - a["lo"] == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_bootstrap_is_fast_for_thousands_of_groups():
    import time
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(5000), 20)
    y = rng.uniform(0, 100, len(g))
    p = y + rng.normal(0, 10, len(g))
    t0 = time.perf_counter()
    s = M.summarize(g, y, p)
    assert time.perf_counter() - t0 < 10
    assert s["n_rank_groups"] == 5000 and 0 < s["ndcg3"]["value"] < 1


def test_coverage():
    c = M.coverage(["a", "a", "b", "b"], [1, 5, 3, 10], [0, 0, 0, 0], [2, 2, 4, 4])
    assert c["value"] == pytest.approx(0.5)
