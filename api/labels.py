"""Feature values as a reader means them: `task type = qa`, `model = mT5-base, 580M parameters`, example counts.

The model sees encoded numbers (category indices, log sizes, parts-per-million logs); plots and `xlt explain` must
show what they stand for. Everything here is read from the feature modules at call time (`features.registry`,
`features.featurize`), never copied, and a feature this module does not know (others add features) falls back to its
label or raw name and a rounded value, so a new feature can never break a plot or the CLI.
"""
from __future__ import annotations

import math

# How a model family is written in papers; a family missing here is shown as its id.
_FAMILY_NAMES = {"mt5": "mT5", "xlm-r": "XLM-R", "mbert": "mBERT", "tulrv6": "T-ULRv6"}


def _isnan(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def rounded(value) -> str:
    """A number to 3 significant figures (no exponent for ordinary magnitudes); '' for None/NaN."""
    if _isnan(value):
        return "unknown"
    value = float(value)
    if value == int(value) and abs(value) < 1e6:
        return f"{int(value)}"
    return f"{value:.3g}"


def count(n: float) -> str:
    """An example count with thousands separators: 87,599."""
    return f"{int(round(n)):,}"


def params(n: float) -> str:
    """A parameter count: 580M, 1.2B, 13B."""
    if n >= 1e9:
        return f"{n / 1e9:.3g}B"
    return f"{n / 1e6:.3g}M"


def share(fraction: float) -> str:
    """A share of a corpus: 43.6%, 0.016%, <0.0001%."""
    pct = 100 * fraction
    if pct == 0:
        return "0%"
    if pct < 1e-4:
        return "<0.0001%"
    return f"{pct:.3g}%"


def model_name(model_id: str | None) -> str:
    """mt5-base → mT5-base, xlm-r-large → XLM-R-large, mbert → mBERT; unknown ids as given."""
    if not model_id:
        return ""
    try:
        from features.registry import resolve_model
        spec = resolve_model(model_id)
    except Exception:  # noqa: BLE001 - a display helper must never raise
        return str(model_id)
    fam = _FAMILY_NAMES.get(spec.family)
    if fam and spec.id.startswith(spec.family):
        return fam + spec.id[len(spec.family):]
    return spec.id


def model_description(model_id: str | None) -> str:
    """'mT5-base, 580M parameters' (or 'mT5, parameter count not published')."""
    if not model_id:
        return ""
    try:
        from features.registry import resolve_model
        spec = resolve_model(model_id)
    except Exception:  # noqa: BLE001
        return str(model_id)
    size = f"{params(spec.n_params)} parameters" if spec.n_params else "parameter count not published"
    return f"{model_name(model_id)}, {size}"


def _mixture(train_config: str | None) -> list[tuple[str, int]]:
    """'eng:1000;deu:500' → [('eng', 1000), ('deu', 500)]; [] when absent or unparsable (display only)."""
    out = []
    for part in str(train_config or "").split(";"):
        lang, _, n = part.partition(":")
        try:
            out.append((lang.strip(), int(float(n))))
        except ValueError:
            continue
    return out


def _yes_no(value: float, yes: str, no: str) -> str:
    """1 → yes, 0 → no, in between (a mixture's size-weighted mean) → the share of sources for which it holds."""
    if value >= 0.999:
        return yes
    if value <= 0.001:
        return no
    return f"{yes} for {100 * value:.0f}% of the source data"


def _index(value: float, names) -> str | None:
    i = int(round(value))
    return names[i] if 0 <= i < len(names) and abs(value - i) < 1e-6 else None


def feature_label(feature: str, label: str | None = None) -> str:
    """Words for a feature: the feature modules' tables (features.featurize.FEATURE_LABELS, then
    features.evidence.EVIDENCE_LABELS), else the label given (the explain answer's), else the predictor's table,
    else the raw name."""
    for module, table in (("features.featurize", "FEATURE_LABELS"), ("features.evidence", "EVIDENCE_LABELS")):
        words = _labels(module, table).get(feature)
        if words:
            return words
    return label or _labels("predictor.explain", "FEATURE_LABELS").get(feature) or feature


def _labels(module: str, name: str) -> dict:
    """A module's label table, {} when it has none (features are being renamed; a label is never worth a crash)."""
    try:
        return dict(getattr(__import__(module, fromlist=[name]), name, None) or {})
    except Exception:  # noqa: BLE001
        return {}


def _zero_when_unpublished() -> tuple[str, ...]:
    from features.evidence import ZERO_WHEN_UNPUBLISHED
    return ZERO_WHEN_UNPUBLISHED


def value_text(feature: str, value, query: dict | None = None) -> str:
    """The value of `feature` in natural units, using the query echo (model, task, train_config) for context."""
    q = query or {}
    if _isnan(value):
        if feature == "model_log_params" and q.get("model"):
            return model_description(q["model"])
        if feature.startswith("ev_"):  # features.evidence: means of published scores; NaN = nothing published
            return "none published"
        return "unknown"
    value = float(value)
    if value == 0.0 and feature in _zero_when_unpublished():  # 0 = nothing published, counted as average
        return "none published (= average)"
    try:
        if feature == "task_type":
            from features.registry import TASK_TYPES
            name = _index(value, TASK_TYPES)
            if name is None:
                return rounded(value)
            task = q.get("task")
            return f"{name} ({task})" if task and task != name and len(str(task)) <= 24 else name
        if feature == "model_family":
            from features.featurize import MODEL_FAMILIES
            fam = _index(value, MODEL_FAMILIES)
            if fam is None:
                return rounded(value)
            return _FAMILY_NAMES.get(fam, fam)
        if feature == "model_log_params":
            asked = _asked_params(q.get("model"))
            if asked and abs(math.log10(asked) - value) > 1e-3:  # scored at its anchor's size (predictor.size_steps)
                return f"{params(10 ** value)} parameters, the nearest size with published results " \
                       f"({model_description(q['model'])})"
            if q.get("model"):
                return model_description(q["model"])
            return f"{params(10 ** value)} parameters"
        if feature == "size_step":
            return f"{value:.2f} doublings (×{2 ** value:.1f} parameters)"
        if feature == "log_source_size" or feature.startswith("log1p_"):
            n = math.expm1(value)  # log1p of an example count
            if feature == "log1p_k":
                return count(n)
            if round(n) == 0:
                return "none"
            text = f"{count(n)} examples"
            if feature == "log_source_size":
                langs = [lang for lang, m in _mixture(q.get("train_config")) if m == round(n) and lang != q.get("target")]
                if len(langs) == 1:
                    text += f" ({langs[0]})"
            return text
        if feature in ("src_pretrain_log", "tgt_pretrain_log", "tgt_relative_pretrain_log"):
            return share(math.expm1(value) / 1e6)  # log1p of a share in parts per million
        if feature.startswith("same_") or feature == "in_language":
            return _yes_no(value, "yes", "no")
        if feature == "tgt_in_corpus":
            return "yes" if value >= 0.5 else "no"
        if feature == "n_source_languages":
            return str(int(round(value)))
        if feature == "uriel_coverage":
            return f"{100 * value:.0f}%"
        if feature.startswith("ev_"):  # published scores (0-100); a *_vs_* grain is a difference
            return f"{value:+.1f}" if "_vs_" in feature else f"{value:.1f}"
        if feature.startswith("dist_") or feature in ("subword_overlap", "tgt_relative_distance"):
            return f"{value:.2f}"
    except (ValueError, OverflowError, ImportError):
        pass
    return rounded(value)


def _asked_params(model_id: str | None) -> float | None:
    """The registered parameter count of the model a query names (None when unknown or unsized)."""
    if not model_id:
        return None
    try:
        from features.registry import resolve_model
        return resolve_model(model_id).n_params
    except Exception:  # noqa: BLE001
        return None


def describe(feature: str, value, query: dict | None = None, label: str | None = None) -> str:
    """'task type = qa (xquad)', 'model = mT5-base, 580M parameters'; unknown features: 'name = 1.23'."""
    if feature == "model_log_params" and (query or {}).get("model"):
        text = value_text(feature, value, query)
        return f"model = {text}" if text == model_description(query["model"]) else f"model size = {text}"
    return f"{feature_label(feature, label)} = {value_text(feature, value, query)}"
