"""The full load test: 50 concurrent clients for 60 s against a real `xlt serve` on loopback, every endpoint (/rank,
/predict, /explain, /batch, PNG plots, /plan, /health). Goals: zero errors (a 503 + Retry-After from a full work pool is
backpressure, honoured by the client and counted), p50/p99 per endpoint reported, /health p99 ≤ 50 ms under the load,
server RSS growth under 10%; throughput is reported against the same load with the plots removed.

RSS growth is measured from the end of a warm-up (the same mix, 15 s, not counted) to the end of the run, so it
shows what a long-running server keeps growing by, not the one-off cost of first touching SHAP, matplotlib, the
typology arrays and the answer cache's first entries. Peak RSS during the run is reported as well.
"""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import loadgen  # noqa: E402
from bench.common import print_rows, rss_mb, server  # noqa: E402

SECONDS, CLIENTS, WARMUP_S = 60, 50, 15


def _phase(seconds: float, clients: int, warmup_s: float, uncached: bool, mix: dict | None = None) -> dict:
    mix = mix or loadgen.FULL_MIX
    with server(uncached=uncached) as (b, pid, _):
        rss_start = rss_mb(pid)
        warm = loadgen.run(b, warmup_s, clients, seed=1, mix=mix)
        rss_warm = rss_mb(pid)
        peak = [rss_warm]
        stop = threading.Event()

        def sample():
            while not stop.wait(0.5):
                peak.append(rss_mb(pid))

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        t0 = time.perf_counter()
        res = loadgen.run(b, seconds, clients, seed=2, mix=mix)
        wall = time.perf_counter() - t0
        stop.set()
        t.join()
        rss_end = rss_mb(pid)
    return {"seconds": seconds, "clients": clients, "wall_s": wall, "requests": res.requests,
            "errors": len(res.errors) + len(warm.errors), "first_errors": (warm.errors + res.errors)[:5],
            "per_endpoint": res.summary(), "rss_start_mb": rss_start, "rss_warm_mb": rss_warm, "rss_end_mb": rss_end,
            "rss_peak_mb": max(peak), "growth": (rss_end - rss_warm) / rss_warm}


def measure(seconds: float = SECONDS, clients: int = CLIENTS, warmup_s: float = WARMUP_S) -> dict:
    """The shipped server, then the same load against the server with its answer caches off (leak check)."""
    shipped = _phase(seconds, clients, warmup_s, uncached=False)
    no_plots = _phase(seconds, clients, warmup_s, uncached=False, mix=loadgen.NO_PLOTS_MIX)
    uncached = _phase(seconds, clients, warmup_s, uncached=True)
    return {**shipped, "no_plots": no_plots, "uncached": uncached}


def rows(r: dict) -> list[tuple[str, str, bool | None, str]]:
    per = r["per_endpoint"]
    u = r["uncached"]
    lat = "; ".join(f"{k} p50 {v['p50_ms']:.0f} / p99 {v['p99_ms']:.0f} ms (n={v['n']}, 503-retries "
                    f"{v.get('retries_503', 0)})" for k, v in per.items())
    np_ = r.get("no_plots", {})
    health = per.get("health", {}).get("p99_ms", float("nan"))
    extra = [("load: /health p99 ≤ 50 ms during the mixed load", f"{health:.0f} ms", health <= 50,
              "liveness is async and touches no work pool"),
             ("load: throughput with plots vs the same load without them",
              f"{r['requests'] / r['wall_s']:.0f} vs {np_.get('requests', 0) / max(np_.get('wall_s', 1), 1e-9):.0f} req/s",
              None, f"{np_.get('errors', '?')} errors without plots")] if np_ else []
    return extra + [
        (f"load {r['seconds']:.0f} s × {r['clients']} clients, mixed endpoints: zero errors",
         f"{r['errors']} errors in {r['requests']:,} requests ({r['requests'] / r['wall_s']:.0f} req/s)",
         r["errors"] == 0 and u["errors"] == 0,
         "; ".join(r["first_errors"] + u["first_errors"])[:200] or "every answer 200; batch bad row reported "
                                                                    "(also 0 errors in the uncached run)"),
        ("load: p50 / p99 per endpoint (50 clients queueing on one worker)", lat, None,
         "latency under load is queueing: 50 clients share one uvicorn worker on 2 cores"),
        ("load: server RSS growth < 10% (shipped server)",
         f"{100 * r['growth']:+.1f}% ({r['rss_warm_mb']:.0f} → {r['rss_end_mb']:.0f} MB; peak {r['rss_peak_mb']:.0f} MB)",
         r["growth"] < 0.10, f"from end of a {WARMUP_S} s warm-up (RSS at start {r['rss_start_mb']:.0f} MB); "
                             "includes two bounded caches filling: answers ≤ 4,096 / 64 MB (api/cache.py) and the "
                             "facade's rank memo ≤ 256 entries"),
        ("load: server RSS growth < 10% with answer caches off (leak check)",
         f"{100 * u['growth']:+.1f}% ({u['rss_warm_mb']:.0f} → {u['rss_end_mb']:.0f} MB; peak {u['rss_peak_mb']:.0f} MB)",
         u["growth"] < 0.10, f"same load, bench/serve_uncached.py; {u['requests']:,} requests, {u['errors']} errors"),
    ]


def main() -> int:
    r = measure()
    print_rows(rows(r))
    return 0 if r["errors"] == 0 and r["uncached"]["errors"] == 0 and r["no_plots"]["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
