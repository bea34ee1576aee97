"""Pictures for the web page and the API: SHAP waterfall, few-shot curve, SHAP beeswarm over the training data.

Why matplotlib's object API (Figure + Agg canvas) and not pyplot: pyplot keeps global state that is not safe across
the server's worker threads. Only the beeswarm goes through shap's own plotting (which needs pyplot), under a lock,
and it is rendered once per model and cached.
"""
from __future__ import annotations

import io
import threading

import numpy as np

_PYPLOT_LOCK = threading.Lock()
_IMPORTANCE_CACHE: dict[tuple[int, str], bytes] = {}
MEDIA_TYPES = {"png": "image/png", "svg": "image/svg+xml"}


def _figure(width: float, height: float):
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, fmt: str, tight: bool = False) -> bytes:
    """Render once: fixed margins instead of bbox_inches='tight' (which draws twice), fast PNG compression."""
    buf = io.BytesIO()
    if fmt == "png":
        fig.savefig(buf, format="png", bbox_inches="tight" if tight else None, pil_kwargs={"compress_level": 1})
    else:
        fig.savefig(buf, format=fmt, bbox_inches="tight" if tight else None)
    return buf.getvalue()


def waterfall(explanation: dict, fmt: str = "png", max_features: int = 10) -> bytes:
    """SHAP waterfall: from the base value, each feature's push up or down, to the prediction.

    `explanation` is the /explain answer shape (base_value, prediction, contributions=[{label, value, shap}]).
    Features beyond `max_features` are summed into one bar so the picture stays readable.
    """
    contribs = explanation["contributions"]
    base = float(explanation["base_value"])
    shown = contribs[:max_features]
    rest = sum(c["shap"] for c in contribs[max_features:])
    labels = [(f"{c['label']} = {c['value']:.3g}" if c.get("value") is not None else c["label"]) for c in shown]
    values = [c["shap"] for c in shown]
    if len(contribs) > max_features:
        labels.append(f"{len(contribs) - max_features} other features")
        values.append(rest)
    labels, values = labels[::-1], values[::-1]  # biggest at the top
    starts = base + np.concatenate([[0.0], np.cumsum(values)[:-1]])  # bottom bar starts at the base value
    height = 0.4 * len(values) + 1.2
    fig = _figure(9, height)
    fig.subplots_adjust(left=0.4, right=0.95, top=1 - 0.45 / height, bottom=0.7 / height)
    ax = fig.add_subplot(111)
    y = np.arange(len(values))
    colors = ["#d62728" if v > 0 else "#1f77b4" for v in values]
    ax.barh(y, values, left=starts, color=colors, height=0.6)
    for yi, s, v in zip(y, starts, values):
        ax.text(s + v + (0.2 if v >= 0 else -0.2), yi, f"{v:+.2f}", va="center", ha="left" if v >= 0 else "right",
                fontsize=8)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.margins(x=0.1)
    ax.axvline(base, color="grey", lw=0.8, ls="--")
    pred = float(explanation["prediction"])
    ax.axvline(pred, color="black", lw=0.8)
    ax.set_xlabel(f"predicted score (base {base:.1f} → prediction {pred:.1f})")
    q = explanation.get("query") or {}
    ax.set_title(f"Why {q.get('train_config', '')} → {q.get('target', '')} on {q.get('task', '')} "
                 f"({q.get('model', '')})", fontsize=9)
    return _save(fig, fmt)


def curve(answer: dict, fmt: str = "png") -> bytes:
    """Few-shot curve: predicted score against k (log scale), 80% band and the a + b·ln(1+k) fit."""
    pts = answer["points"]
    ks = np.array([p["k"] for p in pts], dtype=float)
    ys = np.array([p["score"] for p in pts], dtype=float)
    fig = _figure(6.5, 3.6)
    fig.subplots_adjust(left=0.11, right=0.97, top=0.9, bottom=0.15)
    ax = fig.add_subplot(111)
    x = ks + 1
    if all(p.get("lower80") is not None for p in pts):
        ax.fill_between(x, [p["lower80"] for p in pts], [p["upper80"] for p in pts], alpha=0.2, label="80% interval")
    ax.plot(x, ys, "o-", label="predicted score")
    grid = np.geomspace(1, x.max(), 100)
    ax.plot(grid, answer["a"] + answer["b"] * np.log(grid), "--", lw=1,
            label=f"{answer['a']:.1f} + {answer['b']:.2f}·ln(1+k), R²={answer['r2']:.2f}")
    if answer.get("target_score") is not None:
        ax.axhline(answer["target_score"], color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("1 + k (target-language examples)")
    ax.set_ylabel("predicted score")
    q = answer.get("query") or {}
    ax.set_title(f"{q.get('model', '')} · {q.get('task', '')} · target {q.get('target', '')}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, fmt)


def importance(predictor, fmt: str = "png", max_display: int = 15) -> bytes:
    """SHAP beeswarm over the model's background sample of training rows; rendered once per model and cached."""
    key = (id(predictor), fmt)
    cached = _IMPORTANCE_CACHE.get(key)
    if cached is not None:
        return cached
    with _PYPLOT_LOCK:
        cached = _IMPORTANCE_CACHE.get(key)
        if cached is not None:
            return cached
        import matplotlib
        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        import shap

        from predictor.explain import FEATURE_LABELS

        X, contrib = _background_shap(predictor)
        expl = shap.Explanation(values=contrib[:, :-1], base_values=contrib[:, -1], data=X,
                                feature_names=[FEATURE_LABELS.get(f, f) for f in predictor.feature_names])
        plt.close("all")
        shap.plots.beeswarm(expl, max_display=max_display, show=False)
        fig = plt.gcf()
        fig.set_size_inches(9, 0.4 * max_display + 1.5)
        fig.suptitle("SHAP values over training rows (each dot one observation)", fontsize=10)
        data = _save(fig, fmt, tight=True)
        plt.close("all")
        _IMPORTANCE_CACHE[key] = data
        return data


def _background_shap(predictor) -> tuple[np.ndarray, np.ndarray]:
    """Feature matrix of the model's background sample and its SHAP values (last column = base value)."""
    return predictor.background_shap()
