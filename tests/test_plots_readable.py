"""Plots and `xlt explain` a researcher can read (issue 9): user text never reaches mathtext, feature values are shown
in natural units (never the encoded numbers), and the waterfall keeps every label inside the picture, apart.

Decoding is tested against the feature modules' own tables (TASK_TYPES, MODEL_FAMILIES, FEATURE_LABELS), read at
test time, and against whatever features the served model has (`predictor.feature_names`), since features change.
"""
from __future__ import annotations

import math
import re

import pytest

from api import labels, plots

PNG = b"\x89PNG\r\n\x1a\n"
MATH = {"model": "xlm-r-large", "task": "$\\frac{$", "task_type": "ner", "target": "sw", "source": "en",
        "source_size": 1000}


# ---------------------------------------------------------------------------------------------- mathtext (a 500)
@pytest.mark.parametrize("path", ["/explain/plot.png", "/plots/curve.png", "/explain/plot.svg", "/plots/curve.svg"])
def test_dollar_task_name_draws_instead_of_500(client, path):
    r = client.get(path, params=MATH)
    assert r.status_code == 200, r.text[:300]
    if path.endswith(".png"):
        assert r.headers["content-type"] == "image/png" and r.content[:8] == PNG
    else:
        assert b"<svg" in r.content[:500]


@pytest.mark.parametrize("text", ["$\\frac{$", "$x^$", "a $ b $ c", "\\$", "$$", "${}^{}$", "$\\undefinedmacro$"])
def test_any_dollar_text_renders_literally(text):
    expl = {"base_value": 60.0, "prediction": 61.0, "query": {"model": "xlm-r-large", "task": text, "target": "swh",
                                                              "train_config": "eng:1000", "k": 0},
            "contributions": [{"feature": "made_up_" + text, "label": text, "value": 1.0, "shap": 1.0}]}
    assert plots.waterfall(expl)[:8] == PNG
    ans = {"points": [{"k": 0, "score": 60.0}, {"k": 100, "score": 65.0}], "a": 60.0, "b": 1.0, "r2": 0.9,
           "query": expl["query"]}
    assert plots.curve(ans)[:8] == PNG
    fig = plots.waterfall_figure(expl)
    fig.canvas.draw()
    texts = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text") and hasattr(a, "get_parse_math"))]
    assert any(text in t for t in texts), "the text is drawn as typed"


# ---------------------------------------------------------------------------------------------- decoding values
def test_categories_decode_from_the_feature_modules():
    from features.featurize import MODEL_FAMILIES
    from features.registry import TASK_TYPES

    q = {"model": "mt5-base", "task": "xquad", "target": "swh", "train_config": "eng:87599"}
    assert labels.describe("task_type", float(TASK_TYPES.index("qa")), q) == "task type = qa (xquad)"
    assert labels.describe("task_type", float(TASK_TYPES.index("ner")), {}) == "task type = ner"
    assert labels.value_text("model_family", float(MODEL_FAMILIES.index("mt5")), q) == "mT5"
    assert labels.value_text("model_family", float(MODEL_FAMILIES.index("xlm-r")), {}) == "XLM-R"
    assert labels.describe("model_log_params", math.log10(580e6), q) == "model = mT5-base, 580M parameters"
    assert labels.value_text("model_log_params", math.log10(13e9), {}) == "13B parameters"
    # a model whose size is not published: no made-up number
    from features.registry import models, resolve_model
    unsized = [m.id for m in models() if resolve_model(m.id).n_params is None]
    for model in unsized[:1]:
        assert "not published" in labels.describe("model_log_params", None, {"model": model})
    # out-of-range codes are not decoded into a wrong category
    assert labels.value_text("task_type", 99.0, {}) == "99"


def test_sizes_and_shares_in_natural_units():
    q = {"model": "xlm-r-large", "task": "xnli", "target": "swh", "train_config": "deu:500;eng:1000"}
    assert labels.value_text("log_source_size", math.log1p(87599), {"train_config": "eng:87599"}) == \
        "87,599 examples (eng)"
    assert labels.value_text("log_source_size", math.log1p(1000), q) == "1,000 examples (eng)"
    assert labels.value_text("log1p_k", math.log1p(50), q) == "50"
    assert labels.value_text("log1p_other_sources", math.log1p(500), q) == "500 examples"
    assert labels.value_text("log1p_other_sources", 0.0, q) == "none"
    assert labels.value_text("src_pretrain_log", math.log1p(0.436 * 1e6), q) == "43.6%"
    assert labels.value_text("tgt_pretrain_log", 0.0, q) == "0%"
    assert labels.value_text("same_script", 1.0, q) == "yes"
    assert labels.value_text("same_script", 0.0, q) == "no"
    assert labels.value_text("same_family", 0.5, q).startswith("yes for 50%")
    assert labels.value_text("n_source_languages", 3.0, q) == "3"
    assert labels.value_text("ev_pair", float("nan"), q) == "none published"  # features.evidence grains
    # the source's record is 0, not NaN, when nothing is published (features.evidence): say so, not "+0.0"
    assert labels.value_text("ev_source_vs_others", 0.0, q) == "none published (= average)"
    assert labels.value_text("ev_source_vs_others", -2.25, q) == "-2.2"
    assert labels.value_text("ev_pair", 71.234, q) == "71.2"


def test_unknown_features_fall_back_to_name_and_rounded_value():
    assert labels.describe("brand_new_feature", 3.14159, {}) == "brand_new_feature = 3.14"
    assert labels.describe("brand_new_feature", 2.0, {}) == "brand_new_feature = 2"
    assert labels.describe("brand_new_feature", 123456.789, {}) == "brand_new_feature = 1.23e+05"
    assert labels.describe("brand_new_feature", float("nan"), {}) == "brand_new_feature = unknown"
    assert labels.describe("brand_new_feature", None, {}, label="words for it") == "words for it = unknown"


def test_every_served_feature_has_a_readable_line(predictor):
    """Whatever features the served model has, each decodes to text without raising and without encoded codes."""
    from api.answers import explain_answer

    ans = explain_answer(predictor, {"model": "mt5-base", "task": "xquad", "target": "sw", "source": "en"})
    # the trees' features, plus the terms added outside them (here the record's offset for mixes of this size)
    assert {c["feature"] for c in ans["contributions"]} <= set(predictor.feature_names) | {"record_residual"}
    lines = {c["feature"]: labels.describe(c["feature"], c["value"], ans["query"], c["label"])
             for c in ans["contributions"]}
    assert all(isinstance(t, str) and " = " in t for t in lines.values())
    if "task_type" in lines:
        assert lines["task_type"].startswith("task type = qa")
    if "model_family" in lines:
        assert lines["model_family"] == "model family = mT5"
    if "model_log_params" in lines:
        assert lines["model_log_params"] == "model = mT5-base, 580M parameters"
    if "log_source_size" in lines:
        assert "87,599" in lines["log_source_size"]


# ---------------------------------------------------------------------------------------------- the waterfall
def _explanation(n: int = 30) -> dict:
    """n contributions with long labels, one unknown feature, values of both signs."""
    contribs = [{"feature": f"dist_syntactic{i}", "label": "a rather long feature description that needs wrapping "
                 f"number {i}", "value": i / 7, "shap": (-1) ** i * (10 - i * 0.3)} for i in range(n - 2)]
    contribs += [{"feature": "task_type", "label": "task type", "value": 3.0, "shap": 12.0},
                 {"feature": "not_a_feature_yet", "label": "not_a_feature_yet", "value": 0.123456, "shap": -0.01}]
    base = 60.0
    return {"base_value": base, "prediction": base + sum(c["shap"] for c in contribs), "contributions": contribs,
            "query": {"model": "xlm-r-large", "task": "some very long task name " * 3, "target": "swh",
                      "train_config": "eng:1000;deu:500", "k": 0}}


def test_waterfall_shows_top_features_plus_other_and_adds_up():
    expl = _explanation(30)
    rows, values, other = plots.waterfall_rows(expl, max_features=10)
    assert len(rows) == 11 and other and rows[-1] == "20 other features"
    assert rows[0].replace("\u00a0", " ") == "task type = qa"  # biggest |SHAP| first, decoded (long task left out)
    assert expl["base_value"] + sum(values) == pytest.approx(expl["prediction"])
    # a single leftover feature is shown itself, never as "1 other features"
    rows, values, other = plots.waterfall_rows(_explanation(11), max_features=10)
    assert len(rows) == 11 and not other


def _inside(fig) -> None:
    """Everything drawn (titles, tick labels, value labels, axis labels) lies inside the saved picture."""
    fig.canvas.draw()
    drawn = fig.get_tightbbox(fig.canvas.get_renderer())  # inches, only what is actually drawn
    w, h = fig.get_size_inches()
    assert drawn.x0 >= -0.01 and drawn.y0 >= -0.01 and drawn.x1 <= w + 0.01 and drawn.y1 <= h + 0.01, \
        f"cut at the edge: drawn {drawn} in a {w}x{h} in picture"


def _inside_and_apart(fig) -> None:
    _inside(fig)
    renderer = fig.canvas.get_renderer()
    ticks = [t.get_window_extent(renderer) for t in fig.axes[0].get_yticklabels() if t.get_text()]
    for a, b in zip(ticks, ticks[1:]):
        assert not a.overlaps(b), "y labels overlap"


@pytest.mark.parametrize("n", [1, 5, 12, 40])
def test_waterfall_labels_inside_the_picture_and_not_overlapping(n):
    fig = plots.waterfall_figure(_explanation(n) if n > 2 else {
        "base_value": 50.0, "prediction": 49.0, "query": {},
        "contributions": [{"feature": "x", "label": "x", "value": 1.0, "shap": -1.0}]})
    w, h = fig.get_size_inches()
    assert w >= 8 and h >= 2
    _inside_and_apart(fig)


def test_waterfall_labels_are_wrapped_and_truncated():
    rows, _, _ = plots.waterfall_rows({"base_value": 0, "prediction": 1, "query": {}, "contributions": [
        {"feature": "x" * 10, "label": "word " * 60, "value": 1.0, "shap": 1.0}]})
    lines = rows[0].split("\n")
    assert len(lines) <= 2 and all(len(line) <= plots.LABEL_WIDTH for line in lines) and lines[-1].endswith("…")


def test_curve_inside_the_picture():
    ans = {"points": [{"k": k, "score": 60 + math.log1p(k), "lower80": 55.0, "upper80": 70.0 + k / 1000}
                      for k in (0, 10, 100, 1000, 10000)], "a": 60.0, "b": 1.0, "r2": 0.99, "target_score": 65.0,
           "query": {"model": "mt5-base", "task": "$\\frac{$" * 10, "target": "swh", "train_config": "eng:1000"}}
    fig = plots.curve_figure(ans)
    fig.canvas.draw()
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]
    assert "10,000" in ticks and not any("$" in t or "mathdefault" in t for t in ticks)  # plain numbers, no mathtext
    _inside(fig)


# ---------------------------------------------------------------------------------------------- xlt explain
def test_cli_explain_prints_meanings_not_codes(model_dir):
    from typer.testing import CliRunner

    from api.cli import app

    r = CliRunner().invoke(app, ["explain", "-m", "mt5-base", "-t", "xquad", "--target", "sw", "-s", "en"],
                           env={"COLUMNS": "160"})
    assert r.exit_code == 0, r.output
    out = r.output
    assert "mT5-base, 580M parameters" in out
    rows = {m.group(1).strip(): m.group(2).strip()
            for m in re.finditer(r"│\s*([^│]+?)\s*│\s*([^│]*?)\s*│\s*[+-]\d", out)}
    if "task type" in rows:
        assert rows["task type"].startswith("qa"), rows
    if "model family" in rows:
        assert rows["model family"] == "mT5", rows
    if "model size" in rows:
        assert rows["model size"] == "mT5-base, 580M parameters", rows
    for feature in ("log_source_size", "log1p_other_sources"):
        name = labels.feature_label(feature)
        if name in rows:
            assert re.fullmatch(r"[\d,]+ examples.*|none", rows[name]), (name, rows[name])  # counts, not logs


def test_cli_explain_user_text_is_not_rich_markup(model_dir):
    from typer.testing import CliRunner

    from api.cli import app

    r = CliRunner().invoke(app, ["explain", "-m", "xlm-r-large", "-t", "[bold]x$\\frac{$", "--task-type", "ner",
                                 "--target", "sw", "-s", "en", "--source-size", "1000"], env={"COLUMNS": "160"})
    assert r.exit_code == 0, r.output
    assert "[bold]x$\\frac{$" in r.output.replace("\n", "")


def test_evidence_features_read_their_words_from_features_evidence():
    ev = pytest.importorskip("features.evidence")
    table = getattr(ev, "EVIDENCE_LABELS", {})
    for feature, words in table.items():
        assert labels.feature_label(feature) == words


# ---------------------------------------------------------------------------------------------- memory of pictures
def _live_figures() -> int:
    import gc

    from matplotlib.figure import Figure
    return sum(isinstance(o, Figure) for o in gc.get_objects())


def test_drawing_leaves_no_dead_figure_behind():
    """A figure is a web of reference cycles that only a full collection frees; a server collects rarely, so each
    waterfall and curve used to leave its figure (and raster) behind until one happened."""
    import gc

    expl = {"base_value": 60.0, "prediction": 63.0, "query": {"model": "xlm-r-large", "task": "xnli", "target": "swh"},
            "contributions": [{"feature": f"f{i}", "label": f"feature {i}", "value": i, "shap": 0.5} for i in range(6)]}
    ans = {"points": [{"k": 0, "score": 60.0}, {"k": 100, "score": 65.0}], "a": 60.0, "b": 1.0, "r2": 0.9,
           "query": expl["query"]}
    plots.waterfall(expl)
    gc.collect()
    before = _live_figures()
    gc.disable()   # as in a server between its rare full collections
    try:
        for _ in range(5):
            assert plots.waterfall(expl)[:8] == PNG and plots.curve(ans)[:8] == PNG
        assert _live_figures() == before
    finally:
        gc.enable()


def test_a_served_worker_draws_its_first_pictures_at_start(model_dir):
    """`create_app()` as `xlt serve` builds it (it loads its own model) warms the plot path on the plot pool after
    start-up; an app handed a predictor (tests, embedding) does not."""
    import asyncio

    from fastapi.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(model_path=model_dir)) as c:
        task = c.app.state.pictures_warm
        drawn = c.portal.call(lambda: asyncio.wait_for(asyncio.shield(task), 60))
        assert drawn > 10_000   # one waterfall + one curve, PNG bytes
        assert c.get("/health").status_code == 200
