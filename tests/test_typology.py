"""features.typology: URIEL distances per pair — values, symmetry, fallbacks, and agreement with the raw URIEL data."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from features import typology as T
from features.errors import BadValue
from features.languages import resolve_code

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
KEYS = set(T.DISTANCE_KINDS) | {"coverage", "observed"}


def _one(a: str, b: str) -> dict[str, float]:
    d = T.pair_distances(np.array([a], dtype=object), np.array([b], dtype=object))
    return {k: float(v[0]) for k, v in d.items()}


def test_shapes_dtypes_and_keys():
    d = T.pair_distances(["deu", "spa", "xxx"], ["nld", "por", "eng"])
    assert set(d) == KEYS
    for v in d.values():
        assert v.dtype == np.float32 and v.shape == (3,)
    empty = T.pair_distances([], [])
    assert set(empty) == KEYS and all(v.shape == (0,) for v in empty.values())


def test_self_distance_zero_and_full_coverage():
    codes = ["eng", "deu", "swh", "cmn", "jpn", "eus", "tgl"]
    d = T.pair_distances(codes, codes)
    for kind in T.DISTANCE_KINDS:
        assert np.all(d[kind] == 0.0), kind
    assert np.all(d["coverage"] == 1.0)


def test_symmetry_and_bounds_on_random_pairs():
    rng = np.random.default_rng(7)
    codes = T._store().codes
    a = codes[rng.integers(0, len(codes), 5000)].astype(object)
    b = codes[rng.integers(0, len(codes), 5000)].astype(object)
    ab, ba = T.pair_distances(a, b), T.pair_distances(b, a)
    for kind in [*T.DISTANCE_KINDS, "coverage", "observed"]:
        np.testing.assert_allclose(ab[kind], ba[kind], atol=1e-6, equal_nan=True)
        v = ab[kind][~np.isnan(ab[kind])]
        assert v.size > 0 and v.min() >= 0.0 and v.max() <= 1.0, kind
    # every URIEL language has kNN-complete typology and a geographic vector: only genetic may be undefined
    for kind in ("syntactic", "phonological", "inventory", "featural", "geographic"):
        assert not np.isnan(ab[kind]).any(), kind
    assert np.isnan(ab["genetic"]).mean() < 0.2


def test_known_orderings():
    assert _one("deu", "nld")["genetic"] < _one("deu", "jpn")["genetic"]
    assert _one("deu", "jpn")["genetic"] == pytest.approx(1.0)  # no shared family node
    assert _one("spa", "por")["geographic"] < _one("spa", "jpn")["geographic"]
    assert _one("deu", "nld")["syntactic"] < _one("deu", "jpn")["syntactic"]
    assert _one("spa", "por")["featural"] < _one("spa", "jpn")["featural"]
    assert _one("spa", "ita")["genetic"] < _one("spa", "eng")["genetic"] < _one("spa", "fin")["genetic"]
    assert _one("hin", "urd")["genetic"] < _one("hin", "tam")["genetic"]


def test_unknown_codes_give_nan_not_errors():
    d = T.pair_distances(np.array(["xxx", "eng", None, float("nan"), "sw", "eng"], dtype=object),
                         np.array(["eng", "qqq", "eng", "eng", "eng", "deu"], dtype=object))
    for kind in T.DISTANCE_KINDS:
        assert np.isnan(d[kind][:5]).all(), kind  # 'sw' is not canonical: resolve it first
        assert not np.isnan(d[kind][5])
    assert (d["coverage"][:5] == 0).all() and d["coverage"][5] == 1.0
    assert (d["observed"][:5] == 0).all() and 0 < d["observed"][5] <= 1


def test_isolate_has_no_genetic_distance():
    d = _one("eus", "spa")  # Basque: no family nodes in URIEL
    assert np.isnan(d["genetic"]) and d["coverage"] == pytest.approx(5 / 6)
    assert d["geographic"] < _one("eus", "jpn")["geographic"]


def test_length_mismatch_is_a_bad_value():
    with pytest.raises(BadValue):
        T.pair_distances(["eng", "deu"], ["nld"])


def test_distance_block_matches_pairs():
    codes = ["eng", "deu", "nld", "swh", "zul", "cmn", "jpn", "eus", "xxx"]
    n = len(codes)
    flat = T.pair_distances(np.repeat(codes, n), np.tile(codes, n))
    for kind in T.DISTANCE_KINDS:
        block = T.distance_block(kind, codes, codes)
        assert block.shape == (n, n) and block.dtype == np.float32
        np.testing.assert_allclose(block, flat[kind].reshape(n, n), atol=2e-6, equal_nan=True)
        assert np.isnan(block[-1]).all() and np.isnan(block[:, -1]).all()
    rect = T.distance_block("geographic", codes[:3], codes)
    assert rect.shape == (3, n)
    with pytest.raises(BadValue):
        T.distance_block("lexical", codes, codes)


def test_a_pairs_distances_do_not_depend_on_the_batch():
    """A pair's distances are the same alone, in a one-target ranking and in a large mixed batch (the geographic dot
    products are summed in different orders on those paths; answers must not depend on a server's history)."""
    codes = list(T._store().codes[:400])
    rng = np.random.default_rng(0)
    src, tgt = rng.choice(codes, 5000), rng.choice(codes, 5000)
    batch = T.pair_distances(src, tgt)
    ranking = T.pair_distances(src[:100], [tgt[0]] * 100)
    for kind in T.DISTANCE_KINDS:
        alone = np.array([T.pair_distances([a], [b])[kind][0] for a, b in zip(src[:150], tgt[:150])])
        np.testing.assert_array_equal(batch[kind][:150], alone)
        alone_t = np.array([T.pair_distances([a], [tgt[0]])[kind][0] for a in src[:100]])
        np.testing.assert_array_equal(ranking[kind], alone_t)


def test_has_language():
    assert T.has_language("swh") and T.has_language("eng") and T.has_language("ajp")
    assert not T.has_language("sw") and not T.has_language("xxx") and not T.has_language(None)


def test_family_helpers():
    assert T.family_of("deu") == "Indo-European" == T.family_of("hin")
    assert T.family_of("swh") == "Atlantic-Congo"
    assert T.family_of("ekk") == "Uralic"  # via the macrolanguage fallback (ekk has no family nodes of its own)
    assert T.family_of("eus") is None and T.family_of("xxx") is None
    assert T.same_family("deu", "hin") and not T.same_family("deu", "fin") and not T.same_family("eus", "eus")


def test_nearest_languages():
    near = T.nearest_languages("gsw", ["eng", "deu", "nld", "fra", "jpn", "xxx"])
    assert near[0][0] == "deu" and [c for c, _ in near][-1] == "jpn"
    assert "xxx" not in {c for c, _ in near}
    dists = [d for _, d in near]
    assert dists == sorted(dists)
    assert T.nearest_languages("swh", ["eng", "zul", "arb", "swh"], k=1) == [("zul", pytest.approx(
        _one("swh", "zul")["genetic"], abs=1e-6))]
    assert T.nearest_languages("swh", ["swh", "eng"], exclude_self=False)[0] == ("swh", 0.0)
    assert T.nearest_languages("xxx", ["eng"]) == []
    assert T.nearest_languages("spa", ["por", "jpn"], kind="geographic")[0][0] == "por"


def test_macrolanguage_fallback():
    # Norwegian Bokmål has no family nodes of its own: it takes Norwegian's
    assert not np.isnan(_one("nob", "dan")["genetic"])
    assert _one("nob", "dan")["genetic"] < _one("nob", "fin")["genetic"]
    # Standard Arabic's typology is the (far better observed) macrolanguage row
    d = _one("arb", "ara")
    assert d["syntactic"] == 0.0 and d["phonological"] == 0.0 and d["inventory"] == 0.0
    assert _one("arb", "arb")["observed"] == pytest.approx(_one("ara", "ara")["observed"])
    man = T.manifest()
    assert "arb<-ara" in man["macro_fallbacks_policy_targets"]["syntactic"]
    assert "nob<-nor" in man["macro_fallbacks_policy_targets"]["genetic"]


def test_relatives_fill_what_lang2vec_lacks():
    # Western Armenian: no lang2vec row; it takes Eastern Armenian's (same family node, typology, coordinates)
    assert T.has_language("hyw")
    d = _one("hyw", "hye")
    assert all(d[k] == pytest.approx(0.0, abs=1e-6) for k in T.DISTANCE_KINDS) and d["observed"] == 0.0
    assert _one("hyw", "gug")["genetic"] == 1.0 and _one("hyw", "fra")["genetic"] == pytest.approx(
        _one("hye", "fra")["genetic"], abs=1e-6)
    # Old Turkic and Guajajara: typology of their own, the family path of a relative up to a named branch (graded)
    assert T.family_of("otk") == "Turkic" and T.family_of("gub") == "Tupian"
    assert 0 < _one("otk", "uig")["genetic"] < _one("otk", "tur")["genetic"] < 1.0 == _one("otk", "eng")["genetic"]
    assert 0 < _one("gub", "tqb")["genetic"] < _one("gub", "gug")["genetic"] < 1.0
    assert _one("otk", "tur")["syntactic"] != _one("tur", "tur")["syntactic"]   # its own typology, not Turkish's
    man = T.manifest()["relative_fallbacks"]
    assert man["added_languages"] == ["hyw<-hye"] and set(man["family_paths"]) == {"otk<-tur[:2]", "gub<-tqb[:3]"}


def test_version_is_stable_and_matches_file():
    man = json.loads(T.MANIFEST_PATH.read_text())
    assert T.TYPOLOGY_VERSION == man["version"] == T.content_digest(T.VECTORS_PATH)[:12]
    assert len(T.TYPOLOGY_VERSION) == 12
    assert T.VECTORS_PATH.stat().st_size < 15e6
    assert man["languages"] == len(T._store().codes) == 7971   # lang2vec's 7,970 + Western Armenian (proxies)


def test_language_table_codes_reach_typology():
    # every policy target and the big languages of the data resolve to a code URIEL knows
    for text in ["sw", "zh", "ar", "fa", "ms", "et", "lv", "no", "tl", "fil", "iw", "jw", "de", "hi", "ja"]:
        assert T.has_language(resolve_code(text)), text


# ---- agreement with raw URIEL (lang2vec data) and with published URIEL distances --------------------------------

def _lang2vec_dir() -> Path:
    try:
        from features.build_derived import lang2vec_data_dir

        return lang2vec_data_dir()
    except RuntimeError:
        pytest.skip("lang2vec data not installed")


def test_genetic_tree_prefix_equals_dense_cosine():
    d = np.load(_lang2vec_dir() / "family_features.npz")
    langs = [str(x) for x in d["langs"]]
    fam = d["data"][:, :, 0]
    rng = np.random.default_rng(3)
    sample = [langs[i] for i in rng.choice(len(langs), 400, replace=False)] + ["deu", "nld", "eng", "swh", "zul"]
    pos = {c: i for i, c in enumerate(langs)}
    a = np.array(sample[:-1], dtype=object)
    b = np.array(sample[1:], dtype=object)
    # only languages without a macrolanguage fallback are comparable to the raw rows
    with open(ROOT / "features" / "data" / "languages.csv", newline="", encoding="utf-8") as fh:
        fallback_free = {r["code"] for r in csv.DictReader(fh) if not r["macro"]}
    with open(ROOT / "features" / "data" / "typology_proxies.csv", newline="", encoding="utf-8") as fh:
        fallback_free -= {r["code"] for r in csv.DictReader(fh)}
    keep = np.array([x in fallback_free and y in fallback_free for x, y in zip(a, b)])
    a, b = a[keep], b[keep]
    fa, fb = fam[[pos[x] for x in a]], fam[[pos[y] for y in b]]
    with np.errstate(invalid="ignore", divide="ignore"):
        dense = 1 - (fa * fb).sum(1) / np.sqrt((fa * fa).sum(1) * (fb * fb).sum(1))
    got = T.pair_distances(a, b)["genetic"]
    np.testing.assert_allclose(got, dense, atol=1e-6, equal_nan=True)


def test_syntax_knn_matches_raw_predictions():
    d = np.load(_lang2vec_dir() / "feature_predictions.npz")
    langs = {str(x): i for i, x in enumerate(d["langs"])}
    feats = d["feats"].astype(str)
    cols = np.array([f.startswith("S_") for f in feats])
    a, b = ["deu", "eng", "jpn", "tur", "yor"], ["nld", "fra", "kor", "hun", "ibo"]
    va = d["data"][[langs[x] for x in a]][:, cols, 0]
    vb = d["data"][[langs[x] for x in b]][:, cols, 0]
    raw = 1 - (va * vb).sum(1) / np.sqrt((va * va).sum(1) * (vb * vb).sum(1))
    np.testing.assert_allclose(T.pair_distances(a, b)["syntactic"], raw, atol=1e-6)


def test_agrees_with_langrank_published_genetic_and_geographic():
    path = SHARED / "langrank_nlperf" / "data_tsfpos.csv"
    if not path.exists():
        pytest.skip("shared/data is not beside the repo")
    from scipy.stats import spearmanr

    from features.errors import UnknownLanguage

    rows = list(csv.DictReader(open(path, newline="", encoding="utf-8")))

    def rc(x: str) -> str | None:
        try:
            return resolve_code(x)
        except UnknownLanguage:
            return None

    src = np.array([rc(r["Task lang"]) for r in rows], dtype=object)
    tgt = np.array([rc(r["Aux lang"]) for r in rows], dtype=object)
    d = T.pair_distances(src, tgt)
    for kind, floor in (("genetic", 0.9), ("geographic", 0.85)):
        ref = np.array([float(r[kind.upper()]) for r in rows])
        ok = ~np.isnan(d[kind])
        assert ok.sum() > 1000
        assert spearmanr(d[kind][ok], ref[ok]).statistic > floor, kind


# ---- XLT_TYPOLOGY: an alternative table of the same layout (e.g. URIEL+, features.build_urielplus) -------------

_PROBE = """
import json
from features import typology as T
d = T.pair_distances(["deu", "deu", "xxx"], ["nld", "jpn", "eng"])
print(json.dumps({"vectors": str(T.VECTORS_PATH), "manifest": str(T.MANIFEST_PATH), "version": T.TYPOLOGY_VERSION,
                  "d": {k: [None if v != v else float(v) for v in a] for k, a in d.items()}}))
"""


def _probe(env_value: str | None) -> dict:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != T.ENV_TYPOLOGY}
    if env_value is not None:
        env[T.ENV_TYPOLOGY] = env_value
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, cwd=ROOT, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_env_switch_reads_another_table(tmp_path):
    default = _probe(None)
    assert default["vectors"] == str(ROOT / "features" / "data" / "uriel_vectors.npz")
    assert default["version"] == json.loads((ROOT / "features" / "data" / "uriel_manifest.json").read_text())["version"]
    assert _probe("") == default  # empty means unset
    # a copy of the default table with German's syntactic bits inverted, without a manifest
    with np.load(ROOT / "features" / "data" / "uriel_vectors.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    n = int(arrays["n_features"][0])
    knn = np.unpackbits(arrays["knn_bits"], axis=1, count=n).astype(bool)
    row = int(np.flatnonzero(arrays["codes"] == "deu")[0])
    knn[row, arrays["set_syntactic"]] = ~knn[row, arrays["set_syntactic"]]
    arrays["knn_bits"] = np.packbits(knn, axis=1)
    alt = tmp_path / "alt_vectors.npz"
    np.savez_compressed(alt, **arrays)
    got = _probe(str(alt))
    assert got["vectors"] == str(alt) and got["manifest"] == str(tmp_path / "alt_manifest.json")
    assert got["version"] == T.content_digest(alt)[:12] != default["version"]
    assert got["d"]["syntactic"][0] != default["d"]["syntactic"][0]
    assert got["d"]["genetic"] == default["d"]["genetic"] and got["d"]["geographic"] == default["d"]["geographic"]
    assert got["d"]["syntactic"][2] is None  # unknown codes stay NaN
    # with a manifest next to it, the version is the manifest's
    (tmp_path / "alt_manifest.json").write_text(json.dumps({"version": "abc123def456"}))
    assert _probe(str(alt))["version"] == "abc123def456"


def test_urielplus_table_when_built():
    path = ROOT / "features" / "data" / "urielplus_vectors.npz"
    if not path.exists():
        pytest.skip("URIEL+ table not built (python -m features.build_urielplus)")
    man = json.loads((ROOT / "features" / "data" / "urielplus_manifest.json").read_text())
    assert man["version"] == T.content_digest(path)[:12] and path.stat().st_size < 10e6
    assert (ROOT / "features" / "data" / "URIELPLUS_ATTRIBUTION.md").exists()
    got = _probe(str(path))
    assert got["version"] == man["version"]
    assert got["d"]["genetic"][0] < got["d"]["genetic"][1]   # German is closer to Dutch than to Japanese
    assert all(got["d"][k][0] is not None for k in T.DISTANCE_KINDS)


def test_urielplus_lineage_knn_fills_from_relatives():
    from features.build_urielplus import lineage_knn

    # a, b share a two-level lineage; c, d another family; feature 0 observed for b and d only
    paths = np.array([[0, 1], [0, 1], [2, 3], [2, 3]], dtype=np.int16)
    geo = np.array([[1, 2], [1, 2], [2, 1], [2, 1]], dtype=np.uint16)
    values = np.array([[0, 1], [1, 1], [0, 0], [0, 0]], dtype=bool)
    observed = np.array([[False, True], [True, True], [False, True], [True, True]])
    out, filled = lineage_knn(values, observed, paths, geo, k=1, pool=3, chunk=2)
    assert out[0, 0] and not out[2, 0]           # a takes b's 1, c takes d's 0
    assert (out[observed] == values[observed]).all() and filled.sum() == 2


def test_macrolanguage_fallback_as_both_builds_use_it():
    """features.build_derived.macrolanguage_fallback: a policy target (arb for ara) takes the macro's set when the
    macro has more observed values; another member (ajp) only where it has none; family rows only when missing."""
    from features.build_derived import macrolanguage_fallback

    codes = np.array(["ara", "arb", "ajp"])
    sets = {"syntactic": np.array([True, True, False]), "phonological": np.array([False, False, True])}
    values = np.array([[1, 1, 1], [0, 0, 0], [0, 0, 0]], dtype=bool)
    observed = np.array([[True, True, True], [True, False, True], [False, False, True]])
    paths = np.array([[3, 4], [-1, -1], [5, -1]], dtype=np.int16)  # the URIEL+ layout: -1 = no family node
    v, o, g, stats = macrolanguage_fallback(codes, sets, values, observed, paths, paths[:, 0] >= 0)
    assert v[1].tolist() == [True, True, False] and o[1].tolist() == [True, True, True]  # arb: syntactic 2 > 1
    assert v[2].tolist() == [True, True, False]          # ajp: no syntactic value of its own; phonology its own
    assert g[1].tolist() == [3, 4] and g[2].tolist() == [5, -1]   # arb had no path; ajp keeps its own
    assert stats["macro_fallbacks"] == {"syntactic": 2, "genetic": 1}
    assert stats["macro_fallbacks_policy_targets"] == {"syntactic": ["arb<-ara"], "genetic": ["arb<-ara"]}
    assert values[1].tolist() == [False, False, False]   # inputs untouched
