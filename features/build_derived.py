"""Rebuild the derived, committed files under features/data/ from their sources.

Why derived files: the runtime must import in well under a second and must not depend on langcodes' slow paths or on
lang2vec (which imports pkg_resources). So the language table, its aliases and the URIEL vectors are computed once
here, committed, and versioned by their sha256.

    python -m features.build_derived            # both
    python -m features.languages --rebuild      # languages.csv + language_aliases.csv
    python -m features.typology --rebuild       # uriel_vectors.npz + uriel_manifest.json

Sources: the IANA language subtag registry and CLDR likely subtags shipped in `language_data`/`langcodes`, lang2vec
1.1.2's bundled URIEL npz files, and the language names written in ../shared/data (when that folder is present).
"""
from __future__ import annotations

import csv
import json
import os
import re
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(__file__).resolve().parent / "data"
SHARED = Path(os.environ.get("XLT_SHARED_DATA", ROOT.parent / "shared" / "data"))

# ISO 639-2/B (bibliographic) codes: the only three-letter codes that differ from 639-3 for the same language.
ISO639_2B = {"alb": "sqi", "arm": "hye", "baq": "eus", "bur": "mya", "chi": "zho", "cze": "ces", "dut": "nld",
             "fre": "fra", "geo": "kat", "ger": "deu", "gre": "ell", "ice": "isl", "mac": "mkd", "mao": "mri",
             "may": "msa", "per": "fas", "rum": "ron", "slo": "slk", "tib": "bod", "wel": "cym"}

# Spellings that no standard table gives but that data sources or people write.
EXTRA_ALIASES = {
    # Wikipedia dump names (pretraining_sizes/wiki, mBERT)
    "zh-min-nan": "nan", "zh-yue": "yue", "zh-classical": "lzh", "roa-rup": "rup", "bat-smg": "sgs",
    "fiu-vro": "vro", "nds-nl": "nds", "eml": "egl", "cbk-zam": "cbk", "be-tarask": "bel", "be-x-old": "bel", "bh": "bho",
    # names people use
    "farsi": "pes", "mandarin": "cmn", "chinese": "zho", "filipino": "fil", "tagalog": "tgl", "kurmanji": "kmr",
    "sorani": "ckb", "naija": "pcm", "kiche": "quc", "k'iche'": "quc", "mbya guarani": "gun", "greek": "ell",
    "modern greek": "ell", "norwegian": "nor", "bokmal": "nob", "bokmål": "nob", "nynorsk": "nno",
    "swahili": "swa", "kiswahili": "swh", "arabic": "ara", "persian": "fas", "malay": "msa", "albanian": "sqi",
    "estonian": "est", "latvian": "lav", "uzbek": "uzb", "azerbaijani": "aze", "azeri": "aze", "kurdish": "kur",
    "mongolian": "mon", "oriya": "ori", "odia": "ori", "pashto": "pus", "yiddish": "yid", "guarani": "grn",
    "quechua": "que", "malagasy": "mlg", "oromo": "orm", "nepali": "nep", "komi": "kom", "konkani": "kok",
    "hmong": "hmn", "serbo-croatian": "hbs", "old east slavic": "orv", "old russian": "orv",
    "classical chinese": "lzh", "literary chinese": "lzh", "cantonese": "yue", "north sami": "sme",
    "northern sami": "sme", "low saxon": "nds", "low german": "nds", "swiss german": "gsw", "alemannic": "gsw",
    "western armenian": "hyw", "komi zyrian": "kpv", "komi permyak": "koi", "livvi": "olo", "ancient greek": "grc",
    "old french": "fro", "gothic": "got", "akkadian": "akk", "old turkish": "otk", "assyrian": "aii",
    "south levantine arabic": "ajp", "scottish gaelic": "gla", "gaelic": "gla", "sinhalese": "sin",
    "burmese": "mya", "khmer": "khm", "lao": "lao", "punjabi": "pan", "panjabi": "pan", "bangla": "ben",
    "hebrew": "heb", "indonesian": "ind", "javanese": "jav", "sundanese": "sun", "cebuano": "ceb",
    "haitian creole": "hat", "haitian": "hat", "chichewa": "nya", "nyanja": "nya", "sesotho": "sot",
    "southern sotho": "sot", "shona": "sna", "luxembourgish": "ltz", "kyrgyz": "kir", "kirghiz": "kir",
    "tajik": "tgk", "uyghur": "uig", "uighur": "uig", "slovenian": "slv", "slovene": "slv", "valencian": "cat",
    "castilian": "spa", "flemish": "nld", "moldavian": "ron", "moldovan": "ron", "dhivehi": "div",
    "maldivian": "div", "sanskrit": "san", "latin": "lat", "esperanto": "epo", "frisian": "fry",
    "western frisian": "fry", "west frisian": "fry", "irish": "gle", "welsh": "cym", "breton": "bre",
    "corsican": "cos", "hawaiian": "haw", "samoan": "smo", "maori": "mri", "māori": "mri",
    "english": "eng", "german": "deu", "french": "fra", "spanish": "spa", "portuguese": "por", "russian": "rus",
    "japanese": "jpn", "korean": "kor", "hindi": "hin", "urdu": "urd", "bengali": "ben", "turkish": "tur",
    "vietnamese": "vie", "thai": "tha", "tamil": "tam", "telugu": "tel", "marathi": "mar", "italian": "ita",
    "dutch": "nld", "polish": "pol", "ukrainian": "ukr", "czech": "ces", "finnish": "fin", "hungarian": "hun",
    "romanian": "ron", "bulgarian": "bul", "swedish": "swe", "danish": "dan", "yoruba": "yor",
}

# CLDR's likely script for Ancient Greek is Cypriot syllabary; the UD treebanks and almost all text use Greek.
# Languages of shared/data for which CLDR has no likely script, written in the script given here.
SCRIPT_OVERRIDES = {"grc": "Grek", "ang": "Latn", "avk": "Latn", "cbk": "Latn", "chy": "Latn", "din": "Latn",
                    "ile": "Latn", "lfn": "Latn", "lld": "Latn", "mwl": "Latn", "nov": "Latn", "nrm": "Latn",
                    "pih": "Latn", "rmy": "Latn", "rup": "Latn", "szy": "Latn", "xal": "Cyrl"}

_QUALIFIERS = re.compile(r"\s*\((individual language|macrolanguage)\)\s*$", re.I)


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _iana_records() -> list[dict]:
    import language_data

    text = (Path(language_data.__file__).parent / "data" / "language-subtag-registry.txt").read_text("utf-8")
    recs = []
    for block in text.split("\n%%\n"):
        rec: dict = defaultdict(list)
        key = None
        for line in block.splitlines():
            if line.startswith("  ") and key:
                rec[key][-1] += " " + line.strip()
                continue
            if ":" not in line:
                continue
            key, val = line.split(":", 1)
            rec[key.strip()].append(val.strip())
        if rec.get("Type") == ["language"]:
            recs.append(dict(rec))
    return recs


def build_collections() -> None:
    """features/data/language_collections.csv: the IANA registry's ISO 639-5 collection codes (`nah` Nahuatl
    languages, `oto` Otomian languages, `ber` Berber languages) that are not languages of their own. Datasets use some
    of them as language ids (AmericasNLI's `nah` and `oto`); features.languages answers such a code with the member
    languages to choose from instead of a fuzzy guess (`nah` used to suggest Nauru and Amharic)."""
    from features.languages import COLLECTIONS_CSV, LANGUAGES_CSV

    with open(LANGUAGES_CSV, newline="", encoding="utf-8") as fh:
        known = {r["code"] for r in csv.DictReader(fh)}
    rows = []
    for r in _iana_records():
        sub = r["Subtag"][0]
        if (r.get("Scope") or [""])[0] == "collection" and len(sub) == 3 and sub not in known:
            rows.append((sub, r["Description"][0]))

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["code", "name"])
            w.writerows(sorted(rows))

    _atomic_write(COLLECTIONS_CSV, write)
    print(f"wrote {COLLECTIONS_CSV} ({len(rows)} collections)")


def lang2vec_data_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("lang2vec")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("lang2vec is not installed: pip install -e '.[uriel]' to rebuild derived URIEL files")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def _uriel_observed_counts() -> dict[str, int]:
    d = np.load(lang2vec_data_dir() / "features.npz")
    counts = (d["data"] != -1).any(axis=2).sum(axis=1)
    return {str(lang): int(n) for lang, n in zip(d["langs"], counts)}


def _data_names() -> list[tuple[str, str]]:
    """(English name, code as the data writes it) pairs from shared/data, so names used there resolve."""
    pairs: list[tuple[str, str]] = []
    files = [
        (SHARED / "xpos_devries2022/results/udpos-langs.csv", "language", "language_id"),
        (SHARED / "mt5_xue2021/mc4_table6_language_stats_transcribed.csv", "language", "iso_code"),
        (SHARED / "pretraining_sizes/cc-100/cc-100.csv", "Language", "ISO code"),
        (SHARED / "pretraining_sizes/wiki/wiki.csv", "Language", "Wiki"),
    ]
    for path, name_col, code_col in files:
        if not path.exists():
            continue
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                name, code = (row.get(name_col) or "").strip(), (row.get(code_col) or "").strip()
                if name and code and code != "-":
                    pairs.append((name, code))
    return pairs


def _udpos_scripts() -> dict[str, str]:
    path = SHARED / "xpos_devries2022/results/udpos-langs.csv"
    words = {"latin": "Latn", "cyrillic": "Cyrl", "arabic": "Arab", "armenian": "Armn", "chinese": "Hani",
             "hangul": "Kore", "greek": "Grek", "devanagari": "Deva", "thai": "Thai", "tamil": "Taml",
             "kana": "Jpan", "telugu": "Telu", "hebrew": "Hebr", "syriac": "Syrc", "old turkic": "Orkh"}
    out = {}
    if path.exists():
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if row["script"] in words:
                    out[row["language_id"]] = words[row["script"]]
    return out


def build_languages() -> None:
    from langcodes import Language as LC
    from langcodes.data_dicts import LIKELY_SUBTAGS

    from features.languages import ALIASES_CSV, LANGUAGES_CSV, MACROLANGUAGE_POLICY, _LEGACY

    recs = _iana_records()
    obs = _uriel_observed_counts()
    uriel = set(obs)

    two_to_three: dict[str, str] = {}
    three: dict[str, dict] = {}
    for r in recs:
        sub = r["Subtag"][0]
        scope = (r.get("Scope") or [""])[0]
        if scope in ("special", "private-use") or ".." in sub or sub in ("und", "mul", "mis", "zxx"):
            continue
        if len(sub) == 2:
            if "Deprecated" in r:
                continue
            a3 = LC.get(sub, normalize=False).to_alpha3()
            two_to_three[sub] = a3
            three.setdefault(a3, {"desc": r["Description"], "macro2": (r.get("Macrolanguage") or [""])[0],
                                  "suppress": (r.get("Suppress-Script") or [""])[0], "scope": scope})
        elif len(sub) == 3:
            if scope == "collection" and sub not in uriel:
                continue
            three.setdefault(sub, {"desc": r["Description"], "macro2": (r.get("Macrolanguage") or [""])[0],
                                   "suppress": (r.get("Suppress-Script") or [""])[0], "scope": scope})
    for code in sorted(uriel - set(three) - {"und", "mul", "mis", "zxx"}):  # retired codes URIEL still carries
        name = LC.get(code, normalize=False).display_name()
        if name.startswith("Unknown language") or code in ISO639_2B:  # e.g. URIEL rows `alb`, `gre`: no language
            continue
        three[code] = {"desc": [name], "macro2": "", "suppress": "", "scope": ""}
    three_to_two = {}
    for two, a3 in sorted(two_to_three.items()):
        three_to_two.setdefault(a3, two)

    def to3(code: str) -> str:
        return two_to_three.get(code, code)

    ud_scripts = {to3(k) if len(k) == 2 else k: v for k, v in _udpos_scripts().items()}

    def script_of(code: str, depth: int = 0) -> str:
        info = three[code]
        std = three_to_two.get(code, code)
        if code in SCRIPT_OVERRIDES:
            return SCRIPT_OVERRIDES[code]
        if std in LIKELY_SUBTAGS:
            return LIKELY_SUBTAGS[std].split("-")[1]
        if info["suppress"]:
            return info["suppress"]
        if code in ud_scripts:
            return ud_scripts[code]
        if info["macro2"] and depth == 0:
            m = to3(info["macro2"])
            if m in three:
                return script_of(m, 1)
        return "Zzzz"

    def clean(desc: str) -> str:
        return _QUALIFIERS.sub("", desc).strip()

    policy_targets = set(MACROLANGUAGE_POLICY.values())
    rows = []
    for code in sorted(three):
        info = three[code]
        iso1 = three_to_two.get(code)
        # CLDR's English name where the language has a two-letter code ("Greek", not "Modern Greek (1453-)")
        name = LC.get(iso1, normalize=False).display_name() if iso1 else clean(info["desc"][0])
        rows.append({"code": code, "name": name, "script": script_of(code), "iso1": iso1 or "",
                     "macro": to3(info["macro2"]) if info["macro2"] else "", "in_uriel": int(code in uriel),
                     "uriel_observed": obs.get(code, 0), "scope": info["scope"]})
    # the two-letter code of a macrolanguage names its policy target too (sw → swh), unless the target has its own
    by_code = {r["code"]: r for r in rows}
    for macro, target in MACROLANGUAGE_POLICY.items():
        if target in by_code and not by_code[target]["iso1"] and macro in three_to_two:
            by_code[target]["iso1"] = three_to_two[macro]
        if target in by_code and by_code[target]["script"] == "Zzzz" and macro in by_code:
            by_code[target]["script"] = by_code[macro]["script"]

    aliases: dict[str, tuple[str, str]] = {}

    def add(alias: str, code: str, kind: str) -> None:
        alias = alias.strip().lower()
        if alias and code in three and alias not in aliases:
            aliases[alias] = (code, kind)

    for code in sorted(three):
        add(code, code, "iso639_3")
    for two, a3 in sorted(two_to_three.items()):
        add(two, a3, "iso639_1")
    for old, code in _LEGACY.items():
        add(old, code, "legacy")
    for b, t in ISO639_2B.items():
        add(b, t, "iso639_2b")
    for alias, code in EXTRA_ALIASES.items():
        add(alias, code, "extra")

    def rank(code: str) -> tuple:
        return (code in policy_targets or code in MACROLANGUAGE_POLICY, code in three_to_two, obs.get(code, -1),
                code in uriel, code)

    def add_names(pairs: list[tuple[str, str]], kind: str) -> None:
        cands: dict[str, set[str]] = defaultdict(set)
        for name, code in pairs:
            for n in {name.strip().lower(), clean(name).lower()}:
                if n:
                    cands[n].add(code)
        for n, codes in sorted(cands.items()):
            add(n, max(codes, key=rank), kind)

    # names of languages with a two-letter code first ("Greek", "Persian"), then IANA primary names, the names the
    # shared data uses, secondary IANA names, in that order of trust
    add_names([(LC.get(two, normalize=False).display_name(), a3) for two, a3 in two_to_three.items()], "name")
    add_names([(info["desc"][0], code) for code, info in three.items()], "name")
    data_pairs = []
    for name, raw in _data_names():
        key = raw.lower()
        code = aliases.get(key, (None,))[0]
        if code:
            data_pairs.append((name, code))
    add_names(data_pairs, "data_name")
    add_names([(d, code) for code, info in three.items() for d in info["desc"][1:]], "name_other")

    def write_langs(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)

    def write_aliases(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["alias", "code", "kind"])
            for alias, (code, kind) in sorted(aliases.items()):
                w.writerow([alias, code, kind])

    _atomic_write(LANGUAGES_CSV, write_langs)
    _atomic_write(ALIASES_CSV, write_aliases)
    print(f"wrote {LANGUAGES_CSV} ({len(rows)} languages) and {ALIASES_CSV} ({len(aliases)} aliases)")


# ---------------------------------------------------------------------------------------------------------------
# URIEL vectors (lang2vec 1.1.2 data) → features/data/uriel_vectors.npz + uriel_manifest.json

TYPO_SETS = (("syntactic", "S_"), ("phonological", "P_"), ("inventory", "INV_"))


def _reorder(npz, langs: np.ndarray) -> np.ndarray:
    pos = {str(lang): i for i, lang in enumerate(npz["langs"])}
    return npz["data"][[pos[str(lang)] for lang in langs]]


def macrolanguage_fallback(codes, set_cols: dict, values: np.ndarray, observed: np.ndarray, genetic: np.ndarray,
                           has_genetic: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """The macro fallback of `build_typology` (its docstring says why), for any typology table: per typological set
    (`set_cols`: name → column mask) a language takes its macrolanguage's `values`/`observed` columns, and its
    `genetic` row when it has none (`has_genetic`). Returns the three tables and the fallbacks taken, for the stats.
    Shared by the URIEL build here and the URIEL+ build (features/build_urielplus.py)."""
    from features.languages import LANGUAGES_CSV, MACROLANGUAGE_POLICY

    idx = {str(c): i for i, c in enumerate(codes)}
    macro_of: dict[str, str] = {}
    with open(LANGUAGES_CSV, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["macro"]:
                macro_of[row["code"]] = row["macro"]
    targets = {t: m for m, t in MACROLANGUAGE_POLICY.items() if m in idx and t in idx}
    fallbacks: dict[str, list[str]] = defaultdict(list)
    values_out, obs_out, genetic_out = values.copy(), observed.copy(), genetic.copy()
    for code, i in idx.items():
        macro = targets.get(code) or macro_of.get(code)
        if macro is None or macro not in idx or macro == code:
            continue
        j = idx[macro]
        dominant = code in targets
        for name, cols in set_cols.items():
            own, theirs = observed[i, cols].sum(), observed[j, cols].sum()
            if (dominant and theirs > own) or (not dominant and own == 0 and theirs > 0):
                values_out[i, cols] = values[j, cols]
                obs_out[i, cols] = observed[j, cols]
                fallbacks[name].append(f"{code}<-{macro}")
        if not has_genetic[i] and has_genetic[j]:
            genetic_out[i] = genetic[j]
            fallbacks["genetic"].append(f"{code}<-{macro}")
    stats = {"macro_fallbacks": {k: len(v) for k, v in fallbacks.items()},
             "macro_fallbacks_policy_targets": {k: sorted(x for x in v if x.split("<-")[0] in targets)
                                                for k, v in fallbacks.items()}}
    return values_out, obs_out, genetic_out, stats


TYPOLOGY_PROXIES = DATA_DIR / "typology_proxies.csv"


def relative_fallback(langs: np.ndarray, knn: np.ndarray, observed: np.ndarray, fam: np.ndarray, geo: np.ndarray):
    """Languages of the record that lang2vec lacks, or whose family path it lacks, borrow from a named relative
    (features/data/typology_proxies.csv, one line per language with the reason).

    Why: a distance that is undefined is imputed as 'typical' (genetic: 1.0, no shared family), so Western Armenian,
    absent from lang2vec, was as far from Armenian as from Quechua; with a large record of its own as a source it
    became the predicted best source for Guarani, Wolof and K'iche' targets and not for Armenian. A language absent
    from lang2vec takes its relative's typology, coordinates and family path (its `observed` share stays 0: nothing
    was observed for it); a language without a family path takes the first `shared_levels` nodes of its relative's
    path (graded: it shares the family and its named branches, no deeper node)."""
    with open(TYPOLOGY_PROXIES, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    idx = {str(c): i for i, c in enumerate(langs)}
    added: list[str] = []
    paths_set: list[str] = []
    for row in rows:
        code, rel = row["code"], row["relative"]
        j = idx[rel]
        rel_nodes = np.flatnonzero(fam[j])
        # root→leaf order: an ancestor covers more languages than its descendants
        rel_nodes = rel_nodes[np.argsort(-fam[:, rel_nodes].sum(axis=0), kind="stable")]
        levels = len(rel_nodes) if row["shared_levels"] == "all" else int(row["shared_levels"])
        path = np.zeros(fam.shape[1], dtype=bool)
        path[rel_nodes[:levels]] = True
        if code not in idx:
            langs = np.append(langs, code)
            knn = np.vstack([knn, knn[j]])
            observed = np.vstack([observed, np.zeros_like(observed[j])])
            fam = np.vstack([fam, path])
            geo = np.vstack([geo, geo[j]])
            idx[code] = len(langs) - 1
            added.append(f"{code}<-{rel}")
        elif not fam[idx[code]].any():
            fam[idx[code]] = path
            paths_set.append(f"{code}<-{rel}[:{levels}]")
        else:
            raise ValueError(f"{TYPOLOGY_PROXIES.name}: {code} has a lang2vec row and a family path: drop its line")
    stats = {"relative_fallbacks": {"added_languages": added, "family_paths": paths_set,
                                    "table": TYPOLOGY_PROXIES.name}}
    return langs, knn, observed, fam, geo, stats


def build_typology() -> None:
    """Assemble the six URIEL feature sets the way lang2vec does, with the macrolanguage fallback, and store them.

    lang2vec: syntax_knn / phonology_knn / inventory_knn = feature_predictions.npz ("predicted", prefixes S_/P_/INV_),
    fam = family_features.npz, geo = geocoord_features.npz. Observed (non-imputed) values come from features.npz
    (any of its 10 sources ≠ -1) and give the per-pair `observed` share.

    Macro fallback (why: URIEL often files the observed WALS/Ethnologue data under the macrolanguage code):
      * a policy target (swh for swa, arb for ara, …) takes, per typological set, the macro row when the macro row
        has more observed values; its family path when its own is empty (ekk, lvs, nob have none);
      * any other member of a macrolanguage (ajp → ara, nno → nor) takes the macro row only for a set where it has
        no observed value at all, and the macro's family path only when its own is empty.
    Geographic vectors are always the language's own (every URIEL language has one).
    Then `relative_fallback`: languages of the record that lang2vec lacks, or whose family path it lacks, borrow from
    a named relative (features/data/typology_proxies.csv).
    """
    src = lang2vec_data_dir()
    feats_npz = np.load(src / "features.npz")
    langs = feats_npz["langs"].astype(str)
    feat_names = feats_npz["feats"].astype(str)
    observed_all = (feats_npz["data"] != -1).any(axis=2)  # lang × 289
    pred_npz = np.load(src / "feature_predictions.npz")
    assert (pred_npz["langs"].astype(str) == langs).all() and (pred_npz["feats"].astype(str) == feat_names).all()
    knn = pred_npz["data"][:, :, 0]
    assert set(np.unique(knn)) <= {0.0, 1.0}, "kNN predictions are expected binary"
    knn = knn.astype(bool)
    fam_npz = np.load(src / "family_features.npz")
    fam = _reorder(fam_npz, langs)[:, :, 0] > 0
    fam_names = np.array([f[2:] if f.startswith("F_") else f for f in fam_npz["feats"].astype(str)])
    geo_npz = np.load(src / "geocoord_features.npz")
    geo = _reorder(geo_npz, langs)[:, :, 0]
    geo_feats = geo_npz["feats"].astype(str)

    set_cols = {name: np.array([f.startswith(prefix) for f in feat_names]) for name, prefix in TYPO_SETS}
    assert sum(int(m.sum()) for m in set_cols.values()) == len(feat_names)
    knn_out, obs_out, fam_out, fallback_stats = macrolanguage_fallback(langs, set_cols, knn, observed_all, fam,
                                                                       fam.any(axis=1))
    langs, knn_out, obs_out, fam_out, geo, proxy_stats = relative_fallback(langs, knn_out, obs_out, fam_out, geo)

    # family features form a tree: order each language's nodes root→leaf (ancestors cover more languages), so two
    # languages share exactly a common prefix and genetic cosine = prefix / sqrt(len_a * len_b)
    node_size = fam_out.sum(axis=0)
    order = np.lexsort((np.arange(fam_out.shape[1]), -node_size))
    depth = int(fam_out.sum(axis=1).max())
    paths = np.full((len(langs), depth), -1, dtype=np.int16)
    parent: dict[int, int] = {}
    for i in range(len(langs)):
        nodes = [int(j) for j in order if fam_out[i, j]]
        paths[i, : len(nodes)] = nodes
        for a, b in zip(nodes, nodes[1:]):
            if parent.setdefault(b, a) != a:
                raise RuntimeError(f"family features of {langs[i]} are not a tree path")

    geo_u16 = np.rint(geo * 10000).astype(np.uint16)
    assert np.abs(geo_u16 / 10000 - geo).max() < 1e-6, "geo values are expected to have 4 decimals"
    arrays = {
        "codes": langs.astype("U3"),
        "feature_names": feat_names,
        "knn_bits": np.packbits(knn_out, axis=1),          # lang × ceil(289/8), kNN-completed typology (binary)
        "observed_bits": np.packbits(obs_out, axis=1),     # lang × ceil(289/8), observed in any URIEL source
        "n_features": np.array([len(feat_names)]),
        "set_syntactic": set_cols["syntactic"], "set_phonological": set_cols["phonological"],
        "set_inventory": set_cols["inventory"],
        "fam_paths": paths,                                 # lang × max depth, node ids root→leaf, -1 padded
        "fam_names": fam_names,
        "geo_u16": geo_u16,                                 # lang × 299, value × 10000 (exact: 4 decimals)
        "geo_feature_names": geo_feats,
    }
    from features.typology import MANIFEST_PATH, VECTORS_PATH

    from features.typology import content_digest

    def write_npz(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)

    _atomic_write(VECTORS_PATH, write_npz)
    import hashlib

    digest = content_digest(VECTORS_PATH)  # over the arrays, not the zip (whose timestamps change per rebuild)
    manifest = {
        "file": VECTORS_PATH.name, "version": digest[:12], "content_sha256": digest,
        "file_sha256": hashlib.sha256(VECTORS_PATH.read_bytes()).hexdigest(),
        "source": "lang2vec 1.1.2 bundled data: features.npz, feature_predictions.npz, family_features.npz, "
                  "geocoord_features.npz",
        "languages": int(len(langs)), "features": {k: int(v.sum()) for k, v in set_cols.items()},
        "genetic_nodes": int(fam.shape[1]), "genetic_max_depth": depth, "geo_dims": int(geo.shape[1]),
        "languages_without_family": int((~fam_out.any(axis=1)).sum()),
        **fallback_stats,
        **proxy_stats,
        "distances": "cosine distance 1 - u.v/(|u||v|); syntactic/phonological/inventory = kNN sets, featural = "
                     "their concatenation, genetic = family tree nodes, geographic = geocoord features",
    }
    _atomic_write(MANIFEST_PATH, lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=1) + "\n"))
    print(f"wrote {VECTORS_PATH} ({VECTORS_PATH.stat().st_size / 1e6:.1f} MB, version {digest[:12]})")


if __name__ == "__main__":  # pragma: no cover
    from features.languages import add_autonyms

    build_languages()
    add_autonyms()  # native names (中文, Deutsch): the same table `python -m features.languages --rebuild` writes
    build_collections()
    build_typology()
