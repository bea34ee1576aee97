"""The CSV/Parquet batch engine shared by `xlt batch` and `POST /batch`.

Why it is shaped this way: a million-row file usually holds a few thousand distinct queries. So the engine reads
every column as a string with pyarrow (no type guessing, extra columns pass through byte for byte), folds the query
columns into one integer key, asks the predictor about each *distinct* query once, and broadcasts the answers back
with integer codes. Reading, scoring and writing go chunk by chunk, so memory stays bounded by the chunk size.

Row errors never stop a file: a bad row gets `error = "line N: reason"` (N is the physical CSV line, header = 1)
and an empty `predicted_score`; good rows are always scored. File-level problems (a missing required column, a file
that is not UTF-8, an unreadable file) raise `XltError`, which the CLI turns into exit 2 and HTTP into 422.
Line numbers assume one physical line per record (a quoted field with a newline inside shifts later numbers).
"""
from __future__ import annotations

import io
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from features.errors import XltError

REQUIRED_COLUMNS = ("model", "task", "target")
SOURCE_COLUMNS = ("source", "train_config")  # at least one of them
KEY_COLUMNS = ("model", "task", "task_type", "target", "source", "source_size", "train_config", "k")
OUTPUT_COLUMNS = ("predicted_score", "error")
DEFAULT_CHUNK_ROWS = 1_000_000
READ_BLOCK_BYTES = 16 << 20
SCORE_DECIMALS = 4


@dataclass
class BatchStats:
    """What a run did: shown by the CLI, returned by tests."""

    rows: int = 0
    scored: int = 0
    errors: int = 0
    distinct_queries: int = 0
    chunks: int = 0
    first_errors: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------------- header
def check_columns(columns: list[str]) -> None:
    """Raise XltError (one line) when the header lacks a required column."""
    cols = list(columns)
    missing = [c for c in REQUIRED_COLUMNS if c not in cols]
    if not any(c in cols for c in SOURCE_COLUMNS):
        missing.append("source or train_config")
    if missing:
        raise XltError(f"missing required column(s): {', '.join(missing)} (header has: {', '.join(cols) or 'nothing'})",
                       field="file")
    dupes = sorted({c for c in cols if cols.count(c) > 1})
    if dupes:
        raise XltError(f"duplicate column name(s) in header: {', '.join(dupes)}", field="file")


def cr_only(head: bytes) -> bool:
    """Old Excel / classic Mac files end lines with a bare CR; pyarrow and csv see one giant line."""
    return b"\r" in head and b"\n" not in head


def normalize_newlines(data: bytes) -> bytes:
    """CR-only line ends become LF (line numbers unchanged: one CR was one line); other files are returned as is."""
    return data.replace(b"\r", b"\n") if cr_only(data[: 1 << 20]) else data


def open_csv_source(path) -> "str | io.BytesIO":
    """A path pyarrow can stream, or the whole file with its CR-only line ends made LF (such files are small: they
    come from spreadsheets, whose sheets stop at about a million rows)."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
        if not cr_only(head):
            return str(path)
        return io.BytesIO((head + fh.read()).replace(b"\r", b"\n"))


def _read_header(source) -> list[str]:
    """Column names from the first line, without reading the whole file."""
    if isinstance(source, (str, Path)):
        with open(source, "rb") as fh:
            first = fh.readline(1 << 20)
    else:
        first = source.getvalue().split(b"\n", 1)[0] if isinstance(source, io.BytesIO) else source.readline(1 << 20)
    if first.startswith(b"\xef\xbb\xbf"):
        first = first[3:]
    try:
        text = first.decode("utf-8")
    except UnicodeDecodeError:
        raise XltError("the file is not UTF-8 encoded (bad byte in the header line 1); re-save it as UTF-8",
                       field="file") from None
    if not text.strip():
        raise XltError("the file is empty: expected a header line with model, task, target and source or "
                       "train_config", field="file")
    import csv
    return [c.strip() for c in next(csv.reader([text.rstrip("\r\n")]))]


def first_bad_utf8_line(data: bytes) -> int | None:
    """Physical line (1-based) of the first byte sequence that is not UTF-8, or None when the data is clean."""
    try:
        data.decode("utf-8")
        return None
    except UnicodeDecodeError as e:
        return data.count(b"\n", 0, e.start) + 1


def check_utf8_file(path, block: int = 16 << 20) -> None:
    """Raise XltError naming the line of the first non-UTF-8 byte (a fast pass: ~1 GB/s, before any model work)."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    lines_before = 0
    with open(path, "rb") as fh:
        while True:
            data = fh.read(block)
            try:
                decoder.decode(data, final=not data)
            except UnicodeDecodeError as e:
                line = lines_before + data.count(b"\n", 0, max(0, e.start)) + 1
                raise XltError(f"the file is not UTF-8 encoded (first bad byte on line {line}); re-save it as UTF-8",
                               field="file") from None
            if not data:
                return
            lines_before += data.count(b"\n")


# --------------------------------------------------------------------------------------------------------- reading
class _InvalidRows:
    """Collects ragged rows (wrong field count) with their physical line numbers, so they can be reported in place."""

    def __init__(self):
        self.rows: list[tuple[int, str]] = []

    def __call__(self, row) -> str:
        self.rows.append((int(row.number) if row.number is not None else -1,
                          f"expected {row.expected_columns} fields, found {row.actual_columns}"))
        return "skip"


def _csv_batches(source, columns: list[str], invalid: _InvalidRows) -> Iterator[pa.RecordBatch]:
    """Stream record batches, all columns as strings; single-threaded so ragged rows carry their line numbers."""
    read = pacsv.ReadOptions(use_threads=False, block_size=READ_BLOCK_BYTES, column_names=columns, skip_rows=1)
    parse = pacsv.ParseOptions(invalid_row_handler=invalid, ignore_empty_lines=False, newlines_in_values=False)
    convert = pacsv.ConvertOptions(column_types={c: pa.string() for c in columns}, strings_can_be_null=False,
                                   quoted_strings_can_be_null=False)
    try:
        reader = pacsv.open_csv(source, read_options=read, parse_options=parse, convert_options=convert)
        for rb in reader:
            yield rb
    except pa.ArrowInvalid as e:
        msg = str(e)
        if "UTF8" in msg or "UTF-8" in msg:
            line = None
            if isinstance(source, (str, Path)):
                with open(source, "rb") as fh:
                    line = first_bad_utf8_line(fh.read())
            elif isinstance(source, io.BytesIO):
                line = first_bad_utf8_line(source.getvalue())
            where = f" (first bad byte on line {line})" if line else ""
            raise XltError(f"the file is not UTF-8 encoded{where}; re-save it as UTF-8", field="file") from None
        raise XltError(f"cannot read the CSV: {msg.splitlines()[0]}", field="file") from None


def _chunks(batches: Iterator[pa.RecordBatch], chunk_rows: int) -> Iterator[pa.Table]:
    pending, n = [], 0
    for rb in batches:
        pending.append(rb)
        n += rb.num_rows
        if n >= chunk_rows:
            yield pa.Table.from_batches(pending)
            pending, n = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


# --------------------------------------------------------------------------------------------------------- scoring
def _key_codes(table: pa.Table) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, pa.Array]]]:
    """One integer per row identifying its query; per key column its (row codes, dictionary)."""
    import pandas as pd

    n = table.num_rows
    key = np.zeros(n, dtype=np.int64)
    parts: dict[str, tuple[np.ndarray, pa.Array]] = {}
    for col in KEY_COLUMNS:
        if col not in table.column_names:
            continue
        arr = pc.utf8_trim_whitespace(table[col]).combine_chunks()
        enc = pc.dictionary_encode(arr)
        codes = np.asarray(enc.indices, dtype=np.int64)
        parts[col] = (codes, enc.dictionary)
        # keep the combined key dense so it never overflows however many columns vary
        key, _ = pd.factorize(key * max(len(enc.dictionary), 1) + codes)
        key = key.astype(np.int64, copy=False)
    return key, parts


def score_table(table: pa.Table, predictor, *, first_line: int = 2,
                line_numbers: np.ndarray | None = None, label: str = "line",
                stats: BatchStats | None = None) -> pa.Table:
    """Append `predicted_score` and `error` to a string table of queries (same row order).

    `line_numbers` gives each row's physical line (defaults to first_line + row index). Identical queries are
    predicted once: the predictor sees one row per distinct (model, task, task_type, target, source, source_size,
    train_config, k).
    """
    import pandas as pd

    n = table.num_rows
    table = table.drop_columns([c for c in OUTPUT_COLUMNS if c in table.column_names])
    if n == 0:
        return table.append_column("predicted_score", pa.array([], pa.float64())).append_column(
            "error", pa.array([], pa.string()))
    key, parts = _key_codes(table)
    inverse = key  # dense codes 0..n_unique-1
    n_unique = int(key.max()) + 1
    first_row = np.empty(n_unique, dtype=np.int64)
    first_row[inverse[::-1]] = np.arange(n - 1, -1, -1, dtype=np.int64)  # last write wins → first occurrence
    queries = {}
    for col, (codes, dictionary) in parts.items():
        # empty cells stay "" (what the user wrote): the normaliser treats blank strings as absent
        queries[col] = np.asarray(dictionary.to_numpy(zero_copy_only=False), dtype=object)[codes[first_row]]
    qdf = pd.DataFrame(queries)
    pred = predictor.predict(qdf)
    score_u = pd.to_numeric(pred["predicted_score"], errors="coerce").to_numpy(dtype=np.float64)
    err_u = pred["error"].fillna("").astype(str).to_numpy(dtype=object) if "error" in pred else \
        np.full(n_unique, "", dtype=object)
    bad_u = (err_u != "") | ~np.isfinite(score_u)
    err_u[(err_u == "") & bad_u] = "no prediction for this row"
    score_u = np.round(score_u, SCORE_DECIMALS)
    score_u[bad_u] = np.nan

    scores = score_u[inverse]
    bad_rows = np.flatnonzero(bad_u[inverse])
    errors = np.full(n, "", dtype=object)
    if len(bad_rows):
        lines = line_numbers[bad_rows] if line_numbers is not None else bad_rows + first_line
        msgs = err_u[inverse[bad_rows]]
        errors[bad_rows] = [f"{label} {ln}: {m}" for ln, m in zip(lines.tolist(), msgs.tolist())]
    if stats is not None:
        stats.distinct_queries += n_unique
    score_arr = pa.array(scores, pa.float64(), mask=np.isnan(scores))
    return table.append_column("predicted_score", score_arr).append_column("error", pa.array(errors, pa.string()))


def _ragged_table(columns: list[str], rows: list[tuple[int, str]]) -> pa.Table:
    """Output rows for lines that could not be split into the header's columns."""
    n = len(rows)
    data = {c: pa.array([""] * n, pa.string()) for c in columns}
    data["predicted_score"] = pa.nulls(n, pa.float64())
    data["error"] = pa.array([f"line {ln}: {why}" for ln, why in rows], pa.string())
    return pa.table(data)


class _CsvLineTracker:
    """Maps each parsed row to its physical line, given the ragged rows pyarrow skipped (header is line 1)."""

    def __init__(self, invalid: _InvalidRows):
        self.invalid = invalid
        self.next_line = 2
        self.emitted = 0  # how many invalid rows were already placed in the output

    def place(self, n: int) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """Lines of the next n valid rows, and the ragged rows that fall before the last of them."""
        skipped = sorted(ln for ln, _ in self.invalid.rows[self.emitted:] if ln >= self.next_line)
        lines = np.arange(self.next_line, self.next_line + n + len(skipped), dtype=np.int64)
        if skipped:
            lines = lines[~np.isin(lines, skipped)][:n]
        last = int(lines[-1]) if n else self.next_line - 1
        ragged = [(ln, why) for ln, why in self.invalid.rows[self.emitted:] if ln <= last]
        self.emitted += len(ragged)
        self.next_line = last + 1
        return lines, ragged

    def rest(self) -> list[tuple[int, str]]:
        ragged = self.invalid.rows[self.emitted:]
        self.emitted = len(self.invalid.rows)
        return ragged


def _drop_blank(table: pa.Table, lines: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    """Blank lines are not records: drop rows whose every field is empty (they still count for line numbers)."""
    if table.num_rows == 0:
        return table, lines
    empty = None
    for col in table.column_names:
        e = pc.equal(pc.utf8_length(table[col]), 0)
        empty = e if empty is None else pc.and_(empty, e)
    mask = np.asarray(empty.combine_chunks() if hasattr(empty, "combine_chunks") else empty, dtype=bool)
    if not mask.any():
        return table, lines
    keep = ~mask
    return table.filter(pa.array(keep)), lines[keep]


Scorer = Callable[[pa.Table, np.ndarray, str], pa.Table]  # (string table, line numbers, "line"|"row") -> scored


def local_scorer(predictor, stats: BatchStats | None = None) -> Scorer:
    """Score chunks in this process with `predictor`."""
    def score(table: pa.Table, lines: np.ndarray, label: str) -> pa.Table:
        return score_table(table, predictor, line_numbers=lines, label=label, stats=stats)
    return score


def iter_scored_csv(source, scorer: Scorer, *, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                    on_chunk: Callable[[int], None] | None = None) -> Iterator[pa.Table]:
    """Score a CSV (path or BytesIO) chunk by chunk; yields output tables in input order, ragged rows in place."""
    columns = _read_header(source)
    check_columns(columns)
    if isinstance(source, io.BytesIO):
        source.seek(0)
    invalid = _InvalidRows()
    tracker = _CsvLineTracker(invalid)
    out_columns = [c for c in columns if c not in OUTPUT_COLUMNS]
    for chunk in _chunks(_csv_batches(source, columns, invalid), chunk_rows):
        lines, ragged = tracker.place(chunk.num_rows)
        chunk, lines = _drop_blank(chunk, lines)
        out = scorer(chunk, lines, "line")
        if ragged:
            out = _merge_ragged(out, lines, ragged, out_columns)
        if on_chunk is not None:
            on_chunk(chunk.num_rows)
        yield out
    ragged = tracker.rest()
    if ragged:
        yield _merge_ragged(None, np.array([], np.int64), ragged, out_columns)


def _merge_ragged(out: pa.Table | None, lines: np.ndarray, ragged, columns: list[str]) -> pa.Table:
    extra = _ragged_table(columns, ragged)
    if out is None or out.num_rows == 0:
        return extra
    extra = extra.select(out.column_names).cast(out.schema)
    both = pa.concat_tables([out, extra])
    order = np.argsort(np.concatenate([lines, np.array([ln for ln, _ in ragged], np.int64)]), kind="stable")
    return both.take(pa.array(order))


# --------------------------------------------------------------------------------------------------------- parquet
def iter_scored_parquet(path, scorer: Scorer, *, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                        on_chunk: Callable[[int], None] | None = None) -> Iterator[pa.Table]:
    """Score a Parquet file batch by batch; query columns are cast to strings, errors say `row N` (1-based)."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    check_columns(pf.schema_arrow.names)
    row = 1
    for rb in pf.iter_batches(batch_size=chunk_rows):
        t = pa.Table.from_batches([rb])
        for i, name in enumerate(t.column_names):
            if name in KEY_COLUMNS:
                col = t[name] if t.schema.field(i).type == pa.string() else pc.cast(t[name], pa.string())
                t = t.set_column(i, name, pc.fill_null(col, ""))
        lines = np.arange(row, row + t.num_rows, dtype=np.int64)
        row += t.num_rows
        out = scorer(t, lines, "row")
        if on_chunk is not None:
            on_chunk(t.num_rows)
        yield out


# --------------------------------------------------------------------------------------------------------- writing
def _csv_write_options(header: bool = True) -> pacsv.WriteOptions:
    return pacsv.WriteOptions(include_header=header, quoting_style="needed")


def csv_bytes(table: pa.Table, header: bool) -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(table, sink, write_options=_csv_write_options(header))
    return sink.getvalue()


def _is_parquet(path) -> bool:
    return str(path).lower().endswith((".parquet", ".pq"))


def _estimate_rows(path: Path, size: int) -> int:
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
    return max(1, int(size * max(1, head.count(b"\n")) / max(1, len(head))))


def run_batch(in_path, out_path, predictor=None, *, chunk_rows: int = DEFAULT_CHUNK_ROWS,
              progress: bool | None = None, scorer: Scorer | None = None) -> BatchStats:
    """Score IN (CSV or Parquet, by extension) into OUT (CSV or Parquet, by extension); atomic write.

    `progress=None` shows a bar on stderr when stderr is a terminal or the input has more than ~100k rows.
    """
    in_path, out_path = Path(in_path), Path(out_path)
    if not in_path.is_file():
        raise XltError(f"input file not found: {in_path}", field="file")
    stats = BatchStats()
    parquet_in = _is_parquet(in_path)
    if parquet_in:  # file-level problems first: a bad header must not wait for (or need) a model
        import pyarrow.parquet as pq
        try:
            check_columns(pq.ParquetFile(in_path).schema_arrow.names)
        except pa.ArrowException as e:
            raise XltError(f"cannot read the Parquet file: {str(e).splitlines()[0]}", field="file") from None
    else:
        check_utf8_file(in_path)
        csv_source = open_csv_source(in_path)
        check_columns(_read_header(csv_source))
    if scorer is None:
        if predictor is None:
            from predictor import TransferPredictor
            predictor = TransferPredictor.load()
        scorer = local_scorer(predictor, stats)
    if parquet_in:
        total = pq.ParquetFile(in_path).metadata.num_rows
    else:
        total = _estimate_rows(in_path, in_path.stat().st_size)
    if progress is None:
        progress = sys.stderr.isatty() or total > 100_000
    from tqdm import tqdm
    bar = tqdm(total=total, unit="rows", unit_scale=True, desc="xlt batch", file=sys.stderr, disable=not progress,
               leave=False)

    def on_chunk(nrows: int) -> None:
        bar.update(min(nrows, max(0, bar.total - bar.n)))

    it = iter_scored_parquet if parquet_in else iter_scored_csv
    tables = it(str(in_path) if parquet_in else csv_source, scorer, chunk_rows=chunk_rows, on_chunk=on_chunk)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    os.close(fd)
    try:
        _write_tables(tables, tmp, parquet=_is_parquet(out_path), stats=stats)
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    return stats


def _write_tables(tables: Iterator[pa.Table], path: str, parquet: bool, stats: BatchStats) -> None:
    writer, schema = None, None
    try:
        for t in tables:
            if writer is None:
                schema = t.schema
                if parquet:
                    import pyarrow.parquet as pq
                    writer = pq.ParquetWriter(path, t.schema)
                else:
                    writer = pacsv.CSVWriter(path, t.schema, write_options=_csv_write_options())
            writer.write_table(t if t.schema == schema else t.cast(schema))
            _count(t, stats)
        if writer is None:
            raise XltError("the file has a header but no rows", field="file")
    finally:
        if writer is not None:
            writer.close()


def _count(t: pa.Table, stats: BatchStats) -> None:
    bad = pc.greater(pc.utf8_length(t["error"]), 0)
    n_bad = pc.sum(bad).as_py() or 0
    stats.rows += t.num_rows
    stats.errors += n_bad
    stats.scored += t.num_rows - n_bad
    stats.chunks += 1
    if n_bad and len(stats.first_errors) < 5:
        stats.first_errors.extend(t.filter(bad)["error"].to_pylist()[: 5 - len(stats.first_errors)])


def iter_csv_response(data: bytes, predictor, *, chunk_rows: int = 200_000) -> Iterator[bytes]:
    """Stream the scored CSV of an upload (checked beforehand by `validate_upload`), header first."""
    header = True
    for t in iter_scored_csv(io.BytesIO(normalize_newlines(data)), local_scorer(predictor), chunk_rows=chunk_rows):
        yield csv_bytes(t, header)
        header = False


def validate_upload(data: bytes) -> None:
    """File-level checks done before a streamed response starts, so they can still become a 422."""
    if not data.strip():
        raise XltError("the uploaded file is empty", field="file")
    line = first_bad_utf8_line(data)
    if line is not None:
        raise XltError(f"the file is not UTF-8 encoded (first bad byte on line {line}); re-save it as UTF-8",
                       field="file")
    check_columns(_read_header(io.BytesIO(normalize_newlines(data))))


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

    `scheduler=None` starts an in-process LocalCluster (threads); an address connects to a running scheduler.
    Workers load the model themselves (`_worker_predictor`), so nothing but string tables travels.
    """
    from distributed import Client, LocalCluster

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
