"""Ratings -> MOS: screening (BT.500, P.913 through sureal), intervals, dimensions, pairwise scores."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from scipy import stats

from vqscope.studies.mos import (
    StudyAnalysis,
    analyse_comparisons,
    analyse_ratings,
)
from vqscope.studies.ratings import Comparison, Item, Rating
from vqscope.studies.simulate import simulate_comparisons, simulate_ratings


def _srocc(analysis: StudyAnalysis, truth: dict[str, float]) -> float:
    ids = list(truth)
    return float(stats.spearmanr([analysis.item(v).mos for v in ids], [truth[v] for v in ids]).statistic)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_acceptance_careless_raters_flagged_and_truth_recovered(seed):
    """Issue 17: 120 videos, 15 raters of whom 2 answer at random."""
    study = simulate_ratings(120, 15, careless=2, seed=seed)
    analysis = analyse_ratings(study.ratings)
    assert set(study.careless) <= set(analysis.rejected)
    assert len(set(analysis.rejected) - set(study.careless)) <= 1
    assert _srocc(analysis, study.truth) >= 0.95
    for rater in study.careless:
        report = analysis.rater(rater)
        assert report.rejected and report.reasons
        assert any(reason.startswith(("BT.500:", "P.913:")) for reason in report.reasons)
    # the P.913 recovered scores rank the truth as well
    ids = list(study.truth)
    p913 = [analysis.item(v).p913 for v in ids]
    assert all(p is not None for p in p913)
    assert stats.spearmanr(p913, [study.truth[v] for v in ids]).statistic >= 0.95


def test_careless_raters_inconsistency_is_far_above_the_others():
    study = simulate_ratings(120, 15, careless=2, seed=5)
    analysis = analyse_ratings(study.ratings, p913_scores=False)
    careful = [r.inconsistency for r in analysis.raters if r.rater not in study.careless]
    for rater in study.careless:
        assert analysis.rater(rater).inconsistency > 1.5 * float(np.median(careful))
    # bias is recovered for the careful raters (the model is the one the simulation follows)
    recovered = [analysis.rater(r).bias for r in study.raters if r not in study.careless]
    true = [study.biases[r] for r in study.raters if r not in study.careless]
    assert np.corrcoef(recovered, true)[0, 1] > 0.9


def _tiny() -> list[Rating]:
    return [
        # item a: 3, 4, 3, 4 -> MOS 3.5, sd sqrt(1/3)
        Rating("w", "a", 3, at=1), Rating("x", "a", 4, at=1), Rating("y", "a", 3, at=1), Rating("z", "a", 4, at=1),
        # item b: all 2
        Rating("w", "b", 2, at=2), Rating("x", "b", 2, at=2), Rating("y", "b", 2, at=2), Rating("z", "b", 2, at=2),
        # item c: one rating
        Rating("x", "c", 5, at=3),
        # item d: 5, 5, 4 -> the interval reaches past 5 and is clipped
        Rating("x", "d", 5, at=4), Rating("y", "d", 5, at=4), Rating("z", "d", 4, at=4),
        # w rates a again later: ignored
        Rating("w", "a", 1, at=9),
        Rating("w", "a", 5, kind="training", at=0),
    ]


def test_mos_interval_std_count_by_hand():
    analysis = analyse_ratings(_tiny())
    a = analysis.item("a")
    assert a.mos == pytest.approx(3.5)
    assert a.std == pytest.approx(math.sqrt(1 / 3))
    assert a.count == 4
    half = 3.182446305284263 * math.sqrt(1 / 3) / 2  # t(0.975, 3) * s / sqrt(n)
    assert a.ci95 == pytest.approx((3.5 - half, 3.5 + half))
    b = analysis.item("b")
    assert (b.mos, b.std, b.count, b.ci95) == (2.0, 0.0, 4, (2.0, 2.0))
    c = analysis.item("c")
    assert (c.mos, c.std, c.count, c.ci95) == (5.0, None, 1, None)
    d = analysis.item("d")
    half_d = 4.302652729911275 * math.sqrt(1 / 3) / math.sqrt(3)
    assert d.ci95 == pytest.approx((14 / 3 - half_d, 5.0))
    assert a.mos_100 == pytest.approx(62.5)
    # the duplicate main rating is ignored and counted, the training rating is ignored
    assert analysis.rater("w").duplicates == 1
    assert analysis.rater("w").ratings == 2
    assert any("repeated submissions" in n for n in analysis.notes)
    assert any("training" in n for n in analysis.notes)
    # four raters: too few to screen, nobody rejected, and the notes say why
    assert analysis.rejected == ()
    assert any("screening skipped" in n for n in analysis.notes)
    json.dumps(analysis.to_dict())
    assert "4 items, 4 raters" in analysis.summary()


def test_repeats_and_gold_give_the_rater_figures():
    items = [Item("a", "a.mp4"), Item("b", "b.mp4"), Item("g1", "gold1.mp4", gold=5.0, kind="gold"),
             Item("g2", "gold2.mp4", gold=1.0, kind="gold")]
    ratings = [
        Rating("x", "a", 4), Rating("x", "b", 2), Rating("y", "a", 3), Rating("y", "b", 3),
        Rating("x", "a", 2, kind="repeat", at=5), Rating("x", "b", 2, kind="repeat", at=6),
        Rating("y", "a", 3, kind="repeat", at=5),
        Rating("x", "g1", 4, kind="gold"), Rating("x", "g2", 1, kind="gold"),
        Rating("y", "g1", 2, kind="gold"), Rating("y", "g2", 4, kind="gold"),
    ]
    analysis = analyse_ratings(ratings, items=items)
    x, y = analysis.rater("x"), analysis.rater("y")
    assert (x.repeats, x.repeat_mad) == (2, pytest.approx(1.0))
    assert (y.repeats, y.repeat_mad) == (1, pytest.approx(0.0))
    assert (x.gold, x.gold_mae) == (2, pytest.approx(0.5))
    assert (y.gold, y.gold_mae) == (2, pytest.approx(3.0))
    # y is far off both gold answers: flagged, but rejecting y would leave items with one rating
    assert not y.rejected and any(r.startswith("gold:") for r in y.reasons)
    assert any("kept" in r for r in y.reasons)
    assert [r.item for r in analysis.items] == ["a", "b"]  # gold items make no MOS
    assert analysis.item("a").video == "a.mp4"


def test_gold_and_repeats_far_off_reject_a_rater():
    study = simulate_ratings(30, 6, seed=3)
    items = [Item(v, v) for v in study.truth] + [Item("g1", "g1", gold=5.0, kind="gold"),
                                                 Item("g2", "g2", gold=1.0, kind="gold")]
    extra = [Rating("r01", "g1", 1, kind="gold", at=100), Rating("r01", "g2", 5, kind="gold", at=101)]
    first = {r.item: r.score for r in study.ratings if r.rater == "r02"}
    wrong = [v for v in list(first)[:3]]
    extra += [Rating("r02", v, 1 if first[v] >= 3 else 5, kind="repeat", at=200 + k) for k, v in enumerate(wrong)]
    analysis = analyse_ratings(list(study.ratings) + extra, items=items)
    assert analysis.rater("r01").rejected
    assert any(r.startswith("gold:") for r in analysis.rater("r01").reasons)
    assert analysis.rater("r02").repeat_mad >= 2.0 and analysis.rater("r02").rejected
    assert any(r.startswith("repeats:") for r in analysis.rater("r02").reasons)


def test_rejected_raters_ratings_do_not_enter_the_mos():
    study = simulate_ratings(60, 12, careless=2, seed=4)
    analysis = analyse_ratings(study.ratings, p913_scores=False)
    assert analysis.rejected
    rejected = set(analysis.rejected)
    for item in analysis.items[:10]:
        kept = [r.score for r in study.ratings if r.item == item.item and r.rater not in rejected]
        assert item.mos == pytest.approx(np.mean(kept))
        assert item.count == len(kept)
        assert item.excluded == sum(1 for r in study.ratings if r.item == item.item and r.rater in rejected)
    # correlation with the others is low for the rejected, high for the kept
    assert all(analysis.rater(r).correlation < 0.5 for r in study.careless)
    assert min(r.correlation for r in analysis.raters if not r.rejected) > 0.5


def test_too_few_raters_no_rejection_and_a_note():
    study = simulate_ratings(40, 4, careless=1, seed=0)
    analysis = analyse_ratings(study.ratings)
    assert analysis.rejected == ()
    assert any("screening skipped" in n and "at least 5" in n for n in analysis.notes)
    # screening off is said too
    off = analyse_ratings(study.ratings, screening=())
    assert off.rejected == () and any("screening off" in n for n in off.notes)


def test_rejection_never_leaves_an_item_with_fewer_than_two_ratings():
    study = simulate_ratings(120, 15, careless=2, seed=1)
    careless = study.careless[0]
    careful = next(r for r in study.raters if r not in study.careless)
    extra = [Rating(careless, "lonely", 1, at=500), Rating(careful, "lonely", 4, at=500)]
    analysis = analyse_ratings(list(study.ratings) + extra, p913_scores=False)
    report = analysis.rater(careless)
    assert not report.rejected
    assert any("kept" in r for r in report.reasons)
    assert any(careless in n and "kept" in n for n in analysis.notes)
    assert analysis.item("lonely").count == 2
    assert study.careless[1] in analysis.rejected  # the other one still goes


def test_finevd_dimensions_and_tags_aggregate():
    ratings = [
        Rating("x", "a", 4, dimensions={"color": 4, "noise": 2}, tags=("noise", "motion_blur")),
        Rating("y", "a", 3, dimensions={"color": 3, "noise": 2}, tags=("noise",)),
        Rating("z", "a", 5, dimensions={"color": 5, "noise": 3}, tags=()),
        Rating("x", "b", 2, dimensions={"color": 2}, tags=("compression",)),
        Rating("y", "b", 2, dimensions={"color": 1}, tags=("compression",)),
    ]
    analysis = analyse_ratings(ratings)
    assert analysis.method == "finevd"
    a = analysis.item("a")
    assert a.dimensions["color"].mos == pytest.approx(4.0)
    assert a.dimensions["color"].std == pytest.approx(1.0)
    assert a.dimensions["color"].count == 3
    assert a.dimensions["noise"].mos == pytest.approx(7 / 3)
    assert a.tags == {"noise": pytest.approx(2 / 3), "motion_blur": pytest.approx(1 / 3)}
    b = analysis.item("b")
    assert b.tags == {"compression": 1.0}
    assert set(b.dimensions) == {"color"}
    out = json.loads(json.dumps(analysis.to_dict()))
    assert out["items"][0]["dimensions"]["color"]["mos"] == 4.0
    # an ACR study has no dimensions and no tags
    acr = analyse_ratings([Rating("x", "a", 4), Rating("y", "a", 3)])
    assert acr.method == "acr" and acr.items[0].tags is None and acr.items[0].dimensions == {}


def test_bad_input_raises_one_line():
    with pytest.raises(ValueError, match="no ratings"):
        analyse_ratings([])
    with pytest.raises(ValueError, match="unknown screening 'bt501'"):
        analyse_ratings([Rating("x", "a", 3)], screening=("bt500", "bt501"))
    with pytest.raises(ValueError, match="'b', which is not in the study"):
        analyse_ratings([Rating("x", "a", 3), Rating("x", "b", 3)], items=[Item("a", "a")])
    with pytest.raises(ValueError, match="no main ratings"):
        analyse_ratings([Rating("x", "a", 3, kind="training")])
    with pytest.raises(ValueError) as info:
        analyse_ratings([], screening=("nope",))
    assert "\n" not in str(info.value)


def test_sureal_stays_quiet(capsys):
    study = simulate_ratings(30, 6, careless=1, seed=2)
    sim = simulate_comparisons(6, 3, per_rater=10, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        analyse_ratings(study.ratings)
        analyse_ratings([Rating(r, f"v{i}", 3) for r in "abcdef" for i in range(12)])  # model diverges
        analyse_comparisons(sim.comparisons)
        analyse_comparisons(sim.comparisons, model="bradley-terry")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_items_rated_only_by_occasional_raters_get_no_p913_score():
    study = simulate_ratings(30, 6, seed=6)
    extra = [Rating("guest", "extra", 4, at=99), Rating("guest", "v001", 3, at=99)]
    analysis = analyse_ratings(list(study.ratings) + extra)
    assert analysis.item("extra").p913 is None and analysis.item("extra").mos == 4.0
    assert analysis.item("v001").p913 is not None
    assert any("no P.913 score for 1 items" in n for n in analysis.notes)
    assert analysis.rater("guest").inconsistency is None
    assert any("not judged" in n and "guest" in n for n in analysis.notes)


def test_to_dict_is_json_and_rounded():
    study = simulate_ratings(20, 6, careless=1, seed=1, repeats=2)
    analysis = analyse_ratings(study.ratings)
    out = json.loads(json.dumps(analysis.to_dict()))
    assert out["method"] == "acr" and out["screening"] == ["bt500", "p913"]
    item = out["items"][0]
    assert set(item) >= {"item", "mos", "ci95", "std", "count", "p913", "p913_ci95", "dimensions", "tags"}
    assert len(str(item["mos"]).split(".")[-1]) <= 3
    rater = out["raters"][0]
    assert set(rater) >= {"rater", "rejected", "reasons", "bias", "inconsistency", "bt500_share", "repeat_mad"}
    assert all(r["repeats"] == 2 for r in out["raters"])


# --- pairwise -----------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["thurstone", "bradley-terry"])
def test_pairwise_ranks_items_in_true_order(model):
    sim = simulate_comparisons(12, 10, per_rater=40, seed=1)
    analysis = analyse_comparisons(sim.comparisons, model=model)
    ids = list(sim.truth)
    scores = [analysis.item(v).score for v in ids]
    assert stats.spearmanr(scores, [sim.truth[v] for v in ids]).statistic >= 0.9
    assert sum(p.first_wins + p.second_wins for p in analysis.pairs) == len(sim.comparisons)
    assert sum(i.wins for i in analysis.items) == len(sim.comparisons)
    assert abs(float(np.mean(scores))) < 1e-6  # centred
    best = max(ids, key=lambda v: analysis.item(v).score)
    assert analysis.item(best).ci95[0] < analysis.item(best).score < analysis.item(best).ci95[1]
    json.dumps(analysis.to_dict())


def test_pairwise_counts_and_errors():
    c = [Comparison("a", "x", "y", "x"), Comparison("a", "x", "y", "y"), Comparison("a", "y", "x", "x"),
         Comparison("b", "y", "z", "y"), Comparison("b", "z", "x", "z"),
         Comparison("b", "z", "x", "x", kind="training")]
    analysis = analyse_comparisons(c)
    pairs = {(p.first, p.second): (p.first_wins, p.second_wins) for p in analysis.pairs}
    assert pairs == {("x", "y"): (2, 1), ("x", "z"): (0, 1), ("y", "z"): (1, 0)}
    assert analysis.comparisons == 5 and analysis.raters == 2
    assert any("not of kind 'main'" in n for n in analysis.notes)
    with pytest.raises(ValueError, match="no comparisons"):
        analyse_comparisons([])
    with pytest.raises(ValueError, match="unknown pairwise model"):
        analyse_comparisons(c, model="elo")
    with pytest.raises(ValueError, match="not in the study"):
        analyse_comparisons(c, items=[Item("x", "x"), Item("y", "y")])
    # two groups never compared with each other: no scores, and a note
    split = analyse_comparisons([Comparison("a", "p", "q", "p"), Comparison("a", "r", "s", "s")])
    assert all(i.score is None for i in split.items)
    assert any("2 groups" in n for n in split.notes)
