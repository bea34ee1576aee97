"""`xlt all-pairs`: the predicted score of every ordered (source, target) language pair for one model and task.

Why chunked by source blocks: 4,000 languages make 16M pairs; building them all at once would hold gigabytes of
strings. Each chunk is a few hundred thousand queries sent through the same facade `predict` as every other
interface, and appended to a Parquet file, so memory stays bounded by `chunk_rows`.

Why worker processes: two thirds of a block's time is featurizing and record look-ups in Python, which holds the GIL,
so one process keeps one core busy and LightGBM's second thread idles the rest of the time. `workers` processes
(`xlt all-pairs` uses one per core; the function's default is 1, in-process, because spawned workers re-import the
caller's main module, which a script without a `__main__` guard cannot survive) score blocks side by side, one
LightGBM thread each, and the parent writes their tables in order; a block in flight per worker (plus one finished,
waiting its turn) bounds the memory.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np


def covered_languages() -> list[str]:
    """Canonical codes the features cover: languages with observed URIEL typology (see typology.observed_languages)."""
    from features import typology

    return list(typology.observed_languages())


def _blocks(langs: list[str], chunk_rows: int):
    per = max(1, chunk_rows // max(1, len(langs)))
    for i in range(0, len(langs), per):
        yield langs[i:i + per]


def _score_block(predictor, base: dict, sources: list[str], targets: list[str], num_threads: int | None = None):
    import pyarrow as pa

    n_t = len(targets)
    src = np.repeat(np.asarray(sources, dtype=object), n_t)
    tgt = np.tile(np.asarray(targets, dtype=object), len(sources))
    keep = src != tgt
    src, tgt = src[keep], tgt[keep]
    out = predictor.predict_pairs(base["model"], base["task"], src, tgt, task_type=base.get("task_type"),
                                  source_size=base.get("source_size"), k=base.get("k") or 0, num_threads=num_threads)
    score = out["predicted_score"].to_numpy(dtype=np.float64)
    return pa.table({"source": pa.array(src, type=pa.string()), "target": pa.array(tgt, type=pa.string()),
                     "predicted_score": pa.array(score, mask=np.isnan(score)),
                     "lower80": pa.array(out["lower80"].to_numpy(dtype=np.float64)),
                     "upper80": pa.array(out["upper80"].to_numpy(dtype=np.float64)),
                     "error": pa.array(np.full(len(src), ""))})


_WORKER_PREDICTOR = None


def _score_block_on_worker(base: dict, sources: list[str], targets: list[str], num_threads: int | None = None):
    global _WORKER_PREDICTOR
    if _WORKER_PREDICTOR is None:
        from predictor import TransferPredictor
        _WORKER_PREDICTOR = TransferPredictor.load(base.get("model_dir"))
    return _score_block(_WORKER_PREDICTOR, base, sources, targets, num_threads)


def _in_order(pool, workers: int, base: dict, blocks: list, langs: list[str]):
    """Tables of `blocks` scored on `pool`'s processes, yielded in block order, at most one block per worker
    submitted ahead of the one being written."""
    from collections import deque

    pending: deque = deque()
    todo = iter(blocks)
    for b in todo:
        pending.append(pool.submit(_score_block_on_worker, base, b, langs, 1))
        if len(pending) > workers:
            break
    while pending:
        table = pending.popleft().result()
        nxt = next(todo, None)
        if nxt is not None:
            pending.append(pool.submit(_score_block_on_worker, base, nxt, langs, 1))
        yield table


def run_all_pairs(model: str, task: str, output, *, task_type: str | None = None, source_size: int | None = None,
                  k: int | None = None, languages: list[str] | None = None, chunk_rows: int = 500_000,
                  engine: str = "local", scheduler: str | None = None, progress: bool | None = None,
                  predictor=None, workers: int | None = None) -> dict:
    """Write `output` (.parquet or .csv) with source, target, predicted_score, lower80, upper80, error per pair."""
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    from tqdm import tqdm

    from features.errors import XltError
    from features.languages import resolve_code
    from features.registry import resolve_model, resolve_task

    t0 = time.perf_counter()
    spec = resolve_model(model)
    tspec = resolve_task(task, task_type)
    base = {"model": spec.id, "task": tspec.id, "task_type": tspec.task_type, "source_size": source_size, "k": k}
    if languages:
        langs = list(dict.fromkeys(resolve_code(c, "languages") for c in languages))
    else:
        langs = covered_languages()
    if len(langs) < 2:
        raise XltError("all-pairs needs at least two languages", field="languages")
    output = Path(output)
    parquet = output.suffix.lower() in (".parquet", ".pq")
    if not parquet and output.suffix.lower() != ".csv":
        raise XltError(f"output must end in .parquet or .csv, got {output.name!r}", field="output")
    blocks = list(_blocks(langs, chunk_rows))
    total = len(langs) * (len(langs) - 1)
    show = progress if progress is not None else (sys.stderr.isatty() or total > 100_000)
    bar = tqdm(total=total, unit="pairs", unit_scale=True, desc="xlt all-pairs", file=sys.stderr, disable=not show,
               leave=False)
    tmp = output.with_name(f".{output.name}.tmp")
    writer = None
    client = cluster = pool = None
    try:
        if engine == "dask":
            from distributed import Client, LocalCluster
            if scheduler:
                client = Client(scheduler, timeout="10s")
            else:
                cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None)
                client = Client(cluster)
            futures = [client.submit(_score_block_on_worker, base, b, langs, pure=False) for b in blocks]
            tables = (f.result() for f in futures)
        else:
            workers = min(max(1, int(workers or 1)), len(blocks))
            if predictor is None and workers > 1:
                import multiprocessing
                from concurrent.futures import ProcessPoolExecutor

                from predictor import artifacts

                # spawn, not fork: LightGBM's OpenMP runtime is not fork-safe; each worker loads the verified model
                pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
                base = {**base, "model_dir": str(artifacts.resolve_model_dir(None).resolve())}
                tables = _in_order(pool, workers, base, blocks, langs)
            else:
                if predictor is None:
                    from predictor import TransferPredictor
                    predictor = TransferPredictor.load()
                tables = (_score_block(predictor, base, b, langs) for b in blocks)
        pairs = errors = 0
        for t in tables:
            if writer is None:
                writer = (pq.ParquetWriter(tmp, t.schema) if parquet else
                          pacsv.CSVWriter(tmp, t.schema, write_options=pacsv.WriteOptions(quoting_style="needed")))
            writer.write_table(t)
            pairs += t.num_rows
            errors += pc.sum(pc.greater(pc.utf8_length(t["error"]), 0)).as_py() or 0
            bar.update(t.num_rows)
        writer.close()
        writer = None
        tmp.replace(output)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    return {"output": str(output), "pairs": pairs, "languages": len(langs), "errors": errors,
            "seconds": time.perf_counter() - t0, "model": spec.id, "task": tspec.id}
