"""training_data: the committed table holds its schema, rebuilds byte-for-byte, and carries the published numbers."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from training_data import build as B
from training_data.schema import KEY_COLUMNS, validate_observations, validate_peer

TD = Path(B.__file__).resolve().parent
RAW = TD / "raw"


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=[])


@pytest.fixture(scope="module")
def obs() -> pd.DataFrame:
    return _read(TD / "observations.csv")


@pytest.fixture(scope="module")
def exc() -> pd.DataFrame:
    return _read(TD / "exclusions.csv")


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_committed_table_holds_the_schema(obs):
    validate_observations(obs)
    assert not obs.duplicated(KEY_COLUMNS).any()
    assert obs["score"].between(0, 100).all() and (obs["k"] >= 0).all()


def test_committed_peer_table_holds_its_schema():
    peer = _read(TD / "peer_langrank.csv")
    peer["score"] = peer["score"].astype(float)
    validate_peer(peer)
    assert peer.groupby("task").size().to_dict() == {"langrank-el": 477, "langrank-mt": 2862,
                                                     "langrank-parsing": 870, "langrank-pos": 1545 - 14}
    assert (peer["target"] != "").all() and (peer["source"] != "").all()
    # LangRank POS accuracy is a fraction in the file: pcm <- bxr 0.2588 -> 25.88
    row = peer[(peer.task == "langrank-pos") & (peer.target_raw == "pcm") & (peer.source_raw == "bxr")]
    assert row["score"].iloc[0] == pytest.approx(25.88)


def test_rebuild_is_byte_identical(tmp_path, capsys):
    assert B.run(out_dir=tmp_path) == 0
    out = capsys.readouterr().out
    assert "xpos_devries2022" in out and "conflicts resolved by source priority" in out
    for name in ("observations.csv", "exclusions.csv", "peer_langrank.csv", "README.md"):
        assert _sha(tmp_path / name) == _sha(TD / name), f"{name} differs from the committed file: rebuild it"
    assert not list(tmp_path.glob("*.tmp")), "temporary files left behind"


def test_acceptance_scale(obs):
    assert len(obs) >= 75_000 and obs["dataset"].nunique() == 5
    models = set(obs["model"])
    assert {"mt5", "mt5-small", "mt5-xxl", "xlm-r", "xlm-r-base", "xlm-r-large", "tulrv6-large", "mbert"} <= models
    assert (obs["k"] > 0).sum() >= 1000
    counts = obs.groupby("dataset").size()
    assert counts["xpos_devries2022"] == 9 * 6825 - 18
    assert counts["sumeval2022"] == 29_840
    assert counts["langrankplus"] == 16_740 - 12


def test_mt5_xxl_wikiann_zero_shot_thai(obs):
    r = obs[(obs.model == "mt5-xxl") & (obs.task == "wikiann") & (obs.target == "tha") & (obs.setting == "zero-shot")]
    assert len(r) == 1
    r = r.iloc[0]
    assert (r.score, r.train_config, r.source, r.source_size, r.k, r.metric) == (10.2, "eng:20000", "eng", 20000, 0,
                                                                                  "F1")


def test_langrankplus_wikiann_sources_carry_their_own_train_size(obs):
    r = obs[(obs.dataset == "langrankplus") & (obs.task == "wikiann")]
    size = r.groupby("source")["train_config"].first()
    assert size["hin"] == "hin:5000" and size["eng"] == "eng:20000" and size["cym"] == "cym:10000"
    assert set(r["source_size_basis"]) == {"per_language_train_size"}


def test_langrankplus_spanish_target_is_kept(obs):
    r = obs[(obs.dataset == "langrankplus") & (obs.model == "mt5") & (obs.task == "xquad") & (obs.target == "spa")]
    assert len(r) == 11 and "spa:87599" not in set(r["train_config"])
    assert r.loc[r.source == "deu", "score"].iloc[0] == pytest.approx(32.310411, abs=1e-6)


def test_xpos_rows(obs):
    x = obs[(obs.dataset == "xpos_devries2022") & (obs.source == "eng") & (obs.target == "nld")]
    by = x.set_index("variant")
    assert by.loc["n_samples=10000", "score"] == pytest.approx(90.39106638418079, abs=1e-9)
    assert by.loc["n_samples=10000", "train_config"] == "eng:10000"
    # English UD 2.8 has 19,912 train sentences: budgets above that are capped, epochs use the full set
    assert by.loc["n_samples=40000", "source_size"] == 19912 and by.loc["epochs=1", "source_size"] == 19912
    assert by.loc["n_samples=630", "source_size"] == 630
    assert set(x["model"]) == {"xlm-r-base"} and set(x["setting"]) == {"zero-shot"} and (x["k"] == 0).all()
    diag = obs[(obs.dataset == "xpos_devries2022") & (obs.source == "deu") & (obs.target == "deu")
               & (obs.variant == "n_samples=10000")].iloc[0]
    assert (diag.setting, diag.k, diag.source_size, diag.target_in_mix) == ("in-language", 10000, 0, True)


def test_sumeval_few_shot_row_with_k(obs):
    entry = json.loads((RAW / "sumeval2022" / "train" / "TyDiQA_TULRv6Large_ID.json").read_text())[0]
    assert entry["train_config"]["ar"] == 14805 and entry["eval_results"]["ar"] == pytest.approx(0.841)
    r = obs[(obs.model == "tulrv6-large") & (obs.task == "tydiqa") & (obs.target == "arb")
            & (obs.train_config == "arb:14805;ben:2390;eng:1000;ind:10;kor:1625;rus:6490;swh:1000;tel:10")]
    assert len(r) == 1
    r = r.iloc[0]
    assert (r.setting, r.k, r.source_size, r.n_sources, r.source) == ("few-shot", 14805, 12525, 7, "mix")
    assert r.score == pytest.approx(84.1)


def test_sumeval_ood_rows_are_xquad_trained_on_tydiqa(obs):
    ood = obs[(obs.dataset == "sumeval2022") & (obs.train_task == "tydiqa") & (obs.task == "xquad")]
    assert len(ood) == 2 * 286
    assert set(ood["dataset_file"]) == {"TyDiQA_XLMR_OOD.json", "TyDiQA_TULRv6Large_OOD.json"}
    assert set(obs.loc[obs.dataset_file == "XNLI_XLMR.json", "model"]) == {"xlm-r-large"}


def test_conflict_rule_keeps_the_xlmr_authors_value(obs, exc):
    r = obs[(obs.model == "xlm-r-large") & (obs.task == "mlqa") & (obs.target == "hin") & (obs.metric == "F1")]
    assert len(r) == 1 and r["score"].iloc[0] == 69.2 and r["origin"].iloc[0] == "fairseq-xlmr-readme"
    dropped = exc[(exc.task == "mlqa") & (exc.model == "xlm-r-large") & (exc.target_raw == "hi")
                  & (exc.kind == "conflict")]
    assert {62.9, 70.6} <= set(dropped["score"])


def test_exclusions_present_with_reasons(exc):
    an = exc[exc.kind == "anomaly/unusable"]
    spa = an[(an.dataset == "langrankplus") & (an.dataset_file == "langrankplus_matrices/xquad_mt5.csv")]
    assert len(spa) == 12 and (spa["score"] < 2).all() and spa["reason"].str.contains("source spa").all()
    assert len(set(spa["target_raw"])) == 12  # Spanish as the *source* is broken, towards every target
    zeros = an[an.dataset == "xpos_devries2022"]
    assert len(zeros) == 18 and set(zeros["target_raw"]) == {"aii", "otk"} and (zeros["score"] == 0).all()
    xlm = an[an.model == "XLM"]
    assert len(xlm) == 76 and xlm["reason"].str.contains("not in the registry").all()
    assert (exc["reason"].str.len() > 10).all()


def test_mt5_rows_average_to_the_papers_avg_column(obs):
    """Transcribed per-language values reproduce the paper's printed averages (within rounding): no score moved."""
    avg = pd.read_csv(RAW / "mt5_xue2021" / "mt5_reported_averages_transcribed.csv")
    avg = avg[avg.model == "mT5"]
    m = obs[(obs.dataset == "mt5_xue2021") & obs.model.str.startswith("mt5-")].copy()
    m["paper_setting"] = m["setting"].map({"zero-shot": "zero-shot", "in-language": "zero-shot",
                                           "translate-train": "translate-train", "in-language-multitask": "in-language"})
    task = {"XNLI": "xnli", "PAWS-X": "pawsx", "WikiAnn NER": "wikiann", "XQuAD": "xquad", "MLQA": "mlqa",
            "TyDi QA-GoldP": "tydiqa"}
    checked = 0
    for r in avg.itertuples():
        g = m[(m.model == f"mt5-{r.model_size.lower()}") & (m.task == task[r.task]) & (m.metric == r.metric)
              & (m.paper_setting == r.setting)]
        assert len(g) > 0
        assert abs(g["score"].mean() - r.score) <= 0.125, (r.model_size, r.task, r.setting, r.metric)
        checked += 1
    assert checked == len(avg) == 100  # 5 sizes x 20 (task, setting, metric) rows


def test_translate_train_and_multitask_rows(obs):
    tt = obs[(obs.model == "mt5-base") & (obs.task == "xnli") & (obs.setting == "translate-train")]
    assert len(tt) == 15
    r = tt[tt.target == "swh"].iloc[0]
    assert r.k == 392702 and r.source_size == 14 * 392702 and r.target_data == "machine-translated"
    assert tt[tt.target == "eng"].iloc[0].target_data == "gold"
    mt = obs[(obs.model == "mt5-large") & (obs.task == "tydiqa") & (obs.setting == "in-language-multitask")
             & (obs.metric == "F1")]
    assert len(mt) == 9
    r = mt[mt.target == "swh"].iloc[0]
    assert r.k == 2755 and r.source_size_basis == "per_language_train_size"


def test_em_rows_are_secondary(obs):
    em = obs[obs.metric == "EM"]
    assert len(em) > 0 and not em["primary_metric"].any()
    assert obs.loc[obs.metric != "EM", "primary_metric"].all()


def test_codes_are_canonical(obs):
    from features.languages import resolve_code

    for code in set(obs["target"]) | set(obs["source"]) - {"mix"}:
        assert resolve_code(code) == code
    assert {"cmn", "arb", "swh"} <= set(obs["target"]) and not ({"zho", "ara", "swa"} & set(obs["target"]))


def test_cli_reports_a_missing_raw_dir(tmp_path, capsys):
    assert B.run(raw_dir=tmp_path / "nope", out_dir=tmp_path) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "observations.csv").exists()
