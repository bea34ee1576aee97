"""Registry of the models, tasks and pretraining corpora xlt knows, with the aliases people type for them.

Why a registry: every entry point (HTTP, CLI, CSV batch, the training-table build) must turn "XLM-R Large",
"facebook/xlm-roberta-large" or "PAN-X" into one id, and the featurizer needs a few facts per id that are not
scores — parameter count, pretraining corpus, the usual English training-set size — and per-language corpus sizes.
Those facts live here, in one place, with where each number comes from.

Corpus sizes are derived from the raw copies in ``training_data/raw`` by ``python -m features.registry --rebuild``
into ``features/data/registry_corpus_sizes.csv`` and ``features/data/registry_train_sizes.csv`` (committed, so the
runtime never needs the raw files). One unit per corpus:

* ``mc4`` (mT5): billions of mT5 SentencePiece tokens, from the mT5 paper's Table 6 (our transcription, which has
  Malayalam 1.8B / Mongolian 2.7B; mayhewsw's mc4.csv swaps those two). Table 6 also gives the share of mT5
  pre-training data each language got at alpha=0.3: ``sampling_share("mc4")``.
* ``cc100`` (XLM-R, and T-ULRv6 as a proxy): GiB of uncompressed text (XLM-R paper Table 6 via mayhewsw). GiB rather
  than tokens because the token column is a whitespace count, meaningless for zh/ja/th. Languages missing there but
  present in LITMUS's byte list (sumeval2022) are filled from it (bytes / 2**30).
* ``wiki`` (mBERT): GiB of tokenized Wikipedia text (mayhewsw, 2020-10-01 dump) for the languages marked
  "In mBERT? = y" only — a proxy for mBERT's 2018 dump, and restricted so that ``corpus_languages("mbert")`` is
  mBERT's language list rather than every Wikipedia.

Several raw codes can resolve to one canonical ISO 639-3 code (``zh`` simplified + traditional rows, two Burmese
rows in CC-100, ``no``/``nb``...): their sizes are summed. Romanized variants (``*-Latn``, rows without a code such
as "Hindi Romanized") and ``und`` are skipped: they are the same language in another script and counting them would
inflate the language's native-script size. ``corpus_share`` divides by the corpus total over *all* rows (including
the skipped ones), so it is the language's fraction of the whole corpus.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from features.errors import BadValue, UnknownModel, UnknownTask

DATA_DIR = Path(__file__).resolve().parent / "data"
CORPUS_SIZES_FILE = DATA_DIR / "registry_corpus_sizes.csv"
TRAIN_SIZES_FILE = DATA_DIR / "registry_train_sizes.csv"
RAW_DIR = Path(__file__).resolve().parent.parent / "training_data" / "raw"

TASK_TYPES: tuple[str, ...] = ("classification", "pos", "ner", "qa", "parsing", "mt", "el")
CORPORA: tuple[str, ...] = ("mc4", "cc100", "wiki")
CORPUS_UNITS: dict[str, str] = {"mc4": "B tokens", "cc100": "GiB", "wiki": "GiB"}


@dataclass(frozen=True)
class ModelSpec:
    """A pretrained multilingual model. ``n_params`` is None when the size is unknown (``mt5``, ``xlm-r``,
    ``tulrv6-large``): never guess it here; the featurizer may impute a family median and must say so."""

    id: str
    family: str  # "mt5" | "xlm-r" | "mbert" | "tulrv6"
    n_params: float | None
    corpus: str  # "mc4" | "cc100" | "wiki"
    aliases: tuple[str, ...] = ()
    size: str | None = None  # "small" | "base" | "large" | "xl" | "xxl" | None (unknown)
    note: str = ""


@dataclass(frozen=True)
class TaskSpec:
    """A downstream task. ``train_size`` is the usual English training-set size (the default ``source_size`` when a
    query names a single source without a size); None for ad-hoc tasks and where no single size exists."""

    id: str
    task_type: str
    metric: str
    train_size: int | None
    aliases: tuple[str, ...] = ()
    description: str = ""
    train_size_note: str = ""
    adhoc: bool = False
    chance: float = 0.0  # score of a guess that learned nothing (uniform over the labels); the floor of predictions
    observed: bool = True  # the training data holds transfer results of it (else it is served from its type alone)


_MT5_NOTE = "mT5 paper (Xue et al. 2021) gives about 300M/580M/1.2B/3.7B/13B parameters"
_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("mt5-small", "mt5", 300e6, "mc4", ("mt5 small", "google/mt5-small", "mt5s"), "small", _MT5_NOTE),
    ModelSpec("mt5-base", "mt5", 580e6, "mc4", ("mt5 base", "google/mt5-base", "mT5-Base"), "base", _MT5_NOTE),
    ModelSpec("mt5-large", "mt5", 1.2e9, "mc4", ("mt5 large", "google/mt5-large", "mT5-Large"), "large", _MT5_NOTE),
    ModelSpec("mt5-xl", "mt5", 3.7e9, "mc4", ("mt5 xl", "google/mt5-xl", "mT5-XL"), "xl", _MT5_NOTE),
    ModelSpec("mt5-xxl", "mt5", 13e9, "mc4", ("mt5 xxl", "google/mt5-xxl", "mT5-XXL"), "xxl", _MT5_NOTE),
    ModelSpec("mt5", "mt5", None, "mc4", ("mT5", "google/mt5"), None,
              "size unknown (e.g. LangRankPlus matrices do not say which mT5 they fine-tuned)"),
    ModelSpec("xlm-r-base", "xlm-r", 270e6, "cc100",
              ("xlm-roberta-base", "facebook/xlm-roberta-base", "XLM-R Base", "xlmr-base", "xlmr base"), "base",
              "XLM-R paper (Conneau et al. 2020): 270M parameters"),
    ModelSpec("xlm-r-large", "xlm-r", 550e6, "cc100",
              ("xlm-roberta-large", "facebook/xlm-roberta-large", "XLM-R Large", "xlmr-large", "xlmrlarge"), "large",
              "XLM-R paper (Conneau et al. 2020): 550M parameters"),
    ModelSpec("xlm-r-xl", "xlm-r", 3.5e9, "cc100",
              ("xlm-roberta-xl", "facebook/xlm-roberta-xl", "XLM-R XL", "xlmr-xl", "xlmrxl"), "xl",
              "Goyal et al. 2021 (XLM-R XL and XXL): 3.5B parameters, CC-100; no transfer result of it is in the "
              "training data, so it is answered as xlm-r-large plus a size step fitted on the record's mT5 large → "
              "XL → XXL steps (predictor/size_steps.py)"),
    ModelSpec("xlm-r-xxl", "xlm-r", 10.7e9, "cc100",
              ("xlm-roberta-xxl", "facebook/xlm-roberta-xxl", "XLM-R XXL", "xlmr-xxl", "xlmrxxl"), "xxl",
              "Goyal et al. 2021: 10.7B parameters, CC-100; like xlm-r-xl, not in the training data"),
    ModelSpec("xlm-r", "xlm-r", None, "cc100", ("XLMR", "XLM-R", "xlm-roberta", "facebook/xlm-roberta"), None,
              "size unknown; note SumEval's 'XLMR' files are XLM-R large (the build maps them explicitly)"),
    ModelSpec("mbert", "mbert", 178e6, "wiki",
              ("mBERT", "bert-base-multilingual-cased", "bert-base-multilingual-uncased", "mbert-base-cased",
               "multilingual-bert", "multilingual bert", "google/bert-base-multilingual-cased"), "base",
              "178M parameters as commonly reported (XTREME, Hu et al. 2020; mT5 paper's baseline rows)"),
    ModelSpec("tulrv6-large", "tulrv6", None, "cc100",
              ("TULRv6Large", "T-ULRv6 Large", "tulrv6", "t-ulrv6", "turing-ulr-v6-large", "tulr-v6-large"), "large",
              "Microsoft Turing ULR v6 large: parameter count not published in any source we hold "
              "(mayhewsw models.csv does not list it), so None. Its per-language monolingual corpus is not published "
              "either; it continues the XLM-R/InfoXLM line of CommonCrawl-based encoders, so CC-100 sizes are used as "
              "the closest available proxy for its pretraining data."),
)

_TASKS: tuple[TaskSpec, ...] = (
    TaskSpec("xnli", "classification", "accuracy", 392_702, ("XNLI", "mnli-xnli", "xnli-mnli"),
             "Cross-lingual NLI (Conneau et al. 2018); English training data = MultiNLI", "MultiNLI train: 392,702",
             chance=100 / 3),
    TaskSpec("pawsx", "classification", "accuracy", 49_401, ("PAWS-X", "paws-x", "paws_x", "paws"),
             "Paraphrase identification (Yang et al. 2019)", "PAWS (Wiki) English train: 49,401", chance=50.0),
    TaskSpec("xquad", "qa", "F1", 87_599, ("XQuAD",),
             "Extractive QA, SQuAD v1.1 translated test sets (Artetxe et al. 2020)", "SQuAD v1.1 train: 87,599"),
    TaskSpec("mlqa", "qa", "F1", 87_599, ("MLQA",), "Extractive QA (Lewis et al. 2020), English train = SQuAD v1.1",
             "SQuAD v1.1 train: 87,599"),
    TaskSpec("tydiqa", "qa", "F1", 3_696,
             ("TyDiQA", "TyDiQA-GoldP", "TyDi QA-GoldP", "TyDi QA", "tydiqa_id", "tydiqa-goldp", "tydi"),
             "TyDi QA gold passage task (Clark et al. 2020)",
             "English GoldP train: 3,696 (per-language sizes in registry_train_sizes.csv, from SumEval's full-set "
             "counts)"),
    TaskSpec("wikiann", "ner", "F1", 20_000, ("WikiANN", "WikiAnn NER", "PAN-X", "panx", "pan_x", "wikiann-ner"),
             "NER on WikiANN with the Rahimi et al. (2019) splits (XTREME's PAN-X)", "English train: 20,000"),
    TaskSpec("udpos", "pos", "accuracy", 19_912, ("UDPOS", "udpos28", "UD-POS", "ud_pos", "pos-ud"),
             "Universal Dependencies UPOS tagging",
             "UD 2.8 English train sentences as used by de Vries et al. 2022 (udpos-sizes-train.csv): 19,912; "
             "EWT alone has 12,543; XTREME's UD 2.5 English train has 21,253", chance=100 / 17),
    TaskSpec("conll-ner", "ner", "F1", 14_041, ("CoNLL", "conll", "conll2003", "conll-2003", "conll_ner", "CoNLL NER"),
             "CoNLL-2002/2003 NER (en/de/nl/es)", "CoNLL-2003 English train: 14,041 sentences"),
    # Benchmarks with no transfer result in the training data: served from their task type like any unknown task,
    # but with their own chance floor, metric and English training-set size (the default source_size).
    TaskSpec("xcopa", "classification", "accuracy", 33_410, ("XCOPA", "copa"),
             "Causal commonsense reasoning, 2 choices (Ponti et al. 2020); English training data = SIQA then COPA",
             "Social IQa train: 33,410 (COPA's own train has 400)", chance=50.0, observed=False),
    TaskSpec("americasnli", "classification", "accuracy", 392_702, ("AmericasNLI", "americas-nli", "anli-americas"),
             "NLI in 10 indigenous languages of the Americas (Ebrahimi et al. 2022); English training data = MultiNLI",
             "MultiNLI train: 392,702", chance=100 / 3, observed=False),
    TaskSpec("xstorycloze", "classification", "accuracy", 360, ("XStoryCloze", "storycloze", "x-storycloze"),
             "Story ending choice, 2 choices (Lin et al. 2022)", "English train: 360", chance=50.0, observed=False),
    TaskSpec("sib200", "classification", "accuracy", 701, ("SIB-200", "sib-200", "sib"),
             "Topic classification, 7 topics, 205 languages (Adelani et al. 2024)", "train: 701", chance=100 / 7, observed=False),
    TaskSpec("masakhaner", "ner", "F1", 14_041, ("MasakhaNER", "masakhaner2", "MasakhaNER 2.0", "masakha-ner"),
             "NER in African languages (Adelani et al. 2021, 2022)",
             "default source: CoNLL-2003 English train, 14,041 sentences", observed=False),
    # LangRank (Lin et al. 2019) peer tasks: pre-transformer models, kept in peer_langrank.csv, not observations.
    TaskSpec("langrank-pos", "pos", "accuracy", None, ("tsfpos", "langrank_pos"),
             "LangRank POS transfer (BiLSTM tagger), peer data", "per-pair sizes in the data"),
    TaskSpec("langrank-el", "el", "accuracy", None, ("tsfel", "langrank_el"),
             "LangRank entity linking transfer, peer data", "per-pair sizes in the data"),
    TaskSpec("langrank-parsing", "parsing", "accuracy", None, ("tsfparsing", "langrank_parsing"),
             "LangRank dependency parsing transfer, peer data", "per-pair sizes in the data"),
    TaskSpec("langrank-mt", "mt", "BLEU", None, ("tsfmt", "langrank_mt"),
             "LangRank MT transfer (into English), peer data", "per-pair sizes in the data"),
)

# Chance level per task type, for tasks the registry does not know: UPOS has 17 tags; NER and QA F1 start at 0;
# a classification task's chance depends on its number of classes, which an ad-hoc query does not give (so 0).
CHANCE_BY_TYPE = {"pos": 100 / 17, "ner": 0.0, "qa": 0.0, "classification": 0.0}
# What a model id without a size means when a user types it: the size most published results of the family use
# (XTREME and SumEval report XLM-R large; mT5-base is the size most fine-tuned in practice). The unsized ids stay for
# published data whose size is not stated (LangRankPlus), never for user queries.
SIZED_DEFAULT = {"xlm-r": "xlm-r-large", "mt5": "mt5-base"}
_DEFAULT_METRIC = {"classification": "accuracy", "pos": "accuracy", "ner": "F1", "qa": "F1", "parsing": "LAS",
                   "mt": "BLEU", "el": "accuracy"}
_TASK_TYPE_ALIASES = {
    "classification": "classification", "text-classification": "classification", "nli": "classification",
    "sentence-classification": "classification", "pos": "pos", "pos-tagging": "pos", "upos": "pos",
    "ner": "ner", "named-entity-recognition": "ner", "token-classification-ner": "ner",
    "qa": "qa", "question-answering": "qa", "extractive-qa": "qa",
    "parsing": "parsing", "dependency-parsing": "parsing", "dep": "parsing",
    "mt": "mt", "translation": "mt", "machine-translation": "mt", "el": "el", "entity-linking": "el",
}


def _key(text: str) -> str:
    """Alias key: case-, space-, underscore-, hyphen- and dot-insensitive."""
    return re.sub(r"[\s_\-.]+", "", str(text).strip().lower())


def _model_keys(text: str) -> list[str]:
    """Keys to try for a model name: as typed, and without a hub organisation prefix (``facebook/``, ``google/``)."""
    t = str(text).strip()
    keys = [_key(t)]
    if "/" in t:
        keys.append(_key(t.split("/")[-1]))
    return keys


@lru_cache(maxsize=1)
def _model_index() -> dict[str, ModelSpec]:
    idx: dict[str, ModelSpec] = {}
    for m in _MODELS:
        for name in (m.id, *m.aliases):
            for k in _model_keys(name):
                prev = idx.setdefault(k, m)
                if prev.id != m.id:  # pragma: no cover - guards the tables above
                    raise AssertionError(f"model alias {name!r} is ambiguous: {prev.id} / {m.id}")
    return idx


@lru_cache(maxsize=1)
def _task_index() -> dict[str, TaskSpec]:
    idx: dict[str, TaskSpec] = {}
    for t in _TASKS:
        for name in (t.id, *t.aliases):
            prev = idx.setdefault(_key(name), t)
            if prev.id != t.id:  # pragma: no cover
                raise AssertionError(f"task alias {name!r} is ambiguous: {prev.id} / {t.id}")
    return idx


def _suggest(text: str, choices: dict[str, str], limit: int = 5) -> list[str]:
    """Closest ids by fuzzy match over all alias keys (``choices``: key -> id)."""
    from rapidfuzz import fuzz, process

    hits = process.extract(_key(text), list(choices), scorer=fuzz.WRatio, limit=limit * 4)
    out: list[str] = []
    for key, score, _ in hits:
        cid = choices[key]
        if score >= 50 and cid not in out:
            out.append(cid)
    return out[:limit]


def models() -> list[ModelSpec]:
    return list(_MODELS)


def tasks() -> list[TaskSpec]:
    return list(_TASKS)


def resolve_model(text: str, allow_unsized: bool = False) -> ModelSpec:
    """Model id or alias -> ModelSpec. Raises UnknownModel with the closest ids as suggestions.

    A family name without a size (``XLM-R``, ``xlmr``, ``mT5``) resolves to SIZED_DEFAULT (see `assumed_size`);
    only the published record (``allow_unsized=True``) keeps the unsized ids."""
    if text is None or not str(text).strip():
        raise UnknownModel("model is empty; give a model id such as 'xlm-r-large' or 'mt5-base'", field="model",
                           suggestions=[m.id for m in _MODELS])
    idx = _model_index()
    for k in _model_keys(str(text)):
        if k in idx:
            spec = idx[k]
            if spec.id in SIZED_DEFAULT and not allow_unsized:
                return idx[_key(SIZED_DEFAULT[spec.id])]
            return spec
    sugg = _suggest(str(text), {k: m.id for k, m in idx.items()})
    raise UnknownModel(f"unknown model {str(text)!r}; known models: {', '.join(m.id for m in _MODELS)}",
                       field="model", suggestions=sugg)


def assumed_size(text) -> str | None:
    """A note when the model a user typed has no size and a default size was assumed, else None."""
    if not isinstance(text, str):
        return None
    idx = _model_index()
    for k in _model_keys(text):
        spec = idx.get(k)
        if spec is not None and spec.id in SIZED_DEFAULT:
            return f"{text!r} names no size; assumed {SIZED_DEFAULT[spec.id]} (give the size to choose another)"
    return None


def typical_train_size(task_type: str) -> int:
    """Training-set size assumed for a task the registry does not know: the median English training-set size of the
    registered tasks of that type that the training data holds (10,000 for a type with none registered)."""
    sizes = sorted(t.train_size for t in _TASKS if t.task_type == task_type and t.train_size and t.observed)
    return int(sizes[len(sizes) // 2]) if sizes else 10_000


def _hyphenated(text: str) -> str:
    """Lower case, spaces and underscores as hyphens: the key of a task type alias and an ad-hoc task's id."""
    return re.sub(r"[\s_]+", "-", str(text).strip().lower())


def resolve_task_type(text: str) -> str:
    """Normalise a task type (``NER``, ``question-answering``...) to one of TASK_TYPES or raise UnknownTask."""
    k = _hyphenated(text)
    if k in _TASK_TYPE_ALIASES:
        return _TASK_TYPE_ALIASES[k]
    raise UnknownTask(f"unknown task_type {str(text)!r}; allowed: {', '.join(TASK_TYPES)}", field="task_type",
                      suggestions=list(TASK_TYPES))


def resolve_task(text: str, task_type: str | None = None) -> TaskSpec:
    """Task id or alias -> TaskSpec.

    An id the registry does not know is still served when a valid ``task_type`` comes with it: the answer is an
    ad-hoc TaskSpec (id = the normalised text, the type's typical training-set size and default metric). A task
    named by a task type alone ("NER", "POS", "question-answering") is such an ad-hoc task of that type: the
    question "which source for Swahili NER?" names no dataset, so it is served from the type's record and
    similarity, as a new task of the type. Without a type, or with a type outside TASK_TYPES, it raises
    UnknownTask (with suggestions / the allowed types).
    """
    if text is None or not str(text).strip():
        raise UnknownTask("task is empty; give a task id such as 'xnli' or 'wikiann'", field="task",
                          suggestions=[t.id for t in _TASKS])
    ttype = resolve_task_type(task_type) if task_type not in (None, "") else None
    spec = _task_index().get(_key(text))
    if spec is not None:
        if ttype is not None and ttype != spec.task_type:
            raise UnknownTask(f"task {spec.id!r} is of type {spec.task_type!r}, not {ttype!r}", field="task_type",
                              suggestions=[spec.task_type])
        return spec
    norm = _hyphenated(text)
    named = _TASK_TYPE_ALIASES.get(norm)
    if named is not None and ttype is not None and named != ttype:
        raise UnknownTask(f"task {str(text)!r} names the type {named!r}, not {ttype!r}", field="task_type",
                          suggestions=[named])
    ttype = ttype or named  # a task type's name as the task: a new task of that type
    if ttype is not None:
        size = typical_train_size(ttype)
        return TaskSpec(norm, ttype, _DEFAULT_METRIC[ttype], size, (), "ad-hoc task (not in the registry)",
                        f"not in the registry: typical {ttype} training-set size assumed ({size:,})", adhoc=True,
                        chance=CHANCE_BY_TYPE.get(ttype, 0.0))
    sugg = _suggest(str(text), {k: t.id for k, t in _task_index().items()})
    raise UnknownTask(f"unknown task {str(text)!r}; give one of {', '.join(t.id for t in _TASKS[:8])} or pass a "
                      f"task_type ({', '.join(TASK_TYPES)}) to use a new task", field="task", suggestions=sugg)


# ---------------------------------------------------------------------------------------------------- corpora
@lru_cache(maxsize=1)
def _corpus_table() -> dict[str, dict[str, tuple[float, float, float | None]]]:
    """corpus -> code -> (size, share, sampling_share)."""
    if not CORPUS_SIZES_FILE.exists():
        raise FileNotFoundError(f"{CORPUS_SIZES_FILE} is missing; run `python -m features.registry --rebuild`")
    out: dict[str, dict[str, tuple[float, float, float | None]]] = {}
    with open(CORPUS_SIZES_FILE, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            samp = float(row["sampling_share"]) if row["sampling_share"] else None
            out.setdefault(row["corpus"], {})[row["code"]] = (float(row["size"]), float(row["share"]), samp)
    return out


def _corpus_name(corpus: str) -> str:
    c = _key(corpus)
    c = {"cc100": "cc100", "wiki": "wiki", "wikipedia": "wiki", "mc4": "mc4"}.get(c)
    if c is None:
        raise BadValue(f"unknown corpus {corpus!r}; known: {', '.join(CORPORA)}", field="corpus",
                       suggestions=list(CORPORA))
    return c


def corpus_sizes(corpus: str) -> dict[str, float]:
    """Canonical ISO 639-3 code -> size in the corpus's unit (CORPUS_UNITS: mc4 B tokens, cc100/wiki GiB)."""
    return {k: v[0] for k, v in _corpus_table()[_corpus_name(corpus)].items()}


def corpus_share(corpus: str) -> dict[str, float]:
    """Canonical code -> fraction (0-1) of the whole corpus (denominator includes skipped romanized rows)."""
    return {k: v[1] for k, v in _corpus_table()[_corpus_name(corpus)].items()}


def sampling_share(corpus: str = "mc4") -> dict[str, float]:
    """mC4 only: fraction of mT5 pre-training examples per language (Table 6, alpha=0.3). Empty for other corpora."""
    return {k: v[2] for k, v in _corpus_table()[_corpus_name(corpus)].items() if v[2] is not None}


def corpus_languages(model_id: str) -> list[str]:
    """Languages present (size > 0) in the model's pretraining corpus: the default candidate list for /rank."""
    spec = resolve_model(model_id)
    return sorted(k for k, v in corpus_sizes(spec.corpus).items() if v > 0)


@lru_cache(maxsize=1)
def _train_size_table() -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    if TRAIN_SIZES_FILE.exists():
        with open(TRAIN_SIZES_FILE, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                out[(row["task"], row["code"])] = int(row["train_size"])
    return out


def train_size(task: str, language: str | None = None) -> int | None:
    """Training-set size of ``task`` in ``language`` when we hold a per-language number (TyDiQA-GoldP from SumEval's
    full-set counts, UD 2.8 from de Vries et al., WikiANN's Rahimi et al. split), else the task's English
    ``train_size`` when ``language`` is None or English, else None (unknown: never guessed)."""
    if language is None:
        return resolve_task(task).train_size
    from features.languages import resolve_code

    return train_sizes(task, [resolve_code(language)])[0]


def train_sizes(task: str, codes) -> list[int | None]:
    """`train_size` for many canonical language codes of one task: the task resolved once, the codes not at all
    (a ranking's candidates, already canonical)."""
    spec = resolve_task(task)
    table = _train_size_table()
    return [table.get((spec.id, code), spec.train_size if code == "eng" else None) for code in codes]


# ---------------------------------------------------------------------------------------------------- rebuild
def _atomic_write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(header)
            w.writerows(rows)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fmt(x: float) -> str:
    return f"{x:.10g}"


def rebuild(raw_dir: Path = RAW_DIR, out_dir: Path = DATA_DIR) -> dict[str, list[str]]:
    """Derive registry_corpus_sizes.csv and registry_train_sizes.csv from the raw copies. Returns notes: raw codes
    skipped (romanized / und) or unresolvable, per corpus."""
    import json

    from features.languages import resolve_code
    from features.errors import UnknownLanguage

    notes: dict[str, list[str]] = {}

    def canon(corpus: str, raw: str) -> str | None:
        raw = (raw or "").strip()
        if not raw or raw in {"-", "und"} or raw.endswith("-Latn"):
            notes.setdefault(f"{corpus}: skipped (romanized/und)", []).append(raw or "<blank>")
            return None
        try:
            return resolve_code(raw)
        except UnknownLanguage:
            notes.setdefault(f"{corpus}: unresolved code", []).append(raw)
            return None

    rows: list[list] = []

    def emit(corpus: str, sizes: dict[str, float], raw_codes: dict[str, list[str]], total: float, source: str,
             samp: dict[str, float] | None = None) -> None:
        for code in sorted(sizes):
            s = samp.get(code) if samp else None
            rows.append([corpus, code, _fmt(sizes[code]), CORPUS_UNITS[corpus], _fmt(sizes[code] / total),
                         "" if s is None else _fmt(s), "|".join(sorted(raw_codes[code])), source])

    # mC4: Table 6 transcription (fixes mayhewsw's ml/mn swap)
    sizes: dict[str, float] = {}
    samp: dict[str, float] = {}
    raws: dict[str, list[str]] = {}
    total = 0.0
    with open(raw_dir / "mt5_xue2021" / "mc4_table6_language_stats_transcribed.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            tok = float(r["tokens_B"])
            total += tok
            code = canon("mc4", r["iso_code"] or "")
            if code is None:
                continue
            sizes[code] = sizes.get(code, 0.0) + tok
            samp[code] = samp.get(code, 0.0) + float(r["mt5_sampling_pct"]) / 100.0
            raws.setdefault(code, []).append(r["iso_code"])
    emit("mc4", sizes, raws, total, "mT5 paper Table 6 (mt5_xue2021/mc4_table6_language_stats_transcribed.csv)", samp)

    # CC-100: mayhewsw GiB, fallback LITMUS bytes
    sizes, raws, total = {}, {}, 0.0
    with open(raw_dir / "pretraining_sizes" / "cc-100" / "cc-100.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            gib = float(r["Size (GiB)"])
            total += gib
            code = canon("cc100", r["ISO code"])
            if code is None:
                continue
            sizes[code] = sizes.get(code, 0.0) + gib
            raws.setdefault(code, []).append(r["ISO code"])
    with open(raw_dir / "sumeval2022" / "pretraining_sizes_xlmr_cc100.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            code = canon("cc100-litmus", r["lang"])
            if code is not None and code not in sizes:
                gib = float(r["cc100_bytes"]) / 2**30
                sizes[code] = gib
                total += gib
                raws[code] = [r["lang"] + "(litmus)"]
                notes.setdefault("cc100: filled from LITMUS bytes", []).append(r["lang"])
    emit("cc100", sizes, raws, total, "XLM-R paper Table 6 via mayhewsw cc-100.csv (+LITMUS bytes)")

    # Wikipedia for mBERT
    sizes, raws, total = {}, {}, 0.0
    with open(raw_dir / "pretraining_sizes" / "wiki" / "wiki.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if r["In mBERT?"].strip().lower() != "y":
                continue
            gib = float(r["Uncompressed Wiki Size (bytes)"].replace(",", "")) / 2**30
            total += gib
            code = canon("wiki", r["Wiki"])
            if code is None:
                continue
            sizes[code] = sizes.get(code, 0.0) + gib
            raws.setdefault(code, []).append(r["Wiki"])
    emit("wiki", sizes, raws, total, "mayhewsw wiki.csv (2020-10-01 dump, tokenized text), In mBERT? = y")

    _atomic_write_csv(out_dir / CORPUS_SIZES_FILE.name,
                      ["corpus", "code", "size", "unit", "share", "sampling_share", "raw_codes", "source"], rows)

    # per-language training-set sizes
    trows: dict[tuple[str, str], list] = {}
    with open(raw_dir / "xpos_devries2022" / "results" / "udpos-sizes-train.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if int(r["size"]) <= 0:
                continue
            code = canon("udpos-sizes", r["language"])
            if code is None:
                continue
            key = ("udpos", code)
            n = int(r["size"]) + (int(trows[key][2]) if key in trows else 0)
            trows[key] = ["udpos", code, n, "UD 2.8 train sentences (xpos udpos-sizes-train.csv)"]
    tydi: dict[str, int] = {}
    for name in ("TyDiQA_XLMR_ID.json", "TyDiQA_TULRv6Large_ID.json"):
        with open(raw_dir / "sumeval2022" / "train" / name, encoding="utf-8") as f:
            for entry in json.load(f):
                for lang, n in entry["train_config"].items():
                    tydi[lang] = max(tydi.get(lang, 0), int(n))
    for lang, n in tydi.items():
        code = canon("tydiqa-sizes", lang)
        if code is not None:
            trows[("tydiqa", code)] = ["tydiqa", code, n,
                                       "TyDiQA-GoldP train examples: largest count in SumEval train configs"]
    with open(raw_dir / "wikiann_rahimi2019" / "train_sizes.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            code = canon("wikiann-sizes", r["config"].replace("zh-yue", "yue").replace("zh-classical", "lzh"))
            if code is not None and ("wikiann", code) not in trows:
                trows[("wikiann", code)] = ["wikiann", code, int(r["train_size"]),
                                            "WikiANN train sentences, Rahimi et al. 2019 split (Hugging Face wikiann "
                                            "card; wikiann_rahimi2019/train_sizes.csv)"]
    _atomic_write_csv(out_dir / TRAIN_SIZES_FILE.name, ["task", "code", "train_size", "source"],
                      [trows[k] for k in sorted(trows)])
    _corpus_table.cache_clear()
    _train_size_table.cache_clear()
    return notes


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m features.registry", description=__doc__.split("\n\n")[0])
    p.add_argument("--rebuild", action="store_true", help="re-derive features/data/registry_*.csv from raw copies")
    args = p.parse_args(argv)
    if args.rebuild:
        notes = rebuild()
        for k, v in sorted(notes.items()):
            print(f"{k}: {', '.join(v)}")
        print(f"wrote {CORPUS_SIZES_FILE} and {TRAIN_SIZES_FILE}")
        return 0
    for m in _MODELS:
        print(f"{m.id:14s} {m.family:7s} {m.corpus:6s} {m.n_params}")
    for t in _TASKS:
        print(f"{t.id:18s} {t.task_type:15s} {t.metric:9s} {t.train_size}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
