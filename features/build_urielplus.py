"""Build an alternative typology table from URIEL+ (PyPI `urielplus` 1.3.2, CC BY-SA 4.0), offline, at build time.

Output (same npz layout as features/data/uriel_vectors.npz, read by features.typology when
`XLT_TYPOLOGY=features/data/urielplus_vectors.npz` is set; the default typology is not touched):

    features/data/urielplus_vectors.npz       codes, knn_bits, observed_bits, set_*, fam_paths, fam_names, geo_u16, ...
    features/data/urielplus_manifest.json     version (content digest), sources, options, coverage counts
    features/data/URIELPLUS_ATTRIBUTION.md    licence and credits (CC BY-SA 4.0; see that file)

Why a separate interpreter: URIEL+ writes into its own package folder, logs at import, may call sys.exit and pulls
scikit-learn/fancyimpute/cvxpy for imputation. So it never enters the project venv: this file runs it in a child
process of another interpreter (its own venv), with stdin closed and a timeout, on a *copy* of the package in a
temporary folder (writes land there), and only reads back one raw npz. The conversion to xlt's layout then runs here.

    python3.11 -m venv /tmp/urielplus-venv
    /tmp/urielplus-venv/bin/pip install "urielplus[imputation]==1.3.2"
    .venv/bin/python -m features.build_urielplus --python /tmp/urielplus-venv/bin/python   # ~5 min, ~3 GB

What URIEL+ does here (worker):
  * integrations UPDATED_SAPHON, BDPROTO, GRAMBANK, APICS, GLOTTOLOG (eWAVE left out: English varieties only;
    `--databases` changes the list). Integrating converts URIEL's ISO rows to Glottocodes; the 148 ISO codes with no
    Glottocode (mostly macrolanguages: ara, fas, est, msa, ...) would be dropped with their WALS/Ethnologue data, so
    they are kept under placeholder ids `<iso>q0000` (no lineage, no coordinates) and mapped back.
  * family tree and coordinates rebuilt from Glottolog (`lang_fam_geo.csv`: 8,887 path-qualified nodes, up to 26
    levels deep, vs lang2vec's 3,718 nodes / 14 levels);
  * aggregation 'U' (union over sources) with `fill_with_base_lang` (values of a language passed down to its
    dialects), then URIEL+'s SoftImpute recipe (rank-capped at 50 for speed; rounded to 0/1) over every row with a
    value. URIEL+ feature prefixes: S_ (syntax), M_ (morphology, Grambank), P_ (phonology), INV_ (inventory).

What xlt adds (here):
  * rows = URIEL's 7,970 ISO 639-3 codes (the default table's universe, same order), mapped back from Glottocodes;
  * a language with no typological value at all (URIEL+ leaves it empty) gets the feature-wise majority of its
    `--fill-k` nearest languages that have values: nearest by Glottolog lineage (shared prefix), then by distance on
    the globe — so every distance is defined for every language, and `observed` still says it is imputation;
  * the macrolanguage fallback of features.build_derived (policy targets such as swh/arb take the macro row per set
    when it has more observed values; other members only where they have none);
  * sets: syntactic = S_ + M_ (xlt's layout has three binary sets; Grambank's morphology is morphosyntax),
    phonological = P_, inventory = INV_;
  * `observed_bits`: values a language has itself in some source (before lineage fill and imputation).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_DATABASES = ("UPDATED_SAPHON", "BDPROTO", "GRAMBANK", "APICS", "GLOTTOLOG")
PLACEHOLDER = "q0000"          # <iso> + PLACEHOLDER: 4 letters + 4 digits, a Glottocode shape no languoid has
URIELPLUS_VERSION = "1.3.2"


# ---------------------------------------------------------------------------------------------------------------
# worker: runs inside the URIEL+ venv (stdlib + numpy + pandas + urielplus only; no project imports)

def worker(out: str, databases: list[str], strategy: str, rank: int) -> None:
    import importlib.util
    import logging
    import resource
    import shutil

    import pandas as pd

    t0 = time.time()
    spec = importlib.util.find_spec("urielplus")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("urielplus is not installed in this interpreter")
    src = Path(list(spec.submodule_search_locations)[0])
    work = Path(tempfile.mkdtemp(prefix="urielplus-pkg-"))
    shutil.copytree(src, work / "urielplus", ignore=shutil.ignore_patterns("__pycache__"))
    csvs = work / "urielplus" / "database" / "urielplus_csvs"
    # keep ISO rows that have no Glottocode (macrolanguages etc.) under placeholder ids
    gmap = pd.read_csv(csvs / "uriel_glottocode_map.csv", dtype=str, keep_default_na=False, na_filter=False)
    empty = gmap["glottocode"].str.strip() == ""
    gmap.loc[empty, "glottocode"] = gmap.loc[empty, "iso_code"].str.strip() + PLACEHOLDER
    gmap.to_csv(csvs / "uriel_glottocode_map.csv", index=False)
    sys.path.insert(0, str(work))
    sys.modules.pop("urielplus", None)
    from urielplus import urielplus  # noqa: E402  (the copy)

    logging.getLogger().setLevel(logging.WARNING)
    u = urielplus.URIELPlus()
    u.set_cache(False)
    u.set_aggregation("U")
    u.set_fill_with_base_lang(True)
    iso_langs = np.asarray(u.langs[1]).astype(str)          # URIEL's ISO codes, before any conversion
    timings = {}
    for db in databases:
        t = time.time()
        u.integrate_custom_databases(db)
        timings[db] = round(time.time() - t, 1)
        print(f"worker: {db} in {timings[db]}s, typology {u.data[1].shape}", flush=True)
    if u.get_codes() != "Glotto":
        u.set_glottocodes()
    iso_of = dict(zip(gmap["glottocode"].str.strip(), gmap["iso_code"].str.strip()))
    langs = np.asarray(u.langs[1]).astype(str)
    feats = np.asarray(u.feats[1]).astype(str)
    raw = np.asarray(u.data[1])
    own_obs = (raw != -1).any(axis=2)                        # a value in some source (incl. DERIVED collapses)
    sources = [str(s) for s in u.sources[1]]
    fam_feats = np.asarray(u.feats[0]).astype(str)
    fam = np.asarray(u.data[0])[:, :, 0] == 1
    fam_langs = np.asarray(u.langs[0]).astype(str)
    geo = np.asarray(u.data[2])[:, :, 0].astype(np.float32)
    geo_langs = np.asarray(u.langs[2]).astype(str)
    geo_feats = np.asarray(u.feats[2]).astype(str)
    assert (fam_langs == langs).all() and (geo_langs == langs).all()

    t = time.time()
    agg = u.aggregate()[:, :, 0]                             # union + values passed down the dialect tree
    timings["aggregate"] = round(time.time() - t, 1)
    filled = agg != -1
    keep = np.array([lang in iso_of for lang in langs]) & filled.any(axis=1)
    rows = np.flatnonzero(keep)
    print(f"worker: aggregate in {timings['aggregate']}s; imputing {len(rows)} rows x {len(feats)} features",
          flush=True)
    sub = agg[rows].astype(np.float64)
    t = time.time()
    if strategy == "softimpute":
        # URIEL+'s SoftImpute recipe (fancyimpute, max_iters=400, values in [0, 1], default shrinkage, rounded for the
        # union aggregation) with a rank cap: the uncapped version runs a full SVD per iteration (> 20 min on 2
        # shared cores); the cap makes it a randomized truncated SVD.
        from urielplus import urielplus_imputation as UI
        UI._load_imputation_dependencies("softimpute")       # imports fancyimpute with URIEL+'s sklearn shim
        np.random.seed(0)   # fancyimpute's randomized_svd draws from numpy's global state: a reproducible table
        imputer = UI.SoftImpute(max_iters=400, max_value=1, min_value=0, max_rank=rank, verbose=False)
        imputed = np.rint(imputer.fit_transform(np.where(sub == -1, np.nan, sub)))
    else:  # URIEL+'s own interface, e.g. "mean"
        u.langs[1] = langs[rows]
        u.data[1] = sub[:, :, None]
        u.sources[1] = np.asarray(["UNION"])
        imputed_df = u.imputation_interface(strategy=strategy, file="features.npz",
                                            feature_prefixes=("S_", "P_", "INV_", "M_"), eval_metric="f1",
                                            test_quality=False, return_csv=True, save_as_npz=False)
        assert (np.asarray(imputed_df.columns[1:]).astype(str) == feats).all(), "imputation changed the columns"
        imputed = np.rint(imputed_df.iloc[:, 1:].to_numpy(dtype=np.float64))
    timings["imputation"] = round(time.time() - t, 1)
    # cells that had a value keep it (softimpute reconstructs them too)
    imputed = np.where(sub != -1, sub, imputed)
    assert set(np.unique(imputed)) <= {0.0, 1.0}, np.unique(imputed)

    # back to ISO: one row per URIEL ISO code
    pos = {lang: i for i, lang in enumerate(langs)}
    imp_pos = {int(r): i for i, r in enumerate(rows)}
    n_iso = len(iso_langs)
    glotto_of = {v: k for k, v in iso_of.items()}
    glottocode = np.array([glotto_of.get(c, "") for c in iso_langs])
    row_of = np.array([pos.get(g, -1) for g in glottocode])
    has_row = row_of >= 0
    typ = np.zeros((n_iso, len(feats)), dtype=bool)
    has_typ = np.zeros(n_iso, dtype=bool)
    for i, r in enumerate(row_of):
        if r in imp_pos:
            typ[i] = imputed[imp_pos[r]] == 1
            has_typ[i] = True
    pick = np.where(has_row, row_of, 0)
    np.savez_compressed(
        out, iso=iso_langs, glottocode=glottocode, has_row=has_row, feats=feats, typ=np.packbits(typ, axis=1),
        has_typ=has_typ, own_obs=np.packbits(own_obs[pick] & has_row[:, None], axis=1),
        filled_obs=np.packbits(filled[pick] & has_row[:, None], axis=1),
        fam=np.packbits(fam[pick] & has_row[:, None], axis=1), fam_feats=fam_feats,
        geo=np.where(has_row[:, None], geo[pick], -1.0).astype(np.float32), geo_feats=geo_feats,
        info=np.array(json.dumps({
            "databases": databases, "strategy": strategy, "softimpute_max_rank": rank, "sources": sources,
            "timings_s": timings,
            "typology_rows_after_integration": int(len(langs)), "rows_imputed": int(len(rows)),
            "features": int(len(feats)), "family_nodes": int(len(fam_feats)),
            "max_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
            "seconds": round(time.time() - t0, 1)})))
    shutil.rmtree(work, ignore_errors=True)
    print(f"worker: wrote {out} in {time.time() - t0:.0f}s", flush=True)


# ---------------------------------------------------------------------------------------------------------------
# driver: project venv

def run_worker(python: str, databases: list[str], strategy: str, rank: int, timeout: float, tmp: Path) -> dict:
    raw = tmp / "urielplus_raw.npz"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["OMP_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] = env["MKL_NUM_THREADS"] = "2"
    cmd = ["nice", "-n", "10", python, "-I", str(Path(__file__).resolve()), "--worker", str(raw),
           "--databases", ",".join(databases), "--strategy", strategy, "--rank", str(rank)]
    t0 = time.time()
    log = tmp / "worker.log"
    with open(log, "w") as fh:
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                  timeout=timeout, cwd=tmp, env=env)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"URIEL+ worker exceeded {timeout:.0f}s (log: {log})")
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
    if proc.returncode != 0 or not raw.exists():  # sys.exit inside URIEL+ lands here
        raise RuntimeError(f"URIEL+ worker failed (exit {proc.returncode}):\n{tail}")
    print(tail)
    with np.load(raw, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    out["_wall_s"] = time.time() - t0
    return out


def _genetic_prefix(paths_a: np.ndarray, paths_b: np.ndarray) -> np.ndarray:
    """Shared root→leaf prefix length of every (a, b) (len(a) × len(b))."""
    eq = (paths_a[:, None, :] == paths_b[None, :, :]) & (paths_a[:, None, :] >= 0)
    return np.cumprod(eq, axis=2).sum(axis=2)


def neighbour_fill(typ: np.ndarray, has_typ: np.ndarray, paths: np.ndarray, geo: np.ndarray, k: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Rows without typology take the feature-wise majority of their k nearest rows with typology: most shared
    Glottolog lineage first, then nearest on the globe (cosine of the anchor-distance vectors)."""
    donors = np.flatnonzero(has_typ)
    need = np.flatnonzero(~has_typ)
    g = geo / np.linalg.norm(geo, axis=1, keepdims=True)
    out = typ.copy()
    donors_of = np.full((len(typ), k), -1, dtype=np.int64)
    for start in range(0, need.size, 256):
        rows = need[start:start + 256]
        shared = _genetic_prefix(paths[rows], paths[donors]).astype(np.float64)
        closeness = g[rows] @ g[donors].T                   # in [0, 1]
        score = shared + 0.999 * closeness                   # lineage first, geography breaks ties
        nn = np.argpartition(-score, k, axis=1)[:, :k]
        votes = typ[donors[nn]].mean(axis=1)                 # rows × k × F → rows × F
        out[rows] = votes >= 0.5
        donors_of[rows] = donors[nn]
    return out, donors_of


def convert(raw: dict, fill_k: int) -> tuple[dict, dict]:
    from features.build_derived import lang2vec_data_dir, macrolanguage_fallback

    iso = raw["iso"].astype(str)
    feats = raw["feats"].astype(str)
    nf = len(feats)
    unpack = lambda a: np.unpackbits(a, axis=1, count=nf).astype(bool)  # noqa: E731
    typ, own_obs, filled_obs = unpack(raw["typ"]), unpack(raw["own_obs"]), unpack(raw["filled_obs"])
    has_typ = raw["has_typ"].astype(bool)
    fam_feats = raw["fam_feats"].astype(str)
    fam = np.unpackbits(raw["fam"], axis=1, count=len(fam_feats)).astype(bool)

    # the default table's universe and order
    l2v = np.load(lang2vec_data_dir() / "features.npz")
    codes = l2v["langs"].astype(str)
    assert sorted(codes) == sorted(iso), "URIEL+ rows are not URIEL's ISO codes"
    order = {c: i for i, c in enumerate(iso)}
    sel = np.array([order[c] for c in codes])
    typ, own_obs, filled_obs, has_typ, fam = typ[sel], own_obs[sel], filled_obs[sel], has_typ[sel], fam[sel]
    geo = raw["geo"][sel].astype(np.float64)
    glottocode = raw["glottocode"].astype(str)[sel]

    # geography: Glottolog coordinates; URIEL's own vector where Glottolog has none (same 299 anchors)
    l2v_geo_npz = np.load(lang2vec_data_dir() / "geocoord_features.npz")
    gpos = {c: i for i, c in enumerate(l2v_geo_npz["langs"].astype(str))}
    l2v_geo = l2v_geo_npz["data"][[gpos[c] for c in codes], :, 0].astype(np.float64)
    anchors_plus = [f.replace("G_DISTANCE_TO_LATITUDE_", "").replace("_LONGITUDE_", "_") for f in
                    raw["geo_feats"].astype(str)]
    anchors_l2v = [f[3:] for f in l2v_geo_npz["feats"].astype(str)]
    assert anchors_plus == anchors_l2v, "URIEL+ geographic anchors differ from URIEL's"
    no_geo = (geo < 0).any(axis=1)
    geo[no_geo] = l2v_geo[no_geo]

    # family paths root→leaf: path-qualified node names, depth = number of components
    depth_of = np.array([f.count(" > ") + 1 for f in fam_feats])
    max_depth = int(fam.sum(axis=1).max())
    paths = np.full((len(codes), max_depth), -1, dtype=np.int16)
    for i in range(len(codes)):
        nodes = np.flatnonzero(fam[i])
        nodes = nodes[np.argsort(depth_of[nodes], kind="stable")]
        assert (depth_of[nodes] == np.arange(1, len(nodes) + 1)).all(), f"{codes[i]}: lineage is not one path"
        paths[i, : len(nodes)] = nodes
    fam_names = np.array([f.split(" > ")[-1].removeprefix("F_") for f in fam_feats])

    # languages URIEL+ leaves without any typological value
    n_before_fill = int(has_typ.sum())
    typ, donors = neighbour_fill(typ, has_typ, paths, geo, fill_k)

    # macrolanguage fallback, as features.build_derived.build_typology
    sets = {"syntactic": np.array([f.startswith(("S_", "M_")) for f in feats]),
            "phonological": np.array([f.startswith("P_") for f in feats]),
            "inventory": np.array([f.startswith("INV_") for f in feats])}
    assert sum(int(m.sum()) for m in sets.values()) == nf
    typ_out, obs_out, paths_out, fallback_stats = macrolanguage_fallback(codes, sets, typ, own_obs, paths,
                                                                         paths[:, 0] >= 0)

    geo_u16 = np.rint(np.clip(geo, 0, 1) * 10000).astype(np.uint16)
    arrays = {
        "codes": codes.astype("U3"),
        "feature_names": feats,
        "knn_bits": np.packbits(typ_out, axis=1),
        "observed_bits": np.packbits(obs_out, axis=1),
        "n_features": np.array([nf]),
        "set_syntactic": sets["syntactic"], "set_phonological": sets["phonological"],
        "set_inventory": sets["inventory"],
        "fam_paths": paths_out,
        "fam_names": fam_names,
        "geo_u16": geo_u16,
        "geo_feature_names": l2v_geo_npz["feats"].astype(str),
        "glottocodes": glottocode,
    }
    info = json.loads(str(raw["info"]))
    stats = {
        "languages": int(len(codes)),
        "features": {k: int(v.sum()) for k, v in sets.items()},
        "features_by_prefix": {p: int(sum(f.startswith(p) for f in feats)) for p in ("S_", "M_", "P_", "INV_")},
        "languages_with_glottocode": int(sum(not g.endswith(PLACEHOLDER) and g != "" for g in glottocode)),
        "languages_with_own_typology_value": int(own_obs.any(axis=1).sum()),
        "languages_with_value_after_lineage_fill": int(filled_obs.any(axis=1).sum()),
        "languages_imputed_by_urielplus": n_before_fill,
        "languages_filled_from_neighbours": int(len(codes) - n_before_fill),
        "observed_cells_share": round(float(own_obs.mean()), 4),
        "genetic_nodes": int(len(fam_feats)), "genetic_max_depth": max_depth,
        "languages_without_family": int((paths_out[:, 0] < 0).sum()),
        "languages_with_glottolog_coordinates": int((~no_geo).sum()),
        **fallback_stats,
        "urielplus_worker": info,
    }
    return arrays, stats


def lineage_knn(values: np.ndarray, observed: np.ndarray, paths: np.ndarray, geo_u16: np.ndarray, k: int = 5,
                pool: int = 300, chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Every unobserved cell from the k nearest languages that observe that feature (majority; ties → 1).

    Nearest = most shared Glottolog lineage, then closest on the globe; candidates are each language's `pool` nearest.
    Observed cells keep their values. Returns (values, filled mask); a cell none of the pool observes keeps its input
    value (URIEL+'s imputation)."""
    n = len(values)
    geo = geo_u16.astype(np.float64)
    geo /= np.linalg.norm(geo, axis=1, keepdims=True)
    out = values.copy()
    filled = np.zeros_like(observed)
    for start in range(0, n, chunk):
        rows = np.arange(start, min(n, start + chunk))
        score = _genetic_prefix(paths[rows], paths).astype(np.float64) + 0.999 * (geo[rows] @ geo.T)
        score[np.arange(len(rows)), rows] = -np.inf
        top = np.argpartition(-score, pool, axis=1)[:, :pool]
        order = np.argsort(-np.take_along_axis(score, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)                  # rows × pool, nearest first
        obs = observed[top]                                            # rows × pool × F
        use = obs & (np.cumsum(obs, axis=1, dtype=np.int16) <= k)
        cnt = use.sum(axis=1)
        ones = (use & values[top]).sum(axis=1)
        vote = 2 * ones >= cnt
        need = ~observed[rows] & (cnt > 0)
        out[rows] = np.where(need, vote, values[rows])
        filled[rows] = need
    return out, filled


def derive_lineage_knn(src: Path, k: int) -> None:
    """A variant of a built URIEL+ table: unobserved cells re-imputed by `lineage_knn` instead of SoftImpute."""
    import hashlib

    from features.build_derived import _atomic_write
    from features.typology import content_digest

    with np.load(src, allow_pickle=False) as z:
        arrays = {key: z[key] for key in z.files}
    nf = int(arrays["n_features"][0])
    values = np.unpackbits(arrays["knn_bits"], axis=1, count=nf).astype(bool)
    observed = np.unpackbits(arrays["observed_bits"], axis=1, count=nf).astype(bool)
    t = time.time()
    new, filled = lineage_knn(values, observed, arrays["fam_paths"], arrays["geo_u16"], k=k)
    arrays["knn_bits"] = np.packbits(new, axis=1)
    vec = src.with_name(src.name.replace("urielplus_", "urielplus_lknn_"))
    man_src = json.loads(src.with_name(src.name.replace("vectors", "manifest").replace(".npz", ".json")).read_text())

    def write_npz(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)

    _atomic_write(vec, write_npz)
    digest = content_digest(vec)
    man = {**man_src, "file": vec.name, "version": digest[:12], "content_sha256": digest,
           "file_sha256": hashlib.sha256(vec.read_bytes()).hexdigest(), "derived_from": man_src["version"],
           "built_by": "python -m features.build_urielplus --lineage-knn " + str(k),
           "imputation_override": f"unobserved cells: majority of the {k} nearest languages (Glottolog lineage, then "
                                  f"geography) observing the feature; {int(filled.sum())} cells re-imputed, "
                                  f"{int((~observed & ~filled).sum())} kept from SoftImpute ({time.time() - t:.0f}s)",
           "cells_changed_vs_softimpute": int((new != values).sum())}
    out_man = vec.with_name(vec.name.replace("vectors", "manifest").replace(".npz", ".json"))
    _atomic_write(out_man, lambda tmp: Path(tmp).write_text(json.dumps(man, indent=1) + "\n"))
    print(f"wrote {vec} (version {digest[:12]}), {man['imputation_override']}")


def write(arrays: dict, stats: dict, args) -> None:
    import hashlib

    from features.build_derived import _atomic_write
    from features.typology import content_digest

    data = Path(args.out_dir)
    vec = data / "urielplus_vectors.npz"
    man = data / "urielplus_manifest.json"

    def write_npz(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)

    _atomic_write(vec, write_npz)
    digest = content_digest(vec)
    manifest = {
        "file": vec.name, "version": digest[:12], "content_sha256": digest,
        "file_sha256": hashlib.sha256(vec.read_bytes()).hexdigest(),
        "source": f"URIEL+ (PyPI urielplus {URIELPLUS_VERSION}, CC BY-SA 4.0; see URIELPLUS_ATTRIBUTION.md), "
                  "lang2vec 1.1.2 bundled data for the language list/order and coordinates Glottolog lacks",
        "built_by": "python -m features.build_urielplus " + " ".join(sys.argv[1:]),
        "urielplus_options": {"aggregation": "U", "fill_with_base_lang": True, "cache": False,
                              "databases": args.databases.split(","), "imputation": args.strategy,
                              "softimpute_max_rank": args.rank,
                              "imputation_rows": "Glottocode rows with an ISO code and at least one value",
                              "no_glottocode_rows": f"kept as <iso>{PLACEHOLDER}"},
        "xlt_options": {"neighbour_fill_k": args.fill_k,
                        "sets": "syntactic = S_ + M_ (Grambank morphology), phonological = P_, inventory = INV_",
                        "observed": "own value in some URIEL+ source (before lineage fill / imputation)",
                        "macro_fallback": "as features.build_derived.build_typology"},
        **stats,
        "distances": "as the default table: cosine distance; genetic over Glottolog lineage paths (shared prefix)",
    }
    _atomic_write(man, lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=1) + "\n"))
    print(f"wrote {vec} ({vec.stat().st_size / 1e6:.1f} MB, version {digest[:12]}) and {man}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", metavar="OUT", help=argparse.SUPPRESS)
    ap.add_argument("--python", default="/tmp/urielplus-venv/bin/python",
                    help="interpreter of a venv with urielplus[imputation]==1.3.2 (never the project venv)")
    ap.add_argument("--databases", default=",".join(DEFAULT_DATABASES))
    ap.add_argument("--strategy", default="softimpute", choices=("softimpute", "mean"))
    ap.add_argument("--rank", type=int, default=50, help="SoftImpute rank cap (randomized SVD)")
    ap.add_argument("--fill-k", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--out-dir", default=str(Path(__file__).resolve().parent / "data"))
    ap.add_argument("--lineage-knn", type=int, metavar="K",
                    help="only derive urielplus_lknn_vectors.npz from the built table (cells imputed from the K "
                         "nearest relatives that observe them)")
    args = ap.parse_args(argv)
    if args.lineage_knn:
        derive_lineage_knn(Path(args.out_dir) / "urielplus_vectors.npz", args.lineage_knn)
        return 0
    if args.worker:
        import faulthandler
        faulthandler.dump_traceback_later(300, repeat=True)  # where it is, every 5 min, in the worker log
        worker(args.worker, args.databases.split(","), args.strategy, args.rank)
        return 0
    with tempfile.TemporaryDirectory(prefix="xlt-urielplus-") as tmp:
        raw = run_worker(args.python, args.databases.split(","), args.strategy, args.rank, args.timeout, Path(tmp))
    arrays, stats = convert(raw, args.fill_k)
    stats["urielplus_worker"]["wall_s"] = round(raw["_wall_s"], 1)
    write(arrays, stats, args)
    return 0


if __name__ == "__main__":
    if "--worker" not in sys.argv:  # the driver needs the project on the path; the worker must not import it
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
