"""Does choosing what to rate pay? A simulated pool, a head fitted on its ratings, learning curves.

Issue 17 hoped that 100-200 well-chosen ratings would teach a head as much as 1,000 random
ones. No rated pool of thousands of videos can be fetched here, and the few real rated videos
in ../shared/rated are for evaluation only, so this is measured in a **designed simulation**,
not on real ratings: a pool whose truth is known, scored by a "current model" that makes the
kind of errors a UGC model makes, rated by simulated raters. It tells how the mechanism of
`select.choose_items` behaves under these assumptions; what a platform gains on its own
uploads depends on how far its pool is from them.

The pool (`simulate_pool`, sizes in `PoolConfig`; `UNEQUAL` is the default variant):

- **3,000 videos, 32 features, 10 kinds of content** with shares proportional to 1/k^1.2
  (41%, 18%, 11%, 7.7%, 5.9%, 4.7%, 3.9%, 3.3%, 2.9%, 2.6%): uploads are long-tailed, a few
  kinds (talking heads, games, phone footage) make up most of them and many kinds are rare.
  A kind is a region of feature space: its centre is drawn with sd 1.5 per feature against sd 1
  within a kind, so kinds overlap little, as a screen recording and a concert clip do.
- **True MOS** = 1 + 4 * sigmoid(0.52 + 0.7 * g + u) on 1-5. g is a function of the features,
  standardised over the pool: a linear part plus a pairwise interaction (weight 0.5) plus a
  saturating tanh (weight 0.6), so no linear head is exactly right; u ~ N(0, 0.4) is the part
  of quality no feature sees. Over the pool the truth has mean about 3.45 and sd about 0.67,
  meant to be close to the MOS of authentic-UGC sets such as KoNViD-1k (a mean a little
  above the middle of the scale, few videos near 1 or 5).
- **The current model** scores 0-100. Per kind it has an offset (sd 12 points, half a category
  of the 1-5 scale) and a slope between 0.5 and 1.0 around the pool's mean (a compressed range,
  as in a model trained on added synthetic damage), plus per-video noise with sd 6 points. Its
  own SROCC with the truth is about 0.68 (mean of 20 pools; 0.35-0.85 from pool to pool, as
  the offsets fall), the "barely agrees with people" of the issue.
- **What selection sees** is a 19-value summary laid out like `embedding_from_result`: the
  score / 100 and 18 read-outs sigmoid(features . P) of a random projection P, standing for the
  six dimension scores and twelve distortion probabilities that the job store keeps. **What the
  head sees** is the 32 features plus the score, as a head fitted on frozen features does.
  Selection thus works on a lossy summary, as it must in the service.
- **A rated video's MOS** = truth + N(0, 0.6 / sqrt(15)): 15 raters whose single ratings
  scatter by 0.6 of a category around the truth after screening (the order of rater noise in
  P.910-style studies; `simulate.py` plans with 0.3-0.8), i.e. an MOS with sd 0.15.
- `BALANCED`: ten kinds of equal size, offsets with sd 3 points and slopes 0.9-1.0 (model
  SROCC about 0.92), where choosing should matter least.

The head (`judge_head`): scikit-learn's RidgeCV on the standardised features plus the model's
score, its strength chosen by leave-one-out cross-validation on the rated videos only, judged
on every unrated video against the truth (`METRICS`): SROCC, RMSE (1-5), RMSE on the kind of
content it gets most wrong, and RMSE on the pool's 10% best and 10% worst. Strategies
(`STRATEGIES`, `pick`): "chosen" (choose_items as shipped: quantile score bands + k-centre),
"random", "chosen-width" (equal-width bands + k-centre), "k-centre-only" (one band) and
"width-bands-only" (equal-width bands, random inside). `selection_experiment` runs each on the
same pools with the same simulated MOS per video (so curves differ only by which videos are
rated); `Experiment.matched_at` reads how many random ratings match n chosen ones.

What it found (`python bench/study_selection.py --seeds 20`: 20 pools per variant, means; the
+- is the standard error of the paired difference over the 20 pools):

    unequal pool                      50 ratings     150 ratings    1000 ratings
    SROCC, chosen vs random          0.834 / 0.819  0.878 / 0.879  0.896 / 0.900
      difference                     +0.015+-0.010  -0.000+-0.003  -0.004+-0.001
    RMSE on the worst kind           0.487 / 0.627  0.404 / 0.441  0.355 / 0.390
    RMSE on the 10% best and worst   0.477 / 0.502  0.398 / 0.396  0.349 / 0.339

- Choosing does not buy pool-wide ranking. 150 chosen ratings rank the unrated videos as well
  as about 150 random ones (unequal pool; about 160 in the balanced one); the small gain at 50
  ratings is within the pools' scatter and turns into a small, steady loss by 1,000, where a
  spread-out set is less like the pool than a random one. The hope that 100-200 chosen ratings
  rank a pool like 1,000 random ones (0.900) does not come true here.
- What choosing buys is coverage. On the kind of content the head gets most wrong, chosen
  ratings are better at every size (by 0.14 at 50, 0.04 at 150 to 1,000; better in 70-100% of
  the pools) and 150 of them do as well as about 500 random ones. In the balanced pool, where
  no kind is rare and the model is nearly right on each, this gain is gone (about 160).
- On the extremes (10% best and worst) choosing gains only at 50 ratings (0.025); from 100 on it
  is level with random, and slightly worse at 1,000.
- Equal-width score bands cost ranking (unequal pool): random picks inside equal-width bands
  lose 0.01-0.04 SROCC against plain random, and k-centre inside them ("chosen-width")
  0.01-0.02 against "chosen", while barely changing the error on the extremes (-0.01 to
  +0.02); k-centre alone ("k-centre-only") does about as well as "chosen". Hence quantile
  bands by default.

How firm this is: the sizes above that the design fixes (shares, the model's errors, rater
noise) were set first; the rest (how far apart kinds lie, the unseen part, the weights of the
nonlinear terms, the summary's squash) were then set so that the truth, the model's SROCC and
a head on 1,000 random ratings (SROCC about 0.90) land where the design says. Over the other
settings tried while doing so (kinds' spread 0.5-2.0, unseen sd 0.3-0.5, interaction 0.3-0.6,
squash 1-2; 10 pools each), the random ratings matching 150 chosen ones ranged 140-240 by
SROCC, 110 to over 1,000 on the worst kind (more where kinds lie apart) and 110-250 on the
extremes, and chosen was behind random at 1,000 every time. The direction of the findings held;
the sizes of the coverage gains depend on the pool.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from scipy import stats
from scipy.special import expit

from ..errors import ConfigError
from .select import (
    EMBEDDING_FIELDS,
    Candidate,
    SelectionError,
    allocate,
    choose_items,
    random_items,
    score_bands,
)


# -- the simulated pool ---------------------------------------------------------------------
def _whole(value: Any, what: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise SelectionError(f"{what} must be a whole number of at least {low}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class PoolConfig:
    """How a simulated pool is made (see the module docstring for why these sizes).

    The truth is 1 + 4 * sigmoid(mos_centre + mos_spread * g + u), g the standardised sum of a
    linear part of the features, `interaction` times a pairwise product and `saturation` times
    a tanh, u ~ N(0, unseen_sd). The model's score is pool mean + slope * (truth - pool mean)
    + offset, per kind, plus N(0, model_noise_sd), in points (truth - 1) * 25.
    """

    videos: int = 3000
    features: int = 32  # what the head sees (besides the model's score)
    clusters: int = 10  # kinds of content
    cluster_exponent: float = 1.2  # share of kind k ~ 1/k^exponent (0: kinds of equal size)
    cluster_spread: float = 1.5  # sd of the kinds' centres, per feature (within a kind: 1)
    mos_centre: float = 0.52  # truth = 1 + 4 * sigmoid(mos_centre + mos_spread * g + unseen)
    mos_spread: float = 0.7  # g: the features' nonlinear part, standardised over the pool
    unseen_sd: float = 0.4  # the part of the truth no feature sees (same units as mos_spread)
    interaction: float = 0.5  # weight of g's pairwise interaction (its linear part weighs 1)
    saturation: float = 0.6  # weight of g's saturating part
    squash: float = 1.0  # slope of the sigmoid that squashes the summary's read-outs
    systematic_sd: float = 12.0  # the current model's offset per kind, points on 0-100
    gain_range: tuple[float, float] = (0.5, 1.0)  # the model's slope per kind, drawn uniformly
    model_noise_sd: float = 6.0  # the model's own error per video, points
    raters: int = 15  # ratings behind each simulated MOS
    rater_sd: float = 0.6  # one rating's sd around the truth, on 1-5

    def __post_init__(self) -> None:
        for name, low in {"videos": 20, "features": 1, "clusters": 1, "raters": 1}.items():
            _whole(getattr(self, name), f"PoolConfig.{name}", low)
        for name in ("cluster_exponent", "cluster_spread", "mos_centre", "mos_spread", "unseen_sd", "interaction",
                     "saturation", "squash", "systematic_sd", "model_noise_sd", "rater_sd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or (value < 0 and name != "mos_centre"):
                raise SelectionError(f"PoolConfig.{name} must be a finite number (at least 0), got {value!r}")
        gains = tuple(self.gain_range)
        if len(gains) != 2 or not all(isinstance(g, (int, float)) and math.isfinite(g) for g in gains) \
                or not 0 < gains[0] <= gains[1]:
            raise SelectionError(f"PoolConfig.gain_range must be (low, high) with 0 < low <= high, got {self.gain_range!r}")
        object.__setattr__(self, "gain_range", (float(gains[0]), float(gains[1])))

    @property
    def rating_sd(self) -> float:
        """The sd of a simulated MOS around the truth: one rating's sd over sqrt(raters)."""
        return self.rater_sd / math.sqrt(self.raters)


#: A few kinds of content dominate, and the model is wrong by kind (what UGC pools look like).
UNEQUAL = PoolConfig()
#: Kinds of equal size and a model that is nearly right on each: where choosing should matter least.
BALANCED = replace(UNEQUAL, cluster_exponent=0.0, systematic_sd=3.0, gain_range=(0.9, 1.0))
VARIANTS: dict[str, PoolConfig] = {"unequal": UNEQUAL, "balanced": BALANCED}


@dataclass(frozen=True)
class SimulatedPool:
    """A simulated pool of scored videos and the truth behind them (arrays in video order)."""

    config: PoolConfig
    seed: int
    ids: list[str]
    kind: np.ndarray  # kind of content, 0 = the most common
    features: np.ndarray  # (videos, features): what the head sees
    truth: np.ndarray  # true MOS on 1-5
    model_score: np.ndarray  # the current model's score, 0-100
    summary: np.ndarray  # (videos, 19): what selection sees, laid out like embedding_from_result

    def candidates(self) -> list[Candidate]:
        """The pool as `choose_items` sees it: the model's score and the 19-value summary."""
        return [Candidate(i, float(s), v) for i, s, v in zip(self.ids, self.model_score, self.summary)]

    @property
    def model_srocc(self) -> float:
        """The current model's own rank correlation with the truth over the whole pool."""
        return float(stats.spearmanr(self.model_score, self.truth).statistic)

    def __len__(self) -> int:
        return len(self.ids)


def _standardised(values: np.ndarray) -> np.ndarray:
    sd = float(values.std())
    return (values - values.mean()) / (sd if sd > 0 else 1.0)


def simulate_pool(config: PoolConfig | str = UNEQUAL, seed: int = 0) -> SimulatedPool:
    """A pool of scored videos with a known truth (the design, and why, is in the module docstring).

    Deterministic for a seed. `config` is a PoolConfig or the name of one of VARIANTS.
    """
    config = _config(config)
    seed = _whole(seed, "seed", 0)
    rng = np.random.default_rng(seed)
    n, f, k = config.videos, config.features, config.clusters

    # Kinds of content: shares ~ 1/k^exponent, centres apart by cluster_spread per feature.
    shares = 1.0 / np.arange(1, k + 1, dtype=np.float64) ** config.cluster_exponent
    kind = rng.choice(k, size=n, p=shares / shares.sum())
    centres = rng.normal(0.0, config.cluster_spread, (k, f))
    features = centres[kind] + rng.normal(size=(n, f))

    # The truth: a linear part, a pairwise interaction and a saturating part of the features
    # (so no linear head is exactly right), standardised over the pool, plus a part no feature
    # sees, through a sigmoid onto 1-5.
    scale = math.sqrt(1.0 + config.cluster_spread ** 2)
    unit = features / scale
    w, u, v, t = (rng.normal(size=f) / math.sqrt(f) for _ in range(4))
    g = (_standardised(unit @ w) + config.interaction * _standardised((unit @ u) * (unit @ v))
         + config.saturation * np.tanh(2.0 * (unit @ t)))
    z = config.mos_centre + config.mos_spread * _standardised(g) + rng.normal(0.0, config.unseen_sd, n)
    truth = 1.0 + 4.0 * expit(z)

    # The current model: right on average, wrong per kind (an offset and a slope), plus noise.
    points = (truth - 1.0) * 25.0
    centre = float(points.mean())
    offset = rng.normal(0.0, config.systematic_sd, k)
    gain = rng.uniform(config.gain_range[0], config.gain_range[1], k)
    raw = centre + gain[kind] * (points - centre) + offset[kind] + rng.normal(0.0, config.model_noise_sd, n)
    model_score = np.clip(raw, 0.0, 100.0)

    # What selection sees: the score and 18 squashed read-outs of the features, like a
    # result's dimension scores and distortion probabilities (embedding_from_result).
    readouts = len(EMBEDDING_FIELDS) - 1
    projection = rng.normal(size=(f, readouts)) / math.sqrt(f)
    summary = np.column_stack([model_score / 100.0, expit(config.squash * unit @ projection)])

    width = max(4, len(str(n - 1)))
    ids = [f"v{i:0{width}d}" for i in range(n)]
    return SimulatedPool(config, int(seed), ids, kind, features, truth, model_score, summary)


def _config(config: PoolConfig | str) -> PoolConfig:
    if isinstance(config, PoolConfig):
        return config
    if isinstance(config, str) and config in VARIANTS:
        return VARIANTS[config]
    raise SelectionError(f"unknown pool variant {config!r} (variants: {', '.join(VARIANTS)})")


# -- judging a head fitted on the rated videos -----------------------------------------------
#: What a head is judged by, on the pool's unrated videos against the truth.
METRICS: tuple[str, ...] = ("srocc", "rmse", "worst_kind_rmse", "extremes_rmse")
#: Metrics where a larger value is better (the others are errors).
HIGHER_IS_BETTER: frozenset[str] = frozenset({"srocc"})
#: Share of the pool at each end of the truth that `extremes_rmse` is measured on.
EXTREME_SHARE = 0.10
#: Ridge strengths the head's internal cross-validation chooses from.
RIDGE_ALPHAS = np.logspace(-3, 4, 29)


def _rated_indices(pool: SimulatedPool, rated: Sequence[str | int]) -> np.ndarray:
    where = {vid: i for i, vid in enumerate(pool.ids)}
    out = []
    for r in rated:
        if isinstance(r, (int, np.integer)) and not isinstance(r, bool):
            if not 0 <= int(r) < len(pool):
                raise SelectionError(f"rated index {r} is outside the pool of {len(pool)} videos")
            out.append(int(r))
        elif str(r) in where:
            out.append(where[str(r)])
        else:
            raise SelectionError(f"rated video {r!r} is not in the pool")
    idx = np.unique(np.asarray(out, dtype=int))
    if idx.size < 3:
        raise SelectionError(f"a head needs at least 3 rated videos, got {idx.size}")
    if idx.size >= len(pool):
        raise SelectionError("every video is rated: nothing left to judge the head on")
    return idx


def judge_head(pool: SimulatedPool, rated: Sequence[str | int], rng: np.random.Generator) -> dict[str, float]:
    """Fit a ridge head on the rated videos' simulated MOS, judge it on the unrated ones.

    A rated video's MOS is its truth plus N(0, rater_sd / sqrt(raters)), drawn from `rng` for
    the whole pool at once, so the same rng seed gives a video the same MOS whichever set it
    is rated in (strategies differ only in which videos they rate). The head: scikit-learn's
    RidgeCV on the standardised features plus the model's score, its strength chosen by
    leave-one-out cross-validation on the rated videos only. Its predictions, clipped to 1-5,
    are judged against the truth on every unrated video (METRICS): SROCC, RMSE, RMSE on the
    kind of content where it is largest, and RMSE on the unrated videos among the pool's 10%
    best and 10% worst.
    """
    try:
        from sklearn.linear_model import RidgeCV
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        raise ConfigError("the selection simulation needs scikit-learn: pip install 'vqscope[train]'") from None
    idx = _rated_indices(pool, rated)
    mos = pool.truth + rng.normal(0.0, pool.config.rating_sd, len(pool))
    x = np.column_stack([pool.features, pool.model_score])
    head = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))
    head.fit(x[idx], mos[idx])
    unrated = np.ones(len(pool), dtype=bool)
    unrated[idx] = False
    pred = np.clip(head.predict(x[unrated]), 1.0, 5.0)
    truth, kind = pool.truth[unrated], pool.kind[unrated]
    err = pred - truth
    per_kind = [float(np.sqrt(np.mean(err[kind == k] ** 2))) for k in np.unique(kind)]
    lo, hi = np.quantile(pool.truth, [EXTREME_SHARE, 1.0 - EXTREME_SHARE])
    ends = (truth <= lo) | (truth >= hi)
    return {
        "srocc": float(stats.spearmanr(pred, truth).statistic),
        "rmse": float(np.sqrt(np.mean(err ** 2))),
        "worst_kind_rmse": max(per_kind),
        "extremes_rmse": float(np.sqrt(np.mean(err[ends] ** 2))) if ends.any() else float("nan"),
    }


# -- how the rated videos are picked ----------------------------------------------------------
#: chosen: choose_items as shipped (quantile score bands + k-centre); random: random_items;
#: chosen-width: equal-width bands + k-centre; k-centre-only: one band; width-bands-only:
#: equal-width bands, random inside each (what stratification alone does).
STRATEGIES: tuple[str, ...] = ("chosen", "random", "chosen-width", "k-centre-only", "width-bands-only")


def _stratified_random(candidates: Sequence[Candidate], n: int, bands: int, seed: int) -> list[str]:
    """n candidates, split equally over equal-width score bands (allocate), random inside each."""
    scores = np.asarray([c.score for c in candidates], dtype=np.float64)
    _, band = score_bands(scores, bands, "width")
    quota = allocate(n, np.bincount(band, minlength=bands).tolist())
    rng = np.random.default_rng(seed)
    picked: list[str] = []
    for b, q in enumerate(quota):
        if q:
            members = np.flatnonzero(band == b)
            picked.extend(candidates[i].id for i in rng.choice(members, size=q, replace=False))
    return picked


def pick(strategy: str, candidates: Sequence[Candidate], n: int, seed: int, bands: int = 5) -> list[str]:
    """The ids of the n candidates that `strategy` (one of STRATEGIES) would have rated."""
    candidates = list(candidates)
    n, bands = _whole(n, "n", 1), _whole(bands, "bands", 1)
    if strategy == "chosen":
        return [c.id for c in choose_items(candidates, n, bands=bands, seed=seed)]
    if strategy == "random":
        return [c.id for c in random_items(candidates, n, seed=seed)]
    if strategy == "chosen-width":
        return [c.id for c in choose_items(candidates, n, bands=bands, seed=seed, spacing="width")]
    if strategy == "k-centre-only":
        return [c.id for c in choose_items(candidates, n, bands=1, seed=seed)]
    if strategy == "width-bands-only":
        return _stratified_random(candidates, n, bands, seed)
    raise SelectionError(f"unknown strategy {strategy!r} (strategies: {', '.join(STRATEGIES)})")


# -- learning curves ----------------------------------------------------------------------------
@dataclass
class Curve:
    """One strategy's learning curve: per number of ratings, each metric's value per seed."""

    strategy: str
    sizes: list[int]
    values: dict[str, list[list[float]]] = field(default_factory=dict)  # metric -> per size -> per seed

    def _array(self, metric: str) -> np.ndarray:
        if metric not in self.values:
            raise SelectionError(f"no metric {metric!r} in the {self.strategy} curve (has: {', '.join(self.values)})")
        return np.asarray(self.values[metric], dtype=np.float64)

    def mean(self, metric: str) -> np.ndarray:
        """The metric's mean over seeds, per size."""
        return self._array(metric).mean(axis=1)

    def sd(self, metric: str) -> np.ndarray:
        """The metric's sd over seeds, per size (0 with one seed)."""
        values = self._array(metric)
        return values.std(axis=1, ddof=1) if values.shape[1] > 1 else np.zeros(values.shape[0])

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "sizes": list(self.sizes),
            "mean": {m: [round(float(v), 4) for v in self.mean(m)] for m in self.values},
            "sd": {m: [round(float(v), 4) for v in self.sd(m)] for m in self.values},
            "values": {m: [[round(float(v), 4) for v in row] for row in rows] for m, rows in self.values.items()},
        }


@dataclass
class Experiment:
    """Learning curves of every strategy on one variant of the pool, over several seeds."""

    variant: str
    config: PoolConfig
    seeds: int
    model_srocc: float  # the current model's SROCC with the truth, whole pool, mean over seeds
    curves: dict[str, Curve]

    def matched_at(self, n: int = 150, metric: str = "srocc", by: str = "chosen",
                   against: str = "random") -> float | None:
        """How many `against` ratings do as well (mean over seeds) as n `by` ratings.

        Read off the `against` curve at its first size that reaches the `by` curve's mean at n
        (n must be one of its sizes), interpolated linearly in log(size) from the size before.
        The first size itself when `against` is already there (as good or better with that
        few), None when it never gets there within its sizes.
        """
        for name in (by, against):
            if name not in self.curves:
                raise SelectionError(f"no {name!r} curve in this experiment (has: {', '.join(self.curves)})")
        by_curve, other = self.curves[by], self.curves[against]
        if n not in by_curve.sizes:
            raise SelectionError(f"{n} is not one of the {by} curve's sizes ({by_curve.sizes})")
        target = float(by_curve.mean(metric)[by_curve.sizes.index(n)])
        sign = 1.0 if metric in HIGHER_IS_BETTER else -1.0
        values = sign * other.mean(metric)
        goal = sign * target
        sizes = [float(s) for s in other.sizes]
        for i, value in enumerate(values):
            if value >= goal:
                if i == 0:
                    return sizes[0]
                before = values[i - 1]
                share = (goal - before) / (value - before)
                return float(math.exp(math.log(sizes[i - 1]) + share * (math.log(sizes[i]) - math.log(sizes[i - 1]))))
        return None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "variant": self.variant,
            "config": asdict(self.config),
            "seeds": self.seeds,
            "model_srocc": round(self.model_srocc, 4),
            "curves": {name: curve.to_dict() for name, curve in self.curves.items()},
        }
        if "chosen" in self.curves and "random" in self.curves and 150 in self.curves["chosen"].sizes:
            out["random_matching_150_chosen"] = {m: self.matched_at(150, m) for m in METRICS
                                                 if m in self.curves["chosen"].values}
        return out


def selection_experiment(
    config: PoolConfig | str = "unequal",
    sizes: Sequence[int] = (50, 100, 150, 200, 300, 500, 1000),
    seeds: int = 5,
    strategies: Sequence[str] = ("chosen", "random"),
    bands: int = 5,
) -> Experiment:
    """Learning curves: for each seed a fresh pool (simulate_pool(config, seed), seeds 0, 1, ...),
    for each strategy and size the head judged on the unrated videos (judge_head).

    Within a seed every strategy sees the same pool and the same simulated MOS per video, so
    the curves differ only by which videos were rated. The variant is `config`'s name in
    VARIANTS, or "custom" for a PoolConfig that is not one of them.
    """
    variant = config if isinstance(config, str) else next(
        (name for name, c in VARIANTS.items() if c == config), "custom")
    config = _config(config)
    sizes = [_whole(n, "each size", 3) for n in sizes]
    if not sizes or sizes != sorted(set(sizes)) or sizes[-1] >= config.videos:
        raise SelectionError(f"sizes must rise, each from 3 to below the pool's {config.videos} videos, got {sizes}")
    seeds = _whole(seeds, "seeds", 1)
    bands = _whole(bands, "bands", 1)
    strategies = list(strategies)
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown or not strategies:
        raise SelectionError(f"unknown strategy {', '.join(map(repr, unknown)) or '(none given)'} "
                             f"(strategies: {', '.join(STRATEGIES)})")
    values = {s: {m: [[] for _ in sizes] for m in METRICS} for s in strategies}
    model_sroccs = []
    for seed in range(seeds):
        pool = simulate_pool(config, seed)
        model_sroccs.append(pool.model_srocc)
        candidates = pool.candidates()
        for strategy in strategies:
            for j, n in enumerate(sizes):
                rated = pick(strategy, candidates, n, seed, bands)
                scores = judge_head(pool, rated, np.random.default_rng([seed, 1]))
                for m in METRICS:
                    values[strategy][m][j].append(scores[m])
    curves = {s: Curve(s, list(sizes), values[s]) for s in strategies}
    return Experiment(variant, config, seeds, float(np.mean(model_sroccs)), curves)
