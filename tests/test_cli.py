"""The `xlt` command line as a user runs it (subprocess): JSON answers, tables, exit code 2 on bad input, batch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

XLT = Path(sys.executable).parent / "xlt"
CMD = [str(XLT)] if XLT.exists() else [sys.executable, "-m", "api.cli"]


def xlt(*args, timeout=120, env_extra=None):
    env = {**os.environ, **env_extra} if env_extra else None
    return subprocess.run([*CMD, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


def test_languages_search_json():
    r = xlt("languages", "--search", "swa", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert rows[0]["code"] == "swh" and rows[0]["name"] == "Swahili"


def test_models_and_tasks_tables():
    r = xlt("models")
    assert r.returncode == 0 and "xlm-r-large" in r.stdout and "mt5-base" in r.stdout
    r = xlt("tasks", "--json")
    assert r.returncode == 0 and "xnli" in {t["id"] for t in json.loads(r.stdout)}


def test_rank_json_matches_the_api(client, model_dir):
    r = xlt("rank", "-m", "xlm-r-large", "-t", "xnli", "--target", "sw", "--candidates", "en,de,ar,hi,yo", "--json")
    assert r.returncode == 0, r.stderr
    cli = json.loads(r.stdout)["sources"]
    api = client.post("/rank", json={"model": "xlm-r-large", "task": "xnli", "target": "sw",
                                     "candidates": ["en", "de", "ar", "hi", "yo"]}).json()["sources"]
    assert [s["source"] for s in cli] == [s["source"] for s in api]
    assert [s["score"] for s in cli] == pytest.approx([s["score"] for s in api], abs=1e-9)


def test_rank_with_published_sizes_matches_the_api_and_marks_assumed_ones(client, model_dir):
    args = ("rank", "-m", "xlm-r-large", "-t", "wikiann", "--target", "xh", "--candidates", "en,yo,zu",
            "--candidate-sizes", "published")
    r = xlt(*args, "--json")
    assert r.returncode == 0, r.stderr
    cli = {s["source"]: (s["source_size"], s["size_published"], s["score"]) for s in json.loads(r.stdout)["sources"]}
    api = client.post("/rank", json={"model": "xlm-r-large", "task": "wikiann", "target": "xh",
                                     "candidates": ["en", "yo", "zu"], "candidate_sizes": "published"}).json()
    assert cli == {s["source"]: (s["source_size"], s["size_published"], pytest.approx(s["score"], abs=1e-9))
                   for s in api["sources"]}
    assert cli["yor"][:2] == (100, True) and cli["zul"][:2] == (20000, False)
    table = xlt(*args, env_extra={"COLUMNS": "200"})
    assert table.returncode == 0 and "examples" in table.stdout and "(assumed)" in table.stdout, table.stdout

def test_predict_explain_plot_and_curve(tmp_path, model_dir):
    r = xlt("predict", "-m", "xlm-r-large", "-t", "xnli", "--target", "sw", "-s", "en", "--json")
    assert r.returncode == 0, r.stderr
    pred = json.loads(r.stdout)
    assert 0 < pred["predicted_score"] <= 100 and pred["lower80"] <= pred["predicted_score"] <= pred["upper80"]
    png = tmp_path / "why.png"
    r = xlt("explain", "-m", "xlm-r-large", "-t", "xnli", "--target", "sw", "-s", "en", "--plot", png, "--json")
    assert r.returncode == 0, r.stderr
    e = json.loads(r.stdout)
    assert e["base_value"] + sum(c["shap"] for c in e["contributions"]) == pytest.approx(e["prediction"], abs=1e-6)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = xlt("curve", "-m", "xlm-r-large", "-t", "xnli", "--target", "sw", "-s", "en", "--ks", "0,10,100,1000")
    assert r.returncode == 0 and "ln(1+k)" in r.stdout


@pytest.mark.parametrize("args,needle", [
    (("rank", "-m", "xlm-r-large", "-t", "xnli", "--target", "Swahilli"), "Swahili"),
    (("predict", "-m", "gpt-9", "-t", "xnli", "--target", "sw"), "gpt-9"),
    (("predict", "-m", "xlm-r-large", "-t", "xnli", "--target", "sw", "--k", "-5"), "k"),
    (("predict", "-m", "xlm-r-large", "-t", "xnli", "--target", "sw", "--train-config", "en:abc;;de"), "train_config"),
    (("explain", "-m", "xlm-r-large", "-t", "xnli", "--target", "sw", "--plot", "x.gif"), ".png or .svg"),
])
def test_bad_input_exits_2_with_one_line(args, needle, model_dir):
    r = xlt(*args)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("xlt: error:") and needle in lines[0]
    assert "Traceback" not in r.stderr


def test_batch_csv_to_parquet_and_missing_column(tmp_path, model_dir):
    src = tmp_path / "q.csv"
    src.write_text("model,task,source,target\nxlm-r-large,xnli,en,sw\nxlm-r-large,xnli,en,notalang\n"
                   "xlm-r-large,xnli,de,sw\n")
    r = xlt("batch", src, "-o", tmp_path / "o.parquet", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["errors"] == 1
    out = pd.read_parquet(tmp_path / "o.parquet")
    assert out["error"].tolist()[0] == "" and out["error"].tolist()[1].startswith("line 3: ")
    src.write_text("model,task,target\nxlm-r-large,xnli,sw\n")
    r = xlt("batch", src, "-o", tmp_path / "o2.csv")
    assert r.returncode == 2 and "source or train_config" in r.stderr
    assert not (tmp_path / "o2.csv").exists()


def test_all_pairs_subset(tmp_path, model_dir):
    out = tmp_path / "pairs.parquet"
    r = xlt("all-pairs", "-m", "xlm-r-large", "-t", "xnli", "--languages", "en,de,sw,yo", "-o", out, "--json")
    assert r.returncode == 0, r.stderr
    df = pd.read_parquet(out)
    assert len(df) == 12 and set(df["source"]) == {"eng", "deu", "swh", "yor"}
    assert (df["source"] != df["target"]).all() and df["predicted_score"].between(0, 100).all()


# ------------------------------------------------------------------------------------- evaluate / interpret (typer)
def test_evaluate_and_interpret_are_typer_commands_with_their_options():
    from predictor import protocols as P

    r = xlt("evaluate", "--help")
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    for opt in ("--all", "--protocol", "--groups", "--no-model", "--no-neural", "--method", "--jobs", "--observations",
                "--out", "--readme", "--rerender"):
        assert opt in text, opt
    for name in P.ALL_PROTOCOLS:   # the help's protocol list (written out in api/cli.py) is the library's
        assert name in text, name
    r = xlt("interpret", "--help")
    assert r.returncode == 0 and "--observations" in r.stdout and "--out" in r.stdout
    r = subprocess.run([sys.executable, "-m", "predictor.evaluate", "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "python -m predictor.evaluate" in r.stdout and "--rerender" in r.stdout


@pytest.mark.parametrize("args,needle", [
    (("evaluate", "--bogus"), "--bogus"),
    (("evaluate", "--protocol", "sen"), "did you mean: seen"),
    (("evaluate", "--all", "--protocol", "seen"), "not both"),
    (("evaluate", "--jobs", "0"), "--jobs"),
    (("evaluate", "--groups", "-1"), "--groups"),
    (("evaluate", "--rerender", "--protocol", "seen"), "only read"),
    (("evaluate", "--method", "no such method", "--no-neural"), "no method name contains"),
    (("interpret", "--protocol", "seen"), "--protocol"),
])
def test_evaluate_bad_options_exit_2_with_one_line(args, needle):
    r = xlt(*args)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("xlt: error:") and needle in lines[0], lines
    assert "Traceback" not in r.stderr


def test_evaluate_small_run_then_rerender_and_readme(tmp_path, monkeypatch):
    """A cheap real run (one rule baseline on one protocol), re-rendered from its JSON, and the README rewrite (in
    process, so the README written is a temporary one)."""
    out = tmp_path / "reports"
    r = subprocess.run([sys.executable, "-m", "predictor.evaluate", "--protocol", "seen", "--no-neural",
                        "--method", "always English", "--jobs", "1", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    acc = json.loads((out / "accuracy.json").read_text())
    assert "always English" in acc["results"]["seen"] and list(acc["protocols"]) == ["seen"]
    (out / "accuracy.md").unlink()
    r = xlt("evaluate", "--rerender", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "always English" in (out / "accuracy.md").read_text()

    from typer.testing import CliRunner

    from api.cli import app
    from predictor import evaluate as E

    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n## Accuracy\n\n## Next\n")
    monkeypatch.setattr(E, "README", readme)
    res = CliRunner().invoke(app, ["evaluate", "--readme", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert E.README_START in readme.read_text() and "rewrote the accuracy table" in res.output


def test_neural_page_follows_accuracy_json_and_keeps_its_earlier_part(tmp_path):
    """reports/neural.md is rewritten from whichever accuracy.json `xlt evaluate` wrote (a hand-run page went stale
    for a day), keeps its earlier-measurements part, and is left alone when the run holds no neural results."""
    import shutil

    from predictor.evaluate import NEURAL, OURS, ROOT
    from predictor.neural.compare import EARLIER, write_report

    acc_path = tmp_path / "accuracy.json"
    shutil.copy(ROOT / "reports" / "accuracy.json", acc_path)
    acc = json.loads(acc_path.read_text())
    page = tmp_path / "neural.md"
    page.write_text("stale\n" + EARLIER + "\nold evidence kept\n")
    assert write_report(acc_path, page) == page
    text = page.read_text()
    assert text.startswith("# Neural multi-task model vs the LightGBM model")
    assert f"From `reports/accuracy.json` ({acc['generated']})" in text and "stale" not in text
    assert text.rstrip().endswith("old evidence kept") and text.count(EARLIER) == 1
    seen_rmse = acc["results"]["seen"][NEURAL]["all files"]["rmse"]["value"]
    assert f"{seen_rmse:.2f}" in text and OURS in text

    for per in acc["results"].values():
        per.pop(NEURAL, None)
    acc_path.write_text(json.dumps(acc))
    page.write_text("untouched")
    assert write_report(acc_path, page) is None and page.read_text() == "untouched"
