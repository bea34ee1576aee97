"""xlt's interfaces: the typer CLI (`api.cli`), the FastAPI app (`api.app`) and the CSV batch engine (`api.batch`)."""
