"""features.languages: languages by their own names (autonyms), derived from CLDR into language_aliases.csv."""
from __future__ import annotations

import csv
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from features import languages as L
from features.errors import UnknownLanguage

ROOT = Path(__file__).resolve().parent.parent

AUTONYMS = {
    # the list
    "中文": "cmn", "العربية": "arb", "हिन्दी": "hin", "Deutsch": "deu", "Español": "spa", "Français": "fra",
    "Русский": "rus", "日本語": "jpn", "Kiswahili": "swh", "isiZulu": "zul", "Tiếng Việt": "vie", "Türkçe": "tur",
    # more scripts and the macrolanguage policy (zh → cmn, ar → arb, fa → pes, no → nob, et → ekk, sq → als, mn → khk)
    "한국어": "kor", "Português": "por", "Italiano": "ita", "Nederlands": "nld", "Polski": "pol", "Svenska": "swe",
    "Suomi": "fin", "Ελληνικά": "ell", "עברית": "heb", "فارسی": "pes", "বাংলা": "ben", "தமிழ்": "tam", "ไทย": "tha",
    "Українська": "ukr", "Bahasa Indonesia": "ind", "Norsk": "nob", "Norsk bokmål": "nob", "Norsk nynorsk": "nno",
    "Eesti": "ekk", "Shqip": "als", "Монгол": "khk", "پښتو": "pbu", "Oromoo": "gaz", "Runasimi": "quy",
    "ქართული": "kat", "հայերեն": "hye", "አማርኛ": "amh", "Magyar": "hun", "Čeština": "ces", "Română": "ron",
    # script / region variants CLDR names, and the everyday spellings it lacks
    "简体中文": "cmn", "繁體中文": "cmn", "粵語": "yue", "Schweizer Hochdeutsch": "deu", "español de México": "spa",
    "دری": "prs", "हिंदी": "hin", "汉语": "cmn", "普通话": "cmn", "Bahasa Melayu": "zsm",
    # without diacritics, other apostrophes, any case
    "Espanol": "spa", "francais": "fra", "TURKCE": "tur", "tieng viet": "vie", "o'zbek": "uzn", "o‘zbek": "uzn",
    "  DEUTSCH ": "deu",
}


@pytest.mark.parametrize("text,code", sorted(AUTONYMS.items()))
def test_autonym_resolves(text, code):
    assert L.resolve_code(text) == code
    assert L.resolve(text).code == code


def test_decomposed_unicode_meets_the_composed_table():
    for text in ("Tiếng Việt", "Español", "Türkçe", "Français"):
        nfd = unicodedata.normalize("NFD", text)
        assert nfd != text and L.resolve_code(nfd) == L.resolve_code(text)


def _rows() -> list[dict]:
    with open(L.ALIASES_CSV, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_autonyms_never_steal_an_existing_spelling():
    # CLDR's autonym equals another language's code or name here: the existing meaning stays
    assert L.resolve_code("Pulaar") == "fuc"        # CLDR `ff` (Fulah) calls itself Pulaar
    assert L.resolve_code("Maa") == "maa"           # CLDR `mas` (Masai) calls itself Maa; maa is a code
    assert L.resolve_code("Vlaams") == "vls"        # CLDR `nl-BE`
    assert L.resolve_code("Filipino") == "tgl" and L.resolve_code("German") == "deu"
    rows = _rows()
    autonyms = [r for r in rows if r["kind"].startswith("autonym")]
    assert len(autonyms) > 300
    for r in autonyms:
        alias = r["alias"]
        assert not (alias.isascii() and alias.isalpha() and len(alias) <= 3), alias   # never looks like a code
        assert alias == unicodedata.normalize("NFC", alias.strip().lower()), alias
        assert L.resolve_code(alias) == r["code"] == L.resolve_code(r["code"]), alias  # canonical, policy applied


def test_alias_table_is_current(monkeypatch):
    """The autonym rows are exactly what `autonym_aliases` derives from the other rows (a rebuild that dropped or
    changed them fails here; rebuild with `python -m features.languages --rebuild`)."""
    rows = _rows()
    base = {r["alias"]: r["code"] for r in rows if not r["kind"].startswith("autonym")}
    stored = {r["alias"]: (r["code"], r["kind"]) for r in rows if r["kind"].startswith("autonym")}
    monkeypatch.setattr(L, "_ALIASES", base)
    monkeypatch.setattr(L, "_CODE_ALIASES", {a: c for a, c in base.items()
                                             if a.isascii() and a.isalpha() and len(a) in (2, 3)})
    L._resolve_cached.cache_clear()
    try:
        derived = L.autonym_aliases(base)
    finally:
        L._resolve_cached.cache_clear()
    assert not set(derived) & set(base)
    assert derived == stored


def test_unknown_autonym_still_suggests():
    with pytest.raises(UnknownLanguage) as exc:
        L.resolve("Русскй")  # a typo in Cyrillic
    assert exc.value.suggestions[0] == "Russian (rus)"
    with pytest.raises(UnknownLanguage) as exc:
        L.resolve("Deutsh")
    assert exc.value.suggestions[0] == "German (deu)"


def test_search_finds_autonyms():
    assert L.search("中文")[0].code == "cmn"
    assert L.search("Deutsch")[0].code == "deu"
    assert L.search("日本")[0].code == "jpn"        # a prefix of 日本語
    assert L.search("español")[0].code == "spa"
    assert L.search("Kiswahili")[0].code == "swh"


def test_cli_search_by_autonym():
    xlt = Path(sys.executable).parent / "xlt"
    if not xlt.exists():
        pytest.skip("the xlt entry point is not installed beside this Python")
    out = subprocess.run([str(xlt), "languages", "--search", "中文"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "cmn" in out.stdout and "Mandarin Chinese" in out.stdout
