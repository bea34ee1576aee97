"""The few-shot curve: predicted score against k target examples, summarised as score(k) = a + b·ln(1+k)."""
from __future__ import annotations

import numpy as np

DEFAULT_KS = (0, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
MAX_K = 1_000_000  # beyond a million labelled target examples the question is no longer few-shot


def fit_log_curve(ks, scores) -> tuple[float, float, float]:
    """Least-squares a, b and R² of score ≈ a + b·ln(1+k)."""
    x = np.log1p(np.asarray(ks, dtype=np.float64))
    y = np.asarray(scores, dtype=np.float64)
    if len(x) < 2 or np.ptp(x) == 0:
        return float(y.mean()), 0.0, 0.0
    b, a = np.polyfit(x, y, 1)
    ss_res = float(((y - (a + b * x)) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return float(a), float(b), r2
