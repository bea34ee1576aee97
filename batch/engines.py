"""Engines that run the batch: `run_batch` (in this process), `run_batch_dask` (chunks split over a dask cluster;
dask is imported only there), and the upload pair `validate_upload` / `iter_csv_response` behind `POST /batch`.

Row errors never stop a file: a bad row gets `error = "line N: reason"` (N is the physical CSV line, header = 1;
`row N` for Parquet) and an empty `predicted_score`; good rows are always scored; every record comes out, in place.
File-level problems raise `XltError` before any output is written (the CLI exits 2, HTTP answers 422).
"""
from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from batch.io import (DEFAULT_CHUNK_ROWS, check_columns, csv_bytes, csv_chunks, first_bad_utf8_line,
                      first_overlong_line, too_long_message, atomic_output, normalize_newlines, open_input,
                      output_format, read_header, write_tables)
from batch.score import BatchStats, Scorer, local_scorer, score_table
from features.errors import XltError


def _count(t: pa.Table, stats: BatchStats) -> None:
    bad = pc.greater(pc.utf8_length(t["error"]), 0)
    n_bad = pc.sum(bad).as_py() or 0
    stats.rows += t.num_rows
    stats.errors += n_bad
    stats.scored += t.num_rows - n_bad
    stats.chunks += 1
    if n_bad and len(stats.first_errors) < 5:
        stats.first_errors.extend(t.filter(bad)["error"].to_pylist()[: 5 - len(stats.first_errors)])


def run_batch(in_path, out_path, predictor=None, *, chunk_rows: int = DEFAULT_CHUNK_ROWS,
              progress: bool | None = None, scorer: Scorer | None = None) -> BatchStats:
    """Score IN (CSV or Parquet, by extension) into OUT (.csv, .parquet or .pq; others refused); atomic write.

    `progress=None` shows a bar on stderr when stderr is a terminal or the input has more than ~100k rows.
    """
    in_path, out_path = Path(in_path), Path(out_path)
    fmt = output_format(out_path)
    source = open_input(in_path)  # file-level problems first: they must not wait for (or need) a model
    stats = BatchStats()
    if scorer is None:
        if predictor is None:
            from predictor import TransferPredictor
            predictor = TransferPredictor.load()
        scorer = local_scorer(predictor, stats)
    if progress is None:
        progress = sys.stderr.isatty() or source.total_rows > 100_000
    from tqdm import tqdm
    bar = tqdm(total=source.total_rows, unit="rows", unit_scale=True, desc="xlt batch", file=sys.stderr,
               disable=not progress, leave=False)

    def scored() -> Iterator[pa.Table]:
        for chunk in source.chunks(chunk_rows):
            out = chunk.assemble(scorer(chunk.table, chunk.lines, chunk.label))
            bar.update(min(chunk.n_read, max(0, bar.total - bar.n)))
            _count(out, stats)
            yield out

    tmp, commit, discard = atomic_output(out_path)
    try:
        write_tables(scored(), tmp, fmt, infer_numbers=source.kind == "csv")
        commit()
    except BaseException:
        discard()
        raise
    finally:
        bar.close()
    return stats


# --------------------------------------------------------------------------------------------------------- uploads
def validate_upload(data: bytes) -> None:
    """File-level checks done before a streamed response starts, so they can still become a 422."""
    if not data.strip():
        raise XltError("the uploaded file is empty", field="file")
    line = first_bad_utf8_line(data)
    if line is not None:
        raise XltError(f"the file is not UTF-8 encoded (first bad byte on line {line}); re-save it as UTF-8",
                       field="file")
    data = normalize_newlines(data)
    check_columns(read_header(io.BytesIO(data)))
    line = first_overlong_line(data)
    if line is not None:
        raise XltError(too_long_message(line), field="file")


def iter_csv_response(data: bytes, predictor, *, chunk_rows: int = 200_000) -> Iterator[bytes]:
    """The scored CSV of an upload (checked beforehand by `validate_upload`), header first, chunk by chunk.

    The first chunk is computed on the first `next()`; a header-only file raises XltError there, so a caller that
    takes it before answering can still answer 422."""
    scorer = local_scorer(predictor)
    header = True
    for chunk in csv_chunks(io.BytesIO(normalize_newlines(data)), chunk_rows=chunk_rows):
        yield csv_bytes(chunk.assemble(scorer(chunk.table, chunk.lines, chunk.label)), header)
        header = False


# --------------------------------------------------------------------------------------------------------- dask
_WORKER_PREDICTOR = None


def _worker_predictor():
    """Each dask worker loads (and verifies) the model itself, once."""
    global _WORKER_PREDICTOR
    if _WORKER_PREDICTOR is None:
        from predictor import TransferPredictor
        _WORKER_PREDICTOR = TransferPredictor.load()
    return _WORKER_PREDICTOR


def _score_on_worker(table: pa.Table, lines: np.ndarray, label: str) -> pa.Table:
    return score_table(table, _worker_predictor(), line_numbers=lines, label=label)


def run_batch_dask(in_path, out_path, *, scheduler: str | None = None, partitions: int = 4,
                   chunk_rows: int = DEFAULT_CHUNK_ROWS, progress: bool | None = None) -> BatchStats:
    """Like run_batch, but each chunk is split into partitions scored on a dask.distributed cluster.

    `scheduler=None` starts an in-process LocalCluster (threads); an address connects to a running scheduler
    (its workers need xlt installed). Workers load the model themselves (`_worker_predictor`), so nothing but
    string tables travels. dask is optional: without it this raises XltError.
    """
    output_format(out_path)  # refuse a bad OUT before starting a cluster
    open_input(in_path)
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise XltError("the dask engine needs dask[distributed] (pip install 'dask[distributed]')",
                       field="engine") from None

    cluster = None
    try:
        if scheduler:
            client = Client(scheduler, timeout="10s")
        else:
            cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None)
            client = Client(cluster)
    except (OSError, TimeoutError) as e:
        raise XltError(f"cannot reach the dask scheduler {scheduler!r}: {e}", field="scheduler") from None
    try:
        def scorer(table: pa.Table, lines: np.ndarray, label: str) -> pa.Table:
            if table.num_rows == 0:
                return score_table(table, None)
            step = max(1, -(-table.num_rows // partitions))
            futs = [client.submit(_score_on_worker, table.slice(i, step), lines[i:i + step], label, pure=False)
                    for i in range(0, table.num_rows, step)]
            return pa.concat_tables(client.gather(futs))

        return run_batch(in_path, out_path, chunk_rows=chunk_rows, progress=progress, scorer=scorer)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
