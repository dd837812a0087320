"""Scatter plots of predicted score against MOS, with the fitted logistic curve.

A correlation coefficient hides how a model fails (a cloud, a saturated top, one test set
offset from another); a scatter plot shows it at a glance. Rendered with matplotlib's Agg
backend, so it needs no display.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .metrics import DetailedAgreement


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "plot"


def scatter_plot(
    pred: np.ndarray,
    target: np.ndarray,
    path: str | os.PathLike[str],
    title: str,
    agreement: DetailedAgreement | None = None,
) -> str:
    """Write a PNG of `pred` (x, 0-100) against `target` (y, MOS on 0-100) to `path`."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 4.6), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(pred, target, s=10, alpha=0.55, edgecolors="none", color="#2f6db5")
    if agreement is not None:
        xs = np.linspace(np.nanmin(pred), np.nanmax(pred), 200)
        ax.plot(xs, agreement.mapping(xs), color="#d0452b", linewidth=1.6,
                label=f"{agreement.mapping.method} fit")
        ax.legend(loc="lower right", fontsize=8)
        title += (f"\nSROCC {agreement.srocc:.3f}  PLCC {agreement.plcc_mapped:.3f} (mapped)  "
                  f"n={agreement.n}")
    ax.set_xlabel("predicted score (0-100)")
    ax.set_ylabel("MOS mapped to 0-100")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(os.fspath(path), format="png")
    return os.fspath(path)
