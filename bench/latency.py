"""Request latency on a real `xlt serve`, every figure measured side by side in one run (sequential client).

Goals (issue 9): a *fresh* /rank over 100 candidates — a question not asked before, reasons for the top 5 — p50
≤ 5 ms and ≤ 6 × /health p50 (what the shared `latency` check asks: a distinct model, task and target per question,
targets reused across models and tasks); issue 5: the repeated /rank ≤ 10 ms and ≤ 5 × /health, /explain p50
≤ 30 ms, a PNG plot ≤ 300 ms. Fresh /rank is also measured with a target this server has never seen (every
per-language cache cold) and with only `source_size` new (same target, model and task).

`python bench/latency.py` prints the table; `python bench/latency.py --rank` only the fresh-rank figures (3 runs,
best reported too, with the load average: the box is shared).
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import http, print_rows, rss_mb, server  # noqa: E402

CANDIDATES = ["en", "de", "fr", "es", "ru", "zh", "ar", "hi", "ja", "ko", "tr", "fi", "hu", "id", "vi", "th", "el",
              "bg", "ur", "fa", "he", "it", "pt", "nl", "sv", "da", "no", "pl", "cs", "sk", "sl", "hr", "sr", "uk",
              "be", "lt", "lv", "et", "ro", "ca", "eu", "gl", "cy", "ga", "is", "mt", "sq", "mk", "hy", "ka", "az",
              "kk", "uz", "ky", "tg", "mn", "bn", "pa", "gu", "mr", "ta", "te", "kn", "ml", "si", "ne", "my", "km",
              "lo", "ms", "tl", "jv", "su", "yo", "ig", "ha", "am", "so", "om", "xh", "zu", "af", "eo", "la", "ps",
              "ku", "sd", "ug", "br", "fy", "gd", "or", "as", "mg", "ti", "ln", "wo", "qu", "gn", "yi"]
RANK = {"model": "xlm-r-large", "task": "xnli", "target": "sw", "candidates": CANDIDATES}
TASKS = ["xnli", "wikiann", "udpos", "tydiqa", "pawsx"]


def fresh_question(i: int) -> dict:
    """Question i < 1000, as the shared latency check asks it: a distinct (model, task, target) for each i, 100
    candidates, the top 5 with their reasons (a target comes back under 10 model × task pairs)."""
    return {"model": ["xlm-r-large", "mt5-base"][i % 2], "task": TASKS[(i // 2) % len(TASKS)],
            "target": CANDIDATES[(i // 10) % len(CANDIDATES)], "candidates": CANDIDATES, "top": 5}


def new_target_question(i: int) -> dict:
    """Question i < 40 with a target no other question here has (fresh questions use the first 20 candidates as
    targets, the warm-up the 91st): per-language caches cold."""
    return {"model": ["mt5-base", "xlm-r-large"][i % 2], "task": TASKS[i % len(TASKS)],
            "target": CANDIDATES[20 + i], "candidates": CANDIDATES, "top": 5}
Q = {"model": "xlm-r-large", "task": "xnli", "target": "sw", "source": "en"}
QS = "model=xlm-r-large&task=xnli&target=sw&source=en"


def _p50(fn, n: int) -> float:
    ts = []
    for i in range(n):
        t0 = time.perf_counter()
        status, body = fn(i)
        ts.append((time.perf_counter() - t0) * 1000)
        if status != 200:
            raise RuntimeError(f"status {status}: {body[:200]!r}")
    return statistics.median(ts)


def measure(n: int = 100, n_slow: int = 30) -> dict:
    with server() as (b, pid, _):
        for i in range(5):  # warm-up: first calls load SHAP/matplotlib paths
            http("POST", b + "/rank", {**RANK, "source_size": 10 + i})
            http("GET", b + f"/plots/curve.png?{QS}&source_size={10 + i}")
        for i in range(10):  # warm-up questions not asked below
            http("POST", b + "/rank", fresh_question(900 + i))
        res = {}
        res["health"] = _p50(lambda i: http("GET", b + "/health"), n)
        res["rank100_fresh_question"] = _p50(lambda i: http("POST", b + "/rank", fresh_question(i)), 200)
        res["rank100_new_target"] = _p50(lambda i: http("POST", b + "/rank", new_target_question(i)), 40)
        res["rank100_cached"] = _p50(lambda i: http("POST", b + "/rank", RANK), n)
        res["health_again"] = _p50(lambda i: http("GET", b + "/health"), n)
        res["rank100_fresh"] = _p50(lambda i: http("POST", b + "/rank", {**RANK, "source_size": 1000 + i}), n_slow)
        res["rank100_fresh_no_reasons"] = _p50(
            lambda i: http("POST", b + "/rank", {**RANK, "source_size": 5000 + i, "reasons": 0}), n_slow)
        res["predict_fresh"] = _p50(lambda i: http("POST", b + "/predict", {**Q, "source_size": 1000 + i}), n_slow)
        res["explain_cached"] = _p50(lambda i: http("POST", b + "/explain", Q), n)
        res["explain_fresh"] = _p50(lambda i: http("POST", b + "/explain", {**Q, "source_size": 1000 + i}), n_slow)
        res["curve_png"] = _p50(lambda i: http("GET", b + f"/plots/curve.png?{QS}&source_size={2000 + i}"), n_slow)
        res["waterfall_png"] = _p50(lambda i: http("GET", b + f"/explain/plot.png?{QS}&source_size={2000 + i}"),
                                    n_slow)
        res["rss_mb"] = rss_mb(pid)
    res["health_p50"] = min(res["health"], res["health_again"])
    return res


def rows(r: dict) -> list[tuple[str, str, bool | None, str]]:
    h = r["health_p50"]
    f = r["rank100_fresh_question"]
    return [
        ("/health p50 (yardstick)", f"{h:.2f} ms", None, "same run, sequential client on loopback"),
        ("/rank fresh question (100 candidates, reasons for the top 5) p50 ≤ 5 ms and ≤ 6 × /health",
         f"{f:.1f} ms = {f / h:.1f} × /health", f <= 5 and f <= 6 * h,
         f"a distinct model, task and target per question, as the shared latency check asks; a target this "
         f"server never saw: {r['rank100_new_target']:.1f} ms"),
        ("/rank (100 candidates, repeated request) p50 ≤ 10 ms and ≤ 5 × /health",
         f"{r['rank100_cached']:.2f} ms = {r['rank100_cached'] / h:.1f} × /health",
         r["rank100_cached"] <= 10 and r["rank100_cached"] <= 5 * h, "answer cache hit (what the acceptance check does)"),
        ("/rank (100 candidates, fresh request each time) p50 ≤ 10 ms and ≤ 5 × /health",
         f"{r['rank100_fresh']:.1f} ms = {r['rank100_fresh'] / h:.0f} × /health",
         r["rank100_fresh"] <= 10 and r["rank100_fresh"] <= 5 * h,
         f"model runs: features + LightGBM for 100 rows + TreeSHAP reasons for the top sources; with `reasons: 0` "
         f"{r['rank100_fresh_no_reasons']:.1f} ms"),
        ("/predict (fresh) p50", f"{r['predict_fresh']:.1f} ms", None, "score + interval + two yardstick predictions"),
        ("/explain p50 ≤ 30 ms", f"fresh {r['explain_fresh']:.1f} ms; repeated {r['explain_cached']:.2f} ms",
         r["explain_fresh"] <= 30, "fresh = TreeSHAP on one row"),
        ("PNG plot ≤ 300 ms", f"curve {r['curve_png']:.0f} ms; SHAP waterfall {r['waterfall_png']:.0f} ms",
         max(r["curve_png"], r["waterfall_png"]) <= 300, "fresh query each time (matplotlib Agg render)"),
    ]


def measure_rank(n: int = 200) -> dict:
    """Only the fresh-rank figures and their /health yardstick (the shared check's protocol)."""
    with server() as (b, pid, _):
        for i in range(10):
            http("POST", b + "/rank", fresh_question(900 + i))
        h = _p50(lambda i: http("GET", b + "/health"), 150)
        fresh = _p50(lambda i: http("POST", b + "/rank", fresh_question(i)), n)
        cold = _p50(lambda i: http("POST", b + "/rank", new_target_question(i)), 40)
        h = min(h, _p50(lambda i: http("GET", b + "/health"), 150))
    return {"health": h, "fresh": fresh, "new_target": cold, "load": os.getloadavg()[0]}


def main() -> int:
    if "--rank" in sys.argv:
        runs = []
        for _ in range(3):
            r = measure_rank()
            runs.append(r)
            print(f"fresh /rank(100) p50 {r['fresh']:.2f} ms = {r['fresh'] / r['health']:.1f} × /health "
                  f"({r['health']:.2f} ms); new target {r['new_target']:.2f} ms; load average {r['load']:.1f}",
                  flush=True)
        best = min(runs, key=lambda r: r["fresh"])
        print(f"best of 3: fresh /rank(100) p50 {best['fresh']:.2f} ms, ratio {best['fresh'] / best['health']:.1f} "
              f"(goals: <= 5 ms and <= 6 x /health)")
        return 0
    r = measure()
    print_rows(rows(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
