"""Batch throughput: 10^6 rows through `xlt batch` end to end, against raw LightGBM predict on the same feature
matrix (the served booster, all cores), plus the acceptance check's reference model (300 trees × 63 leaves on
30 features), all in one run. The file is the acceptance check's (seed 0) with 1,000 bad rows mixed in: they must
come back numbered, and every other row scored.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.common import cli_batch, print_rows  # noqa: E402

N = 1_000_000
N_BAD = 1_000
LANGS = ["en", "de", "fr", "es", "ru", "zh", "ar", "hi", "sw", "ja", "ko", "tr", "fi", "hu", "id", "vi", "th", "el",
         "bg", "ur"]


def make_queries(n: int = N, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    q = pd.DataFrame({"model": rng.choice(["xlm-r-large", "mt5-base"], n),
                      "task": rng.choice(["xnli", "udpos", "wikiann"], n),
                      "source": rng.choice(LANGS, n), "target": rng.choice(LANGS, n)})
    bad = np.sort(rng.choice(n, N_BAD, replace=False))
    q.loc[bad, "target"] = "notalanguage"
    return q, bad


def feature_matrix(q: pd.DataFrame, predictor):
    """(booster, the 10^6 × F matrix the batch scores for the good rows), built once per distinct query and
    broadcast back to the rows."""
    from bench.common import booster_and_matrix
    from features.queries import normalize

    codes = q.groupby(list(q.columns), sort=False).ngroup().to_numpy()
    distinct = q.drop_duplicates().reset_index(drop=True)  # first-appearance order, as ngroup(sort=False)
    norm, err = normalize(distinct)
    ok = (err == "").to_numpy()
    booster, Xd = booster_and_matrix(predictor, norm[ok])
    pos = np.full(len(distinct), -1)
    pos[ok] = np.arange(ok.sum())
    rows = ok[codes]
    return booster, Xd[pos[codes[rows]]]


def measure() -> dict:
    from predictor import TransferPredictor

    q, bad = make_queries()
    res = {"rows": N, "bad_rows": N_BAD}
    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d, "in.csv"), Path(d, "out.csv")
        q.to_csv(src, index=False)
        res["cli_s"], stats = cli_batch(src, dst)
        res["stats"] = stats
        out = pd.read_csv(dst, keep_default_na=False, usecols=["predicted_score", "error"], dtype=str)
        err_rows = np.flatnonzero(out["error"].to_numpy() != "")
        res["errors_in_output"] = len(err_rows)
        res["errors_at_bad_rows"] = bool(np.array_equal(err_rows, bad))
        res["bad_lines_numbered"] = bool(out["error"].iloc[bad[0]].startswith(f"line {bad[0] + 2}: "))
        res["good_rows_scored"] = int((out["predicted_score"] != "").sum())

    predictor = TransferPredictor.load()
    t0 = time.perf_counter()
    booster, X = feature_matrix(q, predictor)
    res["feature_matrix_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    booster.predict(X, num_threads=0)
    res["raw_lgbm_s"] = time.perf_counter() - t0
    res["raw_rows"] = len(X)
    res["n_trees"] = booster.num_trees()

    import lightgbm as lgb
    rng = np.random.default_rng(0)
    Xr = rng.normal(size=(20000, 30))
    ref = lgb.LGBMRegressor(n_estimators=300, num_leaves=63, verbose=-1).fit(Xr, Xr[:, 0] + rng.normal(size=20000))
    Xb = rng.normal(size=(N, 30))
    t0 = time.perf_counter()
    ref.predict(Xb)
    res["check_ref_s"] = time.perf_counter() - t0
    return res


def rows(r: dict) -> list[tuple[str, str, bool | None, str]]:
    e2e = r["rows"] / r["cli_s"]
    raw = r["raw_rows"] / r["raw_lgbm_s"]
    ok_rows = r["errors_at_bad_rows"] and r["bad_lines_numbered"] and r["good_rows_scored"] == r["rows"] - r["bad_rows"]
    return [
        ("batch end-to-end rows/s ≥ 0.5 × raw LightGBM predict (same feature matrix)",
         f"{e2e:,.0f} rows/s vs raw {raw:,.0f} rows/s → ratio {e2e / raw:.2f}", e2e / raw >= 0.5,
         f"`xlt batch` 10^6-row CSV {r['cli_s']:.1f} s (read, dedupe to {r['stats']['distinct_queries']:,} distinct "
         f"queries, score, write); raw = served booster(s) ({r['n_trees']} trees) on the {r['raw_rows']:,} × F matrix, "
         f"{r['raw_lgbm_s']:.1f} s"),
        ("1M-row `xlt batch` < 60 s and ≥ 0.5 × check's reference LightGBM (300 × 63 leaves, 30 features)",
         f"{r['cli_s']:.1f} s; ratio {r['check_ref_s'] / r['cli_s']:.2f}",
         r["cli_s"] < 60 and r["check_ref_s"] / r["cli_s"] >= 0.5, f"reference predict {r['check_ref_s']:.1f} s"),
        ("bad rows in a 10^6-row file carry line number + reason; good rows scored",
         f"{r['errors_in_output']:,} errors for {r['bad_rows']:,} bad rows; {r['good_rows_scored']:,} scored",
         ok_rows, "error rows are exactly the injected ones, 'line N: …' with the physical CSV line"),
    ]


def main() -> int:
    r = measure()
    print(json.dumps({k: v for k, v in r.items()}, default=str, indent=1))
    print_rows(rows(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
