"""Simulated raters and study planning."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from vqscope.studies.simulate import (
    StudyPlan,
    plan_study,
    simulate_comparisons,
    simulate_ratings,
)


def test_simulated_study_follows_its_parameters():
    study = simulate_ratings(50, 8, careless=2, per_rater=25, repeats=3, seed=7)
    assert len(study.truth) == 50 and len(study.raters) == 8
    assert all(1.0 <= q <= 5.0 for q in study.truth.values())
    assert len(study.careless) == 2 and set(study.careless) <= set(study.raters)
    main = [r for r in study.ratings if r.kind == "main"]
    repeat = [r for r in study.ratings if r.kind == "repeat"]
    assert len(main) == 8 * 25 and len(repeat) == 8 * 3
    assert all(1 <= r.score <= 5 for r in study.ratings)
    per_rater = Counter(r.rater for r in main)
    assert set(per_rater.values()) == {25}
    assert len({(r.rater, r.item) for r in main}) == len(main)  # no rater sees a video twice as main
    coverage = Counter(r.item for r in main)
    assert set(coverage) == set(study.truth) and max(coverage.values()) - min(coverage.values()) <= 1
    seen = {(r.rater, r.item) for r in main}
    assert all((r.rater, r.item) in seen for r in repeat)  # repeats are of videos the rater saw
    # deterministic per seed
    again = simulate_ratings(50, 8, careless=2, per_rater=25, repeats=3, seed=7)
    assert again.ratings == study.ratings and again.careless == study.careless


def test_careful_raters_follow_truth_and_careless_ones_do_not():
    study = simulate_ratings(200, 6, careless=1, bias_sd=0.0, inconsistency=(0.2, 0.2), seed=1)
    truth = study.truth
    for rater in study.raters:
        mine = [(r.score, truth[r.item]) for r in study.ratings if r.rater == rater]
        corr = np.corrcoef(*zip(*mine))[0, 1]
        if rater in study.careless:
            assert abs(corr) < 0.25
            assert len({s for s, _ in mine}) == 5  # uniform over 1-5
        else:
            assert corr > 0.9
            assert np.mean([abs(s - q) for s, q in mine]) < 0.45


def test_simulate_bad_arguments():
    with pytest.raises(ValueError, match="careless"):
        simulate_ratings(10, 3, careless=4)
    with pytest.raises(ValueError, match="per_rater"):
        simulate_ratings(10, 3, per_rater=11)
    with pytest.raises(ValueError, match="inconsistency"):
        simulate_ratings(10, 3, inconsistency=(0.8, 0.3))
    with pytest.raises(ValueError, match="n_videos"):
        simulate_ratings(0, 3)


def test_simulated_comparisons_prefer_the_better_video_mostly():
    sim = simulate_comparisons(10, 4, per_rater=50, inconsistency=0.3, seed=0)
    assert len(sim.comparisons) == 200
    right = [c.preferred == max((c.first, c.second), key=sim.truth.get) for c in sim.comparisons]
    assert 0.75 < np.mean(right) < 1.0


def test_more_raters_give_narrower_intervals():
    few = plan_study(40, 6, runs=3, seed=1)
    many = plan_study(40, 18, runs=3, seed=1)
    assert many.ci_width_median < few.ci_width_median
    assert many.ci_width_p90 < few.ci_width_p90
    assert many.ci_width_median_100 == pytest.approx(many.ci_width_median * 25)
    assert many.srocc_mean >= few.srocc_mean - 0.01
    assert 0.0 <= many.srocc_p05 <= many.srocc_mean <= 1.0


def test_plan_reports_screening_and_is_json():
    plan = plan_study(60, 10, careless_share=0.2, runs=3, seed=0)
    assert isinstance(plan, StudyPlan)
    assert plan.careless == 2
    assert plan.careless_caught is not None and plan.careless_caught >= 0.8
    assert plan.careful_rejected <= 1.0
    out = json.loads(json.dumps(plan.to_dict()))
    assert out["videos"] == 60 and out["raters"] == 10 and out["runs"] == 3
    assert out["screening"] == ["bt500", "p913"]
    assert isinstance(out["recommendation"], str) and len(out["recommendation"]) > 50
    text = plan.text()
    assert "95% interval" in text and "SROCC" in text and plan.recommendation in text
    none = plan_study(30, 4, careless_share=0.0, runs=2)
    assert none.careless == 0 and none.careless_caught is None
    assert json.loads(json.dumps(none.to_dict()))["careless_caught"] is None


def test_plan_with_partial_assignment():
    plan = plan_study(60, 12, per_rater=30, runs=2, careless_share=0.0)
    assert plan.ratings_per_video == pytest.approx(6.0)
    assert plan.per_rater == 30


@pytest.mark.parametrize("kwargs, match", [
    (dict(videos=2, raters=5), "videos"),
    (dict(videos=10, raters=1), "raters"),
    (dict(videos=10, raters=5, careless_share=1.0), "careless_share"),
    (dict(videos=10, raters=5, careless_share=-0.1), "careless_share"),
    (dict(videos=10, raters=5, runs=0), "runs"),
    (dict(videos=10, raters=5, per_rater=11), "per_rater"),
    (dict(videos=100, raters=3, per_rater=10), "fewer than 2 ratings per video"),
    (dict(videos=10, raters=5, screening=("bt500", "kurtosis")), "unknown screening"),
    (dict(videos=10.5, raters=5), "videos"),
])
def test_plan_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        plan_study(**kwargs)
    assert "\n" not in str(info.value)
