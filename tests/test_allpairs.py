"""All-pairs scores are the scores every other interface gives for the same (source, target) question, with and
without target examples (the model's per-query inputs, the record's residual included, reach the fast path)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from api.allpairs import run_all_pairs


@pytest.mark.parametrize("k", [None, 100])
def test_all_pairs_equal_predict(tmp_path, predictor, k):
    langs = ["en", "de", "sw", "yo", "hi", "fi"]
    out = tmp_path / "pairs.parquet"
    stats = run_all_pairs("xlm-r-large", "xnli", out, languages=langs, k=k, predictor=predictor, progress=False)
    df = pd.read_parquet(out)
    assert stats["pairs"] == len(df) == 30 and stats["errors"] == 0
    queries = pd.DataFrame({"model": "xlm-r-large", "task": "xnli", "source": df["source"], "target": df["target"],
                            **({"k": k} if k else {})})
    want = predictor.predict(queries)
    assert (want["error"] == "").all()
    np.testing.assert_allclose(df["predicted_score"].to_numpy(), want["predicted_score"].to_numpy(), atol=1e-9)
    np.testing.assert_allclose(df["lower80"].to_numpy(), want["lower80"].to_numpy(), atol=1e-9)
    np.testing.assert_allclose(df["upper80"].to_numpy(), want["upper80"].to_numpy(), atol=1e-9)


def test_all_pairs_worker_processes_write_the_same_file(tmp_path, predictor, model_dir):
    """`xlt all-pairs --workers 2` (blocks scored in spawned processes, written in order) gives the in-process file."""
    import subprocess
    import sys
    from pathlib import Path

    langs = ["en", "de", "sw", "yo", "hi"]
    out = tmp_path / "pairs.parquet"
    xlt = Path(sys.executable).parent / "xlt"
    cmd = [str(xlt)] if xlt.exists() else [sys.executable, "-m", "api.cli"]
    r = subprocess.run([*cmd, "all-pairs", "-m", "mt5-base", "-t", "wikiann", "--languages", ",".join(langs),
                        "--k", "100", "--chunk-rows", "6", "--workers", "2", "-o", str(out), "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-500:]
    ref = tmp_path / "ref.parquet"
    run_all_pairs("mt5-base", "wikiann", ref, languages=langs, k=100, chunk_rows=6, predictor=predictor,
                  progress=False)
    got, want = pd.read_parquet(out), pd.read_parquet(ref)
    assert len(got) == 20
    pd.testing.assert_frame_equal(got, want)
