"""Grades set by people: fit a model's grade thresholds to what raters said.

A model's grades ("fair", "good") are cut from its score at thresholds that, by default, are
equal 20-point bands: nobody asked a person where "good" begins. BILIVQA sets its thresholds by
subjective experiments instead; this module does the same with a study's ratings. Each main
ACR rating is one observation, a rater's category for a video, and the question is at which
model value the category people give changes.

Method: ordinal regression, the cumulative-logit (proportional-odds) model, fitted with
statsmodels' `OrderedModel`:

    P(category <= k | x) = logistic(cut_k - slope * x)

where x is the model's value on the scale's basis (raw 0-100 score, or scaled percentile).
The threshold between category k and k+1 is x = cut_k / slope: the value at which the latent
"quality seen" crosses the cut, where raters are as likely to say k or below as above k, so the
predicted median category steps up there. (The most likely category changes at the same points
when the bands are wide compared with raters' disagreement, which is the case a grade scale is
useful for; the median crossing is the one that does not depend on the noise's shape, so it is
the one we report.) Why this model and not, say, midpoints between per-category mean scores: it
uses every rating, not means, so a video that splits raters between "fair" and "good" counts as
evidence for where that boundary lies, and it copes with categories of very different sizes.

The fit is on a standardised x (centred, unit variance) for numerical stability; thresholds
and their standard errors (delta method) are mapped back to the basis. Ratings of one video are
treated as independent observations; rater bias widens the spread but, being roughly symmetric,
does not move the median crossing. Boundaries a study cannot estimate (a category nobody used)
keep the old threshold, and everything done to the raw estimates is said in `notes`.
"""

from __future__ import annotations

import math
import textwrap
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from ..calibration import GRADE_BASES, GradeScale
from ..errors import StudyError
from .ratings import ACR_LABELS, ACR_MIN, Item, Rating

if TYPE_CHECKING:  # model.py pulls in torch and the backbones; fitting thresholds needs neither
    from ..model import Model

#: Both bases (raw score and scaled percentile) run from 0 to 100.
BASIS_RANGE: tuple[float, float] = (0.0, 100.0)
#: Fewer rated videos than this and the thresholds would be noise.
MIN_ITEMS = 10
#: With at least this many raters the standard errors are cluster-robust by rater.
MIN_RATERS_ROBUST = 5
#: Smallest gap kept between two thresholds when clipping or repairing the order squeezes them.
MIN_GAP = 0.1
#: Text recorded with a regraded model, so its card says how the thresholds were found.
METHOD = "ordinal regression (cumulative logit, statsmodels OrderedModel); threshold = cut / slope"


class ThresholdFitError(StudyError, ValueError):
    """A study cannot give grade thresholds (too few videos, scores that do not rise with the
    raters' categories, a scale that is not five ACR grades). A StudyError for the CLI and the
    service (exit 28, HTTP 422), and a ValueError, so library callers may catch it as bad input."""

    kind = "threshold_fit"


@dataclass(frozen=True)
class GradeAgreement:
    """How one grade of a scale agrees with raters: the videos the scale puts in the grade,
    and how many of the raters' categories for those videos are that grade."""

    label: str
    videos: int
    ratings: int
    agreeing: int

    @property
    def share(self) -> float | None:
        """Share of raters' categories (for this grade's videos) equal to the grade."""
        return self.agreeing / self.ratings if self.ratings else None

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "videos": self.videos, "ratings": self.ratings,
                "agreeing": self.agreeing, "share": self.share}


@dataclass(frozen=True)
class Agreement:
    """How a grade scale agrees with raters over a study: per grade, and over all ratings
    (exact: the rater's category is the video's grade; within one: at most one category off)."""

    per_grade: tuple[GradeAgreement, ...]
    exact: float
    within_one: float

    @classmethod
    def measure(cls, scale: GradeScale, scores: Mapping[str, float], ratings: Sequence[Rating]) -> "Agreement":
        """Grade every rated video with `scale` and compare with each rating (category k of the
        ACR scale is the scale's k-th grade). Ratings of items without a value are not counted."""
        ratings = [r for r in ratings if r.item in scores]
        grade_of = {item: int(np.searchsorted(scale.thresholds, value, side="right"))
                    for item, value in scores.items()}
        n = len(scale.labels)
        videos = np.zeros(n, dtype=int)
        total = np.zeros(n, dtype=int)
        agreeing = np.zeros(n, dtype=int)
        near = 0
        for item in {r.item for r in ratings}:
            videos[grade_of[item]] += 1
        for r in ratings:
            g = grade_of[r.item]
            category = r.score - ACR_MIN
            total[g] += 1
            agreeing[g] += int(category == g)
            near += int(abs(category - g) <= 1)
        per_grade = tuple(GradeAgreement(label, int(v), int(t), int(a))
                          for label, v, t, a in zip(scale.labels, videos, total, agreeing))
        count = max(len(ratings), 1)
        return cls(per_grade, float(agreeing.sum()) / count, near / count)

    def to_dict(self) -> dict[str, Any]:
        return {"exact": self.exact, "within_one": self.within_one,
                "per_grade": [g.to_dict() for g in self.per_grade]}


@dataclass(frozen=True)
class ThresholdFit:
    """Old and new grade thresholds of a model's scale, fitted to a study's ratings."""

    labels: tuple[str, ...]
    basis: str
    old_thresholds: tuple[float, ...]
    new_thresholds: tuple[float, ...]
    estimated: tuple[bool, ...]  # per threshold: fitted to the ratings (False: old one kept)
    new_se: tuple[float | None, ...]  # standard error of each fitted threshold (delta method)
    n_items: int  # rated videos with a model value
    n_ratings: int  # ratings used (one rater's category for one video each)
    slope: float  # change of the log-odds of a higher category per basis point
    old: Agreement
    new: Agreement
    notes: tuple[str, ...] = ()

    @property
    def scale(self) -> GradeScale:
        return GradeScale(thresholds=self.new_thresholds, labels=self.labels, basis=self.basis)

    @property
    def old_scale(self) -> GradeScale:
        return GradeScale(thresholds=self.old_thresholds, labels=self.labels, basis=self.basis)

    @property
    def boundaries(self) -> tuple[str, ...]:
        """Names of the thresholds, lowest first: "bad|poor", "poor|fair", ..."""
        return tuple(f"{a}|{b}" for a, b in zip(self.labels, self.labels[1:]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": list(self.labels),
            "basis": self.basis,
            "old_thresholds": list(self.old_thresholds),
            "new_thresholds": list(self.new_thresholds),
            "estimated": list(self.estimated),
            "new_se": list(self.new_se),
            "n_items": self.n_items,
            "n_ratings": self.n_ratings,
            "slope": self.slope,
            "method": METHOD,
            "agreement": {"old": self.old.to_dict(), "new": self.new.to_dict()},
            "notes": list(self.notes),
        }

    def table(self) -> str:
        """Old and new thresholds side by side, with how often each grade agrees with raters."""
        lines = [
            f"grade thresholds on the {self.basis} basis, fitted to {self.n_items} videos "
            f"and {self.n_ratings} ratings",
            f"{'grade':<12}{'old from':>9}{'new from':>15}{'videos old/new':>17}{'agreement old/new':>20}",
        ]
        for i, label in enumerate(self.labels):
            if i == 0:
                old_from, new_from = "-", "-"
            else:
                old_from = f"{self.old_thresholds[i - 1]:.1f}"
                se = self.new_se[i - 1]
                if se is not None:
                    mark = f" ±{se:.1f}"
                elif self.estimated[i - 1]:
                    mark = ""
                else:  # not estimated: the old value, or moved to stay between fitted neighbours
                    mark = " (kept)" if self.new_thresholds[i - 1] == self.old_thresholds[i - 1] else " (moved)"
                new_from = f"{self.new_thresholds[i - 1]:.1f}{mark}"
            o, n = self.old.per_grade[i], self.new.per_grade[i]
            lines.append(f"{label[:12]:<12}{old_from:>9}{new_from:>15}{f'{o.videos} / {n.videos}':>17}"
                         f"{f'{_pct(o.share)} / {_pct(n.share)}':>20}")
        lines.append(f"{'all ratings, exact':<53}{f'{_pct(self.old.exact)} / {_pct(self.new.exact)}':>20}")
        lines.append(f"{'all ratings, within one grade':<53}"
                     f"{f'{_pct(self.old.within_one)} / {_pct(self.new.within_one)}':>20}")
        lines.extend(textwrap.fill(note, 79, initial_indent="note: ", subsequent_indent="      ")
                     for note in self.notes)
        return "\n".join(lines)


def fit_grade_thresholds(
    scores: Mapping[str, float],
    ratings: Sequence[Rating],
    *,
    old: GradeScale,
    basis: str | None = None,
) -> ThresholdFit:
    """Fit the four thresholds of a five-grade scale to raters' ACR categories.

    `scores` maps item id to the model's value on the scale's basis (`basis`, default the old
    scale's; the two must agree, since the old thresholds are compared on the same values);
    `ratings` are the accepted raters' main ratings (other kinds are left out, as are ratings
    of items without a score, both noted). Raises ThresholdFitError (a ValueError) when the
    study cannot say where the grades lie.
    """
    basis = old.basis if basis is None else basis
    if basis not in GRADE_BASES:
        raise ThresholdFitError(f"grade basis must be one of {', '.join(GRADE_BASES)}, not {basis!r}")
    if basis != old.basis:
        raise ThresholdFitError(
            f"the scores are on the {basis!r} basis but the old scale reads {old.basis!r}: "
            "give the old thresholds on the same basis")
    if len(old.labels) != len(ACR_LABELS):
        raise ThresholdFitError(
            f"the model's scale has {len(old.labels)} grades; raters answer on the {len(ACR_LABELS)} "
            "ACR categories, so only a five-grade scale can be fitted")
    lo, hi = BASIS_RANGE
    for item, value in scores.items():
        if not math.isfinite(float(value)) or not lo <= float(value) <= hi:
            raise ThresholdFitError(
                f"model value {value!r} of item {item!r} is not a number from {lo:g} to {hi:g} ({basis} basis)")

    notes: list[str] = []
    main = [r for r in ratings if r.kind == "main"]
    if len(main) < len(ratings):
        notes.append(f"{len(ratings) - len(main)} ratings that are not main ratings (repeats, gold, "
                     "training) were left out")
    used = [r for r in main if r.item in scores]
    unscored = {r.item for r in main} - set(scores)
    if unscored:
        notes.append(f"{len(main) - len(used)} ratings of {len(unscored)} videos without a model "
                     "value were left out")
    rated = {item: float(scores[item]) for item in {r.item for r in used}}
    if len(rated) < MIN_ITEMS:
        raise ThresholdFitError(
            f"only {len(rated)} rated videos have a model value; fitting grade thresholds "
            f"needs at least {MIN_ITEMS}")

    x = np.array([rated[r.item] for r in used], dtype=np.float64)
    y = np.array([r.score for r in used], dtype=np.int64)
    observed = sorted(set(int(c) for c in y))
    if len(observed) < 2:
        raise ThresholdFitError(
            f"every rating is {ACR_LABELS[observed[0] - ACR_MIN]!r}: raters used one category, so "
            "there is no boundary to fit")
    if float(np.std(x)) == 0.0:
        raise ThresholdFitError("every rated video has the same model value; no threshold can be fitted")

    rater_ids = sorted({r.rater for r in used})
    if len(rater_ids) >= MIN_RATERS_ROBUST:
        code = {rater: i for i, rater in enumerate(rater_ids)}
        groups: np.ndarray | None = np.array([code[r.rater] for r in used], dtype=np.int64)
    else:
        groups = None
        notes.append(f"only {len(rater_ids)} raters: the standard errors treat every rating as independent "
                     "and leave out how much the panel's leniency could move the thresholds")
    slope, p_slope, cuts, cut_se, converged = _ordinal_fit(x, y, groups)
    if not slope > 0:
        raise ThresholdFitError(
            f"the model's values fall as raters' categories rise (slope {slope:.3g} per point): "
            "thresholds on this model would be meaningless")
    if not converged:
        notes.append("the ordinal regression did not fully converge; treat the thresholds as rough")
    if math.isfinite(p_slope) and p_slope >= 0.05:
        notes.append(f"the model's values explain raters' categories only weakly (slope p = {p_slope:.2g}): "
                     "the thresholds are uncertain")

    # Boundary k|k+1 (k = 1..4) is estimated when both categories were used; the fit's cuts sit
    # between consecutive *used* categories, so a gap (nobody said "fair") merges two boundaries.
    new = list(old.thresholds)
    estimated = [False] * len(new)
    se: list[float | None] = [None] * len(new)
    boundary_names = [f"{a}|{b}" for a, b in zip(old.labels, old.labels[1:])]
    for j, (below, above) in enumerate(zip(observed, observed[1:])):
        if above == below + 1:
            k = below - ACR_MIN
            new[k], estimated[k], se[k] = cuts[j], True, cut_se[j]
        else:
            skipped = [boundary_names[k] for k in range(below - ACR_MIN, above - ACR_MIN)]
            missing = ", ".join(repr(ACR_LABELS[c - ACR_MIN]) for c in range(below + 1, above))
            notes.append(f"nobody rated {missing}; raters went from {ACR_LABELS[below - ACR_MIN]!r} to "
                         f"{ACR_LABELS[above - ACR_MIN]!r} at {cuts[j]:.1f}; kept the old "
                         f"{' and '.join(skipped)} threshold{'s' if len(skipped) > 1 else ''}")
    if observed[0] > ACR_MIN:
        skipped = boundary_names[: observed[0] - ACR_MIN]
        notes.append(f"nobody rated below {ACR_LABELS[observed[0] - ACR_MIN]!r}; kept the old "
                     f"{', '.join(skipped)} threshold{'s' if len(skipped) > 1 else ''}")
    if observed[-1] < ACR_MIN + len(ACR_LABELS) - 1:
        skipped = boundary_names[observed[-1] - ACR_MIN:]
        notes.append(f"nobody rated above {ACR_LABELS[observed[-1] - ACR_MIN]!r}; kept the old "
                     f"{', '.join(skipped)} threshold{'s' if len(skipped) > 1 else ''}")

    new, repair_notes = _valid_thresholds(new, estimated, boundary_names)
    notes.extend(repair_notes)

    fit_scale = GradeScale(thresholds=tuple(new), labels=old.labels, basis=basis)
    return ThresholdFit(
        labels=old.labels,
        basis=basis,
        old_thresholds=old.thresholds,
        new_thresholds=fit_scale.thresholds,
        estimated=tuple(estimated),
        new_se=tuple(se),
        n_items=len(rated),
        n_ratings=len(used),
        slope=slope,
        old=Agreement.measure(old, rated, used),
        new=Agreement.measure(fit_scale, rated, used),
        notes=tuple(notes),
    )


def regrade(model: "Model", fit: ThresholdFit, *, version: int | None, study: str) -> "Model":
    """The model under the fitted grade scale: a new model version (Model.with_grades).

    Model files are immutable once published, so new thresholds make a new version: `version`
    None means the model's version + 1. The percentile table, if any, is kept as it is. The
    new model's `info.training["grades"]` records where its thresholds came from.
    """
    if fit.basis == "scaled" and model.calibration is None:
        raise ThresholdFitError(f"{model.id} has no percentile table, so grades on the scaled basis cannot be read")
    new = model.with_grades(fit.scale, version=model.info.version + 1 if version is None else int(version))
    new.info.training = {**new.info.training, "grades": {
        "study": study,
        "from": model.id,
        "method": METHOD,
        "basis": fit.basis,
        "videos": fit.n_items,
        "ratings": fit.n_ratings,
        "labels": list(fit.labels),
        "old_thresholds": list(fit.old_thresholds),
        "new_thresholds": list(fit.new_thresholds),
        "estimated": list(fit.estimated),
        "slope": fit.slope,
        "agreement": {"old": fit.old.to_dict(), "new": fit.new.to_dict()},
        "notes": list(fit.notes),
    }}
    return new


def item_scores(items: Iterable[Item], basis: str) -> dict[str, float]:
    """Item id -> the model value a study recorded for it on `basis` (the raw score, or the
    scaled percentile); items without one (imports, anchors) are left out."""
    if basis not in GRADE_BASES:
        raise ThresholdFitError(f"grade basis must be one of {', '.join(GRADE_BASES)}, not {basis!r}")
    out: dict[str, float] = {}
    for item in items:
        value = item.model_score if basis == "score" else item.scaled_score
        if value is not None and item.kind == "video":
            out[item.id] = float(value)
    return out


def _ordinal_fit(
    x: np.ndarray, y: np.ndarray, raters: np.ndarray | None
) -> tuple[float, float, list[float], list[float | None], bool]:
    """Cumulative-logit fit of categories `y` on values `x`.

    Returns the slope per basis point, its p-value, the thresholds on the basis between
    consecutive used categories (cut / slope), their standard errors, and whether the
    optimiser converged. With `raters` (a group code per rating) the covariance is
    cluster-robust by rater: a lenient or strict rater shifts all of their answers together,
    and the panel's average leniency is part of what the thresholds are uncertain about.
    """
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    centre, spread = float(np.mean(x)), float(np.std(x))
    z = ((x - centre) / spread)[:, None]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        ordered = OrderedModel(y, z, distr="logit")
        robust = {} if raters is None else {"cov_type": "cluster", "cov_kwds": {"groups": raters}}
        result = ordered.fit(method="bfgs", maxiter=2000, disp=False, **robust)
        params = np.asarray(result.params, dtype=np.float64)
        cov = np.asarray(result.cov_params(), dtype=np.float64)
        p_slope = float(np.asarray(result.pvalues)[0])
    beta = float(params[0])
    cuts = np.asarray(ordered.transform_threshold_params(params), dtype=np.float64)[1:-1]
    if not beta > 0:
        return beta / spread, p_slope, [], [], bool(result.mle_retvals.get("converged", False))
    thresholds = [centre + spread * c / beta for c in cuts]
    # Delta method: cut_k = a0 + sum_{j<=k} exp(a_j) in statsmodels' parameters (beta, a0, a1..).
    errors: list[float | None] = []
    for k, c in enumerate(cuts):
        grad = np.zeros(params.size)
        grad[0] = -spread * c / beta**2
        grad[1] = spread / beta
        for j in range(1, k + 1):
            grad[1 + j] = spread / beta * math.exp(params[1 + j])
        var = float(grad @ cov @ grad)
        errors.append(math.sqrt(var) if math.isfinite(var) and var >= 0 else None)
    return beta / spread, p_slope, thresholds, errors, bool(result.mle_retvals.get("converged", False))


def _valid_thresholds(values: list[float], estimated: list[bool], names: list[str]) -> tuple[list[float], list[str]]:
    """Thresholds inside the basis range and strictly increasing, with a note for each change.

    Fitted thresholds come out increasing (the model's cuts are); they can fall outside the
    range (a boundary beyond the videos the study had), and a kept old threshold can land on the
    wrong side of a fitted neighbour. Fitted values win over kept ones: a kept threshold that
    conflicts is spread evenly into the gap between its fitted neighbours.
    """
    lo, hi = BASIS_RANGE
    notes: list[str] = []
    out = list(values)
    for i, value in enumerate(out):
        if not lo <= value <= hi:
            clipped = min(max(value, lo), hi)
            side = "below" if value < lo else "above"
            notes.append(f"the {names[i]} threshold came out at {value:.1f}, {side} the {lo:g}-{hi:g} range; "
                         f"clipped to {clipped:g}")
            out[i] = clipped
    i = 0
    while i < len(out):
        if estimated[i]:
            i += 1
            continue
        start = i
        while i < len(out) and not estimated[i]:
            i += 1
        left = out[start - 1] if start > 0 else None
        right = out[i] if i < len(out) else None
        run = out[start:i]
        if any(left is not None and v <= left or right is not None and v >= right for v in run):
            a = lo if left is None else left
            b = hi if right is None else right
            spread = [a + (b - a) * (j + 1) / (len(run) + 1) for j in range(len(run))]
            for j, v in enumerate(spread):
                notes.append(f"the kept old {names[start + j]} threshold {run[j]:.1f} fell on the wrong side "
                             f"of a fitted one; moved to {v:.1f}")
                out[start + j] = v
    before = list(out)
    for i in range(len(out) - 1, -1, -1):  # squeeze apart ties at the top of the range ...
        upper = hi if i == len(out) - 1 else out[i + 1] - MIN_GAP
        out[i] = min(out[i], upper)
    for i in range(len(out)):  # ... and at the bottom
        lower = lo if i == 0 else out[i - 1] + MIN_GAP
        out[i] = max(out[i], lower)
    moved = [names[i] for i in range(len(out)) if out[i] != before[i]]
    if moved:
        notes.append(f"moved the {', '.join(moved)} threshold{'s' if len(moved) > 1 else ''} by up to "
                     f"{max(abs(a - b) for a, b in zip(out, before)):.2g} to keep the thresholds strictly increasing")
    return out, notes


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.0f}%"
