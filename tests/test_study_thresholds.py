"""Grades set by people: thresholds fitted to simulated raters whose boundaries are known."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vqscope.calibration import GradeScale
from vqscope.errors import StudyError
from vqscope.features import FeatureConfig
from vqscope.heads import HeadConfig, PredictionNetwork
from vqscope.model import Model, ModelInfo
from vqscope.studies.ratings import Item, Rating
from vqscope.studies.thresholds import ThresholdFitError, fit_grade_thresholds, item_scores, regrade
from test_model import tiny_model

#: Where the simulated raters' categories change (bad|poor, poor|fair, fair|good, good|excellent).
TRUE_CUTS = (30.0, 45.0, 58.0, 72.0)
OLD = GradeScale()  # the default 20-point bands


def simulated_study(cuts=TRUE_CUTS, *, seed=0, videos=100, raters=8, noise=5.0, bias=2.0, lo=5.0, hi=95.0):
    """Raters see latent quality = model score + their own bias + noise, and answer the
    category whose band (cut at `cuts`) the latent value falls in."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(lo, hi, videos)
    scores = {f"v{i}": float(v) for i, v in enumerate(x)}
    leniency = rng.normal(0.0, bias, raters)
    ratings = []
    for r in range(raters):
        categories = 1 + np.searchsorted(cuts, x + leniency[r] + rng.normal(0.0, noise, videos))
        ratings += [Rating(f"r{r}", f"v{i}", int(c)) for i, c in enumerate(categories)]
    return scores, ratings


def test_fitted_thresholds_recover_the_raters_boundaries():
    scores, ratings = simulated_study()
    fit = fit_grade_thresholds(scores, ratings, old=OLD)
    # Tolerance 3 points: over 500 simulated studies of this design the error of each threshold
    # has RMSE ~0.95 and 99th percentile <= 2.7 (most of it the 8-rater panel's average leniency);
    # 3 points is far below the 13-15 point gaps between the cuts and the old scale's 5-10 point
    # misses, so a wrong sign, scale or centring of cut / slope fails it.
    assert fit.new_thresholds == pytest.approx(TRUE_CUTS, abs=3.0)
    assert all(fit.estimated) and fit.notes == ()
    for new, truth, se in zip(fit.new_thresholds, TRUE_CUTS, fit.new_se):
        assert 0 < se < 3 and abs(new - truth) <= 4 * se  # the interval means something
    assert fit.slope > 0
    assert (fit.n_items, fit.n_ratings) == (100, 800)
    assert fit.new.exact >= fit.old.exact + 0.05  # the fitted scale agrees better with the raters
    assert fit.old.exact == pytest.approx(
        np.mean([OLD.grade(scores[r.item]) == OLD.labels[r.score - 1] for r in ratings]))
    assert sum(g.videos for g in fit.new.per_grade) == 100
    assert sum(g.ratings for g in fit.new.per_grade) == 800
    poor = fit.new.per_grade[1]
    assert poor.label == "poor" and 0 < poor.share <= 1


def test_table_and_dict_show_old_and_new_side_by_side():
    scores, ratings = simulated_study()
    fit = fit_grade_thresholds(scores, ratings, old=OLD)
    table = fit.table()
    lines = table.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert "old from" in lines[1] and "new from" in lines[1]
    fair = next(line for line in lines if line.startswith("fair"))
    assert "40.0" in fair and f"{fit.new_thresholds[1]:.1f}" in fair
    data = json.loads(json.dumps(fit.to_dict()))
    assert data["new_thresholds"] == list(fit.new_thresholds)
    assert data["agreement"]["old"]["exact"] == fit.old.exact
    assert fit.scale == GradeScale(fit.new_thresholds, OLD.labels, "score")


def test_a_category_nobody_used_keeps_its_old_thresholds():
    # Nobody says "fair": raters go from poor straight to good at 50.
    scores, ratings = simulated_study((30.0, 50.0, 50.0, 72.0))
    assert {r.score for r in ratings} == {1, 2, 4, 5}
    fit = fit_grade_thresholds(scores, ratings, old=OLD)
    assert fit.estimated == (True, False, False, True)
    assert fit.new_thresholds[1:3] == (40.0, 60.0)
    assert fit.new_se[1:3] == (None, None)
    assert fit.new_thresholds[0] == pytest.approx(30.0, abs=3.0)
    assert fit.new_thresholds[3] == pytest.approx(72.0, abs=3.0)
    assert any("nobody rated 'fair'" in note and "poor|fair and fair|good" in note for note in fit.notes)
    assert "(kept)" in fit.table()


def test_a_kept_threshold_on_the_wrong_side_of_a_fitted_one_is_moved():
    # Nobody says "excellent", and raters' fair|good boundary (85) lies above the old good|excellent (80).
    scores, ratings = simulated_study((30.0, 45.0, 85.0, 500.0))
    fit = fit_grade_thresholds(scores, ratings, old=OLD)
    assert fit.estimated == (True, True, True, False)
    assert fit.new_thresholds[2] == pytest.approx(85.0, abs=3.0)
    assert fit.new_thresholds[2] < fit.new_thresholds[3] <= 100.0  # strictly increasing, in range
    assert any("nobody rated above 'good'" in note for note in fit.notes)
    assert any("kept old good|excellent threshold 80.0" in note for note in fit.notes)
    assert "(moved)" in next(line for line in fit.table().splitlines() if line.startswith("excellent"))


def test_a_boundary_beyond_the_range_is_clipped():
    scores, ratings = simulated_study((30.0, 45.0, 58.0, 104.0), videos=150, noise=6.0)
    assert 5 in {r.score for r in ratings}
    fit = fit_grade_thresholds(scores, ratings, old=OLD)
    assert fit.new_thresholds[3] == 100.0
    assert any("good|excellent threshold came out at" in note and "clipped to 100" in note for note in fit.notes)


def test_scores_that_fall_as_categories_rise_are_refused():
    scores, ratings = simulated_study()
    flipped = {item: 100.0 - value for item, value in scores.items()}
    with pytest.raises(ThresholdFitError, match="fall as raters' categories rise") as caught:
        fit_grade_thresholds(flipped, ratings, old=OLD)
    assert isinstance(caught.value, ValueError) and "\n" not in str(caught.value)
    assert isinstance(caught.value, StudyError) and caught.value.kind == "threshold_fit"


def test_too_few_rated_videos_are_refused_and_unscored_ratings_left_out():
    scores, ratings = simulated_study(videos=12)
    few = {item: scores[item] for item in list(scores)[:9]}
    with pytest.raises(ThresholdFitError, match="only 9 rated videos"):
        fit_grade_thresholds(few, ratings, old=OLD)
    fit = fit_grade_thresholds({item: scores[item] for item in list(scores)[:10]}, ratings, old=OLD)
    assert fit.n_items == 10 and fit.n_ratings == 80
    assert any("ratings of 2 videos without a model value were left out" in note for note in fit.notes)


def test_other_bad_input_is_refused_in_one_line():
    scores, ratings = simulated_study()
    with pytest.raises(ThresholdFitError, match="raters used one category"):
        fit_grade_thresholds(scores, [Rating(r.rater, r.item, 3) for r in ratings], old=OLD)
    with pytest.raises(ThresholdFitError, match="not a number from 0 to 100"):
        fit_grade_thresholds({**scores, "v0": 4.2e2}, ratings, old=OLD)
    with pytest.raises(ThresholdFitError, match="old scale reads 'score'"):
        fit_grade_thresholds(scores, ratings, old=OLD, basis="scaled")
    with pytest.raises(ThresholdFitError, match="five-grade scale"):
        fit_grade_thresholds(scores, ratings, old=GradeScale((50.0,), ("low", "high")))


def test_regrade_writes_a_model_that_saves_and_loads_with_the_new_thresholds(tmp_path):
    model = tiny_model()
    scores, ratings = simulated_study()
    fit = fit_grade_thresholds(scores, ratings, old=model.grades)
    new = regrade(model, fit, version=None, study="week-12")
    path = new.save(tmp_path / "tiny-2.safetensors")
    loaded = Model.load(path)
    assert loaded.id == "tiny@2"  # a new version by default
    assert loaded.grades.thresholds == fit.new_thresholds
    assert loaded.calibration.grades == loaded.grades
    assert (loaded.calibration.raw, loaded.calibration.percentile) == (model.calibration.raw,
                                                                       model.calibration.percentile)
    note = loaded.info.training["grades"]
    assert note["study"] == "week-12" and note["from"] == "tiny@1"
    assert (note["videos"], note["ratings"]) == (100, 800)
    assert note["old_thresholds"] == [20.0, 40.0, 60.0, 80.0]
    assert note["new_thresholds"] == list(fit.new_thresholds)
    assert note["agreement"]["new"]["exact"] == fit.new.exact
    assert loaded.info.training["data"] == "none"  # what was there stays
    assert loaded.grade(50.0) == fit.scale.grade(50.0)
    assert model.grades == OLD and "grades" not in model.info.training  # the old model is untouched
    assert regrade(model, fit, version=7, study="s").id == "tiny@7"


def test_with_grades_works_without_a_percentile_table(tmp_path):
    torch.manual_seed(0)
    features = FeatureConfig(spatial=("frame_stats",), temporal=("motion_stats",))
    network = PredictionNetwork(HeadConfig(in_dim=features.dim, hidden=(8,)))
    bare = Model(ModelInfo("bare", 3), features, network)
    scale = GradeScale((10.0, 30.0, 50.0, 70.0))
    new = bare.with_grades(scale, version=4, name="bare-rated")
    assert new.calibration is None and new.grades == scale and new.id == "bare-rated@4"
    assert bare.grades == OLD
    loaded = Model.load(new.save(tmp_path / "bare.safetensors"))
    assert loaded.grades == scale and loaded.calibration is None
    assert loaded.grade(35.0) == "fair"
    with pytest.raises(ValueError, match="no percentile table"):
        bare.with_grades(GradeScale(basis="scaled"))


def test_item_scores_reads_the_basis_a_study_recorded():
    items = [Item("a", "a.mp4", model_score=40.0, scaled_score=55.0),
             Item("b", "b.mp4", model_score=None),
             Item("c", "c.mp4", model_score=70.0, kind="anchor")]
    assert item_scores(items, "score") == {"a": 40.0}
    assert item_scores(items, "scaled") == {"a": 55.0}
