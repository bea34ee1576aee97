"""SHAP contributions in words: the top reasons behind a prediction, phrased for a reader, not a data scientist."""
from __future__ import annotations

import math

import numpy as np

from features.evidence import EVIDENCE_LABELS, ZERO_WHEN_UNPUBLISHED
from features.featurize import FEATURE_LABELS as _STATIC_LABELS, FEATURE_NAMES, MODEL_FAMILIES
from features.registry import TASK_TYPES

# not a tree feature: the record's offset for this (model, task, target) and the mix's amount of data, added to the
# trees' output (`TransferRegressor.query_offsets`)
RECORD_RESIDUAL = "record_residual"
# not a tree feature either: the source's offset (predictor.residuals.SourceOffsets) for a target the record lacks
SOURCE_RECORD = "source_record"
# nor this: the offset of this very source → target pair (predictor.residuals.PairOffsets) where the record holds the
# target; a component gets one of the two, never both
PAIR_RECORD = "pair_record"
# nor this: for a model size the record holds no result of (XLM-R XL), the step from the family's nearest size it
# does hold (predictor.size_steps); its value is the doublings of parameters from that size
SIZE_STEP = "size_step"
FEATURE_LABELS = {**_STATIC_LABELS, **EVIDENCE_LABELS,
                  SIZE_STEP: "parameters beyond the nearest model size with published results",
                  RECORD_RESIDUAL: "correction from the published results of this target and of mixes this size",
                  SOURCE_RECORD: "this source on the task's other targets, beyond what the model expects",
                  PAIR_RECORD: "this source's published results for this target, beyond what the model expects"}


def offset_term(target_seen: bool) -> str:
    """The name of the source-offset term of a component: the pair's own record where the record holds the target
    (its `ev_target` is published), the source's record on other targets where it does not."""
    return PAIR_RECORD if target_seen else SOURCE_RECORD


def describe(feature: str, value: float) -> str:
    """A short phrase for a feature at a value, e.g. 'syntactic distance to the target 0.42'."""
    label = FEATURE_LABELS.get(feature, feature)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{label}: none published" if feature.startswith("ev_") else f"{label} unknown"
    if feature in ZERO_WHEN_UNPUBLISHED and value == 0.0:
        return f"{label}: none published (= average)"
    if feature == SOURCE_RECORD and value == 0.0:  # other candidates have a record, this one has none
        return "no published result of this source on the task's other targets"
    if feature == PAIR_RECORD and value == 0.0:
        return "no published result of this source for this target with this model or another size of it"
    if feature == SIZE_STEP:
        return f"{label}: {value:+.1f} doublings"
    if feature.endswith("_vs_others") or feature in (RECORD_RESIDUAL, SOURCE_RECORD, PAIR_RECORD):  # signed
        return f"{label}: {value:+.1f}"
    if feature.startswith("ev_"):
        return f"{label}: {value:.1f}"
    if feature == "same_script":
        return "same script as the target" if value >= 0.5 else "different script from the target"
    if feature == "same_family":
        return "same language family as the target" if value >= 0.5 else "different language family from the target"
    if feature == "tgt_in_corpus":
        return "target is in the pretraining corpus" if value >= 0.5 else "target is absent from the pretraining corpus"
    if feature == "in_language":
        return "the target's own examples" if value >= 0.5 else "a source language other than the target"
    if feature == "model_family":
        i = int(value)
        return f"model family {MODEL_FAMILIES[i] if 0 <= i < len(MODEL_FAMILIES) else value}"
    if feature == "task_type":
        i = int(value)
        return f"task type {TASK_TYPES[i] if 0 <= i < len(TASK_TYPES) else value}"
    if feature in ("log_source_size", "log1p_k", "log1p_other_sources", "log1p_other_related"):
        return f"{label}: {math.expm1(value):,.0f}"
    if feature in ("src_pretrain_log", "tgt_pretrain_log", "tgt_relative_pretrain_log"):
        return f"{label}: {math.expm1(value) / 1e4:.3g}%"
    if feature == "model_log_params":
        return f"{label}: {10 ** value / 1e6:,.0f}M parameters"
    if feature == "n_source_languages":
        return f"{label}: {int(value)}"
    return f"{label} {value:.2f}"


def top_reasons(contrib: np.ndarray, values: np.ndarray, n: int = 3, relative_to: np.ndarray | None = None,
                feature_names: list[str] | None = None, skip: np.ndarray | None = None) -> list[dict]:
    """The n features with the largest |SHAP| (optionally relative to other candidates' mean SHAP), in words;
    `skip` masks features that cannot explain a difference (e.g. equal for every candidate of a ranking)."""
    return top_reasons_rows(np.asarray(contrib)[None, :], np.asarray(values)[None, :], n, relative_to,
                            feature_names, skip)[0]


def top_reasons_rows(contrib: np.ndarray, values: np.ndarray, n: int = 3, relative_to: np.ndarray | None = None,
                     feature_names: list[str] | None = None, skip: np.ndarray | None = None) -> list[list[dict]]:
    """`top_reasons` of each row of `contrib` and `values` (a ranking's explained sources, one sort for all)."""
    names = list(feature_names or FEATURE_NAMES)
    effect = contrib[:, : len(names)]
    if relative_to is not None:
        effect = effect - relative_to[None, : len(names)]
    if skip is not None:
        effect = np.where(skip[None, : len(names)], 0.0, effect)
    order = np.argsort(-np.abs(effect), axis=1, kind="stable")[:, :n]
    rows = []
    for i, cols in enumerate(order.tolist()):
        out = []
        for j in cols:
            e = float(effect[i, j])
            if abs(e) < 1e-9:
                continue
            feature = names[j]
            value = float(values[i, j])
            phrase = describe(feature, value)
            out.append({"feature": feature, "value": None if math.isnan(value) else value,
                        "contribution": e, "text": f"{phrase}: {e:+.1f}"})
        rows.append(out)
    return rows
