"""Text from scores: a short description a person can read next to the numbers.

Only what the model measured is said. The timeline sentence names the stretch where quality
dips, because an average hides a bad ten seconds in a good minute; for the same reason each
likely distortion is named with the time ranges where its clip-level probability is high.

Two entry points:
- `describe(...)`: the video's one-paragraph description (Result.description).
- `describe_dimensions(dimensions, distortions, clips)`: one sentence per dimension
  (DimensionScore.description), from the dimension scores, the video-level distortion
  probabilities, and the clips' own dimension scores and probabilities.
`vqscope ask` and `vqscope describe --llm` reuse the same time ranges (`distortion_ranges`).

One story per result: where the grade of a dimension is lower than its score reads (a likely
type caps it, calibration.grade_dimension), its sentence says so; where the overall score sits
below every dimension, the description says what pulls it down (`OverallParts`); where the
video is far smaller than the model's training videos, the dimensions read from fine detail
carry a caveat (`SizeNote`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .calibration import GRADES
from .result import ClipResult, DimensionScore, Result
from .taxonomy import DIMENSIONS, DISTORTION_TEXT, types_of

_GRADE_PHRASE = {
    "excellent": "Excellent overall quality",
    "good": "Good overall quality",
    "fair": "Fair overall quality",
    "poor": "Poor overall quality",
    "bad": "Bad overall quality",
}
# Clip scores must spread by at least this much (0-100 scale) before a dip is worth naming.
_DIP_POINTS = 12.0
# A distortion is "likely" (named, answered yes) from this probability on.
THRESHOLD = 0.5
_DISTORTION_SHOWN = THRESHOLD
# Clips closer than this (seconds) are one stretch of time; sampled clips further apart are not.
_GAP_S = 0.05
_MAX_RANGES = 3

# How each dimension is named at the start of its sentence, and the verb that goes with it.
DIMENSION_LABEL: dict[str, tuple[str, str]] = {
    "color": ("Colour", "is"),
    "noise": ("Noise", "is"),
    "artifact": ("Artifacts", "are"),
    "blur": ("Blur", "is"),
    "temporal": ("Temporal quality", "is"),
    "overall": ("Overall quality", "is"),
}


# Dimensions read from the fine detail of a native-resolution crop: their statistics move with
# the picture's scale, so on a video far smaller than the training videos they can miss damage.
SIZE_SENSITIVE = ("noise", "artifact", "blur")
# A dimension losing less than this (points) is not named among those that pull overall down.
_NAMED_LOSS = 1.0


@dataclass(frozen=True)
class OverallParts:
    """How a model made its overall score, so that the text can say why it sits below every
    dimension (Model.result_from_features fills it from the network's composition).

    composition: 100 x the product of the dimensions' shares, mean over clips (None where
    overall is not composed from the dimensions); regression: the overall regressor's score,
    mean over clips, which the composition is averaged with (None where there is none).
    """

    composition: float | None = None
    regression: float | None = None


@dataclass(frozen=True)
class SizeNote:
    """A video far smaller than those the model was trained on (Model.size_note)."""

    width: int
    height: int
    trained_short_side: float  # typical short side of the training videos, px
    lowest_usual: float  # the short side below which a video is "far smaller", px

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    def warning(self) -> str:
        """For Result.warnings: what is unusual, and what it does to the result."""
        return (f"{self.size} is far smaller than the videos the model was trained on (short side "
                f"{self.trained_short_side:.0f} px on average, this one under {self.lowest_usual:.0f}): noise, "
                "compression and blur it never saw at this size can go unnamed, so good noise, artifact and blur "
                "grades are not evidence of a clean, sharp picture")

    def sentence(self) -> str:
        """For the description."""
        return (f"At {self.size} the video is far smaller than the model's training videos: noise, compression "
                "and blur can go unnamed at this size.")

    def caveat(self) -> str:
        """For the sentence of a size-sensitive dimension graded good or better."""
        return f"not reliable at {self.size}, far below the model's training sizes: such damage can go unnamed here"


def format_p(p: float) -> str:
    """A probability for text, cut (not rounded) to two decimals: rounding would print 0.4957
    as 0.50 beside "none has p >= 0.50", and a cut never crosses a two-decimal threshold."""
    return f"{math.floor(p * 100 + 1e-9) / 100:.2f}"


def distortion_name(kind: str) -> str:
    """Short name of a distortion type for running text: "compression artifacts", "stutter"."""
    return re.sub(r"\s*\(.*\)$", "", DISTORTION_TEXT.get(kind, kind.replace("_", " ")))


def _span(clips: Sequence[ClipResult]) -> str:
    return f"{clips[0].start_s:.1f}-{clips[-1].end_s:.1f} s"


def time_ranges(clips: Sequence[ClipResult], flags: Sequence[bool]) -> list[tuple[float, float]]:
    """Merge flagged clips that touch in time into (start_s, end_s) ranges, in time order.

    Clips sampled with gaps between them (--max-clips on a long video) stay separate ranges:
    nothing is claimed about time that was not scored.
    """
    ranges: list[list[float]] = []
    previous: ClipResult | None = None
    for clip, flagged in zip(clips, flags):
        if flagged:
            if ranges and previous is not None and clip.start_s <= previous.end_s + _GAP_S:
                ranges[-1][1] = clip.end_s
            else:
                ranges.append([clip.start_s, clip.end_s])
            previous = clip
        else:
            previous = None
    return [(a, b) for a, b in ranges]


def distortion_ranges(
    clips: Sequence[ClipResult], kind: str, threshold: float = THRESHOLD
) -> tuple[list[tuple[float, float]], int] | None:
    """Where a distortion concentrates: (ranges of clips with p >= threshold, count of such clips).

    None when the clips carry no probability for this type (a model without clip-level
    distortion output), so callers say nothing about time rather than something wrong.
    """
    if not clips or not all(kind in c.distortions for c in clips):
        return None
    flags = [c.distortions[kind] >= threshold for c in clips]
    return time_ranges(clips, flags), sum(flags)


def where_phrase(ranges: Sequence[tuple[float, float]], flagged: int, total: int) -> str | None:
    """ "throughout", "mostly at 2.0-5.0 s", "mostly at 1.0-2.0 s and 4.0-6.0 s", or None."""
    if not ranges or flagged == 0:
        return None
    if flagged == total and total > 1 and len(ranges) == 1:
        return "throughout"
    shown = sorted(sorted(ranges, key=lambda r: r[0] - r[1])[:_MAX_RANGES])  # longest few, in time order
    parts = [f"{a:.1f}-{b:.1f} s" for a, b in shown]
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    if len(ranges) > len(shown):
        text += f" (and {len(ranges) - len(shown)} shorter stretches)"
    return "mostly at " + text


def distortion_where(clips: Sequence[ClipResult], kind: str, threshold: float = THRESHOLD) -> str | None:
    found = distortion_ranges(clips, kind, threshold)
    if found is None:
        return None
    return where_phrase(found[0], found[1], len(clips))


def _low_run(scores: Sequence[float]) -> tuple[int, int] | None | str:
    """Longest run of values well below their median: (i, j), None (no run), or "steady"."""
    ordered = sorted(scores)
    median = ordered[len(ordered) // 2]
    if ordered[-1] - ordered[0] < _DIP_POINTS:
        return "steady"
    low = [s < median - _DIP_POINTS / 2 for s in scores]
    best: tuple[int, int] | None = None
    i = 0
    while i < len(scores):
        if low[i]:
            j = i
            while j + 1 < len(scores) and low[j + 1]:
                j += 1
            if best is None or (j - i) > (best[1] - best[0]):
                best = (i, j)
            i = j + 1
        else:
            i += 1
    return best


def timeline_sentence(clips: Sequence[ClipResult]) -> str | None:
    """Name the longest run of clips well below the video's median clip score."""
    if len(clips) < 3:
        return None
    run = _low_run([c.score for c in clips])
    if run == "steady":
        return "Quality is steady over time."
    if run is None:
        worst = min(clips, key=lambda c: c.score)
        return f"Quality varies; the weakest clip is at {_span([worst])} ({worst.score:.0f})."
    assert isinstance(run, tuple)
    stretch = clips[run[0] : run[1] + 1]
    lowest = min(c.score for c in stretch)
    return f"Quality drops at {_span(stretch)} (down to {lowest:.0f})."


def _dimension_dip(clips: Sequence[ClipResult], name: str) -> str | None:
    """"lowest at 2.0-4.0 s (down to 31)" from the clips' scores of one dimension, if they dip."""
    if len(clips) < 3 or not all(name in c.dimensions for c in clips):
        return None
    scores = [c.dimensions[name].score for c in clips]
    run = _low_run(scores)
    if not isinstance(run, tuple):
        return None
    stretch = clips[run[0] : run[1] + 1]
    return f"lowest at {_span(stretch)} (down to {min(scores[run[0] : run[1] + 1]):.0f})"


def _likely(distortions: Mapping[str, float], kinds: Sequence[str], threshold: float) -> list[tuple[float, str]]:
    return sorted(((distortions[k], k) for k in kinds if k in distortions and distortions[k] >= threshold),
                  key=lambda pk: (-pk[0], pk[1]))


def _head(name: str, dimension: DimensionScore, by_score: str | None) -> str:
    """"Blur is fair (85)", or where a likely type capped the grade, "Blur is fair (85; the score
    alone reads good, but a likely distortion caps the grade at fair)"."""
    label, verb = DIMENSION_LABEL.get(name, (name.capitalize(), "is"))
    if by_score is None or by_score == dimension.grade:
        return f"{label} {verb} {dimension.grade} ({dimension.score:.0f})"
    return (f"{label} {verb} {dimension.grade} ({dimension.score:.0f}; the score alone reads {by_score}, "
            f"but a likely distortion caps the grade at {dimension.grade})")


def _claims_quality(grade: str) -> bool:
    """Whether a grade says a dimension is fine (the two top ACR grades)."""
    return grade in GRADES[-2:]


def _closing_note(name: str, grade: str, likely: int, size: SizeNote | None) -> str | None:
    """What a dimension's sentence must add so that its grade does not contradict the rest:
    a good or excellent overall with likely types already counts them (overall is not capped,
    see Model.grade_dimension); a good or excellent grade read from fine detail is not
    evidence on a video far smaller than the training videos."""
    if name == "overall" and likely and _claims_quality(grade):
        return f"the overall score counts {'it' if likely == 1 else 'them'} and stays {grade}"
    if size is not None and name in SIZE_SENSITIVE and _claims_quality(grade):
        return size.caveat()
    return None


def describe_dimension(
    name: str,
    dimension: DimensionScore,
    distortions: Mapping[str, float],
    clips: Sequence[ClipResult],
    threshold: float = THRESHOLD,
    by_score: str | None = None,
    size: SizeNote | None = None,
) -> str:
    """One dimension's sentence, e.g. "Blur is poor (38): motion blur likely (p=0.86), mostly at 2.0-5.0 s.".

    `by_score` is the grade the score alone reads (where it differs from the grade, the
    sentence says why); `size` adds a caveat to a size-sensitive dimension graded good or better.
    """
    head = _head(name, dimension, by_score)
    kinds = types_of(name) if name in DIMENSIONS else ()
    likely = _likely(distortions, kinds, threshold)
    limit = _MAX_RANGES if name == "overall" else len(likely)
    note = _closing_note(name, dimension.grade, len(likely), size)
    if likely:
        items = []
        for p, kind in likely[:limit]:
            item = f"{distortion_name(kind)} likely (p={format_p(p)})"
            where = distortion_where(clips, kind, threshold)
            items.append(f"{item}, {where}" if where else item)
        return f"{head}: " + "; ".join(items + ([note] if note else [])) + "."
    tail = []
    predicted = [k for k in kinds if k in distortions]
    if predicted:
        top = max(predicted, key=lambda k: (distortions[k], k))
        none = "no distortion likely" if name == "overall" else "no distortion of this kind likely"
        tail.append(f"{none} (highest: {distortion_name(top)}, p={format_p(distortions[top])})")
    dip = _dimension_dip(clips, name)
    if dip:
        tail.append(dip)
    if note:
        tail.append(note)
    return head + ("; " + "; ".join(tail) if tail else "") + "."


def describe_dimensions(
    dimensions: Mapping[str, DimensionScore],
    distortions: Mapping[str, float],
    clips: Sequence[ClipResult],
    threshold: float = THRESHOLD,
    by_score: Mapping[str, str] | None = None,
    size: SizeNote | None = None,
) -> dict[str, str]:
    """dimension name -> its description, for every dimension the result has.

    `distortions` are the video-level probabilities; `clips` carry clip-level dimension
    scores and probabilities (ClipResult.dimensions / .distortions), from which the time
    ranges are read; `by_score` the grade each dimension's score alone reads, where the model
    graded it (see `describe_dimension`). Pure: the caller stores the texts (see
    `attach_dimension_descriptions`).
    """
    by_score = by_score or {}
    return {name: describe_dimension(name, dim, distortions, clips, threshold, by_score.get(name), size)
            for name, dim in dimensions.items()}


def attach_dimension_descriptions(
    dimensions: Mapping[str, DimensionScore],
    distortions: Mapping[str, float],
    clips: Sequence[ClipResult],
    threshold: float = THRESHOLD,
    by_score: Mapping[str, str] | None = None,
    size: SizeNote | None = None,
) -> None:
    """Set DimensionScore.description of each video-level dimension (one call in Model)."""
    for name, text in describe_dimensions(dimensions, distortions, clips, threshold, by_score, size).items():
        dimensions[name].description = text


def dimension_texts(result: Result) -> dict[str, str]:
    """A Result's dimension descriptions: the stored ones, computed where a model left them out."""
    computed = describe_dimensions(result.dimensions, result.distortions, result.clips)
    return {k: (d.description or computed[k]) for k, d in result.dimensions.items()}


def _grade_rank(grade: str) -> int:
    """Position of a grade on the ACR scale (unknown labels rank last: the score decides)."""
    return GRADES.index(grade) if grade in GRADES else len(GRADES)


def _weakest_sentence(others: Mapping[str, DimensionScore]) -> str:
    """The lowest grade first, then the lowest score: a dimension capped to fair is weaker than
    one that scores lower but is graded good."""
    weakest = min(others.items(), key=lambda kv: (_grade_rank(kv[1].grade), kv[1].score))
    if len({d.grade for d in others.values()}) == 1:  # no dimension stands out as weakest
        return f"Every dimension is {weakest[1].grade}."
    return f"Weakest dimension: {weakest[0]} ({weakest[1].grade})."


def _product(others: Mapping[str, DimensionScore], composition: float) -> str:
    """"temporal 81 x color 86 x artifact 95 x the rest: about 65": the dimensions that lose a point
    or more, lowest first, and their product (the composition, mean over clips)."""
    named = sorted((kv for kv in others.items() if kv[1].score <= 100.0 - _NAMED_LOSS), key=lambda kv: kv[1].score)
    if not named:
        return f"the dimensions lose almost nothing (their product is {composition:.0f})"
    factors = [f"{k} {v.score:.0f}" for k, v in named] + (["the rest"] if len(named) < len(others) else [])
    # "about": the composition is the mean over clips of each clip's product, not the product of
    # the video's means, so the two can differ by a point.
    return f"the dimensions' shares multiply ({' x '.join(factors)}: about {composition:.0f})"


def overall_below_sentence(score: float, dimensions: Mapping[str, DimensionScore],
                           parts: OverallParts | None) -> str | None:
    """Why overall sits below every dimension, where it does: read from how the model made it.

    A composed overall is 100 x the product of the twelve types' shares, that is the product of
    the five dimensions' shares, so several mild losses compound (86 x 95 x 81: about 66); a
    model with an overall regressor averages that with the regressor's score, which is not
    tied to any detected type (vqscope-lite@7's card: it also marks down footage unlike its
    training content). Nothing is said where overall is not below every dimension.
    """
    others = {k: v for k, v in dimensions.items() if k != "overall"}
    if not others or score >= min(d.score for d in others.values()):
        return None
    head = f"Overall ({score:.0f}) sits below every dimension: "
    if parts is None or parts.composition is None:
        return head + "this model scores it with a head of its own, from the whole video, not from the dimensions."
    together = _product(others, parts.composition)
    if parts.regression is None:
        return head + together + "."
    return (head + together + f", and overall is averaged with an overall regressor that gives "
            f"{parts.regression:.0f} from the whole video, without naming a distortion.")


_SYNTHETIC = re.compile(r"\bsynth(etic)?\b", re.IGNORECASE)
_NAMED_SET_CHARS = 40  # a benchmark name longer than this (a list of paths) is not quoted


def calibration_set_phrase(calibration: Any = None) -> str:
    """What the scaled score is a percentile of, as far as the model's calibration says:
    "its calibration set, 8,904 synthetic videos" where the benchmark's name says it is
    synthetic, "its calibration set, 50 videos (unit-test set)" where it names something else,
    "the calibration set" where nothing is known."""
    if calibration is None:
        return "the calibration set"
    get = calibration.get if isinstance(calibration, Mapping) else lambda k: getattr(calibration, k, None)
    benchmark = str(get("benchmark") or "").strip()
    try:
        size = int(get("size") or 0)
    except (TypeError, ValueError):
        size = 0
    if not size:
        return "its calibration set" + (f" ({benchmark})" if benchmark and len(benchmark) <= _NAMED_SET_CHARS else "")
    synthetic = bool(_SYNTHETIC.search(benchmark))
    count = f"{size:,} {'synthetic ' if synthetic else ''}video{'s' if size != 1 else ''}"
    if synthetic:
        return f"its calibration set, {count}"
    name = re.sub(r"\s*\(\d[\d,]* videos?\)$", "", benchmark).strip()
    return f"its calibration set, {count}" + (f" ({name})" if name and len(name) <= _NAMED_SET_CHARS else "")


def _likely_sentence(grade: str, clips: Sequence[ClipResult], distortions: Mapping[str, float]) -> str | None:
    """"Likely distortions: ...", saying where a good or excellent overall grade already counts them."""
    seen = _likely(distortions, tuple(distortions), _DISTORTION_SHOWN)
    if not seen:
        return None
    items = []
    for p, kind in seen[:_MAX_RANGES]:
        where = distortion_where(clips, kind, _DISTORTION_SHOWN)
        items.append(f"{distortion_name(kind)} (p={format_p(p)}" + (f", {where})" if where else ")"))
    counted = f" (counted in the overall score, which stays {grade} with them)" if _claims_quality(grade) else ""
    return f"Likely distortions{counted}: " + ", ".join(items) + "."


def describe(
    grade: str,
    score: float,
    scaled_score: float | None,
    clips: Sequence[ClipResult],
    dimensions: Mapping[str, DimensionScore] | None = None,
    distortions: Mapping[str, float] | None = None,
    padded: bool = False,
    overall: OverallParts | None = None,
    size: SizeNote | None = None,
    calibration: Any = None,
) -> str:
    """The video's paragraph: grade and score, weakest dimension, what pulls overall below every
    dimension (`overall`: how the model made it), likely distortions, the timeline, and notes
    on padding and on a video far smaller than the training videos (`size`). `calibration`
    (the model's Calibration, or a mapping with its `benchmark` and `size`) says what the set
    behind the scaled score is (`calibration_set_phrase`)."""
    parts = [f"{_GRADE_PHRASE.get(grade, grade.capitalize())} ({score:.0f}/100"]
    if scaled_score is not None:
        parts[0] += f", above {scaled_score:.0f}% of {calibration_set_phrase(calibration)}"
    parts[0] += ")."
    others = {k: v for k, v in (dimensions or {}).items() if k != "overall"}
    sentences = [
        _weakest_sentence(others) if others else None,
        overall_below_sentence(score, dimensions or {}, overall) if others and overall is not None else None,
        _likely_sentence(grade, clips, distortions or {}),
        timeline_sentence(clips),
        "The video is shorter than one 32-frame window; windows were padded." if padded else None,
        size.sentence() if size is not None else None,
    ]
    return " ".join(parts + [s for s in sentences if s])
