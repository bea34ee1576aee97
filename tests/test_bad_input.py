"""The bad-input table: every way a person (or a script) gets a request wrong, with the answer xlt must give.

Why a table: the contract is the same for each row — a 4xx JSON body whose `detail` names the field (`loc`) and says
what is wrong (`msg`), never a 5xx, never a traceback — so one test body checks it and the rows document the cases.
The same inputs are then driven through the CLI (exit 2, one line on stderr) and through batch (the bad row carries
`line N: reason`, the good rows are still scored). The 10^6-row CSV is a benchmark (bench/batch.py), not a test.
"""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
XLT = [sys.executable, "-m", "api.cli"]

B = {"model": "xlm-r-large", "task": "xnli", "target": "sw", "source": "en"}   # a good single-source query
T = {"model": "xlm-r-large", "task": "xnli", "target": "sw"}                   # a good rank/plan head
MIX = dict(T)                                                                  # + train_config


def _without(d: dict, key: str) -> dict:
    return {k: v for k, v in d.items() if k != key}


# id, endpoint, JSON body, expected status, a fragment of some detail item's loc, a fragment of its msg (lower case)
API_CASES = [
    # --- unknown names, with suggestions
    ("misspelt target suggests Swahili", "/rank", {**T, "target": "Swahilli"}, 422, "target", "swahili (swh)"),
    ("misspelt target on predict", "/predict", {**B, "target": "Swahilli"}, 422, "target", "did you mean: swahili"),
    ("misspelt source suggests English", "/predict", {**B, "source": "Englsh"}, 422, "source", "english (eng)"),
    ("unknown target", "/explain", {**B, "target": "klingonish"}, 422, "target", "unknown language"),
    ("non-language code und", "/predict", {**B, "target": "und"}, 422, "target", "unknown language 'und'"),
    ("romanised variant", "/predict", {**B, "target": "hi-Latn"}, 422, "target", "romanised variant"),
    ("unknown model suggests xlm-r-large", "/predict", {**B, "model": "xlm-r-huge"}, 422, "model", "xlm-r-large"),
    ("unknown model on rank", "/rank", {**T, "model": "gpt-9"}, 422, "model", "unknown model 'gpt-9'"),
    ("unknown task suggests xnli", "/predict", {**B, "task": "xnlii"}, 422, "task", "xnli"),
    ("unknown task without type", "/curve", {**B, "task": "telepathy"}, 422, "task", "task_type"),
    ("unknown task_type", "/predict", {**B, "task": "foo", "task_type": "dance"}, 422, "task_type",
     "unknown task_type 'dance'"),
    # --- missing / extra fields
    ("missing model", "/predict", _without(B, "model"), 422, "model", "field required"),
    ("missing target", "/rank", _without(T, "target"), 422, "target", "field required"),
    ("neither source nor mixture", "/predict", T, 422, "body", "give a source language"),
    ("source and mixture both", "/predict", {**B, "train_config": "en:10"}, 422, "body", "not both"),
    ("source_size without source", "/predict", {**T, "train_config": "en:10", "source_size": 5}, 422, "body",
     "source_size"),
    ("extra field", "/predict", {**B, "colour": "blue"}, 422, "colour", "extra inputs are not permitted"),
    ("empty body", "/explain", {}, 422, "model", "field required"),
    ("body is a list", "/predict", [B], 422, "body", "valid dictionary"),
    # --- wrong types
    ("model is a number", "/predict", {**B, "model": 5}, 422, "model", "valid string"),
    ("model is null", "/predict", {**B, "model": None}, 422, "model", "valid string"),
    ("target is a list", "/predict", {**B, "target": ["sw", "yo"]}, 422, "target", "valid string"),
    ("k is a word", "/predict", {**B, "k": "many"}, 422, "k", "valid integer"),
    ("k is fractional", "/predict", {**B, "k": 1.5}, 422, "k", "fractional part"),
    ("candidates is a string", "/rank", {**T, "candidates": "en"}, 422, "candidates", "valid list"),
    ("candidates are numbers", "/rank", {**T, "candidates": [1, 2]}, 422, "candidates", "valid string"),
    ("empty target string", "/predict", {**B, "target": "   "}, 422, "target", "at least 1 character"),
    ("absurdly long target", "/predict", {**B, "target": "x" * 300}, 422, "target", "at most 200 characters"),
    # --- NaN / inf
    ("NaN size as string", "/predict", {**B, "source_size": "NaN"}, 422, "source_size", "valid integer"),
    ("mixture count nan", "/predict", {**MIX, "train_config": "en:nan"}, 422, "train_config", "finite number"),
    ("mixture count inf", "/predict", {**MIX, "train_config": "en:inf"}, 422, "train_config", "finite number"),
    # --- negative or absurd counts
    ("negative k", "/predict", {**B, "k": -5}, 422, "k", "greater than or equal to 0"),
    ("huge k", "/predict", {**B, "k": 10 ** 30}, 422, "k", ""),
    ("zero source_size", "/predict", {**B, "source_size": 0}, 422, "source_size", "greater than or equal to 1"),
    ("absurd source_size", "/predict", {**B, "source_size": 10 ** 12}, 422, "source_size", "less than or equal"),
    ("negative k on rank", "/rank", {**T, "k": -1}, 422, "k", "greater than or equal to 0"),
    ("top zero", "/rank", {**T, "top": 0}, 422, "top", "greater than or equal to 1"),
    ("curve grid with negative k", "/curve", {**B, "ks": [-1, 5]}, 422, "ks", "greater than or equal to 0"),
    ("curve grid of one point", "/curve", {**B, "ks": [5]}, 422, "ks", "at least 2 items"),
    ("target_score over 100", "/curve", {**B, "target_score": 101}, 422, "target_score", "less than or equal to 100"),
    ("plan budget zero", "/plan", {**T, "candidates": ["en"], "budget": 0}, 422, "budget", "greater than or equal"),
    ("plan budget absurd", "/plan", {**T, "candidates": ["en"], "budget": 10 ** 9}, 422, "budget", "less than"),
    # --- candidate lists
    ("empty candidate list", "/rank", {**T, "candidates": []}, 422, "candidates", "at least 1 item"),
    ("huge candidate list", "/rank", {**T, "candidates": ["en"] * 1001}, 422, "candidates", "at most 1000"),
    ("misspelt candidate", "/rank", {**T, "candidates": ["de", "Englsh"]}, 422, "candidates[1]", "english (eng)"),
    ("only the target as candidate", "/rank", {**T, "candidates": ["sw"]}, 422, "candidates", "target itself"),
    ("plan with unknown candidate", "/plan", {**T, "candidates": ["xx"], "budget": 100}, 422, "candidates[0]",
     "unknown language 'xx'"),
    # --- mixtures
    ("mixture not lang:n", "/predict", {**MIX, "train_config": "en:abc;;de"}, 422, "train_config", "train_config"),
    ("mixture with duplicate language", "/predict", {**MIX, "train_config": "en:1000;en:50"}, 422, "train_config",
     "twice"),
    ("mixture duplicate via alias", "/predict", {**MIX, "train_config": "en:1000;eng:50"}, 422, "train_config",
     "twice"),
    ("mixture with unknown language", "/predict", {**MIX, "train_config": "en:1000;qqq:10"}, 422, "train_config",
     "qqq"),
    ("mixture all zero", "/predict", {**MIX, "train_config": "en:0"}, 422, "train_config", "no training examples"),
    ("mixture negative count", "/predict", {**MIX, "train_config": "en:-5"}, 422, "train_config", ">= 0"),
    ("mixture absurd count", "/predict", {**MIX, "train_config": "en:99999999999999"}, 422, "train_config",
     "at most"),
    ("mixture only separators", "/explain", {**MIX, "train_config": ";"}, 422, "train_config", "empty entry"),
]


def _items(r) -> list[dict]:
    assert "json" in r.headers.get("content-type", ""), r.headers
    body = r.json()
    assert isinstance(body.get("detail"), list) and body["detail"], body
    for item in body["detail"]:
        assert isinstance(item["loc"], list) and item["msg"], item
    return body["detail"]


def test_the_table_is_big_enough():
    assert len(API_CASES) >= 30 and len({c[0] for c in API_CASES}) == len(API_CASES)


@pytest.mark.parametrize("name,path,body,status,loc,msg", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_bad_input(client, name, path, body, status, loc, msg):
    r = client.post(path, json=body)
    assert r.status_code == status, (name, r.status_code, r.text[:300])
    items = _items(r)
    hits = [i for i in items if loc in ".".join(str(x) for x in i["loc"]) and msg in i["msg"].lower()]
    assert hits, (name, items)


def test_suggestions_are_a_list_with_the_right_one_first(client):
    r = client.post("/rank", json={**T, "target": "Swahilli"})
    item = _items(r)[0]
    assert item["loc"] == ["body", "target"] and item["suggestions"][0] == "Swahili (swh)"


RAW_BODIES = [
    ("NaN literal", b'{"model":"xlm-r-large","task":"xnli","target":"sw","source":"en","source_size":NaN}',
     "source_size"),
    ("Infinity literal", b'{"model":"xlm-r-large","task":"xnli","target":"sw","source":"en","k":Infinity}', "k"),
    ("truncated JSON", b'{"model":"xlm-r-large","task":', "body"),
    ("not JSON at all", b"hello", "body"),
    ("empty body bytes", b"", "body"),
    ("body not UTF-8", b'{"model":"xlm-r-large","task":"xnli","target":"\xe9","source":"en"}', "body"),
]


@pytest.mark.parametrize("name,data,loc", RAW_BODIES, ids=[c[0] for c in RAW_BODIES])
def test_api_raw_bodies_are_422(client, name, data, loc):
    r = client.post("/predict", content=data, headers={"content-type": "application/json"})
    assert r.status_code == 422, (name, r.text)
    assert any(loc in [str(x) for x in i["loc"]] for i in _items(r)), r.text


GET_CASES = [
    ("/languages", {"search": "x" * 200}, "search"),
    ("/languages", {"limit": 0}, "limit"),
    ("/explain/plot.png", {**B, "target": "klingonish"}, "target"),
    ("/explain/plot.svg", {**B, "k": "x"}, "k"),
    ("/plots/curve.png", {**B, "ks": "5"}, "ks"),
    ("/plots/curve.png", {**B, "target_score": "inf"}, "target_score"),
]


@pytest.mark.parametrize("path,params,loc", GET_CASES, ids=[f"{c[0]}:{c[2]}" for c in GET_CASES])
def test_get_query_parameters_are_422(client, path, params, loc):
    r = client.get(path, params=params)
    assert r.status_code == 422, r.text[:200]
    assert any(loc in [str(x) for x in i["loc"]] for i in _items(r))


def test_service_still_healthy_after_abuse(client):
    for _, path, body, *_ in API_CASES:
        client.post(path, json=body)
    assert client.get("/health").status_code == 200
    assert client.post("/predict", json=B).status_code == 200


# ------------------------------------------------------------------------------------------------ CSV uploads
GOOD_ROW = "xlm-r-large,xnli,en,sw"
CSV_FILE_CASES = [
    ("missing source column", b"model,task,target\nxlm-r-large,xnli,sw\n", 422, "source or train_config"),
    ("missing model column", b"task,source,target\nxnli,en,sw\n", 422, "model"),
    ("latin-1 bytes", ("model,task,source,target\n" + GOOD_ROW + "\nxlm-r-large,xnli,en,Españ\n").encode("latin-1"),
     422, "utf-8"),
    ("empty file", b"", 422, ""),
    ("duplicate header", b"model,task,source,target,target\nxlm-r-large,xnli,en,sw,sw\n", 422, "duplicate"),
    ("header only", b"model,task,source,target\n", 422, "no rows"),
    ("header and blank lines only", b"model,task,source,target\r\n\r\n\r\n", 422, "no rows"),
    ("header line over 1 MB", b"model,task,source,target," + b"x" * (2 << 20) + b"\n" + GOOD_ROW.encode() + b",1\n",
     422, "longer than 1 mb"),
]


def _upload(client, data: bytes, name: str = "q.csv"):
    return client.post("/batch", files={"file": (name, io.BytesIO(data), "text/csv")})


@pytest.mark.parametrize("name,data,status,msg", CSV_FILE_CASES, ids=[c[0] for c in CSV_FILE_CASES])
def test_batch_file_level_errors(client, name, data, status, msg):
    r = _upload(client, data)
    assert r.status_code == status, (name, r.status_code, r.text[:200])
    items = _items(r)
    assert msg in " ".join(i["msg"].lower() for i in items), items


def test_batch_upload_over_limit_is_413_json(predictor):
    from fastapi.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(predictor, max_upload_mb=1), raise_server_exceptions=False) as small:
        r = _upload(small, b"model,task,source,target\n" + (GOOD_ROW + "\n").encode() * 60_000)  # ~1.4 MB
        assert r.status_code == 413 and "larger than 1 MB" in _items(r)[0]["msg"]
        assert small.get("/health").status_code == 200


def test_batch_without_file_field_is_422(client):
    r = client.post("/batch", data={"x": "1"})
    assert r.status_code == 422 and any("file" in [str(x) for x in i["loc"]] for i in _items(r))


# Each bad row → its physical line number and a reason; the good rows around it are scored.
ROWS = [  # (csv line, expected error fragment or "" for a good row)
    ("xlm-r-large,xnli,en,sw,,", ""),
    ("xlm-r-large,xnli,en,Swahilli,,", "swahili"),
    ("gpt-9,xnli,en,sw,,", "unknown model"),
    ("xlm-r-large,telepathy,en,sw,,", "unknown task"),
    ("xlm-r-large,xnli,en,sw,,-5", "k"),
    ("xlm-r-large,xnli,en,sw,,NaN", "k"),
    ("xlm-r-large,xnli,en,sw,abc,", "source_size"),
    ("xlm-r-large,xnli,en,sw,inf,", "source_size"),
    ("xlm-r-large,xnli,,sw,,", "source"),
    ("xlm-r-large,xnli,en,,,", "target"),
    ("xlm-r-large,xnli,en,sw", "field"),          # ragged: 4 fields where the header has 6
    ("xlm-r-large,xnli,en,sw,,,extra", "field"),  # ragged: 7 fields
    ("mt5-base,udpos,de,yo,,10", ""),
    (",,,,,", "model is required"),                # every field empty: a record, not a blank line
    ("=cmd|' /C calc'!A0,xnli,en,sw,,", "unknown model"),  # formula text: an error row (escaped in the CSV)
]


def _row_frame(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), keep_default_na=False, dtype=str)


def _check_rows(out: pd.DataFrame):
    assert len(out) == len(ROWS), out
    for i, (row, frag) in enumerate(ROWS):
        line = i + 2
        err = out["error"].iloc[i]
        score = out["predicted_score"].iloc[i]
        if frag:
            assert err.startswith(f"line {line}: ") and frag in err.lower(), (row, err)
            assert score == "", (row, score)
        else:
            assert err == "", (row, err)
            assert 0 <= float(score) <= 100


def test_batch_upload_isolates_bad_rows_with_line_numbers(client):
    csv = "model,task,source,target,source_size,k\n" + "\n".join(r for r, _ in ROWS) + "\n"
    r = _upload(client, csv.encode())
    assert r.status_code == 200, r.text[:300]
    _check_rows(_row_frame(r.text))


def test_cli_batch_isolates_bad_rows_with_line_numbers(tmp_path, model_dir):
    src = tmp_path / "q.csv"
    src.write_text("model,task,source,target,source_size,k\n" + "\n".join(r for r, _ in ROWS) + "\n")
    r = _xlt("batch", src, "-o", tmp_path / "o.csv", "--json")
    assert r.returncode == 0, r.stderr
    stats = json.loads(r.stdout)
    assert stats["rows"] == len(ROWS) and stats["errors"] == sum(1 for _, f in ROWS if f)
    _check_rows(_row_frame((tmp_path / "o.csv").read_text()))


def test_batch_mixture_rows_with_duplicate_or_unknown_languages(client):
    csv = ("model,task,train_config,target\n"
           "xlm-r-large,xnli,en:1000;de:500,sw\n"
           "xlm-r-large,xnli,en:1000;en:5,sw\n"
           "xlm-r-large,xnli,en:1000;qqq:5,sw\n"
           "xlm-r-large,xnli,en:abc,sw\n")
    out = _row_frame(_upload(client, csv.encode()).text)
    assert out["error"].tolist()[0] == "" and float(out["predicted_score"].iloc[0]) > 0
    assert out["error"].iloc[1].startswith("line 3: ") and "twice" in out["error"].iloc[1]
    assert out["error"].iloc[2].startswith("line 4: ") and "qqq" in out["error"].iloc[2]
    assert out["error"].iloc[3].startswith("line 5: ") and "train_config" in out["error"].iloc[3]


# ------------------------------------------------------------------------------------------------ CLI
def _xlt(*args, timeout=120):
    return subprocess.run([*XLT, *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=timeout)


Q_ARGS = ("-m", "xlm-r-large", "-t", "xnli", "--target")
CLI_CASES = [
    ("misspelt target", ("rank", *Q_ARGS, "Swahilli"), "Swahili (swh)"),
    ("unknown model", ("predict", "-m", "gpt-9", "-t", "xnli", "--target", "sw"), "gpt-9"),
    ("unknown task", ("predict", "-m", "xlm-r-large", "-t", "telepathy", "--target", "sw"), "task_type"),
    ("unknown source", ("predict", *Q_ARGS, "sw", "-s", "zz-Qaaa"), "zz-Qaaa"),
    ("negative k", ("predict", *Q_ARGS, "sw", "--k", "-5"), "k"),
    ("k not a number", ("predict", *Q_ARGS, "sw", "--k", "many"), "--k"),
    ("unknown option", ("predict", *Q_ARGS, "sw", "--colour", "blue"), "--colour"),
    ("bad mixture", ("explain", *Q_ARGS, "sw", "--train-config", "en:abc;;de"), "train_config"),
    ("duplicate mixture language", ("predict", *Q_ARGS, "sw", "--train-config", "en:10;en:5"), "twice"),
    ("source and mixture", ("predict", *Q_ARGS, "sw", "-s", "en", "--train-config", "de:10"), "not both"),
    ("bad ks", ("curve", *Q_ARGS, "sw", "--ks", "1,two"), "--ks"),
    ("target score out of range", ("curve", *Q_ARGS, "sw", "--target-score", "150"), "between 0 and 100"),
    ("bad plot suffix", ("explain", *Q_ARGS, "sw", "--plot", "x.gif"), ".png or .svg"),
    ("missing input file", ("batch", "/nonexistent/q.csv", "-o", "/tmp/xlt-never.csv"), "not found"),
    ("xlsx batch output", ("batch", "/nonexistent/q.csv", "-o", "/tmp/xlt-never.xlsx"), ".csv, .parquet"),
]


@pytest.mark.parametrize("name,args,needle", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input_exits_2_with_one_line(name, args, needle, model_dir):
    r = _xlt(*args)
    assert r.returncode == 2, (name, r.returncode, r.stdout[-300:], r.stderr[-300:])
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("xlt: error:"), lines   # usage errors too, not typer's box
    assert needle in lines[0], (name, lines[0])


@pytest.mark.parametrize("name,data,needle", [
    ("missing column", b"model,task,target\nxlm-r-large,xnli,sw\n", "source or train_config"),
    ("latin-1", ("model,task,source,target\n" + GOOD_ROW + "\nxlm-r-large,xnli,en,Españ\n").encode("latin-1"),
     "UTF-8"),
    ("header only", b"model,task,source,target\n", "no rows"),
    ("header line over 1 MB", b"model,task,source,target," + b"x" * (2 << 20) + b"\n" + GOOD_ROW.encode() + b",1\n",
     "longer than 1 MB"),
])
def test_cli_batch_file_errors_exit_2(tmp_path, name, data, needle, model_dir):
    src, dst = tmp_path / "q.csv", tmp_path / "o.csv"
    src.write_bytes(data)
    r = _xlt("batch", src, "-o", dst)
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    assert r.returncode == 2 and len(lines) == 1 and needle in lines[0], (r.returncode, r.stderr)
    assert not dst.exists()
