"""One reader per raw source: each turns its files into a list of RawObs, in the source's own language codes.

Why separate from build.py: each reader encodes what one publication's table *means* (which model, which training
data, which scale), and nothing else. The build then applies the rules common to every source (canonical codes,
train_config, k, setting, dedup, anomalies) in one place. Readers never change a score: they only rescale fractions
to 0-100 and record the factor.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from features.registry import resolve_task, train_size

# Priority classes for conflicting duplicates (lower wins). See README "Duplicates and conflicts".
PRIMARY = 0  # the experiment's own authors released the number
REPRINT_PAPER = 1  # a peer-reviewed paper reprints someone else's number
REPRINT_README = 2  # a repository README reprints numbers (secondary transcription)


# Short origin ids written into observations.csv (the full citation is here and in the README).
ORIGINS: dict[str, str] = {
    "devries2022": "de Vries, Wieling & Nissim 2022 (ACL), wietsedv/xpos@4edb3a9 results/",
    "sumeval2022": "SumEval-2022 shared task training data, microsoft/Litmus@0f5c85b SumEval/data/train (MIT)",
    "xue2021": "Xue et al. 2021 (mT5, NAACL), Appendix B Tables 7-12, mT5 rows",
    "xue2021>hu2020": "Xue et al. 2021 Appendix B, mBERT baseline rows reprinted from Hu et al. 2020 (XTREME)",
    "xue2021>fang2020": "Xue et al. 2021 Appendix B, XLM-R (large) baseline rows reprinted from Fang et al. 2020",
    "langrankplus": "Swithord/langrankplus data/*.csv (score column f1_score)",
    "ernie-m-readme": "PaddlePaddle/ERNIE@5846cc3 ernie-m/README.md (reprints XLM-R, XTREME, InfoXLM paper numbers)",
    "fairseq-xlmr-readme": "facebookresearch/fairseq@6034aea examples/xlmr/README.md (XLM-R authors; MLQA)",
}


@dataclass
class RawObs:
    """One published score for one (model, task, training mix, target), before canonicalisation."""

    dataset: str
    dataset_file: str  # path relative to training_data/raw
    origin: str
    priority: int
    model: str  # registry id
    task: str  # registry id of the evaluation task
    train_task: str  # registry id of the task whose training data was used
    metric: str
    mix: dict[str, int]  # raw language code -> number of training examples
    target: str  # raw code
    score: float  # 0-100
    setting: str | None = None  # None = derive from the mix; else fixed by the source (translate-train...)
    variant: str = ""
    source_size_basis: str = "reported"
    target_data: str = "gold"  # what target-language examples in the mix are: gold | machine-translated
    raw_line: int = 0
    extra: dict = field(default_factory=dict)


def _rel(path: Path, raw_dir: Path) -> str:
    return path.relative_to(raw_dir).as_posix()


# ------------------------------------------------------------------------------------------------ xpos
XPOS_FILES = ("00630", "01250", "02500", "05000", "10000", "20000", "40000", "1epoch", "3epoch")


def read_xpos(raw_dir: Path) -> list[RawObs]:
    """de Vries et al. 2022: XLM-R base, UD 2.8 POS, 65 sources x 105 targets, 9 source-size variants.

    ``udpos-ft-NNNNN.csv``: n_samples = NNNNN source sentences, capped at the source's train size (sources with fewer
    sentences use their full train set) -> source_size = min(n, train size), basis ``capped_train_size``.
    ``udpos-ft-{1,3}epoch.csv``: the whole train set for 1 / 3 epochs -> source_size = full train size, basis
    ``full_train_size``. The file's budget is kept in ``variant`` (``n_samples=630`` / ``epochs=1``), because capped
    sources give identical train_configs across files with different scores.
    """
    base = raw_dir / "xpos_devries2022" / "results"
    sizes: dict[str, int] = {}
    with open(base / "udpos-sizes-train.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            sizes[r["language"]] = int(r["size"])
    out: list[RawObs] = []
    for tag in XPOS_FILES:
        path = base / f"udpos-ft-{tag}.csv"
        if tag.endswith("epoch"):
            budget, variant, basis = None, f"epochs={tag[0]}", "full_train_size"
        else:
            budget, variant, basis = int(tag), f"n_samples={int(tag)}", "capped_train_size"
        with open(path, encoding="utf-8") as f:
            for i, r in enumerate(csv.DictReader(f), start=2):
                src = r["lang_train"]
                full = sizes[src]
                n = full if budget is None else min(budget, full)
                out.append(RawObs(
                    dataset="xpos_devries2022", dataset_file=_rel(path, raw_dir),
                    origin="devries2022", priority=PRIMARY,
                    model="xlm-r-base", task="udpos", train_task="udpos", metric="accuracy",
                    mix={src: n}, target=r["lang_pred"], score=float(r["score"]), variant=variant,
                    source_size_basis=basis, raw_line=i))
    return out


# ------------------------------------------------------------------------------------------------ SumEval
SUMEVAL_FILES = {
    "XNLI_XLMR.json": ("xlm-r-large", "xnli", "xnli", "accuracy"),
    "XNLI_TULRv6Large.json": ("tulrv6-large", "xnli", "xnli", "accuracy"),
    "WikiANN_XLMR.json": ("xlm-r-large", "wikiann", "wikiann", "F1"),
    "UDPOS_XLMR.json": ("xlm-r-large", "udpos", "udpos", "accuracy"),
    "TyDiQA_XLMR_ID.json": ("xlm-r-large", "tydiqa", "tydiqa", "F1"),
    "TyDiQA_TULRv6Large_ID.json": ("tulrv6-large", "tydiqa", "tydiqa", "F1"),
    # _OOD: fine-tuned on TyDiQA-GoldP mixtures, evaluated on XQuAD -> task xquad, train_task tydiqa
    "TyDiQA_XLMR_OOD.json": ("xlm-r-large", "xquad", "tydiqa", "F1"),
    "TyDiQA_TULRv6Large_OOD.json": ("tulrv6-large", "xquad", "tydiqa", "F1"),
}


def read_sumeval(raw_dir: Path) -> list[RawObs]:
    """SumEval-2022 training split: one fine-tuning run per mixture, scores (fractions) per target."""
    out: list[RawObs] = []
    for name in sorted(SUMEVAL_FILES):
        model, task, train_task, metric = SUMEVAL_FILES[name]
        path = raw_dir / "sumeval2022" / "train" / name
        with open(path, encoding="utf-8") as f:
            entries = json.load(f)
        for j, e in enumerate(entries):
            mix = {l: int(n) for l, n in e["train_config"].items() if int(n) > 0}
            for tgt, s in e["eval_results"].items():
                out.append(RawObs(
                    dataset="sumeval2022", dataset_file=_rel(path, raw_dir),
                    origin="sumeval2022", priority=PRIMARY,
                    model=model, task=task, train_task=train_task, metric=metric, mix=mix, target=tgt,
                    score=float(s) * 100.0, raw_line=j, extra={"entry": j}))
    return out


# ------------------------------------------------------------------------------------------------ mT5 paper
MT5_MODELS = {("mT5", "Small"): "mt5-small", ("mT5", "Base"): "mt5-base", ("mT5", "Large"): "mt5-large",
              ("mT5", "XL"): "mt5-xl", ("mT5", "XXL"): "mt5-xxl", ("mBERT", "Base (cased)"): "mbert",
              ("XLM-R", "Large"): "xlm-r-large"}
MT5_TASKS = {"XNLI": "xnli", "PAWS-X": "pawsx", "WikiAnn NER": "wikiann", "XQuAD": "xquad", "MLQA": "mlqa",
             "TyDi QA-GoldP": "tydiqa"}
MT5_REPRINT_OF = {"mBERT": "xue2021>hu2020", "XLM-R": "xue2021>fang2020"}


def read_mt5(raw_dir: Path, dropped: list[dict]) -> list[RawObs]:
    """mT5 paper Appendix B per-language tables. Zero-shot = English training set only; translate-train = English +
    its machine translation into every target language of the task (the paper's variant, English included);
    in-language = multitask on the gold training data of all the task's languages. XLM-100 rows are dropped (model
    not in the registry) and reported in ``dropped``."""
    path = raw_dir / "mt5_xue2021" / "mt5_per_language_transcribed.csv"
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    langs: dict[tuple[str, str], set[str]] = {}
    for r in rows:
        langs.setdefault((r["task"], r["setting"]), set()).add(r["target_lang"])
    out: list[RawObs] = []
    for i, r in enumerate(rows, start=2):
        model = MT5_MODELS.get((r["model"], r["model_size"]))
        if model is None:
            dropped.append({"dataset": "mt5_xue2021", "dataset_file": _rel(path, raw_dir), "raw_line": i,
                            "model": r["model"], "task": r["task"], "target": r["target_lang"],
                            "score": r["score"], "reason": f"model {r['model']} ({r['model_size']}) is not in the "
                            "registry (the mT5 paper reprints XLM-100 as a baseline; xlt does not serve it)"})
            continue
        task = MT5_TASKS[r["task"]]
        spec = resolve_task(task)
        n_en = spec.train_size
        setting: str | None = None
        basis, tdata = "task_default", "gold"
        if r["setting"] == "zero-shot":
            mix = {"en": n_en}
        elif r["setting"] == "translate-train":
            # English train set + one machine translation of it per target language (same count each).
            mix = {l: n_en for l in langs[(r["task"], r["setting"])]}
            mix["en"] = n_en
            setting, tdata = "translate-train", "machine-translated"
        elif r["setting"] == "in-language":
            mix = {}
            for l in langs[(r["task"], r["setting"])]:
                n = train_size(task, l)
                mix[l] = n if n is not None else spec.train_size
            basis = "per_language_train_size" if task in PER_LANGUAGE_SIZES else "task_default"
            setting = "in-language-multitask"
        else:  # pragma: no cover - the file has only these three
            raise ValueError(f"{path}:{i}: unknown setting {r['setting']!r}")
        if r["model"] == "mT5":
            origin, prio = "xue2021", PRIMARY
        else:
            origin, prio = MT5_REPRINT_OF[r["model"]], REPRINT_PAPER
        out.append(RawObs(
            dataset="mt5_xue2021", dataset_file=_rel(path, raw_dir), origin=origin, priority=prio, model=model,
            task=task, train_task=task, metric=r["metric"], mix=mix, target=r["target_lang"],
            score=float(r["score"]), setting=setting, source_size_basis=basis, target_data=tdata, raw_line=i))
    return out


# Tasks whose sources fine-tune on their own language's standard train split, of a size the registry holds per
# language (features/data/registry_train_sizes.csv): TyDiQA-GoldP, and WikiANN's Rahimi et al. (2019) split, where a
# source has 100 to 20,000 sentences (Hindi 5,000, Swahili 1,000), not English's 20,000.
PER_LANGUAGE_SIZES = ("tydiqa", "wikiann")

# ------------------------------------------------------------------------------------------------ LangRankPlus
LRP_FILES = {"xnli_mt5.csv": ("mt5", "xnli", 100.0), "xnli_xlm-r.csv": ("xlm-r", "xnli", 100.0),
             "xquad_mt5.csv": ("mt5", "xquad", 1.0), "xquad_xlm-r.csv": ("xlm-r", "xquad", 1.0),
             "tydiqa_mt5.csv": ("mt5", "tydiqa", 1.0), "tydiqa_xlm-r.csv": ("xlm-r", "tydiqa", 1.0),
             "wikiann_mt5.csv": ("mt5", "wikiann", 100.0), "wikiann_xlm-r.csv": ("xlm-r", "wikiann", 100.0)}


def read_langrankplus(raw_dir: Path) -> list[RawObs]:
    """LangRankPlus full matrices: single source, model size unknown. The source's training-set size is not stated:
    TyDiQA sources get their GoldP train size and WikiANN sources their Rahimi et al. split's (registry), the others
    the task's usual size (basis task_default).
    The score column is ``f1_score`` in every file, XNLI included (where the other sources report accuracy): we keep
    the source's word, metric=F1, for all LangRankPlus rows."""
    out: list[RawObs] = []
    for name in sorted(LRP_FILES):
        model, task, factor = LRP_FILES[name]
        path = raw_dir / "langrankplus_matrices" / name
        spec = resolve_task(task)
        with open(path, encoding="utf-8") as f:
            for i, r in enumerate(csv.DictReader(f), start=2):
                src = r["transfer_lang"]
                n = train_size(task, src) if task in PER_LANGUAGE_SIZES else None
                basis = "per_language_train_size" if n is not None else "task_default"
                out.append(RawObs(
                    dataset="langrankplus", dataset_file=_rel(path, raw_dir),
                    origin="langrankplus", priority=PRIMARY, model=model,
                    task=task, train_task=task, metric="F1", mix={src: n or spec.train_size},
                    target=r["task_lang"], score=float(r["f1_score"]) * factor, source_size_basis=basis,
                    raw_line=i))
    return out


# ------------------------------------------------------------------------------------------------ English-source tables
EN_MODELS = {"mbert-base-cased": "mbert", "xlm-roberta-base": "xlm-r-base", "xlm-roberta-large": "xlm-r-large"}
EN_TASKS = {"XNLI": "xnli", "PAWS-X": "pawsx", "CoNLL": "conll-ner", "MLQA": "mlqa"}


def read_en_source(raw_dir: Path) -> list[RawObs]:
    """English-source zero-shot tables from the ERNIE-M README (reprints) and fairseq's XLM-R README (MLQA)."""
    path = raw_dir / "en_source_tables" / "en_source_zero_shot_transcribed.csv"
    out: list[RawObs] = []
    with open(path, encoding="utf-8") as f:
        for i, r in enumerate(csv.DictReader(f), start=2):
            model, task = EN_MODELS[r["model"]], EN_TASKS[r["task"]]
            fairseq = "fairseq" in r["origin"]
            # fairseq's README is the XLM-R authors' own release for xlmr.large; its mBERT row is a reprint.
            prio = PRIMARY if (fairseq and model == "xlm-r-large") else REPRINT_README
            out.append(RawObs(
                dataset="en_source_tables", dataset_file=_rel(path, raw_dir),
                origin="fairseq-xlmr-readme" if fairseq else "ernie-m-readme", priority=prio,
                model=model, task=task, train_task=task, metric=r["metric"],
                mix={r["source_lang"]: resolve_task(task).train_size}, target=r["target_lang"],
                score=float(r["score"]), source_size_basis="task_default", raw_line=i))
    return out


# ------------------------------------------------------------------------------------------------ LangRank peer data
PEER_FILES = {
    "data_tsfpos.csv": ("langrank-pos", "Task lang", "Aux lang", "Accuracy", 100.0, "accuracy"),
    "data_tsfel.csv": ("langrank-el", "Target lang", "Transfer lang", "Accuracy", 100.0, "accuracy"),
    "data_tsfparsing.csv": ("langrank-parsing", "Target lang", "Transfer lang", "Accuracy", 1.0, "accuracy"),
    "data_tsfmt.csv": ("langrank-mt", "Source lang", "Transfer lang", "BLEU", 100.0, "BLEU"),
}


def read_langrank_peer(raw_dir: Path) -> list[dict]:
    """LangRank (Lin et al. 2019) transfer records via NLPerf: rows as dicts with the raw feature columns.

    ``target`` is the task language (for MT: the low-resource side of the X->eng pair, i.e. the file's "Source lang"),
    ``source`` the transfer (auxiliary) language. POS/EL accuracies and MT BLEU are fractions in the files: x100."""
    out: list[dict] = []
    for name in sorted(PEER_FILES):
        task, tcol, scol, vcol, factor, metric = PEER_FILES[name]
        path = raw_dir / "langrank_nlperf" / name
        with open(path, encoding="utf-8") as f:
            reader = csv.DictReader(f, skipinitialspace=True)
            for i, r in enumerate(reader, start=2):
                r = {k.strip(): v for k, v in r.items()}
                feats = {k: v for k, v in r.items() if k not in {tcol, scol, vcol}}
                out.append({"task": task, "metric": metric, "target_raw": r[tcol], "source_raw": r[scol],
                            "score": float(r[vcol]) * factor, "dataset_file": _rel(path, raw_dir), "raw_line": i,
                            "features": feats})
    return out


def read_el_codes(raw_dir: Path) -> dict[str, str]:
    """LangRank's EL files use Wikipedia codes; lang_code.txt maps them to ISO 639-3 (their own table)."""
    m: dict[str, str] = {}
    with open(raw_dir / "langrank_nlperf" / "lang_code.txt", encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2:
                m[parts[0]] = parts[1]
    return m
