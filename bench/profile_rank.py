"""Where a fresh /rank over 100 candidates spends its time, in-process (same run as the latency figures), so a missed
latency goal comes with its measured cause.

Two views: the *direct* split times the facade's big collaborators around their real calls (thread CPU, no profiler:
`TransferRegressor.score_sources`, `TreeShap.relative`, `probability_best`, `top_reasons_rows`), so its shares are the
ones a request pays; the cProfile split names finer pieces (static features, evidence, LightGBM) but charges its
per-call overhead to code made of many small calls, so read its milliseconds as relative."""
from __future__ import annotations

import cProfile
import os
from collections import defaultdict
import pstats
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# (label, (file suffix, function name)) of the pieces worth naming (disjoint: none calls another)
PIECES = [
    # `_explain8` is the tabulated TreeSHAP's work under both entry points (`__call__`, and `relative`, which a
    # ranking's reasons use): naming `__call__` alone left the reasons' SHAP in "everything else"
    ("TreeSHAP reasons (tabulated numpy TreeSHAP, top 5 rows)", ("predictor/treeshap.py", "_explain8")),
    ("TreeSHAP reasons (LightGBM pred_contrib fallback)", ("predictor/model.py", "contributions_matrix")),
    ("scores (LightGBM predict for 100 rows, floors)", ("predictor/model.py", "_scores")),
    ("static features (typology, corpora)", ("features/featurize.py", "featurize_one_context")),
    ("record evidence", ("features/evidence.py", "one_target_matrix")),
    ("P(best)", ("predictor/intervals.py", "probability_best")),
    ("SHAP → reasons in words", ("predictor/explain.py", "top_reasons_rows")),
]


def _pieces(n: int, fn) -> tuple[float, dict]:
    """Thread-CPU cProfile of n calls of fn(i): (ms per call, {label: {ms_per_call, share}}). CPU time, not wall
    time, so a shared box's other processes do not land in whichever function was running when preempted."""
    prof = cProfile.Profile(time.thread_time)
    prof.enable()
    for i in range(n):
        fn(i)
    prof.disable()
    stats = pstats.Stats(prof).stats
    base = next((v[3] for (f, _, name), v in stats.items() if name == "rank_answer"), None) or sum(
        v[2] for v in stats.values())
    pieces = {}
    for label, (suffix, name) in PIECES:
        cum = sum(v[3] for (f, _, fn_name), v in stats.items() if fn_name == name and f.endswith(suffix))
        pieces[label] = {"ms_per_call": cum / n * 1000, "share": cum / base}
    named = sum(v["ms_per_call"] for v in pieces.values())
    pieces["everything else (validation, candidate resolution, answer shaping)"] = {
        "ms_per_call": max(base / n * 1000 - named, 0.0), "share": max(1 - named / (base / n * 1000), 0.0)}
    return base / n * 1000, pieces


def _direct(p, ask, start: int, n: int) -> tuple[float, dict]:
    """Thread-CPU p50 of n fresh asks and the mean thread-CPU per call of the facade's collaborators, timed by
    wrappers around the real calls (restored afterwards): (p50 ms, {label: {ms_per_call, share}})."""
    import predictor.facade as facade

    acc: dict[str, float] = defaultdict(float)

    def timed(label, fn):
        def wrapper(*a, **kw):
            c0 = time.thread_time()
            try:
                return fn(*a, **kw)
            finally:
                acc[label] += time.thread_time() - c0
        return wrapper

    shap = p.treeshap()
    objects = [(p.model, "score_sources", "features + evidence + LightGBM for 100 rows (score_sources)")]
    if shap is not None:
        objects.append((shap, "relative", "TreeSHAP of the top 5 rows (TreeShap.relative)"))
    modules = [("probability_best", "P(best) (probability_best)"), ("top_reasons_rows", "SHAP → reasons in words")]
    for obj, name, label in objects:
        setattr(obj, name, timed(label, getattr(obj, name)))
    saved = {name: getattr(facade, name) for name, _ in modules}
    for name, label in modules:
        setattr(facade, name, timed(label, saved[name]))
    cpu = []
    try:
        for i in range(n):
            c0 = time.thread_time()
            ask(start + i)
            cpu.append(time.thread_time() - c0)
    finally:
        for obj, name, _ in objects:
            delattr(obj, name)  # the instance attribute shadowed the class's method
        for name, fn in saved.items():
            setattr(facade, name, fn)
    total = sum(cpu)
    pieces = {label: {"ms_per_call": v / n * 1000, "share": v / total} for label, v in acc.items()}
    rest = total - sum(acc.values())
    pieces["the facade's own work (validation, ordering, intervals, answer shaping)"] = {
        "ms_per_call": max(rest, 0.0) / n * 1000, "share": max(rest, 0.0) / total}
    return statistics.median(cpu) * 1000, pieces


def measure(n: int = 40) -> dict:
    """In-process fresh 100-candidate ranks, asked as the shared latency check asks them (a distinct model, task and
    target per question, top 5 with reasons), timed as wall and thread-CPU p50, split directly, then profiled."""
    from api.answers import rank_answer
    from bench.latency import fresh_question
    from predictor import TransferPredictor

    p = TransferPredictor.load()
    p.warm_up()  # as the server does before it accepts connections

    def ask(i: int) -> dict:
        q = fresh_question(i)
        return rank_answer(p, {k: v for k, v in q.items() if k not in ("candidates", "top")}, q["candidates"],
                           q["top"])

    for i in range(10):
        ask(900 + i)
    wall, cpu = [], []
    for i in range(200):
        t0, c0 = time.perf_counter(), time.thread_time()
        ask(i)
        cpu.append((time.thread_time() - c0) * 1000)
        wall.append((time.perf_counter() - t0) * 1000)
    direct_ms, direct = _direct(p, ask, 200, 200)
    profiled, pieces = _pieces(n, lambda i: ask(400 + i))
    return {"rank_ms_in_process": statistics.median(wall), "rank_cpu_ms_in_process": statistics.median(cpu),
            "direct_cpu_ms": direct_ms, "direct": direct,
            "profiled_ms_per_call": profiled, "pieces": pieces, "load": os.getloadavg()[0]}


def _split(pieces: dict) -> str:
    return "; ".join(f"{k} {v['ms_per_call']:.2f} ms ({100 * v['share']:.0f}%)"
                     for k, v in sorted(pieces.items(), key=lambda kv: -kv[1]["ms_per_call"])
                     if v["ms_per_call"] >= 0.05)


def cause(r: dict) -> str:
    text = (f"In-process, a fresh 100-candidate rank takes {r['rank_ms_in_process']:.1f} ms p50 on this box "
            f"({r.get('rank_cpu_ms_in_process', float('nan')):.1f} ms of CPU; load average {r.get('load', 0):.1f})")
    if r.get("direct"):
        text += f". Its CPU, timed around the real calls: {_split(r['direct'])}"
    return text + (f". Finer, by cProfile ({r['profiled_ms_per_call']:.1f} ms/call with the profiler's overhead, "
                   f"which inflates code made of many small calls): {_split(r['pieces'])}.")


def rows(r: dict) -> list[tuple[str, str, bool | None, str]]:
    return [("profile: fresh /rank (100 candidates) in-process", f"{r['rank_ms_in_process']:.1f} ms", None,
             cause(r))]


def main() -> int:
    r = measure()
    print(cause(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
