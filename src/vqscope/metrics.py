"""Agreement between predicted and reference scores: the four numbers VQA papers report.

SROCC and KRCC measure monotonic agreement (ranking), PLCC linear agreement, RMSE error on
the reference scale. Rank and linear correlations come from SciPy, not reimplemented.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Agreement:
    srocc: float
    krcc: float
    plcc: float
    rmse: float
    n: int

    def to_dict(self) -> dict[str, float]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _clean(pred, ref) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64).ravel()
    r = np.asarray(ref, dtype=np.float64).ravel()
    if p.shape != r.shape:
        raise ValueError(f"prediction and reference lengths differ: {p.size} vs {r.size}")
    keep = np.isfinite(p) & np.isfinite(r)
    return p[keep], r[keep]


def srocc(pred, ref) -> float:
    p, r = _clean(pred, ref)
    return float(stats.spearmanr(p, r).statistic)


def krcc(pred, ref) -> float:
    p, r = _clean(pred, ref)
    return float(stats.kendalltau(p, r).statistic)


def plcc(pred, ref) -> float:
    p, r = _clean(pred, ref)
    if p.size < 2:  # undefined, as SROCC and KRCC of fewer than two values are (NaN, not an error)
        return float("nan")
    return float(stats.pearsonr(p, r).statistic)


def rmse(pred, ref) -> float:
    p, r = _clean(pred, ref)
    return float(np.sqrt(np.mean((p - r) ** 2)))


def agreement(pred, ref) -> Agreement:
    p, r = _clean(pred, ref)
    return Agreement(srocc(p, r), krcc(p, r), plcc(p, r), rmse(p, r), int(p.size))


# --- after a monotonic mapping, with confidence intervals -----------------------------------
# Predicted scores and MOS need not be linearly related (a model may compress the top of the
# scale), so VQEG and the VQA literature report PLCC and RMSE after fitting a monotonic
# 4-parameter logistic from prediction to MOS. Intervals come from resampling the videos,
# because a correlation over a few hundred videos moves by several hundredths between draws
# and differences below that are not findings.


def logistic4(x, b1: float, b2: float, b3: float, b4: float):
    """VQEG 4-parameter logistic: (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2."""
    from scipy.special import expit

    return (b1 - b2) * expit((np.asarray(x, dtype=np.float64) - b3) / (abs(b4) + 1e-12)) + b2


@dataclass(frozen=True)
class LogisticMap:
    """A fitted prediction -> MOS mapping; `method` is "logistic", or "linear" where the
    logistic fit did not converge (degenerate or very small sets)."""

    params: tuple[float, ...]
    method: str = "logistic"

    def __call__(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.method == "logistic":
            return logistic4(x, *self.params)
        slope, intercept = self.params
        return slope * x + intercept

    def to_dict(self) -> dict[str, object]:
        return {"method": self.method, "params": [round(float(p), 6) for p in self.params]}


def fit_logistic(pred, ref) -> LogisticMap:
    """Least-squares fit of `logistic4` from predictions to reference scores."""
    from scipy.optimize import OptimizeWarning, curve_fit

    p, r = _clean(pred, ref)
    if p.size < 2 or np.ptp(p) == 0:
        return LogisticMap((0.0, float(np.mean(r)) if r.size else 0.0), "linear")
    increasing = np.corrcoef(p, r)[0, 1] >= 0 if np.ptp(r) > 0 else True
    high, low = (r.max(), r.min()) if increasing else (r.min(), r.max())
    start = (high, low, float(np.median(p)), float(np.std(p)) / 2 or 1.0)
    if p.size >= 5:
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)  # covariance is not used
                params, _ = curve_fit(logistic4, p, r, p0=start, maxfev=20000)
            if np.all(np.isfinite(params)):
                return LogisticMap(tuple(float(v) for v in params), "logistic")
        except (RuntimeError, ValueError):
            pass
    slope, intercept = np.polyfit(p, r, 1)
    return LogisticMap((float(slope), float(intercept)), "linear")


def plcc_mapped(pred, ref) -> float:
    """PLCC after the 4-parameter logistic mapping."""
    p, r = _clean(pred, ref)
    return plcc(fit_logistic(p, r)(p), r)


def rmse_mapped(pred, ref) -> float:
    """RMSE (on the reference scale) after the 4-parameter logistic mapping."""
    p, r = _clean(pred, ref)
    return rmse(fit_logistic(p, r)(p), r)


METRICS = ("srocc", "krcc", "plcc", "rmse", "plcc_mapped", "rmse_mapped")


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    with np.errstate(all="ignore"):
        return (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))


def _resampled_metrics(p: np.ndarray, r: np.ndarray, mapped: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Every metric in `METRICS` for each row of resampling indices `idx` [draws, n].

    Rank and linear correlations are computed for all draws at once (ranks with ties
    averaged, as SciPy's spearmanr does); only Kendall's tau loops.
    """
    P, R, M = p[idx], r[idx], mapped[idx]
    out = np.empty((idx.shape[0], len(METRICS)))
    out[:, 0] = _rowwise_pearson(stats.rankdata(P, axis=1), stats.rankdata(R, axis=1))
    with np.errstate(all="ignore"):
        out[:, 1] = [stats.kendalltau(a, b).statistic for a, b in zip(P, R)]
    out[:, 2] = _rowwise_pearson(P, R)
    out[:, 3] = np.sqrt(np.mean((P - R) ** 2, axis=1))
    out[:, 4] = _rowwise_pearson(M, R)
    out[:, 5] = np.sqrt(np.mean((M - R) ** 2, axis=1))
    return out


def bootstrap_intervals(
    pred, ref, n_boot: int = 1000, level: float = 0.95, seed: int = 0, mapping: LogisticMap | None = None
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of every metric in `METRICS`, resampling videos.

    The logistic mapping is fitted once on the full set and held fixed across resamples
    (refitting a curve a thousand times per cell costs seconds and barely moves the interval).
    A fixed `seed` makes reports reproducible.
    """
    p, r = _clean(pred, ref)
    if not 0 < level < 1:
        raise ValueError("level must lie in (0, 1)")
    if p.size < 3 or n_boot < 1:
        return {m: (float("nan"), float("nan")) for m in METRICS}
    mapping = mapping or fit_logistic(p, r)
    mapped = mapping(p)
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // p.size)  # bound the memory of one block of draws
    draws = np.concatenate([
        _resampled_metrics(p, r, mapped, rng.integers(0, p.size, (min(chunk, n_boot - start), p.size)))
        for start in range(0, n_boot, chunk)
    ])
    tail = (1.0 - level) / 2.0 * 100.0
    out = {}
    for j, name in enumerate(METRICS):
        column = draws[:, j][np.isfinite(draws[:, j])]
        if column.size == 0:
            out[name] = (float("nan"), float("nan"))
        else:
            lo, hi = np.percentile(column, [tail, 100.0 - tail])
            out[name] = (float(lo), float(hi))
    return out


@dataclass(frozen=True)
class DetailedAgreement:
    """The four numbers plus PLCC/RMSE after logistic mapping and bootstrap intervals."""

    srocc: float
    krcc: float
    plcc: float
    rmse: float
    plcc_mapped: float
    rmse_mapped: float
    n: int
    mapping: LogisticMap
    intervals: dict[str, tuple[float, float]]
    level: float = 0.95

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {m: round(float(getattr(self, m)), 4) for m in METRICS}
        out["n"] = self.n
        out["ci_level"] = self.level
        out["ci"] = {k: [round(v[0], 4), round(v[1], 4)] for k, v in self.intervals.items()}
        out["mapping"] = self.mapping.to_dict()
        return out


def detailed_agreement(pred, ref, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> DetailedAgreement:
    p, r = _clean(pred, ref)
    if p.size < 3:
        raise ValueError(f"need at least 3 videos with finite scores to compare, got {p.size}")
    mapping = fit_logistic(p, r)
    mapped = mapping(p)
    return DetailedAgreement(
        srocc=srocc(p, r),
        krcc=krcc(p, r),
        plcc=plcc(p, r),
        rmse=rmse(p, r),
        plcc_mapped=plcc(mapped, r),
        rmse_mapped=rmse(mapped, r),
        n=int(p.size),
        mapping=mapping,
        intervals=bootstrap_intervals(p, r, n_boot, level, seed, mapping),
        level=level,
    )


# -- detection (distortion types) ------------------------------------------------------------
def roc_auc(scores, labels) -> float:
    """Area under the ROC curve: the chance that a random positive outscores a random negative
    (ties count half), computed from ranks (Mann-Whitney U). NaN without both classes."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = stats.rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def f1_score(scores, labels, threshold: float = 0.5) -> float:
    """F1 of the decision `score >= threshold` (0 when nothing is predicted or present)."""
    pred = np.asarray(scores, dtype=np.float64) >= threshold
    y = np.asarray(labels).astype(bool)
    tp = int((pred & y).sum())
    denom = int(pred.sum()) + int(y.sum())
    return 2.0 * tp / denom if denom else 0.0
