"""What a study collects, as plain values every part of the studies package speaks.

A study shows videos (items) to raters and stores their answers. Whatever collected them,
the web page of `vqscope serve`, or a crowdsourcing site whose CSV is imported, the answers
reach the analysis as these records, so screening, MOS, thresholds and head fitting never
care where a rating came from.

The scale is the five-level absolute category rating of ITU-T P.910 (1 bad ... 5 excellent),
overall and, in the FineVD form, per dimension. A MOS on 1-5 maps to vqscope's 0-100 score
scale as (mos - 1) / 4 * 100, the mapping the dataset adapters use for 1-5 datasets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ..taxonomy import DIMENSIONS, DISTORTION_TYPES

#: ACR categories of ITU-T P.910, lowest first; category k (1-5) is ACR_LABELS[k - 1].
ACR_LABELS: tuple[str, ...] = ("bad", "poor", "fair", "good", "excellent")
ACR_MIN, ACR_MAX = 1, 5

#: Dimensions a FineVD-form rating asks for beside overall (overall is `Rating.score`).
RATED_DIMENSIONS: tuple[str, ...] = tuple(d for d in DIMENSIONS if d != "overall")

#: Study methods: ACR (one 1-5 score), the FineVD form (six 1-5 scores and the distortion
#: types seen), and pairwise comparison (which of two videos looks better).
METHODS: tuple[str, ...] = ("acr", "finevd", "pairwise")

#: What a rating of a task is for: the real items, an item shown again to measure a rater's
#: consistency, a gold item with a known answer, or the training round before the real items.
KINDS: tuple[str, ...] = ("main", "repeat", "gold", "training")


def acr_to_100(value: float) -> float:
    """A 1-5 ACR value (a MOS, a threshold) on vqscope's 0-100 score scale."""
    return (float(value) - ACR_MIN) / (ACR_MAX - ACR_MIN) * 100.0


def acr_from_100(value: float) -> float:
    """A 0-100 score as a 1-5 ACR value."""
    return ACR_MIN + float(value) / 100.0 * (ACR_MAX - ACR_MIN)


@dataclass(frozen=True)
class Rating:
    """One rater's answer about one item (ACR or FineVD form)."""

    rater: str  # rater id (study-local), or the rater name of an imported CSV
    item: str  # item id (study-local), or the video name of an imported CSV
    score: int  # overall, 1-5
    dimensions: Mapping[str, int] = field(default_factory=dict)  # FineVD form: RATED_DIMENSIONS -> 1-5
    tags: tuple[str, ...] = ()  # distortion types the rater saw (FineVD form), from DISTORTION_TYPES
    kind: str = "main"  # one of KINDS
    at: float = 0.0  # when it was submitted (epoch seconds; 0 for imports without times)

    def __post_init__(self) -> None:
        check_score(self.score, "score")
        for name, value in self.dimensions.items():
            if name not in RATED_DIMENSIONS:
                raise ValueError(f"unknown dimension {name!r} (dimensions: {', '.join(RATED_DIMENSIONS)})")
            check_score(value, name)
        for tag in self.tags:
            if tag not in DISTORTION_TYPES:
                raise ValueError(f"unknown distortion type {tag!r}")
        if self.kind not in KINDS:
            raise ValueError(f"unknown rating kind {self.kind!r} (kinds: {', '.join(KINDS)})")


@dataclass(frozen=True)
class Comparison:
    """One rater's answer to a pairwise task: which of two items looks better."""

    rater: str
    first: str  # item shown first (left)
    second: str  # item shown second (right)
    preferred: str  # `first` or `second`
    kind: str = "main"
    at: float = 0.0

    def __post_init__(self) -> None:
        if self.preferred not in (self.first, self.second):
            raise ValueError("the preferred item must be one of the two compared")
        if self.first == self.second:
            raise ValueError("a comparison needs two different items")


@dataclass(frozen=True)
class Item:
    """A video of a study, as the analysis and the exports see it."""

    id: str
    video: str  # the name people and results know it by
    path: str | None = None  # where the server keeps the file raters watch (None for imports)
    model_score: float | None = None  # the model's 0-100 score when the study was made
    scaled_score: float | None = None
    job_id: str | None = None  # the scoring job it came from, if any
    gold: float | None = None  # a gold item's expected 1-5 answer
    label: str | None = None  # a training anchor's label, shown to raters
    reason: str | None = None  # why it was chosen (see select.py)
    kind: str = "video"  # video | anchor | gold


def check_score(value: object, what: str = "score") -> int:
    """A 1-5 category as an int, or ValueError naming what was wrong."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
        raise ValueError(f"{what} must be a whole number from {ACR_MIN} to {ACR_MAX}, got {value!r}")
    if not ACR_MIN <= int(value) <= ACR_MAX:
        raise ValueError(f"{what} must be from {ACR_MIN} ({ACR_LABELS[0]}) to {ACR_MAX} ({ACR_LABELS[-1]}), got {value}")
    return int(value)
