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
