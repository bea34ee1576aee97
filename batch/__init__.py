"""The CSV/Parquet batch engine behind `xlt batch` and `POST /batch` (web-free: no FastAPI, no typer here).

- `batch.io`: reading CSV / Parquet into chunks of string tables with physical line numbers, file-level checks,
  writing CSV (formula-escaped) and Parquet (typed).
- `batch.score`: `score_table` — one prediction per distinct query, broadcast back.
- `batch.engines`: `run_batch` (local), `run_batch_dask` (dask, optional), `validate_upload` / `iter_csv_response`.
"""
from batch.engines import iter_csv_response, run_batch, run_batch_dask, validate_upload
from batch.io import DEFAULT_CHUNK_ROWS, OUTPUT_FORMATS, check_columns, output_format
from batch.score import BatchStats, local_scorer, score_table

__all__ = ["BatchStats", "DEFAULT_CHUNK_ROWS", "OUTPUT_FORMATS", "check_columns", "iter_csv_response",
           "local_scorer", "output_format", "run_batch", "run_batch_dask", "score_table", "validate_upload"]
