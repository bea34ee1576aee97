"""A small async load generator (httpx): N concurrent clients over a weighted mix of xlt endpoints for D seconds.

Why our own and not locust: no extra dependency, and the same code drives the 5 s test in `make test`
(tests/test_load_short.py) and the 60 s, 50-client benchmark (bench/load.py). Queries are drawn at random from a
realistic space (20 targets × 20 sources × a few k), so the answer cache sees both hits and misses.
"""
from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field

LANGS = ["en", "de", "fr", "es", "ru", "zh", "ar", "hi", "sw", "ja", "ko", "tr", "fi", "id", "vi", "th", "el", "bg",
         "ur", "yo"]
MODELS = ["xlm-r-large", "mt5-base", "xlm-r-base"]
TASKS = ["xnli", "wikiann", "udpos", "pawsx"]


def _query(rng: random.Random) -> dict:
    tgt, src = rng.sample(LANGS, 2)
    q = {"model": rng.choice(MODELS), "task": rng.choice(TASKS), "target": tgt, "source": src}
    if rng.random() < 0.3:
        q["k"] = rng.choice([10, 100, 1000])
    return q


def make_request(kind: str, rng: random.Random) -> tuple[str, str, dict]:
    """(method, path, httpx kwargs) for one request of the given kind."""
    q = _query(rng)
    if kind == "predict":
        return "POST", "/predict", {"json": q}
    if kind == "explain":
        return "POST", "/explain", {"json": q}
    if kind == "rank":
        body = {k: v for k, v in q.items() if k != "source"}
        body["candidates"] = rng.sample([l for l in LANGS if l != q["target"]], rng.choice([5, 10, 19]))
        return "POST", "/rank", {"json": body}
    if kind == "batch":
        rows = [",".join((q2["model"], q2["task"], q2["source"], q2["target"])) for q2 in (_query(rng) for _ in range(50))]
        rows.append("xlm-r-large,xnli,en,notalanguage")  # one bad row: must come back with its error, not fail
        csv = ("model,task,source,target\n" + "\n".join(rows) + "\n").encode()
        return "POST", "/batch", {"files": {"file": ("q.csv", csv, "text/csv")}}
    if kind == "health":
        return "GET", "/health", {}
    if kind == "plot":
        path = rng.choice(["/explain/plot.png", "/plots/curve.png"])
        return "GET", path, {"params": q}
    if kind == "plan":
        body = {k: q[k] for k in ("model", "task", "target")}
        body.update(candidates=rng.sample([l for l in LANGS if l != q["target"]], 4), budget=rng.choice([500, 5000]),
                    steps=5)
        return "POST", "/plan", {"json": body}
    raise ValueError(kind)


DEFAULT_MIX = {"rank": 3, "predict": 4, "explain": 2, "batch": 1}
# every endpoint a user drives, plots and the planner included, plus liveness probes (issue 9's mixed load)
FULL_MIX = {"rank": 3, "predict": 4, "explain": 2, "batch": 1, "plot": 1, "plan": 1, "health": 1}
NO_PLOTS_MIX = {k: v for k, v in FULL_MIX.items() if k != "plot"}


@dataclass
class LoadResult:
    seconds: float
    clients: int
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    retries: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # 503 + Retry-After, honoured

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    def summary(self) -> dict:
        from bench.common import percentile
        return {k: {"n": len(v), "p50_ms": percentile(v, 50), "p99_ms": percentile(v, 99),
                    "retries_503": int(self.retries.get(k, 0))}
                for k, v in sorted(self.latencies.items())}


async def _client(base: str, deadline: float, mix: dict[str, int], seed: int, result: LoadResult, timeout: float):
    import httpx

    rng = random.Random(seed)
    kinds, weights = zip(*mix.items())
    async with httpx.AsyncClient(base_url=base, timeout=timeout) as c:
        while time.perf_counter() < deadline:
            kind = rng.choices(kinds, weights)[0]
            method, path, kw = make_request(kind, rng)
            t0 = time.perf_counter()
            try:
                r = await c.request(method, path, **kw)
                # a full work pool answers 503 + Retry-After (backpressure, by design): a well-behaved client waits
                # and asks again, up to 5 times; the latency then includes the waits
                for _ in range(5):
                    if r.status_code != 503 or "retry-after" not in r.headers:
                        break
                    result.retries[kind] += 1
                    await asyncio.sleep(min(float(r.headers["retry-after"]), 5.0))
                    r = await c.request(method, path, **kw)
                ms = (time.perf_counter() - t0) * 1000
                if r.status_code != 200:
                    result.errors.append(f"{kind} {r.status_code} {r.text[:160]}")
                elif kind == "batch" and r.text.count("line 52: ") != 1:
                    result.errors.append(f"batch: bad row not reported: {r.text[-160:]}")
                result.latencies[kind].append(ms)
            except Exception as e:  # a refused/closed connection or a timeout is an error too
                result.errors.append(f"{kind} {type(e).__name__}: {e}"[:200])


def run(base: str, seconds: float, clients: int, mix: dict[str, int] | None = None, seed: int = 0,
        timeout: float = 60) -> LoadResult:
    """Drive `clients` concurrent clients for `seconds`; every non-200 or exception is recorded as an error."""
    result = LoadResult(seconds=seconds, clients=clients)
    deadline = time.perf_counter() + seconds

    async def main():
        await asyncio.gather(*(_client(base, deadline, mix or DEFAULT_MIX, seed * 1000 + i, result, timeout)
                               for i in range(clients)))

    asyncio.run(main())
    return result
