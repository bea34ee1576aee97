"""Where a fresh /rank over 100 candidates spends its time (in-process cProfile of the facade, same run as the
latency figures), so a missed latency goal comes with its measured cause."""
from __future__ import annotations

import cProfile
import pstats
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# (label, (file suffix, function name)) of the pieces worth naming
PIECES = [
    ("TreeSHAP reasons (LightGBM pred_contrib)", ("predictor/facade.py", "_contrib")),
    ("query normalisation", ("features/queries.py", "normalize")),
    ("facade query checks (_one)", ("predictor/facade.py", "_one")),
    ("featurization", ("features/featurize.py", "featurize")),
    ("P(best) sampling", ("predictor/intervals.py", "probability_best")),
    ("LightGBM predict", ("predictor/facade.py", "_raw")),
    ("SHAP → reasons in words", ("predictor/explain.py", "top_reasons")),
]


def measure(n: int = 20) -> dict:
    from api.answers import rank_answer
    from bench.latency import RANK
    from predictor import TransferPredictor

    p = TransferPredictor.load()
    q = {k: v for k, v in RANK.items() if k != "candidates"}
    for i in range(3):
        rank_answer(p, {**q, "source_size": 10 + i}, RANK["candidates"])
    t0 = time.perf_counter()
    for i in range(n):
        rank_answer(p, {**q, "source_size": 100 + i}, RANK["candidates"])
    per_call = (time.perf_counter() - t0) / n * 1000
    prof = cProfile.Profile()
    prof.enable()
    for i in range(n):
        rank_answer(p, {**q, "source_size": 1000 + i}, RANK["candidates"])
    prof.disable()
    stats = pstats.Stats(prof).stats
    total = sum(v[2] for v in stats.values())  # not used for shares: cumulative time of rank_answer is the base
    base = next((v[3] for (f, _, fn), v in stats.items() if fn == "rank_answer"), None) or total
    pieces = {}
    for label, (suffix, fn) in PIECES:
        cum = sum(v[3] for (f, _, name), v in stats.items() if name == fn and f.endswith(suffix))
        pieces[label] = {"ms_per_call": cum / n * 1000, "share": cum / base}
    named = sum(v["ms_per_call"] for v in pieces.values())
    pieces["everything else (pandas frames, resolver, answer shaping)"] = {
        "ms_per_call": max(base / n * 1000 - named, 0.0), "share": max(1 - named / (base / n * 1000), 0.0)}
    return {"rank_ms_in_process": per_call, "profiled_ms_per_call": base / n * 1000, "pieces": pieces}


def cause(r: dict) -> str:
    parts = "; ".join(f"{k} {v['ms_per_call']:.1f} ms ({100 * v['share']:.0f}%)"
                      for k, v in sorted(r["pieces"].items(), key=lambda kv: -kv[1]["ms_per_call"])
                      if v["ms_per_call"] >= 0.05)
    return (f"In-process, a fresh 100-candidate rank takes {r['rank_ms_in_process']:.1f} ms on this box "
            f"(profiled: {r['profiled_ms_per_call']:.1f} ms/call): {parts}.")


def rows(r: dict) -> list[tuple[str, str, bool | None, str]]:
    return [("profile: fresh /rank (100 candidates) in-process", f"{r['rank_ms_in_process']:.1f} ms", None,
             cause(r))]


def main() -> int:
    r = measure()
    print(cause(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
