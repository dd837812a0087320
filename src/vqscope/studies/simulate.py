"""Simulated raters: plan a study before inviting anyone, and test the analysis against a truth.

A simulated rater follows the subject model of ITU-T P.913 that the analysis fits: the rating
of video e by rater s is the video's true quality plus the rater's bias plus noise whose sd is
the rater's inconsistency, rounded to the nearest category and clipped to 1-5. A careless
rater answers uniformly at random, the failure a crowdsourced study meets most. Because the
truth is known, a simulation says what no real study can: how far the recovered MOS is from
the truth, and whether screening caught the careless raters and spared the careful ones.

`plan_study` runs such studies many times through the real analysis (`analyse_ratings`) and
reports what a study of that size should expect: the width of the MOS intervals, how well the
MOS ranks the truth, and how screening fares. The answer depends on assumptions a user cannot
check in advance (how spread the videos' quality is, how noisy people are), so the defaults
are those of typical UGC studies: true quality uniform over 1.5-4.5 (videos chosen to cover
the range, few at the very ends), rater bias sd 0.3 and inconsistency 0.3-0.8 categories.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
from scipy import stats

from .mos import SCREENINGS, analyse_ratings
from .ratings import ACR_MAX, ACR_MIN, Comparison, Rating

#: Interval width (on 1-5) a plan aims at: +-0.3 tells apart videos 0.6 categories apart.
TARGET_WIDTH = 0.6


def _rater_ids(n: int) -> list[str]:
    width = max(2, len(str(n)))
    return [f"r{k + 1:0{width}d}" for k in range(n)]


def _video_ids(n: int) -> list[str]:
    width = max(3, len(str(n)))
    return [f"v{k + 1:0{width}d}" for k in range(n)]


def _check_int(value: object, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be a whole number of at least {low}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class SimulatedStudy:
    """A simulated ACR study: the truth behind it and the ratings it produced."""

    truth: dict[str, float]  # video id -> true quality, continuous on 1-5
    ratings: tuple[Rating, ...]
    careless: tuple[str, ...]  # rater ids answering at random
    biases: dict[str, float]  # rater id -> bias (careless raters: 0, unused)
    inconsistencies: dict[str, float]  # rater id -> sd of the rater's noise

    @property
    def raters(self) -> tuple[str, ...]:
        return tuple(self.biases)

    @property
    def videos(self) -> tuple[str, ...]:
        return tuple(self.truth)


def _assignment(n_videos: int, n_raters: int, per_rater: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Which videos each rater sees: consecutive blocks of one shuffled cycle through the videos,
    so every video is seen floor or ceil of n_raters x per_rater / n_videos times."""
    order = rng.permutation(n_videos)
    return [order[(np.arange(per_rater) + s * per_rater) % n_videos] for s in range(n_raters)]


def simulate_ratings(
    n_videos: int,
    n_raters: int,
    *,
    careless: int = 0,
    bias_sd: float = 0.3,
    inconsistency: tuple[float, float] = (0.3, 0.8),
    per_rater: int | None = None,
    repeats: int = 0,
    quality_range: tuple[float, float] = (1.5, 4.5),
    seed: int = 0,
) -> SimulatedStudy:
    """Simulate an ACR study (see the module docstring for the rater model).

    `careless` raters (chosen at random) answer uniformly over 1-5. `per_rater` is how many
    videos each rater sees (default all), spread so each video gets an even share of raters.
    `repeats` is how many of a rater's videos come back once more (kind "repeat").
    """
    n_videos = _check_int(n_videos, "n_videos", 1)
    n_raters = _check_int(n_raters, "n_raters", 1)
    careless = _check_int(careless, "careless", 0)
    repeats = _check_int(repeats, "repeats", 0)
    if careless > n_raters:
        raise ValueError(f"careless raters ({careless}) cannot outnumber the raters ({n_raters})")
    per_rater = n_videos if per_rater is None else _check_int(per_rater, "per_rater", 1)
    if per_rater > n_videos:
        raise ValueError(f"per_rater ({per_rater}) cannot exceed the number of videos ({n_videos})")
    if repeats > per_rater:
        raise ValueError(f"repeats ({repeats}) cannot exceed the videos a rater sees ({per_rater})")
    if not (bias_sd >= 0 and math.isfinite(bias_sd)):
        raise ValueError(f"bias_sd must be a finite number >= 0, got {bias_sd!r}")
    low, high = (float(v) for v in inconsistency)
    if not 0 <= low <= high or not math.isfinite(high):
        raise ValueError(f"inconsistency must be a range (low, high) with 0 <= low <= high, got {inconsistency!r}")
    q_low, q_high = (float(v) for v in quality_range)
    if not ACR_MIN <= q_low <= q_high <= ACR_MAX:
        raise ValueError(f"quality_range must lie within {ACR_MIN}-{ACR_MAX}, got {quality_range!r}")

    rng = np.random.default_rng(seed)
    videos, raters = _video_ids(n_videos), _rater_ids(n_raters)
    truth = rng.uniform(q_low, q_high, n_videos)
    bias = rng.normal(0.0, bias_sd, n_raters)
    noise = rng.uniform(low, high, n_raters)
    careless_idx = set(rng.choice(n_raters, size=careless, replace=False).tolist()) if careless else set()
    for s in careless_idx:
        bias[s] = 0.0
    seen = _assignment(n_videos, n_raters, per_rater, rng)

    # every answer a rater could give: careful ones around truth + bias, careless ones at random
    careful = np.clip(np.rint(truth[None, :] + bias[:, None] + rng.normal(0.0, 1.0, (2, n_raters, n_videos))
                              * noise[None, :, None]), ACR_MIN, ACR_MAX).astype(int)
    random = rng.integers(ACR_MIN, ACR_MAX + 1, (2, n_raters, n_videos))
    answers = np.where(np.isin(np.arange(n_raters), sorted(careless_idx))[None, :, None], random, careful)

    ratings: list[Rating] = []
    for s in range(n_raters):
        order = rng.permutation(seen[s])
        again = rng.choice(order, size=repeats, replace=False) if repeats else ()
        ratings.extend(Rating(raters[s], videos[e], int(answers[0, s, e]), kind="main", at=float(k + 1))
                       for k, e in enumerate(order))
        ratings.extend(Rating(raters[s], videos[e], int(answers[1, s, e]), kind="repeat",
                              at=float(len(order) + k + 1)) for k, e in enumerate(again))
    return SimulatedStudy(
        truth=dict(zip(videos, map(float, truth))),
        ratings=tuple(ratings),
        careless=tuple(raters[s] for s in sorted(careless_idx)),
        biases=dict(zip(raters, map(float, bias))),
        inconsistencies={r: (float("nan") if s in careless_idx else float(noise[s])) for s, r in enumerate(raters)},
    )


@dataclass(frozen=True)
class SimulatedComparisons:
    """A simulated pairwise study: true quality per video and the comparisons made."""

    truth: dict[str, float]
    comparisons: tuple[Comparison, ...]


def simulate_comparisons(
    n_videos: int,
    n_raters: int,
    *,
    per_rater: int = 30,
    inconsistency: float = 0.5,
    quality_range: tuple[float, float] = (1.5, 4.5),
    seed: int = 0,
) -> SimulatedComparisons:
    """Simulate a pairwise study: each rater judges `per_rater` random pairs and prefers the
    video whose true quality plus the rater's noise (sd `inconsistency` per video) is higher."""
    n_videos = _check_int(n_videos, "n_videos", 2)
    n_raters = _check_int(n_raters, "n_raters", 1)
    per_rater = _check_int(per_rater, "per_rater", 1)
    if not (inconsistency >= 0 and math.isfinite(inconsistency)):
        raise ValueError(f"inconsistency must be a finite number >= 0, got {inconsistency!r}")
    rng = np.random.default_rng(seed)
    videos = _video_ids(n_videos)
    truth = rng.uniform(float(quality_range[0]), float(quality_range[1]), n_videos)
    out = []
    for s, rater in enumerate(_rater_ids(n_raters)):
        for k in range(per_rater):
            a, b = rng.choice(n_videos, size=2, replace=False)
            seen_a, seen_b = truth[a] + rng.normal(0, inconsistency), truth[b] + rng.normal(0, inconsistency)
            out.append(Comparison(rater, videos[a], videos[b], videos[a] if seen_a >= seen_b else videos[b],
                                  at=float(k)))
    return SimulatedComparisons(dict(zip(videos, map(float, truth))), tuple(out))


# --- planning -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class StudyPlan:
    """What a study of this size should expect, from `runs` simulated studies."""

    videos: int
    raters: int
    per_rater: int
    ratings_per_video: float
    careless: int  # careless raters per simulated study
    runs: int
    screening: tuple[str, ...]
    ci_width_median: float  # width of the MOS 95% interval, 1-5 scale, median over videos and runs
    ci_width_p90: float
    ci_width_median_100: float  # the same on vqscope's 0-100 scale
    ci_width_p90_100: float
    rating_sd: float  # standard deviation of an item's accepted ratings, median
    srocc_mean: float  # Spearman between recovered MOS and true quality
    srocc_p05: float
    careless_caught: float | None  # share of careless raters rejected (None: no careless raters)
    careful_rejected: float  # careful raters wrongly rejected, per study (mean)
    careful_rejected_share: float  # ... as a share of the careful raters
    seconds: float  # how long the simulation took
    recommendation: str

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if isinstance(value, float):
                value = round(value, 4) if math.isfinite(value) else None
            elif isinstance(value, tuple):
                value = list(value)
            out[key] = value
        return out

    def text(self) -> str:
        caught = "no careless raters simulated" if self.careless_caught is None else (
            f"{self.careless_caught:.0%} of careless raters caught")
        lines = [
            f"Study plan: {self.videos} videos, {self.raters} raters, {self.per_rater} videos per rater "
            f"({self.ratings_per_video:.1f} ratings per video), {self.careless} careless per study, {self.runs} runs",
            f"  MOS 95% interval width: median {self.ci_width_median:.2f}, 90th percentile {self.ci_width_p90:.2f} "
            f"on 1-5 ({self.ci_width_median_100:.1f} and {self.ci_width_p90_100:.1f} on 0-100)",
            f"  rating standard deviation per video: {self.rating_sd:.2f} (median)",
            f"  SROCC with the true quality: mean {self.srocc_mean:.3f}, 5th percentile {self.srocc_p05:.3f}",
            f"  screening ({', '.join(self.screening) or 'off'}): {caught}, "
            f"{self.careful_rejected:.2f} careful raters wrongly rejected per study",
            "",
            self.recommendation,
        ]
        return "\n".join(lines)


def plan_study(
    videos: int,
    raters: int,
    *,
    careless_share: float = 0.1,
    per_rater: int | None = None,
    runs: int = 20,
    seed: int = 0,
    screening: Sequence[str] = SCREENINGS,
) -> StudyPlan:
    """Simulate `runs` studies of this size through `analyse_ratings` and say what to expect.

    Each run has round(careless_share x raters) careless raters. Raises ValueError with one
    readable line on bad arguments.
    """
    videos = _check_int(videos, "videos", 3)
    raters = _check_int(raters, "raters", 2)
    runs = _check_int(runs, "runs", 1)
    if isinstance(careless_share, bool) or not isinstance(careless_share, (int, float)) \
            or not 0 <= careless_share < 1:
        raise ValueError(f"careless_share must be a number from 0 to below 1, got {careless_share!r}")
    per_rater = videos if per_rater is None else _check_int(per_rater, "per_rater", 1)
    if per_rater > videos:
        raise ValueError(f"per_rater ({per_rater}) cannot exceed the number of videos ({videos})")
    if raters * per_rater < 2 * videos:
        raise ValueError(f"{raters} raters seeing {per_rater} videos each give fewer than 2 ratings per video; "
                         "invite more raters or show each more videos")
    if isinstance(screening, str):
        screening = (screening,)
    screening = tuple(dict.fromkeys(screening))
    for name in screening:
        if name not in SCREENINGS:
            raise ValueError(f"unknown screening {name!r} (screenings: {', '.join(SCREENINGS)})")
    careless = math.floor(careless_share * raters + 0.5)
    careless = min(careless, raters - 2)  # a study needs careful raters to plan for

    started = time.perf_counter()
    widths: list[np.ndarray] = []
    sds: list[float] = []
    sroccs, caught, wrongly = [], 0, []
    for run in range(runs):
        study = simulate_ratings(videos, raters, careless=careless, per_rater=per_rater, seed=seed * 100_003 + run)
        analysis = analyse_ratings(study.ratings, screening=screening, p913_scores=False)
        widths.append(np.array([r.ci95[1] - r.ci95[0] for r in analysis.items if r.ci95 is not None]))
        sds.extend(r.std for r in analysis.items if r.std is not None)
        mos = {r.item: r.mos for r in analysis.items}
        ids = [v for v in study.truth if v in mos]
        sroccs.append(float(stats.spearmanr([mos[v] for v in ids], [study.truth[v] for v in ids]).statistic))
        rejected = set(analysis.rejected)
        caught += len(rejected & set(study.careless))
        wrongly.append(len(rejected - set(study.careless)))
    seconds = time.perf_counter() - started

    width = np.concatenate(widths) if widths else np.array([np.nan])
    if width.size == 0:
        width = np.array([np.nan])
    srocc = np.asarray(sroccs, dtype=float)
    careful = raters - careless
    plan = dict(
        videos=videos, raters=raters, per_rater=per_rater, ratings_per_video=raters * per_rater / videos,
        careless=careless, runs=runs, screening=screening,
        ci_width_median=float(np.median(width)), ci_width_p90=float(np.quantile(width, 0.9)),
        ci_width_median_100=float(np.median(width)) * 25.0, ci_width_p90_100=float(np.quantile(width, 0.9)) * 25.0,
        rating_sd=float(np.median(sds)) if sds else float("nan"),
        srocc_mean=float(np.nanmean(srocc)), srocc_p05=float(np.nanquantile(srocc, 0.05)),
        careless_caught=(caught / (careless * runs)) if careless else None,
        careful_rejected=float(np.mean(wrongly)), careful_rejected_share=float(np.mean(wrongly)) / careful,
        seconds=seconds,
    )
    return StudyPlan(**plan, recommendation=_recommend(plan))


def _ratings_for(sd: float, width: float) -> int:
    """Fewest ratings n whose Student-t 95% interval (2 t(0.975, n-1) sd / sqrt(n)) is <= width."""
    n = 2
    while n < 10_000 and 2.0 * float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n) > width:
        n += 1
    return n


def _recommend(plan: dict[str, Any]) -> str:
    """One paragraph: is this enough, and if not, roughly how many raters would be."""
    per_video = plan["ratings_per_video"]
    width = plan["ci_width_median"]
    parts = [f"With {per_video:.0f} ratings per video the typical MOS is known to +-{width / 2:.2f} "
             f"(+-{width / 2 * 25:.0f} points on 0-100) and the MOS ranks the videos with SROCC "
             f"{plan['srocc_mean']:.2f} against the truth."]
    if math.isfinite(width) and width > TARGET_WIDTH and math.isfinite(plan["rating_sd"]):
        needed = _ratings_for(plan["rating_sd"], TARGET_WIDTH)
        careful_share = 1.0 - plan["careless"] / plan["raters"]
        raters_needed = math.ceil(needed * plan["videos"] / plan["per_rater"] / careful_share)
        parts.append(f"For +-{TARGET_WIDTH / 2:.1f} (videos 0.6 categories apart told apart) a video needs about "
                     f"{needed} accepted ratings: about {raters_needed} raters seeing {plan['per_rater']} videos "
                     "each, counting the careless ones screening removes.")
    elif math.isfinite(width):
        parts.append(f"That meets the +-{TARGET_WIDTH / 2:.1f} a study needs to tell apart videos 0.6 categories "
                     "apart; more raters buy little.")
    if plan["screening"] and plan["careless"]:
        if plan["careless_caught"] is not None and plan["careless_caught"] < 0.8:
            parts.append(f"Screening catches only {plan['careless_caught']:.0%} of careless raters at this size: give "
                         "each rater more videos (BT.500 and P.913 judge a rater on 10 or more ratings, and need 5+ "
                         "raters and 6+ ratings per video) or add gold items.")
        else:
            parts.append(f"Screening catches {plan['careless_caught']:.0%} of careless raters.")
    if plan["careful_rejected"] > 0.5:
        parts.append(f"It also rejects {plan['careful_rejected']:.1f} careful raters per study: invite that many more.")
    parts.append("The figures assume true quality spread evenly over 1.5-4.5; a set of similar videos ranks worse.")
    return " ".join(parts)
