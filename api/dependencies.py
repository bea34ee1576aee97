"""What endpoints take through `Depends`: the loaded predictor, the answer cache, and bounded pools for heavy work.

Why a module of its own: the app factory and every router need these, and the factory needs the routers, so keeping
them in `api.app` made the two import each other. Here they depend on nothing in `api` but `api.cache`; the factory
creates the objects on `app.state` and the routers ask for them.

Pools: a plot, a `/plan` or a `/batch` upload costs from tens of milliseconds to seconds of CPU (and a 50 MB upload
~240 MB of memory), while `/health` and a cached answer cost microseconds. Each heavy kind gets a `WorkPool`: at most
`size` run at once, at most `queue` more wait (each for at most `wait_s`), and anything beyond is answered at once
with 503 + `Retry-After` instead of queueing without end behind the work already admitted. The work runs on the
pool's own threads, at a lower OS priority (nice +10 from the process's), so the event loop (/health, cached answers) and the light
endpoints on the default thread pool get the CPU first.
"""
from __future__ import annotations

import asyncio
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import Request


# /plan's greedy search predicts steps × (candidates + targets) × targets rows: 20 steps over 50 candidates for one
# target is ~1k (0.2 s CPU); the schema's extremes (100 × 60 × 10 = 60k) were 3.5-5 s of CPU for a 1 KB request.
MAX_PLAN_WORK = 15_000


class PredictorUnavailable(Exception):
    """Raised by `get_predictor` when no valid model is loaded (→ 503 with the reason)."""


class Busy(Exception):
    """A work pool is full (→ 503 with `Retry-After`)."""

    def __init__(self, pool: str, retry_after: int):
        super().__init__(f"the server is busy with other {pool} requests; retry in {retry_after} s")
        self.pool = pool
        self.retry_after = retry_after


async def get_predictor(request: Request):
    """The loaded TransferPredictor, or 503 with why it is missing. `async` so it runs on the event loop (no thread
    hop): `/health` depends on it and must never wait behind work."""
    p = getattr(request.app.state, "predictor", None)
    if p is None:
        raise PredictorUnavailable(getattr(request.app.state, "load_error", None) or "model not loaded")
    return p


async def get_answers(request: Request):
    """The per-model LRU of finished answers (`api.cache.AnswerCache`)."""
    return request.app.state.answers


async def get_pictures(request: Request):
    """The per-model LRU of rendered pictures, apart from the answers' (`api.app.PICTURE_CACHE`)."""
    return request.app.state.pictures


# ------------------------------------------------------------------------------------------------ work pools
def cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_workers() -> int:
    """`xlt serve`'s worker processes: one per core but one, which is left to the clients, the OS and the other
    processes of the box. On 2 cores that is one worker: a fresh /rank over 100 candidates measured 2.6-3.2 ms p50
    with one worker against 3.4-3.5 ms with two (shared latency check, runs interleaved), since client and workers
    no longer take turns on the two cores, and start-up does not import everything twice at once. Batch scoring in
    one worker still uses every core (LightGBM's threads); `--workers N` overrides."""
    return max(1, cores() - 1)


@dataclass
class PoolLimits:
    size: int          # run at once
    queue: int         # wait for a slot beyond those running
    wait_s: float      # longest wait for a slot before 503
    retry_after: int = 1


def default_limits() -> dict[str, PoolLimits]:
    """Per worker process. Rendering and planning are CPU-bound Python (the GIL): a second thread in the same process
    adds no throughput but takes the GIL from the event loop, so /health and cached answers would wait. One at a time
    per process, and `xlt serve --workers N` (one per core) for parallelism.

    The queues are sized for the clients a worker can have waiting, and the waits for how long that queue takes to
    drain on a busy box: a waiting request holds only its parsed query (for /batch a socket whose body is not read
    yet), so waiting costs nothing but time, while a 503 costs the client a Retry-After sleep and a new request. A
    PNG is 0.1-0.3 s of CPU; with a page's or a load test's worth of clients (50) asking for pictures at once, a
    worker's queue of 48 drains within 45 s even at 1 s a picture. Only beyond that (a flood from more clients than
    that) does the server say 503 + `Retry-After`. (Queues of 3 and 2 with a 2 s wait refused 5% of a 50-client
    mixed load: 334 of 6,492 requests ended 503 after 5 honoured retries.)"""
    return {
        "plots": PoolLimits(size=1, queue=48, wait_s=45.0),
        "plan": PoolLimits(size=1, queue=32, wait_s=30.0),
        # one upload is held in memory several times over while it is parsed and scored (~240 MB for 50 MB): one
        # at a time is read and scored; the waiting ones are not read (Admission takes the slot before the body)
        "batch": PoolLimits(size=1, queue=16, wait_s=30.0, retry_after=5),
    }


# Threads answering light questions (/rank, /predict, /explain, /curve) at once per worker. They are Python holding
# the GIL most of the time, so more threads add no throughput; each one more is another contender the event loop
# must win the GIL from before it can answer /health (anyio's default is 40).
LIGHT_THREADS = 4


HEAVY_NICE = 10


def _lower_priority() -> None:
    """Thread initializer: this thread (Linux: per-thread nice) yields the CPU to the event loop and light requests."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + HEAVY_NICE))
    except (AttributeError, OSError):  # not Linux, or not allowed: the bound on concurrency still holds
        pass


class WorkPool:
    """Bounded admission for one kind of heavy request, used on the event loop (no lock needed), with its own
    `size` threads at lower priority."""

    def __init__(self, name: str, limits: PoolLimits):
        self.name = name
        self.limits = limits
        self._sem: asyncio.Semaphore | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.admitted = 0   # running + waiting
        self.running = 0
        self.refused = 0

    @asynccontextmanager
    async def slot(self):
        lim = self.limits
        if self.admitted >= lim.size + lim.queue:
            self.refused += 1
            raise Busy(self.name, lim.retry_after)
        if self._sem is None:
            self._sem = asyncio.Semaphore(lim.size)
        self.admitted += 1
        try:
            try:
                await asyncio.wait_for(self._sem.acquire(), lim.wait_s)
            except asyncio.TimeoutError:
                self.refused += 1
                raise Busy(self.name, lim.retry_after) from None
            self.running += 1
            try:
                yield
            finally:
                self.running -= 1
                self._sem.release()
        finally:
            self.admitted -= 1

    async def run(self, fn, *args):
        """`fn(*args)` on the pool's threads once a slot is free; Busy when the pool and its queue are full."""
        async with self.slot():
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.limits.size, thread_name_prefix=f"xlt-{self.name}",
                                                    initializer=_lower_priority)
            return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args))

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def make_pools(limits: dict[str, PoolLimits] | None = None) -> dict[str, WorkPool]:
    merged = {**default_limits(), **(limits or {})}
    return {name: WorkPool(name, lim) for name, lim in merged.items()}


async def plot_pool(request: Request) -> WorkPool:
    return request.app.state.pools["plots"]


async def plan_pool(request: Request) -> WorkPool:
    return request.app.state.pools["plan"]


async def batch_pool(request: Request) -> WorkPool:
    return request.app.state.pools["batch"]
