"""Issue 9's batch defects, each through the engine, `xlt batch` and `POST /batch`: long header fields, `,,,,`
records, header-only files, typed Parquet output, output extensions, spreadsheet formula injection."""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import batch
from batch.io import escape_cell, escape_formulas, first_overlong_line
from features.errors import XltError

ROOT = Path(__file__).resolve().parent.parent
XLT = [sys.executable, "-m", "api.cli"]
HEADER = "model,task,source,target,id\n"
GOOD = "xlm-r-large,xnli,en,sw"


def _xlt(*args):
    return subprocess.run([*XLT, *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=120)


def _one_error_line(r) -> str:
    lines = [line for line in r.stderr.strip().splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("xlt: error: "), (r.returncode, r.stderr)
    return lines[0]


def _run(tmp_path, predictor, text, out="out.csv", **kw):
    src = tmp_path / "in.csv"
    src.write_bytes(text.encode() if isinstance(text, str) else text)
    stats = batch.run_batch(src, tmp_path / out, predictor, progress=False, **kw)
    return tmp_path / out, stats


def _read(path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, dtype=str)


def _upload(client, data: bytes):
    return client.post("/batch", files={"file": ("q.csv", io.BytesIO(data), "text/csv")})


# ------------------------------------------------------------------------------------- 128 KB header field
def test_128_kb_column_name_is_read_and_passed_through(tmp_path, predictor, client):
    """Python's csv module stops at 131,072 characters a field (it was a 500 and a CLI traceback)."""
    name = "x" * 140_000
    text = f"model,task,source,target,{name}\n{GOOD},a\n{GOOD},b\n"
    dst, stats = _run(tmp_path, predictor, text)
    out = _read(dst)
    assert list(out.columns) == ["model", "task", "source", "target", name, "predicted_score", "error"]
    assert out[name].tolist() == ["a", "b"] and stats.scored == 2
    r = _upload(client, text.encode())
    assert r.status_code == 200, r.text[:300]
    up = pd.read_csv(io.StringIO(r.text), keep_default_na=False, dtype=str)
    assert list(up.columns) == list(out.columns) and up["predicted_score"].tolist() == out["predicted_score"].tolist()


def test_header_line_over_1_mb_is_a_file_error(tmp_path, predictor, client, model_dir):
    text = "model,task,source,target," + "y" * (2 << 20) + "\n" + GOOD + ",a\n"
    with pytest.raises(XltError, match="header line is longer than 1 MB"):
        _run(tmp_path, predictor, text)
    r = _upload(client, text.encode())
    assert r.status_code == 422 and "header line is longer than 1 MB" in r.json()["detail"][0]["msg"]
    src = tmp_path / "long.csv"
    src.write_text(text)
    line = _one_error_line(_xlt("batch", src, "-o", tmp_path / "o.csv"))
    assert "header line is longer than 1 MB" in line and not (tmp_path / "o.csv").exists()


def test_line_over_the_read_block_is_a_file_error_with_its_number(tmp_path, predictor):
    assert first_overlong_line(b"ab\ncdefgh\nij\n", limit=4) == 2
    assert first_overlong_line(b"ab\ncd\nef\n", limit=4) is None
    data = (HEADER + f"{GOOD},a\n{GOOD}," + "z" * (17 << 20) + "\n").encode()
    with pytest.raises(XltError, match=r"^line 3 is longer than 16 MB"):
        batch.validate_upload(data)
    with pytest.raises(XltError, match=r"^line 3 is longer than 16 MB"):
        _run(tmp_path, predictor, data)
    with pytest.raises(XltError, match=r"^line 3 is longer than 16 MB"):  # CR-only (old Excel) lines too
        _run(tmp_path, predictor, data.replace(b"\n", b"\r"))
    # a long line across the engine's 16 MB read blocks: the line count carries over
    data = (HEADER + f"{GOOD},a\n" * 500_000 + f"{GOOD}," + "z" * (17 << 20) + "\n").encode()
    with pytest.raises(XltError, match=r"^line 500002 is longer than 16 MB"):
        _run(tmp_path, predictor, data)
    # CR-only files over one block are still read line by line
    big = (HEADER + f"{GOOD},a\n" * 700_000).replace("\n", "\r")
    assert len(big) > 16 << 20
    from batch.io import check_text_file
    (tmp_path / "cr.csv").write_text(big)
    check_text_file(tmp_path / "cr.csv")


# ------------------------------------------------------------------------------------- ,,,, records
def test_record_of_empty_fields_comes_out_in_place(tmp_path, predictor, client):
    text = HEADER + f"{GOOD},a\n" + ",,,,\n" + f"{GOOD},c\n"
    dst, stats = _run(tmp_path, predictor, text)
    out = _read(dst)
    assert len(out) == 3 and stats.rows == 3 and stats.errors == 1
    assert out["id"].tolist() == ["a", "", "c"]
    assert out["error"].tolist() == ["", "line 3: model is required", ""]
    assert out.loc[1, "predicted_score"] == "" and float(out.loc[0, "predicted_score"]) > 0
    up = pd.read_csv(io.StringIO(_upload(client, text.encode()).text), keep_default_na=False, dtype=str)
    pd.testing.assert_frame_equal(up, out)


def test_blank_lines_are_not_records_but_empty_field_lines_are(tmp_path, predictor):
    """LF and CRLF blank lines are skipped (they still count as lines); `,,,,` at any chunk boundary is a record."""
    for eol in ("\n", "\r\n"):
        text = (HEADER + f"{GOOD},a\n\n,,,,\n\n{GOOD},b\n,,,,\n").replace("\n", eol)
        for chunk_rows in (1, 2, 100):
            out = _read(_run(tmp_path, predictor, text, chunk_rows=chunk_rows)[0])
            assert out["id"].tolist() == ["a", "", "b", ""], (eol, chunk_rows)
            assert out["error"].tolist() == ["", "line 4: model is required", "", "line 7: model is required"]


# ------------------------------------------------------------------------------------- header only
@pytest.mark.parametrize("text", [HEADER, HEADER + "\n\n", HEADER.replace("\n", "\r\n") + "\r\n"],
                         ids=["header", "header+blank lines", "crlf header+blank line"])
def test_header_only_is_no_rows_everywhere(tmp_path, predictor, client, text, model_dir):
    """Decision: nothing to score is a file-level error, like an empty file: 422 on /batch, exit 2 on the CLI
    (it was 200 with a 0-byte body on /batch while the CLI exited 2)."""
    with pytest.raises(XltError, match="header but no rows"):
        _run(tmp_path, predictor, text)
    r = _upload(client, text.encode())
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["msg"] == "the file has a header but no rows: nothing to score"
    assert r.json()["detail"][0]["loc"] == ["body", "file"]
    if text == HEADER:
        src = tmp_path / "h.csv"
        src.write_text(text)
        assert "header but no rows" in _one_error_line(_xlt("batch", src, "-o", tmp_path / "h_out.csv"))
        assert not (tmp_path / "h_out.csv").exists()


def test_header_only_parquet_is_no_rows(tmp_path, predictor):
    pd.DataFrame({c: pd.Series([], dtype=str) for c in ("model", "task", "source", "target")}).to_parquet(
        tmp_path / "e.parquet")
    with pytest.raises(XltError, match="header but no rows"):
        batch.run_batch(tmp_path / "e.parquet", tmp_path / "o.csv", predictor, progress=False)


def test_only_ragged_rows_still_come_out(tmp_path, predictor):
    out = _read(_run(tmp_path, predictor, HEADER + "a,b\n")[0])
    assert out["error"].tolist() == ["line 2: expected 5 fields, found 2"]


# ------------------------------------------------------------------------------------- Parquet output types
def test_csv_to_parquet_infers_number_columns(tmp_path, predictor):
    text = ("model,task,source,target,k,id,weight,zip,note,big\n"
            f"{GOOD},,1,0.5,02134,x,12345678901234567890\n"
            f"{GOOD},5,2,1e3,10001,7,1\n"
            f"{GOOD},, -3 ,,,,\n")
    dst, _ = _run(tmp_path, predictor, text, out="o.parquet")
    schema = pq.read_schema(dst)
    assert schema.field("k").type == pa.int64() and schema.field("id").type == pa.int64()
    assert schema.field("weight").type == pa.float64()
    assert schema.field("zip").type == pa.string()      # leading zero: an identifier, not a number
    assert schema.field("note").type == pa.string()     # "x" and "7": text
    assert schema.field("big").type == pa.string()      # 20 digits fit neither int64 nor float64 exactly
    assert schema.field("predicted_score").type == pa.float64()
    out = pd.read_parquet(dst)
    assert pd.isna(out.loc[0, "k"]) and out.loc[1, "k"] == 5 and pd.isna(out.loc[2, "k"])
    assert out["id"].tolist() == [1, 2, -3]
    assert out.loc[0, "weight"] == 0.5 and out.loc[1, "weight"] == 1000.0 and pd.isna(out.loc[2, "weight"])
    assert out["zip"].tolist() == ["02134", "10001", ""]
    assert out["error"].tolist() == ["", "", ""] and out["predicted_score"].gt(0).all()
    # the scores equal the CSV output's
    csv_out = _read(_run(tmp_path, predictor, text)[0])
    assert [f"{s:g}" for s in out["predicted_score"]] == [f"{float(s):g}" for s in csv_out["predicted_score"]]


def test_parquet_number_inference_spans_chunks(tmp_path, predictor):
    rows = [f"{GOOD},{i},{i}" for i in range(6)] + [f"{GOOD},6.5,x"]
    dst, _ = _run(tmp_path, predictor, "model,task,source,target,a,b\n" + "\n".join(rows) + "\n",
                  out="o.parquet", chunk_rows=2)
    schema = pq.read_schema(dst)
    assert schema.field("a").type == pa.float64() and schema.field("b").type == pa.string()
    out = pd.read_parquet(dst)
    assert out["a"].tolist() == [0, 1, 2, 3, 4, 5, 6.5] and out["b"].tolist()[-2:] == ["5", "x"]
    assert not list(tmp_path.glob("*.text")) and not list(tmp_path.glob(".o.parquet.*"))  # no temp files left


def test_parquet_in_keeps_nullable_ints_and_reads_back(tmp_path, predictor):
    """A nullable int `k` was cast to strings under pandas' Int64 metadata: read_parquet raised TypeError."""
    df = pd.DataFrame({"model": ["xlm-r-large"] * 3, "task": ["xnli"] * 3, "source": ["en", "en", None],
                       "target": ["sw"] * 3, "k": pd.array([None, 5, 1], dtype="Int64"), "id": ["1", "2", "3"]})
    df.to_parquet(tmp_path / "in.parquet", index=False)
    for out_name in ("o.parquet", "o.csv"):
        batch.run_batch(tmp_path / "in.parquet", tmp_path / out_name, predictor, progress=False)
    out = pd.read_parquet(tmp_path / "o.parquet")
    assert str(out["k"].dtype) == "Int64" and pd.isna(out.loc[0, "k"]) and out["k"].tolist()[1:] == [5, 1]
    assert out["id"].tolist() == ["1", "2", "3"]  # strings in a Parquet input stay strings
    assert pd.isna(out.loc[2, "source"]) and out.loc[2, "error"].startswith("row 3: ")
    assert out.loc[1, "error"] == "" and out.loc[1, "predicted_score"] > out.loc[0, "predicted_score"] - 1e-9
    csv_out = _read(tmp_path / "o.csv")
    assert csv_out["k"].tolist() == ["", "5", "1"]


# ------------------------------------------------------------------------------------- output extensions
@pytest.mark.parametrize("name", ["out.xlsx", "out.json", "out", "out.csv.gz"])
def test_unknown_output_extension_is_refused(tmp_path, predictor, name):
    src = tmp_path / "in.csv"
    src.write_text(HEADER + f"{GOOD},a\n")
    with pytest.raises(XltError, match=r"one of \.csv, \.parquet, \.pq") as e:
        batch.run_batch(src, tmp_path / name, predictor, progress=False)
    assert e.value.field == "output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_cli_xlsx_output_exits_2_and_writes_nothing(tmp_path, model_dir):
    src = tmp_path / "in.csv"
    src.write_text(HEADER + f"{GOOD},a\n")
    line = _one_error_line(_xlt("batch", src, "-o", tmp_path / "out.xlsx"))
    assert line == ("xlt: error: cannot write out.xlsx ('.xlsx'): the output type is chosen by extension, one of "
                    ".csv, .parquet, .pq")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]
    src.rename(tmp_path / "in.xlsx")
    line = _one_error_line(_xlt("batch", tmp_path / "in.xlsx", "-o", tmp_path / "out.csv"))
    assert "spreadsheet workbooks are not read" in line


# ------------------------------------------------------------------------------------- formula injection
def test_escape_rule():
    for cell in ("=1+1", "+cmd", "-cmd", "@SUM(A1)", "\t=1", "\r=1", "-1+2", "=", "-", "+"):
        assert escape_cell(cell) == "'" + cell, cell
    for cell in ("-1.5", "+3", "-2e5", "1e-3", "-.5", "plain", "", "a=b", " =x", "'=x"):
        assert escape_cell(cell) == cell, cell
    t = pa.table({"a": pa.array(["=x", None, "-4"]), "n": pa.array([-1.5, None, 2.0]),
                  "error": pa.array(["", "", ""])})
    out = escape_formulas(t)
    assert out["a"].to_pylist() == ["'=x", None, "-4"] and out["n"].to_pylist() == [-1.5, None, 2.0]
    assert out.schema.field("n").type == pa.float64()
    # the first-byte test reads the string buffers: slices, nulls, empty cells and several chunks
    arr = pa.array(["x", "=a", None, "", "-2", "@b", "\rc"]).slice(1)
    col = pa.chunked_array([arr.slice(0, 3), arr.slice(3)])
    assert escape_formulas(pa.table({"a": col}))["a"].to_pylist() == ["'=a", None, "", "-2", "'@b", "'\rc"]
    big = pa.array(["=x"], pa.large_string())
    assert escape_formulas(pa.table({"a": big}))["a"].to_pylist() == ["'=x"]


INJECTION = ("model,task,source,target,note,=HYPERLINK(\"x\")\n"
             "=cmd|' /C calc'!A0,xnli,en,sw,ok,1\n"
             f"{GOOD},@SUM(1+1),2\n"
             f"{GOOD},+x,3\n"
             f"{GOOD},-x,4\n"
             f"{GOOD},-1.5,5\n"
             f"{GOOD},\"\t=1\",6\n")


def _check_escaped(out: pd.DataFrame):
    assert list(out.columns)[5] == "'=HYPERLINK(\"x\")"
    assert out["model"].tolist()[0] == "'=cmd|' /C calc'!A0"
    assert out["note"].tolist() == ["ok", "'@SUM(1+1)", "'+x", "'-x", "-1.5", "'\t=1"]
    assert out["error"].tolist()[0].startswith("line 2: ") and out["error"].tolist()[1:] == [""] * 5
    scores = out["predicted_score"].tolist()
    assert scores[0] == "" and all(float(s) > 0 and not s.startswith("'") for s in scores[1:])


def test_formulas_escaped_in_cli_csv_and_upload(tmp_path, predictor, client):
    dst, _ = _run(tmp_path, predictor, INJECTION)
    _check_escaped(_read(dst))
    r = _upload(client, INJECTION.encode())
    assert r.status_code == 200, r.text[:300]
    _check_escaped(pd.read_csv(io.StringIO(r.text), keep_default_na=False, dtype=str))


def test_parquet_output_keeps_values_unescaped(tmp_path, predictor):
    dst, _ = _run(tmp_path, predictor, INJECTION, out="o.parquet")
    out = pd.read_parquet(dst)
    assert out["note"].tolist() == ["ok", "@SUM(1+1)", "+x", "-x", "-1.5", "\t=1"]
    assert out.columns[5] == "=HYPERLINK(\"x\")"


# ------------------------------------------------------------------------------------- paths the CLI cannot use
def test_unwritable_output_and_directory_input_are_one_line_errors(tmp_path, model_dir):
    src = tmp_path / "in.csv"
    src.write_text(HEADER + f"{GOOD},a\n")
    line = _one_error_line(_xlt("batch", src, "-o", src / "o.csv"))  # a parent that is a file (was a traceback)
    assert line.startswith(f"xlt: error: cannot write {src / 'o.csv'}: ")
    line = _one_error_line(_xlt("batch", src, "-o", tmp_path))
    assert line.startswith("xlt: error: cannot write ")
    assert _one_error_line(_xlt("batch", tmp_path, "-o", tmp_path / "o.csv")) == \
        f"xlt: error: input {tmp_path} is a directory, not a file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


@pytest.mark.parametrize("body,refused", [(b"model,task,source,target\n", True),
                                          (b"model,task,source,target\n\n\r\n\n", True),
                                          (b"model,task,source,target\r", True),
                                          (b"model,task,source,target\n,,,\n", False),   # a record of empty fields
                                          (b"model,task,source,target\nxlm-r-large,xnli,en,sw", False)])
def test_a_file_without_rows_is_refused_before_any_model_is_needed(tmp_path, body, refused):
    """A header followed only by line ends is a file-level problem: refused by `open_input`, before `xlt batch`
    loads a model for it (the 2 s load, and an abort at exit seen once after it, are spared)."""
    from batch.io import open_input
    p = tmp_path / "q.csv"
    p.write_bytes(body)
    if refused:
        with pytest.raises(XltError, match="no rows"):
            open_input(p)
    else:
        assert open_input(p).kind == "csv"
