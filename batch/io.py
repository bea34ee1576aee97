"""Reading query files (CSV, Parquet) into chunks of string tables, and writing scored tables (CSV, Parquet).

Reading: every CSV column is read as a string with pyarrow (no type guessing, extra columns pass through byte for
byte), chunk by chunk so memory stays bounded. Each chunk knows the physical line of each of its rows (header = 1),
and the ragged lines (wrong field count) that fall inside it, so they can be put back in place with an error. A
blank line is not a record; a line of empty fields (`,,,,`) is one (it comes back with "model is required").
Line numbers assume one physical line per record (quoted newlines are not read as values).

File-level problems (no header, a missing required column, a header line over 1 MB, a file that is not UTF-8, a
header but no rows, an unsupported output type) raise `XltError`: the CLI says one line and exits 2, HTTP says 422.

Writing: CSV cells that a spreadsheet would run as a formula (starting `=`, `+`, `-`, `@`, tab or CR; OWASP's rule)
get a leading `'`, plain numbers such as `-1.5` excepted. Parquet keeps Parquet input's column types; columns read
from a CSV become int64 / float64 when every non-blank value is a plain number (blanks become null), else stay text.
"""
from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from batch.score import KEY_COLUMNS, OUTPUT_COLUMNS
from features.errors import XltError

REQUIRED_COLUMNS = ("model", "task", "target")
SOURCE_COLUMNS = ("source", "train_config")  # at least one of them
DEFAULT_CHUNK_ROWS = 1_000_000
READ_BLOCK_BYTES = 16 << 20     # pyarrow's block
MAX_LINE_BYTES = READ_BLOCK_BYTES  # a record up to one block is always read (longer ones straddle two boundaries)
HEADER_MAX_BYTES = 1 << 20
OUTPUT_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
SPREADSHEET_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods", ".numbers")


# --------------------------------------------------------------------------------------------------------- formats
def is_parquet(path) -> bool:
    return str(path).lower().endswith((".parquet", ".pq"))


def output_format(path) -> str:
    """'csv' or 'parquet' from OUT's extension; anything else is refused (no CSV text under an .xlsx name)."""
    suffix = Path(path).suffix.lower()
    if suffix in OUTPUT_FORMATS:
        return OUTPUT_FORMATS[suffix]
    what = f"'{suffix}'" if suffix else "no extension"
    raise XltError(f"cannot write {Path(path).name} ({what}): the output type is chosen by extension, one of "
                   f"{', '.join(OUTPUT_FORMATS)}", field="output")


def check_input_type(path) -> None:
    """Workbooks are zip/binary files, not CSV: say so instead of 'not UTF-8'."""
    if str(path).lower().endswith(SPREADSHEET_SUFFIXES):
        raise XltError(f"cannot read {Path(path).name}: spreadsheet workbooks are not read; save the sheet as CSV "
                       f"(UTF-8) or Parquet", field="file")


# --------------------------------------------------------------------------------------------------------- header
def check_columns(columns: list[str]) -> None:
    """Raise XltError (one line) when the header lacks a required column."""
    cols = list(columns)
    missing = [c for c in REQUIRED_COLUMNS if c not in cols]
    if not any(c in cols for c in SOURCE_COLUMNS):
        missing.append("source or train_config")
    if missing:
        shown = ", ".join(c if len(c) <= 40 else c[:40] + "…" for c in cols) or "nothing"
        raise XltError(f"missing required column(s): {', '.join(missing)} (header has: {shown[:400]})", field="file")
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


def _first_line(source) -> bytes:
    """The header line (at most HEADER_MAX_BYTES + 1 bytes of it), without reading the whole file."""
    if isinstance(source, (str, Path)):
        with open(source, "rb") as fh:
            return fh.readline(HEADER_MAX_BYTES + 3)
    source.seek(0)
    first = source.readline(HEADER_MAX_BYTES + 3)
    source.seek(0)
    return first


def _open_bytes(source):
    """A fresh binary reader of the CSV source (a path, or the in-memory copy `open_csv_source` made)."""
    return open(source, "rb") if isinstance(source, (str, Path)) else io.BytesIO(source.getvalue())


def _nothing_after_header(source, block: int = 1 << 16) -> bool:
    """True when only line ends follow the header: a file with no rows is refused before a model is loaded for it
    (as every file-level problem is), which also spares `xlt batch` the 2 s load. Reads until the first other byte,
    so a real file costs one block."""
    with _open_bytes(source) as fh:
        fh.readline(HEADER_MAX_BYTES + 3)
        while chunk := fh.read(block):
            if chunk.strip(b"\r\n"):
                return False
    return True


def read_header(source) -> list[str]:
    """Column names from the first line, parsed by pyarrow like the rows are (any field length up to 1 MB)."""
    first = _first_line(source)
    if first.startswith(b"\xef\xbb\xbf"):
        first = first[3:]
    line = first.rstrip(b"\r\n")
    if len(line) > HEADER_MAX_BYTES:
        raise XltError(f"the header line is longer than {HEADER_MAX_BYTES >> 20} MB: expected column names such as "
                       f"model,task,target,source", field="file")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise XltError("the file is not UTF-8 encoded (bad byte in the header line 1); re-save it as UTF-8",
                       field="file") from None
    if not text.strip():
        raise XltError("the file is empty: expected a header line with model, task, target and source or "
                       "train_config", field="file")
    try:
        read = pacsv.ReadOptions(use_threads=False, block_size=max(1 << 16, 2 * len(line)))
        names = pacsv.read_csv(io.BytesIO(line + b"\n"), read_options=read,
                               parse_options=pacsv.ParseOptions(newlines_in_values=False)).column_names
    except pa.ArrowException as e:
        raise XltError(f"cannot read the header line (is a quote left open?): {str(e).splitlines()[0]}",
                       field="file") from None
    return [c.strip() for c in names]


def first_bad_utf8_line(data: bytes) -> int | None:
    """Physical line (1-based) of the first byte sequence that is not UTF-8, or None when the data is clean."""
    try:
        data.decode("utf-8")
        return None
    except UnicodeDecodeError as e:
        return data.count(b"\n", 0, e.start) + 1


def check_text_file(path, block: int = 16 << 20) -> None:
    """One fast pass (~1 GB/s, before any model work): raise XltError naming the line of the first non-UTF-8
    byte, or of the first line longer than the reader takes (MAX_LINE_BYTES)."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    lines_before = 0
    run = 0  # bytes of the current line seen in earlier blocks
    eol = None
    with open(path, "rb") as fh:
        while True:
            data = fh.read(block)
            if eol is None:
                eol = b"\r" if cr_only(data[: 1 << 20]) else b"\n"
            try:
                decoder.decode(data, final=not data)
            except UnicodeDecodeError as e:
                line = lines_before + data.count(eol, 0, max(0, e.start)) + 1
                raise XltError(f"the file is not UTF-8 encoded (first bad byte on line {line}); re-save it as UTF-8",
                               field="file") from None
            if not data:
                return
            first = data.find(eol)
            if run + (len(data) if first < 0 else first) > MAX_LINE_BYTES:
                raise XltError(too_long_message(lines_before + 1), field="file")
            if first >= 0:
                inner = first_overlong_line(data, start=first + 1, eol=eol)
                if inner is not None:
                    raise XltError(too_long_message(lines_before + inner), field="file")
                run = len(data) - data.rfind(eol) - 1
            else:
                run += len(data)
            lines_before += data.count(eol)


def first_overlong_line(data: bytes, limit: int | None = None, start: int = 0, eol: bytes = b"\n") -> int | None:
    """Line (1-based, counted from data[0]) of the first line from `start` on longer than `limit` bytes, or None.
    Jumps from window to window (a few rfind calls for 50 MB)."""
    limit = MAX_LINE_BYTES if limit is None else limit
    pos, n = start, len(data)
    while n - pos > limit:
        j = data.rfind(eol, pos, pos + limit + 1)
        if j < 0:
            return data.count(eol, 0, pos) + 1
        pos = j + 1
    return None


def too_long_message(line: int | None = None) -> str:
    where = f"line {line}" if line else "a line"
    return (f"{where} is longer than {MAX_LINE_BYTES >> 20} MB, the longest record read; is a quote left open or "
            f"is this not a CSV file?")


# --------------------------------------------------------------------------------------------------------- chunks
@dataclass
class Chunk:
    """A piece of the input, ready to score: `table` (query columns as strings), each row's physical `lines`,
    `label` ('line' for CSV, 'row' for Parquet), the `ragged` lines inside it, and the typed Parquet columns to
    put back in the output (`restore`)."""

    table: pa.Table
    lines: np.ndarray
    label: str
    columns: list[str]
    ragged: list[tuple[int, str]] = field(default_factory=list)
    restore: dict[str, pa.ChunkedArray] = field(default_factory=dict)
    n_read: int = 0  # rows read from the file for this chunk (blank lines included): the progress bar's unit

    def assemble(self, scored: pa.Table) -> pa.Table:
        """The output rows of this chunk: scored rows with their typed columns back, ragged lines in place."""
        for name, original in self.restore.items():
            scored = scored.set_column(scored.schema.get_field_index(name), name, original)
        if self.ragged:
            scored = _merge_ragged(scored, self.lines, self.ragged, self.columns)
        return scored


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
    reader = None
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
        if "straddl" in msg:
            raise XltError(too_long_message(), field="file") from None
        raise XltError(f"cannot read the CSV: {msg.splitlines()[0]}", field="file") from None
    finally:
        # the streaming reader's read-ahead thread is joined now, while Arrow is alive: left to the interpreter's
        # final teardown it can outlive Arrow's thread pool and abort the process ("terminate called without an
        # active exception", apache/arrow#34314). The exit −6 seen in CI on a header-only file outlived this alone;
        # such a file is now refused before a model is loaded (open_input)
        if reader is not None:
            reader.close()


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


class _BlankLines:
    """Physical numbers of the empty lines of a CSV, found only when a chunk has rows whose every field is empty
    (pyarrow reads a blank line and `,,,,` alike; only the second is a record)."""

    def __init__(self, source):
        self.source = source
        self._lines: np.ndarray | None = None

    def lines(self) -> np.ndarray:
        if self._lines is None:
            with _open_bytes(self.source) as fh:
                self._lines = np.array([i for i, ln in enumerate(fh, 1) if ln in (b"\n", b"\r\n")], np.int64)
        return self._lines


def _drop_blank(table: pa.Table, lines: np.ndarray, blanks: _BlankLines) -> tuple[pa.Table, np.ndarray]:
    """Blank lines are not records: drop them (they still count for line numbers). A line of empty fields stays."""
    if table.num_rows == 0:
        return table, lines
    empty = None
    for col in table.column_names:
        e = pc.equal(pc.utf8_length(table[col]), 0)
        empty = e if empty is None else pc.and_(empty, e)
    mask = np.asarray(empty.combine_chunks() if hasattr(empty, "combine_chunks") else empty, dtype=bool)
    if not mask.any():
        return table, lines
    mask[mask] = np.isin(lines[mask], blanks.lines())
    if not mask.any():
        return table, lines
    keep = ~mask
    return table.filter(pa.array(keep)), lines[keep]


def _ragged_table(columns: list[str], rows: list[tuple[int, str]]) -> pa.Table:
    """Output rows for lines that could not be split into the header's columns."""
    n = len(rows)
    data = {c: pa.array([""] * n, pa.string()) for c in columns}
    data["predicted_score"] = pa.nulls(n, pa.float64())
    data["error"] = pa.array([f"line {ln}: {why}" for ln, why in rows], pa.string())
    return pa.table(data)


def _merge_ragged(out: pa.Table, lines: np.ndarray, ragged, columns: list[str]) -> pa.Table:
    extra = _ragged_table(columns, ragged)
    if out.num_rows == 0:
        return extra
    extra = extra.select(out.column_names).cast(out.schema)
    both = pa.concat_tables([out, extra])
    order = np.argsort(np.concatenate([lines, np.array([ln for ln, _ in ragged], np.int64)]), kind="stable")
    return both.take(pa.array(order))


def _no_rows() -> XltError:
    return XltError("the file has a header but no rows: nothing to score", field="file")


def csv_chunks(source, *, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[Chunk]:
    """Chunks of a CSV (path or BytesIO) in input order; every record in exactly one chunk, blank lines dropped.

    Raises XltError for file-level problems, and when the file holds no record at all (a header only)."""
    columns = read_header(source)
    check_columns(columns)
    if isinstance(source, io.BytesIO):
        source.seek(0)
    invalid = _InvalidRows()
    tracker = _CsvLineTracker(invalid)
    blanks = _BlankLines(source)
    out_columns = [c for c in columns if c not in OUTPUT_COLUMNS]
    records = 0
    for table in _chunks(_csv_batches(source, columns, invalid), chunk_rows):
        n_read = table.num_rows
        lines, ragged = tracker.place(table.num_rows)
        table, lines = _drop_blank(table, lines, blanks)
        if table.num_rows == 0 and not ragged:
            continue
        records += table.num_rows + len(ragged)
        yield Chunk(table, lines, "line", out_columns, ragged=ragged, n_read=n_read)
    ragged = tracker.rest()
    if ragged:
        records += len(ragged)
        empty = pa.table({c: pa.array([], pa.string()) for c in columns})
        yield Chunk(empty, np.array([], np.int64), "line", out_columns, ragged=ragged)
    if records == 0:
        raise _no_rows()


def parquet_chunks(path, *, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[Chunk]:
    """Chunks of a Parquet file: query columns cast to strings for scoring, their original types kept for output;
    errors say `row N` (1-based)."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        names = pf.schema_arrow.names
    except pa.ArrowException as e:
        raise XltError(f"cannot read the Parquet file: {str(e).splitlines()[0]}", field="file") from None
    check_columns(names)
    out_columns = [c for c in names if c not in OUTPUT_COLUMNS]
    row = 1
    try:
        for rb in pf.iter_batches(batch_size=chunk_rows):
            t = pa.Table.from_batches([rb])
            restore = {}
            for i, name in enumerate(t.column_names):
                if name not in KEY_COLUMNS:
                    continue
                col = t[name]
                if col.type == pa.string() and col.null_count == 0:
                    continue
                restore[name] = col
                try:
                    text = col if col.type == pa.string() else pc.cast(col, pa.string())
                except pa.ArrowException:
                    raise XltError(f"column {name} has type {col.type}, which cannot be read as text",
                                   field="file") from None
                t = t.set_column(i, name, pc.fill_null(text, ""))
            lines = np.arange(row, row + t.num_rows, dtype=np.int64)
            row += t.num_rows
            yield Chunk(t, lines, "row", out_columns, restore=restore, n_read=t.num_rows)
    except pa.ArrowException as e:
        raise XltError(f"cannot read the Parquet file: {str(e).splitlines()[0]}", field="file") from None
    finally:
        pf.close()   # its reader threads joined while Arrow is alive (see _csv_batches)
    if row == 1:
        raise _no_rows()


@dataclass
class Input:
    """An input file that passed the file-level checks: its kind, a row estimate for progress, its chunks."""

    kind: str  # "csv" | "parquet"
    total_rows: int
    chunks: Callable[[int], Iterator[Chunk]]


def open_input(path) -> Input:
    """File-level checks first (a bad header must not wait for, or need, a model), then a chunk source."""
    path = Path(path)
    if path.is_dir():
        raise XltError(f"input {path} is a directory, not a file", field="file")
    if not path.is_file():
        raise XltError(f"input file not found: {path}", field="file")
    check_input_type(path)
    if is_parquet(path):
        import pyarrow.parquet as pq
        try:
            meta = pq.ParquetFile(path)
            names, total = meta.schema_arrow.names, meta.metadata.num_rows
        except pa.ArrowException as e:
            raise XltError(f"cannot read the Parquet file: {str(e).splitlines()[0]}", field="file") from None
        check_columns(names)
        return Input("parquet", total, lambda chunk_rows: parquet_chunks(str(path), chunk_rows=chunk_rows))
    check_text_file(path)
    source = open_csv_source(path)
    check_columns(read_header(source))
    if _nothing_after_header(source):
        raise _no_rows()
    return Input("csv", _estimate_rows(path, path.stat().st_size), lambda chunk_rows: csv_chunks(source,
                                                                                                chunk_rows=chunk_rows))


def _estimate_rows(path: Path, size: int) -> int:
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
    return max(1, int(size * max(1, head.count(b"\n")) / max(1, len(head))))


# --------------------------------------------------------------------------------------------------------- writing
_FORMULA_START = r"^[=+\-@\t\r]"
_PLAIN_NUMBER = r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
_RISKY_BYTE = np.zeros(256, dtype=bool)
_RISKY_BYTE[[ord(c) for c in "=+-@\t\r"]] = True


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def escape_cell(value: str) -> str:
    """OWASP CSV-injection rule for one cell: a leading ' when a spreadsheet would read a formula."""
    import re
    if re.match(_FORMULA_START, value) and not re.match(_PLAIN_NUMBER, value):
        return "'" + value
    return value


def _risky_start(arr: pa.Array) -> np.ndarray:
    """Rows whose first byte is = + - @ tab or CR, read straight from the string buffers (a regex pass per column
    cost ~45 ms per million rows; this ~5 ms)."""
    n = len(arr)
    _, offsets_buf, data_buf = arr.buffers()
    if n == 0 or data_buf is None:
        return np.zeros(n, dtype=bool)
    otype = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(offsets_buf, otype)[arr.offset: arr.offset + n + 1]
    starts = offsets[:-1]
    nonempty = offsets[1:] > starts
    first = np.zeros(n, dtype=np.uint8)
    first[nonempty] = np.frombuffer(data_buf, np.uint8)[starts[nonempty]]
    mask = _RISKY_BYTE[first]
    if arr.null_count:
        mask &= np.asarray(arr.is_valid(), dtype=bool)
    return mask


def _escape_column(col: pa.ChunkedArray) -> pa.ChunkedArray:
    chunks = []
    for arr in col.chunks:
        risky = _risky_start(arr)
        if risky.any():
            rows = np.flatnonzero(risky)
            numbers = np.asarray(pc.match_substring_regex(arr.take(pa.array(rows)), _PLAIN_NUMBER), dtype=bool)
            risky[rows[numbers]] = False
            if risky.any():
                quoted = pc.binary_join_element_wise(pa.scalar("'", arr.type), arr, pa.scalar("", arr.type))
                arr = pc.if_else(pa.array(risky), quoted, arr)
        chunks.append(arr)
    return pa.chunked_array(chunks, col.type)


def escape_formulas(table: pa.Table) -> pa.Table:
    """Prefix `'` to text cells (and column names) starting with = + - @ tab or CR, unless the cell is a plain
    number (-1.5, +3, -2e5 are harmless and stay numbers). Number columns (predicted_score) are never touched."""
    cols = [_escape_column(col) if _is_text(col.type) and name != "error" else col  # errors start "line N:"
            for name, col in zip(table.column_names, table.columns)]
    return pa.table(cols, names=[escape_cell(n) for n in table.column_names])


def _csv_write_options(header: bool = True) -> pacsv.WriteOptions:
    return pacsv.WriteOptions(include_header=header, quoting_style="needed")


def csv_bytes(table: pa.Table, header: bool) -> bytes:
    """One chunk of scored CSV (formula-escaped)."""
    sink = io.BytesIO()
    pacsv.write_csv(escape_formulas(table), sink, write_options=_csv_write_options(header))
    return sink.getvalue()


_INT = r"^\s*(?:-?(?:0|[1-9][0-9]{0,17}))?\s*$"  # fits int64; leading zeros ("007") are text; blank matches
_FLOAT = r"^\s*(?:[+-]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)?\s*$"
_LONG_INT = r"^\s*[+-]?[0-9]{19,}\s*$"  # as float it would lose digits: text
_KIND_ORDER = ("int", "float", "text")  # a column's kind only moves right as chunks arrive


def _number_kind(col: pa.ChunkedArray) -> str:
    """'int', 'float' or 'text' for one chunk of a text column (blank cells fit any; an all-blank column is
    'text'). A sample first, so a text column costs almost nothing."""
    def every(part, pattern) -> bool:
        return bool(pc.all(pc.fill_null(pc.match_substring_regex(part, pattern), True)).as_py())

    sample = col.slice(0, 1000)
    if not every(sample, _FLOAT) or pc.any(pc.match_substring_regex(sample, _LONG_INT)).as_py():
        return "text"
    if not pc.any(pc.match_substring_regex(col, r"\S")).as_py():
        return "text"
    if every(col, _INT):
        return "int"
    if every(col, _FLOAT) and not pc.any(pc.match_substring_regex(col, _LONG_INT)).as_py():
        return "float"
    return "text"


def _to_number(col: pa.ChunkedArray, kind: str) -> pa.ChunkedArray:
    v = pc.utf8_trim_whitespace(col)
    blank = pc.fill_null(pc.equal(pc.utf8_length(v), 0), True)
    v = pc.if_else(blank, pa.scalar(None, pa.string()), v)
    return pc.cast(v, pa.int64() if kind == "int" else pa.float64())


def _typed(t: pa.Table, numbers: dict[str, str]) -> pa.Table:
    for name, kind in numbers.items():
        t = t.set_column(t.schema.get_field_index(name), name, _to_number(t[name], kind))
    return t


def write_tables(tables: Iterator[pa.Table], path, fmt: str, *, infer_numbers: bool = False) -> None:
    """Write scored tables to `path` as CSV (formula-escaped) or Parquet. With `infer_numbers` (CSV input),
    Parquet columns whose every non-blank value is a plain number become int64 / float64 (blank → null). One chunk
    (up to a million rows by default) is typed and written at once; for more, the strings are written first and
    the file is rewritten once every column has been seen whole."""
    if fmt == "csv":
        writer, schema = None, None
        try:
            for t in tables:
                if writer is None:
                    schema = t.schema
                    writer = pacsv.CSVWriter(path, escape_formulas(t.slice(0, 0)).schema,
                                             write_options=_csv_write_options())
                writer.write_table(escape_formulas(t if t.schema == schema else t.cast(schema)))
        finally:
            if writer is not None:
                writer.close()
        return
    import itertools

    import pyarrow.parquet as pq

    tables = iter(tables)
    first = next(tables)
    second = next(tables, None)
    candidates = [f.name for f in first.schema if _is_text(f.type) and f.name != "error"] if infer_numbers else []
    if second is None:  # one chunk: type it in memory
        numbers = {name: kind for name in candidates if (kind := _number_kind(first[name])) != "text"}
        pq.write_table(_typed(first, numbers), str(path))
        return
    kinds = {name: "int" for name in candidates}
    strings = f"{path}.text" if candidates else str(path)
    try:
        with pq.ParquetWriter(strings, first.schema) as writer:
            for t in itertools.chain([first, second], tables):
                t = t if t.schema == first.schema else t.cast(first.schema)
                for name in kinds:
                    if kinds[name] != "text":
                        kinds[name] = max(kinds[name], _number_kind(t[name]), key=_KIND_ORDER.index)
                writer.write_table(t)
        if not candidates:
            return
        numbers = {name: kind for name, kind in kinds.items() if kind != "text"}
        if not numbers:
            os.replace(strings, path)
            return
        src = pq.ParquetFile(strings)
        with pq.ParquetWriter(str(path), _typed(src.schema_arrow.empty_table(), numbers).schema) as out:
            for i in range(src.num_row_groups):
                out.write_table(_typed(src.read_row_group(i), numbers))
    finally:
        if candidates:
            Path(strings).unlink(missing_ok=True)


def atomic_output(out_path: Path) -> tuple[str, Callable[[], None], Callable[[], None]]:
    """A temp file next to OUT, a commit (rename over OUT) and a discard."""
    if out_path.is_dir():
        raise XltError(f"cannot write {out_path}: it is a directory", field="output")
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    except OSError as e:  # a parent that is a file, no permission, read-only or full disk
        raise XltError(f"cannot write {out_path}: {e.strerror or e}", field="output") from None
    os.close(fd)
    return tmp, lambda: os.replace(tmp, out_path), lambda: Path(tmp).unlink(missing_ok=True)
