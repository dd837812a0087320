"""Agreement metrics against SciPy on known vectors, the logistic mapping, bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from vqscope.metrics import (
    METRICS,
    agreement,
    bootstrap_intervals,
    detailed_agreement,
    fit_logistic,
    krcc,
    logistic4,
    plcc,
    plcc_mapped,
    rmse,
    rmse_mapped,
    srocc,
)

PRED = np.array([10.0, 20.0, 30.0, 45.0, 50.0, 62.0, 70.0, 85.0, 90.0, 95.0])
REF = np.array([1.2, 1.9, 2.1, 2.0, 3.4, 3.1, 3.9, 4.4, 4.2, 4.8])


def test_correlations_match_scipy_on_a_known_vector():
    assert srocc(PRED, REF) == pytest.approx(stats.spearmanr(PRED, REF).statistic, abs=1e-12)
    assert krcc(PRED, REF) == pytest.approx(stats.kendalltau(PRED, REF).statistic, abs=1e-12)
    assert plcc(PRED, REF) == pytest.approx(stats.pearsonr(PRED, REF).statistic, abs=1e-12)
    # by hand: three neighbouring pairs of REF are swapped (2.1/2.0, 3.4/3.1, 4.4/4.2), so 42 of
    # the 45 pairs agree and 3 disagree: tau = (42 - 3) / 45; and rho = 1 - 6 * sum(d^2) / (n^3 - n)
    assert krcc(PRED, REF) == pytest.approx(39 / 45)
    assert srocc(PRED, REF) == pytest.approx(1 - 6 * 3 * 2 / (10**3 - 10))
    assert srocc([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert srocc([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


def test_rmse_and_nan_handling():
    assert rmse([0, 0, 0, 0], [1, -1, 1, -1]) == pytest.approx(1.0)
    assert rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(np.sqrt(4 / 3))
    # non-finite pairs are dropped before computing
    assert srocc([1, 2, np.nan, 4], [1, 2, 3, 4]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        srocc([1, 2], [1, 2, 3])


def test_agreement_bundles_the_four_numbers():
    a = agreement(PRED, REF)
    assert (a.srocc, a.krcc, a.plcc, a.rmse, a.n) == (srocc(PRED, REF), krcc(PRED, REF), plcc(PRED, REF),
                                                      rmse(PRED, REF), 10)


def test_logistic_fit_recovers_known_parameters():
    x = np.linspace(0, 100, 80)
    y = logistic4(x, 4.6, 1.3, 55.0, 9.0)
    fit = fit_logistic(x, y)
    assert fit.method == "logistic"
    assert np.allclose(fit(x), y, atol=1e-4)
    b1, b2, b3, b4 = fit.params
    assert (b1, b2, b3, abs(b4)) == pytest.approx((4.6, 1.3, 55.0, 9.0), rel=1e-3)
    # the mapping makes a saturating relation linear: mapped PLCC is 1 where raw PLCC is not
    assert plcc(x, y) < 0.98
    assert plcc_mapped(x, y) == pytest.approx(1.0, abs=1e-8)
    assert rmse_mapped(x, y) == pytest.approx(0.0, abs=1e-3)


def test_logistic_fit_handles_decreasing_and_degenerate_input():
    x = np.linspace(0, 100, 50)
    fit = fit_logistic(x, logistic4(x, 1.0, 5.0, 40.0, 10.0))  # decreasing
    assert plcc(fit(x), logistic4(x, 1.0, 5.0, 40.0, 10.0)) == pytest.approx(1.0, abs=1e-6)
    flat = fit_logistic(np.full(10, 3.0), np.arange(10.0))  # constant prediction
    assert flat.method == "linear" and np.allclose(flat(np.array([0.0, 9.0])), 4.5)
    tiny = fit_logistic([1.0, 2.0, 3.0], [1.0, 3.0, 2.0])  # too few points for four parameters
    assert tiny.method == "linear"


def test_mapped_metrics_never_worse_than_a_linear_fit():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 100, 200)
    y = logistic4(x, 90, 10, 50, 8) + rng.normal(0, 4, 200)
    slope, intercept = np.polyfit(x, y, 1)
    assert plcc_mapped(x, y) > plcc(x, y)
    assert rmse_mapped(x, y) < rmse(slope * x + intercept, y)


def test_bootstrap_is_reproducible_and_brackets_the_estimate():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 100, 120)
    y = x + rng.normal(0, 15, 120)
    a = bootstrap_intervals(x, y, n_boot=300, seed=7)
    b = bootstrap_intervals(x, y, n_boot=300, seed=7)
    c = bootstrap_intervals(x, y, n_boot=300, seed=8)
    assert a == b and a != c
    assert set(a) == set(METRICS)
    for metric, value in (("srocc", srocc(x, y)), ("krcc", krcc(x, y)), ("plcc", plcc(x, y)), ("rmse", rmse(x, y))):
        low, high = a[metric]
        assert low < value < high, metric
    # the resampled SROCC equals SciPy's on the same draw (ranks with ties averaged)
    idx = np.random.default_rng(7).integers(0, 120, (1, 120))[0]
    first = bootstrap_intervals(x, y, n_boot=1, seed=7)
    assert first["srocc"][0] == pytest.approx(stats.spearmanr(x[idx], y[idx]).statistic, abs=1e-12)
    assert first["krcc"][0] == pytest.approx(stats.kendalltau(x[idx], y[idx]).statistic, abs=1e-12)


def test_detailed_agreement_and_its_dict():
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 100, 60)
    y = 1 + 4 * x / 100 + rng.normal(0, 0.3, 60)
    d = detailed_agreement(x, y, n_boot=100, seed=0)
    assert d.srocc == pytest.approx(srocc(x, y)) and d.n == 60
    out = d.to_dict()
    assert set(METRICS) <= set(out) and out["ci_level"] == 0.95 and out["mapping"]["method"] in ("logistic", "linear")
    assert all(len(v) == 2 for v in out["ci"].values())
    with pytest.raises(ValueError):
        detailed_agreement([1.0, 2.0], [1.0, 2.0])
