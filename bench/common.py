"""Shared helpers for the benchmarks: start `xlt serve` on a free loopback port, time things, percentiles."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def xlt_cmd() -> list[str]:
    exe = VENV_BIN / "xlt"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "api.cli"]


def cli_batch(src: Path, dst: Path) -> tuple[float, dict]:
    """Wall seconds of one `xlt batch src -o dst --json` process (start-up included) and the stats it prints."""
    t0 = time.perf_counter()
    p = subprocess.run([*xlt_cmd(), "batch", str(src), "-o", str(dst), "--json", "--no-progress"],
                       capture_output=True, text=True, cwd=ROOT, timeout=1800)
    seconds = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"xlt batch rc={p.returncode}: {p.stderr[-300:]}")
    return seconds, json.loads(p.stdout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: dict | None = None, timeout: float = 60) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@contextlib.contextmanager
def server(startup_s: float = 120, env: dict | None = None, uncached: bool = False):
    """`xlt serve` in its own process group; yields (base_url, pid, seconds to the first /health 200).
    `uncached=True` starts bench/serve_uncached.py instead (same app, answer caches off; diagnostics only)."""
    port = free_port()
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    t0 = time.perf_counter()
    cmd = ([sys.executable, "-m", "bench.serve_uncached", str(port)] if uncached
           else [*xlt_cmd(), "serve", "--host", "127.0.0.1", "--port", str(port)])
    p = subprocess.Popen(cmd, cwd=ROOT,
                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})})
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            if p.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"xlt serve exited rc={p.returncode}: {log.read()[-400:]}")
            try:
                if http("GET", base + "/health", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.perf_counter() - t0 > startup_s:
                raise RuntimeError(f"xlt serve did not answer /health within {startup_s}s")
            time.sleep(0.02)
        yield base, p.pid, time.perf_counter() - t0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(15)
        log.close()
        os.unlink(log.name)


def percentile(values, q: float) -> float:
    import numpy as np
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")


def rss_mb(pid: int) -> float:
    """Resident memory of a server process and its worker processes (`xlt serve --workers N` forks N)."""
    import psutil
    proc = psutil.Process(pid)
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / (1 << 20)


class RawBoosters:
    """The served model's LightGBM booster(s) — one, or level + deviation summed — called directly on a float32
    matrix: the "raw LightGBM predict" yardstick, without any of xlt's own work around it."""

    def __init__(self, boosters):
        self.boosters = [b for b in boosters if b is not None]

    def predict(self, X, num_threads: int = 0):
        out = self.boosters[0].predict(X, num_threads=num_threads)
        for b in self.boosters[1:]:
            out = out + b.predict(X, num_threads=num_threads)
        return out

    def num_trees(self) -> int:
        return sum(b.num_trees() for b in self.boosters)


def booster_and_matrix(predictor, norm):
    """(RawBoosters of the served model, the float32 feature matrix it scores for canonical queries `norm`) —
    through the facade's own feature path, so "raw predict on the same matrix" really is the same matrix."""
    import numpy as np

    model = getattr(predictor, "model", None)
    if model is not None and hasattr(model, "booster_"):
        X = predictor._score(norm)[0]  # the best component of each query: what the booster scores
        boosters = RawBoosters([model.booster_, getattr(model, "deviation_booster_", None)])
        return boosters, X[list(predictor.feature_names)].to_numpy(dtype=np.float32)
    from features.featurize import FEATURE_NAMES, featurize  # older facade: booster + featurize directly
    return RawBoosters([predictor.booster]), featurize(norm)[FEATURE_NAMES].to_numpy(dtype=np.float32)


def print_rows(rows) -> None:
    """Print a benchmark's (goal, measured, met, note) rows one per line (met None = a figure with no goal)."""
    for goal, measured, met, note in rows:
        print(f"{goal}: {measured} [{'met' if met else ('-' if met is None else 'MISSED')}] {note}")
