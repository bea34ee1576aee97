"""Property tests (Hypothesis) for the three parsers every request goes through: language resolver, mixture parser,
feature builder. Bounded (≤ 100 examples each, no deadline) so they run in seconds on a loaded 2-core machine.

Properties:
- resolver: any input either resolves or raises an XltError (never KeyError/TypeError/…); a resolved code resolves
  to itself (fixed point); ASCII case does not matter; non-`str` input is refused.
- mixture parser: format → parse is the identity on canonical mixtures; aliases and spacing parse to the same
  mixture; arbitrary text raises only XltError.
- featurizer: URIEL distances are symmetric and in [0, 1] (or NaN where uncovered); shares and flags in [0, 1];
  the features that are always defined (sizes, k, counts, target's corpus share, model family, task type) are
  never NaN; a mixture's closest-source distance never exceeds its size-weighted mean distance.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from features import registry, typology
from features.errors import XltError
from features.featurize import DISTANCE_KINDS, FEATURE_NAMES, featurize, featurize_components
from features.languages import all_languages, resolve, resolve_code
from features.queries import MAX_EXAMPLES, format_train_config, normalize, parse_train_config

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

LANGS = all_languages()
CODES = [l.code for l in LANGS]
COVERED = [c for c in CODES if typology.has_language(c)]
SPELLINGS = sorted({s for l in LANGS[::7] for s in (l.code, l.name, l.iso1) if s})  # a spread of real spellings
POPULAR = ["en", "de", "fr", "es", "ru", "zh", "ar", "hi", "sw", "ja", "ko", "tr", "fi", "yo", "eu", "ta", "th",
           "zh-Hans", "sw-KE", "swh_Latn", "Swahili", "ger", "fre", "swa", "fil", "tl", "pt-BR", "nb", "ms"]
MODELS = [m.id for m in registry.models()]
TASKS = [t.id for t in registry.tasks() if t.train_size]

# text people plausibly type: real spellings mangled, tags with regions/scripts, junk and unicode
mangled = st.builds(lambda s, op, pad: {0: s, 1: s.upper(), 2: s.lower(), 3: s[:-1], 4: s + s[-1:], 5: s[::-1]}[op]
                    .center(len(s) + pad), st.sampled_from(SPELLINGS + POPULAR), st.integers(0, 5), st.integers(0, 3))
tags = st.builds(lambda a, sep, b: f"{a}{sep}{b}", st.sampled_from(POPULAR + CODES[:300]), st.sampled_from("-_ "),
                 st.sampled_from(["Latn", "Cyrl", "Arab", "Hans", "KE", "US", "419", "x", "Qaaa", "", "posix"]))
language_text = st.one_of(mangled, tags, st.text(max_size=24), st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_()",
                                                                       max_size=12))


# ------------------------------------------------------------------------------------------------ resolver
@FAST
@given(language_text)
def test_resolver_raises_only_xlt_errors_and_is_a_fixed_point(text):
    try:
        lang = resolve(text)
    except XltError as e:
        assert str(e) and isinstance(e.suggestions, list)
        return
    assert lang.code in CODES
    assert resolve(lang.code).code == lang.code                 # canonical codes are fixed points
    assert resolve_code(text) == lang.code == resolve_code(lang.code)
    assert resolve(lang.label().rsplit("(", 1)[-1].rstrip(")")).code == lang.code


@FAST
@given(st.sampled_from(SPELLINGS + POPULAR), st.integers(0, 2))
def test_resolver_ignores_ascii_case_and_outer_spaces(text, variant):
    assume(text.isascii())
    try:
        expected = resolve_code(text)
    except XltError:
        return
    other = [text.upper(), text.lower(), f"  {text.swapcase()}\t"][variant]
    assert resolve_code(other) == expected


@FAST
@given(st.one_of(st.none(), st.integers(), st.floats(allow_nan=True), st.lists(st.text(max_size=3), max_size=2),
                 st.binary(max_size=4), st.booleans()))
def test_resolver_refuses_non_text(value):
    with pytest.raises(XltError):
        resolve_code(value)


def test_pandas_nan_is_not_min_nan():
    with pytest.raises(XltError):
        resolve_code(float("nan"))
    assert _resolves("Min Nan Chinese"), "the table knows Min Nan Chinese"
    assert resolve_code("nan") == resolve_code("Min Nan Chinese") == "nan"  # the *text* 'nan' is Min Nan's code


def _resolves(text) -> bool:
    try:
        resolve_code(text)
        return True
    except XltError:
        return False


# ------------------------------------------------------------------------------------------------ mixtures
mixtures = st.dictionaries(st.sampled_from(CODES), st.integers(0, MAX_EXAMPLES), min_size=1, max_size=6).filter(
    lambda m: any(m.values()))


@FAST
@given(mixtures)
def test_mixture_format_parse_round_trip(mix):
    text = format_train_config(mix)
    parsed = parse_train_config(text)
    assert parsed == {k: v for k, v in mix.items() if v > 0}
    assert format_train_config(parsed) == text


@FAST
@given(st.lists(st.tuples(st.sampled_from(POPULAR), st.integers(1, 10 ** 6)), min_size=1, max_size=5,
                unique_by=lambda t: resolve_code(t[0])),
       st.sampled_from([";", " ; ", ";  "]), st.sampled_from([":", " : ", ":  "]))
def test_mixture_aliases_and_spacing_parse_to_the_canonical_mixture(pairs, sep, colon):
    text = sep.join(f"{lang}{colon}{n}" for lang, n in pairs)
    assert parse_train_config(text) == {resolve_code(lang): n for lang, n in pairs}


mixture_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="en:;dfr 0123456789.-+eE,_xXnaifNI", max_size=30),
    st.lists(st.tuples(st.sampled_from(POPULAR + ["", "qqq", "nan", "1"]),
                       st.one_of(st.integers(-10, 10 ** 10).map(str), st.sampled_from(["", "abc", "1e3", "nan",
                                                                                         "inf", "-0", "1.5", "١٢"]))),
             max_size=4).map(lambda ps: ";".join(f"{a}:{b}" for a, b in ps)),
)


@FAST
@given(mixture_text)
def test_mixture_parser_raises_only_xlt_errors(text):
    try:
        mix = parse_train_config(text)
    except XltError as e:
        assert str(e)
        return
    assert mix and all(isinstance(n, int) and 0 <= n <= MAX_EXAMPLES for n in mix.values()) and any(mix.values())
    assert all(code in CODES for code in mix)


@FAST
@given(st.one_of(st.none(), st.integers(), st.floats(), st.lists(st.integers(), max_size=2)))
def test_mixture_parser_refuses_non_text(value):
    with pytest.raises(XltError):
        parse_train_config(value)


# ------------------------------------------------------------------------------------------------ featurizer
@FAST
@given(st.lists(st.tuples(st.sampled_from(COVERED), st.sampled_from(COVERED)), min_size=1, max_size=30))
def test_pair_distances_symmetric_and_bounded(pairs):
    src = np.array([a for a, _ in pairs])
    tgt = np.array([b for _, b in pairs])
    d, r = typology.pair_distances(src, tgt), typology.pair_distances(tgt, src)
    for kind in DISTANCE_KINDS:
        x, y = np.asarray(d[kind], dtype=np.float64), np.asarray(r[kind], dtype=np.float64)
        assert np.array_equal(np.isnan(x), np.isnan(y)), kind
        ok = ~np.isnan(x)
        assert np.allclose(x[ok], y[ok], atol=1e-5), kind
        assert ((x[ok] >= -1e-5) & (x[ok] <= 1 + 1e-5)).all(), (kind, x[ok].min(), x[ok].max())
        same = src == tgt
        assert np.allclose(x[ok & same], 0, atol=1e-4), kind   # a language is at distance 0 from itself
    for key in ("coverage", "observed"):
        v = np.asarray(d[key], dtype=np.float64)
        assert not np.isnan(v).any() and ((v >= 0) & (v <= 1)).all(), key
        assert np.allclose(v, np.asarray(r[key], dtype=np.float64)), key
    assert all(k == "genetic" for k in DISTANCE_KINDS if np.isnan(np.asarray(d[k], dtype=float)).any()), \
        "only genetic distance may be undefined (the other five are kNN-completed for every URIEL language)"


# mixtures of languages URIEL covers (an uncovered source has NaN distances by design: coverage 0)
covered_mixtures = st.dictionaries(st.sampled_from(COVERED), st.integers(0, MAX_EXAMPLES), min_size=1, max_size=6).filter(
    lambda m: any(m.values())).map(format_train_config)
query = st.fixed_dictionaries({
    "model": st.sampled_from(MODELS), "task": st.sampled_from(TASKS), "target": st.sampled_from(COVERED),
}, optional={"k": st.integers(0, 10 ** 6)}).flatmap(lambda q: st.one_of(
    st.fixed_dictionaries({**{k: st.just(v) for k, v in q.items()}, "source": st.sampled_from(COVERED),
                           "source_size": st.integers(1, MAX_EXAMPLES)}),
    st.fixed_dictionaries({**{k: st.just(v) for k, v in q.items()}, "train_config": covered_mixtures}),
))

# every model feature is defined for every component of every valid query: no feature whose presence says how studied
# a language is (the design rule of issue 8); the record's evidence (ev_*) is the one deliberate exception
ALWAYS_DEFINED = tuple(FEATURE_NAMES)
SHARES = ("same_script", "same_family", "tgt_in_corpus", "in_language") + tuple(
    f for f in FEATURE_NAMES if f.startswith("dist_"))


@FEW
@given(st.lists(query, min_size=1, max_size=25))
def test_featurize_bounds_and_no_nan_leaks(queries):
    df = pd.DataFrame(queries)
    norm, errors = normalize(df)
    ok = (errors == "").to_numpy()
    # queries built from registry ids and covered codes are valid, except a target named twice (mix + k)
    assert ok.sum() >= 1 or all("target" in e or "twice" in e or "k says" in e for e in errors), errors.tolist()
    assume(ok.any())
    good = norm[ok]
    X = featurize(good)
    assert list(X.columns) == FEATURE_NAMES and len(X) == ok.sum()
    assert all(X[c].dtype == np.float32 for c in FEATURE_NAMES)
    Xc, rows, langs = featurize_components(good)
    n_parts = good["train_config"].str.count(";").to_numpy() + 1
    assert np.array_equal(np.bincount(rows, minlength=len(good)), n_parts), "one component per language of the mix"
    for c in ALWAYS_DEFINED:
        assert not Xc[c].isna().any(), (c, good.iloc[rows[Xc[c].isna().to_numpy()]].to_dict("records")[:2])
    for c in SHARES:
        v = Xc[c]
        assert ((v >= -1e-5) & (v <= 1 + 1e-5)).all(), (c, v.min(), v.max())
    own = Xc["in_language"].to_numpy() == 1
    assert (langs[own] == good["target"].to_numpy()[rows[own]]).all()
    assert (Xc.loc[own, [f for f in FEATURE_NAMES if f.startswith("dist_")]].to_numpy() == 0).all()
    assert (Xc["log_source_size"] >= 0).all() and (Xc["log1p_other_sources"] >= 0).all()
    assert np.allclose(X["log1p_k"], np.log1p(good["k"].to_numpy(dtype=float)), rtol=1e-6)


@FEW
@given(st.sampled_from(MODELS), st.sampled_from(TASKS), st.sampled_from(COVERED), st.sampled_from(COVERED))
def test_featurize_distances_symmetric_in_source_and_target(model, task, a, b):
    assume(a != b)
    X = featurize(normalize(pd.DataFrame([{"model": model, "task": task, "source": a, "target": b},
                                          {"model": model, "task": task, "source": b, "target": a}]),
                            strict=True)[0])
    for kind in [f for f in FEATURE_NAMES if f.startswith("dist_")]:
        x, y = X[kind].to_numpy()
        assert (math.isnan(x) and math.isnan(y)) or abs(x - y) < 1e-5, (kind, x, y)
