"""Agreement between predicted and reference scores: the four numbers VQA papers report.

SROCC and KRCC measure monotonic agreement (ranking), PLCC linear agreement, RMSE error on
the reference scale. Rank and linear correlations come from SciPy, not reimplemented.
"""

from __future__ import annotations

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
    return float(stats.pearsonr(p, r).statistic)


def rmse(pred, ref) -> float:
    p, r = _clean(pred, ref)
    return float(np.sqrt(np.mean((p - r) ** 2)))


def agreement(pred, ref) -> Agreement:
    p, r = _clean(pred, ref)
    return Agreement(srocc(p, r), krcc(p, r), plcc(p, r), rmse(p, r), int(p.size))
