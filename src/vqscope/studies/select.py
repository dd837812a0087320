"""Choosing what to rate: from a pool of scored videos, the N that teach a new head most.

A rating costs a rater's minute per video, so a study rates a few hundred videos out of the
thousands a platform has scored. Which few hundred matters. A uniform random sample mirrors the
uploads: it spends most ratings on the few kinds of content that dominate them, where the model
is already roughly right or where one more rating adds little, and it rarely reaches the extreme
scores where grade thresholds are set or the rare content on which the model is wrong.

`choose_items` spreads the ratings two ways:

- over the model's **score range**, by stratified sampling over score bands (quantiles of the
  pool's scores by default, equal widths for threshold studies; see `choose_items` for why);
- over the model's **feature space** inside each band, by greedy k-centre (farthest-first):
  each next video is the one farthest from every video already rated or chosen, so no kind
  of content is left without a rated neighbour and no two ratings are spent on near-twins.

Every choice carries the reason in words ("score 34.2, band 2 of 5 (scores 23.0-45.6, the
pool's 20-40% by score; 3 of 8 chosen there); farthest from the videos already rated or chosen
in feature space (distance 2.70 to the nearest, v0193)"), so a study's owner can see why a
video is in it.

The vector a video is placed by is `embedding_from_result`: its score, six dimension scores
and twelve distortion probabilities, which the job store holds for every scored video, so a
pool of thousands needs no feature re-extraction.

`selection_sim.selection_experiment` measures, in a simulated pool described in its
`simulate_pool`, how much a
head fitted on chosen ratings gains over one fitted on random ratings (bench/study_selection.py
prints the learning curves). What it found, 20 pools of 3,000 videos, a ridge head on 32
features plus the score: choosing does not buy pool-wide ranking. 150 chosen ratings rank the
unrated videos as well as about 150 random ones (SROCC 0.878 against 0.879) where a few kinds
of content dominate, about 160 where kinds are balanced; the gain is small at 50 (+0.015 SROCC,
within the spread between pools) and turns into a small loss by 1,000 (-0.004), where a
spread-out set is less like the pool than a random one. What choosing buys is coverage: on the
kind of content the head gets most wrong, 150 chosen ratings are as good as about 500 random
ones (RMSE 0.40 against 0.44 on 1-5) where kinds are unequal. On the 10% best and worst videos
it gains nothing after 50 ratings. The hope that 100-200 chosen ratings rank a pool like 1,000
random ones did not come true.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..errors import ConfigError
from ..taxonomy import DIMENSIONS, DISTORTION_TYPES


class SelectionError(ConfigError, ValueError):
    """A pool or request `choose_items` cannot work with (one line naming the culprit).

    A ConfigError (exit 2, bad usage) for the CLI and service, and a ValueError for callers
    that treat it as a bad argument.
    """

    kind = "bad_selection"


# -- the vector a video is placed by -------------------------------------------------------
#: Layout of `embedding_from_result`: the score, the six dimensions, the twelve types.
EMBEDDING_FIELDS: tuple[str, ...] = (
    ("score",) + tuple(f"dimension:{d}" for d in DIMENSIONS) + tuple(f"distortion:{t}" for t in DISTORTION_TYPES)
)


def _number(value: Any, what: str) -> float:
    if isinstance(value, Mapping):
        value = value.get("score")
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise SelectionError(f"{what} is not a number: {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise SelectionError(f"{what} is not finite: {out}")
    return out


def embedding_from_result(result: Mapping[str, Any] | Any) -> np.ndarray:
    """A video's place in the model's feature space, from its result (docs/usage.md, "The result").

    The vector (EMBEDDING_FIELDS order, 19 values, all on 0-1): score / 100, the six dimension
    scores / 100 (DIMENSIONS order) and the twelve distortion probabilities (DISTORTION_TYPES
    order). These are the model's own read-outs of its features, kept in the job store for
    every scored video, so a pool needs no re-extraction. They are a summary, not the features
    themselves: content the heads do not tell apart is not told apart here either.

    Missing values, for models without those heads, are filled so that they add no spurious
    distance: a missing dimension takes the overall score (what the model's only read-out says
    about every aspect; "overall" itself is the score when absent), a missing distortion type
    takes 0 (what a model that names nothing says). Within a pool scored by one model version,
    as every pool should be (scores of two versions are not comparable), such a fill is
    constant or a copy of the score, so it carries no weight the score does not already have.

    Accepts the result's dict (Result.to_dict, the service's JSON) or a Result. Raises
    SelectionError (a ValueError) naming the video when the score or a value is missing or not
    finite.
    """
    if not isinstance(result, Mapping):
        to_dict = getattr(result, "to_dict", None)
        if to_dict is None:
            raise SelectionError(f"not a result: {type(result).__name__}")
        result = to_dict()
    name = str(result.get("video", "?"))
    if "score" not in result or result["score"] is None:
        raise SelectionError(f"result of {name} has no score")
    score = _number(result["score"], f"score of {name}")
    dims = result.get("dimensions") or {}
    probs = result.get("distortions") or {}
    values = [score / 100.0]
    for d in DIMENSIONS:
        raw = dims.get(d)
        values.append(score / 100.0 if raw is None else _number(raw, f"dimension {d} of {name}") / 100.0)
    for t in DISTORTION_TYPES:
        raw = probs.get(t)
        values.append(0.0 if raw is None else _number(raw, f"distortion {t} of {name}"))
    return np.asarray(values, dtype=np.float64)


# -- candidates and choices ----------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """A scored video of the pool: the model's 0-100 score and its vector (embedding_from_result)."""

    id: str
    score: float
    embedding: np.ndarray

    @classmethod
    def from_result(cls, id: str, result: Mapping[str, Any] | Any) -> "Candidate":
        """The candidate for a stored result (score and vector from the same result)."""
        vector = embedding_from_result(result)
        return cls(str(id), float(vector[0] * 100.0), vector)


@dataclass(frozen=True)
class Choice:
    """One video chosen for rating, and why."""

    id: str
    score: float
    band: int  # score band, 0 = lowest
    reason: str
    rank: int  # 1 = chosen first; a study cut short keeps the first ranks
    band_range: tuple[float, float] = (0.0, 0.0)  # the band's score range
    distance: float | None = None  # standardised distance to the nearest rated or chosen video (None: first pick)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["band_range"] = [round(v, 2) for v in self.band_range]
        d["score"] = round(self.score, 2)
        d["distance"] = None if self.distance is None else round(self.distance, 4)
        return d


def _count(n: Any, what: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise SelectionError(f"{what} must be a whole number, got {n!r}")
    if n < 1:
        raise SelectionError(f"{what} must be at least 1, got {n}")
    return int(n)


@dataclass
class _Pool:
    ids: list[str]
    scores: np.ndarray
    vectors: np.ndarray  # standardised (pool mean 0, sd 1 per column; constant columns 0)
    extra_centres: np.ndarray  # standardised vectors of rated videos outside the pool
    extra_ids: list[str]


def _pool(candidates: Iterable[Candidate], already: Iterable[str | Candidate]) -> _Pool:
    cands = list(candidates)
    if not cands:
        raise SelectionError("no candidates to choose from")
    ids: list[str] = []
    seen: set[str] = set()
    rows = []
    width = None
    for c in cands:
        if not isinstance(c, Candidate):
            raise SelectionError(f"not a Candidate: {c!r}")
        cid = str(c.id)
        if cid in seen:
            raise SelectionError(f"candidate {cid!r} appears twice in the pool")
        seen.add(cid)
        vec = np.asarray(c.embedding, dtype=np.float64).ravel()
        if width is None:
            width = vec.size
        if vec.size == 0 or vec.size != width:
            raise SelectionError(f"candidate {cid!r} has an embedding of {vec.size} values, the first had {width}")
        if not math.isfinite(float(c.score)):
            raise SelectionError(f"candidate {cid!r} has a non-finite score ({c.score})")
        if not np.all(np.isfinite(vec)):
            raise SelectionError(f"candidate {cid!r} has non-finite values in its embedding")
        ids.append(cid)
        rows.append(vec)
    raw = np.vstack(rows)
    mean = raw.mean(axis=0)
    sd = raw.std(axis=0)
    # A constant column (a head the model lacks, filled alike everywhere) tells nothing apart.
    sd = np.where(sd > 1e-12 * np.maximum(1.0, np.abs(mean)), sd, np.inf)
    extra_rows, extra_ids = [], []
    for a in already:
        if isinstance(a, Candidate) and str(a.id) not in seen:
            vec = np.asarray(a.embedding, dtype=np.float64).ravel()
            if vec.size != width or not np.all(np.isfinite(vec)):
                raise SelectionError(f"rated video {a.id!r} has an embedding that does not fit the pool's")
            extra_rows.append(vec)
            extra_ids.append(str(a.id))
    extra = (np.vstack(extra_rows) - mean) / sd if extra_rows else np.empty((0, width))
    return _Pool(ids, np.asarray([float(c.score) for c in cands]), (raw - mean) / sd, extra, extra_ids)


#: How the score range is cut into bands: equal numbers of videos, or equal widths of score.
SPACINGS: tuple[str, ...] = ("quantile", "width")


def score_bands(scores: np.ndarray, bands: int, spacing: str = "quantile") -> tuple[np.ndarray, np.ndarray]:
    """(edges of the bands, band of each score): quantiles of the scores or equal widths of their range.

    Tied scores never straddle an edge; a band left empty by ties (many videos at 100) holds
    nothing and gets no picks.
    """
    if spacing not in SPACINGS:
        raise SelectionError(f"unknown band spacing {spacing!r} (spacings: {', '.join(SPACINGS)})")
    scores = np.asarray(scores, dtype=np.float64)
    lo, hi = float(np.min(scores)), float(np.max(scores))
    if hi - lo <= 1e-9:
        return np.array([lo, hi]), np.zeros(len(scores), dtype=int)
    if spacing == "width":
        edges = np.linspace(lo, hi, bands + 1)
    else:
        edges = np.quantile(scores, np.linspace(0.0, 1.0, bands + 1))
    band = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, bands - 1)
    return edges, band


def allocate(n: int, available: Sequence[int]) -> list[int]:
    """Split n picks equally over bands, no band given more than it has.

    What a band cannot use (an empty band, a sparse extreme) goes to the others, equally again;
    a remainder that does not split evenly goes to the bands with the most left to give.
    """
    avail = [int(a) for a in available]
    quota = [0] * len(avail)
    left = min(n, sum(avail))
    while left > 0:
        open_bands = [b for b in range(len(avail)) if quota[b] < avail[b]]
        share = left // len(open_bands)
        if share == 0:
            for b in sorted(open_bands, key=lambda b: (-(avail[b] - quota[b]), b))[:left]:
                quota[b] += 1
            break
        for b in open_bands:
            add = min(share, avail[b] - quota[b])
            quota[b] += add
            left -= add
    return quota


def choose_items(
    candidates: Iterable[Candidate],
    n: int,
    *,
    bands: int = 5,
    seed: int = 0,
    already: Iterable[str | Candidate] = (),
    spacing: str = "quantile",
) -> list[Choice]:
    """The n candidates whose ratings should teach a new head most, in the order chosen.

    Score bands: the model's scores are cut into `bands` bands and the n picks split equally
    over them (a band with fewer unrated candidates than its share gives the rest to the
    others; an empty band gets none). `spacing="quantile"` (default) cuts at the pool's score
    quantiles, so each band holds a fifth of the videos; `spacing="width"` cuts the observed
    range into equal widths, so the few videos scored very low or very high get a full share.

    Why quantiles by default: equal widths looked like the natural way to make rare extremes
    count, but in the simulation (`selection_experiment`, 20 pools) equal-width bands cost the
    head ranking accuracy on the pool: random picks inside equal-width bands lost 0.005-0.03
    SROCC (0.015 typical) against plain random picks at 50-1000 ratings, because they move
    ratings from the crowded middle, where most of the pool's order is decided, to the thin
    ends. Quantile bands keep the picks' score distribution close to the pool's
    (stratification then only removes the bad luck of a random sample), and the feature-space
    step below already reaches the extremes and rare content. Use "width" when the study is
    for setting grade thresholds (thresholds.py), where the ends of the scale matter as much
    as the middle; measured, it did not lower the error on the 10% best and worst videos more
    than quantile bands did (-0.012 at 100 ratings, +0.006 at 50), and cost 0.01-0.02 SROCC.

    Feature space: inside the band quotas, greedy k-centre (farthest-first traversal) on the
    standardised embeddings (each column to pool mean 0 and sd 1, so the score and a probability
    weigh alike; constant columns drop out), Euclidean distance. Each step takes, among the
    unrated candidates of bands with quota left, the one whose nearest rated-or-chosen video is
    farthest; rated videos (`already`) are centres from the start. This is the classic
    2-approximation of the k-centre problem: every video in the pool ends up close to a rated
    one, so a head fitted on the ratings has seen something like every kind of content, and
    the few kinds that dominate uploads cannot take every rating. Its known weakness: isolated
    outliers (a broken file, an odd format) are far from everything and get picked early; the
    score bands keep them from taking more than their band's share.

    `already`: ids of videos already rated (in the pool: centres, never chosen again), or
    Candidates (also used as centres when they are not in the pool, e.g. last month's study).
    An id that is not in the pool is ignored: without its vector it cannot be a centre. Rated
    videos do not count against a band's quota: the quotas split the new ratings.

    Deterministic for a seed: the seed orders the candidates, which decides the first pick when
    nothing is rated yet (a random one) and ties (identical embeddings). n at or above the
    number of unrated candidates takes them all, still in k-centre order, and each reason says
    so. Raises SelectionError (a ValueError) for n < 1, bands < 1, an unknown spacing, an empty
    pool, a repeated id, an embedding of another length, or a non-finite score or embedding
    (naming the video).
    """
    n = _count(n, "n")
    bands = _count(bands, "bands")
    if spacing not in SPACINGS:
        raise SelectionError(f"unknown band spacing {spacing!r} (spacings: {', '.join(SPACINGS)})")
    already = list(already)
    pool = _pool(candidates, already)
    rated = {str(a.id) if isinstance(a, Candidate) else str(a) for a in already}
    in_pool_rated = [i for i, cid in enumerate(pool.ids) if cid in rated]
    open_idx = np.asarray([i for i, cid in enumerate(pool.ids) if cid not in rated], dtype=int)
    if open_idx.size == 0:
        raise SelectionError(f"all {len(pool.ids)} candidates are already rated; nothing left to choose")

    edges, band_of = score_bands(pool.scores, bands, spacing)
    n_bands = len(edges) - 1
    avail = np.bincount(band_of[open_idx], minlength=n_bands)
    take = min(n, open_idx.size)
    quota = allocate(take, avail)
    taken_in = [0] * n_bands

    rng = np.random.default_rng(seed)
    open_idx = open_idx[rng.permutation(open_idx.size)]  # the seed breaks ties and makes the first pick
    vecs = pool.vectors[open_idx]
    centres = [pool.vectors[i] for i in in_pool_rated] + list(pool.extra_centres)
    centre_ids = [pool.ids[i] for i in in_pool_rated] + pool.extra_ids
    nearest_d = np.full(open_idx.size, np.inf)
    nearest_c = np.full(open_idx.size, -1)
    for c, vec in enumerate(centres):
        d = np.linalg.norm(vecs - vec, axis=1)
        closer = d < nearest_d
        nearest_d[closer], nearest_c[closer] = d[closer], c
    free = np.ones(open_idx.size, dtype=bool)
    band_open = band_of[open_idx]

    prefix = f"all {open_idx.size} unrated candidates taken (asked for {n}); " if n >= open_idx.size else ""
    choices: list[Choice] = []
    for rank in range(1, take + 1):
        band_has_room = np.asarray([taken_in[b] < quota[b] for b in range(n_bands)])
        j = int(np.argmax(np.where(free & band_has_room[band_open], nearest_d, -1.0)))  # first max, seeded order
        i, b = int(open_idx[j]), int(band_open[j])
        taken_in[b] += 1
        lo, hi = float(edges[b]), float(edges[b + 1])
        if spacing == "quantile" and n_bands > 1:
            span = f"scores {lo:.1f}-{hi:.1f}, the pool's {100 * b // n_bands}-{100 * (b + 1) // n_bands}% by score"
        else:
            span = f"scores {lo:.1f}-{hi:.1f}"
        where = f"score {pool.scores[i]:.1f}, band {b + 1} of {n_bands} ({span}; {taken_in[b]} of {quota[b]} chosen there)"
        if not centres:
            why = f"first pick, at random (seed {seed}): no video rated or chosen yet"
            distance = None
        else:
            distance = float(nearest_d[j])
            near = centre_ids[int(nearest_c[j])]
            if distance <= 1e-9:
                why = f"identical in feature space to {near} (nothing farther left in its band)"
            else:
                why = (f"farthest from the videos already rated or chosen in feature space "
                       f"(distance {distance:.2f} to the nearest, {near})")
        choices.append(Choice(pool.ids[i], float(pool.scores[i]), b, prefix + where + "; " + why, rank,
                              (lo, hi), distance))
        free[j] = False
        centres.append(vecs[j])
        centre_ids.append(pool.ids[i])
        d = np.linalg.norm(vecs - vecs[j], axis=1)
        closer = d < nearest_d
        nearest_d[closer], nearest_c[closer] = d[closer], len(centres) - 1
    return choices


def random_items(candidates: Iterable[Candidate], n: int, seed: int = 0,
                 already: Iterable[str | Candidate] = ()) -> list[Choice]:
    """The baseline: n unrated candidates drawn uniformly at random (all of them if n is larger)."""
    n = _count(n, "n")
    already = list(already)
    pool = _pool(candidates, already)
    rated = {str(a.id) if isinstance(a, Candidate) else str(a) for a in already}
    open_idx = np.asarray([i for i, cid in enumerate(pool.ids) if cid not in rated], dtype=int)
    if open_idx.size == 0:
        raise SelectionError(f"all {len(pool.ids)} candidates are already rated; nothing left to choose")
    rng = np.random.default_rng(seed)
    picked = rng.permutation(open_idx)[: min(n, open_idx.size)]
    return [Choice(pool.ids[i], float(pool.scores[i]), 0, f"score {pool.scores[i]:.1f}; drawn at random (seed {seed})",
                   r, (float(pool.scores.min()), float(pool.scores.max())))
            for r, i in enumerate(picked, start=1)]
