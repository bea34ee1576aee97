"""The HTTP API over the real app and the real model: values, orderings, additivity, pictures, batch, errors."""
from __future__ import annotations

import io
import math

import pandas as pd
import pytest

Q = {"model": "xlm-r-large", "task": "xnli", "target": "sw", "source": "en"}
PNG = b"\x89PNG\r\n\x1a\n"


def _detail(r):
    body = r.json()
    assert isinstance(body["detail"], list) and body["detail"], body
    return body["detail"]


# ------------------------------------------------------------------------------------------------ meta
def test_health_and_version_carry_the_model_identity(client, predictor):
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    assert r.json()["model_version"] == predictor.manifest["version"]
    r = client.get("/version")
    assert r.status_code == 200, r.text
    v = r.json()
    assert len(v["data"]["sha256"]) == 64
    assert v["features"] == predictor.manifest["features"]
    assert "metrics" in v


def test_languages_search_finds_swahili_first(client):
    r = client.get("/languages", params={"search": "swahili"})
    assert r.status_code == 200
    assert r.json()[0] == {"code": "swh", "name": "Swahili", "script": "Latn", "iso1": "sw"}
    r = client.get("/languages")
    assert r.status_code == 200, r.text
    everything = r.json()
    assert len(everything) > 1000 and {"code", "name", "script", "iso1"} <= set(everything[0])


def test_models_and_tasks_list_the_registry(client):
    r = client.get("/models")
    assert r.status_code == 200, r.text
    models = {m["id"]: m for m in r.json()}
    assert {"mt5-base", "xlm-r-large", "tulrv6-large", "mbert"} <= set(models)
    assert models["xlm-r-large"]["corpus"] == "cc100" and models["xlm-r-large"]["n_corpus_languages"] > 50
    r = client.get("/tasks")
    assert r.status_code == 200, r.text
    tasks = r.json()
    ids = {t["id"] for t in tasks["tasks"]}
    assert {"xnli", "udpos", "wikiann", "xquad"} <= ids
    assert "classification" in tasks["task_types"]


# ------------------------------------------------------------------------------------------------ predict
def test_predict_gives_score_interval_and_yardsticks(client, predictor):
    r = client.post("/predict", json=Q)
    assert r.status_code == 200, r.text
    d = r.json()
    assert 0 <= d["lower90"] <= d["lower80"] <= d["predicted_score"] <= d["upper80"] <= d["upper90"] <= 100
    assert d["query"]["target"] == "swh" and d["query"]["model"] == "xlm-r-large"
    # same number as the facade's batch path for the same query
    same = predictor.predict(pd.DataFrame([Q]))["predicted_score"].iloc[0]
    assert d["predicted_score"] == pytest.approx(same, abs=1e-9)
    assert d["yardsticks"]["always_english"] is None or d["yardsticks"]["always_english"]["source"] == "eng"


def test_predict_with_mixture_and_k(client):
    r = client.post("/predict", json={**{k: v for k, v in Q.items() if k != "source"},
                                      "train_config": "en:1000;de:500", "k": 100})
    assert r.status_code == 200, r.text
    assert r.json()["query"]["k"] == 100
    assert "swh:100" in r.json()["query"]["train_config"]


# ------------------------------------------------------------------------------------------------ rank
def test_rank_default_candidates_sorted_desc_with_reasons(client):
    r = client.post("/rank", json={"model": "xlm-r-large", "task": "xnli", "target": "sw"})
    assert r.status_code == 200, r.text
    items = r.json()["sources"]
    assert len(items) >= 50
    scores = [s["score"] for s in items]
    assert scores == sorted(scores, reverse=True)
    assert [s["rank"] for s in items] == list(range(1, len(items) + 1))
    assert "swh" not in {s["source"] for s in items}
    assert sum(s["p_best"] for s in items) == pytest.approx(1.0, abs=1e-6)
    first = items[0]
    assert first["lower80"] <= first["score"] <= first["upper80"]
    assert 1 <= len(first["reasons"]) <= 3 and all(":" in x["text"] for x in first["reasons"])


def test_rank_candidates_top_and_current_source(client):
    body = {"model": "mt5-base", "task": "udpos", "target": "yo", "candidates": ["en", "de", "ar", "ha"],
            "source": "fr", "top": 3}
    r = client.post("/rank", json=body)
    assert r.status_code == 200, r.text
    items = r.json()["sources"]
    assert len(items) == 3
    r = client.post("/rank", json={**body, "top": None})
    assert r.status_code == 200, r.text
    full = r.json()["sources"]
    assert {s["source"] for s in full} == {"eng", "deu", "arb", "hau", "fra"}
    assert [s["source"] for s in full[:3]] == [s["source"] for s in items]


def test_rank_can_size_each_candidate_at_its_published_training_set(client, predictor):
    """WikiANN (Rahimi et al. split): Yoruba has 100 training sentences, Hindi 5,000, English 20,000; Zulu has no
    published size, so it keeps the assumed one and says so. Each row scores as /predict does at that size."""
    body = {"model": "xlm-r-large", "task": "wikiann", "target": "xh", "candidates": ["en", "hi", "yo", "zu"]}
    assumed = client.post("/rank", json=body).json()
    assert assumed["candidate_sizes"] == "assumed"
    assert {s["source_size"] for s in assumed["sources"]} == {20000}
    assert not any(s["size_published"] for s in assumed["sources"])
    r = client.post("/rank", json={**body, "candidate_sizes": "published"})
    assert r.status_code == 200, r.text
    got = {s["source"]: s for s in r.json()["sources"]}
    assert r.json()["candidate_sizes"] == "published"
    assert {c: (got[c]["source_size"], got[c]["size_published"]) for c in got} == {
        "eng": (20000, True), "hin": (5000, True), "yor": (100, True), "zul": (20000, False)}
    before = {s["source"]: s["score"] for s in assumed["sources"]}
    assert got["yor"]["score"] < before["yor"] - 1       # 100 sentences, not 20,000
    assert got["zul"]["score"] == pytest.approx(before["zul"])
    for code, size in (("hin", 5000), ("yor", 100)):
        one = predictor.predict_one({"model": "xlm-r-large", "task": "wikiann", "target": "xh",
                                     "train_config": f"{code}:{size}"})
        assert got[code]["score"] == pytest.approx(one["predicted_score"], abs=1e-6)
    bad = client.post("/rank", json={**body, "candidate_sizes": "real"})
    assert bad.status_code == 422 and "candidate_sizes" in bad.text

def test_rank_misspelt_target_suggests_swahili(client):
    r = client.post("/rank", json={"model": "xlm-r-large", "task": "xnli", "target": "Swahilli"})
    assert r.status_code == 422
    d = _detail(r)[0]
    assert d["loc"] == ["body", "target"]
    assert any("Swahili" in s for s in d["suggestions"]), d


# ------------------------------------------------------------------------------------------------ curve / explain
def test_curve_is_monotone_and_fits(client):
    r = client.post("/curve", json={**Q, "target_score": 80})
    assert r.status_code == 200, r.text
    d = r.json()
    ks = [p["k"] for p in d["points"]]
    ys = [p["score"] for p in d["points"]]
    assert ks == sorted(ks) and len(ks) >= 5
    assert all(b >= a for a, b in zip(ys, ys[1:]))
    assert -1 <= d["r2"] <= 1 and math.isfinite(d["a"]) and math.isfinite(d["b"])
    assert d["k_to_reach"] is None or d["k_to_reach"] >= 0


def test_curve_custom_grid(client):
    r = client.post("/curve", json={**Q, "ks": [0, 5, 50, 500]})
    assert r.status_code == 200, r.text
    d = r.json()
    assert [p["k"] for p in d["points"]] == [0, 5, 50, 500]


def test_explain_adds_up(client):
    r = client.post("/explain", json=Q)
    assert r.status_code == 200, r.text
    d = r.json()
    total = d["base_value"] + sum(c["shap"] for c in d["contributions"])
    assert total == pytest.approx(d["prediction"], abs=1e-6)
    shaps = [abs(c["shap"]) for c in d["contributions"]]
    assert shaps == sorted(shaps, reverse=True)
    assert all(c["label"] for c in d["contributions"])


# ------------------------------------------------------------------------------------------------ plots
@pytest.mark.parametrize("path", ["/explain/plot.png", "/plots/curve.png"])
def test_plot_pngs(client, path):
    r = client.get(path, params=Q)
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"] == "image/png" and r.content[:8] == PNG and len(r.content) > 5000


def test_waterfall_svg(client):
    r = client.get("/explain/plot.svg", params=Q)
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in r.content[:500]


def test_importance_beeswarm_png(client):
    r = client.get("/plots/importance.png")
    assert r.status_code == 200, r.text[:300]
    assert r.content[:8] == PNG
    again = client.get("/plots/importance.png")
    assert again.content == r.content  # rendered once, cached


def test_plot_bad_query_is_422(client):
    r = client.get("/explain/plot.png", params={**Q, "target": "klingonish"})
    assert r.status_code == 422
    assert _detail(r)[0]["loc"][-1] == "target"


# ------------------------------------------------------------------------------------------------ plan
def test_plan_spends_the_budget_and_beats_english(client):
    r = client.post("/plan", json={"model": "xlm-r-large", "task": "xnli", "target": "sw", "budget": 1000,
                                   "candidates": ["en", "ar", "hi", "sw"]})
    assert r.status_code == 200, r.text
    d = r.json()
    assert sum(p["examples"] for p in d["plan"]) == 1000
    assert d["gain_over_english"] == pytest.approx(d["predicted_score"] - d["english_only_score"])
    assert d["gain_over_english"] >= -1e-9  # English alone is one of the plans the search considers


# ------------------------------------------------------------------------------------------------ batch
def _upload(client, text: bytes, name="q.csv"):
    return client.post("/batch", files={"file": (name, io.BytesIO(text), "text/csv")})


def test_batch_scores_good_rows_and_numbers_bad_ones(client):
    csv = (b"model,task,source,target,note\n"
           b"xlm-r-large,xnli,en,sw,keep\n"
           b"xlm-r-large,xnli,de,notalanguage,x\n"
           b"xlm-r-large,xnli,en,sw,again\n"
           b"mt5-base,udpos,en,yo,1,extra\n"
           b"gpt-9,xnli,en,sw,y\n")
    r = _upload(client, csv)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    out = pd.read_csv(io.StringIO(r.text), keep_default_na=False)
    assert list(out.columns) == ["model", "task", "source", "target", "note", "predicted_score", "error"]
    assert len(out) == 5
    assert out["note"].tolist()[:3] == ["keep", "x", "again"]
    assert out.loc[0, "error"] == "" and out.loc[2, "error"] == ""
    assert out.loc[0, "predicted_score"] == out.loc[2, "predicted_score"] and 0 < float(out.loc[0, "predicted_score"]) <= 100
    assert out.loc[1, "error"].startswith("line 3: ") and "notalanguage" in out.loc[1, "error"]
    assert out.loc[1, "predicted_score"] == ""
    assert out.loc[3, "error"] == "line 5: expected 5 fields, found 6"
    assert out.loc[4, "error"].startswith("line 6: ") and "gpt-9" in out.loc[4, "error"]


def test_batch_missing_column_is_422(client):
    r = _upload(client, b"model,task,target\nxlm-r-large,xnli,sw\n")
    assert r.status_code == 422
    assert "source or train_config" in _detail(r)[0]["msg"]


def test_batch_bad_encoding_is_422(client):
    r = _upload(client, "model,task,source,target\nxlm-r-large,xnli,en,sw\nxlm-r-large,xnli,en,Españ\n"
                .encode("latin-1"))
    assert r.status_code == 422
    assert "UTF-8" in _detail(r)[0]["msg"] and "line 3" in _detail(r)[0]["msg"]


def test_batch_upload_over_limit_is_413(predictor):
    from fastapi.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(predictor, max_upload_mb=0.01)) as small:
        r = _upload(small, b"model,task,source,target\n" + b"xlm-r-large,xnli,en,sw\n" * 1000)
    assert r.status_code == 413
    assert "larger than" in _detail(r)[0]["msg"]


# ------------------------------------------------------------------------------------------------ errors
BASE = dict(Q)
BAD = [
    ("unknown target", {**BASE, "target": "klingonish"}, "target"),
    ("unknown source", {**BASE, "source": "zz-Qaaa"}, "source"),
    ("unknown model", {**BASE, "model": "gpt-9"}, "model"),
    ("unknown task", {**BASE, "task": "telepathy"}, "task"),
    ("negative k", {**BASE, "k": -5}, "k"),
    ("k not a number", {**BASE, "k": "many"}, "k"),
    ("huge k", {**BASE, "k": 10 ** 30}, "k"),
    ("NaN size", {**BASE, "source_size": "NaN"}, "source_size"),
    ("target is a list", {**BASE, "target": ["sw", "yo"]}, "target"),
    ("bad mixture", {"model": "xlm-r-large", "task": "xnli", "target": "sw", "train_config": "en:abc;;de"},
     "train_config"),
    ("mixture with unknown lang", {"model": "xlm-r-large", "task": "xnli", "target": "sw",
                                   "train_config": "en:1000;qqq:10"}, "train_config"),
    ("extra field", {**BASE, "colour": "blue"}, "colour"),
    ("source and mixture", {**BASE, "train_config": "en:10"}, None),
]


@pytest.mark.parametrize("name,body,field", BAD, ids=[b[0] for b in BAD])
def test_bad_predict_input_is_422_with_field(client, name, body, field):
    r = client.post("/predict", json=body)
    assert r.status_code == 422, (name, r.status_code, r.text)
    d = _detail(r)
    if field:
        assert any(field in [str(x) for x in item["loc"]] for item in d), d
    assert all(item["msg"] for item in d)


def test_nan_literal_and_invalid_json_are_422(client):
    r = client.post("/predict", content=b'{"model":"xlm-r-large","task":"xnli","target":"sw","source":"en",'
                                        b'"source_size": NaN}', headers={"content-type": "application/json"})
    assert r.status_code == 422
    r = client.post("/curve", content=b'{"model":"xlm-r-large","task":"xnli","target":"sw","source":"en",'
                                      b'"target_score": Infinity}', headers={"content-type": "application/json"})
    assert r.status_code == 422 and _detail(r)[0]["loc"] == ["body", "target_score"]
    r = client.post("/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_empty_and_huge_candidate_lists(client):
    base = {"model": "xlm-r-large", "task": "xnli", "target": "sw"}
    assert client.post("/rank", json={**base, "candidates": []}).status_code == 422
    assert client.post("/rank", json={**base, "candidates": ["en"] * 1001}).status_code == 422
    r = client.post("/rank", json={**base, "candidates": ["en", "xx-bogus"]})
    assert r.status_code == 422 and _detail(r)[0]["loc"] == ["body", "candidates[1]"]


def test_unknown_task_with_type_is_served(client):
    r = client.post("/predict", json={**Q, "task": "my-sentiment", "task_type": "classification"})
    assert r.status_code == 200, r.text  # the typical classification training-set size is assumed
    assert r.json()["query"]["train_config"] == "eng:392702" and r.json()["query"]["task"] == "my-sentiment"
    r = client.post("/predict", json={**Q, "task": "my-sentiment", "task_type": "classification", "source_size": 5000})
    assert r.status_code == 200, r.text
    assert r.json()["query"]["task_type"] == "classification"


def test_no_model_means_503_with_reason(tmp_path):
    from fastapi.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(model_path=tmp_path / "missing")) as c:
        r = c.get("/health")
        assert r.status_code == 503 and "model not ready" in _detail(r)[0]["msg"]
        assert c.post("/rank", json={"model": "xlm-r-large", "task": "xnli", "target": "sw"}).status_code == 503
        assert c.get("/languages", params={"search": "swa"}).status_code == 200  # registries still answer


def test_openapi_lists_every_endpoint(client):
    r = client.get("/openapi.json")
    assert r.status_code == 200
    paths = set(r.json()["paths"])
    assert {"/health", "/version", "/languages", "/models", "/tasks", "/predict", "/rank", "/curve", "/explain",
            "/explain/plot.png", "/explain/plot.svg", "/plots/importance.png", "/plots/curve.png", "/batch",
            "/plan"} <= paths
    assert client.get("/docs").status_code == 200


def test_web_page_has_the_form(client):
    r = client.get("/")
    assert r.status_code == 200
    for marker in ('<form id="query-form"', 'name="model"', 'name="task"', 'name="target"', 'id="ranked"',
                   'action="/batch"', "/static/xlt.js"):
        assert marker in r.text
    assert client.get("/static/xlt.js").status_code == 200


def test_rank_keeps_a_named_source_outside_the_default_pool(client):
    r = client.post("/rank", json={"model": "xlm-r-large", "task": "xnli", "target": "sw", "source": "nv"})
    assert r.status_code == 200, r.text
    assert "nav" in {s["source"] for s in r.json()["sources"]} and r.json()["regime"] == "record"


def test_plan_starts_from_the_owned_mix_with_costs_and_never_loses_to_english(client):
    body = {"model": "xlm-r-large", "task": "tydiqa", "target": "hi", "candidates": ["en", "hi", "ur", "bn"],
            "budget": 20000, "steps": 10}
    r = client.post("/plan", json=body)
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["gain_over_english"] >= -1e-9 and a["spent"] <= 20000
    assert {x["language"] for x in a["next_100"]} == {"eng", "hin", "urd", "ben"}
    r = client.post("/plan", json={**body, "train_config": "en:3696", "costs": {"hi": 4.0}})
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["start_score"] is not None and b["predicted_score"] >= b["start_score"] - 1e-9
    hi = sum(x["examples"] for x in b["plan"] if x["language"] == "hin")
    assert b["spent"] <= 20000 + 1e-9 and hi * 4 <= 20000
