"""TreeSHAP for a handful of rows in numpy: the values LightGBM's `pred_contrib` gives, at a fraction of the cost.

Why: a ranking's reasons need SHAP for its top 5 rows, and LightGBM's path-dependent TreeSHAP costs ~0.4 ms a row on
the shipped model (120 trees of depth 6): two thirds of a fresh /rank's compute. TreeSHAP's value function factorises
over a leaf's path: with F the distinct features on the path to leaf l (d of them), z_f the product of the cover
fractions of the path's splits on f (`child count / node count`, as LightGBM's `data_count`) and o_f ∈ {0, 1} whether
the row satisfies all of them, leaf l adds to feature j ∈ F

    v_l · (o_j − z_j) · Σ_{S ⊆ F∖{j}} |S|!(d−1−|S|)!/d! · Π_{f∈S} o_f · Π_{f∈F∖{j}∖S} z_f

which depends on the row only through the pattern o ∈ {0,1}^d (Yang 2021, "Fast TreeSHAP", algorithm v2). So the
value of every (leaf, pattern, path feature) is tabulated once at load (~11 MB for 3k leaves of depth ≤ 6), and a
row costs its decision at every split, one pattern per leaf and a table look-up: no recursion, no per-row O(D²) work.

Exactness: the table holds the same sums LightGBM's recursion computes, in another order (differences ~1e-12). The
decision rule at a split is LightGBM's (numerical: NaN → 0 unless the missing type is NaN, zero/NaN missing values
take the default side, else `x <= threshold`; categorical: NaN or negative → right, else the category's bit). A
built explainer checks itself against `pred_contrib` on the rows it is given before it is used
(`TreeShap.build(..., check=rows)` returns None on any disagreement, and the caller keeps LightGBM's).
"""
from __future__ import annotations

import math

import numpy as np

MAX_PATH_FEATURES = 8          # 2^8 patterns a leaf; deeper trees fall back to LightGBM
MAX_TABLE_ENTRIES = 4_000_000  # float64 entries (32 MB); a bigger model falls back to LightGBM
_ZERO = 1e-35                  # LightGBM's kZeroThreshold


class TreeShap:
    """Path-dependent TreeSHAP of a LightGBM booster's trees, tabulated per leaf and decision pattern."""

    def __init__(self, n_features: int, nodes: dict, leaves: dict, table: np.ndarray, bias: float, n_bits: int):
        self.n_features = n_features
        self._nodes = nodes      # per split: feature, threshold, flags (numerical) / category bitsets
        self._leaves = leaves    # per (leaf, bit) slot: the decision steps to AND; per leaf: feature of each bit
        self._table = table      # (leaves · 2^n_bits, n_bits): contribution of each bit's feature
        self.bias = bias
        self.n_bits = n_bits
        self._cols: dict[int, np.ndarray] = {}

    # ------------------------------------------------------------------ build
    @classmethod
    def build(cls, booster, check: np.ndarray | None = None, tol: float = 1e-7) -> "TreeShap | None":
        """The explainer for `booster`, or None when its trees are out of this method's reach (too deep, too many
        leaves, linear trees, several outputs) or when it disagrees with `pred_contrib` on the `check` rows."""
        model = booster.dump_model()
        if model.get("num_class", 1) != 1 or model.get("num_tree_per_iteration", 1) != 1 \
                or model.get("average_output"):
            return None
        n_features = int(model["max_feature_idx"]) + 1
        trees = model["tree_info"]
        split_feature, threshold, default_left, missing_nan, missing_zero = [], [], [], [], []
        cat_sets: dict[int, list[int]] = {}
        leaf_paths, leaf_values = [], []
        bias = 0.0
        for t in trees:
            root = t["tree_structure"]
            if "leaf_value" in root and "split_index" not in root:  # a one-leaf tree: only the base value
                bias += float(root["leaf_value"])
                continue
            total = float(root["internal_count"])
            stack = [(root, [])]  # (node, path: list of (split id, goes left, cover fraction))
            while stack:
                node, path = stack.pop()
                if "split_index" not in node:
                    if "leaf_coeff" in node:  # linear trees: not TreeSHAP's model
                        return None
                    leaf_paths.append(path)
                    leaf_values.append(float(node["leaf_value"]))
                    bias += float(node["leaf_value"]) * float(node["leaf_count"]) / total
                    continue
                sid = len(split_feature)
                split_feature.append(int(node["split_feature"]))
                count = float(node["internal_count"])
                if node["decision_type"] == "==":
                    threshold.append(np.nan)
                    cat_sets[sid] = [int(c) for c in str(node["threshold"]).split("||") if c != ""]
                else:
                    threshold.append(float(node["threshold"]))
                default_left.append(bool(node.get("default_left", False)))
                missing_nan.append(node.get("missing_type") == "NaN")
                missing_zero.append(node.get("missing_type") == "Zero")
                for child, left in ((node["left_child"], True), (node["right_child"], False)):
                    c = float(child["internal_count"] if "split_index" in child else child["leaf_count"])
                    stack.append((child, path + [(sid, left, c / count if count > 0 else 0.0)]))
        feats = np.asarray(split_feature, dtype=np.int64)
        # unique path features per leaf: the pattern's bits
        n_leaves = len(leaf_paths)
        uniq = []
        for path in leaf_paths:
            order: dict[int, int] = {}
            for sid, _, _ in path:
                order.setdefault(split_feature[sid], len(order))
            uniq.append(order)
        n_bits = max([len(u) for u in uniq] + [1])
        if n_bits > MAX_PATH_FEATURES or n_leaves * (1 << n_bits) * n_bits > MAX_TABLE_ENTRIES:
            return None
        # the row's pattern at a leaf: for each path feature (bit), whether the row goes the path's way at every
        # split of the path on it. Steps are laid out leaf by leaf, bit by bit, so one AND-reduce over runs of steps
        # gives every (leaf, bit) at once; a step is the column "went this way" (2·split + 0 left / 1 right).
        step_col, run_start, run_slot, zero, bit_feature = [], [], [], [], []
        for i, (path, order) in enumerate(zip(leaf_paths, uniq)):
            z = [1.0] * n_bits                           # z_f; padding bits are null players (z = o = 1)
            by_bit: dict[int, list[int]] = {}
            for sid, left, frac in path:
                b = order[split_feature[sid]]
                by_bit.setdefault(b, []).append(2 * sid + (0 if left else 1))
                z[b] *= frac
            for b in sorted(by_bit):
                run_start.append(len(step_col))
                run_slot.append(i * 8 + b)
                step_col.extend(by_bit[b])
            zero.append(z)
            bf = [n_features] * n_bits                   # padding → a dropped column
            for f, b in order.items():
                bf[b] = f
            bit_feature.append(bf)
        zero = np.asarray(zero, dtype=np.float64).reshape(n_leaves, n_bits)
        bit_feature = np.asarray(bit_feature, dtype=np.int64).reshape(n_leaves, n_bits)
        table = _tabulate(np.asarray(leaf_values), zero, n_bits)
        thr = np.asarray(threshold, dtype=np.float64)
        dl, mnan = np.asarray(default_left, dtype=bool), np.asarray(missing_nan, dtype=bool)
        nan_left = np.where(mnan, dl, 0.0 <= thr)  # a NaN is 0 unless NaN is the missing type
        nodes = {"feature": feats, "threshold": thr, "default_left": dl,
                 # the row of `_go_left`'s stacked input a split reads: NaN as −inf where it goes left, else +inf
                 "feature_row": feats + n_features * (~nan_left).astype(np.int64),
                 "zero_split": np.asarray(missing_zero, dtype=bool), "any_zero_split": any(missing_zero),
                 "categorical": _category_bits(cat_sets)}
        step_col, run_start = np.asarray(step_col, dtype=np.int64), np.asarray(run_start, dtype=np.int64)
        run_slot = np.asarray(run_slot, dtype=np.int64)
        slot_first, slot_more = _slot_steps(step_col, run_start, run_slot, n_leaves * 8, 2 * len(split_feature))
        leaves = {"bit_feature": bit_feature, "slot_first_step": slot_first, "slot_more_steps": slot_more,
                  "offset": (np.arange(n_leaves, dtype=np.int64) << n_bits)[:, None], "n_leaves": n_leaves}
        shap = cls(n_features, nodes, leaves, table.reshape(n_leaves << n_bits, n_bits), bias, n_bits)
        if check is not None and len(check):
            rows = np.asarray(check, dtype=np.float32)
            want = booster.predict(rows, pred_contrib=True, num_threads=1)
            got = shap(rows)
            scale = max(1.0, float(np.abs(want).max()))
            if got.shape != want.shape or not np.allclose(got, want, rtol=0, atol=tol * scale):
                return None
        return shap

    # ------------------------------------------------------------------ explain
    def __call__(self, X: np.ndarray) -> np.ndarray:
        """(rows, n_features + 1) SHAP values, the last column the base value: `pred_contrib`'s layout."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"TreeShap: expected (rows, {self.n_features}) features, got {X.shape}")
        out = np.zeros((len(X), self.n_features + 1))
        for start in range(0, len(X), 8):  # eight rows at a time: one bit per row in a byte
            out[start:start + 8] = self._explain8(X[start:start + 8])
        return out

    def relative(self, X: np.ndarray) -> np.ndarray:
        """SHAP of up to 8 rows up to a per-feature constant shared by the rows: `r - r.mean(axis=0)` equals
        `s - s.mean(axis=0)` for `s = self(X)`. A leaf where every row has the same pattern adds the same amount to
        every row, so only the leaves where the rows differ are looked up (a quarter to a half of them for a
        ranking's top rows, which share their target); what a ranking's reasons need (each source against the
        others)."""
        X = np.asarray(X, dtype=np.float32)
        if len(X) > 8 or len(X) < 2:
            return self(X)
        if X.shape[1] != self.n_features:
            raise ValueError(f"TreeShap: expected (rows, {self.n_features}) features, got {X.shape}")
        return self._explain8(X, differing_only=True)

    def _pattern_words(self, X: np.ndarray) -> np.ndarray:
        """(leaf,) uint64: byte i is row i's decision pattern at the leaf (bit b set when the row satisfies every
        split of the leaf's path on the leaf's b-th feature), for up to 8 rows; bytes beyond the rows are 0."""
        lv = self._leaves
        left = self._go_left(X.astype(np.float64))                    # splits × 8 (rows beyond X: False)
        bits = (left.view("<u8").ravel() * _GATHER_BITS) >> _TOP_BYTE  # per split: bit i = row i goes left
        went = np.empty(2 * len(bits) + 1, dtype=np.uint8)
        went[0:-1:2] = bits
        went[1:-1:2] = ~bits.astype(np.uint8)
        went[-1] = 0xFF
        # o[leaf, bit]: the rows (one bit each) that satisfy every split of the leaf's path on the bit's feature;
        # a slot's first step, then its further ones (most runs are one split long), padding slots read the 0xFF
        o = went[lv["slot_first_step"]]
        for slots, steps in lv["slot_more_steps"]:
            o[slots] &= went[steps]
        # transposed (8×8 bits per leaf): byte i of a leaf = row i's pattern over the leaf's bits
        words = _transpose8(o).view("<u8")
        return words & (np.uint64(0x0101010101010101) * np.uint64((1 << self.n_bits) - 1)) & _row_bytes(len(X))

    def _explain8(self, X: np.ndarray, differing_only: bool = False) -> np.ndarray:
        r, width = len(X), self.n_features + 2
        lv = self._leaves
        out = np.zeros((r, width))
        if lv["n_leaves"]:
            words = self._pattern_words(X)
            pattern = words.view(np.uint8).reshape(-1, 8)[:, :r]
            if differing_only:  # a row's pattern byte differs from row 0's
                keep = np.flatnonzero((words ^ ((words & np.uint64(0xFF)) * np.uint64(0x0101010101010101)))
                                      & _row_bytes(r))
                values = np.take(self._table, (lv["offset"][keep] + pattern[keep]).T, axis=0)  # (row, leaf, bit)
                cells = (lv["bit_feature"][keep].reshape(1, -1) + (np.arange(r) * width)[:, None]).ravel()
                out = np.bincount(cells, weights=values.ravel(), minlength=r * width).reshape(r, width)
                return out[:, : self.n_features + 1]
            else:
                values = np.take(self._table, lv["offset"] + pattern, axis=0)   # (leaf, row, bit)
                cols = self._columns(r)
            out += np.bincount(cols, weights=values.ravel(), minlength=r * width).reshape(r, width)
        if not differing_only:
            out[:, self.n_features] = self.bias
        return out[:, : self.n_features + 1]

    def _columns(self, r: int) -> np.ndarray:
        """Output cell of each (leaf, row, bit) value for r rows: row · width + the bit's feature."""
        cols = self._cols.get(r)
        if cols is None:
            width = self.n_features + 2
            cols = self._cols[r] = (self._leaves["bit_feature"][:, None, :]
                                    + (np.arange(r) * width)[None, :, None]).ravel()
        return cols

    def _go_left(self, X: np.ndarray) -> np.ndarray:
        """(splits, 8) bool: whether each of up to 8 rows goes left at each split, by LightGBM's decision rule
        (columns beyond the rows False). Splits × rows, so the gather of each split's feature copies a short
        contiguous row and the 8 answers of a split are one 64-bit word. A NaN's side is decided by the gather
        itself: the input is stacked twice, NaN as −inf (left of any threshold) and as +inf (right), and each split
        reads the copy of its side (`feature_row`), so the rule costs one comparison."""
        nd = self._nodes
        F, r = X.shape[1], len(X)
        xt = X.T
        nan = np.isnan(xt)
        XT = np.full((2 * F, 8), np.inf)              # rows beyond X: +inf goes right everywhere, categorical too
        XT[:F, :r] = np.where(nan, -np.inf, xt)
        XT[F:, :r] = np.where(nan, np.inf, xt)
        x = np.take(XT, nd["feature_row"], axis=0)
        left = x <= nd["threshold"][:, None]          # categorical splits (threshold NaN) False here, set below
        if nd["any_zero_split"]:                      # missing type Zero: 0 (and NaN, counted as 0) take the default
            was_nan = np.zeros((F, 8), dtype=bool)
            was_nan[:, :r] = nan
            zero = nd["zero_split"][:, None] & ((np.abs(x) <= _ZERO) | np.take(was_nan, nd["feature"], axis=0))
            left = np.where(zero, nd["default_left"][:, None], left)
        cats = nd["categorical"]
        if cats is not None:                          # NaN (±inf here), negative or unseen → right; else the bit
            idx, flat, base, width = cats
            xc = x[idx]
            valid = (xc >= 0) & (xc < width)
            left[idx] = valid & flat[base + np.where(valid, xc, 0).astype(np.int64)]
        return left


def _row_bytes(r: int) -> np.uint64:
    """The low r bytes of a 64-bit word set: the bytes of a pattern word that belong to rows."""
    return np.uint64((1 << (8 * r)) - 1 if r < 8 else 0xFFFFFFFFFFFFFFFF)


# (w · _GATHER_BITS) >> 56 packs the low bits of a word's 8 bytes (each 0 or 1) into one byte, byte i → bit i
_GATHER_BITS, _TOP_BYTE = np.uint64(0x0102040810204080), np.uint64(56)


def _slot_steps(step_col: np.ndarray, run_start: np.ndarray, run_slot: np.ndarray, n_slots: int, pad: int):
    """The AND-reduce of each (leaf, bit) slot's steps as gathers: the slot's first step (`pad`, the always-true
    column, for a padding slot), then for j = 1, 2, ... the slots with a j-th step and that step."""
    run_len = np.diff(np.append(run_start, len(step_col)))
    first = np.full(n_slots, pad, dtype=np.int64)
    first[run_slot] = step_col[run_start]
    more = []
    for j in range(1, int(run_len.max(initial=1))):
        has = run_len > j
        more.append((run_slot[has], step_col[run_start[has] + j]))
    return first, more


_M1, _M2, _M3 = np.uint64(0x00AA00AA00AA00AA), np.uint64(0x0000CCCC0000CCCC), np.uint64(0x00000000F0F0F0F0)
_S1, _S2, _S3 = np.uint64(7), np.uint64(14), np.uint64(28)


def _transpose8(o: np.ndarray) -> np.ndarray:
    """Each 8-byte group as an 8×8 bit matrix, transposed (bit j of byte i ↔ bit i of byte j): Hacker's Delight
    `transpose8` on little-endian uint64 words."""
    x = o.view("<u8").copy()
    t = (x ^ (x >> _S1)) & _M1
    x ^= t ^ (t << _S1)
    t = (x ^ (x >> _S2)) & _M2
    x ^= t ^ (t << _S2)
    t = (x ^ (x >> _S3)) & _M3
    x ^= t ^ (t << _S3)
    return x.view(np.uint8)


def _category_bits(cat_sets: dict[int, list[int]]):
    """(split ids, flattened membership matrix, each split's offset into it, its width) of the categorical splits,
    or None."""
    if not cat_sets:
        return None
    idx = np.array(sorted(cat_sets), dtype=np.int64)
    width = max([max(v, default=-1) for v in cat_sets.values()] + [0]) + 1
    bits = np.zeros((len(idx), width), dtype=bool)
    for i, sid in enumerate(idx):
        for c in cat_sets[int(sid)]:
            if c >= 0:
                bits[i, c] = True
    return idx, bits.ravel(), (np.arange(len(idx), dtype=np.int64) * width)[:, None], width


def _tabulate(values: np.ndarray, zero: np.ndarray, n_bits: int) -> np.ndarray:
    """(leaves, 2^n_bits, n_bits): leaf value · (o_j − z_j) · Σ_{S ⊆ P∖{j}} w(|S|) Π_{f∉S, f≠j} z_f for pattern P.

    Padding bits (z = 1, and always set in a pattern) are null players: they leave the other bits' values as they
    are, so every leaf uses the same d = n_bits in the Shapley weights."""
    n, d = zero.shape
    n_pat = 1 << d
    pats = np.arange(n_pat)
    pop = np.array([bin(m).count("1") for m in range(n_pat)])
    weight = np.array([math.factorial(s) * math.factorial(d - 1 - s) / math.factorial(d) if s < d else 0.0
                       for s in range(d + 1)])
    table = np.zeros((n, n_pat, d))
    full = n_pat - 1
    for j in range(d):
        jbit = 1 << j
        # term(S) for S ⊆ all∖{j}: w(|S|) · Π_{f ∉ S ∪ {j}} z_f, indexed by S as a mask (masks containing j: 0)
        term = np.zeros((n, n_pat))
        for s_mask in range(n_pat):
            if s_mask & jbit:
                continue
            prod = np.ones(n)
            rest = full & ~s_mask & ~jbit
            for f in range(d):
                if rest >> f & 1:
                    prod = prod * zero[:, f]
            term[:, s_mask] = weight[pop[s_mask]] * prod
        # subset sums: G(P) = Σ_{S ⊆ P} term(S)  (the zeta transform over the bits)
        for f in range(d):
            fb = 1 << f
            has = (pats & fb) != 0
            term[:, has] += term[:, pats[has] ^ fb]
        g = term[:, pats & ~jbit]  # S ⊆ P∖{j}
        o = ((pats & jbit) != 0).astype(np.float64)
        table[:, :, j] = values[:, None] * (o[None, :] - zero[:, j:j + 1]) * g
    return table
