"""Pictures for the web page and the API: SHAP waterfall, few-shot curve, SHAP beeswarm over the training data.

Why matplotlib's object API (Figure + Agg canvas) and not pyplot: pyplot keeps global state that is not safe across
the server's worker threads. Only the beeswarm goes through shap's own plotting (which needs pyplot), under a lock,
and it is rendered once per model and cached.
"""
from __future__ import annotations

import gc
import io
import threading

import numpy as np

_PYPLOT_LOCK = threading.Lock()
_IMPORTANCE_CACHE: dict[tuple[int, str], bytes] = {}
MEDIA_TYPES = {"png": "image/png", "svg": "image/svg+xml"}
LABEL_WIDTH = 48  # characters per line of a waterfall label before it wraps (two lines at most)
_UP, _DOWN, _OTHER = "#d6404e", "#2f7ac2", "#9a9a9a"


def _matplotlib():
    """matplotlib on the Agg backend with mathtext off: task names, languages and mixtures are user text, and a `$`
    in them must print as a dollar sign, never reach the mathtext parser (`task=$\\frac{$` was a 500)."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    matplotlib.rcParams["text.parse_math"] = False
    return matplotlib


def _figure(width: float, height: float, dpi: int = 100):
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, fmt: str, tight: bool = False) -> bytes:
    """One render; `tight` crops to the drawn extent plus a small pad (nothing cut at the edges), fast PNG compression."""
    buf = io.BytesIO()
    extra = {"bbox_inches": "tight", "pad_inches": 0.15} if tight else {}
    if not tight:
        # `tight_layout` leaves a placeholder layout engine behind, and savefig then lays out and draws every text
        # once more (with drawing disabled) before the real draw: same pixels, 10-20% more CPU per picture
        fig.set_layout_engine(None)
    if fmt == "png":
        fig.savefig(buf, format="png", pil_kwargs={"compress_level": 1}, **extra)
    else:
        fig.savefig(buf, format=fmt, **extra)
    return buf.getvalue()


def _drawn(build, fmt: str) -> bytes:
    """The bytes of the figure `build()` lays out, its memory returned at once. A Figure is a web of reference cycles
    (figure ↔ canvas ↔ axes ↔ artists, with a width × height × 4 byte raster), freed only by the cyclic garbage
    collector, whose oldest generation is rarely collected in a server (start-up's objects are frozen out of it): a
    worker drawing waterfalls carried ~30 MB of dead figures. A collection of the two young generations after each picture frees it
    (+1.5 MB over 60 waterfalls, was +30 MB) without walking the old heap. A full collection per picture freed it too,
    but under a 75 s, 50-client load it held the GIL long enough to slow pictures (p50 5.3 → 7.4 s) and 43 picture
    requests ran out of retries; the young-generation pass served as many requests as no collection at all."""
    data = _save(build(), fmt)   # the figure is unreachable once _save returns
    gc.collect(1)   # the young generations only: the figure is young, and a full pass would walk every cache
    return data


def _plain_log_ticks(axis) -> None:
    """Decades as plain numbers (1, 10, 1,000): the default log labels are mathtext, which is switched off."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def wrap(text: str, width: int = LABEL_WIDTH, lines: int = 2) -> str:
    """Wrap to `width` characters per line, at most `lines` lines, the last one cut with an ellipsis."""
    import textwrap

    parts = textwrap.wrap(str(text), width=width, break_long_words=True, break_on_hyphens=False) or [""]
    if len(parts) > lines:
        parts = parts[:lines]
        parts[-1] = parts[-1][: width - 1].rstrip() + "…"
    return "\n".join(parts)


def _bind(text: str) -> str:
    """Keep ' = ' with the first word of the value (no-break spaces), so a wrapped label never starts with '= '."""
    head, sep, value = text.partition(" = ")
    if not sep:
        return text
    first, _, rest = value.partition(" ")
    return head + "\u00a0=\u00a0" + first + (" " + rest if rest else "")


def query_title(q: dict, width: int = 90) -> str:
    """'mT5-base · xquad · eng:87599 → swh (k = 0)' from a query echo; user text, so never parsed as math."""
    from api.labels import model_name

    mix = q.get("train_config") or q.get("source") or ""
    target = q.get("target") or ""
    parts = [model_name(q.get("model")), str(q.get("task") or "")]
    parts.append(f"{mix} → {target}" if mix and target else (f"target {target}" if target else mix))
    k = q.get("k")
    title = " · ".join(p for p in parts if p) + (f" (k = {k})" if k else "")
    return wrap(title, width, 2)


def warm_up(predictor) -> int:
    """Render one waterfall and one curve and discard them: the first picture a worker draws pays matplotlib's import,
    its font and text-layout tables and the drawing thread's first allocations (~0.5 s and tens of MB, measured in
    reports/performance.md); paid here, on the plot pool's thread right after start-up, a user's first picture is as
    fast as the rest and a long-running worker's memory no longer steps up at its first plot. Returns the bytes
    drawn. Pictures are pure functions of (model, query), so nothing a user sees changes."""
    from api.answers import explain_answer
    from predictor.facade import WARM_MODEL

    q = {"model": WARM_MODEL, "task": "xnli", "target": "sw", "source": "en"}
    return len(waterfall(explain_answer(predictor, q))) + len(curve(predictor.curve(q)))


def waterfall(explanation: dict, fmt: str = "png", max_features: int = 10) -> bytes:
    """SHAP waterfall: from the base value, each feature's push up or down, to the prediction.

    `explanation` is the /explain answer shape (base_value, prediction, query, contributions=[{feature, label, value,
    shap}]). Values are shown in natural units (api.labels); the `max_features` largest pushes get a bar each and the
    rest are summed into one "other features" bar, so the picture stays readable whatever features the model has.
    """
    return _drawn(lambda: waterfall_figure(explanation, max_features), fmt)


def waterfall_rows(explanation: dict, max_features: int = 10) -> tuple[list[str], list[float], bool]:
    """(labels, SHAP values, last row is the 'other features' sum): the biggest pushes first, display text decoded.

    Works from whatever contributions the explanation holds (feature names come from the model, not from a list here).
    """
    from api.labels import describe

    q = explanation.get("query") or {}
    contribs = [c for c in explanation["contributions"] if np.isfinite(float(c["shap"]))]
    contribs.sort(key=lambda c: -abs(float(c["shap"])))
    keep = len(contribs) if len(contribs) <= max_features + 1 else max_features  # never "1 other features"
    shown, rest = contribs[:keep], contribs[keep:]
    labels = [wrap(_bind(describe(c.get("feature") or c.get("label", ""), c.get("value"), q, c.get("label"))))
              for c in shown]
    values = [float(c["shap"]) for c in shown]
    if rest:
        labels.append(f"{len(rest)} other features")
        values.append(sum(float(c["shap"]) for c in rest))
    return labels, values, bool(rest)


def waterfall_figure(explanation: dict, max_features: int = 10):
    """The waterfall as a laid-out matplotlib Figure (tests check that no text is cut or overlaps)."""
    q = explanation.get("query") or {}
    base = float(explanation["base_value"])
    pred = float(explanation["prediction"])
    labels, values, rest = waterfall_rows(explanation, max_features)
    if not values:  # nothing to explain: a single zero bar keeps the picture well-formed
        labels, values = ["no feature moved this prediction"], [0.0]
    n = len(values)
    # top to bottom in reading order: base value at the top, the biggest push first, the prediction at the bottom
    starts = base + np.concatenate([[0.0], np.cumsum(values)[:-1]])
    ends = starts + np.asarray(values)
    y = np.arange(n)[::-1] + 1  # row n (top) … row 1; the prediction label sits below at 0

    fig = _figure(8.5, 0.4 * n + 1.7, dpi=100)
    ax = fig.add_subplot(111)
    colors = [_UP if v > 0 else _DOWN for v in values]
    if rest:
        colors[-1] = _OTHER
    ax.barh(y, values, left=starts, color=colors, height=0.62, zorder=2)
    for i in range(n - 1):  # thin connectors from each bar's end to the next bar's start
        ax.plot([ends[i], ends[i]], [y[i] - 0.31, y[i + 1] + 0.31], color="#999", lw=0.6, zorder=1)
    lo = min(base, pred, starts.min(), ends.min())
    hi = max(base, pred, starts.max(), ends.max())
    span = max(hi - lo, 1e-6)
    pad = 0.03 * span
    for yi, s, e, v in zip(y, starts, ends, values):
        right = v >= 0
        ax.text(e + (pad if right else -pad), yi, f"{v:+.2f}", va="center", ha="left" if right else "right",
                fontsize=9, color="#333", parse_math=False, zorder=4,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5, "alpha": 0.85})
    # room for the value labels on both sides, so nothing is cut at the edge
    ax.set_xlim(lo - 0.16 * span, hi + 0.16 * span)
    ax.set_ylim(-0.05, n + 1.0)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=9.5, parse_math=False)
    ax.axvline(base, color="#777", lw=0.8, ls="--", zorder=0)
    ax.axvline(pred, color="black", lw=1.0, zorder=0)
    ax.text(base, n + 0.55, f"base value {base:.1f}", ha="center", va="bottom", fontsize=9, color="#555",
            parse_math=False, zorder=4, bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
    ax.text(pred, 0.0, f"prediction {pred:.1f}", ha="center", va="bottom", fontsize=9.5, fontweight="bold",
            parse_math=False, zorder=4, bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
    ax.grid(axis="x", color="#eee", zorder=0)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel("predicted score: each bar is one feature's SHAP push (red up, blue down)", fontsize=9.5,
                  parse_math=False)
    title = query_title(q, 80)
    fig.suptitle("Why this prediction" + (":  " + title if title else ""), x=0.01, ha="left", fontsize=10.5, parse_math=False)
    fig.tight_layout(pad=0.6)  # one layout pass sized to the wrapped labels: nothing cut at the edges
    return fig


def curve(answer: dict, fmt: str = "png") -> bytes:
    """Few-shot curve: predicted score against k (log scale), 80% band and the a + b·ln(1+k) fit."""
    return _drawn(lambda: curve_figure(answer), fmt)


def curve_figure(answer: dict):
    """The few-shot curve as a laid-out matplotlib Figure."""
    pts = answer["points"]
    ks = np.array([p["k"] for p in pts], dtype=float)
    ys = np.array([p["score"] for p in pts], dtype=float)
    fig = _figure(7, 3.3, dpi=100)
    ax = fig.add_subplot(111)
    x = ks + 1
    if all(p.get("lower80") is not None for p in pts):
        ax.fill_between(x, [p["lower80"] for p in pts], [p["upper80"] for p in pts], alpha=0.2, label="80% interval")
    ax.plot(x, ys, "o-", ms=4, label="predicted score")
    grid = np.geomspace(1, max(float(x.max()), 2.0), 100)
    ax.plot(grid, answer["a"] + answer["b"] * np.log(grid), "--", lw=1,
            label=f"fit {answer['a']:.1f} + {answer['b']:.2f}·ln(1+k), R² = {answer['r2']:.2f}")
    if answer.get("target_score") is not None:
        ax.axhline(answer["target_score"], color="grey", lw=0.8, ls=":", label=f"goal {answer['target_score']:.1f}")
    ax.set_xscale("log")
    _plain_log_ticks(ax.xaxis)
    ax.set_xlabel("1 + k (target-language examples added)", parse_math=False)
    ax.set_ylabel("predicted score", parse_math=False)
    ax.grid(color="#eee")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.suptitle(query_title(answer.get("query") or {}, 80), x=0.01, ha="left", fontsize=9, parse_math=False)
    leg = ax.legend(fontsize=7.5, loc="lower right")
    for t in leg.get_texts():
        t.set_parse_math(False)
    fig.tight_layout(pad=0.6)
    return fig


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
        _matplotlib()
        import matplotlib.pyplot as plt
        import shap

        from api.labels import feature_label

        X, contrib = _background_shap(predictor)
        expl = shap.Explanation(values=contrib[:, :-1], base_values=contrib[:, -1], data=X,
                                feature_names=[feature_label(f) for f in predictor.feature_names])
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
