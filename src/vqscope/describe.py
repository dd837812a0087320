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
"""

from __future__ import annotations

import math
import re
from typing import Mapping, Sequence

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


def describe_dimension(
    name: str,
    dimension: DimensionScore,
    distortions: Mapping[str, float],
    clips: Sequence[ClipResult],
    threshold: float = THRESHOLD,
) -> str:
    """One dimension's sentence, e.g. "Blur is poor (38): motion blur likely (p=0.86), mostly at 2.0-5.0 s."."""
    label, verb = DIMENSION_LABEL.get(name, (name.capitalize(), "is"))
    head = f"{label} {verb} {dimension.grade} ({dimension.score:.0f})"
    kinds = types_of(name) if name in DIMENSIONS else ()
    likely = _likely(distortions, kinds, threshold)
    limit = _MAX_RANGES if name == "overall" else len(likely)
    if likely:
        items = []
        for p, kind in likely[:limit]:
            item = f"{distortion_name(kind)} likely (p={format_p(p)})"
            where = distortion_where(clips, kind, threshold)
            items.append(f"{item}, {where}" if where else item)
        return f"{head}: " + "; ".join(items) + "."
    tail = []
    predicted = [k for k in kinds if k in distortions]
    if predicted:
        top = max(predicted, key=lambda k: (distortions[k], k))
        none = "no distortion likely" if name == "overall" else "no distortion of this kind likely"
        tail.append(f"{none} (highest: {distortion_name(top)}, p={format_p(distortions[top])})")
    dip = _dimension_dip(clips, name)
    if dip:
        tail.append(dip)
    return head + ("; " + "; ".join(tail) if tail else "") + "."


def describe_dimensions(
    dimensions: Mapping[str, DimensionScore],
    distortions: Mapping[str, float],
    clips: Sequence[ClipResult],
    threshold: float = THRESHOLD,
) -> dict[str, str]:
    """dimension name -> its description, for every dimension the result has.

    `distortions` are the video-level probabilities; `clips` carry clip-level dimension
    scores and probabilities (ClipResult.dimensions / .distortions), from which the time
    ranges are read. Pure: the caller stores the texts (see `attach_dimension_descriptions`).
    """
    return {name: describe_dimension(name, dim, distortions, clips, threshold) for name, dim in dimensions.items()}


def attach_dimension_descriptions(
    dimensions: Mapping[str, DimensionScore],
    distortions: Mapping[str, float],
    clips: Sequence[ClipResult],
    threshold: float = THRESHOLD,
) -> None:
    """Set DimensionScore.description of each video-level dimension (one call in Model)."""
    for name, text in describe_dimensions(dimensions, distortions, clips, threshold).items():
        dimensions[name].description = text


def dimension_texts(result: Result) -> dict[str, str]:
    """A Result's dimension descriptions: the stored ones, computed where a model left them out."""
    computed = describe_dimensions(result.dimensions, result.distortions, result.clips)
    return {k: (d.description or computed[k]) for k, d in result.dimensions.items()}


def describe(
    grade: str,
    score: float,
    scaled_score: float | None,
    clips: Sequence[ClipResult],
    dimensions: Mapping[str, DimensionScore] | None = None,
    distortions: Mapping[str, float] | None = None,
    padded: bool = False,
) -> str:
    parts = [f"{_GRADE_PHRASE.get(grade, grade.capitalize())} ({score:.0f}/100"]
    if scaled_score is not None:
        parts[0] += f", above {scaled_score:.0f}% of the calibration set"
    parts[0] += ")."
    others = {k: v for k, v in (dimensions or {}).items() if k != "overall"}
    if others:
        weakest = min(others.items(), key=lambda kv: kv[1].score)
        if len({d.grade for d in others.values()}) == 1:  # no dimension stands out as weakest
            parts.append(f"Every dimension is {weakest[1].grade}.")
        else:
            parts.append(f"Weakest dimension: {weakest[0]} ({weakest[1].grade}).")
    seen = _likely(distortions or {}, tuple(distortions or {}), _DISTORTION_SHOWN)
    if seen:
        items = []
        for p, kind in seen[:_MAX_RANGES]:
            where = distortion_where(clips, kind, _DISTORTION_SHOWN)
            items.append(f"{distortion_name(kind)} (p={format_p(p)}" + (f", {where})" if where else ")"))
        parts.append("Likely distortions: " + ", ".join(items) + ".")
    sentence = timeline_sentence(clips)
    if sentence:
        parts.append(sentence)
    if padded:
        parts.append("The video is shorter than one 32-frame window; windows were padded.")
    return " ".join(parts)
