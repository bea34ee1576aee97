"""A short, bounded load test: 10 concurrent clients for 5 s against a real `xlt serve` on loopback, mixing /rank,
/predict, /explain and /batch. Zero errors allowed (every answer a 200; batch still reports its bad row).
The full 60 s × 50-client run with p50/p99 and RSS growth is `make bench` (bench/load.py).
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import loadgen  # noqa: E402
from bench.common import rss_mb, server  # noqa: E402


def test_short_mixed_load_has_zero_errors(model_dir):
    with server() as (base, pid, _):
        res = loadgen.run(base, seconds=5, clients=10)
        rss = rss_mb(pid)
    assert not res.errors, res.errors[:5]
    counts = {k: len(v) for k, v in res.latencies.items()}
    assert set(counts) == {"rank", "predict", "explain", "batch"}, counts
    assert res.requests >= 10, counts  # it really ran (even a busy 2-core box does several times more)
    assert 50 < rss < 4096
