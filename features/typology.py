"""URIEL typological distances between languages, computed per pair, never as an N×N matrix.

Why this shape: a batch of a million (source, target) queries needs six distances per row; a 8,000² matrix per kind
would be 1.5 GB. Instead the derived file keeps one compact vector per language and feature set, and distances are
cosine distances `1 − u·v / (|u||v|)` computed for the (deduplicated) pairs asked for, in chunks.

The six kinds are those of Littell et al. (2017) / lang2vec's `distance()`:
  genetic       family-tree nodes (lang2vec `fam`, 3,718 binary dims; stored as root→leaf paths because the nodes form
                a tree, so the overlap of two languages is their common prefix)
  syntactic     `syntax_knn`   (103 binary dims, kNN-completed)
  phonological  `phonology_knn` (28)
  inventory     `inventory_knn` (158)
  featural      the concatenation of the three above (289)
  geographic    `geo` (299 dims: closeness to fixed points on the globe)
Besides the six, `pair_distances` returns `coverage` (share of the six that are defined for the pair) and `observed`
(share of the 289 typological dimensions *observed* in URIEL's sources for both languages, i.e. not kNN-imputed):
low values say the typological distances are mostly imputation.

Codes are canonical ISO 639-3 (see features.languages). Unknown codes give NaN, never an exception, so one odd row
does not fail a batch. Policy targets of a macrolanguage (swh, arb, nob…) fall back to the macrolanguage's URIEL row
where theirs is thinner (see features.build_derived.build_typology and the manifest's `macro_fallbacks`). A language of
the record that lang2vec lacks (Western Armenian) or whose family path it lacks (Old Turkic, Guajajara) borrows from a
named relative (features/data/typology_proxies.csv, the manifest's `relative_fallbacks`).

Rebuild the derived file with `python -m features.typology --rebuild` (needs lang2vec: `pip install -e '.[uriel]'`).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from features.errors import BadValue

DATA_DIR = Path(__file__).resolve().parent / "data"
VECTORS_PATH = DATA_DIR / "uriel_vectors.npz"
MANIFEST_PATH = DATA_DIR / "uriel_manifest.json"
# XLT_TYPOLOGY=<file.npz>: read another table of the same layout instead (e.g. features/data/urielplus_vectors.npz,
# built by features.build_urielplus), with its manifest next to it (`*_vectors.npz` -> `*_manifest.json`); read once,
# at import. Unset or empty: the default above.
ENV_TYPOLOGY = "XLT_TYPOLOGY"
if os.environ.get(ENV_TYPOLOGY):
    VECTORS_PATH = Path(os.environ[ENV_TYPOLOGY]).expanduser().resolve()
    MANIFEST_PATH = VECTORS_PATH.with_name(VECTORS_PATH.name.removesuffix(".npz").replace("vectors", "manifest")
                                           + ".json")

GEO_DECIMALS = 7  # float32 keeps ~7 significant digits: nothing the features could see is lost
DISTANCE_KINDS = ("genetic", "syntactic", "phonological", "inventory", "geographic", "featural")
_BINARY_SETS = ("syntactic", "phonological", "inventory")
CHUNK = 65536
GEO_SUBCHUNK = 4096
SMALL_N = 2000  # below this many pairs per-value dicts and small sorts replace pd.factorize (same values)


def content_digest(path: Path) -> str:
    """sha256 over the arrays of an npz (names, dtypes, shapes, bytes): stable across rebuilds, unlike the zip."""
    h = hashlib.sha256()
    with np.load(path, allow_pickle=False) as npz:
        for key in sorted(npz.files):
            arr = np.ascontiguousarray(npz[key])
            h.update(f"{key}|{arr.dtype.str}|{arr.shape}|".encode())
            h.update(arr.tobytes())
    return h.hexdigest()


def _read_version() -> str:
    try:
        return json.loads(MANIFEST_PATH.read_text())["version"]
    except FileNotFoundError:
        if VECTORS_PATH.exists() and os.environ.get(ENV_TYPOLOGY):  # an alternative table without a manifest
            return content_digest(VECTORS_PATH)[:12]
        return "unbuilt"


TYPOLOGY_VERSION: str = _read_version()


@dataclass
class _Store:
    codes: np.ndarray             # (N,) U3
    lookup: dict                  # code → row
    bits: np.ndarray              # (N, B) uint8: kNN bits of each binary set in its own byte segment, then observed
    segments: dict                # kind → slice of byte columns in `bits` ("observed" included)
    pop: dict                     # kind → (N,) float64 number of ones (squared norm)
    n_typo: int
    paths: np.ndarray             # (N, D) int16 family nodes root→leaf, -1 padded
    path_len: np.ndarray          # (N,) float64
    fam_names: np.ndarray
    geo: np.ndarray               # (N, 299) float32, L2-normalised


@lru_cache(maxsize=1)
def _store() -> _Store:
    if not VECTORS_PATH.exists():
        raise FileNotFoundError(f"{VECTORS_PATH} missing: run `python -m features.typology --rebuild`")
    with np.load(VECTORS_PATH, allow_pickle=False) as z:
        codes = z["codes"]
        n_typo = int(z["n_features"][0])
        knn = np.unpackbits(z["knn_bits"], axis=1, count=n_typo).astype(bool)
        parts, segments, pop, at = [], {}, {}, 0
        for kind in _BINARY_SETS:
            cols = z[f"set_{kind}"]
            packed = np.packbits(knn[:, cols], axis=1)
            parts.append(packed)
            segments[kind] = slice(at, at + packed.shape[1])
            at += packed.shape[1]
            pop[kind] = knn[:, cols].sum(axis=1).astype(np.float64)
        pop["featural"] = sum(pop[k] for k in _BINARY_SETS)
        parts.append(z["observed_bits"])
        segments["observed"] = slice(at, at + z["observed_bits"].shape[1])
        paths = z["fam_paths"]
        geo = z["geo_u16"].astype(np.float32) / 10000.0
        geo /= np.linalg.norm(geo, axis=1, keepdims=True)
        return _Store(codes=codes, lookup={str(c): i for i, c in enumerate(codes)},
                      bits=np.ascontiguousarray(np.concatenate(parts, axis=1)), segments=segments, pop=pop,
                      n_typo=n_typo, paths=paths, path_len=(paths >= 0).sum(axis=1).astype(np.float64),
                      fam_names=z["fam_names"], geo=geo)


def _indices(codes: Iterable) -> np.ndarray:
    """Row of each code in the store, -1 for unknown or non-string values (hashing only the distinct values)."""
    s = _store()
    arr = np.asarray(codes, dtype=object).ravel()
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.size < SMALL_N:  # a request's few codes: dict lookups, no factorize set-up
        lookup = s.lookup
        return np.array([lookup.get(u, -1) if isinstance(u, str) else -1 for u in arr], dtype=np.int64)
    fac, uniq = pd.factorize(arr)  # None / NaN get -1
    rows = np.array([s.lookup.get(u, -1) if isinstance(u, str) else -1 for u in uniq] + [-1], dtype=np.int64)
    return rows[fac]  # fac == -1 picks the trailing -1


def has_language(code: str) -> bool:
    """True when URIEL has a vector for this canonical ISO 639-3 code."""
    return isinstance(code, str) and code in _store().lookup


def _cos_dist(dot: np.ndarray, na: np.ndarray, nb: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        d = 1.0 - dot / np.sqrt(na * nb)
    d[(na == 0) | (nb == 0)] = np.nan
    return np.clip(d, 0.0, 1.0)


def _geo_distance(dot: np.ndarray) -> np.ndarray:
    """1 − cosine, rounded to GEO_DECIMALS. Why rounded: the two ways of computing the dot products (a matrix product
    over the distinct sources × targets, or one row pair at a time) sum in different orders, so a pair's distance
    differed in its last float32 bit with the batch it was first computed in, and answers with a server's history;
    in float64 the two differ by ~1e-16, far below the rounding step, so every path gives the same value."""
    return np.clip(np.round(1.0 - dot, GEO_DECIMALS), 0.0, 1.0)


def _pairs_known(a: np.ndarray, b: np.ndarray, geo_block: tuple | None = None) -> dict[str, np.ndarray]:
    """All outputs for row-index pairs that are both known (no dedup here)."""
    s = _store()
    out: dict[str, np.ndarray] = {}
    both = np.bitwise_count(np.take(s.bits, a, axis=0) & np.take(s.bits, b, axis=0))
    dots = {}
    for kind in _BINARY_SETS:
        dots[kind] = both[:, s.segments[kind]].sum(axis=1, dtype=np.int64).astype(np.float64)
        out[kind] = _cos_dist(dots[kind], s.pop[kind][a], s.pop[kind][b])
    out["featural"] = _cos_dist(sum(dots.values()), s.pop["featural"][a], s.pop["featural"][b])
    out["observed"] = both[:, s.segments["observed"]].sum(axis=1, dtype=np.int64) / float(s.n_typo)
    pa, pb = np.take(s.paths, a, axis=0), np.take(s.paths, b, axis=0)
    common = ((pa == pb) & (pa >= 0)).sum(axis=1).astype(np.float64)
    out["genetic"] = _cos_dist(common, s.path_len[a], s.path_len[b])
    if geo_block is not None:  # (block matrix of 1 - cos over distinct src × tgt, row positions, col positions)
        block, ra, rb = geo_block
        out["geographic"] = block[ra, rb]
    else:
        # 299 floats per row: gather in cache-sized sub-chunks (measured 2x faster than 64k-row gathers)
        geo_dot = np.empty(a.size, dtype=np.float64)
        for i in range(0, a.size, GEO_SUBCHUNK):
            ga = np.take(s.geo, a[i:i + GEO_SUBCHUNK], axis=0)
            gb = np.take(s.geo, b[i:i + GEO_SUBCHUNK], axis=0)
            geo_dot[i:i + GEO_SUBCHUNK] = np.einsum("ij,ij->i", ga, gb, dtype=np.float64)
        out["geographic"] = _geo_distance(geo_dot)
    same = a == b
    for kind in DISTANCE_KINDS:
        out[kind][same] = 0.0
    return out


def pair_distances(src, tgt) -> dict[str, np.ndarray]:
    """Six URIEL cosine distances per (src[i], tgt[i]) pair, plus `coverage` and `observed`; float32 arrays.

    Pairs are deduplicated first (a million-row batch has few distinct language pairs) and computed in chunks of
    CHUNK rows, so memory stays flat. Unknown codes → NaN distances, coverage 0, observed 0; the same known code → 0.
    """
    src_idx, tgt_idx = _indices(src), _indices(tgt)
    if src_idx.shape != tgt_idx.shape:
        raise BadValue(f"src and tgt must have the same length ({src_idx.size} vs {tgt_idx.size})", field="codes")
    n = src_idx.size
    out = {k: np.full(n, np.nan, dtype=np.float32) for k in DISTANCE_KINDS}
    out["coverage"] = np.zeros(n, dtype=np.float32)
    out["observed"] = np.zeros(n, dtype=np.float32)
    if n == 0:
        return out
    big = np.int64(len(_store().codes) + 1)
    key = (src_idx + 1) * big + (tgt_idx + 1)
    if n < SMALL_N:  # few pairs: a small sort is cheaper than factorize's hash-table set-up (order is irrelevant)
        ukey, inv = np.unique(key, return_inverse=True)
    else:
        inv, ukey = pd.factorize(key)  # hashing: cheaper than np.unique's sort on a million keys
    ua, ub = ukey // big - 1, ukey % big - 1
    known = (ua >= 0) & (ub >= 0)
    res = {k: np.full(ukey.size, np.nan, dtype=np.float32) for k in DISTANCE_KINDS}
    res["observed"] = np.zeros(ukey.size, dtype=np.float32)
    kidx = np.flatnonzero(known)
    # geographic is the one dense set (299 floats): when the distinct sources × targets are few compared with the
    # distinct pairs, one matrix product beats gathering two 299-float rows per pair
    n_codes = len(_store().codes)
    sa, sb = np.flatnonzero(np.bincount(ua[kidx], minlength=n_codes)), np.flatnonzero(
        np.bincount(ub[kidx], minlength=n_codes))
    where = np.zeros(n_codes, dtype=np.int64)
    block = None
    if sa.size * sb.size <= min(4 * kidx.size, 16_000_000):
        g = _store().geo
        block = _geo_distance(g[sa].astype(np.float64) @ g[sb].T.astype(np.float64))
    where[sa] = np.arange(sa.size)
    pos_a = where[ua[kidx]]
    where[sb] = np.arange(sb.size)
    pos_b = where[ub[kidx]]
    for start in range(0, kidx.size, CHUNK):
        sel = kidx[start:start + CHUNK]
        geo_block = None if block is None else (block, pos_a[start:start + CHUNK], pos_b[start:start + CHUNK])
        part = _pairs_known(ua[sel], ub[sel], geo_block)
        for k, v in part.items():
            res[k][sel] = v
    res["coverage"] = (np.stack([~np.isnan(res[k]) for k in DISTANCE_KINDS]).sum(axis=0) / len(DISTANCE_KINDS)
                       ).astype(np.float32)
    for k, v in res.items():
        out[k] = v[inv]
    return out


@lru_cache(maxsize=8)
def _dense(kind: str) -> np.ndarray:
    """L2-normalised dense float32 matrix (N × dims) of a feature set, for blocked all-pairs products."""
    s = _store()
    if kind == "geographic":
        return s.geo
    if kind == "genetic":
        n_nodes = int(s.paths.max()) + 1
        m = np.zeros((len(s.codes), n_nodes), dtype=np.float32)
        rows = np.repeat(np.arange(len(s.codes)), s.paths.shape[1]).reshape(s.paths.shape)
        ok = s.paths >= 0
        m[rows[ok], s.paths[ok]] = 1.0
    else:
        kinds = _BINARY_SETS if kind == "featural" else (kind,)
        # pad bits of packbits are zeros: they add nothing to dot products or norms
        m = np.concatenate([np.unpackbits(s.bits[:, s.segments[k]], axis=1) for k in kinds], axis=1).astype(
            np.float32)
    norm = np.linalg.norm(m, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return m / norm  # rows of zeros become NaN: undefined distance


def distance_block(kind: str, codes_a, codes_b, block: int = 512) -> np.ndarray:
    """All-pairs distances (len(codes_a) × len(codes_b), float32) of one kind via blocked matrix products.

    Unknown codes give NaN rows/columns; the same known code gives 0.
    """
    if kind not in DISTANCE_KINDS:
        raise BadValue(f"unknown distance kind '{kind}'", field="kind", suggestions=list(DISTANCE_KINDS))
    ia, ib = _indices(codes_a), _indices(codes_b)
    out = np.full((ia.size, ib.size), np.nan, dtype=np.float32)
    ka, kb = np.flatnonzero(ia >= 0), np.flatnonzero(ib >= 0)
    if ka.size == 0 or kb.size == 0:
        return out
    m = _dense(kind)
    mb = m[ib[kb]]
    for start in range(0, ka.size, block):
        rows = ka[start:start + block]
        d = 1.0 - m[ia[rows]] @ mb.T
        np.clip(d, 0.0, 1.0, out=d)
        d[ia[rows][:, None] == ib[kb][None, :]] = 0.0
        out[np.ix_(rows, kb)] = d
    return out


@lru_cache(maxsize=1)
def observed_languages() -> tuple[str, ...]:
    """Codes with at least one URIEL typology value observed (not only kNN-imputed): what all-pairs covers.

    Why: of ~7,900 URIEL languages only ~3,300 have any observed syntax/phonology/inventory value; for the rest every
    typological distance is an imputation of an imputation, not a feature worth 60M predicted pairs.
    """
    s = _store()
    bits = s.bits[:, s.segments["observed"]]
    has = np.unpackbits(bits, axis=1).any(axis=1)
    return tuple(str(c) for c in s.codes[has])


def family_of(code: str) -> str | None:
    """Top-level language family (e.g. 'Indo-European') from URIEL's family tree; None if unknown or no family."""
    s = _store()
    i = s.lookup.get(code) if isinstance(code, str) else None
    if i is None or s.paths[i, 0] < 0:
        return None
    return str(s.fam_names[s.paths[i, 0]])


def same_family(a: str, b: str) -> bool:
    """True when both languages have the same known top-level family."""
    fa = family_of(a)
    return fa is not None and fa == family_of(b)


def nearest_languages(code: str, among: Iterable[str], kind: str = "genetic", k: int = 5,
                      exclude_self: bool = True) -> list[tuple[str, float]]:
    """The k languages of `among` closest to `code` by `kind`, as (code, distance), nearest first.

    Why: the featurizer looks for a target's nearest relative present in a pretraining corpus. Ties (frequent for
    genetic distance) are broken by geographic distance, then code; undefined distances are left out.
    """
    if kind not in DISTANCE_KINDS:
        raise BadValue(f"unknown distance kind '{kind}'", field="kind", suggestions=list(DISTANCE_KINDS))
    cands = list(dict.fromkeys(c for c in among if isinstance(c, str)))
    if exclude_self:
        cands = [c for c in cands if c != code]
    if not cands:
        return []
    d = pair_distances(np.array([code] * len(cands), dtype=object), np.array(cands, dtype=object))
    main, geo = d[kind].astype(np.float64), d["geographic"].astype(np.float64)
    order = sorted((i for i in range(len(cands)) if not np.isnan(main[i])),
                   key=lambda i: (main[i], geo[i] if not np.isnan(geo[i]) else 2.0, cands[i]))
    return [(cands[i], float(main[i])) for i in order[:k]]


def manifest() -> dict:
    """The JSON manifest written next to the derived vectors (version, sources, fallbacks)."""
    return json.loads(MANIFEST_PATH.read_text())


if __name__ == "__main__":  # pragma: no cover - build entry point
    import sys

    if "--rebuild" in sys.argv:
        if os.environ.get(ENV_TYPOLOGY):  # build_typology writes VECTORS_PATH: never over an alternative table
            sys.exit(f"unset {ENV_TYPOLOGY} to rebuild the default URIEL table")
        from features.build_derived import build_typology

        build_typology()
    else:
        print("usage: python -m features.typology --rebuild")
