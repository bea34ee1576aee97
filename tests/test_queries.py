"""The one query shape: normalisation rules, mixture parsing and per-row errors."""
import math

import pandas as pd
import pytest

from features.errors import BadMixture, BadValue, UnknownLanguage, UnknownModel
from features.queries import format_train_config, normalize, parse_count, parse_train_config


def test_parse_train_config_resolves_and_sorts():
    assert parse_train_config("en:1000; de:50") == {"eng": 1000, "deu": 50}
    assert format_train_config({"eng": 1000, "deu": 50, "fra": 0}) == "deu:50;eng:1000"


@pytest.mark.parametrize("text, fragment", [
    ("en:abc;;de", "empty entry"),
    ("en:abc", "whole number"),
    ("en", "is not 'lang:n'"),
    ("en:10;eng:5", "twice"),
    ("en:0", "no training examples"),
    ("en:-4", ">= 0"),
])
def test_parse_train_config_rejects(text, fragment):
    with pytest.raises(BadMixture) as e:
        parse_train_config(text)
    assert fragment in str(e.value)


def test_parse_train_config_unknown_language_suggests():
    with pytest.raises(UnknownLanguage) as e:
        parse_train_config("en:1000;qqq:10")
    assert "qqq" in str(e.value)


@pytest.mark.parametrize("value, ok", [("10", 10), (10.0, 10), ("1e3", 1000), (0, 0)])
def test_parse_count_accepts(value, ok):
    assert parse_count(value, "k") == ok


@pytest.mark.parametrize("value", ["many", -5, float("nan"), float("inf"), 10**30, 2.5, True, [3]])
def test_parse_count_rejects(value):
    with pytest.raises(BadValue):
        parse_count(value, "k")


def test_normalize_source_defaults_to_task_size_and_k_joins_the_mix():
    df = pd.DataFrame([
        {"model": "xlm-roberta-large", "task": "XNLI", "target": "Swahili", "source": "en"},
        {"model": "mt5-base", "task": "xnli", "target": "sw", "source": "de", "source_size": "5000", "k": 100},
        {"model": "mt5-base", "task": "xnli", "target": "sw", "train_config": "en:1000;sw:20"},
        {"model": "mt5-base", "task": "xnli", "target": "sw", "train_config": "en:1000;sw:20", "k": 50},
    ])
    norm, errors = normalize(df)
    assert errors.tolist()[:3] == ["", "", ""]
    assert norm.loc[0, "model"] == "xlm-r-large" and norm.loc[0, "target"] == "swh"
    assert norm.loc[0, "train_config"] == "eng:392702" and norm.loc[0, "k"] == 0
    assert norm.loc[1, "train_config"] == "deu:5000;swh:100" and norm.loc[1, "k"] == 100
    assert norm.loc[1, "source_size"] == 5000
    assert norm.loc[2, "k"] == 20 and norm.loc[2, "source_size"] == 1000
    assert errors[3].startswith("train_config already gives the target 20 examples and k says 50"), \
        "a k that contradicts the mix's count for the target is refused, not silently preferred"
    same = normalize(pd.DataFrame([{**df.iloc[3].to_dict(), "k": 20}]))[1]
    assert same.tolist() == [""], "a k equal to the mix's count is fine"


def test_normalize_reports_each_bad_row_and_keeps_the_good():
    df = pd.DataFrame([
        {"model": "xlm-r-large", "task": "xnli", "target": "sw", "source": "en"},
        {"model": "gpt-9", "task": "xnli", "target": "sw", "source": "en"},
        {"model": "xlm-r-large", "task": "xnli", "target": "notalang", "source": "en"},
        {"model": "xlm-r-large", "task": "xnli", "target": "sw", "source": None},
        {"model": "xlm-r-large", "task": "telepathy", "target": "sw", "source": "en"},
    ])
    norm, errors = normalize(df)
    assert errors[0] == "" and norm.loc[0, "train_config"] == "eng:392702"
    assert errors[1].startswith("model:") and "gpt-9" in errors[1]
    assert errors[2].startswith("target:") and "notalang" in errors[2]
    assert "source" in errors[3]
    assert errors[4].startswith("task:")


def test_normalize_strict_raises_with_field_and_suggestions():
    df = pd.DataFrame([{"model": "xlm-r-large", "task": "xnli", "target": "Swahilli", "source": "en"}])
    with pytest.raises(UnknownLanguage) as e:
        normalize(df, strict=True)
    assert e.value.field == "target"
    assert any("Swahili" in s for s in e.value.suggestions)
    with pytest.raises(UnknownModel) as e:
        normalize(pd.DataFrame([{"model": "gpt-9", "task": "xnli", "target": "sw", "source": "en"}]), strict=True)
    assert e.value.field == "model"


def test_unknown_task_is_served_with_a_task_type():
    df = pd.DataFrame([{"model": "xlm-r-large", "task": "my-new-ner", "task_type": "ner", "target": "sw",
                        "source": "en", "source_size": 1000}])
    norm, errors = normalize(df)
    assert errors[0] == "" and norm.loc[0, "task_type"] == "ner"
    assert not math.isnan(norm.loc[0, "source_size"])
