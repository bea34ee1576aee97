"""`xlt serve` with both answer caches switched off — a diagnostic for bench/load.py only, never for serving.

Why: the shipped server keeps two bounded caches (api.cache.AnswerCache, ≤ 4,096 answers / 64 MB, and the facade's
per-request rank memo, ≤ 256 entries), so under a load of mostly-new questions its RSS grows until they are full.
Running the same load against this server separates that bounded growth from a leak in the compute path.
Usage: python -m bench.serve_uncached PORT
"""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    from api.app import create_app
    from api.cache import AnswerCache
    from predictor import TransferPredictor

    port = int((argv or sys.argv[1:])[0])
    p = TransferPredictor.load()
    p._rank_memo = p._rank_compute  # the facade's memo (an lru_cache around _rank_compute): bypassed
    app = create_app(p)
    app.state.answers = AnswerCache(max_entries=0, max_bytes=0)
    app.state.pictures = AnswerCache(max_entries=0, max_bytes=0)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
