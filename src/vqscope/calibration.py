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

Dimension grades (color, noise, artifact, blur, temporal) have their own scale where the model
says what its dimension scores mean (`dimension_scales`), and a grade is capped where the same
result names one of the dimension's distortion types as likely (`grade_dimension`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .taxonomy import DIMENSIONS

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


# -- dimension grades ---------------------------------------------------------------------------
#: Where each grade ends on the designed damage range of the synthetic training targets, as a
#: share of that range (0: undamaged, 1: the worst trained level), from bad up to excellent:
#: the midpoints between "undamaged" and the four trained levels (at 1/4, 2/4, 3/4 and 4/4).
_DAMAGE_BAND_EDGES = (7 / 8, 5 / 8, 3 / 8, 1 / 8)


def designed_damage_scale() -> GradeScale:
    """Grades of a dimension score built on the synthetic training target, read as damage.

    Models trained by `vqscope synth` learn, per dimension, 100 * prod(1 - loss(type, level))
    (data/synth.py, data/loss_table.py). On the designed curve `quality_loss` every type's four
    levels leave 87, 70, 50 and 30, the mildest "meant to be barely visible". A dimension score
    there says how much damage of the dimension the model expects, so its grade can say the
    same: excellent when less than half of the mildest level's loss is expected, good about the
    mildest level, fair, poor and bad about the next three (thresholds 40.4, 60.2, 78.4, 94.2;
    the ACR meanings "imperceptible", "perceptible but not annoying", "slightly annoying", ...
    in that order). A measured table (`gmsd`) keeps the same 0-100 scale of quality kept, so the
    same thresholds read the same share of quality lost; what changes is which level of which
    type lands in which band (by GMSD the mildest mosaic keeps 28, "bad", the mildest noise 87, "good").

    Why not the 20-point bands of the overall score: "excellent" from 80 took in the mildest
    level and most of the next, so a dimension that had lost as much as a whole trained level
    of flicker read "excellent" (24 of 25 dimension grades over five real clips, issue 19).
    Why not a percentile scale per dimension on the calibration set: that corpus is not in the
    model file and takes hours to rebuild; and in it most videos leave any one dimension
    untouched and score within a point of 100, so a "top fifth" would split undamaged videos by
    the model's scatter, and "excellent" would mean a different damage in each dimension while
    the targets were built so that level k hurts alike in all of them.
    """
    # The one definition of the loss table (lazily: it imports torch).
    from .data.distortions import quality_loss

    levels = 4  # any count gives the same curve: the loss depends on (level + 1) / levels only
    return GradeScale(tuple(round(100.0 * (1.0 - quality_loss(edge * levels - 1, levels)), 2)
                            for edge in _DAMAGE_BAND_EDGES))


def trained_on_designed_damage(training: Mapping[str, Any]) -> bool:
    """Whether a model's training record says its dimension targets are a scale of added damage
    (`vqscope synth`'s loss tables): the shipped vqscope-lite models say so;
    models fitted to human ratings, whose dimension scores mean an opinion, do not."""
    corpus = training.get("corpus")
    return (isinstance(corpus, Mapping) and bool(corpus.get("distortions"))
            and ("loss_table" in training or "quality_loss" in str(training.get("target", ""))))


def dimension_scales(training: Mapping[str, Any], heads: Iterable[str]) -> dict[str, GradeScale]:
    """The grade scale of each taxonomy dimension the model scores, from its training record.

    Computed when a model is loaded from what its file already holds (published model files
    are immutable); empty where the record says nothing of what the dimension scores mean, and
    those dimensions are then graded on the model's overall scale, as before.
    """
    if not trained_on_designed_damage(training):
        return {}
    scale = designed_damage_scale()
    return {h: scale for h in heads if h in DIMENSIONS and h != "overall"}



@dataclass(frozen=True)
class DimensionGrade:
    """A dimension's grade, the grade its score alone reads, and the likely types that capped it."""

    grade: str
    by_score: str
    capped_by: tuple[str, ...] = ()

    @property
    def capped(self) -> bool:
        return self.grade != self.by_score


def likely_cap(labels: Sequence[str]) -> str:
    """The highest grade a dimension keeps while one of its types is likely: the middle of the
    scale ("fair" of the five ACR grades)."""
    return labels[(len(labels) - 1) // 2]


def grade_dimension(score: float, scale: GradeScale, likely: Sequence[str] = ()) -> DimensionGrade:
    """Grade a dimension score, capped at the middle grade while `likely` (the dimension's types
    that the same result calls likely, p >= 0.5) is not empty.

    Why a cap: a result that names a distortion as more likely present than not cannot also
    call its dimension "good" or "excellent" (the grades that alerts and recommendation
    weighting read as nothing to act on). The score does not do it alone: a composed dimension
    is an expectation over whether the type is there, 100 * (1 - loss * p), so flicker with
    p = 0.97 and a small loss, or defocus blur with p = 0.62, still scores 81 or 85. The score is
    kept as the model gives it; the text says why the grade is lower than the score reads.
    """
    return cap_grade(scale.grade(score), scale.labels, likely)


def cap_grade(by_score: str, labels: Sequence[str], likely: Sequence[str] = ()) -> DimensionGrade:
    """`by_score` (one of `labels`, worst first) capped at the middle grade while `likely` is not
    empty (see `grade_dimension`)."""
    cap = likely_cap(labels)
    if likely and labels.index(by_score) > labels.index(cap):
        return DimensionGrade(cap, by_score, tuple(likely))
    return DimensionGrade(by_score, by_score)


def calibration_set(benchmark: str | None, size: int | None) -> str | None:
    """The calibration set as messages name it, its size stated once: the recorded name as it
    is where it already says "<size> videos" (the shipped models' "... corpus v7 (8904 videos)"),
    else with the size appended ("unit-test set (50 videos)"); a name stating another count
    keeps it and says how many were used ("set (9000 videos); 8904 used")."""
    if not benchmark:
        return None
    if size is None:
        return benchmark
    stated = [int(re.sub(r"\D", "", m)) for m in _STATED.findall(benchmark)]
    if int(size) in stated:
        return benchmark
    return f"{benchmark}; {int(size)} used" if stated else f"{benchmark} ({int(size)} videos)"


_STATED = re.compile(r"(?<![\d.,])(\d{1,3}(?:[,\u202f ]\d{3})+|\d+)\s*videos?\b", re.IGNORECASE)
