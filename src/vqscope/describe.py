"""Text from scores: a short description a person can read next to the numbers.

Only what the model measured is said. The timeline sentence names the stretch where quality
dips, because an average hides a bad ten seconds in a good minute.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from .result import ClipResult, DimensionScore

_GRADE_PHRASE = {
    "excellent": "Excellent overall quality",
    "good": "Good overall quality",
    "fair": "Fair overall quality",
    "poor": "Poor overall quality",
    "bad": "Bad overall quality",
}
# Clip scores must spread by at least this much (0-100 scale) before a dip is worth naming.
_DIP_POINTS = 12.0
_DISTORTION_SHOWN = 0.5


def _span(clips: Sequence[ClipResult]) -> str:
    return f"{clips[0].start_s:.1f}-{clips[-1].end_s:.1f} s"


def timeline_sentence(clips: Sequence[ClipResult]) -> str | None:
    """Name the longest run of clips well below the video's median clip score."""
    if len(clips) < 3:
        return None
    scores = sorted(c.score for c in clips)
    median = scores[len(scores) // 2]
    if scores[-1] - scores[0] < _DIP_POINTS:
        return "Quality is steady over time."
    low = [c.score < median - _DIP_POINTS / 2 for c in clips]
    best: tuple[int, int] | None = None
    i = 0
    while i < len(clips):
        if low[i]:
            j = i
            while j + 1 < len(clips) and low[j + 1]:
                j += 1
            if best is None or (j - i) > (best[1] - best[0]):
                best = (i, j)
            i = j + 1
        else:
            i += 1
    if best is None:
        worst = min(clips, key=lambda c: c.score)
        return f"Quality varies; the weakest clip is at {_span([worst])} ({worst.score:.0f})."
    run = clips[best[0] : best[1] + 1]
    lowest = min(c.score for c in run)
    return f"Quality drops at {_span(run)} (down to {lowest:.0f})."


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
        parts.append(f"Weakest dimension: {weakest[0]} ({weakest[1].grade}).")
    seen = sorted(((p, k) for k, p in (distortions or {}).items() if p >= _DISTORTION_SHOWN), reverse=True)
    if seen:
        parts.append("Likely distortions: " + ", ".join(k.replace("_", " ") for _, k in seen[:3]) + ".")
    sentence = timeline_sentence(clips)
    if sentence:
        parts.append(sentence)
    if padded:
        parts.append("The video is shorter than one 32-frame window; windows were padded.")
    return " ".join(parts)
