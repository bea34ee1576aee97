"""The CSV/Parquet batch engine on the real model: row errors with line numbers, pass-through, dedupe, formats, dask."""
from __future__ import annotations

import io

import pandas as pd
import pytest

import batch
from features.errors import XltError

HEADER = "model,task,source,target,id\n"


def _run(tmp_path, predictor, text: str | bytes, name="in.csv", out="out.csv", **kw):
    src = tmp_path / name
    src.write_bytes(text.encode() if isinstance(text, str) else text)
    dst = tmp_path / out
    stats = batch.run_batch(src, dst, predictor, progress=False, **kw)
    if out.endswith(".parquet"):
        return pd.read_parquet(dst), stats
    return pd.read_csv(dst, keep_default_na=False, dtype=str), stats


def test_good_rows_scored_bad_rows_numbered(tmp_path, predictor):
    text = (HEADER
            + "xlm-r-large,xnli,en,sw,a\n"       # line 2
            + "xlm-r-large,xnli,en,klingonish,b\n"  # line 3: unknown target
            + "\n"                               # line 4: blank, not a record
            + "xlm-r-large,xnli,en\n"            # line 5: ragged
            + "mt5-base,udpos,en,yo,c\n"         # line 6
            + "xlm-r-large,telepathy,en,sw,d\n"  # line 7: unknown task
            + "xlm-r-large,xnli,en,sw,e\n")      # line 8: same query as line 2
    out, stats = _run(tmp_path, predictor, text)
    assert list(out.columns) == ["model", "task", "source", "target", "id", "predicted_score", "error"]
    assert len(out) == 6 and stats.rows == 6 and stats.errors == 3 and stats.scored == 3
    errors = out["error"].tolist()
    assert errors[0] == "" and errors[3] == "" and errors[5] == ""
    assert errors[1].startswith("line 3: ") and "klingonish" in errors[1]
    assert errors[2] == "line 5: expected 5 fields, found 3"
    assert errors[4].startswith("line 7: ") and "telepathy" in errors[4]
    assert out["id"].tolist() == ["a", "b", "", "c", "d", "e"]
    assert out.loc[1, "predicted_score"] == "" and out.loc[4, "predicted_score"] == ""
    assert out.loc[0, "predicted_score"] == out.loc[5, "predicted_score"]
    # identical queries are predicted once; the answer matches the facade's own predict
    assert stats.distinct_queries == 4
    want = predictor.predict(pd.DataFrame([{"model": "mt5-base", "task": "udpos", "source": "en", "target": "yo"}]))
    assert float(out.loc[3, "predicted_score"]) == pytest.approx(want["predicted_score"].iloc[0], abs=1e-4)


def test_mixtures_k_and_optional_columns(tmp_path, predictor):
    text = ("model,task,task_type,target,train_config,k\n"
            "xlm-r-large,xnli,,sw,en:1000;de:500,\n"
            "xlm-r-large,xnli,,sw,en:1000;de:500,100\n"
            "xlm-r-large,my-task,classification,sw,en:1000,\n"
            "xlm-r-large,xnli,,sw,en:abc,\n"
            "xlm-r-large,xnli,,sw,en:1000,-3\n")
    out, _ = _run(tmp_path, predictor, text)
    assert out["error"].tolist()[:3] == ["", "", ""]
    assert float(out.loc[1, "predicted_score"]) >= float(out.loc[0, "predicted_score"])  # k examples never hurt
    assert out.loc[3, "error"].startswith("line 5: ") and "train_config" in out.loc[3, "error"]
    assert out.loc[4, "error"].startswith("line 6: ") and "k" in out.loc[4, "error"]


def test_missing_column_and_bad_encoding_are_file_errors(tmp_path, predictor):
    with pytest.raises(XltError, match="missing required column.*source or train_config"):
        _run(tmp_path, predictor, "model,task,target\nxlm-r-large,xnli,sw\n")
    with pytest.raises(XltError, match="missing required column.*model"):
        _run(tmp_path, predictor, "task,source,target\nxnli,en,sw\n")
    with pytest.raises(XltError, match=r"not UTF-8 .*line 3"):
        _run(tmp_path, predictor, (HEADER + "xlm-r-large,xnli,en,sw,a\nxlm-r-large,xnli,en,sw,Espa\xf1a\n")
             .encode("latin-1"))
    with pytest.raises(XltError, match="empty"):
        _run(tmp_path, predictor, "")
    with pytest.raises(XltError, match="no rows"):
        _run(tmp_path, predictor, HEADER)


def test_utf8_bom_and_crlf(tmp_path, predictor):
    out, _ = _run(tmp_path, predictor, "\ufeff" + HEADER.replace("\n", "\r\n") + "xlm-r-large,xnli,en,sw,a\r\n")
    assert out["error"].tolist() == [""] and out.columns[0] == "model"


def test_parquet_in_and_out(tmp_path, predictor):
    df = pd.DataFrame({"model": ["xlm-r-large", "xlm-r-large"], "task": ["xnli", "xnli"], "source": ["en", "de"],
                       "target": ["sw", "nope-lang"], "source_size": [1000, 2000], "weight": [0.5, 1.5]})
    df.to_parquet(tmp_path / "in.parquet", index=False)
    batch.run_batch(tmp_path / "in.parquet", tmp_path / "out.parquet", predictor, progress=False)
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out["weight"].tolist() == [0.5, 1.5]  # pass-through keeps its type in Parquet
    assert out.loc[0, "error"] == "" and 0 < out.loc[0, "predicted_score"] <= 100
    assert out.loc[1, "error"].startswith("row 2: ") and pd.isna(out.loc[1, "predicted_score"])


def test_chunks_keep_order_and_line_numbers(tmp_path, predictor):
    rows = [f"xlm-r-large,xnli,en,{'sw' if i % 7 else 'bogus'},{i}" for i in range(50)]
    out, stats = _run(tmp_path, predictor, HEADER + "\n".join(rows) + "\n", chunk_rows=8)
    assert out["id"].tolist() == [str(i) for i in range(50)]
    bad = out[out["error"] != ""]
    assert bad["id"].tolist() == [str(i) for i in range(0, 50, 7)]
    assert all(e.startswith(f"line {int(i) + 2}: ") for i, e in zip(bad["id"], bad["error"]))


def test_upload_stream_matches_file_engine(predictor):
    data = (HEADER + "xlm-r-large,xnli,en,sw,a\nxlm-r-large,xnli,de,zz-Qaaa,b\n").encode()
    batch.validate_upload(data)
    text = b"".join(batch.iter_csv_response(data, predictor)).decode()
    out = pd.read_csv(io.StringIO(text), keep_default_na=False)
    assert len(out) == 2 and out.loc[0, "error"] == "" and out.loc[1, "error"].startswith("line 3: ")


def test_dask_engine_matches_local(tmp_path, predictor, model_dir):
    text = HEADER + "".join(f"xlm-r-large,xnli,{s},sw,{i}\n" for i, s in enumerate(["en", "de", "fr", "qq", "ar"] * 4))
    (tmp_path / "in.csv").write_text(text)
    batch.run_batch(tmp_path / "in.csv", tmp_path / "local.csv", predictor, progress=False)
    batch.run_batch_dask(tmp_path / "in.csv", tmp_path / "dask.csv", partitions=3, chunk_rows=7, progress=False)
    local = pd.read_csv(tmp_path / "local.csv", keep_default_na=False)
    dask = pd.read_csv(tmp_path / "dask.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(local, dask)
    assert (dask["error"] != "").sum() == 4 and dask.loc[3, "error"].startswith("line 5: ")


def test_cr_only_line_ends_file_and_upload(tmp_path, predictor, client):
    """Old Excel / classic Mac CSVs end lines with a bare CR: every record is read, line numbers still count lines."""
    text = (HEADER + "xlm-r-large,xnli,en,sw,a\n" + "xlm-r-large,xnli,en,klingonish,b\n"
            + "mt5-base,udpos,en,yo,c\n").replace("\n", "\r")
    out, stats = _run(tmp_path, predictor, text)
    assert out["id"].tolist() == ["a", "b", "c"] and stats.scored == 2
    assert out["error"][1].startswith("line 3: ") and "klingonish" in out["error"][1]
    r = client.post("/batch", files={"file": ("cr.csv", text.encode(), "text/csv")})
    assert r.status_code == 200, r.text
    up = pd.read_csv(io.StringIO(r.text), keep_default_na=False, dtype=str)
    assert up["id"].tolist() == ["a", "b", "c"]
    assert up["predicted_score"].tolist() == out["predicted_score"].tolist()
    assert up["error"][1] == out["error"][1]
