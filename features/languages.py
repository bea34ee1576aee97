"""One language resolver: every code or name a user or a data source writes becomes one canonical ISO 639-3 code.

Why one resolver: the published results in shared/data name languages in six dialects (ISO 639-1 `sw`, ISO 639-3 `swa`
or `swh`, Flores-200 `swh_Latn`, mC4/CLD3 quirks like `iw` and `fil`, UD codes like `orv`, English names). If two
modules resolved differently, a target's pretraining size or URIEL vector would silently miss its scores. Everything
goes through `resolve_code`.

Canonical form: the ISO 639-3 code of the *individual* language. A macrolanguage code (and the two-letter code that
names it) maps to its dominant individual language by `MACROLANGUAGE_POLICY`, so `sw`, `swa`, `swh`, `swh_Latn`,
`sw-KE` and `Swahili` are all `swh`.

Runtime reads two small CSVs under features/data/ (built by `python -m features.languages --rebuild` from the IANA
subtag registry shipped in `language_data`, langcodes' likely-subtags table, lang2vec's URIEL language list, the
names used in shared/data and CLDR's autonyms), so import is fast and does not touch langcodes' slow paths.
Languages resolve by their own names too (`中文` → cmn, `العربية` → arb, `Deutsch` → deu; see `autonym_aliases`).

Unknown input is hostile-input safe: text longer than MAX_NAME_CHARS is refused without a search, failures are
cached like successes, and the "did you mean" search is a length-windowed rapidfuzz ratio (~0.5-3 ms per new value).
"""
from __future__ import annotations

import csv
import re
import unicodedata
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from features.errors import UnknownLanguage

DATA_DIR = Path(__file__).resolve().parent / "data"
LANGUAGES_CSV = DATA_DIR / "languages.csv"
ALIASES_CSV = DATA_DIR / "language_aliases.csv"
COLLECTIONS_CSV = DATA_DIR / "language_collections.csv"   # ISO 639-5 groups (features.build_derived.build_collections)

# Macrolanguage (or near-duplicate code) → the individual language the data sources mean by it.
# Why: mC4, CC-100, XNLI, UD and Wikipedia write `sw`, `zh`, `ar`, `fa`… and mean the standard variety; URIEL and
# the LangRankPlus matrices write the ISO 639-3 macro (`swa`, `zho`) or the individual code (`swh`). Mapping both to
# one individual code makes corpus sizes, scores and typology meet. Each target exists in URIEL (lang2vec 1.1.2).
# Where the individual row is thinner than the macro row (e.g. ekk, lvs, nob have no family features; arb has 66
# observed typological values vs 284 for ara), features.typology falls back to the macro row (see that module).
MACROLANGUAGE_POLICY: dict[str, str] = {
    "swa": "swh",  # Swahili → Kiswahili (individual), the East African standard in XNLI/TyDiQA/mC4
    "zho": "cmn",  # Chinese → Mandarin: `zh` corpora and test sets are Standard (Mandarin) Chinese
    "ara": "arb",  # Arabic → Modern Standard Arabic
    "msa": "zsm",  # Malay → Standard Malay (Indonesian `ind` stays separate)
    "fas": "pes",  # Persian → Iranian Persian (Dari `prs` stays separate)
    "est": "ekk",  # Estonian → Standard Estonian
    "lav": "lvs",  # Latvian → Standard Latvian
    "uzb": "uzn",  # Uzbek → Northern Uzbek
    "nor": "nob",  # Norwegian → Bokmål (UD `no` and mC4 `no` are Bokmål; Nynorsk `nno` stays separate)
    "aze": "azj",  # Azerbaijani → North Azerbaijani (Latin-script standard of Azerbaijan)
    "kur": "kmr",  # Kurdish → Northern Kurdish / Kurmanji (Sorani `ckb` stays separate)
    "sqi": "als",  # Albanian → Tosk, the standard
    "mon": "khk",  # Mongolian → Halh
    "ori": "ory",  # Odia
    "pus": "pbu",  # Pashto → Northern Pashto
    "yid": "ydd",  # Yiddish → Eastern Yiddish
    "grn": "gug",  # Guarani → Paraguayan Guarani
    "que": "quy",  # Quechua → Ayacucho Quechua
    "mlg": "plt",  # Malagasy → Plateau Malagasy (the standard)
    "orm": "gaz",  # Oromo → West Central Oromo
    "nep": "npi",  # Nepali (macro) → Nepali (individual)
    "kom": "kpv",  # Komi → Komi-Zyrian (Komi-Permyak `koi` stays separate)
    "kok": "gom",  # Konkani → Goan Konkani
    "aym": "ayr",  # Aymara → Central Aymara
    "iku": "ike",  # Inuktitut → Eastern Canadian Inuktitut
    "kau": "knc",  # Kanuri → Central Kanuri
    "hmn": "hnj",  # Hmong (mC4/CLD3 `hmn`) → Hmong Njua: the member with URIEL data (mww has 3 observed values)
    "fil": "tgl",  # not a macrolanguage: Filipino is standardised Tagalog; mC4 writes `fil`, XTREME/UD write `tl`
}

# Two-letter codes and codes that left the standard, as data sources still write them (mC4/CLD3, Wikipedia, UD).
_LEGACY = {"iw": "heb", "jw": "jav", "in": "ind", "ji": "ydd", "mo": "ron", "sh": "hbs"}

# Languages whose likely script is not Latin but which have an established Latin orthography, so `xx-Latn` names the
# language itself. For any other language `-Latn` is a romanisation (mC4's `hi-Latn`, `ru-Latn`, `zh-Latn`…): a
# different input distribution that must not be merged into the language's own rows, so it is refused.
_LATIN_ALSO = frozenset({"srp", "hbs", "kaz", "uig", "tat", "bak", "crh", "kaa", "tuk", "uzn", "azj", "kmr", "bos",
                         "mol", "ron", "kir", "tgk", "hau", "som", "swh", "zsm", "ind", "jav", "sun", "vie", "tur"})

_SPLIT = re.compile(r"[-_]")


@dataclass(frozen=True)
class Language:
    """One canonical language: ISO 639-3 code, English name, likely ISO 15924 script, two-letter code if any."""

    code: str
    name: str
    script: str
    iso1: str | None

    def label(self) -> str:
        return f"{self.name} ({self.code})"


def _load() -> tuple[dict[str, Language], dict[str, str], dict[str, str], dict[str, int]]:
    """Read the derived tables: code → Language, alias (lower-case) → code, code → macrolanguage code, code → URIEL
    values observed (how well documented a language is: orders suggestions)."""
    langs: dict[str, Language] = {}
    macro: dict[str, str] = {}
    aliases: dict[str, str] = {}
    observed: dict[str, int] = {}
    if not LANGUAGES_CSV.exists():  # only while `--rebuild` creates them
        return langs, aliases, macro, observed
    with open(LANGUAGES_CSV, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            langs[row["code"]] = Language(row["code"], row["name"], row["script"], row["iso1"] or None)
            if row["macro"]:
                macro[row["code"]] = row["macro"]
            observed[row["code"]] = int(row["uriel_observed"] or 0)
    with open(ALIASES_CSV, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            aliases[row["alias"]] = row["code"]
    return langs, aliases, macro, observed


_LANGS, _ALIASES, MACRO_OF, _OBSERVED = _load()
# Codes a user may write: every ISO 639-3 code in the table, two-letter codes, ISO 639-2/B codes (only these may be
# the first subtag of a BCP-47 / Flores tag; names may not).
_CODE_ALIASES = {a: c for a, c in _ALIASES.items() if a.isascii() and a.isalpha() and len(a) in (2, 3)}


def _canonical(code: str) -> str:
    return MACROLANGUAGE_POLICY.get(code, code)


def _lookup_code(sub: str) -> str | None:
    code = _CODE_ALIASES.get(sub)
    return _canonical(code) if code else None


def _resolve_tag(text: str) -> str | None:
    """BCP-47 (`zh-Hans`, `sw-KE`, `sr-Latn`, `zh-yue`) and Flores-200 (`swh_Latn`) tags; None if not a tag."""
    parts = [p for p in _SPLIT.split(text) if p]
    if len(parts) < 2:
        return None
    code = _lookup_code(parts[0].lower())
    if code is None:
        return None
    rest = parts[1:]
    # extlang form (`zh-yue`, `ar-arz`): a three-letter second subtag naming a member of the first
    if len(rest[0]) == 3 and rest[0].isalpha():
        ext = _lookup_code(rest[0].lower())
        if ext is None:
            return None
        code, rest = ext, rest[1:]
    for sub in rest:
        if len(sub) == 4 and sub.isalpha():  # script
            script = sub.title()
            lang = _LANGS.get(code)
            if (script == "Latn" and lang is not None and lang.script not in ("Latn", "Zzzz")
                    and code not in _LATIN_ALSO):
                raise UnknownLanguage(
                    f"'{text}' is a romanised variant of {lang.name} ({code}), not a language of its own; "
                    f"write '{code}' for {lang.name} in its usual script",
                    suggestions=[lang.label()])
        elif (len(sub) == 2 and sub.isalpha()) or (len(sub) == 3 and sub.isdigit()):  # region
            continue
        elif 5 <= len(sub) <= 8 or (len(sub) == 4 and sub[0].isdigit()):  # variant (`tarask`, `1996`)
            continue
        else:
            return None
    return code


# Longest input the resolver looks at: every alias is shorter (the longest, an IANA name, has 58 characters; a test
# keeps it so). Longer text is refused at once, without fuzzy matching, and never enters a cache: a CSV cell of 2,000
# characters of garbage must cost microseconds, not the half second a fuzzy search over 16k aliases costs on it.
MAX_NAME_CHARS = 80
_NO_MATCH_HINT = ("no close match; write an ISO 639 code ('sw', 'swh'), a BCP-47 tag ('sw-KE') or a name in English "
                  "or in the language itself ('Swahili', 'Kiswahili')")
_WORDS = re.compile(r"[^\W\d_]{3,}")


class _Miss(NamedTuple):
    """A cached failure: the message, suggestions known without fuzzy search, and whether to search for more."""

    message: str
    suggestions: tuple[str, ...] = ()
    fuzzy: bool = True


@lru_cache(maxsize=1)
def _matcher() -> tuple[list[str], list[str], list[int], frozenset[str]]:
    """Fuzzy candidates (built on the first unknown input): aliases sorted by length, their canonical codes, their
    lengths, and the languages with a two-letter code (the well-known ones, which win ties: `Hindy` is Hindi before
    Hadiyya)."""
    pairs = sorted((len(a), a, _canonical(c)) for a, c in _ALIASES.items() if _canonical(c) in _LANGS)
    return ([a for _n, a, _c in pairs], [c for _n, _a, c in pairs], [n for n, _a, _c in pairs],
            frozenset(c for c, lang in _LANGS.items() if lang.iso1))


def _fuzzy(key: str, cutoff: float = 60.0, per_query: int = 30) -> dict[str, float]:
    """Canonical code → best similarity (0-100, +4 for well-known languages) of `key` to any of its aliases.

    Bounded work: normalised Indel similarity (rapidfuzz `ratio`, bit-parallel: ≤ 0.6 ms over all aliases) on the
    whole key; for input of two to four words also the sorted-token ratio, and for any multi-word input each of the
    first three words (a word match scores 8 less). Each query only meets aliases of a length that can reach the
    cutoff (ratio ≤ 2·min(n, m)/(n + m)). No partial-string scorer (the old WRatio): it is 10-40x slower on long input
    and ranks one-letter aliases first (`Englsh` → `E (eee)`).
    """
    from rapidfuzz import fuzz, process  # only on the error path: keeps import fast

    aliases, codes, lengths, known = _matcher()
    best: dict[str, float] = {}
    p = cutoff / 100.0

    def take(query: str, penalty: float, scorer=fuzz.ratio) -> None:
        n = len(query)
        lo = bisect_left(lengths, int(n * p / (2.0 - p)))
        hi = bisect_right(lengths, int(n * (2.0 - p) / p) + 1)
        for _alias, score, i in process.extract(query, aliases[lo:hi], scorer=scorer, limit=per_query,
                                                score_cutoff=cutoff):
            code = codes[lo + i]
            score = score - penalty + (4.0 if code in known else 0.0)
            if score > best.get(code, -1.0):
                best[code] = score

    take(key, 0.0)
    words = _WORDS.findall(key)
    if len(words) > 1:
        if len(words) <= 4:  # a reordered name ("Chinese Mandarin"); longer text is not one, skip the 1.7 ms
            take(key, 0.0, fuzz.token_sort_ratio)
        for word in words[:3]:
            take(word, 8.0)
    return best


@lru_cache(maxsize=8192)
def _suggest(key: str, limit: int = 5) -> tuple[str, ...]:
    """Labels of the closest languages to a normalised key (cached: the same bad value costs once per process)."""
    if not key or len(key) > MAX_NAME_CHARS:
        return ()
    best = _fuzzy(key)
    return tuple(_LANGS[c].label() for c in sorted(best, key=lambda c: (-best[c], c))[:limit])


def _key(text: str) -> str:
    """Lookup form: stripped, lower-case, Unicode NFC (a decomposed `Tiếng Việt` meets the table's composed one)."""
    key = text.strip().lower()
    return key if key.isascii() else unicodedata.normalize("NFC", key)


@lru_cache(maxsize=65536)
def _resolve_cached(text: str) -> str | _Miss:
    """Canonical code of stripped `text`, or the cached failure (so a bad value is looked up once per process)."""
    key = _key(text)
    if not key:
        return _Miss("empty language: give an ISO code (e.g. 'sw', 'swh') or an English name ('Swahili')", (), False)
    code = _ALIASES.get(key)
    if code is None:
        try:
            code = _resolve_tag(text)
        except UnknownLanguage as err:  # a romanised variant: its suggestion is certain, no search
            return _Miss(err.message, tuple(err.suggestions), False)
    if code is None and "(" in key:  # "Chinese (Simplified)", "Swahili (individual language)": names only
        head = key.split("(", 1)[0].strip()
        if head not in _CODE_ALIASES:
            code = _ALIASES.get(head)
    if code is None:
        group = _collections().get(key)
        if group is not None:  # an ISO 639-5 group (AmericasNLI's `nah`, `oto`): name its languages, no fuzzy guess
            members = _collection_members(group)
            return _Miss(f"'{text}' is a group of languages (ISO 639-5: {group}), not one language: give one of its "
                         f"languages" + (" (the best-documented ones are suggested)" if members else ""),
                         members, False)
        return _Miss(f"unknown language '{text}'")
    return _canonical(code)


@lru_cache(maxsize=1)
def _collections() -> dict[str, str]:
    """ISO 639-5 collection code → its name ('nah' → 'Nahuatl languages'); empty without the derived table."""
    if not COLLECTIONS_CSV.exists():
        return {}
    with open(COLLECTIONS_CSV, newline="", encoding="utf-8") as fh:
        return {r["code"]: r["name"] for r in csv.DictReader(fh)}


@lru_cache(maxsize=128)
def _collection_members(group: str, limit: int = 5) -> tuple[str, ...]:
    """Labels of up to `limit` languages of a collection: those under the URIEL family node of its name ('Slavic
    languages' → node 'Slavic'), else those whose name holds it ('Nahuatl languages' → '… Nahuatl'; 'Otomian' →
    '… Otomi'), best documented first (most URIEL values observed), then by code."""
    from features import typology

    stem = group.removesuffix(" languages").strip()
    store = typology._store()
    names = [str(n).lower() for n in store.fam_names]
    node = {i for i, n in enumerate(names) if n == stem.lower()}
    codes: list[str] = []
    if node:
        codes = [str(c) for c, path in zip(store.codes, store.paths) if node & set(int(x) for x in path if x >= 0)]
    if not codes:
        words = {stem.lower()} | ({stem.lower()[:-2]} if stem.lower().endswith("an") and len(stem) > 5 else set())
        codes = [c for c, lang in _LANGS.items() if any(w in lang.name.lower().replace("-", " ").split()
                                                            or w in lang.name.lower() for w in words)]
    codes = [c for c in codes if c in _LANGS]
    best = sorted(codes, key=lambda c: (-_OBSERVED.get(c, 0), c))[:limit]
    return tuple(_LANGS[c].label() for c in best)


def _lookup(text: str) -> str | None:
    """Canonical code or None, no suggestions (search() and the build step)."""
    if not isinstance(text, str) or len(text) > MAX_NAME_CHARS and len(text.strip()) > MAX_NAME_CHARS:
        return None
    out = _resolve_cached(text.strip())
    return out if isinstance(out, str) else None


def resolve_code(text: str, field: str = "language", *, suggest: bool = True) -> str:
    """Canonical ISO 639-3 code for any accepted spelling; raises UnknownLanguage with the closest matches.

    lru-cached on the stripped string, failures included, so a million-row batch pays once per distinct value. Only
    `str` is accepted: a float NaN from pandas must not become the string 'nan' (which is Min Nan Chinese). Text longer
    than MAX_NAME_CHARS is refused at once. `suggest=False` skips the fuzzy "did you mean" search (~1-4 ms per new
    value): a batch engine can ask for suggestions only for the first N distinct unknown values of a file.
    """
    if not isinstance(text, str):
        raise UnknownLanguage(f"language must be text, got {type(text).__name__} {text!r}", field=field)
    if len(text) > MAX_NAME_CHARS:
        stripped = text.strip()
        if len(stripped) > MAX_NAME_CHARS:
            raise UnknownLanguage(f"unknown language '{stripped[:40]}…' ({len(stripped)} characters): a language "
                                  f"code or name has at most {MAX_NAME_CHARS}", field=field)
        text = stripped
    out = _resolve_cached(text.strip())
    if isinstance(out, str):
        return out
    if not out.fuzzy:
        raise UnknownLanguage(out.message, field=field, suggestions=list(out.suggestions))
    if not suggest:
        raise UnknownLanguage(out.message, field=field)
    suggestions = _suggest(_key(text))
    message = out.message if suggestions else f"{out.message}: {_NO_MATCH_HINT}"
    raise UnknownLanguage(message, field=field, suggestions=list(suggestions))


def resolve(text: str, field: str = "language", *, suggest: bool = True) -> Language:
    """The canonical `Language` for any accepted spelling (see module doc); raises UnknownLanguage."""
    return _LANGS[resolve_code(text, field, suggest=suggest)]


def get(code: str) -> Language:
    """The `Language` record of an already-canonical code (KeyError if it is not one)."""
    return _LANGS[code]


def all_languages() -> list[Language]:
    """Every canonical language (codes the macrolanguage policy redirects are left out), sorted by code."""
    return [lang for code, lang in sorted(_LANGS.items()) if code not in MACROLANGUAGE_POLICY]


def search(query: str, limit: int | None = 20) -> list[Language]:
    """Languages matching `query`: exact resolution first, then code/name prefix, substring, then fuzzy matches.

    Names match in English and in the language itself (`中文`, `Deutsch`). An empty query returns every canonical
    language (GET /languages?search= lists all); a query longer than any name matches nothing.
    """
    q = _key(query or "")
    if not q:
        return all_languages()
    if len(q) > MAX_NAME_CHARS:
        return []
    ranked: dict[str, float] = {}

    def add(code: str, score: float) -> None:
        code = _canonical(code)
        if code in _LANGS and score > ranked.get(code, -1.0):
            ranked[code] = score

    exact = _lookup(query)
    if exact:
        add(exact, 1000.0)
    for alias, code in _ALIASES.items():
        if alias.startswith(q):
            add(code, 500.0 - len(alias))
        elif q in alias:
            add(code, 300.0 - len(alias))
    if len(ranked) < (limit or 20):
        for code, score in _fuzzy(q, cutoff=70.0, per_query=60).items():
            add(code, score)
    codes = sorted(ranked, key=lambda c: (-ranked[c], c))
    if limit:
        codes = codes[:limit]
    return [_LANGS[c] for c in codes]


# ---- build step: autonyms ------------------------------------------------------------------------------------------

# CLDR variant tags whose autonym names a different language here than the tag's first subtag: `fa-AF` is Dari (`prs`,
# kept apart from Iranian Persian by the policy), `az-Arab` is South Azerbaijani (`azb`, not the Latin-script `azj`).
_AUTONYM_TAGS = {"fa-AF": "prs", "az-Arab": "azb"}
# Common self-names CLDR does not list (its names are one per language: हिन्दी, not the everyday हिंदी; 中文, not 汉语),
# under the same no-steal rule.
_EXTRA_AUTONYMS = {"हिंदी": "hin", "汉语": "cmn", "漢語": "cmn", "普通话": "cmn", "普通話": "cmn", "华语": "cmn",
                   "華語": "cmn", "melayu": "zsm", "bahasa melayu": "zsm", "basa jawa": "jav", "yorùbá": "yor",
                   "عربي": "arb"}
# letters NFKD does not decompose, for the ASCII spelling of an autonym ("Türkçe" → "turkce", "norsk" stays)
_ASCII_LETTERS = str.maketrans({"ı": "i", "ə": "e", "ø": "o", "đ": "d", "ł": "l", "ß": "ss", "æ": "ae", "œ": "oe",
                                "‘": "'", "’": "'", "ʼ": "'", "ʻ": "'"})


def _autonym_forms(name: str) -> list[tuple[str, int]]:
    """Lookup keys of one autonym with their rank (0 as CLDR writes it, 1 its ASCII-apostrophe spelling, 2 without
    diacritics, only when that is plain ASCII: "Español" → "espanol", "Tiếng Việt" → "tieng viet")."""
    key = _key(name)
    out = [(key, 0)]
    plain = key.translate(_ASCII_LETTERS)
    if plain != key:
        out.append((plain, 1))
    folded = "".join(c for c in unicodedata.normalize("NFKD", plain) if not unicodedata.combining(c))
    if folded != plain and folded.isascii():
        out.append((folded, 2))
    return out


def autonym_aliases(existing: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Alias → (canonical code, kind) for every language's name in itself (CLDR, shipped in `language_data`).

    Why: users write `中文`, `العربية`, `Deutsch`, `Español`. Each autonym maps to what its CLDR tag resolves to, so
    the macrolanguage policy applies (`中文` → cmn, `العربية` → arb, `فارسی` → pes); a variant tag's autonym too
    (`简体中文`, `Schweizer Hochdeutsch`, `español de México`) unless `_AUTONYM_TAGS` says otherwise; tags that do not
    resolve (romanised `hi-Latn`, collections) give none. An autonym never steals: a spelling that already resolves
    (a code, an English name, a tag) keeps its meaning (`Pulaar` stays fuc, `Maa` stays the code maa, `Vlaams` stays
    vls). Nor may it look like a code (two or three ASCII letters), and one written for two languages at the same
    rank is left out as ambiguous.
    """
    from language_data.name_data import CODE_TO_NAMES

    cands: dict[str, dict[str, int]] = {}
    for tag, names in CODE_TO_NAMES.items():
        lang = tag.split("-")[0]
        if not lang.isalpha():  # region codes (001, 419)
            continue
        code = _AUTONYM_TAGS.get(tag) or _lookup(tag)
        if code is None:
            continue
        for in_lang, name in names.items():
            if in_lang.split("-")[0] != lang:
                continue
            for key, rank in _autonym_forms(name):
                rank = 2 * rank + ("-" in tag)  # the base tag's own name before a variant's
                codes = cands.setdefault(key, {})
                codes[code] = min(rank, codes.get(code, rank))
    for name, code in _EXTRA_AUTONYMS.items():
        for key, rank in _autonym_forms(name):
            cands.setdefault(key, {}).setdefault(code, 2 * rank + 1)
    out: dict[str, tuple[str, str]] = {}
    for key, codes in sorted(cands.items()):
        top = min(codes.values())
        winners = [c for c, r in codes.items() if r == top]
        if (len(winners) != 1 or not key or key in existing or _lookup(key) is not None or len(key) > MAX_NAME_CHARS
                or (key.isascii() and key.isalpha() and len(key) <= 3)):
            continue
        out[key] = (winners[0], "autonym" if top < 4 else "autonym_ascii")
    return out


def _reload() -> None:
    global _LANGS, _ALIASES, MACRO_OF, _OBSERVED, _CODE_ALIASES
    _LANGS, _ALIASES, MACRO_OF, _OBSERVED = _load()
    _CODE_ALIASES = {a: c for a, c in _ALIASES.items() if a.isascii() and a.isalpha() and len(a) in (2, 3)}
    for cached in (_resolve_cached, _suggest, _matcher, _collections, _collection_members):
        cached.cache_clear()


def add_autonyms() -> int:
    """Add `autonym_aliases` to the derived alias table (after features.build_derived.build_languages wrote it)."""
    import os
    import tempfile

    _reload()
    with open(ALIASES_CSV, newline="", encoding="utf-8") as fh:
        rows = {r["alias"]: (r["code"], r["kind"]) for r in csv.DictReader(fh) if not r["kind"].startswith("autonym")}
    _ALIASES.clear()
    _ALIASES.update({a: c for a, (c, _k) in rows.items()})
    _resolve_cached.cache_clear()
    added = autonym_aliases({a: c for a, (c, _k) in rows.items()})
    rows.update(added)
    fd, tmp = tempfile.mkstemp(dir=ALIASES_CSV.parent, suffix=".tmp")
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["alias", "code", "kind"])
        for alias, (code, kind) in sorted(rows.items()):
            w.writerow([alias, code, kind])
    os.replace(tmp, ALIASES_CSV)
    _reload()
    print(f"added {len(added)} autonyms to {ALIASES_CSV} ({len(rows)} aliases)")
    return len(added)


if __name__ == "__main__":  # pragma: no cover - build entry point
    import sys

    if "--rebuild" in sys.argv:
        from features.build_derived import build_languages

        build_languages()
        add_autonyms()
    else:
        print("usage: python -m features.languages --rebuild")
