"""Protocol folds on the real observations: whole target languages held out, no leakage through mixtures."""
import numpy as np
import pandas as pd
import pytest

from predictor import protocols as P


@pytest.fixture(scope="module")
def obs():
    return P.load_observations()


def _mix_langs(cfg: str) -> set[str]:
    return {p.split(":")[0] for p in str(cfg).split(";") if ":" in p}


def _assert_no_leak(proto, strict=True):
    d = proto.data
    mixes = d["train_config"].map(_mix_langs)
    for f in proto.folds:
        held = set(f.heldout)
        assert held, f.name
        tr = d.loc[f.train]
        assert not tr["target"].isin(held).any(), f"{f.name}: held-out target in training"
        if strict:
            leaked = mixes[f.train].map(lambda m: bool(m & held))
            assert not leaked.any(), f"{f.name}: held-out language inside a training mixture"
        te = d.loc[f.test]
        assert te["target"].isin(held).all()
        assert not (f.train & f.test).any()


def test_row_languages_reads_mixtures():
    df = pd.DataFrame({"train_config": ["eng:100", "deu:5;fra:10", ""], "target": ["swh", "eng", "eng"],
                       "source": ["eng", "", ""]})
    rl = P.row_languages(df)
    assert sorted(rl[rl.index == 1]) == ["deu", "fra"]
    assert list(rl[rl.index == 0]) == ["eng"]
    assert P.involving(df, ["fra"]).tolist() == [False, True, False]
    assert P.involving(df, ["fra"], strict=False).tolist() == [False, False, False]
    assert P.involving(df, ["eng"], strict=False).tolist() == [False, True, True]


def test_partition_is_seeded_and_complete():
    langs = [f"l{i:02d}" for i in range(23)]
    a = P.language_partition(langs, 5)
    assert a == P.language_partition(list(reversed(langs)), 5)
    assert set(a) == set(langs) and set(a.values()) == set(range(5))
    assert P.language_partition(langs, None) == {l: i for i, l in enumerate(sorted(langs))}


def test_xpos_folds_hold_out_targets_everywhere(obs):
    p = P.xpos(obs)
    _assert_no_leak(p)
    p.check_no_leak()
    te = np.zeros(len(obs), bool)
    for f in p.folds:
        assert not (te & f.test).any()
        te |= f.test
    tested = obs.loc[te]
    assert tested["target"].nunique() == 105          # every xpos target is tested
    assert (tested["model"] == "xlm-r-base").all() and (tested["k"] == 0).all()
    assert not (tested["source"] == tested["target"]).any()
    assert tested.groupby("target").size().median() >= 60   # ~64 candidate sources per target


def test_exact_loto_is_available(obs):
    small = obs[obs["dataset"].eq("langrankplus") & obs["dataset_file"].str.startswith("xnli")].reset_index(drop=True)
    p = P.langrankplus(small, strict=True, n_groups=None, extra=False)
    assert len(p.folds) == 15 and all(len(f.heldout) == 1 for f in p.folds)
    _assert_no_leak(p)


def test_langrankplus_variants(obs):
    loose = P.langrankplus(obs, strict=False)
    strict = P.langrankplus(obs, strict=True)
    _assert_no_leak(loose, strict=False)
    _assert_no_leak(strict, strict=True)
    names = [t.name for t in loose.tables]
    assert names[:6] == list(P.LANGRANKPLUS_MAIN)
    for t in loose.tables:
        rows = obs.loc[t.select(obs)]
        assert (rows["source"] != rows["target"]).all()       # self-transfer excluded
    # the loose variant keeps held-out languages as sources; the strict one does not
    f0, s0 = loose.folds[0], strict.folds[0]
    assert f0.train.sum() > s0.train.sum()


def test_sumeval_tables_split_k(obs):
    p = P.sumeval(obs)
    _assert_no_leak(p)
    names = [t.name for t in p.tables]
    assert "all files k=0" in names and "all files k>0" in names
    k = obs["k"].to_numpy()
    for t in p.tables:
        m = t.select(obs)
        assert (k[m] > 0).all() if t.name.endswith("k>0") else (k[m] == 0).all()
        assert not t.ranking


def test_leave_task_out_hides_task_and_languages(obs):
    p = P.leave_task_out(obs)
    _assert_no_leak(p)
    for f in p.folds:
        task = obs.loc[f.test, "task"].unique()
        assert len(task) == 1
        assert not (obs.loc[f.train, "task"] == task[0]).any()
        assert f.test_overrides["task"].startswith("unseen-")


def test_langrank_benchmark_shape():
    p = P.langrank_benchmark()
    d = p.data
    assert d.groupby("task")["target"].nunique().to_dict() == {"DEP": 30, "EL": 9, "MT": 54, "POS": 26}
    assert d["score"].notna().all()
    assert len(p.folds) == 119
    for f in p.folds:
        assert not d.loc[f.train, "target"].isin(f.heldout).any()
