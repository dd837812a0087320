"""Calibration: raw scores onto a stable percentile scale, and scores onto grades.

A raw score means "predicted MOS on 0-100" and drifts whenever a model is retrained.
BILIVQA's answer is a percentile mapping over a large fixed benchmark set: the scaled score of
a video is the share of benchmark videos this model scores lower. Two models calibrated on the
same set then agree on what "70" means (the 70th percentile), so dashboards and alert rules
survive model updates. Each model file carries its own table, with the benchmark's
fingerprint and size, so a scaled score can always be traced to the set it is relative to.

Grades follow the five-level ACR scale (ITU-T P.910) over the 0-100 score in equal bands by
default; the thresholds and labels are configurable, and a scale can be read on the scaled
score instead (`basis="scaled"`), so that grades, like scaled scores, survive model updates.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

GRADES = ("bad", "poor", "fair", "good", "excellent")


#: What a grade scale's thresholds are read on: the raw 0-100 score, or the scaled score
#: (the percentile on the benchmark set, which stays put when the model is retrained).
GRADE_BASES = ("score", "scaled")


@dataclass(frozen=True)
class GradeScale:
    thresholds: tuple[float, ...] = (20.0, 40.0, 60.0, 80.0)  # lower bounds of poor..excellent
    labels: tuple[str, ...] = GRADES
    basis: str = "score"  # "score" (raw 0-100) or "scaled" (percentile on the benchmark set)

    def __post_init__(self) -> None:
        object.__setattr__(self, "thresholds", tuple(float(t) for t in self.thresholds))
        object.__setattr__(self, "labels", tuple(str(label) for label in self.labels))
        if len(self.labels) != len(self.thresholds) + 1:
            raise ValueError("a grade scale needs exactly one more label than thresholds")
        if list(self.thresholds) != sorted(self.thresholds) or len(set(self.thresholds)) != len(self.thresholds):
            raise ValueError("grade thresholds must be strictly increasing")
        if len(set(self.labels)) != len(self.labels) or not all(self.labels):
            raise ValueError("grade labels must be distinct and non-empty")
        if self.basis not in GRADE_BASES:
            raise ValueError(f"grade basis must be one of {', '.join(GRADE_BASES)}, not {self.basis!r}")

    def grade(self, score: float) -> str:
        return self.labels[int(np.searchsorted(self.thresholds, score, side="right"))]

    def to_dict(self) -> dict[str, Any]:
        return {"thresholds": list(self.thresholds), "labels": list(self.labels), "basis": self.basis}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GradeScale":
        return cls(
            thresholds=tuple(data["thresholds"]),
            labels=tuple(data["labels"]),
            basis=str(data.get("basis", "score")),  # files written before `basis` existed
        )

    @classmethod
    def parse(cls, thresholds: str | None = None, labels: str | None = None, basis: str | None = None,
              base: "GradeScale | None" = None) -> "GradeScale":
        """A scale from command-line text ("20,40,60,80", "bad,poor,fair,good,excellent").

        What is not given is taken from `base` (default: the five ACR grades in 20-point bands),
        so `--grade-thresholds` alone keeps the labels. Raises ValueError with a readable message.
        """
        base = base or cls()
        if thresholds is not None:
            try:
                values = tuple(float(t) for t in thresholds.split(",") if t.strip())
            except ValueError:
                raise ValueError(f"grade thresholds {thresholds!r} are not comma-separated numbers") from None
        else:
            values = base.thresholds
        names = tuple(t.strip() for t in labels.split(",")) if labels is not None else base.labels
        if labels is None and len(names) != len(values) + 1:
            raise ValueError(f"{len(values)} grade thresholds need {len(values) + 1} labels: give --grade-labels too")
        return cls(thresholds=values, labels=names, basis=basis or base.basis)


@dataclass(frozen=True)
class Calibration:
    """Percentile table: `raw[i]` is the raw score at percentile `percentile[i]`."""

    raw: tuple[float, ...]
    percentile: tuple[float, ...]
    benchmark: str
    fingerprint: str
    size: int
    grades: GradeScale = field(default_factory=GradeScale)

    def __post_init__(self) -> None:
        if len(self.raw) != len(self.percentile) or len(self.raw) < 2:
            raise ValueError("a calibration table needs at least two matching points")
        if any(b <= a for a, b in zip(self.raw, self.raw[1:])):
            raise ValueError("calibration raw scores must be strictly increasing")

    @classmethod
    def fit(
        cls,
        scores: Sequence[float],
        benchmark: str,
        fingerprint: str,
        grades: GradeScale | None = None,
        points: int = 101,
    ) -> "Calibration":
        """Table of `points` percentiles over benchmark scores (ties merged, so monotone)."""
        values = np.sort(np.asarray(scores, dtype=np.float64))
        if values.size < 2:
            raise ValueError("calibration needs at least two benchmark scores")
        pct = np.linspace(0.0, 100.0, points)
        raw = np.quantile(values, pct / 100.0)
        raw_unique, inverse = np.unique(np.round(raw, 6), return_inverse=True)
        merged = np.array([pct[inverse == i].mean() for i in range(raw_unique.size)])
        if raw_unique.size < 2:
            raise ValueError("calibration needs benchmark scores that are not all equal")
        return cls(
            raw=tuple(float(r) for r in raw_unique),
            percentile=tuple(float(p) for p in merged),
            benchmark=benchmark,
            fingerprint=fingerprint,
            size=int(values.size),
            grades=grades or GradeScale(),
        )

    def scaled(self, score: float) -> float:
        """Percentile of `score` among the benchmark (0-100), linear between table points."""
        return float(np.interp(score, self.raw, self.percentile, left=0.0, right=100.0))

    def grade(self, score: float) -> str:
        return self.grades.grade(score)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["raw"], d["percentile"] = list(self.raw), list(self.percentile)
        d["grades"] = self.grades.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Calibration":
        return cls(
            raw=tuple(data["raw"]),
            percentile=tuple(data["percentile"]),
            benchmark=str(data["benchmark"]),
            fingerprint=str(data["fingerprint"]),
            size=int(data["size"]),
            grades=GradeScale.from_dict(data.get("grades", GradeScale().to_dict())),
        )


def fingerprint(items: Iterable[str]) -> str:
    """Order-independent SHA-256 over the identities (e.g. content hashes) of benchmark videos."""
    digest = hashlib.sha256()
    for item in sorted(items):
        digest.update(item.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()
