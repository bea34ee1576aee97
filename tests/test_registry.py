"""features.registry: real ids, aliases, sizes and corpus numbers as published."""
from __future__ import annotations

import pytest

from features import registry as R
from features.errors import BadValue, UnknownModel, UnknownTask, XltError


@pytest.mark.parametrize("text, expected", [
    ("XLMR", "xlm-r-large"), ("xlm-r", "xlm-r-large"), ("xlm-roberta-large", "xlm-r-large"), ("XLM-R Large", "xlm-r-large"),
    ("facebook/xlm-roberta-base", "xlm-r-base"), ("xlm_r_base", "xlm-r-base"), ("google/mt5-base", "mt5-base"),
    ("mT5-Base", "mt5-base"), ("MT5 XXL", "mt5-xxl"), ("mT5", "mt5-base"), ("TULRv6Large", "tulrv6-large"),
    ("T-ULRv6 Large", "tulrv6-large"), ("bert-base-multilingual-cased", "mbert"), ("mBERT", "mbert"),
    ("  mt5_small ", "mt5-small"),
])
def test_resolve_model_aliases(text, expected):
    assert R.resolve_model(text).id == expected


def test_model_ids_match_the_contract():
    assert [m.id for m in R.models()] == ["mt5-small", "mt5-base", "mt5-large", "mt5-xl", "mt5-xxl", "mt5",
                                          "xlm-r-base", "xlm-r-large", "xlm-r-xl", "xlm-r-xxl", "xlm-r", "mbert",
                                          "tulrv6-large"]


def test_model_facts():
    sizes = {m.id: m.n_params for m in R.models()}
    assert sizes["mt5-small"] == 300e6 and sizes["mt5-base"] == 580e6 and sizes["mt5-large"] == 1.2e9
    assert sizes["mt5-xl"] == 3.7e9 and sizes["mt5-xxl"] == 13e9
    assert sizes["xlm-r-base"] == 270e6 and sizes["xlm-r-large"] == 550e6 and sizes["mbert"] == 178e6
    # unknown sizes are None, never guessed
    assert sizes["mt5"] is None and sizes["xlm-r"] is None and sizes["tulrv6-large"] is None
    assert R.resolve_model("mt5-xl").corpus == "mc4" and R.resolve_model("xlm-r").corpus == "cc100"
    assert R.resolve_model("mbert").corpus == "wiki" and R.resolve_model("tulrv6-large").corpus == "cc100"
    assert {m.family for m in R.models()} == {"mt5", "xlm-r", "mbert", "tulrv6"}


def test_unknown_model_suggests_close_ids():
    with pytest.raises(UnknownModel) as e:
        R.resolve_model("xlm-roberta-larg")
    assert e.value.field == "model"
    assert e.value.suggestions[0] == "xlm-r-large"
    assert isinstance(e.value, XltError) and "unknown model" in str(e.value)
    with pytest.raises(UnknownModel):
        R.resolve_model("")


@pytest.mark.parametrize("text, expected", [
    ("PAN-X", "wikiann"), ("panx", "wikiann"), ("WikiANN", "wikiann"), ("UDPOS", "udpos"), ("udpos28", "udpos"),
    ("TyDiQA-GoldP", "tydiqa"), ("tydiqa_id", "tydiqa"), ("TyDi QA-GoldP", "tydiqa"), ("PAWS-X", "pawsx"),
    ("XNLI", "xnli"), ("CoNLL", "conll-ner"), ("mlqa", "mlqa"), ("XQuAD", "xquad"), ("tsfpos", "langrank-pos"),
])
def test_resolve_task_aliases(text, expected):
    assert R.resolve_task(text).id == expected


def test_task_train_sizes():
    size = {t.id: t.train_size for t in R.tasks()}
    assert size["xnli"] == 392_702 and size["pawsx"] == 49_401 and size["xquad"] == 87_599
    assert size["mlqa"] == 87_599 and size["tydiqa"] == 3_696 and size["wikiann"] == 20_000
    assert size["udpos"] == 19_912 and size["conll-ner"] == 14_041
    assert R.resolve_task("xnli").metric == "accuracy" and R.resolve_task("xquad").metric == "F1"
    assert {t.task_type for t in R.tasks()} <= set(R.TASK_TYPES)
    assert {"langrank-pos", "langrank-el", "langrank-parsing", "langrank-mt"} <= {t.id for t in R.tasks()}


def test_adhoc_task_with_type():
    spec = R.resolve_task("My New Task", task_type="NER")
    assert (spec.id, spec.task_type, spec.metric, spec.train_size, spec.adhoc) == ("my-new-task", "ner", "F1", 20000, True)
    assert "typical ner training-set size" in spec.train_size_note and spec.chance == 0.0
    assert R.resolve_task("my-tagger", "pos").chance == pytest.approx(100 / 17)
    assert R.resolve_task("sentiment_xx", "text-classification").task_type == "classification"


def test_unknown_task_without_type_suggests():
    with pytest.raises(UnknownTask) as e:
        R.resolve_task("xnlii")
    assert e.value.field == "task" and e.value.suggestions[0] == "xnli"


def test_bad_task_type_lists_types():
    with pytest.raises(UnknownTask) as e:
        R.resolve_task("whatever", task_type="summarization")
    assert e.value.field == "task_type"
    assert e.value.suggestions == list(R.TASK_TYPES)
    for t in R.TASK_TYPES:
        assert t in str(e.value)


def test_known_task_with_contradicting_type():
    with pytest.raises(UnknownTask) as e:
        R.resolve_task("xnli", task_type="ner")
    assert e.value.suggestions == ["classification"]
    assert R.resolve_task("xnli", task_type="classification").id == "xnli"


def test_mc4_sizes_fix_the_ml_mn_swap_and_sum_chinese():
    mc4 = R.corpus_sizes("mc4")
    assert mc4["eng"] == 2733 and mc4["rus"] == 713
    assert mc4["mal"] == 1.8 and mc4["khk"] == 2.7  # Table 6; mayhewsw's mc4.csv has them swapped
    assert mc4["cmn"] == 39  # `zh` only: "Chinese (Latin)" romanized row is skipped
    assert mc4["heb"] == 17 and mc4["tgl"] == 2.1  # iw, fil
    samp = R.sampling_share("mc4")
    assert samp["eng"] == pytest.approx(0.0567) and samp["yor"] == pytest.approx(0.0020)
    share = R.corpus_share("mc4")
    assert share["eng"] == pytest.approx(2733 / 6271.85, rel=1e-3)
    assert 0.99 < sum(share.values()) < 1.0  # romanized rows are in the denominator only


def test_cc100_sums_duplicate_codes_in_gib():
    cc = R.corpus_sizes("cc100")
    assert cc["eng"] == 300.8
    assert cc["cmn"] == pytest.approx(46.9 + 16.6)  # Simplified + Traditional rows
    assert cc["mya"] == pytest.approx(1.6 + 0.4)  # two Burmese rows
    assert "hin" in cc and cc["hin"] == 20.2  # "Hindi Romanized" not added
    assert R.CORPUS_UNITS["cc100"] == "GiB"


def test_wiki_is_mbert_languages_only():
    wiki = R.corpus_sizes("wiki")
    assert len(wiki) == 102 and "eng" in wiki and "ceb" in wiki
    assert "amh" not in wiki  # Amharic Wikipedia exists but is not in mBERT
    assert R.corpus_languages("mbert") == sorted(wiki)


def test_corpus_languages_per_model():
    xlmr = R.corpus_languages("xlm-r-large")
    assert "swh" in xlmr and "eng" in xlmr and xlmr == sorted(xlmr)
    assert R.corpus_languages("XLMR") == xlmr == R.corpus_languages("tulrv6-large")
    mt5 = R.corpus_languages("mt5-base")
    assert "yor" in mt5 and "haw" in mt5 and len(mt5) == 101
    with pytest.raises(BadValue):
        R.corpus_sizes("bookcorpus")


def test_per_language_train_sizes():
    assert R.train_size("tydiqa", "sw") == 2755 and R.train_size("tydiqa", "ar") == 14805
    assert R.train_size("tydiqa", "en") == 3696
    assert R.train_size("udpos", "de") == 163106 and R.train_size("udpos", "en") == 19912
    assert R.train_size("xnli", "en") == 392_702 and R.train_size("xnli") == 392_702
    assert R.train_size("xnli", "de") is None  # not known: never guessed
    # WikiANN's Rahimi et al. split: English 20,000, Hindi 5,000, Swahili 1,000, Yoruba 100 (Hugging Face card)
    assert R.train_size("wikiann", "en") == 20_000 and R.train_size("wikiann", "hi") == 5_000
    assert R.train_size("wikiann", "sw") == 1_000 and R.train_size("wikiann", "yo") == 100
    assert R.train_size("wikiann", "yue") == 20_000 and R.train_size("wikiann", "qu") == 100


def test_rebuild_reproduces_committed_files(tmp_path):
    R.rebuild(out_dir=tmp_path)
    for name in (R.CORPUS_SIZES_FILE.name, R.TRAIN_SIZES_FILE.name):
        assert (tmp_path / name).read_bytes() == (R.DATA_DIR / name).read_bytes()


def test_unsized_family_names_resolve_to_the_sized_default_except_for_published_data():
    assert R.resolve_model("XLM-R").id == "xlm-r-large" and R.resolve_model("mT5").id == "mt5-base"
    assert R.resolve_model("xlm-r", allow_unsized=True).id == "xlm-r"
    assert "assumed xlm-r-large" in R.assumed_size("xlmr") and R.assumed_size("xlm-r-base") is None


def test_benchmarks_without_training_results_are_served_from_their_type(predictor):
    """XCOPA and the other registered benchmarks the training data lacks: known ids (with aliases), their own chance
    floor, not counted in the typical training-set size of their type, and answered in the similarity regime."""
    from features import registry

    xcopa = registry.resolve_task("XCOPA")
    assert (xcopa.id, xcopa.task_type, xcopa.chance, xcopa.observed) == ("xcopa", "classification", 50.0, False)
    assert registry.resolve_task("SIB-200").chance == pytest.approx(100 / 7)
    assert registry.typical_train_size("classification") == 392_702  # xnli and pawsx only
    assert registry.typical_train_size("ner") == 20_000
    table = predictor.rank_table({"model": "xlm-r-large", "task": "xcopa", "target": "ht"}, None, 10)
    assert table.regime == "similarity"
    assert (table.columns["predicted_score"] >= 50.0).all() and len(table) == 10


def test_xlm_r_xl_and_xxl_are_known_and_not_below_large(predictor):
    from features import registry

    assert registry.resolve_model("facebook/xlm-roberta-xl").id == "xlm-r-xl"
    assert registry.resolve_model("XLM-R XXL").n_params == 10.7e9
    scores = [predictor.predict_one({"model": m, "task": "xnli", "target": "sw", "train_config": "en:392702"})
              ["predicted_score"] for m in ("xlm-r-large", "xlm-r-xl", "xlm-r-xxl")]
    assert scores[0] <= scores[1] <= scores[2]
    # no result of XLM-R XL in the record: its answers extrapolate, so they are not in the record regime
    q = {"task": "xnli", "target": "sw", "train_config": "en:392702"}
    assert predictor.predict_one({**q, "model": "xlm-r-large"})["regime"] == "record"
    xl = predictor.predict_one({**q, "model": "xlm-r-xl"})
    large = predictor.predict_one({**q, "model": "xlm-r-large"})
    assert xl["regime"] == "similarity" and xl["upper80"] - xl["lower80"] > large["upper80"] - large["lower80"]


def test_a_task_named_by_its_type_is_a_new_task_of_that_type():
    """"NER" or "question answering" names no dataset: a new (ad-hoc) task of that type, typical size and chance."""
    for text, ttype in (("NER", "ner"), ("POS", "pos"), ("question answering", "qa"), ("nli", "classification")):
        spec = R.resolve_task(text)
        assert spec.adhoc and spec.task_type == ttype and spec.train_size == R.typical_train_size(ttype)
    assert R.resolve_task("pos").chance == pytest.approx(100 / 17)
    with pytest.raises(UnknownTask):
        R.resolve_task("NER", task_type="qa")  # the type its name says, not another
