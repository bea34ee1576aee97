"""features.featurize: the pair features a SHAP reader sees, on languages whose answer is known."""
from __future__ import annotations

import numpy as np
import pandas as pd

from features.featurize import FEATURE_NAMES, featurize_components
from features.queries import normalize


def _same_script(source: str, target: str) -> float:
    norm, errors = normalize(pd.DataFrame([{"model": "xlm-r-base", "task": "udpos", "source": source,
                                            "target": target}]))
    assert (errors == "").all()
    X, rows, langs = featurize_components(norm)
    return float(np.asarray(X)[0, FEATURE_NAMES.index("same_script")])


def test_simplified_and_traditional_han_are_one_script():
    # Mandarin (Hans) and Cantonese (Hant) write the same Han characters in two variants; Japanese mixes kana in
    assert _same_script("zh", "yue") == 1.0 == _same_script("yue", "lzh")
    assert _same_script("ja", "zh") == 0.0
    assert _same_script("sr", "hr") == 0.0 and _same_script("ru", "sr") == 1.0   # Serbian's usual script: Cyrillic


def test_one_context_features_equal_the_per_query_path():
    """A ranking's components (one model, task type, target and k; the target's own examples as extra components)
    get the same feature matrix from `featurize_one_context` as from the per-query path, for a model with a corpus,
    an unsized family name, a target outside every corpus and an unknown task type."""
    from features.featurize import _featurize_matrix, featurize_one_context

    langs = ["eng", "deu", "zul", "xho", "nav", "hin", "urd", "cmn", "qxx"]
    for model, ttype, target, k in [("xlm-r-large", "classification", "swh", 0), ("mt5-base", "qa", "tel", 7),
                                    ("xlm-r", "ner", "nav", 300), ("mbert", "no-such-type", "yor", 0)]:
        sources = np.array([c for c in langs if c != target], dtype=object)
        n = len(sources)
        rows, src, counts, own = np.arange(n), sources, np.linspace(100, 5000, n), np.zeros(n, dtype=bool)
        if k:
            rows = np.concatenate([rows, rows])
            src = np.concatenate([sources, np.full(n, target, dtype=object)])
            counts = np.concatenate([counts, np.full(n, float(k))])
            own = np.concatenate([own, np.ones(n, dtype=bool)])
        per_query = _featurize_matrix(np.full(n, model, dtype=object), np.full(n, ttype, dtype=object),
                                      np.full(n, target, dtype=object), np.full(n, float(k)), rows, src, counts, own)
        one = featurize_one_context(model, ttype, target, float(k), rows, src, counts, own)
        assert one.shape == (len(rows), len(FEATURE_NAMES))
        np.testing.assert_array_equal(one, per_query)
