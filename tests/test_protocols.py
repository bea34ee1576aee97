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


def test_row_languages_parses_repeated_mixtures_like_each_row_alone():
    """Each distinct mixture is parsed once and expanded to its rows: same languages, order and index as row by row
    (n = 0 dropped, unparsable n kept, spaces stripped, the source added once, any index)."""
    cfgs = ["eng:100;deu:0", "deu:5; fra :10", "", "eng:100;deu:0", None, "hin:x;urd:3", "deu:5; fra :10", "eng:7"]
    df = pd.DataFrame({"train_config": cfgs, "target": ["swh"] * 8,
                       "source": ["eng", "", "tam", "fra", None, "", "deu", "eng"]}, index=[7, 3, 11, 0, 5, 2, 9, 4])
    rl = P.row_languages(df)
    expect = {7: ["eng"], 3: ["deu", "fra"], 11: ["tam"], 0: ["eng", "fra"], 5: [], 2: ["hin", "urd"],
              9: ["deu", "fra"], 4: ["eng"]}
    assert {i: rl[rl.index == i].tolist() for i in df.index} == expect
    # row order is kept: every mixture language of the rows in frame order, then the added sources
    assert rl.index.tolist() == [7, 3, 3, 0, 2, 2, 9, 9, 4, 11, 0]


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


def test_seen_holds_out_a_fifth_of_each_sumeval_file(obs):
    p = P.seen(obs)
    p.check_no_leak()
    (f,) = p.folds
    se = obs["dataset"].eq("sumeval2022").to_numpy()
    assert not (f.test & ~se).any() and f.train.sum() == len(obs) - f.test.sum()
    for name, rows in obs[se].groupby(["dataset_file", "model", "task"]):
        share = f.test[rows.index].mean()
        assert abs(share - 0.2) < 0.01, (name, share)
    # the held-out rows' targets stay in training through their other mixes (the "record" regime)
    tested = set(obs.loc[f.test, "target"])
    assert tested <= set(obs.loc[f.train, "target"])
    assert (P.seen(obs).folds[0].test == f.test).all()            # seeded
    assert [t.name for t in p.tables][-1] == "all files" and not any(t.ranking for t in p.tables)


def test_unseen_dataset_holds_out_each_matrix_whole(obs):
    p = P.unseen_dataset(obs)
    p.check_no_leak()
    assert [f.name for f in p.folds] == list(P.UNSEEN_DATASET_MATRICES)
    key = obs["dataset"] + "/" + obs["dataset_file"]
    for f in p.folds:
        held = set(key[f.test])
        if f.name == "xpos":
            assert held == {"xpos_devries2022/udpos-ft-10000.csv"}
            assert not obs.loc[f.train, "dataset"].eq("xpos_devries2022").any()
        else:
            assert held == {f"langrankplus/{f.name}.csv"}
            assert not key[f.train].isin(held).any()
        te = obs.loc[f.test]
        assert (te["k"] == 0).all() and not (te["source"] == te["target"]).any()
    # one table per matrix; the big ones rank 144 (WikiANN) and 105 (xpos) targets
    n = {t.name: len(set(t.groups(obs.loc[t.select(obs)]))) for t in p.tables}
    assert n["wikiann_mt5"] == 144 and n["xpos"] == 105 and n["xnli_mt5"] == 15


def test_unseen_family_holds_out_every_model_of_a_family(obs):
    p = P.unseen_family(obs)
    p.check_no_leak()
    fams = {f.name: f for f in p.folds}
    assert set(fams) == {"mt5", "xlm-r"}
    assert set(obs.loc[fams["mt5"].test, "model"]) == {"mt5", "mt5-small", "mt5-base", "mt5-large", "mt5-xl",
                                                        "mt5-xxl"}
    assert set(obs.loc[fams["xlm-r"].test, "model"]) == {"xlm-r", "xlm-r-base", "xlm-r-large"}
    for f in fams.values():
        assert not obs.loc[f.train, "model"].isin(obs.loc[f.test, "model"].unique()).any()
        assert f.train.sum() + f.test.sum() == len(obs)


def test_tables_group_by_the_one_ranking_key(obs):
    from predictor.model import ranking_key
    p = P.xpos(obs)
    t = p.tables[0]
    d = obs.loc[t.select(obs)]
    assert (t.groups(d) == ranking_key(d)).all()
    assert set(P.ALL_PROTOCOLS) >= {"seen", "unseen_dataset", "unseen_family", "xpos", "langrankplus", "sumeval",
                                    "leave_task_out", "langrank", "langrankplus_strict"}


def test_check_no_leak_catches_a_held_out_row(obs):
    p = P.unseen_family(obs)
    f = p.folds[0]
    f.train = f.train.copy()
    f.train[np.flatnonzero(f.test)[0]] = True
    with pytest.raises(AssertionError):
        p.check_no_leak()
