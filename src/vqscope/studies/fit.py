"""Learning from a study: new heads on frozen features, published only if they beat the base.

A study gives 100-200 rated videos, far too few to train a network, but enough to fit a
linear head on features that are already extracted (backbones frozen, as for the shipped model).
Three things are chosen from the ratings themselves:

- the feature set: the base model's own statistics, the ImageNet features of EfficientNet-Lite0
  (a native-resolution crop), both, or any `FeatureConfig` a caller passes;
- the head: ridge regression, or principal component regression (`pcr`: ordinary least
  squares on the first k principal components). Ridge shrinks every direction a little; PCR
  keeps the few directions the rated videos vary most along and drops the rest, which is the
  better bet when the features have thousands of dimensions (EfficientNet's 2,560) and the
  videos number 150. Both are linear maps of the standardised features, so either becomes an
  ordinary head of a `PredictionNetwork` (hidden=()) that `vqscope score` runs;
- the head's strength (ridge penalty, or number of components).

A head that also took the base model's score as an input (a prior) was considered and left
out: the shipped model's overall score comes from boosted trees and a product of detectors, and
a `PredictionNetwork` head is linear on the features, so it cannot read another head's output.

Choosing on the same videos that report the figure would flatter it, so the figures come
from nested cross-validation: outer folds hold videos out, inner folds (on the rest) choose
feature set, head and strength, and the chosen candidate, refitted on the outer training
videos, predicts the held-out ones. SROCC/KRCC/PLCC with bootstrap intervals are computed
on the pooled out-of-fold predictions. The base model never saw the rated videos, so its
figures use all of them. The published model is the candidate chosen by cross-validation on
all videos, refitted on all of them; it is published only if its nested-CV SROCC is above
the base's (or when forced); a paired bootstrap of the SROCC difference goes in the card, so a
reader sees whether "beats" is more than luck.

The published model is an ordinary model file. Its primary head is the new one, named after
the study; a model's overall score is its primary head's. Where the chosen features are the
base's own, what else the base can still say is kept (see `_carry_plan`): without dimension
ratings, all its heads (the shipped model's six composed dimensions and twelve distortion
types); with them, only its distortion head, the rated dimensions coming from new linear heads.
The calibration is a percentile table over the model's own scores of the rated videos; the
grade scale is the base's.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from .. import __version__
from ..backbones import create_backbone, get_backbone_spec
from ..calibration import Calibration, fingerprint
from ..data.datasets import Dataset, VideoItem
from ..errors import ConfigError, NotBetterError, VQScopeError
from ..experiment.config import default_cache_dir, default_workers
from ..experiment.data import ProgressBar, clip_rows, describe_report, ensure_features, open_cache, unit_targets
from ..features import FeatureConfig
from ..features.cache import config_key
from ..hashing import file_sha256
from ..heads import CLAMP_Z, HeadConfig, PredictionNetwork
from ..metrics import DetailedAgreement, detailed_agreement, srocc
from ..model import Model, ModelInfo
from ..output import name_once
from ..taxonomy import DIMENSIONS
from .card import _description, _figure, markdown_card, model_card, source_label
from .ratings import RATED_DIMENSIONS

Log = Callable[[str], None]

#: Fewest rated videos a fit accepts (with five folds, two held out per fold).
MIN_VIDEOS = 10
#: Feature sets by name, resolved against the base model (see `resolve_feature_sets`).
FEATURE_SET_NAMES: tuple[str, ...] = ("statistics", "efficientnet", "both")
EFFICIENTNET = "efficientnet_lite0_native"
#: Heads tried, and their strengths, the most regularised first: on a tie the simpler head wins.
HEADS: tuple[str, ...] = ("ridge", "pcr")
#: Ridge penalty as a multiple of the mean eigenvalue of the training videos' (centred) feature
#: Gram matrix, so one grid means the same for 99 statistics and 2,560 EfficientNet features.
RIDGE_STRENGTHS: tuple[float, ...] = (100.0, 10.0, 1.0, 0.1, 0.01)
#: Principal components kept by PCR (those above what the training videos allow are skipped).
PCR_COMPONENTS: tuple[int, ...] = (2, 4, 8, 16, 32)
_HEAD_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


# -- feature sets ---------------------------------------------------------------------------
@dataclass(frozen=True)
class FeatureSet:
    """A named feature configuration, and the configurations whose caches hold its blocks.

    "both" is never extracted as one: its blocks are joined from the caches of the base
    model's statistics and of EfficientNet, which the other two feature sets fill anyway.
    """

    name: str
    config: FeatureConfig
    parts: tuple[FeatureConfig, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "config": self.config.to_dict(), "cache_key": config_key(self.config)}


def resolve_feature_sets(
    requested: Sequence[str | FeatureConfig | tuple[str, FeatureConfig]], base: Model
) -> list[FeatureSet]:
    """Feature sets by name or configuration, resolved against `base`.

    Names: "statistics" (the base model's own features), "efficientnet" (EfficientNet-Lite0
    ImageNet features of a native-resolution crop, with the base's clip plan and video
    metadata), "both", a registered backbone name (`mobilenet_v2`, an X3D; optionally
    `NAME=WEIGHTS`, a weights name or file), or such names joined by "+". A `FeatureConfig`
    (or a (name, FeatureConfig) pair) is used as given. Sets that resolve to the same
    configuration are kept once, under the first name.
    """
    if not requested:
        raise ConfigError("no feature set to try: give at least one (statistics, efficientnet, both)")
    out: list[FeatureSet] = []
    seen: dict[str, str] = {}
    for entry in requested:
        if isinstance(entry, FeatureConfig):
            fs = FeatureSet("+".join(entry.spatial + entry.temporal), entry, (entry,))
        elif isinstance(entry, tuple):
            fs = FeatureSet(str(entry[0]), entry[1], (entry[1],))
        else:
            fs = _named_feature_set(str(entry).strip(), base)
        key = config_key(fs.config)
        if key in seen or any(f.name == fs.name for f in out):
            continue  # the same features twice (e.g. "both" where the base already has EfficientNet)
        seen[key] = fs.name
        out.append(fs)
    return out


def _named_feature_set(name: str, base: Model) -> FeatureSet:
    if name == "both":
        return _joined(name, [base.features, _backbone_part(EFFICIENTNET, None, base)], base)
    parts = [p.strip() for p in name.split("+")]
    if not all(parts):
        raise ConfigError(f"feature set {name!r}: an empty part between '+' signs")
    configs = [_part(p, base) for p in parts]
    return _joined(name, configs, base)


def _part(name: str, base: Model) -> FeatureConfig:
    if name == "statistics":
        return base.features
    if name == "efficientnet":
        return _backbone_part(EFFICIENTNET, None, base)
    if name == "both":
        raise ConfigError("feature set 'both' cannot be joined with others; name its parts instead")
    backbone, _, weights = name.partition("=")
    try:
        get_backbone_spec(backbone.strip())
    except VQScopeError:
        raise ConfigError(f"unknown feature set {name!r} (feature sets: {', '.join(FEATURE_SET_NAMES)}, "
                          f"or backbone names such as mobilenet_v2 joined by '+')") from None
    return _backbone_part(backbone.strip(), weights.strip() or None, base)


def _backbone_part(backbone: str, weights: str | None, base: Model) -> FeatureConfig:
    """One backbone under the base model's clip plan and video metadata."""
    spec = get_backbone_spec(backbone)
    chosen = {backbone: weights} if weights else {k: v for k, v in base.features.weights.items() if k == backbone}
    role = {"spatial": (backbone,)} if spec.role == "spatial" else {"temporal": (backbone,)}
    return FeatureConfig(**{"spatial": (), "temporal": (), **role}, weights=chosen,
                         clip_plan=base.features.clip_plan, video_meta=base.features.video_meta)


def _joined(name: str, parts: list[FeatureConfig], base: Model) -> FeatureSet:
    if len(parts) == 1:
        return FeatureSet(name, parts[0], (parts[0],))
    spatial = tuple(dict.fromkeys(b for p in parts for b in p.spatial))
    temporal = tuple(dict.fromkeys(b for p in parts for b in p.temporal))
    weights: dict[str, str] = {}
    for p in parts:
        weights.update(p.weights)
    config = FeatureConfig(spatial, temporal, weights, base.features.clip_plan, base.features.video_meta)
    same = [p for p in parts if p.to_dict() == config.to_dict()]
    if same:  # one part already holds every block (the base's features include EfficientNet)
        return FeatureSet(name, same[0], (same[0],))
    return FeatureSet(name, config, tuple(parts))


def _assemble(fs: FeatureSet, matrices: Sequence[np.ndarray]) -> np.ndarray:
    """A video's clip matrix under `fs.config` from its parts' matrices (blocks by name)."""
    if len(fs.parts) == 1:
        return matrices[0]
    columns: dict[str, np.ndarray] = {}
    for part, matrix in zip(fs.parts, matrices, strict=True):
        offset = 0
        for block, width in part.layout:
            columns.setdefault(block, matrix[:, offset:offset + width])
            offset += width
    return np.concatenate([columns[block] for block, _ in fs.config.layout], axis=1)


# -- candidates and linear heads -------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """One way to predict: a feature set, a head, its strength."""

    feature_set: str
    head: str  # "ridge" or "pcr"
    strength: float  # ridge: penalty / mean Gram eigenvalue; pcr: components kept

    def describe(self) -> str:
        if self.head == "pcr":
            return f"principal component regression, {int(self.strength)} components"
        return f"ridge regression, strength {self.strength:g}"

    def short(self) -> str:
        return f"{self.feature_set} / {self.head} {int(self.strength) if self.head == 'pcr' else f'{self.strength:g}'}"

    def to_dict(self) -> dict[str, Any]:
        return {"feature_set": self.feature_set, "head": self.head,
                "strength": int(self.strength) if self.head == "pcr" else self.strength}


@dataclass(frozen=True)
class CandidateScore:
    """A candidate's cross-validated SROCC on the videos a choice was made on (the choosing
    figure: optimistic for the winner, never the reported one)."""

    candidate: Candidate
    srocc: float

    def to_dict(self) -> dict[str, Any]:
        return {**self.candidate.to_dict(), "srocc": None if math.isnan(self.srocc) else round(self.srocc, 4)}


def candidates_for(feature_sets: Sequence[FeatureSet]) -> list[Candidate]:
    """Every (feature set, head, strength) tried, in tie-breaking order (see `HEADS`)."""
    out = []
    for fs in feature_sets:
        out += [Candidate(fs.name, "ridge", s) for s in RIDGE_STRENGTHS]
        out += [Candidate(fs.name, "pcr", float(k)) for k in PCR_COMPONENTS]
    return out


@dataclass(frozen=True)
class LinearHead:
    """score = z . weight + bias on standardised, clamped clip features (0-100 scale)."""

    weight: np.ndarray
    bias: float


def fit_heads(z: np.ndarray, y: np.ndarray, candidates: Sequence[Candidate]) -> dict[Candidate, LinearHead | None]:
    """Each candidate's head fitted on video-level features `z` [videos, dim] and targets `y`
    (0-100); None where a candidate needs more videos than there are (PCR's k).

    Ridge's penalty is `strength` times the mean nonzero eigenvalue of the centred Gram matrix;
    PCR's components are nested, so one PCA serves every k.
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LinearRegression, Ridge

    unknown = [c.head for c in candidates if c.head not in HEADS]
    if unknown:
        raise ValueError(f"unknown head {unknown[0]!r} (heads: {', '.join(HEADS)})")
    z = np.asarray(z, dtype=np.float64)
    n, p = z.shape
    rank = max(1, min(n - 1, p))
    out: dict[Candidate, LinearHead | None] = {}
    ridge = [c for c in candidates if c.head == "ridge"]
    if ridge:
        scale = float(((z - z.mean(axis=0)) ** 2).sum()) / rank or 1.0
        for c in ridge:
            fit = Ridge(alpha=c.strength * scale).fit(z, y)
            out[c] = LinearHead(np.asarray(fit.coef_, dtype=np.float64), float(fit.intercept_))
    pcr = [c for c in candidates if c.head == "pcr"]
    feasible = [int(c.strength) for c in pcr if int(c.strength) <= rank]
    pca = PCA(n_components=max(feasible), svd_solver="full").fit(z) if feasible else None
    scores = pca.transform(z) if pca is not None else None
    for c in pcr:
        k = int(c.strength)
        if pca is None or scores is None or k > rank:
            out[c] = None
            continue
        reg = LinearRegression().fit(scores[:, :k], y)
        weight = pca.components_[:k].T @ reg.coef_
        out[c] = LinearHead(weight, float(reg.intercept_ - pca.mean_ @ weight))
    return out


# -- clip features of the rated videos --------------------------------------------------------
@dataclass
class _Clips:
    """Clip features of the rated videos under one feature set, videos one after another.

    `fixed`: the base model's standardisation, where the published model keeps heads of the
    base that read it (then the new head must read the same standardised features).
    """

    x: np.ndarray  # [clips, dim] float32
    start: np.ndarray
    count: np.ndarray
    fixed: tuple[np.ndarray, np.ndarray] | None = None

    def standardiser(self, videos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.fixed is not None:
            return self.fixed
        rows = self.x[clip_rows(self.start, self.count, videos)].astype(np.float64)
        std = rows.std(axis=0, ddof=1) if len(rows) > 1 else np.ones(rows.shape[1])
        return rows.mean(axis=0), np.maximum(std, 1e-6)

    def standardised(self, videos: np.ndarray, mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Clamped standardised clip features of `videos` and each video's first row in them."""
        rows = clip_rows(self.start, self.count, videos)
        z = np.clip((self.x[rows] - mean) / std, -CLAMP_Z, CLAMP_Z)
        offsets = np.concatenate([[0], np.cumsum(self.count[videos])[:-1]]).astype(np.int64)
        return z, offsets

    def video_means(self, videos: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
        z, offsets = self.standardised(videos, mean, std)
        return np.add.reduceat(z, offsets, axis=0) / self.count[videos][:, None]

    def predict(self, head: LinearHead, videos: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
        """Video scores as the model gives them: clip scores clipped to 0-100, then averaged."""
        z, offsets = self.standardised(videos, mean, std)
        clip_scores = np.clip(z @ head.weight + head.bias, 0.0, 100.0)
        return np.add.reduceat(clip_scores, offsets) / self.count[videos]


def _safe_srocc(pred: np.ndarray, ref: np.ndarray) -> float:
    """SROCC, NaN where it is undefined (constant or missing predictions)."""
    if not np.isfinite(pred).all() or np.ptp(pred) == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return srocc(pred, ref)


def _folds(n: int, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold

    return list(KFold(n_splits=min(folds, n), shuffle=True, random_state=seed).split(np.arange(n)))


def _cv_predictions(data: Mapping[str, _Clips], y: np.ndarray, videos: np.ndarray, candidates: Sequence[Candidate],
                    folds: int, seed: int) -> dict[Candidate, np.ndarray]:
    """Out-of-fold video predictions of every candidate over `videos` (in that order)."""
    preds = {c: np.full(len(videos), np.nan) for c in candidates}
    by_set: dict[str, list[Candidate]] = {}
    for c in candidates:
        by_set.setdefault(c.feature_set, []).append(c)
    for train, test in _folds(len(videos), folds, seed):
        for name, group in by_set.items():
            clips = data[name]
            mean, std = clips.standardiser(videos[train])
            fitted = fit_heads(clips.video_means(videos[train], mean, std), y[videos[train]], group)
            for c, head in fitted.items():
                if head is not None:
                    preds[c][test] = clips.predict(head, videos[test], mean, std)
    return preds


def _select(data: Mapping[str, _Clips], y: np.ndarray, videos: np.ndarray, candidates: Sequence[Candidate],
            folds: int, seed: int) -> tuple[Candidate, list[CandidateScore]]:
    """The candidate with the best cross-validated SROCC on `videos` (the first on a tie, and
    the first, the most regularised, where no candidate's SROCC is defined: targets that barely
    vary within the folds; its figures then say so)."""
    preds = _cv_predictions(data, y, videos, candidates, folds, seed)
    scores = [CandidateScore(c, _safe_srocc(preds[c], y[videos])) for c in candidates]
    best = scores[0]
    for s in scores:
        if not math.isnan(s.srocc) and (math.isnan(best.srocc) or s.srocc > best.srocc + 1e-4):
            best = s
    return best.candidate, scores


def _refit(clips: _Clips, y: np.ndarray, videos: np.ndarray, candidate: Candidate,
           mean: np.ndarray | None = None, std: np.ndarray | None = None) -> LinearHead:
    """The candidate fitted on `videos` (standardised on them unless `mean` and `std` are given)."""
    if mean is None or std is None:
        mean, std = clips.standardiser(videos)
    head = fit_heads(clips.video_means(videos, mean, std), y[videos], [candidate])[candidate]
    assert head is not None, "a chosen candidate always fits the videos it was chosen on"
    return head


def _nested(data: Mapping[str, _Clips], y: np.ndarray, videos: np.ndarray, candidates: Sequence[Candidate],
            folds: int, seed: int, log: Log) -> tuple[np.ndarray, list[Candidate]]:
    """Out-of-fold predictions of the whole choose-then-fit procedure (nested CV)."""
    pred = np.full(len(videos), np.nan)
    chosen = []
    outer = _folds(len(videos), folds, seed)
    for i, (train, test) in enumerate(outer):
        best, _ = _select(data, y, videos[train], candidates, folds, seed + 1 + i)
        clips = data[best.feature_set]
        mean, std = clips.standardiser(videos[train])
        head = _refit(clips, y, videos[train], best, mean, std)
        pred[test] = clips.predict(head, videos[test], mean, std)
        chosen.append(best)
        log(f"outer fold {i + 1}/{len(outer)}: inner folds chose {best.short()}")
    return pred, chosen


# -- results ---------------------------------------------------------------------------------
@dataclass
class HeadFit:
    """One fitted head: what was chosen, its nested-CV figures, the base's on the same videos."""

    name: str  # the head's name in the model
    target: str  # "overall" (the MOS) or a rated dimension
    chosen: Candidate
    cv: DetailedAgreement
    base: DetailedAgreement | None  # None where the base does not predict this
    videos: int
    candidates: list[CandidateScore]
    outer_choices: list[Candidate]

    def to_dict(self) -> dict[str, Any]:
        return {"head": self.name, "target": self.target, "chosen": self.chosen.to_dict(), "videos": self.videos,
                "cv": self.cv.to_dict(), "base": self.base.to_dict() if self.base is not None else None,
                "outer_choices": [c.to_dict() for c in self.outer_choices]}


@dataclass(frozen=True)
class Gain:
    """The new head's SROCC minus the base's on the same videos, with a 95% interval from a
    paired bootstrap (the same videos resampled for both): whether "beats" is more than luck."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return {"srocc_gain": round(self.value, 4), "ci": [round(self.low, 4), round(self.high, 4)]}

    def describe(self) -> str:
        interval = "" if math.isnan(self.low) else f" [{self.low:+.3f}, {self.high:+.3f}]"
        return f"{self.value:+.3f}{interval}"


def srocc_gain(new: np.ndarray, base: np.ndarray, ref: np.ndarray, n_boot: int = 1000, seed: int = 0) -> Gain | None:
    """`Gain` of `new` over `base` against `ref` (None where the base's scores are constant)."""
    from scipy import stats

    if np.ptp(base) == 0 or np.ptp(new) == 0:
        return None

    def difference(a: np.ndarray, b: np.ndarray, r: np.ndarray) -> float:
        return _safe_srocc(a, r) - _safe_srocc(b, r)

    value = difference(new, base, ref)
    if n_boot < 1:
        return Gain(value, float("nan"), float("nan"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stats.bootstrap((new, base, ref), difference, paired=True, vectorized=False, n_resamples=n_boot,
                                 method="percentile", random_state=seed)
    return Gain(value, float(result.confidence_interval.low), float(result.confidence_interval.high))


@dataclass
class RatedFit:
    """What `fit_rated` measured and made. `published`: the model file was written."""

    model: Model
    path: str | None
    card_path: str | None
    chosen: Candidate
    cv: DetailedAgreement  # the new head, nested CV (pooled out-of-fold predictions)
    base_cv: DetailedAgreement  # the base model on the same videos
    candidates: list[CandidateScore]  # the choice on all videos: CV SROCC of every candidate
    published: bool
    beats_base: bool
    overall: HeadFit
    dimensions: dict[str, HeadFit] = field(default_factory=dict)
    videos: int = 0
    dropped: dict[str, str] = field(default_factory=dict)  # path -> why it was left out
    carried: str = "nothing"  # what of the base the model keeps: everything | distortions | nothing
    forced: bool = False
    gain: Gain | None = None  # new SROCC - base SROCC, paired bootstrap interval (None: constant base)


# -- the fit ---------------------------------------------------------------------------------
def fit_rated(
    dataset: Dataset,
    *,
    base: Model,
    feature_sets: Sequence[str | FeatureConfig | tuple[str, FeatureConfig]] = FEATURE_SET_NAMES,
    folds: int = 5,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    n_boot: int = 1000,
    name: str,
    version: int,
    source: Mapping[str, Any],
    out: str | os.PathLike[str] | None = None,
    force: bool = False,
    progress: bool = False,
    log: Log | None = None,
) -> RatedFit:
    """Fit heads to a rated dataset on frozen features; write the model to `out` if it beats `base`.

    `dataset`: rated videos (MOS on the dataset's scale; dimension labels where rated).
    `source`: what the ratings are (e.g. {"study": id, "name": ..., "videos": n, "raters": r}),
    kept in the model card. The primary head is named after it. Raises `NotBetterError`
    (exit 27; `.result` holds this function's result, nothing written) when the new head's
    nested-CV SROCC is not above the base's and `force` is false; with `out=None` nothing is
    written and nothing refused (`beats_base` says how it went).
    """
    log = log or (lambda _text: None)
    started = time.time()
    _check_arguments(dataset, name, version, folds, n_boot, out)
    try:
        import sklearn  # noqa: F401  (the heads are fitted with scikit-learn)
    except ImportError:
        raise ConfigError("fitting heads to ratings needs scikit-learn: pip install 'vqscope[train]'") from None
    sets = resolve_feature_sets(feature_sets, base)
    items, data, base_matrices, dropped = _load(dataset, sets, base, cache_dir, workers, progress, log)
    y = unit_targets(dataset, items)
    if np.ptp(y) == 0:
        raise ConfigError(f"all {len(y)} rated videos have the same MOS ({items[0].mos:g}): nothing to learn from")
    dims = _rated_dimensions(dataset, items, log)
    for fs in sets:
        # Where the base's own features are tried and the base keeps heads that read its
        # standardisation, the new heads read the same (fixed, so nothing is fitted to it).
        own = fs.config.to_dict() == base.features.to_dict()
        if own and _reads_base_standardisation(base, _carry_plan(base, base.features, tuple(dims))):
            data[fs.name].fixed = (base.network.feature_mean.double().numpy(),
                                   base.network.feature_std.double().numpy())
    videos = np.arange(len(items))
    base_scores = _base_video_scores(base, base_matrices)
    candidates = candidates_for(sets)
    agreement = _agreement(n_boot, seed)

    log(f"nested {folds}-fold cross-validation of {len(candidates)} candidates on {len(items)} videos")
    outer_pred, outer_choices = _nested(data, y, videos, candidates, folds, seed, log)
    chosen, scores = _select(data, y, videos, candidates, folds, seed)
    log(f"chosen on all videos: {chosen.short()}")
    head_name = _head_name(source, dataset)
    overall = HeadFit(head_name, "overall", chosen, agreement(outer_pred, y), agreement(base_scores["overall"], y),
                      len(items), scores, outer_choices)
    chosen_set = next(fs for fs in sets if fs.name == chosen.feature_set)
    clips = data[chosen_set.name]
    # One standardisation serves every head of the network: the chosen feature set's over all
    # rated videos (no label enters it), or the base's where it is fixed.
    mean, std = clips.standardiser(videos)
    heads = {head_name: _refit(clips, y, videos, chosen, mean, std)}

    dimension_fits: dict[str, HeadFit] = {}
    own = [c for c in candidates if c.feature_set == chosen.feature_set]
    for dim, target in dims.items():
        rated = videos[np.isfinite(target)]
        log(f"dimension {dim}: {len(rated)} rated videos")
        pred, choices = _nested(data, target, rated, own, folds, seed, log)
        best, dim_scores = _select(data, target, rated, own, folds, seed)
        base_dim = agreement(base_scores[dim][rated], target[rated]) if dim in base_scores else None
        dimension_fits[dim] = HeadFit(dim, dim, best, agreement(pred, target[rated]), base_dim, len(rated),
                                      dim_scores, choices)
        heads[dim] = _refit(clips, target, rated, best, mean, std)

    beats = bool(overall.cv.srocc > _finite(overall.base.srocc if overall.base is not None else float("nan")))
    plan = _carry_plan(base, chosen_set.config, tuple(dims))
    network = _network(base, chosen_set, plan, head_name, heads, mean, std)
    model = Model(ModelInfo(name, int(version)), chosen_set.config, network, grades=base.grades)
    fit = RatedFit(
        model=model, path=None, card_path=None, chosen=chosen, cv=overall.cv,
        base_cv=overall.base,  # type: ignore[arg-type]  # the base always predicts overall
        candidates=scores, published=False, beats_base=beats, overall=overall, dimensions=dimension_fits,
        videos=len(items), dropped=dropped, carried=plan, forced=bool(force and not beats),
        gain=srocc_gain(outer_pred, base_scores["overall"], y, n_boot, seed),
    )
    fit.model = _model(base, chosen_set, network, _model_video_scores(network, clips), items, fit, name, version,
                       source, dataset, sets, folds, seed, n_boot, started)
    if out is None:
        return fit
    if not beats and not force:
        error = NotBetterError(
            f"the fitted head does not beat {base.id} in cross-validation: SROCC {_figure(overall.cv, 'srocc')} "
            f"against the base's {_figure(overall.base, 'srocc')} on the same {len(items)} videos; "
            f"nothing written (--force publishes it anyway)")
        error.result = fit
        raise error
    path = Path(out)
    card = path.with_name(f"{name}-{version}.md")
    try:
        fit.path = fit.model.save(path)
        card.write_text(markdown_card(fit, base, source, dataset))
    except OSError as exc:
        raise ConfigError(f"cannot write the model file {path}: {exc.strerror or exc}", path=str(path)) from None
    fit.card_path = str(card)
    fit.published = True
    log(f"wrote {fit.path} and {card}")
    return fit


def _check_arguments(dataset: Dataset, name: str, version: int, folds: int, n_boot: int,
                     out: str | os.PathLike[str] | None) -> None:
    if not _MODEL_NAME_RE.match(str(name)):
        raise ConfigError(f"model name {name!r}: use letters, digits, '.', '_' and '-' (at most 64, "
                          f"starting with a letter or digit)")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigError(f"model version must be a whole number of at least 1, got {version!r}")
    if not 2 <= int(folds) <= 20:
        raise ConfigError(f"folds must be from 2 to 20, got {folds}")
    if n_boot < 0:
        raise ConfigError("bootstrap resamples must be 0 or more")
    if len(dataset.items) < MIN_VIDEOS:
        where = f" ({len(dataset.missing)} more are labelled but not on disk)" if dataset.missing else ""
        raise ConfigError(f"{dataset.name}: {len(dataset.items)} rated videos on disk{where}; "
                          f"fitting a head needs at least {MIN_VIDEOS}")
    if out is not None and Path(out).is_dir():
        raise ConfigError(f"--out {out} is a folder; give the model file to write", path=str(out))


def _rated_dimensions(dataset: Dataset, items: Sequence[VideoItem], log: Log) -> dict[str, np.ndarray]:
    """Targets (0-100, NaN where unrated) of each dimension rated for at least MIN_VIDEOS of the
    videos, with some spread; overall is not among them (it is the MOS)."""
    out = {}
    for dim in RATED_DIMENSIONS:
        raw = np.array([it.dimensions.get(dim, np.nan) for it in items], dtype=np.float64)
        rated = raw[np.isfinite(raw)]
        if len(rated) >= MIN_VIDEOS and np.ptp(rated) > 0:
            out[dim] = 100.0 * np.asarray(dataset.to_unit(raw), dtype=np.float64)
        elif len(rated):
            log(f"dimension {dim}: {len(rated)} rated videos, all alike or fewer than {MIN_VIDEOS}; no head")
    return out


def _agreement(n_boot: int, seed: int) -> Callable[[np.ndarray, np.ndarray], DetailedAgreement]:
    def measure(pred: np.ndarray, ref: np.ndarray) -> DetailedAgreement:
        with warnings.catch_warnings():  # a constant prediction has no correlation: NaN, said in the card
            warnings.simplefilter("ignore")
            return detailed_agreement(pred, ref, n_boot=n_boot, seed=seed)
    return measure


def _finite(value: float) -> float:
    """A figure to beat: an undefined correlation (a constant base) counts as none (0)."""
    return 0.0 if math.isnan(value) else value


def _load(dataset: Dataset, sets: Sequence[FeatureSet], base: Model, cache_dir: str | os.PathLike[str] | None,
          workers: int | None, progress: bool, log: Log
          ) -> tuple[list[VideoItem], dict[str, _Clips], list[np.ndarray], dict[str, str]]:
    """Clip features of every rated video under every feature set and the base's, from the
    feature cache (extracting what it lacks). A video missing from any is left out of all,
    so the new heads and the base are measured on the same videos."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    configs: dict[str, FeatureConfig] = {config_key(base.features): base.features}
    for fs in sets:
        for part in fs.parts:
            configs.setdefault(config_key(part), part)
    caches = {}
    failed: dict[str, str] = {}
    for key, config in configs.items():
        _check_backbones(config)
        cache = open_cache(root, config)
        label = "+".join(config.spatial + config.temporal)
        with ProgressBar(f"features ({label})", enabled=progress, log=log) as bar:
            report = ensure_features([(dataset.name, dataset)], cache, workers or default_workers(), bar)
        log(f"features ({label}): " + describe_report(report, cache.dir))
        for path, reason in report.failed.items():
            failed.setdefault(path, reason)
        caches[key] = cache
    items: list[VideoItem] = []
    matrices: dict[str, list[np.ndarray]] = {key: [] for key in configs}
    dropped: dict[str, str] = {}
    for item in dataset.items:
        got = {}
        for key, cache in caches.items():
            try:
                cached = cache.get(item.path)
            except OSError as exc:
                dropped[item.path] = f"unreadable: {exc.strerror or exc}"
                break
            if cached is None or cached.features.ndim != 2 or cached.features.shape[1] != cache.config.dim \
                    or not len(cached.features):
                dropped[item.path] = failed.get(item.path, "no features in the cache (extraction failed)")
                break
            got[key] = np.asarray(cached.features, dtype=np.float32)
        else:
            # The parts of a joined set share a clip plan, so they must agree on the clips.
            if any(len({len(got[config_key(p)]) for p in fs.parts}) != 1 for fs in sets):
                dropped[item.path] = "the parts of a joined feature set disagree on its clips"
                continue
            items.append(item)
            for key, matrix in got.items():
                matrices[key].append(matrix)
    for path, reason in list(dropped.items())[:10]:
        log(f"left out {name_once(path, reason)}")
    if len(items) < MIN_VIDEOS:
        raise ConfigError(f"{dataset.name}: only {len(items)} of {len(dataset.items)} rated videos have features "
                          f"({len(dropped)} could not be read); fitting a head needs at least {MIN_VIDEOS}")
    data = {}
    for fs in sets:  # each feature set has its own clips (a caller's set may have its own clip plan)
        keys = [config_key(p) for p in fs.parts]
        per_video = [_assemble(fs, [matrices[k][i] for k in keys]) for i in range(len(items))]
        count = np.array([len(m) for m in per_video], dtype=np.int64)
        start = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
        data[fs.name] = _Clips(np.concatenate(per_video).astype(np.float32), start, count)
    return items, data, matrices[config_key(base.features)], dropped


def _check_backbones(config: FeatureConfig) -> None:
    """Build each backbone with weights once here, so missing weights fail in one line before
    worker processes start (a worker that cannot build its backbones fails without one)."""
    for backbone in config.spatial + config.temporal:
        if get_backbone_spec(backbone).weights is not None:
            create_backbone(backbone, weights=config.weights.get(backbone, "default"))


def _base_video_scores(base: Model, matrices: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """The base model's video scores, as `Model.result_from_features` makes them: overall from
    its primary head, and each dimension it predicts; clip scores clipped to 0-100, averaged."""
    counts = np.array([len(m) for m in matrices])
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    per_head = base.predict(np.concatenate(matrices))
    names = {"overall": base.network.config.primary}
    names.update({d: d for d in DIMENSIONS if d != "overall" and d in per_head})
    return {d: np.add.reduceat(np.clip(per_head[h], 0.0, 100.0), offsets) / counts for d, h in names.items()}


def _model_video_scores(network: PredictionNetwork, clips: _Clips) -> np.ndarray:
    with torch.inference_mode():
        out = network(torch.from_numpy(clips.x), heads=[network.config.primary])[network.config.primary]
    scores = np.clip(out.double().numpy(), 0.0, 100.0)
    return np.add.reduceat(scores, clips.start) / clips.count


def _head_name(source: Mapping[str, Any], dataset: Dataset) -> str:
    """The primary head's name: the study's (or ratings file's) name, made a valid head name."""
    text = source.get("name") or (f"study_{source['study']}" if source.get("study") is not None else dataset.name)
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", str(text)).strip("_-")[:60] or "ratings"
    if not slug[0].isalpha() and slug[0] != "_":
        slug = f"study_{slug}"[:64]
    if slug in DIMENSIONS:  # a taxonomy dimension's name would make it a dimension head
        slug = f"{slug}_mos"
    assert _HEAD_NAME_RE.match(slug)
    return slug


# -- the published model ----------------------------------------------------------------------
def _carry_plan(base: Model, features: FeatureConfig, dims: Sequence[str]) -> str:
    """What of the base network the new model keeps.

    "everything": the new primary head joins the base's heads (its dimensions, composed or
    linear, and its distortion head stay as they are; overall is read from the primary head).
    "distortions": with rated dimensions, the dimensions come from the new heads, and a
    dimension of the shipped model is composed by its severity trees under the dimension's own
    name, which a linear head of that name cannot share; so the composition goes and only the
    distortion head (twelve types) stays. "nothing": other features, or a base whose heads read
    a hidden layer the new linear heads would not: the new heads alone.
    """
    config = base.network.config
    if features.to_dict() != base.features.to_dict() or config.hidden:
        return "nothing"
    if dims:
        return "distortions" if config.distortions else "nothing"
    has_dimensions = any(h in DIMENSIONS and h != "overall" for h in config.heads)
    return "everything" if has_dimensions or config.distortions else "nothing"


def _reads_base_standardisation(base: Model, plan: str) -> bool:
    """Whether a part of the base kept under `plan` reads the standardised features (linear
    heads and a linear distortion head do; boosted trees read the raw features)."""
    config = base.network.config
    linear_distortions = config.has("linear_distortions")
    if plan == "everything":
        return linear_distortions or any(h not in config.composed for h in config.heads)
    if plan == "distortions":
        return linear_distortions
    return False


def _network(base: Model, fs: FeatureSet, plan: str, primary: str, heads: Mapping[str, LinearHead],
             mean: np.ndarray, std: np.ndarray) -> PredictionNetwork:
    config = base.network.config
    names = tuple(heads)
    if plan == "everything":
        config = config.replace(heads=tuple(h for h in config.heads if h != primary) + (primary,), primary=primary)
    elif plan == "distortions":
        config = HeadConfig(in_dim=fs.config.dim, hidden=(), dropout=0.0, heads=names, primary=primary,
                            distortions=config.distortions,
                            parts=tuple(p for p in config.parts if p.role in ("distortions", "logits")))
    else:
        config = HeadConfig(in_dim=fs.config.dim, hidden=(), dropout=0.0, heads=names, primary=primary)
    network = PredictionNetwork(config)
    state = network.state_dict()
    if plan != "nothing":
        state.update({k: v for k, v in base.network.state_dict().items() if k in state})
    state["feature_mean"] = torch.as_tensor(mean, dtype=torch.float32)
    state["feature_std"] = torch.as_tensor(std, dtype=torch.float32)
    for head_name, head in heads.items():
        state[f"heads.{head_name}.weight"] = torch.as_tensor(head.weight / 100.0, dtype=torch.float32).reshape(1, -1)
        state[f"heads.{head_name}.bias"] = torch.tensor([head.bias / 100.0], dtype=torch.float32)
    network.load_state_dict(state, strict=True)
    return network.eval()


def _model(base: Model, fs: FeatureSet, network: PredictionNetwork, scores: np.ndarray, items: Sequence[VideoItem],
           fit: RatedFit, name: str, version: int, source: Mapping[str, Any], dataset: Dataset,
           sets: Sequence[FeatureSet], folds: int, seed: int, n_boot: int, started: float) -> Model:
    label = source_label(source, dataset)
    try:
        calibration: Calibration | None = Calibration.fit(
            scores,
            f"this model's own scores of the {len(items)} videos rated in {label} (the videos it was fitted on)",
            fingerprint(file_sha256(item.path) for item in items),
            grades=base.grades,
        )
    except ValueError:
        calibration = None  # every rated video scored the same: no percentile scale to speak of
    info = ModelInfo(
        name=name,
        version=int(version),
        description=_description(fit, fs, base, label),
        training={
            "vqscope": __version__,
            "date": dt.date.today().isoformat(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "trainer": "vqscope train --rated (vqscope.studies.fit)",
            "source": {k: v for k, v in source.items() if isinstance(v, (str, int, float, bool, type(None)))},
            "dataset": {"name": dataset.name, "scale": list(dataset.scale), "label_files": list(dataset.label_files),
                        "found": len(dataset.items), "missing": len(dataset.missing), "used": len(items),
                        "left_out": len(fit.dropped)},
            "feature_sets": [s.to_dict() for s in sets],
            "heads_tried": {"ridge": list(RIDGE_STRENGTHS), "pcr": list(PCR_COMPONENTS)},
            "folds": folds, "seed": seed, "n_boot": n_boot,
            "base": base.id,
            "carried_from_base": fit.carried,
            "calibration_set": "the rated videos (in-sample scores of this model)",
            "seconds": round(time.time() - started),
        },
    )
    model = Model(info, fs.config, network, calibration, grades=base.grades)
    fit.model = model
    info.card = model_card(fit, base, source, dataset)
    return model
