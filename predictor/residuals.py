"""What the published record says the trees get wrong for one (model, task, target): a learned offset.

The trees see the record only through a few averaged evidence features, masked in training so that they also learn
to do without; for a target the record covers under this model and task they therefore leave a systematic residual
(a language that transfers better or worse than its typology and sizes say). `RecordResiduals` keeps that residual
per (model, task, target) as a function of k, the target's own examples in the mix: the mean residual of the
record's rows at each published k (shrunk towards 0 by `shrinkage` pseudo-rows), made non-decreasing in log(1+k)
(pool-adjacent-violators), interpolated between published k and held flat beyond them.

Why this shape keeps the output laws: the offset is the same for every component of a query (it does not depend on
the sources), so adding source data cannot lower a prediction; it never decreases in k, so more target examples
cannot either; it is added to the trees' output before the in-language ramp and the chance floor, so ten examples
of the target alone still score chance. Where the record is silent (a new target, task or model) the offset is 0:
the similarity regime is untouched, and rankings within one target are unchanged (the offset is constant across
sources).
"""
from __future__ import annotations

import io

import numpy as np
import pandas as pd

SHRINKAGE = 2.0  # pseudo-rows at residual 0: one published row moves the offset by 1/3 of its residual


def _non_decreasing(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted least-squares non-decreasing fit (pool adjacent violators), values ordered by k."""
    blocks: list[list[float]] = []  # [mean, weight, count]
    for v, w in zip(values, weights):
        blocks.append([float(v), float(w), 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    return np.concatenate([np.full(c, m) for m, _, c in blocks])


class RecordResiduals:
    """Per (model, task, target): offset(k) learned from the record's residuals; 0 where the record is silent."""

    COLUMNS = ("model", "task", "target", "k", "offset", "rows")

    def __init__(self, shrinkage: float = SHRINKAGE):
        self.shrinkage = shrinkage
        self.table_ = pd.DataFrame(columns=list(self.COLUMNS))
        self._index()

    def fit(self, norm: pd.DataFrame, residuals: np.ndarray) -> "RecordResiduals":
        """`norm` = canonical observation rows, `residuals` = score − the model's prediction for each."""
        df = pd.DataFrame({"model": norm["model"].astype(str).to_numpy(), "task": norm["task"].astype(str).to_numpy(),
                           "target": norm["target"].astype(str).to_numpy(),
                           "k": norm["k"].to_numpy(dtype=np.float64), "r": np.asarray(residuals, dtype=np.float64)})
        df = df[np.isfinite(df["r"])]
        g = df.groupby(["model", "task", "target", "k"], sort=True)["r"].agg(["sum", "count"]).reset_index()
        g["offset"] = g["sum"] / (g["count"] + self.shrinkage)
        parts = []
        for _, cell in g.groupby(["model", "task", "target"], sort=False):
            cell = cell.sort_values("k")
            cell = cell.assign(offset=_non_decreasing(cell["offset"].to_numpy(), cell["count"].to_numpy(float)))
            parts.append(cell)
        out = pd.concat(parts, ignore_index=True) if parts else g
        self.table_ = out.rename(columns={"count": "rows"})[list(self.COLUMNS)].reset_index(drop=True)
        self._index()
        return self

    def _index(self) -> None:
        self._cells: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]] = {}
        t = self.table_
        if len(t) == 0:
            return
        for key, cell in t.groupby(["model", "task", "target"], sort=False):
            self._cells[tuple(map(str, key))] = (np.log1p(cell["k"].to_numpy(dtype=np.float64)),
                                                 cell["offset"].to_numpy(dtype=np.float64))

    def offset(self, model: str, task: str, target: str, k: float) -> float:
        cell = self._cells.get((str(model), str(task), str(target)))
        if cell is None:
            return 0.0
        return float(np.interp(np.log1p(max(float(k), 0.0)), cell[0], cell[1]))

    def offsets(self, models, tasks, targets, ks) -> np.ndarray:
        """Offset per query (0 where the record has no row for its model, task and target)."""
        ks = np.asarray(ks, dtype=np.float64)
        out = np.zeros(len(ks))
        if not self._cells:
            return out
        memo: dict[tuple, float] = {}
        for i, key in enumerate(zip(models, tasks, targets, ks.tolist())):
            v = memo.get(key)
            if v is None:
                v = memo[key] = self.offset(*key)
            out[i] = v
        return out

    def covers(self, model: str, task: str, target: str) -> bool:
        return (str(model), str(task), str(target)) in self._cells

    # ------------------------------------------------------------------ persistence (CSV, no pickle)
    def to_csv(self) -> str:
        return self.table_.to_csv(index=False, float_format="%.17g")

    @classmethod
    def from_csv(cls, text: str, shrinkage: float = SHRINKAGE) -> "RecordResiduals":
        self = cls(shrinkage)
        t = pd.read_csv(io.StringIO(text), dtype={"model": str, "task": str, "target": str}, keep_default_na=False)
        self.table_ = t[list(cls.COLUMNS)]
        self._index()
        return self
