"""pandera schemas for the training table and the LangRank peer table.

Why a schema: every downstream room (featurizer, trainer, evaluation) reads observations.csv; a wrong scale, a
negative k or a duplicated configuration would silently bias the predictor. The build validates before writing and
the tests validate the committed file.
"""
from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.pandas import Check, Column, DataFrameSchema

from features.registry import TASK_TYPES, models, tasks

DATASETS = ("en_source_tables", "langrankplus", "mt5_xue2021", "sumeval2022", "xpos_devries2022")
SETTINGS = ("zero-shot", "multi-source", "few-shot", "in-language", "in-language-multitask", "translate-train")
METRICS = ("accuracy", "F1", "EM")
TARGET_DATA = ("none", "gold", "machine-translated")
SOURCE_SIZE_BASIS = ("reported", "task_default", "capped_train_size", "full_train_size", "per_language_train_size")

# One row per configuration: these columns identify what was measured (dataset is deliberately not part of it:
# the same configuration reported by two publications is one observation, resolved by source priority).
KEY_COLUMNS = ["model", "task", "train_task", "metric", "setting", "train_config", "target", "variant"]

COLUMNS = ["row_id", "dataset", "dataset_file", "origin", "model", "task", "task_type", "metric", "primary_metric",
           "setting", "train_task", "train_config", "source", "source_size", "n_sources", "k", "target",
           "target_in_mix", "target_data", "variant", "source_size_basis", "score"]

_CODE = r"^[a-z]{3}$"
_CONFIG = r"^[a-z]{3}:[1-9][0-9]*(;[a-z]{3}:[1-9][0-9]*)*$"


def _configs_sorted(s: pd.Series) -> pd.Series:
    def ok(cfg: str) -> bool:
        langs = [p.split(":")[0] for p in cfg.split(";")]
        return langs == sorted(langs) and len(set(langs)) == len(langs)

    return s.map(ok)


def _k_matches_config(df: pd.DataFrame) -> pd.Series:
    """k is the target's count in train_config (0 when absent); source_size is the rest of the mix."""
    def row_ok(cfg: str, tgt: str, k: int, size: int) -> bool:
        mix = {p.split(":")[0]: int(p.split(":")[1]) for p in cfg.split(";")}
        return mix.get(tgt, 0) == k and sum(mix.values()) - mix.get(tgt, 0) == size

    return pd.Series([row_ok(c, t, k, s) for c, t, k, s in
                      zip(df["train_config"], df["target"], df["k"], df["source_size"])], index=df.index)


OBSERVATIONS_SCHEMA = DataFrameSchema(
    {
        "row_id": Column(str, Check.str_matches(r"^[0-9a-f]{12}$"), unique=True),
        "dataset": Column(str, Check.isin(DATASETS)),
        "dataset_file": Column(str, Check.str_length(min_value=1)),
        "origin": Column(str, Check.str_length(min_value=1)),
        "model": Column(str, Check.isin([m.id for m in models()])),
        "task": Column(str, Check.isin([t.id for t in tasks()])),
        "task_type": Column(str, Check.isin(TASK_TYPES)),
        "metric": Column(str, Check.isin(METRICS)),
        "primary_metric": Column(bool),
        "setting": Column(str, Check.isin(SETTINGS)),
        "train_task": Column(str, Check.isin([t.id for t in tasks()])),
        "train_config": Column(str, [Check.str_matches(_CONFIG), Check(_configs_sorted, element_wise=False)]),
        "source": Column(str, Check.str_matches(r"^([a-z]{3}|mix)$")),
        "source_size": Column(int, Check.ge(0)),
        "n_sources": Column(int, Check.ge(0)),
        "k": Column(int, Check.ge(0)),
        "target": Column(str, Check.str_matches(_CODE)),
        "target_in_mix": Column(bool),
        "target_data": Column(str, Check.isin(TARGET_DATA)),
        "variant": Column(str, nullable=False),
        "source_size_basis": Column(str, Check.isin(SOURCE_SIZE_BASIS)),
        "score": Column(float, [Check.ge(0.0), Check.le(100.0)], nullable=False),
    },
    checks=[
        Check(_k_matches_config, error="k / source_size disagree with train_config"),
        Check(lambda d: (d["k"] > 0) == d["target_in_mix"], error="target_in_mix must equal k > 0"),
        Check(lambda d: (d["setting"] != "zero-shot") | (d["k"] == 0), error="zero-shot rows must have k = 0"),
        Check(lambda d: (d["setting"] != "in-language") | (d["source_size"] == 0),
              error="in-language rows train on the target only"),
        Check(lambda d: (d["k"] + d["source_size"]) > 0, error="empty training mix"),
    ],
    unique=KEY_COLUMNS,
    strict=True,
    ordered=True,
    coerce=False,
)

PEER_SCHEMA = DataFrameSchema(
    {
        "task": Column(str, Check.isin(["langrank-el", "langrank-mt", "langrank-parsing", "langrank-pos"])),
        "metric": Column(str, Check.isin(["accuracy", "BLEU"])),
        "target": Column(str, Check.str_matches(r"^([a-z]{3})?$")),
        "source": Column(str, Check.str_matches(r"^([a-z]{3})?$")),
        "score": Column(float, [Check.ge(0.0), Check.le(100.0)]),
        "target_raw": Column(str),
        "source_raw": Column(str),
    },
    unique=["task", "target_raw", "source_raw"],
    strict=False,
)


def validate_observations(df: pd.DataFrame) -> pd.DataFrame:
    """Raise pandera SchemaErrors (all failures at once) if the table breaks a rule."""
    return OBSERVATIONS_SCHEMA.validate(df, lazy=True)


def validate_peer(df: pd.DataFrame) -> pd.DataFrame:
    return PEER_SCHEMA.validate(df, lazy=True)
