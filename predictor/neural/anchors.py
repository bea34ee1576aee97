"""URIEL anchors for the neural model's language embeddings: a fixed, label-free projection of every URIEL language.

Per feature set (syntactic, phonological, inventory, geographic, genetic): centre, keep the top principal components,
scale each to unit variance over languages. A language the network never saw keeps exactly this vector.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

# Components kept per URIEL feature set for the anchor projection (36 dims in all).
ANCHOR_DIMS = {"syntactic": 10, "phonological": 4, "inventory": 6, "geographic": 6, "genetic": 10}


def uriel_anchors() -> tuple[np.ndarray, np.ndarray]:
    """(codes, anchors) for the current URIEL derivation (computed once per process and typology version)."""
    from features import typology
    return _uriel_anchors(typology.TYPOLOGY_VERSION)


@lru_cache(maxsize=2)
def _uriel_anchors(version: str) -> tuple[np.ndarray, np.ndarray]:
    """(codes, anchors): a fixed projection of every URIEL language's vectors to ANCHOR_DIMS dims (float32).

    Per feature set: centre, keep the top principal components (randomized SVD, fixed seed, sign-normalised), scale
    each to unit variance over languages. Rows URIEL leaves empty (no family path for isolates) project to 0.
    Unsupervised and label-free, so computing it over all languages leaks nothing from any evaluation fold.
    `version` only keys the cache."""
    from scipy import sparse
    from sklearn.utils.extmath import randomized_svd

    from features import typology

    codes = np.asarray(typology._store().codes).astype(str)
    blocks = []
    for kind, dims in ANCHOR_DIMS.items():
        if kind == "genetic":   # 3,718 family-tree nodes, ≤ 14 per language: truncated SVD of the sparse matrix
            st = typology._store()
            ok = st.paths >= 0
            rows = np.nonzero(ok)[0]
            vals = (1.0 / np.sqrt(np.maximum(st.path_len, 1.0)))[rows]   # L2-normalised rows, as in typology
            mat = sparse.csr_matrix((vals, (rows, st.paths[ok])), shape=(len(codes), int(st.paths.max()) + 1))
            u, s, _ = randomized_svd(mat, n_components=dims, random_state=0, n_iter=5)
            proj = (u * s).astype(np.float64)
        else:                   # ≤ 299 dense dims: exact PCA from the covariance's eigenvectors
            m = np.nan_to_num(typology._dense(kind), nan=0.0)
            c = (m - m.mean(axis=0, keepdims=True)).astype(np.float64)
            vals, vecs = np.linalg.eigh(c.T @ c)
            vecs = vecs[:, np.argsort(vals)[::-1][:dims]]
            vecs *= np.where(vecs[np.abs(vecs).argmax(axis=0), np.arange(dims)] < 0, -1.0, 1.0)   # fixed signs
            proj = c @ vecs
        proj -= proj.mean(axis=0, keepdims=True)
        sd = proj.std(axis=0)
        proj /= np.where(sd > 0, sd, 1.0)
        blocks.append(proj)
    return codes, np.concatenate(blocks, axis=1).astype(np.float32)

