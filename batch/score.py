"""Scoring a table of string queries: each distinct query is predicted once, the answers broadcast back.

A million-row file usually holds a few thousand distinct queries. So the query columns are folded into one dense
integer key, the predictor sees one row per distinct key, and the answers are spread back with integer codes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

KEY_COLUMNS = ("model", "task", "task_type", "target", "source", "source_size", "train_config", "k")
OUTPUT_COLUMNS = ("predicted_score", "error")
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


Scorer = Callable[[pa.Table, np.ndarray, str], pa.Table]  # (string table, line numbers, "line"|"row") -> scored


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
    train_config, k). A row with every query field empty is a query too: it gets "line N: model is required".
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


def local_scorer(predictor, stats: BatchStats | None = None) -> Scorer:
    """Score chunks in this process with `predictor`."""
    def score(table: pa.Table, lines: np.ndarray, label: str) -> pa.Table:
        return score_table(table, predictor, line_numbers=lines, label=label, stats=stats)
    return score
