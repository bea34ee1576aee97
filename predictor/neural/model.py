"""Neural multi-task transfer regressor (torch): a shared MLP over the features plus URIEL-anchored language embeddings.

Why a second model next to LightGBM: trees see a language only through its distances to the others; a network with a
learned vector per language can pick up what a language is *like* as a source or target beyond the six distances,
while the URIEL anchor keeps that vector meaningful for languages it never saw.

The input of one row is
  * the standardized per-query features of `predictor.model.featurize_observations` (the mix's representative
    component: FEATURE_NAMES of issue 8, every one defined for every language; NaN → 0 plus a missingness indicator
    for any column that still has NaN),
  * E[target] and the size-weighted mean of E[s] over the mixture's source languages (the target's own k examples
    are not a source, as in featurize), with their element-wise product and absolute difference,
  * embeddings of task type and model family, and shrunken embeddings of the task id and model id.
Language embeddings are E[l] = A[l] + D[l]: A[l] is a fixed projection of the language's URIEL vectors (per-set PCA
of the syntactic, phonological, inventory, geographic and genetic vectors of all 7,970 URIEL languages, each
component scaled to unit variance) and D[l] a learned deviation with an L2 penalty, so E[l] is initialised at and
kept close to A[l]. A language never seen in training has D = 0 and falls back to its URIEL projection; a code URIEL
does not know gets the zero vector (the mean language). Task-id and model-id embeddings shrink toward zero the same
way, so an unseen task is predicted from its type alone.

One shared head serves every task: per-task-type heads would give `qa` (≈1.7k rows) and `classification` (≈1.8k)
their own output layer fitted on a few targets, and would leave an unseen task type without a head. The task-type
embedding lets the shared trunk shift and bend its output per type instead.

torch is imported lazily inside functions so the service never needs it unless this model is used. Saving writes
numpy `.npz` (allow_pickle=False) plus a JSON config with the npz's sha256 — no pickle, no `torch.load`.
"""
from __future__ import annotations
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from features.errors import ModelNotReady, XltError
from features.featurize import CATEGORICAL_FEATURES, FEATURE_NAMES, MODEL_FAMILIES, MONOTONE_INCREASING, components
from features.languages import resolve_code
from predictor.model import dataset_weights, featurize_observations, normalize_observations
from predictor.neural.anchors import uriel_anchors

NUMERIC_FEATURES = [f for f in FEATURE_NAMES if f not in CATEGORICAL_FEATURES]
WEIGHTS_FILE = "neural.npz"
CONFIG_FILE = "neural.json"
FORMAT = "xlt-neural-2"   # 2: the feature set of issue 8 (in_language, log1p_other_sources; no coverage/overlap)


def _canonical(code) -> str:
    if not isinstance(code, str):
        return ""
    try:
        return resolve_code(code)
    except XltError:
        return code   # unknown to the resolver: kept as-is, gets the zero anchor and no learned deviation


def parse_mixes(norm: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(target codes, source codes (n × M, '' padded), source weights (n × M, rows sum to 1 or 0)) of canonical query
    rows (`predictor.model.normalize_observations`), read with the one mixture parser (`features.featurize.components`).

    The target's own examples (k) are not a source; weights are the source example counts' shares."""
    n = len(norm)
    targets = norm["target"].to_numpy(dtype=object)
    row, langs, cnt, own = components(norm)
    keep = ~own & (cnt > 0)
    row, langs, cnt = row[keep], langs[keep], cnt[keep]
    tot = np.bincount(row, weights=cnt, minlength=n)
    # position of each pair inside its row (components come out in row order)
    start = np.r_[0, np.flatnonzero(np.diff(row)) + 1] if len(row) else np.zeros(0, dtype=np.int64)
    pos = np.arange(len(row)) - np.repeat(start, np.diff(np.r_[start, len(row)]))
    width = max(1, int(pos.max()) + 1 if len(pos) else 1)
    src = np.full((n, width), "", dtype=object)
    w = np.zeros((n, width), dtype=np.float32)
    src[row, pos] = langs
    w[row, pos] = cnt / tot[row]
    return targets, src, w


# ---------------------------------------------------------------------------------------------------------------
# the network

def _build_net(n_num: int, lang_dim: int, n_task_types: int, n_families: int, n_tasks: int, n_models: int,
               params: dict):
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lang_delta = nn.Embedding(params["n_lang_vocab"], lang_dim, padding_idx=0)
            nn.init.zeros_(self.lang_delta.weight)
            self.task_type = nn.Embedding(n_task_types + 1, params["type_dim"])
            self.family = nn.Embedding(n_families + 1, params["type_dim"])
            self.task = nn.Embedding(n_tasks + 1, params["id_dim"], padding_idx=0)
            self.model = nn.Embedding(n_models + 1, params["id_dim"], padding_idx=0)
            for e in (self.task, self.model):
                nn.init.normal_(e.weight, std=0.01)
                with torch.no_grad():
                    e.weight[0].zero_()
            width = n_num + 4 * lang_dim + 2 * params["type_dim"] + 2 * params["id_dim"]
            layers = []
            for h in params["hidden"]:
                layers += [nn.Linear(width, h), nn.GELU(), nn.Dropout(params["dropout"])]
                width = h
            layers.append(nn.Linear(width, 1))
            self.mlp = nn.Sequential(*layers)

        def forward(self, x, table, tgt, src, w, tt, fam, task, model, cold=None, anchors=None):
            """`cold` (training only): rows whose languages use the bare URIEL anchors, as an unseen language would."""
            e_t = table[tgt]
            # size-weighted mean of the sources as a (batch × languages) weight matrix times the table: a matmul's
            # backward is far cheaper than scatter-adding the gradient of a (batch × width × dim) gather
            mix = torch.zeros(len(tgt), table.shape[0], dtype=table.dtype).scatter_add_(1, src, w)
            e_s = mix @ table
            if cold is not None:
                c = cold.unsqueeze(1)
                e_t = torch.where(c, anchors[tgt], e_t)
                e_s = torch.where(c, mix @ anchors, e_s)
            z = torch.cat([x, e_t, e_s, e_t * e_s, (e_t - e_s).abs(), self.task_type(tt), self.family(fam),
                           self.task(task), self.model(model)], dim=1)
            return self.mlp(z).squeeze(-1)

    return Net()


class NeuralTransferRegressor(BaseEstimator, RegressorMixin):
    """Multi-task MLP with URIEL-anchored language embeddings; same interface as `TransferRegressor`.

    Not monotone in k or source size by construction (the shipped LightGBM carries that guarantee). `mono_penalty`
    (default 1.0) trains each batch twice over — as given and with more source data / more k — and penalises any
    predicted drop: source-size curves went from 29% to 87% monotone (worst drop 11.4 → 3.8 points) at similar
    accuracy (reports/neural.md). `lang_dropout` / `id_dropout` (cold-start training of the unseen-language and
    unseen-task paths) are off: they did not help under the protocols."""

    def __init__(self, hidden: tuple[int, ...] = (256, 128), type_dim: int = 4, id_dim: int = 6,
                 dropout: float = 0.1, epochs: int = 12, batch_size: int = 512, learning_rate: float = 3e-3,
                 weight_decay: float = 1e-4, lang_penalty: float = 1e-2, id_penalty: float = 1e-2,
                 lang_dropout: float = 0.0, id_dropout: float = 0.0, clip_features: bool = True,
                 mono_penalty: float = 1.0, weight_power: float = 0.5, random_state: int = 0, n_threads: int = 1):
        self.hidden = hidden
        self.type_dim = type_dim
        self.id_dim = id_dim
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.lang_penalty = lang_penalty
        self.id_penalty = id_penalty
        self.lang_dropout = lang_dropout
        self.id_dropout = id_dropout
        self.clip_features = clip_features
        self.mono_penalty = mono_penalty
        self.weight_power = weight_power
        self.random_state = random_state
        self.n_threads = n_threads

    # ---- input preparation ---------------------------------------------------------------------------------
    def _numeric(self, X: pd.DataFrame) -> np.ndarray:
        raw = X[NUMERIC_FEATURES].to_numpy(dtype=np.float64)
        miss = np.isnan(raw[:, self.missing_cols_])
        if self.clip_features:   # extrapolate flat, as trees do: a 40-language mix looks like the widest one seen
            raw = np.clip(raw, self.num_lo_, self.num_hi_)
        z = (raw - self.num_mean_) / self.num_scale_
        z = np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)
        return np.concatenate([z, miss.astype(np.float64)], axis=1).astype(np.float32)

    def _codes(self, X: pd.DataFrame, col: str, n: int) -> np.ndarray:
        v = X[col].to_numpy(dtype=np.float64)
        ok = ~np.isnan(v) & (v >= 0) & (v < n)
        return np.where(ok, v + 1, 0).astype(np.int64)   # 0 = unknown

    def _ids(self, values, vocab: list[str]) -> np.ndarray:
        pos = {v: i + 1 for i, v in enumerate(vocab)}
        return np.array([pos.get(str(v), 0) for v in values], dtype=np.int64)

    def _lang_table(self, codes: np.ndarray):
        """Local embedding table for the given distinct codes: anchor + learned deviation (0 when unseen)."""
        import torch

        a_pos = {c: i for i, c in enumerate(self.anchor_codes_)}
        v_pos = {c: i + 1 for i, c in enumerate(self.lang_vocab_)}
        anchors = np.zeros((len(codes), self.anchors_.shape[1]), dtype=np.float32)
        vidx = np.zeros(len(codes), dtype=np.int64)
        for i, c in enumerate(codes):
            if c in a_pos:
                anchors[i] = self.anchors_[a_pos[c]]
            vidx[i] = v_pos.get(c, 0)
        return torch.from_numpy(anchors), torch.from_numpy(vidx)

    def _inputs(self, obs: pd.DataFrame, X: pd.DataFrame, norm: pd.DataFrame):
        import torch

        tgt, src, w = parse_mixes(norm)
        langs, inv = np.unique(np.concatenate([tgt, src.ravel()]).astype(str), return_inverse=True)
        # '' (padding) must map to an all-zero row: give it its own row with zero weight (w = 0 there anyway)
        tgt_i = inv[: len(tgt)]
        src_i = inv[len(tgt):].reshape(src.shape)
        anchors, vidx = self._lang_table(langs)
        return {
            "x": torch.from_numpy(self._numeric(X)),
            "tgt": torch.from_numpy(tgt_i.astype(np.int64)),
            "src": torch.from_numpy(src_i.astype(np.int64)),
            "w": torch.from_numpy(w),
            "tt": torch.from_numpy(self._codes(X, "task_type", self.n_task_types_)),
            "fam": torch.from_numpy(self._codes(X, "model_family", len(MODEL_FAMILIES))),
            "task": torch.from_numpy(self._ids(obs["task"].to_numpy(), self.task_vocab_)),
            "model": torch.from_numpy(self._ids(obs["model"].to_numpy(), self.model_vocab_)),
        }, anchors, vidx, langs

    # ---- fit / predict -------------------------------------------------------------------------------------
    def fit(self, obs: pd.DataFrame, y=None, X: pd.DataFrame | None = None):
        """Fit on observation rows (`score` column unless y given); pass precomputed X to skip featurizing."""
        import torch

        from features import registry, typology

        norm = normalize_observations(obs)
        X = featurize_observations(obs) if X is None else X
        y = obs["score"].to_numpy(dtype=np.float64) if y is None else np.asarray(y, dtype=np.float64)
        if len(obs) == 0:
            raise ValueError("no training rows")
        sw = dataset_weights(obs, self.weight_power) if "dataset" in obs.columns else np.ones(len(obs))

        raw = X[NUMERIC_FEATURES].to_numpy(dtype=np.float64)
        self.feature_names_ = list(FEATURE_NAMES)
        with warnings.catch_warnings():   # a column all-NaN in this slice: mean 0, scale 1, indicator carries it
            warnings.simplefilter("ignore", RuntimeWarning)
            self.num_mean_ = np.nan_to_num(np.nanmean(raw, axis=0), nan=0.0)
            sd = np.nan_to_num(np.nanstd(raw, axis=0), nan=0.0)
            self.num_lo_ = np.nan_to_num(np.nanmin(raw, axis=0), nan=0.0)
            self.num_hi_ = np.nan_to_num(np.nanmax(raw, axis=0), nan=0.0)
        self.num_scale_ = np.where(sd > 1e-8, sd, 1.0)
        self.missing_cols_ = np.flatnonzero(np.isnan(raw).any(axis=0))
        self.n_task_types_ = len(registry.TASK_TYPES)
        self.task_vocab_ = sorted(obs["task"].astype(str).unique())
        self.model_vocab_ = sorted(obs["model"].astype(str).unique())
        self.anchor_codes_, self.anchors_ = uriel_anchors()
        self.typology_version_ = typology.TYPOLOGY_VERSION
        tgt, src, _ = parse_mixes(norm)
        seen = set(tgt) | set(src.ravel())
        seen.discard("")
        self.lang_vocab_ = sorted(seen)
        self.y_mean_ = float(np.average(y, weights=sw))
        self.y_scale_ = float(np.sqrt(np.average((y - self.y_mean_) ** 2, weights=sw))) or 1.0

        prev_threads = torch.get_num_threads()
        torch.set_num_threads(self.n_threads)
        try:
            torch.manual_seed(self.random_state)
            inp, anchors, vidx, _ = self._inputs(obs, X, norm)
            net = _build_net(inp["x"].shape[1], anchors.shape[1], self.n_task_types_, len(MODEL_FAMILIES),
                             len(self.task_vocab_), len(self.model_vocab_), self._net_params())
            yt = torch.from_numpy(((y - self.y_mean_) / self.y_scale_).astype(np.float32))
            wt = torch.from_numpy((sw / sw.mean()).astype(np.float32))
            self.history_ = self._train(net, inp, anchors, vidx, yt, wt)
        finally:
            torch.set_num_threads(prev_threads)
        self.net_ = net.eval()
        return self

    def _net_params(self) -> dict:
        return {"hidden": list(self.hidden), "type_dim": self.type_dim, "id_dim": self.id_dim,
                "dropout": self.dropout, "n_lang_vocab": len(self.lang_vocab_) + 1}

    def _train(self, net, inp, anchors, vidx, y, w) -> list[float]:
        import torch

        n = len(y)
        gen = torch.Generator().manual_seed(self.random_state)
        opt = torch.optim.AdamW(net.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        steps_per_epoch = (n + self.batch_size - 1) // self.batch_size
        # a one-cycle schedule needs a few steps per phase (a tiny fold of a cheap run has only a handful)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.learning_rate,
                                                    total_steps=max(10, self.epochs * steps_per_epoch), pct_start=0.2)
        n_seen = max(1, len(self.lang_vocab_))
        mono = torch.tensor([NUMERIC_FEATURES.index(f) for f in MONOTONE_INCREASING])
        mono_hi = torch.from_numpy(((self.num_hi_ - self.num_mean_) / self.num_scale_)[mono.numpy()].astype(np.float32))
        history = []
        net.train()
        for _ in range(self.epochs):
            perm = torch.randperm(n, generator=gen)
            total = 0.0
            for b in range(steps_per_epoch):
                idx = perm[b * self.batch_size:(b + 1) * self.batch_size]
                table = anchors + net.lang_delta(vidx)
                cold = (torch.rand(len(idx), generator=gen) < self.lang_dropout) if self.lang_dropout > 0 else None
                task, model = inp["task"][idx], inp["model"][idx]
                if self.id_dropout > 0:   # teach the unseen-task / unseen-model path (id 0 = unknown)
                    task = torch.where(torch.rand(len(idx), generator=gen) < self.id_dropout, 0, task)
                    model = torch.where(torch.rand(len(idx), generator=gen) < self.id_dropout, 0, model)
                xb = inp["x"][idx]
                args = [table, inp["tgt"][idx], inp["src"][idx], inp["w"][idx], inp["tt"][idx], inp["fam"][idx],
                        task, model]
                if self.mono_penalty > 0:
                    # the same rows again with more source data / more k: penalise any predicted drop (one forward
                    # over the stacked batch; `cold` rows stay cold in both copies)
                    bigger = xb.clone()
                    step = torch.rand(len(idx), len(mono), generator=gen) * 2.0
                    bigger[:, mono] = torch.minimum(xb[:, mono] + step, mono_hi)
                    both = net(torch.cat([xb, bigger]), table, *[torch.cat([a, a]) for a in args[1:]],
                               None if cold is None else torch.cat([cold, cold]), anchors)
                    pred, pred_up = both[: len(idx)], both[len(idx):]
                else:
                    pred = net(xb, *args, cold, anchors)
                wb = w[idx]
                loss = (wb * (pred - y[idx]) ** 2).sum() / wb.sum()
                if self.mono_penalty > 0:
                    loss_mono = self.mono_penalty * torch.relu(pred - pred_up).mean()
                else:
                    loss_mono = 0.0
                reg = loss_mono + (self.lang_penalty * net.lang_delta.weight.pow(2).sum() / n_seen
                       + self.id_penalty * (net.task.weight.pow(2).sum() + net.model.weight.pow(2).sum()))
                opt.zero_grad(set_to_none=True)
                (loss + reg).backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(idx)
            history.append(total / n)
        return history

    def predict(self, obs: pd.DataFrame, X: pd.DataFrame | None = None) -> np.ndarray:
        import torch

        if not hasattr(self, "net_"):
            raise ModelNotReady("NeuralTransferRegressor is not fitted")
        if len(obs) == 0:
            return np.zeros(0)
        norm = normalize_observations(obs)
        X = featurize_observations(obs) if X is None else X
        prev_threads = torch.get_num_threads()
        torch.set_num_threads(self.n_threads)
        try:
            inp, anchors, vidx, _ = self._inputs(obs, X, norm)
            out = []
            with torch.no_grad():
                table = anchors + self.net_.lang_delta(vidx)
                for s in range(0, len(obs), 65536):
                    sl = slice(s, s + 65536)
                    out.append(self.net_(inp["x"][sl], table, inp["tgt"][sl], inp["src"][sl], inp["w"][sl],
                                         inp["tt"][sl], inp["fam"][sl], inp["task"][sl], inp["model"][sl]).numpy())
        finally:
            torch.set_num_threads(prev_threads)
        pred = np.concatenate(out).astype(np.float64) * self.y_scale_ + self.y_mean_
        return np.clip(pred, 0.0, 100.0)

    def language_embedding(self, codes) -> np.ndarray:
        """E[l] for each code (anchor + learned deviation; the bare URIEL anchor for unseen languages)."""
        import torch

        codes = np.array([_canonical(c) for c in codes], dtype=object).astype(str)
        anchors, vidx = self._lang_table(codes)
        with torch.no_grad():
            return (anchors + self.net_.lang_delta(vidx)).numpy()

    # ---- persistence (no pickle) ---------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write neural.npz (tensors + arrays, allow_pickle-free) and neural.json (config + sha256) into `path`."""
        if not hasattr(self, "net_"):
            raise ModelNotReady("NeuralTransferRegressor is not fitted")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        arrays = {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}
        arrays.update({"num_mean": self.num_mean_, "num_scale": self.num_scale_, "num_lo": self.num_lo_,
                       "num_hi": self.num_hi_,
                       "missing_cols": self.missing_cols_.astype(np.int64),
                       "anchor_codes": np.asarray(self.anchor_codes_, dtype="U8"), "anchors": self.anchors_})
        npz = _atomic_bytes(path / WEIGHTS_FILE, lambda f: np.savez(f, **arrays))
        config = {"format": FORMAT, "params": {k: (list(v) if isinstance(v, tuple) else v)
                                               for k, v in self.get_params().items()},
                  "feature_names": self.feature_names_, "numeric_features": NUMERIC_FEATURES,
                  "lang_vocab": self.lang_vocab_, "task_vocab": self.task_vocab_, "model_vocab": self.model_vocab_,
                  "n_task_types": self.n_task_types_, "y_mean": self.y_mean_, "y_scale": self.y_scale_,
                  "typology_version": self.typology_version_, "weights_sha256": npz,
                  "net_keys": list(self.net_.state_dict().keys())}
        _atomic_bytes(path / CONFIG_FILE, lambda f: f.write(json.dumps(config, indent=1).encode()))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "NeuralTransferRegressor":
        """Read what `save` wrote; verifies the npz's sha256 and loads it with allow_pickle=False."""
        import torch

        path = Path(path)
        try:
            config = json.loads((path / CONFIG_FILE).read_text())
            data = (path / WEIGHTS_FILE).read_bytes()
        except (OSError, ValueError) as e:
            raise ModelNotReady(f"cannot read neural model at {path}: {e}") from e
        if config.get("format") != FORMAT:
            raise ModelNotReady(f"{path / CONFIG_FILE}: unknown format {config.get('format')!r}")
        if hashlib.sha256(data).hexdigest() != config["weights_sha256"]:
            raise ModelNotReady(f"{path / WEIGHTS_FILE}: sha256 does not match {CONFIG_FILE}")
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arr = {k: z[k] for k in z.files}
        params = dict(config["params"])
        params["hidden"] = tuple(params["hidden"])
        self = cls(**params)
        self.feature_names_ = config["feature_names"]
        self.lang_vocab_ = config["lang_vocab"]
        self.task_vocab_ = config["task_vocab"]
        self.model_vocab_ = config["model_vocab"]
        self.n_task_types_ = int(config["n_task_types"])
        self.y_mean_, self.y_scale_ = float(config["y_mean"]), float(config["y_scale"])
        self.typology_version_ = config["typology_version"]
        self.num_mean_, self.num_scale_ = arr["num_mean"], arr["num_scale"]
        self.num_lo_, self.num_hi_ = arr["num_lo"], arr["num_hi"]
        self.missing_cols_ = arr["missing_cols"].astype(np.int64)
        self.anchor_codes_ = arr["anchor_codes"].astype(str)
        self.anchors_ = arr["anchors"].astype(np.float32)
        n_num = len(NUMERIC_FEATURES) + len(self.missing_cols_)
        net = _build_net(n_num, self.anchors_.shape[1], self.n_task_types_, len(MODEL_FAMILIES),
                         len(self.task_vocab_), len(self.model_vocab_), self._net_params())
        state = {k: torch.from_numpy(np.array(arr[f"net.{k}"])) for k in config["net_keys"]}
        net.load_state_dict(state)
        self.net_ = net.eval()
        return self


def _atomic_bytes(path: Path, write) -> str:
    """Write via a temp file in the same directory + rename; returns the file's sha256."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        digest = hashlib.sha256(Path(tmp).read_bytes()).hexdigest()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest

