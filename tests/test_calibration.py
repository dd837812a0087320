"""Percentile scale and grades."""

from __future__ import annotations

import numpy as np
import pytest

from vqscope.calibration import Calibration, GradeScale, fingerprint


def test_scaled_score_is_the_percentile_on_the_benchmark():
    scores = np.linspace(10, 90, 801)
    cal = Calibration.fit(scores, "bench", fingerprint(["a", "b"]))
    assert cal.scaled(50.0) == pytest.approx(50.0, abs=0.2)
    assert cal.scaled(10.0) == pytest.approx(0.0, abs=0.2)
    assert cal.scaled(0.0) == 0.0 and cal.scaled(100.0) == 100.0
    grid = np.linspace(0, 100, 500)
    assert np.all(np.diff([cal.scaled(s) for s in grid]) >= 0)  # monotone


def test_two_models_agree_at_the_same_rank():
    """Same benchmark, different raw scales: the video at the same rank gets the same scaled score."""
    rng = np.random.default_rng(0)
    quality = rng.random(400)
    model_a = 20 + 60 * quality  # one model's raw scores
    model_b = 100 / (1 + np.exp(-6 * (quality - 0.5)))  # another, monotone in the same quality
    cal_a = Calibration.fit(model_a, "bench", "x")
    cal_b = Calibration.fit(model_b, "bench", "x")
    for i in rng.choice(400, 25, replace=False):
        assert cal_a.scaled(model_a[i]) == pytest.approx(cal_b.scaled(model_b[i]), abs=0.6)


def test_ties_and_degenerate_sets():
    cal = Calibration.fit([1, 1, 1, 2, 2, 3], "b", "x")
    assert list(cal.raw) == sorted(set(cal.raw))
    with pytest.raises(ValueError):
        Calibration.fit([5, 5, 5], "b", "x")
    with pytest.raises(ValueError):
        Calibration.fit([5], "b", "x")


def test_grades_and_round_trip():
    g = GradeScale()
    assert [g.grade(s) for s in (0, 19.9, 20, 45, 60, 79.9, 80, 100)] == [
        "bad", "bad", "poor", "fair", "good", "good", "excellent", "excellent"]
    custom = GradeScale(thresholds=(30, 50, 65, 85))
    assert custom.grade(64) == "fair"
    with pytest.raises(ValueError):
        GradeScale(thresholds=(50, 40, 60, 80))
    cal = Calibration.fit(range(100), "b", "x", grades=custom)
    assert Calibration.from_dict(cal.to_dict()) == cal


def test_fingerprint_ignores_order():
    assert fingerprint(["a", "b", "c"]) == fingerprint(["c", "a", "b"]) != fingerprint(["a", "b"])
