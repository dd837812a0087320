"""From ratings to MOS: rater screening, mean opinion scores with intervals, pairwise scores.

A study's raw answers become a dataset here. The steps, and why each is done this way:

* Only `main` ratings make the MOS, the first one per rater and item (a second submission of
  the same item is ignored and counted). `repeat` ratings measure how consistent a rater is,
  `gold` ratings how far a rater is from a known answer; `training` ratings are ignored.
* Screening removes raters whose answers do not describe the videos. Two standard tests, both
  run by Netflix's `sureal` rather than written here:

  - ITU-R BT.500's kurtosis-based rejection (`MosModel` with `subject_rejection=True`): a
    rating is an outlier when it lies outside the item's mean +- 2 sigma (+- sqrt(20) sigma for
    items whose ratings are not normal by their kurtosis); a rater is rejected when more than
    5% of their ratings are outliers *and* the outliers fall evenly above and below
    (|P - Q| / (P + Q) < 0.3). A rater whose ratings are all a bit high is biased, not
    careless, and is kept. sureal divides by the number of items, which assumes everyone
    rated everything; with an incomplete design the outlier count is divided by the rater's
    own number of ratings instead (identical when the design is complete). Items whose
    ratings all agree (or that have one rating) are left out of this test: they hold no
    outlier, and sureal would count every rating of a zero-spread item as outside its range.
  - ITU-T P.913's subject model (each rating = true quality + rater bias + noise whose sd is
    the rater's inconsistency), fitted by sureal's `MaximumLikelihoodEstimationModelContent
    Oblivious`. The content-aware MLE model does not converge when every content has one
    video, as in a UGC study where every video is its own content. **Rule:** a rater is
    rejected when their inconsistency exceeds both `median + 3 x 1.4826 x MAD` of the judged
    raters' inconsistencies and `1.5 x median`. Median and MAD, not mean and sd, so that the
    careless raters themselves do not widen the yardstick (it holds while fewer than half of
    the raters are careless); the 1.5 x median floor keeps a tight panel (tiny MAD) from
    rejecting a rater who is only slightly noisier than very consistent colleagues. Bias is
    reported but never a reason: P.913 corrects bias, it does not punish it.

  Repeats and gold answers add two absolute checks, run whenever screening is on: a rater
  whose gold answers are off by 1.5 categories or more on average (at least 2 gold answers),
  or whose repeated ratings differ from their first rating of the same video by 2.0
  categories or more on average (at least 3 repeats), is rejected. The repeat limit is the
  gold limit times sqrt(2), because a repeat difference holds two noisy answers, not one; a
  careful rater with an inconsistency of 0.8 passes it about 99 times in 100.

  Screening needs data. With fewer than 5 raters nobody is judged by BT.500 or P.913 (a
  median of 3 says nothing); a rater with fewer than 10 main ratings is not judged by them
  either; BT.500 is skipped when the typical item has fewer than 6 ratings (below that no
  rating can lie 2 sigma from its item's mean). Rejection never leaves an item with fewer
  than 2 ratings (nor takes away an item's only rating): the most flagged raters go first,
  and a rater whose removal would break that is kept, flagged, with a note.
* Per item, over the accepted raters: the MOS (mean), the sample standard deviation, the
  count and a 95% interval from Student's t on the ratings (mean +- t(0.975, n-1) * s /
  sqrt(n)). Student's t and not the normal 1.96, because a study has 5-30 ratings per item,
  where 1.96 is too narrow (by 12% at n = 10). The interval is clipped to the 1-5 scale. The
  P.913 recovered score (bias-corrected), with sureal's interval (+- 1.96 of its standard
  error), comes from a second fit on the accepted raters. The FineVD form adds the same
  figures per dimension and, per distortion type, the share of the item's accepted raters who
  ticked it.
* Pairwise comparisons go to sureal's paired-comparison models (Thurstone case V or
  Bradley-Terry, by maximum likelihood), which give one score per item on an interval scale.

sureal prints its iterations and raises numpy warnings; every call is wrapped to keep both
quiet. sureal is imported on first use: it pulls in pandas and matplotlib (seconds).
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
from scipy import stats

from .ratings import (
    ACR_MAX,
    ACR_MIN,
    RATED_DIMENSIONS,
    Comparison,
    Item,
    Rating,
    acr_to_100,
)

#: Screening methods `analyse_ratings` knows.
SCREENINGS: tuple[str, ...] = ("bt500", "p913")

#: Paired-comparison models `analyse_comparisons` knows.
PAIRWISE_MODELS: tuple[str, ...] = ("thurstone", "bradley-terry")

SCREEN_MIN_RATERS = 5  # fewer raters: nobody is judged by BT.500 or P.913
JUDGE_MIN_RATINGS = 10  # a rater with fewer main ratings is not judged by BT.500 or P.913
BT500_MIN_PER_ITEM = 6  # median ratings per item BT.500 needs (n < 6: no rating can be 2 sigma out)
BT500_OUTLIER_SHARE = 0.05  # BT.500 (and sureal): reject above 5% outliers ...
BT500_BALANCE = 0.3  # ... when |P - Q| / (P + Q) is below 0.3 (outliers on both sides)
P913_MAD_FACTOR = 3.0  # P.913 rule: inconsistency above median + 3 x (1.4826 x MAD) ...
P913_MEDIAN_FACTOR = 1.5  # ... and above 1.5 x median
FIT_MIN_RATINGS = 3  # raters with fewer main ratings are left out of the P.913 fit
GOLD_MIN, GOLD_LIMIT = 2, 1.5  # at least 2 gold answers, mean error >= 1.5 categories: rejected
REPEAT_MIN, REPEAT_LIMIT = 3, 2.0  # at least 3 repeats, mean |difference| >= 2.0: rejected
MIN_KEPT_PER_ITEM = 2  # rejection never leaves an item (that had 2+) with fewer ratings
FIT_TOLERANCE = 1e-4  # sureal's stopping threshold on the change of the scores (its default: 1e-8) ...
SCREEN_TOLERANCE = 1e-3  # ... and when only screening needs the fit (inconsistencies within ~0.002)


# --- results ------------------------------------------------------------------------------------
def _r(value: float | None, digits: int = 3) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _pair(value: tuple[float, float] | None, digits: int = 3) -> list[float | None] | None:
    return None if value is None else [_r(value[0], digits), _r(value[1], digits)]


@dataclass(frozen=True)
class DimensionMOS:
    """Mean of one dimension's 1-5 ratings over an item's accepted raters."""

    mos: float
    ci95: tuple[float, float] | None  # Student t, clipped to 1-5; None with one rating
    std: float | None  # sample standard deviation (n - 1); None with one rating
    count: int

    def to_dict(self) -> dict[str, Any]:
        return {"mos": _r(self.mos), "ci95": _pair(self.ci95), "std": _r(self.std), "count": self.count}


@dataclass(frozen=True)
class ItemResult:
    """One item's figures after screening."""

    item: str
    video: str
    mos: float  # 1-5, mean of the accepted raters' first main ratings
    ci95: tuple[float, float] | None
    std: float | None
    count: int  # accepted ratings
    excluded: int = 0  # main ratings of rejected raters, left out
    p913: float | None = None  # P.913 recovered score (bias removed), 1-5 scale
    p913_ci95: tuple[float, float] | None = None
    dimensions: Mapping[str, DimensionMOS] = field(default_factory=dict)  # FineVD form only
    # FineVD form: distortion type -> share of the item's accepted FineVD-form ratings that
    # ticked it (types nobody ticked are left out); None for an item rated in the ACR form
    tags: Mapping[str, float] | None = None

    @property
    def mos_100(self) -> float:
        """The MOS on vqscope's 0-100 score scale."""
        return acr_to_100(self.mos)

    def to_dict(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "video": self.video,
            "mos": _r(self.mos),
            "mos_100": _r(self.mos_100, 2),
            "ci95": _pair(self.ci95),
            "std": _r(self.std),
            "count": self.count,
            "excluded": self.excluded,
            "p913": _r(self.p913),
            "p913_ci95": _pair(self.p913_ci95),
            "dimensions": {name: dim.to_dict() for name, dim in self.dimensions.items()},
            "tags": None if self.tags is None else {tag: _r(share) for tag, share in self.tags.items()},
        }


@dataclass(frozen=True)
class RaterReport:
    """What the analysis found about one rater, and whether their ratings were used."""

    rater: str
    ratings: int  # main ratings (first per item)
    rejected: bool
    reasons: tuple[str, ...] = ()  # why flagged (also for a flagged rater who had to be kept)
    bias: float | None = None  # P.913 bias: how far above (+) or below (-) the others, in categories
    inconsistency: float | None = None  # P.913 inconsistency: sd of the rater's noise, in categories
    bt500_share: float | None = None  # share of the rater's ratings outside their item's range
    bt500_balance: float | None = None  # |P - Q| / (P + Q): 0 = outliers evenly above and below
    repeats: int = 0
    repeat_mad: float | None = None  # mean |repeat - first rating| of the same item
    gold: int = 0
    gold_mae: float | None = None  # mean |answer - expected| on gold items
    correlation: float | None = None  # Pearson with the other accepted raters' MOS of the same items
    duplicates: int = 0  # second main ratings of an item, ignored

    def to_dict(self) -> dict[str, Any]:
        return {
            "rater": self.rater,
            "ratings": self.ratings,
            "rejected": self.rejected,
            "reasons": list(self.reasons),
            "bias": _r(self.bias),
            "inconsistency": _r(self.inconsistency),
            "bt500_share": _r(self.bt500_share),
            "bt500_balance": _r(self.bt500_balance),
            "repeats": self.repeats,
            "repeat_mad": _r(self.repeat_mad),
            "gold": self.gold,
            "gold_mae": _r(self.gold_mae),
            "correlation": _r(self.correlation),
            "duplicates": self.duplicates,
        }


@dataclass(frozen=True)
class StudyAnalysis:
    """A study's MOS per item, its raters' reports and what the analysis had to say."""

    items: tuple[ItemResult, ...]
    raters: tuple[RaterReport, ...]
    notes: tuple[str, ...]
    method: str  # "acr" or "finevd" (main ratings with dimensions)
    screening: tuple[str, ...]  # screenings asked for

    @property
    def rejected(self) -> tuple[str, ...]:
        return tuple(r.rater for r in self.raters if r.rejected)

    def item(self, item_id: str) -> ItemResult:
        for result in self.items:
            if result.item == item_id:
                return result
        raise KeyError(item_id)

    def rater(self, rater_id: str) -> RaterReport:
        for report in self.raters:
            if report.rater == rater_id:
                return report
        raise KeyError(rater_id)

    def summary(self) -> str:
        widths = [r.ci95[1] - r.ci95[0] for r in self.items if r.ci95 is not None]
        rejected = self.rejected
        text = f"{len(self.items)} items, {len(self.raters)} raters"
        text += f", {len(rejected)} rejected ({', '.join(rejected)})" if rejected else ", none rejected"
        counts = [r.count for r in self.items]
        text += f", {float(np.median(counts)):g} ratings per item (median)"
        if widths:
            text += f", 95% interval +-{float(np.median(widths)) / 2:.2f} (median)"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "screening": list(self.screening),
            "summary": self.summary(),
            "rejected": list(self.rejected),
            "items": [r.to_dict() for r in self.items],
            "raters": [r.to_dict() for r in self.raters],
            "notes": list(self.notes),
        }


# --- sureal, quietly ----------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """sureal writes its iterations to stdout and lets numpy warn; keep both in."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


def _raw_reader(matrix: np.ndarray, observers: Sequence[str]):
    """A sureal reader over an items x raters matrix (NaN = not rated); each item its own content."""
    from sureal.dataset_reader import RawDatasetReader

    n_items = matrix.shape[0]
    dataset = SimpleNamespace(
        dataset_name="vqscope_study",
        ref_videos=[{"content_id": i, "content_name": f"c{i}", "path": f"ref/{i}"} for i in range(n_items)],
        dis_videos=[
            {
                "content_id": i,
                "asset_id": i,
                "path": f"dis/{i}",
                "os": {observers[s]: float(matrix[i, s]) for s in range(matrix.shape[1]) if not np.isnan(matrix[i, s])},
            }
            for i in range(n_items)
        ],
    )
    return RawDatasetReader(dataset)


@dataclass(frozen=True)
class _Bt500:
    outliers: dict[str, int]  # rater -> ratings outside their item's range (P + Q)
    balance: dict[str, float | None]  # rater -> |P - Q| / (P + Q)


def _bt500(matrix: np.ndarray, raters: Sequence[str]) -> _Bt500 | None:
    """BT.500 outlier counts per rater from sureal, over items with some spread."""
    from sureal.subjective_model import MosModel

    spread = np.array([np.nanmax(row) > np.nanmin(row) for row in matrix]) if matrix.size else np.array([])
    used = matrix[spread] if spread.size else matrix[:0]
    if used.shape[0] == 0:
        return None
    present = [s for s in range(len(raters)) if np.any(~np.isnan(used[:, s]))]
    names = [raters[s] for s in present]
    with _quiet():
        result = MosModel(_raw_reader(used[:, present], names)).run_modeling(subject_rejection=True)
    order = list(result.get("observers", sorted(names)))
    outliers = {r: 0 for r in raters}
    balance: dict[str, float | None] = {r: None for r in raters}
    for name, first, second in zip(order, result["observer_rejected_1st_stats"], result["observer_rejected_2nd_stats"]):
        outliers[name] = round(float(first) * used.shape[0])  # sureal: (P + Q) / (items x repeats)
        balance[name] = float(second) if np.isfinite(second) else None
    return _Bt500(outliers, balance)


@dataclass(frozen=True)
class _P913:
    scores: np.ndarray  # per item row (NaN where not fitted)
    ci95: np.ndarray  # (items, 2): lower and upper offsets
    bias: dict[str, float]
    inconsistency: dict[str, float]


def _p913(matrix: np.ndarray, raters: Sequence[str], eligible: Sequence[int],
          tolerance: float = FIT_TOLERANCE) -> _P913 | None:
    """Fit P.913's subject model with sureal (content oblivious); None if it does not converge."""
    from sureal.subjective_model import (
        MaximumLikelihoodEstimationModelContentOblivious as ContentOblivious,
    )

    rows = [i for i in range(matrix.shape[0]) if np.any(~np.isnan(matrix[i, list(eligible)]))]
    if len(eligible) < 2 or len(rows) < 2:
        return None
    sub = matrix[np.ix_(rows, list(eligible))]
    names = [raters[s] for s in eligible]
    try:
        with _quiet():
            result = ContentOblivious(_raw_reader(sub, names)).run_modeling(delta_thr=tolerance)
    except (AssertionError, ValueError, ZeroDivisionError, FloatingPointError, np.linalg.LinAlgError):
        return None
    x = np.asarray(result["quality_scores"], dtype=float)
    lo, hi = (np.asarray(v, dtype=float) for v in result["quality_scores_ci95"])
    bias = np.asarray(result["observer_bias"], dtype=float)
    incons = np.asarray(result["observer_inconsistency"], dtype=float)
    if result.get("num_iter", 0) >= 10000 or not (np.all(np.isfinite(x)) and np.all(np.isfinite(bias))
                                                   and np.all(np.isfinite(incons))):
        return None
    order = list(result.get("observers", sorted(names)))
    scores = np.full(matrix.shape[0], np.nan)
    ci = np.full((matrix.shape[0], 2), np.nan)
    scores[rows] = x
    ci[rows, 0] = lo
    ci[rows, 1] = hi
    return _P913(scores, ci, dict(zip(order, map(float, bias))), dict(zip(order, map(float, incons))))


# --- small statistics ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=512)
def _t975(dof: int) -> float:
    return float(stats.t.ppf(0.975, dof))


def _describe(values: Sequence[float]) -> tuple[float, tuple[float, float] | None, float | None, int]:
    """Mean, Student-t 95% interval (clipped to 1-5), sample sd and count of 1-5 ratings."""
    v = np.asarray(values, dtype=float)
    n = int(v.size)
    mean = float(v.mean())
    if n < 2:
        return mean, None, None, n
    sd = float(v.std(ddof=1))
    half = _t975(n - 1) * sd / math.sqrt(n)
    return mean, (max(ACR_MIN, mean - half), min(ACR_MAX, mean + half)), sd, n


def _robust_limit(values: Sequence[float]) -> tuple[float, float]:
    """P.913 rule's limit on inconsistency, and the median it is read against."""
    v = np.asarray(values, dtype=float)
    median = float(np.median(v))
    mad = float(stats.median_abs_deviation(v, scale="normal"))  # 1.4826 x MAD
    return max(median + P913_MAD_FACTOR * mad, P913_MEDIAN_FACTOR * median), median


def _pearson(a: Sequence[float], b: Sequence[float]) -> float | None:
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def _ids(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# --- ratings -> MOS -----------------------------------------------------------------------------
def analyse_ratings(
    ratings: Sequence[Rating],
    *,
    items: Sequence[Item] | None = None,
    screening: Sequence[str] = SCREENINGS,
    p913_scores: bool = True,
) -> StudyAnalysis:
    """Screen the raters of a study and compute each item's MOS (see the module docstring).

    `items`, when given, names the videos (results follow its order) and holds gold answers;
    a rating for an item not among them is an error. `screening` picks from `SCREENINGS`
    (an empty sequence turns screening off). `p913_scores=False` skips the P.913 recovered
    score per item (a second model fit) and fits the subject model only as closely as
    screening needs (rater bias and inconsistency within about 0.002): study planning only
    needs the MOS, and runs this many times.
    Raises ValueError with one readable line on bad input.
    """
    ratings = list(ratings)
    if not ratings:
        raise ValueError("no ratings to analyse")
    if isinstance(screening, str):
        screening = (screening,)
    screening = tuple(dict.fromkeys(screening))
    unknown = [s for s in screening if s not in SCREENINGS]
    if unknown:
        raise ValueError(f"unknown screening {unknown[0]!r} (screenings: {', '.join(SCREENINGS)})")
    for rating in ratings:
        if not isinstance(rating, Rating):
            raise ValueError(f"expected Rating records, got {type(rating).__name__}")
    known = {item.id: item for item in items} if items is not None else None
    if known is not None:
        for rating in ratings:
            if rating.item not in known:
                raise ValueError(f"rating by {rating.rater!r} for item {rating.item!r}, which is not in the study")

    notes: list[str] = []
    ordered = sorted(ratings, key=lambda r: r.at)  # stable: imports (all at 0) keep their order
    by_kind: dict[str, list[Rating]] = defaultdict(list)
    for rating in ordered:
        by_kind[rating.kind].append(rating)

    # first main rating per rater and item
    main: dict[tuple[str, str], Rating] = {}
    duplicates: Counter[str] = Counter()
    for rating in by_kind["main"]:
        key = (rating.rater, rating.item)
        if key in main:
            duplicates[rating.rater] += 1
        else:
            main[key] = rating
    if not main:
        raise ValueError(f"no main ratings to analyse ({len(ratings)} ratings, none of kind 'main')")
    if duplicates:
        notes.append(f"{sum(duplicates.values())} repeated submissions of a main rating ignored "
                     "(a rater's first rating of an item counts)")
    if by_kind["training"]:
        notes.append(f"{len(by_kind['training'])} training ratings ignored")

    raters = sorted({r for r, _ in main} | {r.rater for r in ordered if r.kind in ("repeat", "gold")})
    rated_items = {i for _, i in main}
    if known is not None:
        item_ids = [item.id for item in items if item.id in rated_items]  # type: ignore[union-attr]
        unrated = [item.id for item in items if item.kind == "video" and item.id not in rated_items]  # type: ignore[union-attr]
        if unrated:
            notes.append(f"{len(unrated)} videos have no main rating yet: {_ids(unrated)}")
    else:
        item_ids = list(dict.fromkeys(i for _, i in main))
    row = {item: i for i, item in enumerate(item_ids)}
    col = {rater: s for s, rater in enumerate(raters)}
    matrix = np.full((len(item_ids), len(raters)), np.nan)
    for (rater, item), rating in main.items():
        matrix[row[item], col[rater]] = rating.score
    counts = np.sum(~np.isnan(matrix), axis=0)  # main ratings per rater

    repeats, repeat_mad = _repeat_figures(by_kind["repeat"], main, notes)
    gold, gold_mae = _gold_figures(by_kind["gold"], known, notes)

    # --- the P.913 subject model on everyone who rated enough (bias and inconsistency) ---
    eligible = [s for s in range(len(raters)) if counts[s] >= FIT_MIN_RATINGS]
    fit_all = _p913(matrix, raters, eligible, FIT_TOLERANCE if p913_scores else SCREEN_TOLERANCE)
    if len(eligible) < 2:
        notes.append(f"P.913 subject model not fitted: it needs 2 raters with {FIT_MIN_RATINGS}+ main ratings each "
                     "(no rater bias or inconsistency, no P.913 scores)")
    elif fit_all is None:
        notes.append("the P.913 subject model (sureal, content oblivious) did not converge on these ratings, as when "
                     "raters agree exactly or share no items (no rater bias or inconsistency, no P.913 scores)")

    # --- screening: who is flagged, and why ---
    flags: dict[str, list[str]] = defaultdict(list)
    severity: dict[str, float] = defaultdict(float)
    bt500: _Bt500 | None = None
    judged = [raters[s] for s in range(len(raters)) if counts[s] >= JUDGE_MIN_RATINGS]
    if not screening:
        notes.append("screening off: every rater's ratings are used")
    else:
        enough = len(judged) >= SCREEN_MIN_RATERS
        if not enough:
            notes.append(f"BT.500 and P.913 screening skipped: {len(judged)} raters with {JUDGE_MIN_RATINGS}+ main "
                         f"ratings, at least {SCREEN_MIN_RATERS} are needed to tell a careless rater from the others")
        else:
            unjudged = [raters[s] for s in range(len(raters)) if 0 < counts[s] < JUDGE_MIN_RATINGS]
            if unjudged:
                notes.append(f"{len(unjudged)} raters with fewer than {JUDGE_MIN_RATINGS} main ratings not judged by "
                             f"BT.500 or P.913: {_ids(unjudged)}")
        per_item = np.sum(~np.isnan(matrix), axis=1)
        if "bt500" in screening and enough:
            median_count = float(np.median(per_item))
            if median_count < BT500_MIN_PER_ITEM:
                notes.append(f"BT.500 screening skipped: items have a median of {median_count:g} ratings, at least "
                             f"{BT500_MIN_PER_ITEM} are needed for a rating to lie 2 sigma from its item's mean")
            else:
                bt500 = _bt500(matrix, raters)
                if bt500 is None:
                    notes.append("BT.500 screening skipped: the raters agree on every item")
                else:
                    _flag_bt500(bt500, judged, col, counts, flags, severity, notes)
        if "p913" in screening and enough and fit_all is not None:
            _flag_p913(fit_all, [r for r in judged if r in fit_all.inconsistency], flags, severity)
        for rater in raters:
            if repeats[rater] >= REPEAT_MIN and repeat_mad[rater] is not None and repeat_mad[rater] >= REPEAT_LIMIT:
                flags[rater].append(f"repeats: differ from the first rating by {repeat_mad[rater]:.2f} categories on "
                                    f"average over {repeats[rater]} repeats (limit {REPEAT_LIMIT:g})")
                severity[rater] += repeat_mad[rater] / REPEAT_LIMIT
            if gold[rater] >= GOLD_MIN and gold_mae[rater] is not None and gold_mae[rater] >= GOLD_LIMIT:
                flags[rater].append(f"gold: off the expected answer by {gold_mae[rater]:.2f} categories on average "
                                    f"over {gold[rater]} gold items (limit {GOLD_LIMIT:g})")
                severity[rater] += gold_mae[rater] / GOLD_LIMIT

    rejected = _apply_rejections(matrix, raters, col, flags, severity, item_ids, notes)

    # --- per item, over the accepted raters ---
    keep = np.array([rater not in rejected for rater in raters], dtype=bool)
    accepted = matrix[:, keep]
    fit_final: _P913 | None = None
    if p913_scores:
        kept_eligible = [s for s in eligible if keep[s]]
        if not rejected and fit_all is not None:
            fit_final = fit_all
        elif len(kept_eligible) >= 2:
            fit_final = _p913(matrix, raters, kept_eligible)
        if fit_final is None and fit_all is not None:
            notes.append("no P.913 recovered scores: the subject model did not converge on the accepted raters")
    by_item: dict[str, list[Rating]] = defaultdict(list)
    for (rater, item), rating in main.items():
        if rater not in rejected:
            by_item[item].append(rating)
    results = []
    missing_p913 = []
    for item_id in item_ids:
        i = row[item_id]
        values = accepted[i][~np.isnan(accepted[i])]
        excluded = int(np.sum(~np.isnan(matrix[i])) - values.size)
        if values.size == 0:  # every rater of this item rejected: cannot happen with the guard, but be safe
            values = matrix[i][~np.isnan(matrix[i])]
            excluded = 0
        mos, ci, sd, n = _describe(values)
        p913 = p913_ci = None
        if fit_final is not None and np.isfinite(fit_final.scores[i]):
            p913 = float(fit_final.scores[i])
            lo, hi = fit_final.ci95[i]
            p913_ci = (p913 - float(lo), p913 + float(hi)) if np.isfinite(lo) and np.isfinite(hi) else None
        elif fit_final is not None:
            missing_p913.append(item_id)
        dims, tags = _form_figures(by_item[item_id])
        video = known[item_id].video if known is not None else item_id
        results.append(ItemResult(item_id, video, mos, ci, sd, n, excluded, p913, p913_ci, dims, tags))
    if missing_p913:
        notes.append(f"no P.913 score for {len(missing_p913)} items rated only by raters with fewer than "
                     f"{FIT_MIN_RATINGS} main ratings: {_ids(missing_p913)}")

    # --- per rater ---
    reports = []
    for rater in raters:
        s = col[rater]
        correlation = _correlation_with_others(matrix, keep, s)
        bias = incons = None
        if fit_all is not None and rater in fit_all.bias:
            bias, incons = fit_all.bias[rater], fit_all.inconsistency[rater]
        share = balance = None
        if bt500 is not None and counts[s]:
            share = bt500.outliers[rater] / float(counts[s])
            balance = bt500.balance[rater]
        reports.append(RaterReport(
            rater=rater, ratings=int(counts[s]), rejected=rater in rejected, reasons=tuple(flags.get(rater, ())),
            bias=bias, inconsistency=incons, bt500_share=share, bt500_balance=balance,
            repeats=repeats[rater], repeat_mad=repeat_mad[rater], gold=gold[rater], gold_mae=gold_mae[rater],
            correlation=correlation, duplicates=duplicates[rater],
        ))
    method = "finevd" if any(r.dimensions for r in main.values()) else "acr"
    return StudyAnalysis(tuple(results), tuple(reports), tuple(notes), method, screening)


def _repeat_figures(repeat_ratings: Sequence[Rating], main: Mapping[tuple[str, str], Rating],
                    notes: list[str]) -> tuple[Counter[str], dict[str, float | None]]:
    diffs: dict[str, list[float]] = defaultdict(list)
    orphans = 0
    for rating in repeat_ratings:
        first = main.get((rating.rater, rating.item))
        if first is None:
            orphans += 1
            continue
        diffs[rating.rater].append(abs(rating.score - first.score))
    if orphans:
        notes.append(f"{orphans} repeat ratings have no main rating of the same item by the same rater: ignored")
    count = Counter({r: len(d) for r, d in diffs.items()})
    mad: dict[str, float | None] = defaultdict(lambda: None, {r: float(np.mean(d)) for r, d in diffs.items()})
    return count, mad


def _gold_figures(gold_ratings: Sequence[Rating], known: Mapping[str, Item] | None,
                  notes: list[str]) -> tuple[Counter[str], dict[str, float | None]]:
    errors: dict[str, list[float]] = defaultdict(list)
    unchecked = 0
    for rating in gold_ratings:
        expected = known[rating.item].gold if known is not None else None
        if expected is None:
            unchecked += 1
            continue
        errors[rating.rater].append(abs(rating.score - float(expected)))
    if unchecked:
        why = "no items given" if known is None else "their items have no expected answer"
        notes.append(f"{unchecked} gold ratings not checked: {why}")
    count = Counter({r: len(e) for r, e in errors.items()})
    mae: dict[str, float | None] = defaultdict(lambda: None, {r: float(np.mean(e)) for r, e in errors.items()})
    return count, mae


def _flag_bt500(bt500: _Bt500, judged: Sequence[str], col: Mapping[str, int], counts: np.ndarray,
                flags: dict[str, list[str]], severity: dict[str, float], notes: list[str]) -> None:
    hits = []
    for rater in judged:
        n = int(counts[col[rater]])
        outliers = bt500.outliers[rater]
        balance = bt500.balance[rater]
        if n and outliers / n > BT500_OUTLIER_SHARE and balance is not None and balance < BT500_BALANCE:
            hits.append(rater)
    if hits and len(hits) == len(judged):  # as sureal does: if everyone would go, nobody goes
        notes.append("BT.500 would reject every rater: nobody rejected by it")
        return
    for rater in hits:
        n = int(counts[col[rater]])
        outliers = bt500.outliers[rater]
        flags[rater].append(f"BT.500: {outliers / n:.0%} of ratings ({outliers} of {n}) outside their item's normal "
                            f"range (2 sigma), evenly above and below (balance {bt500.balance[rater]:.2f}; limits "
                            f"{BT500_OUTLIER_SHARE:.0%}, {BT500_BALANCE:g})")
        severity[rater] += (outliers / n) / BT500_OUTLIER_SHARE


def _flag_p913(fit: _P913, judged: Sequence[str], flags: dict[str, list[str]], severity: dict[str, float]) -> None:
    if len(judged) < SCREEN_MIN_RATERS:
        return
    limit, median = _robust_limit([fit.inconsistency[r] for r in judged])
    for rater in judged:
        value = fit.inconsistency[rater]
        if value > limit:
            flags[rater].append(f"P.913: inconsistency {value:.2f} against a median of {median:.2f} "
                                f"(limit {limit:.2f}: median + 3 MAD, at least 1.5 x median)")
            severity[rater] += value / max(limit, 1e-9)


def _apply_rejections(matrix: np.ndarray, raters: Sequence[str], col: Mapping[str, int],
                      flags: dict[str, list[str]], severity: dict[str, float], item_ids: Sequence[str],
                      notes: list[str]) -> set[str]:
    """Reject flagged raters, most flagged first, never leaving an item with fewer than 2 ratings."""
    present = ~np.isnan(matrix)
    floor = np.minimum(present.sum(axis=1), MIN_KEPT_PER_ITEM)
    kept = present.sum(axis=1)
    rejected: set[str] = set()
    for rater in sorted(flags, key=lambda r: (-len(flags[r]), -severity[r], r)):
        rated = present[:, col[rater]]
        if np.any(kept[rated] - 1 < floor[rated]):
            short = [item_ids[i] for i in np.flatnonzero(rated & (kept - 1 < floor))]
            flags[rater].append(f"kept: rejecting would leave {_ids(short, 3)} with fewer than "
                                f"{MIN_KEPT_PER_ITEM} ratings")
            notes.append(f"{rater} was flagged but kept: rejecting would leave {len(short)} items with fewer than "
                         f"{MIN_KEPT_PER_ITEM} ratings")
            continue
        rejected.add(rater)
        kept = kept - rated
    return rejected


def _form_figures(accepted: Sequence[Rating]) -> tuple[dict[str, DimensionMOS], dict[str, float] | None]:
    """Per-dimension MOS and tag shares over an item's accepted FineVD-form ratings."""
    form = [r for r in accepted if r.dimensions or r.tags]
    if not form:
        return {}, None
    dims = {}
    for name in RATED_DIMENSIONS:
        values = [r.dimensions[name] for r in form if name in r.dimensions]
        if values:
            dims[name] = DimensionMOS(*_describe(values))
    ticked = Counter(tag for r in form for tag in set(r.tags))
    tags = {tag: ticked[tag] / len(form) for tag, _ in sorted(ticked.items(), key=lambda kv: (-kv[1], kv[0]))}
    return dims, tags


def _correlation_with_others(matrix: np.ndarray, keep: np.ndarray, s: int) -> float | None:
    """Pearson between rater s's ratings and the mean of the other accepted raters on the same items."""
    others = keep.copy()
    others[s] = False
    if not others.any():
        return None
    mine = matrix[:, s]
    rest = matrix[:, others]
    has = ~np.isnan(mine) & np.any(~np.isnan(rest), axis=1)
    if has.sum() < 3:
        return None
    return _pearson(mine[has], np.nanmean(rest[has], axis=1))


# --- pairwise comparisons -----------------------------------------------------------------------
@dataclass(frozen=True)
class PairwiseScore:
    """One item's score from a paired-comparison model (interval scale, mean 0 over the items)."""

    item: str
    video: str
    score: float | None
    ci95: tuple[float, float] | None
    wins: int
    losses: int

    def to_dict(self) -> dict[str, Any]:
        return {"item": self.item, "video": self.video, "score": _r(self.score), "ci95": _pair(self.ci95),
                "wins": self.wins, "losses": self.losses}


@dataclass(frozen=True)
class PairCount:
    """How often each item of a pair was preferred (items in sorted order)."""

    first: str
    second: str
    first_wins: int
    second_wins: int

    def to_dict(self) -> dict[str, Any]:
        return {"first": self.first, "second": self.second, "first_wins": self.first_wins,
                "second_wins": self.second_wins}


@dataclass(frozen=True)
class PairwiseAnalysis:
    """Scores of a paired-comparison study. Thurstone scores are in units of the sd of a
    perceived difference (a difference of 1 = preferred 84% of the time); Bradley-Terry scores
    are log-strengths (a difference of 1 = preferred 73% of the time)."""

    items: tuple[PairwiseScore, ...]
    pairs: tuple[PairCount, ...]
    model: str
    raters: int
    comparisons: int
    notes: tuple[str, ...] = ()

    def item(self, item_id: str) -> PairwiseScore:
        for result in self.items:
            if result.item == item_id:
                return result
        raise KeyError(item_id)

    def summary(self) -> str:
        return (f"{len(self.items)} items, {self.comparisons} comparisons by {self.raters} raters over "
                f"{len(self.pairs)} pairs ({self.model})")

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "summary": self.summary(), "raters": self.raters,
                "comparisons": self.comparisons, "items": [r.to_dict() for r in self.items],
                "pairs": [p.to_dict() for p in self.pairs], "notes": list(self.notes)}


def analyse_comparisons(
    comparisons: Sequence[Comparison],
    *,
    items: Sequence[Item] | None = None,
    model: str = "thurstone",
) -> PairwiseAnalysis:
    """Scores per item from pairwise preferences, with sureal's Thurstone or Bradley-Terry MLE.

    Only `main` comparisons count. Every comparison enters sureal as its own observation (a
    rater who compares the same pair twice gives two), so sureal's win matrix is the plain
    count of preferences. Raises ValueError with one readable line on bad input.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    comparisons = list(comparisons)
    if not comparisons:
        raise ValueError("no comparisons to analyse")
    if model not in PAIRWISE_MODELS:
        raise ValueError(f"unknown pairwise model {model!r} (models: {', '.join(PAIRWISE_MODELS)})")
    for comparison in comparisons:
        if not isinstance(comparison, Comparison):
            raise ValueError(f"expected Comparison records, got {type(comparison).__name__}")
    known = {item.id: item for item in items} if items is not None else None
    if known is not None:
        for c in comparisons:
            for item_id in (c.first, c.second):
                if item_id not in known:
                    raise ValueError(f"comparison by {c.rater!r} names item {item_id!r}, which is not in the study")
    notes: list[str] = []
    used = [c for c in sorted(comparisons, key=lambda c: c.at) if c.kind == "main"]
    if len(used) < len(comparisons):
        notes.append(f"{len(comparisons) - len(used)} comparisons not of kind 'main' ignored")
    if not used:
        raise ValueError(f"no main comparisons to analyse ({len(comparisons)} comparisons, none of kind 'main')")

    seen = list(dict.fromkeys(i for c in used for i in (c.first, c.second)))
    item_ids = [item.id for item in items if item.id in set(seen)] if items is not None else seen  # type: ignore[union-attr]
    index = {item: i for i, item in enumerate(item_ids)}
    n = len(item_ids)
    wins = np.zeros((n, n), dtype=int)  # wins[i, j]: i preferred over j
    occurrence: Counter[tuple[str, int, int]] = Counter()
    os_by_item: list[dict[tuple[str, int], int]] = [{} for _ in range(n)]
    for c in used:
        i, j = index[c.first], index[c.second]
        winner, loser = (i, j) if c.preferred == c.first else (j, i)
        wins[winner, loser] += 1
        key = (c.rater, min(i, j), max(i, j))
        occurrence[key] += 1
        observer = f"{c.rater}#{occurrence[key]}"  # one sureal observer per repeat of a pair by a rater
        os_by_item[i][(observer, j)] = 1 if winner == i else 0

    pairs = tuple(
        PairCount(item_ids[a], item_ids[b], int(wins[a, b]), int(wins[b, a]))
        if item_ids[a] < item_ids[b] else PairCount(item_ids[b], item_ids[a], int(wins[b, a]), int(wins[a, b]))
        for a in range(n) for b in range(a + 1, n) if wins[a, b] + wins[b, a]
    )
    pairs = tuple(sorted(pairs, key=lambda p: (p.first, p.second)))
    total_wins, total_losses = wins.sum(axis=1), wins.sum(axis=0)

    scores: np.ndarray | None = None
    ci: np.ndarray | None = None
    groups, _ = connected_components(csr_matrix(wins + wins.T), directed=False)
    if n < 2:
        notes.append("one item only: nothing to compare it with")
    elif groups > 1:
        notes.append(f"the comparisons split the items into {groups} groups never compared with each other: "
                     "no scores (compare across the groups)")
    else:
        scores, ci = _fit_pairwise(os_by_item, item_ids, model, notes)
    unbeaten = [item_ids[i] for i in range(n) if total_losses[i] == 0 and total_wins[i] > 0]
    winless = [item_ids[i] for i in range(n) if total_wins[i] == 0 and total_losses[i] > 0]
    if scores is not None and (unbeaten or winless):
        notes.append("items preferred every time or never have no finite maximum-likelihood score; theirs are "
                     f"bounds only: {_ids(unbeaten + winless)}")

    results = []
    for item_id in item_ids:
        i = index[item_id]
        score = interval = None
        if scores is not None and np.isfinite(scores[i]):
            score = float(scores[i])
            if ci is not None and np.isfinite(ci[i]) and item_id not in unbeaten and item_id not in winless:
                interval = (score - float(ci[i]), score + float(ci[i]))
        video = known[item_id].video if known is not None else item_id
        results.append(PairwiseScore(item_id, video, score, interval, int(total_wins[i]), int(total_losses[i])))
    return PairwiseAnalysis(tuple(results), pairs, model, len({c.rater for c in used}), len(used), tuple(notes))


def _fit_pairwise(os_by_item: Sequence[Mapping[tuple[str, int], int]], item_ids: Sequence[str], model: str,
                  notes: list[str]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Scores (mean 0) and 95% half-widths from sureal's paired-comparison MLE models."""
    from sureal.dataset_reader import PairedCompDatasetReader
    from sureal.pc_subjective_model import (
        BradleyTerryMlePairedCompSubjectiveModel,
        ThurstoneMlePairedCompSubjectiveModel,
    )

    n = len(item_ids)
    dataset = SimpleNamespace(
        dataset_name="vqscope_pairwise",
        ref_videos=[{"content_id": i, "content_name": f"c{i}", "path": f"ref/{i}"} for i in range(n)],
        dis_videos=[{"content_id": i, "asset_id": i, "path": f"dis/{i}", "os": dict(os_by_item[i])} for i in range(n)],
    )
    cls = ThurstoneMlePairedCompSubjectiveModel if model == "thurstone" else BradleyTerryMlePairedCompSubjectiveModel
    try:
        with _quiet():
            result = cls(PairedCompDatasetReader(dataset)).run_modeling(display=False)
    except (AssertionError, ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
        notes.append(f"the {model} model did not converge ({str(exc).strip() or type(exc).__name__}): no scores")
        return None, None
    scores = np.asarray(result["quality_scores"], dtype=float)
    finite = np.isfinite(scores)
    if not finite.any():
        notes.append(f"the {model} model gave no finite score")
        return None, None
    scores = scores - scores[finite].mean()
    half = np.asarray(result["quality_scores_ci95"][0], dtype=float) if result.get("quality_scores_ci95") else None
    return scores, half
