"""xlt's interfaces: the typer CLI (`api.cli`), the FastAPI app (`api.app`) and its routers.

The CSV/Parquet batch engine they both call is the top-level `batch` package, not web code."""
