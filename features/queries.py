"""The one query shape every interface shares: normalise what a user typed into canonical, validated rows.

A query is `model, task, task_type, target, train_config, k`. A single `source` (+ `source_size`) is the
one-language mixture; `source_size` defaults to the task's usual training-set size. When `train_config` names the
target, that count is k; an explicit `k` adds the target with k examples (and wins over a conflicting count).

Resolution runs once per *distinct* value of each column, so a million-row batch with a few hundred distinct languages
costs a few hundred resolver calls. Errors never raise out of `normalize`: each bad row gets its message in `errors`
and the good rows go on.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from features.errors import BadMixture, BadValue, XltError
from features.languages import resolve_code
from features.registry import resolve_model, resolve_task

MAX_EXAMPLES = 100_000_000  # no published fine-tuning set comes near; larger counts are typos or overflow
QUERY_COLUMNS = ("model", "task", "task_type", "target", "train_config", "k")
_PAIR = re.compile(r"^\s*([^:;\s]+)\s*:\s*([^:;]+?)\s*$")


def parse_count(value, field: str) -> int:
    """An example count: a non-negative integer below MAX_EXAMPLES (accepts '1000', 1000.0, '1e3')."""
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            raise BadValue(f"{field} must be a whole number of examples, got {value!r}", field=field) from None
    elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, (float, np.floating)):
        number = float(value)
    else:
        raise BadValue(f"{field} must be a whole number of examples, got {value!r}", field=field)
    if not math.isfinite(number):
        raise BadValue(f"{field} must be a finite number, got {value!r}", field=field)
    if number < 0:
        raise BadValue(f"{field} must be >= 0, got {value!r}", field=field)
    if number > MAX_EXAMPLES:
        raise BadValue(f"{field} must be at most {MAX_EXAMPLES:,}, got {value!r}", field=field)
    if number != int(number):
        raise BadValue(f"{field} must be a whole number, got {value!r}", field=field)
    return int(number)


def parse_train_config(text: str, field: str = "train_config") -> dict[str, int]:
    """Parse `lang:n;lang:n` into {canonical code: n}; languages resolved, duplicates and junk rejected."""
    if not isinstance(text, str) or not text.strip():
        raise BadMixture("train_config must look like 'en:1000;de:50'", field=field)
    parts = text.split(";")
    matches = []
    for part in parts:  # shape first, so 'en:abc;;de' is reported as a malformed mixture, not a bad count
        if not part.strip():
            raise BadMixture(f"train_config {text!r} has an empty entry; expected 'lang:n;lang:n'", field=field)
        m = _PAIR.match(part)
        if not m:
            raise BadMixture(f"train_config entry {part.strip()!r} is not 'lang:n'", field=field)
        matches.append(m)
    mix: dict[str, int] = {}
    for m in matches:
        code = resolve_code(m.group(1))
        try:
            n = parse_count(m.group(2), f"{field}[{m.group(1)}]")
        except BadValue as e:
            raise BadMixture(e.message, field=field) from None
        if code in mix:
            raise BadMixture(f"train_config names {m.group(1)!r} ({code}) twice", field=field)
        mix[code] = n
    if not any(mix.values()):
        raise BadMixture("train_config has no training examples (all counts are 0)", field=field)
    return mix


def format_train_config(mix: dict[str, int]) -> str:
    """Canonical text form: languages sorted, zero counts dropped."""
    return ";".join(f"{lang}:{n}" for lang, n in sorted(mix.items()) if n > 0)


def _blank(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    if name in df.columns:
        return df[name]
    return pd.Series([None] * len(df), index=df.index, dtype=object)


def _field_error(e: XltError, field: str) -> XltError:
    """The same error, tagged with the query field it concerns (resolvers do not know which field they serve)."""
    if not (e.field or "").startswith(field):
        e.field = field
    return e


def _resolve_unique(values: pd.Series, fn, errors: np.ndarray, field: str, required: bool = True,
                    raised: dict | None = None) -> np.ndarray:
    """Apply `fn` once per distinct value; record `field: message` for rows whose value fails."""
    codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=True)
    out_unique = np.empty(len(uniques), dtype=object)
    msg_unique = np.full(len(uniques), "", dtype=object)
    for i, value in enumerate(uniques):
        if _blank(value):
            if required:
                msg_unique[i] = f"{field} is required"
            continue
        try:
            out_unique[i] = fn(value)
        except XltError as e:
            e = _field_error(e, field)
            msg_unique[i] = str(e) if str(e).startswith(field) else f"{field}: {e}"
            if raised is not None:
                raised.setdefault(field, e)
    out = np.empty(len(values), dtype=object)
    present = codes >= 0
    out[present] = out_unique[codes[present]]
    msgs = np.full(len(values), "", dtype=object)
    msgs[present] = msg_unique[codes[present]]
    if required:
        msgs[~present] = f"{field} is required"
    first = (errors == "") & (msgs != "")
    errors[first] = msgs[first]
    return out


def combine(task, target: str, source: str | None, config: dict | None, size: int | None,
            k: int | None) -> tuple[str, int, int]:
    """The query's mixture from resolved parts: (canonical train_config, k, non-target examples).

    One source + size (default: the task's training-set size) or a parsed train_config; an explicit k sets the
    target's count (added on top of the source's when source is the target itself: in-language data + k more).
    """
    if config is not None:
        if source is not None:
            raise BadValue("give either source or train_config, not both", field="source")
        mix = dict(config)
    elif source is not None:
        size = size if size is not None else task.train_size
        if size is None:
            raise BadValue(f"source_size is required: task {task.id!r} has no known training-set size",
                           field="source_size")
        if size <= 0:
            raise BadValue("source_size must be > 0", field="source_size")
        mix = {source: int(size)}
    else:
        raise BadValue("give a source language (source) or a mixture (train_config 'lang:n;lang:n')",
                       field="source")
    if k is not None:
        if config is not None and mix.get(target) and mix[target] != int(k):
            raise BadValue(f"train_config already gives the target {mix[target]} examples and k says {int(k)}: "
                           "give the target's examples once (in train_config or as k)", field="k")
        mix[target] = int(k) + (mix.get(target, 0) if source == target else 0)
    kk = mix.get(target, 0)
    total = sum(v for lang, v in mix.items() if lang != target)
    if total == 0 and kk == 0:
        raise BadMixture("the training mix has no examples", field="train_config")
    return format_train_config(mix), kk, total


def normalize_one(query: dict) -> pd.DataFrame:
    """One query, strictly: the canonical one-row table, or the XltError of its first bad field.

    Same rules as `normalize` without its per-column pandas machinery, which costs milliseconds on a single row
    (and a single row is what /predict, /explain and every /rank request start from).
    """
    def get(field: str, fn, required: bool = True):
        value = query.get(field)
        if _blank(value):
            if required:
                raise BadValue(f"{field} is required", field=field)
            return None
        try:
            return fn(value)
        except XltError as e:
            raise _field_error(e, field)

    model = get("model", resolve_model)
    task_type = query.get("task_type")
    task = get("task", lambda t: resolve_task(t, None if _blank(task_type) else task_type))
    target = get("target", resolve_code)
    source = get("source", resolve_code, required=False)
    config = get("train_config", parse_train_config, required=False)
    size = get("source_size", lambda v: parse_count(v, "source_size"), required=False)
    k = get("k", lambda v: parse_count(v, "k"), required=False)
    train_config, kk, total = combine(task, target, source, config, size, k)
    return pd.DataFrame({"model": [model.id], "task": [task.id], "task_type": [task.task_type], "target": [target],
                         "train_config": [train_config], "k": np.array([kk], dtype=np.int64),
                         "source_size": np.array([total], dtype=np.int64)})


def normalize(df: pd.DataFrame, strict: bool = False, published: bool = False) -> tuple[pd.DataFrame, pd.Series]:
    """Canonical query rows (model, task, task_type, target, train_config, k, source_size) and per-row errors.

    Rows with an error keep placeholder values; callers must not predict them (mask with `errors == ''`).
    strict=True raises the first row's error instead (with its field and suggestions): the single-query path.
    published=True reads the published record, whose unsized model ids (`mt5`, `xlm-r`) stay as they are.
    """
    n = len(df)
    errors = np.full(n, "", dtype=object)
    index = df.index
    raised: dict[str, XltError] = {}

    models = _resolve_unique(_column(df, "model"), lambda m: resolve_model(m, allow_unsized=published), errors,
                             "model", raised=raised)
    task_col = _column(df, "task")
    type_col = _column(df, "task_type")
    if "task_type" in df.columns:
        # Keys built by hand: pandas 3's astype(str) keeps None as missing, which would read as "no task".
        keys, lookup = [], {}
        for t, tt in zip(task_col, type_col):
            key = f"{t}\x00{tt}"
            keys.append(None if _blank(t) else key)
            lookup.setdefault(key, (t, None if _blank(tt) else tt))
        pair = pd.Series(keys, index=df.index, dtype=object)
        tasks = _resolve_unique(pair, lambda key: resolve_task(*lookup[key]), errors, "task", raised=raised)
        blank_task = task_col.map(_blank).to_numpy()
        errors[(errors == "") & blank_task] = "task is required"
    else:
        tasks = _resolve_unique(task_col, resolve_task, errors, "task", raised=raised)
    targets = _resolve_unique(_column(df, "target"), resolve_code, errors, "target", raised=raised)

    has_source = "source" in df.columns
    has_config = "train_config" in df.columns
    source_codes = (_resolve_unique(_column(df, "source"), resolve_code, errors, "source", required=False,
                                    raised=raised) if has_source else np.full(n, None, dtype=object))
    configs = (_resolve_unique(_column(df, "train_config"), parse_train_config, errors, "train_config",
                               required=False, raised=raised) if has_config else np.full(n, None, dtype=object))
    sizes = _resolve_unique(_column(df, "source_size"), lambda v: parse_count(v, "source_size"), errors,
                            "source_size", required=False, raised=raised)
    ks = _resolve_unique(_column(df, "k"), lambda v: parse_count(v, "k"), errors, "k", required=False, raised=raised)

    out_config = np.full(n, "", dtype=object)
    out_k = np.zeros(n, dtype=np.int64)
    out_size = np.zeros(n, dtype=np.int64)
    for i in range(n):
        if errors[i]:
            continue
        try:
            out_config[i], out_k[i], out_size[i] = combine(tasks[i], targets[i], source_codes[i], configs[i],
                                                           sizes[i], ks[i])
        except XltError as e:
            errors[i] = str(e)
            raised.setdefault(e.field or "query", e)

    ok = errors == ""
    if strict and not ok.all():
        first = errors[~ok][0]
        for e in raised.values():
            if str(e) in first:
                raise e
        raise BadValue(first, field=first.split(" ", 1)[0] if first.split(" ", 1)[0] in df.columns else None)
    norm = pd.DataFrame({
        "model": [m.id if m is not None else "" for m in models],
        "task": [t.id if t is not None else "" for t in tasks],
        "task_type": [t.task_type if t is not None else "" for t in tasks],
        "target": [t if t is not None else "" for t in targets],
        "train_config": out_config,
        "k": out_k,
        "source_size": out_size,
    }, index=index)
    norm.loc[~ok, ["model", "task", "task_type", "target", "train_config"]] = ""
    return norm, pd.Series(errors, index=index, dtype=object, name="error")
