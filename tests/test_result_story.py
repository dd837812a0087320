"""One story per result (issue 19): grades that agree with the distortions the same result
names, a reason where overall sits below every dimension, and a caveat for videos far smaller
than the training videos. Built on constant tiny models and hand-made results, not on media."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from vqscope.calibration import GRADES, cap_grade, designed_damage_scale, dimension_scales, grade_dimension
from vqscope.data.distortions import quality_loss
from vqscope.describe import OverallParts, SizeNote, describe, describe_dimension, overall_below_sentence
from vqscope.features import FeatureConfig
from vqscope.heads import HeadConfig, Part, PredictionNetwork
from vqscope.model import Model, ModelInfo
from vqscope.result import DimensionScore
from vqscope.taxonomy import DIMENSIONS, DISTORTION_TYPES

DESIGNED = {"corpus": {"distortions": {"flicker": [0.04, 0.08, 0.14, 0.22]}},
            "target": "per frame, per dimension: 100 * prod(1 - quality_loss(level)) over the distortions"}
LIKELY_FLICKER = math.log(0.97 / 0.03)  # logit of p = 0.97
UNLIKELY = -4.0  # p = 0.018


def constant_composed_model(training: dict | None = None, flicker_keep: float = 0.8, regression: float = 0.4,
                            overall_trees: bool = True) -> Model:
    """A composed network as vqscope-lite@7's, but every tree a constant: flicker likely
    (p=0.97) and leaving `flicker_keep` of the quality, every other type unlikely and harmless,
    and an overall regressor at `regression` (share of 100). Temporal is then 80.6, the other
    dimensions 100, and overall the mean of the composition and the regression."""
    features = FeatureConfig(spatial=("frame_stats",), temporal=("motion_stats",))
    config = HeadConfig(in_dim=features.dim, hidden=(), heads=DIMENSIONS, distortions=DISTORTION_TYPES,
                        parts=(Part("tree_distortions", (1, 1, 1)), Part("severity_composition", (1, 1, 1)))
                        + ((Part("overall_regression", (1, 1, 1)),) if overall_trees else ()))
    network = PredictionNetwork(config)
    flicker = DISTORTION_TYPES.index("flicker")
    with torch.no_grad():
        network.distortion_head.baseline.fill_(UNLIKELY)
        network.distortion_head.baseline[flicker] = LIKELY_FLICKER
        network.severity_head.baseline.fill_(1.0)
        network.severity_head.baseline[flicker] = flicker_keep
        if overall_trees:
            network.overall_head.baseline.fill_(regression)
    info = ModelInfo("story", 1, "constant composed model", training=DESIGNED if training is None else training)
    return Model(info, features, network)


def trained_at(model: Model, short_side: float, spread_log2: float = 0.25) -> Model:
    """The model with its resolution features normalised as if trained at `short_side` px."""
    column = model.features.dim - 3  # video_meta: log2 short side, log2 long side, log2 fps
    with torch.no_grad():
        model.network.feature_mean[column] = math.log2(short_side)
        model.network.feature_std[column] = spread_log2
    return model


# -- rule 1: a dimension is not good or excellent while a type of it is likely ------------------------
def test_the_designed_damage_scale_grades_the_trained_levels():
    scale = designed_damage_scale()
    assert scale.labels == GRADES and scale.basis == "score"
    levels = [100.0 * (1.0 - quality_loss(k, 4)) for k in range(4)]  # 87, 70, 50, 30
    assert [scale.grade(s) for s in [100.0, *levels]] == ["excellent", "good", "fair", "poor", "bad"]
    # each threshold lies between two neighbouring anchors (undamaged, then the four levels)
    anchors = [100.0, *levels]
    for threshold, (upper, lower) in zip(reversed(scale.thresholds), itertools.pairwise(anchors)):
        assert lower < threshold < upper


def test_dimension_scales_come_from_the_training_record_only_where_it_says_what_scores_mean():
    scales = dimension_scales(DESIGNED, DIMENSIONS)
    assert set(scales) == {"color", "noise", "artifact", "blur", "temporal"}  # not overall
    assert dimension_scales({"data": "none"}, DIMENSIONS) == {}
    assert dimension_scales({"corpus": {"distortions": {}}, "target": "quality_loss"}, DIMENSIONS) == {}
    assert dimension_scales({"corpus": {"distortions": {"noise": [5]}}, "target": "GMSD"}, DIMENSIONS) == {}


def test_a_likely_type_caps_the_grade_at_the_middle_and_says_what_the_score_reads():
    scale = designed_damage_scale()
    capped = grade_dimension(85.0, scale, ["defocus_blur"])
    assert (capped.grade, capped.by_score, capped.capped_by, capped.capped) == ("fair", "good", ("defocus_blur",), True)
    assert grade_dimension(85.0, scale).grade == "good"
    assert grade_dimension(50.0, scale, ["noise"]).grade == "poor"  # never raised by the cap
    assert cap_grade("high", ("low", "mid", "high"), ["x"]).grade == "mid"  # any labels: the middle one


def test_a_composed_result_does_not_call_temporal_good_while_flicker_is_likely(video_factory):
    result = constant_composed_model().score(video_factory("story.mp4", n=72, fps=24))
    temporal = result.dimensions["temporal"]
    assert result.distortions["flicker"] > 0.9 and temporal.score == pytest.approx(80.6, abs=0.1)
    assert temporal.grade == "fair"  # the score alone reads "good" on the damage scale, "excellent" on 20-point bands
    assert "the score alone reads good, but a likely distortion caps the grade at fair" in temporal.description
    assert "flicker likely (p=0.97)" in temporal.description
    for clip in result.clips:  # clips follow the same rule with their own probabilities
        assert clip.dimensions["temporal"].grade == "fair"
    assert {result.dimensions[d].grade for d in ("color", "noise", "artifact", "blur")} == {"excellent"}


def test_without_a_record_of_what_scores_mean_dimensions_keep_the_overall_scale_but_are_still_capped(video_factory):
    model = constant_composed_model(training={"data": "none"}, flicker_keep=0.5)
    assert model.dimension_grades == {}
    result = model.score(video_factory("story.mp4", n=72, fps=24))
    temporal = result.dimensions["temporal"]  # 100 * (1 - 0.5 * 0.97) = 51.5: "fair" on 20-point bands
    assert temporal.grade == model.grades.grade(temporal.score) == "fair"
    mild = constant_composed_model(training={"data": "none"}, flicker_keep=0.9)
    assert mild.score(video_factory("story.mp4", n=72, fps=24)).dimensions["temporal"].grade == "fair"  # 90.3 capped


def test_shipped_designed_models_get_the_damage_scale_from_their_files():
    from vqscope.zoo import load_model

    model = load_model("vqscope-lite@7")
    assert model.dimension_grades["blur"] == designed_damage_scale()
    assert "overall" not in model.dimension_grades
    # a model whose training record names another target (human ratings, say) keeps the 20-point bands
    assert constant_composed_model(training={"target": "MOS of a rating study"}).dimension_grades == {}


# -- rule 2: what pulls overall below every dimension -------------------------------------------------
def test_overall_below_every_dimension_names_the_composition_and_the_regressor(video_factory):
    result = constant_composed_model().score(video_factory("story.mp4", n=72, fps=24))
    # composition 80.6 (flicker alone), regression 40, overall their mean
    assert result.score == pytest.approx((80.6 + 40.0) / 2, abs=0.1)
    assert ("Overall (60) sits below every dimension: the dimensions' shares multiply (temporal 81 x the rest: about 81), "
            "and overall is averaged with an overall regressor that gives 40 from the whole video") in result.description


def test_overall_parts_are_read_back_exactly_from_the_clip_scores():
    model = constant_composed_model(regression=0.25)
    dims = {d: np.array([90.0, 80.0]) for d in DIMENSIONS if d != "overall"}
    composition = np.array([0.9**5, 0.8**5]) * 100
    dims["overall"] = (composition + 25.0) / 2
    parts = model.overall_parts(dims)
    assert parts.composition == pytest.approx(composition.mean()) and parts.regression == pytest.approx(25.0)
    without = constant_composed_model(overall_trees=False).overall_parts(dims)
    assert without.composition == pytest.approx(composition.mean()) and without.regression is None


def test_each_way_of_making_overall_gets_its_own_reason():
    dims = {"color": DimensionScore(86.0, "good"), "noise": DimensionScore(99.6, "excellent"),
            "temporal": DimensionScore(81.0, "good"), "overall": DimensionScore(52.0, "fair")}
    both = overall_below_sentence(52.0, dims, OverallParts(composition=65.0, regression=39.0))
    assert both.startswith("Overall (52) sits below every dimension: the dimensions' shares multiply (temporal 81 x "
                           "color 86 x the rest: about 65), and overall is averaged with an overall regressor that gives 39")
    assert "noise" not in both  # a dimension that loses under a point is not named
    assert overall_below_sentence(52.0, dims, OverallParts(composition=52.0)).endswith("x the rest: about 52).")
    assert "head of its own" in overall_below_sentence(52.0, dims, OverallParts())
    assert overall_below_sentence(90.0, dims, OverallParts(composition=65.0)) is None  # not below every dimension
    clean = {"noise": DimensionScore(99.6, "excellent"), "overall": DimensionScore(70.0, "good")}
    assert "lose almost nothing" in overall_below_sentence(70.0, clean, OverallParts(99.5, 40.5))


def test_a_good_overall_with_likely_distortions_says_it_already_counts_them():
    dims = {"artifact": DimensionScore(82.0, "fair"), "overall": DimensionScore(63.0, "good")}
    text = describe("good", 63.0, None, [], dims, {"compression": 0.9})
    assert "Likely distortions (counted in the overall score, which stays good with them): compression" in text
    assert "counted in" not in describe("fair", 45.0, None, [], dims, {"compression": 0.9})
    sentence = describe_dimension("overall", dims["overall"], {"compression": 0.9, "flicker": 0.7}, [])
    assert sentence.endswith("; the overall score counts them and stays good.")
    assert "counts" not in describe_dimension("overall", DimensionScore(45.0, "fair"), {"compression": 0.9}, [])


def test_the_weakest_dimension_is_the_lowest_grade_first():
    dims = {"color": DimensionScore(80.0, "good"), "blur": DimensionScore(90.0, "fair")}  # blur capped
    assert "Weakest dimension: blur (fair)." in describe("fair", 50.0, None, [], dims, {"defocus_blur": 0.6})


# -- rule 3: videos far smaller than the training videos ---------------------------------------------
def test_a_video_far_below_the_training_size_is_warned_about_and_its_detail_grades_caveated(video_factory):
    model = trained_at(constant_composed_model(), short_side=432)  # the conftest video is 128x72
    result = model.score(video_factory("story.mp4", n=72, fps=24))
    assert any("128x72 is far smaller than the videos the model was trained on" in w for w in result.warnings)
    assert "At 128x72 the video is far smaller than the model's training videos" in result.description
    for name in ("noise", "artifact", "blur"):
        assert result.dimensions[name].grade == "excellent"
        assert "not reliable at 128x72" in result.dimensions[name].description
    assert "not reliable" not in result.dimensions["color"].description + result.dimensions["temporal"].description


def test_sizes_the_model_was_trained_on_get_no_warning(video_factory):
    video = video_factory("story.mp4", n=72, fps=24)
    assert trained_at(constant_composed_model(), short_side=72).score(video).warnings == []
    assert trained_at(constant_composed_model(), short_side=120).score(video).warnings == []  # under an octave
    wide = trained_at(constant_composed_model(), short_side=432, spread_log2=0.9)  # 3 sd reach below 72
    assert wide.score(video).warnings == []
    assert constant_composed_model().score(video).warnings == []  # untrained normalisation: nothing known


def test_the_shipped_default_reads_its_training_size_from_its_normalisation():
    from vqscope.zoo import load_model

    model = load_model("vqscope-lite@7")
    note = model.size_note(192, 144)
    assert note is not None and 380 < note.trained_short_side < 460
    assert model.size_note(480, 360) is None and model.size_note(406, 720) is None


def test_a_size_caveat_is_only_for_detail_dimensions_that_claim_quality():
    note = SizeNote(192, 144, trained_short_side=420.0, lowest_usual=210.0)
    good = describe_dimension("blur", DimensionScore(99.0, "excellent"), {"defocus_blur": 0.1}, [], size=note)
    assert good.endswith("not reliable at 192x144, far below the model's training sizes: such damage can go unnamed here.")
    poor = describe_dimension("blur", DimensionScore(30.0, "poor"), {"defocus_blur": 0.9}, [], size=note)
    assert "not reliable" not in poor
    assert "not reliable" not in describe_dimension("color", DimensionScore(99.0, "excellent"), {}, [], size=note)

