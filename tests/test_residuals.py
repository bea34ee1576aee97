"""RecordResiduals: the record's residual per (model, task, target) as a non-decreasing function of k."""
from __future__ import annotations

import numpy as np
import pandas as pd

from predictor.residuals import RecordResiduals


def _norm(rows):
    return pd.DataFrame(rows, columns=["model", "task", "target", "k"])


def test_offset_is_the_shrunk_mean_residual_and_zero_where_the_record_is_silent():
    norm = _norm([("xlm-r-large", "xnli", "deu", 0)] * 4)
    r = RecordResiduals(shrinkage=2.0).fit(norm, np.array([3.0, 3.0, 3.0, 3.0]))
    assert r.offset("xlm-r-large", "xnli", "deu", 0) == 2.0  # 12 / (4 + 2)
    assert r.offset("xlm-r-large", "xnli", "fra", 0) == 0.0
    assert r.offset("mt5-base", "xnli", "deu", 0) == 0.0
    assert r.covers("xlm-r-large", "xnli", "deu") and not r.covers("xlm-r-large", "pawsx", "deu")


def test_offset_never_decreases_in_k_and_is_flat_beyond_the_published_k():
    # residuals fall with k in the record (+6 at k=0, −6 at k=100, +3 at k=1000): the offset is pooled to stay
    # non-decreasing, so more target examples can never lower a prediction through it
    norm = _norm([("mt5-base", "tydiqa", "swh", k) for k in (0, 0, 100, 100, 1000, 1000)])
    res = np.array([6.0, 6.0, -6.0, -6.0, 3.0, 3.0])
    r = RecordResiduals(shrinkage=0.0).fit(norm, res)
    ks = np.array([0, 1, 10, 50, 100, 500, 1000, 5000, 10 ** 6])
    off = r.offsets(["mt5-base"] * len(ks), ["tydiqa"] * len(ks), ["swh"] * len(ks), ks)
    assert np.all(np.diff(off) >= -1e-12)
    assert off[0] == 0.0  # 6, −6 pooled to 0, then 3 at k=1000
    assert off[-1] == off[-3] == 3.0


def test_csv_round_trip_keeps_every_offset():
    norm = _norm([("xlm-r-large", "wikiann", t, k) for t in ("yor", "NA", "deu") for k in (0, 1000, 392702)])
    res = np.linspace(-5.123456789, 7.987654321, len(norm))
    r = RecordResiduals().fit(norm, res)
    again = RecordResiduals.from_csv(r.to_csv())
    args = (norm["model"], norm["task"], norm["target"], norm["k"])
    assert np.allclose(r.offsets(*args), again.offsets(*args), rtol=0, atol=1e-9)
    assert again.covers("xlm-r-large", "wikiann", "NA")  # a code that reads as missing stays a code


# ---------------------------------------------------------------- SourceOffsets
from predictor.residuals import SourceOffsets  # noqa: E402


def test_source_offset_is_the_closeness_weighted_shrunk_mean_within_target_deviation():
    # Bengali and Telugu hold results; in each, kor beats the group mean by 4 and eng trails by 4
    so = SourceOffsets(prior=2.0, tau=0.1).fit(
        ["mt5"] * 5, ["tydiqa"] * 5, ["kor", "eng", "kor", "eng", "fin"], ["ben", "ben", "tel", "tel", "ind"],
        ["f|ben", "f|ben", "f|tel", "f|tel", "f|ind"], np.array([10.0, 2.0, -1.0, -9.0, 50.0]))
    off = so.offsets(["mt5", "mt5", "mt5", "mt5-base"], ["tydiqa"] * 4, ["hin"] * 4, ["kor", "eng", "fin", "kor"])
    # equal deviations everywhere: the weights cancel up to the prior, so the offset is 4 · Σw / (Σw + 2·max w)
    assert off[0] > 0 and np.isclose(off[1], -off[0]) and off[2] == 0.0
    assert off[3] == 0.0  # mt5-base reads its own record only, not the unsized mt5's
    assert off[0] <= 4.0 * 2 / (2 + 2) + 1e-12     # never more than the two-target mean shrunk by the prior
    # closeness decides whose record speaks: a deviation published for a close relative counts more
    so2 = SourceOffsets(prior=0.0, tau=0.1).fit(
        ["m"] * 4, ["t"] * 4, ["a", "b", "a", "b"], ["urd", "urd", "jpn", "jpn"], ["g1", "g1", "g2", "g2"],
        np.array([2.0, 0.0, 0.0, 2.0]))
    near_urdu = so2.offsets(["m", "m"], ["t", "t"], ["hin", "hin"], ["a", "b"])
    assert near_urdu[0] > 0.5 > -0.5 > near_urdu[1]  # Hindi's neighbour Urdu says a > b; far Japanese says b > a
    back = SourceOffsets.from_csv(so.to_csv())
    assert np.array_equal(back.offsets(["mt5"], ["tydiqa"], ["hin"], ["kor"]), off[:1])
    # the batch path (≥ 256 rows) gives the request path's values
    many = so.offsets(["mt5"] * 300, ["tydiqa"] * 300, ["hin"] * 150 + ["swh"] * 150, ["kor", "eng", "fin"] * 100)
    few = so.offsets(["mt5"] * 6, ["tydiqa"] * 6, ["hin"] * 3 + ["swh"] * 3, ["kor", "eng", "fin"] * 2)
    assert np.allclose(many[:3], few[:3]) and np.allclose(many[150:153], few[3:6])


def test_pair_offsets_are_shrunk_means_per_pair_and_survive_csv():
    from predictor.residuals import PairOffsets
    po = PairOffsets(prior=1.0).fit(["m", "m", "m", "m"], ["t", "t", "t", "t"], ["eng", "eng", "deu", "fra"],
                                    ["swh", "swh", "swh", "swh"], [4.0, 2.0, -3.0, np.nan])
    # eng→swh: (4 + 2) / (2 + 1) = 2; deu→swh: -3 / 2; fra→swh: no finite residual, no row
    got = po.offsets(["m", "m", "m", "m", "x"], ["t"] * 5, ["swh", "swh", "swh", "yor", "swh"],
                     ["eng", "deu", "fra", "eng", "eng"])
    assert np.allclose(got, [2.0, -1.5, 0.0, 0.0, 0.0])
    assert po.holds("m", "t") and not po.holds("m", "u") and not po.holds("x", "t")
    again = PairOffsets.from_csv(po.to_csv())
    assert np.array_equal(again.offsets(["m", "m"], ["t", "t"], ["swh", "swh"], ["eng", "deu"]), got[:2])
    assert PairOffsets().offsets(["m"], ["t"], ["swh"], ["eng"]).tolist() == [0.0]


def test_a_size_without_its_own_record_of_a_target_reads_the_nearest_sized_sibling():
    from predictor.residuals import SIBLING_WEIGHT, PairOffsets
    assert SIBLING_WEIGHT == 0.5
    po = PairOffsets(prior=0.0).fit(["xlm-r-base", "xlm-r-base", "mt5-small", "xlm-r"], ["udpos"] * 4,
                                    ["ces", "pol", "ces", "ces"], ["slk"] * 4, [3.0, -1.0, 9.0, 7.0])
    po.attach_record({("xlm-r-base", "udpos", "slk"), ("xlm-r-large", "udpos", "deu")})
    fam = po.offsets(["xlm-r-large", "xlm-r-large", "xlm-r-xxl"], ["udpos"] * 3, ["slk"] * 3, ["ces", "pol", "ces"])
    assert fam.tolist() == [1.5, -0.5, 1.5]          # XLM-R base's pairs at half weight; never mT5's or the unsized
    assert po.sibling("xlm-r-large", "udpos", "slk") == "xlm-r-base" and po.holds("xlm-r-large", "udpos")
    # a model with results of its own for the target (its mixes) borrows nothing; unsized models never borrow
    assert po.sibling("xlm-r-large", "udpos", "deu") is None
    assert po.offsets(["xlm-r", "mt5-base"], ["udpos"] * 2, ["slk"] * 2, ["pol", "ces"]).tolist() == [0.0, 4.5]
    assert po.offsets(["xlm-r-base"], ["udpos"], ["slk"], ["ces"]).tolist() == [3.0]   # its own: full weight
    assert po.offsets(["mbert"], ["udpos"], ["slk"], ["ces"]).tolist() == [0.0]


def test_the_published_size_reads_the_stronger_offset_and_more_data_never_lowers_it():
    """A pair asked at its published source size reads its residual shrunk by AT_SIZE_PRIOR; other sizes keep
    PAIR_PRIOR's. An upward correction holds from the published size up, a downward one from it down, so the offset
    never falls as the source's amount grows. A table saved without sizes reads PAIR_PRIOR's everywhere."""
    from predictor.residuals import PairOffsets
    po = PairOffsets(prior=2.0, at_size_prior=0.5).fit(
        ["m", "m", "m"], ["t"] * 3, ["eng", "deu", "fra"], ["swh"] * 3, [3.0, -3.0, 1.0], [1000.0, 1000.0, None])
    sizes = [10.0, 999.0, 1000.0, 1000.004, 5000.0]
    up = po.offsets(["m"] * 5, ["t"] * 5, ["swh"] * 5, ["eng"] * 5, sizes)
    down = po.offsets(["m"] * 5, ["t"] * 5, ["swh"] * 5, ["deu"] * 5, sizes)
    assert np.allclose(up, [1.0, 1.0, 2.0, 2.0, 2.0])        # 3/(1+2) below the published size, 3/(1+0.5) from it
    assert np.allclose(down, [-2.0, -2.0, -2.0, -2.0, -1.0])  # -3/1.5 up to the published size, -3/3 beyond it
    assert np.all(np.diff(up) >= 0) and np.all(np.diff(down) >= 0)
    unknown = po.offsets(["m", "m"], ["t", "t"], ["swh", "swh"], ["fra", "fra"], [10.0, 1e6])
    assert np.allclose(unknown, [1.0 / 3.0, 1.0 / 3.0])      # a result of unknown size: PAIR_PRIOR's at every size
    assert np.allclose(po.offsets(["m"], ["t"], ["swh"], ["eng"]), [1.0])   # no component size given: PAIR_PRIOR's
    again = PairOffsets.from_csv(po.to_csv())
    assert np.array_equal(again.offsets(["m"] * 5, ["t"] * 5, ["swh"] * 5, ["eng"] * 5, sizes), up)
    old = po.table_.drop(columns=["size", "offset_at_size"]).to_csv(index=False)
    assert np.allclose(PairOffsets.from_csv(old).offsets(["m"] * 5, ["t"] * 5, ["swh"] * 5, ["eng"] * 5, sizes), 1.0)


from predictor.residuals import SizeOffsets  # noqa: E402


def test_size_offset_never_decreases_with_more_source_data_and_is_flat_beyond_the_record():
    """Per (model, task): the shrunk mean residual at each published amount of source data, made non-decreasing in
    log(1 + examples); interpolated between, flat beyond, 0 for a (model, task) the record lacks; CSV round trip."""
    totals = [30, 30, 30, 1000, 1000, 20000, 20000, 20000, 20000]
    resid = [-20.0, -22.0, -18.0, 3.0, 1.0, 1.0, -1.0, 2.0, 0.0]
    so = SizeOffsets(shrinkage=2.0).fit(["m"] * 9, ["qa"] * 9, totals, resid)
    at = so.offsets(["m"] * 6, ["qa"] * 6, [0, 30, 1000, 5000, 20000, 10 ** 6])
    assert at[1] == -60.0 / 5          # three rows at 30 examples, shrunk by 2 pseudo-rows
    assert at[0] == at[1] and at[-1] == at[-2]
    assert (np.diff(at) >= 0).all()
    # 1000 examples alone would read (3 + 1) / 4 = 1.0 above 20,000's (1 + -1 + 2 + 0) / 6: pooled by the rule
    assert at[2] == at[4] == (4.0 + 2.0) / (4 + 6)
    assert (so.offsets(["other"] * 2, ["qa"] * 2, [30, 20000]) == 0.0).all()
    again = SizeOffsets.from_csv(so.to_csv())
    np.testing.assert_array_equal(again.offsets(["m"] * 6, ["qa"] * 6, [0, 30, 1000, 5000, 20000, 10 ** 6]), at)
    mixed = so.offsets(np.array(["m", "other", "m"], dtype=object), np.array(["qa", "qa", "qa"], dtype=object),
                       [30, 30, 20000])
    np.testing.assert_array_equal(mixed, [at[1], 0.0, at[4]])
    np.testing.assert_array_equal(so.offsets_one("m", "qa", [0, 30, 1000, 5000, 20000, 10 ** 6]), at)
    assert (so.offsets_one("other", "qa", [30, 20000]) == 0.0).all()
