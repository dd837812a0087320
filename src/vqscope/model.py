"""A Model: backbone configuration + prediction network + calibration, in one versioned file.

The file is a safetensors file: the prediction network's tensors, and in its header a JSON
document with everything else (format version, name and version, feature configuration with
backbone names and weight hashes, head configuration, calibration table, training
metadata, a model-card summary). Backbone weights are not copied in: they are named and
hash-pinned, and loaded from their own source, which keeps shipped models at a few MB.
Like VMAF's model files, a model is immutable once published: a retrained model is a new
version.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .backbones import get_backbone_spec
from .calibration import Calibration, DimensionGrade, GradeScale, cap_grade, dimension_scales, grade_dimension
from .describe import THRESHOLD, OverallParts, SizeNote, attach_dimension_descriptions, describe
from .errors import CorruptVideoError, ModelFileError
from .features import FeatureConfig, FeatureExtractor, VideoFeatures
from .features.extractor import META_FEATURES
from .heads import DISTORTION_PREFIX, HeadConfig, PredictionNetwork
from .result import ClipResult, DimensionScore, Result
from .taxonomy import DIMENSIONS, types_of

FORMAT = "vqscope-model"
# 2: the head is a list of parts (heads/config.py). Format 1 files, with one flag per kind of
# head, are still read; a vqscope that reads only format 1 says a format 2 file is too new.
FORMAT_VERSION = 2
_META_KEY = "vqscope"
# A video is "far smaller" than the training videos when its short side lies more than this
# many standard deviations (of the training videos' log2 short side) below their mean, and
# also less than half their typical short side: both, so that neither a model trained on one
# size (no spread) nor one trained on many (a wide spread) warns about sizes it has seen.
_SIZE_SDS = 3.0
_SIZE_MIN_OCTAVES = 1.0


@dataclass
class ModelInfo:
    """Identity and provenance of a model: what `vqscope models` lists."""

    name: str
    version: int
    description: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"


class Model:
    """Score videos: features -> heads -> calibration -> Result."""

    def __init__(
        self,
        info: ModelInfo,
        features: FeatureConfig,
        network: PredictionNetwork,
        calibration: Calibration | None = None,
        grades: GradeScale | None = None,
        path: str | None = None,
    ):
        if network.config.in_dim != features.dim:
            raise ModelFileError(
                f"{info.id}: head expects {network.config.in_dim} features, backbones give {features.dim}"
            )
        self.info = info
        self.features = features
        self.network = network.eval()
        self.calibration = calibration
        self.grades = calibration.grades if calibration is not None else (grades or GradeScale())
        # What the taxonomy dimensions' scores mean, read from the training record the file holds
        # (calibration.dimension_scales); dimensions without a scale are graded as overall is.
        self.dimension_grades: dict[str, GradeScale] = dimension_scales(info.training, network.config.heads)
        self.path = path
        self._extractor: FeatureExtractor | None = None
        # Set by vqscope.export.use_onnx: the heads run elsewhere than in PyTorch.
        self.runtime = "torch"
        self.head_runtime: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def extractor(self) -> FeatureExtractor:
        """Backbones are built on first use: listing or inspecting a model stays cheap."""
        if self._extractor is None:
            self._extractor = FeatureExtractor(self.features)
        return self._extractor

    def grade(self, score: float) -> str:
        """Grade of a raw score, read on the scale's basis (raw score or scaled score)."""
        if self.grades.basis == "scaled" and self.calibration is not None:
            return self.grades.grade(self.calibration.scaled(score))
        return self.grades.grade(score)

    def grade_dimension(self, name: str, score: float, distortions: Mapping[str, float]) -> DimensionGrade:
        """A dimension's grade: on its own scale where the model has one, else as the overall score
        is graded, and capped at the middle grade while a type of it is likely in `distortions`
        (the same result's probabilities; calibration.grade_dimension says why). Overall is
        graded on the model's overall scale alone: it is the result's grade, possibly fitted to
        raters by a study, and it already counts every type's loss."""
        if name == "overall" or name not in DIMENSIONS:
            grade = self.grade(score)
            return DimensionGrade(grade, grade)
        likely = [t for t in types_of(name) if distortions.get(t, 0.0) >= THRESHOLD]
        scale = self.dimension_grades.get(name)
        if scale is not None:
            return grade_dimension(score, scale, likely)
        return cap_grade(self.grade(score), self.grades.labels, likely)

    def size_note(self, width: int, height: int) -> SizeNote | None:
        """A note where a video is far smaller than the videos the model was trained on.

        Read from what the model holds: the mean and spread of the training clips' log2 short
        side, kept with the feature normalisation (the `video_meta` features). Below them, the
        statistics of fine detail lie outside anything the heads were fitted on, and boosted
        trees answer as for the nearest training region (the vqscope-lite@7 card: damage the
        corpus never showed at that size goes unnamed). None for models without those features.
        """
        if not self.features.video_meta or min(width, height) <= 0:
            return None
        offsets = dict(zip([n for n, _ in self.features.layout], np.cumsum([0] + [w for _, w in self.features.layout])))
        column = int(offsets["video_meta"]) + META_FEATURES.index("log2_short_side")
        mean = float(self.network.feature_mean[column])
        spread = max(_SIZE_SDS * float(self.network.feature_std[column]), _SIZE_MIN_OCTAVES)
        if np.log2(min(width, height)) >= mean - spread:
            return None
        return SizeNote(width, height, trained_short_side=float(2.0**mean), lowest_usual=float(2.0 ** (mean - spread)))

    def overall_parts(self, clip_dims: Mapping[str, np.ndarray]) -> OverallParts | None:
        """How this model made the overall score of these clips (describe.OverallParts).

        A composed overall is the product of the types' shares, that is the product of the five
        dimensions' (each type belongs to one), and with an overall regressor the mean of that
        and the regression, so each part can be read back from the clip scores; a model whose
        overall is a head of its own gets empty parts. None where it cannot be read back (a
        composed overall without every dimension among the heads).
        """
        config = self.network.config
        if config.primary != "overall" or "overall" not in config.composed:
            return OverallParts()
        dims = [d for d in DIMENSIONS if d != "overall"]
        if not all(d in clip_dims for d in dims):
            return None
        composition = np.prod([clip_dims[d] / 100.0 for d in dims], axis=0) * 100.0
        if not config.has("overall_regression"):
            return OverallParts(composition=float(np.mean(composition)))
        regression = 2.0 * clip_dims["overall"] - composition
        return OverallParts(composition=float(np.mean(composition)), regression=float(np.mean(regression)))

    def with_calibration(
        self, calibration: Calibration, *, version: int | None = None, name: str | None = None
    ) -> "Model":
        """The same network under a new calibration (a new model file, not an edit of this one).

        Model files are immutable once published, so recalibrating makes a new model; giving
        it a new version (or name) keeps `name@version` pointing at one scale only.
        """
        return self._successor(calibration, None, version, name)

    def with_grades(
        self, scale: GradeScale, *, version: int | None = None, name: str | None = None
    ) -> "Model":
        """The same network and percentile table under new grade thresholds (a new model file).

        Grades set by a rating study (vqscope.studies.thresholds) change what a score is called,
        not the score, so only the scale is replaced; as with `with_calibration`, the result is
        a new model, best given a new version. A scale read on the scaled score needs the
        percentile table: without one it would silently grade the raw score.
        """
        if scale.basis == "scaled" and self.calibration is None:
            raise ValueError(f"{self.id} has no percentile table, so it cannot grade on the scaled score")
        calibration = replace(self.calibration, grades=scale) if self.calibration is not None else None
        return self._successor(calibration, scale, version, name)

    def _successor(self, calibration: Calibration | None, grades: GradeScale | None, version: int | None,
                   name: str | None) -> "Model":
        """This network under another scale, as a new model (same name and version unless given)."""
        info = ModelInfo(
            name=name or self.info.name,
            version=self.info.version if version is None else int(version),
            description=self.info.description,
            training=dict(self.info.training),
            card=dict(self.info.card),
        )
        model = Model(info, self.features, self.network, calibration, grades)
        model._extractor = self._extractor  # backbones already built are reused
        return model

    # -- scoring -----------------------------------------------------------------------
    @torch.inference_mode()
    def predict(self, matrix: np.ndarray) -> dict[str, np.ndarray]:
        """Per-clip scores of every head for a [clips, features] matrix."""
        if self.head_runtime is not None:
            return self.head_runtime(matrix)
        x = torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32))
        return {k: v.numpy().astype(np.float64) for k, v in self.network(x).items()}

    def score(
        self,
        path: str | os.PathLike[str],
        *,
        max_clips: int | None = None,
        clip_seconds: float | None = None,
        on_clip: Callable[[int, int], None] | None = None,
    ) -> Result:
        """Score one video file. Raises a `VQScopeError` subclass for unusable input."""
        started = time.perf_counter()
        plan = self.features.clip_plan.with_options(clip_seconds, max_clips)
        video_features = self.extractor.extract(path, plan, on_clip=on_clip)
        result = self.result_from_features(video_features, os.fspath(path))
        result.elapsed_s = time.perf_counter() - started
        return result

    def result_from_features(self, vf: VideoFeatures, video: str) -> Result:
        config = self.network.config
        matrix = vf.matrix
        if not np.isfinite(matrix).all():
            # No statistic is known to do this on decodable frames; if one ever does, a score
            # of NaN must not reach the results.
            raise CorruptVideoError(f"{video}: the decoded frames gave non-finite features; no score", video)
        per_head = self.predict(matrix)
        # The primary head is "overall"; a dataset-trained model's primary head (its dataset's
        # MOS) stands in for it. Other dimensions appear only where the model has their heads.
        clip_dims = {d: np.clip(per_head[d], 0.0, 100.0) for d in DIMENSIONS if d != "overall" and d in per_head}
        clip_dims["overall"] = np.clip(per_head[config.primary], 0.0, 100.0)
        clip_probs = {t: np.clip(per_head[DISTORTION_PREFIX + t], 0.0, 1.0) for t in config.distortions}
        clips = self._clip_results(vf, clip_dims, clip_probs)
        score = float(np.mean(clip_dims["overall"]))
        scaled = self.calibration.scaled(score) if self.calibration is not None else None
        grade = self.grade(score)
        distortions = {t: pool_clip_probabilities(p) for t, p in clip_probs.items()}
        graded = {d: self.grade_dimension(d, float(np.mean(v)), distortions) for d, v in clip_dims.items()}
        dimensions = {d: DimensionScore(float(np.mean(v)), graded[d].grade) for d, v in clip_dims.items()}
        dimensions["overall"] = DimensionScore(score, grade)
        info = vf.info
        size = self.size_note(info.width, info.height)
        attach_dimension_descriptions(dimensions, distortions, clips, by_score={d: g.by_score for d, g in graded.items()},
                                      size=size)
        description = describe(grade, score, scaled, clips, dimensions, distortions, vf.padded,
                               overall=self.overall_parts(clip_dims), size=size, calibration=self.calibration)
        return Result(
            video=video,
            model=self.id,
            duration_s=info.duration_s,
            width=info.width,
            height=info.height,
            fps=info.fps,
            score=score,
            scaled_score=scaled,
            grade=grade,
            dimensions=dimensions,
            distortions=distortions,
            description=description,
            clips=clips,
            padded=vf.padded,
            warnings=list(vf.warnings) + ([size.warning()] if size is not None else []),
            video_info={
                "codec": info.codec,
                "container": info.container,
                "pix_fmt": info.pix_fmt,
                "bit_depth": info.bit_depth,
                "rotation": info.rotation,
                "variable_frame_rate": info.variable_frame_rate,
                "clips_planned": vf.plan.total_clips,
                "clips_scored": len(clips),
            },
        )

    def _clip_results(self, vf: VideoFeatures, clip_dims: Mapping[str, np.ndarray],
                      clip_probs: Mapping[str, np.ndarray]) -> list[ClipResult]:
        """One ClipResult per clip, its dimensions graded with its own probabilities (a clip is
        not "excellent" in blur while the same clip says motion blur is likely)."""
        clips = []
        for i, cf in enumerate(vf.clips):
            probs = {t: float(p[i]) for t, p in clip_probs.items()}
            clips.append(
                ClipResult(
                    index=cf.spec.index,
                    start_s=cf.spec.start_s,
                    end_s=cf.spec.end_s,
                    score=float(clip_dims["overall"][i]),
                    key_time_s=cf.key_time_s,
                    padded=cf.padded,
                    dimensions={d: DimensionScore(float(v[i]), self.grade_dimension(d, float(v[i]), probs).grade)
                                for d, v in clip_dims.items()},
                    distortions=probs,
                )
            )
        return clips

    # -- persistence -----------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": self.info.name,
            "version": self.info.version,
            "description": self.info.description,
            "features": self.features.to_dict(),
            "backbone_weights": _backbone_weights(self.features),
            "head": self.network.config.to_dict(),
            "calibration": self.calibration.to_dict() if self.calibration is not None else None,
            "grades": self.grades.to_dict(),
            "training": self.info.training,
            "card": self.info.card,
        }

    def save(self, path: str | os.PathLike[str]) -> str:
        path = os.fspath(path)
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.network.state_dict().items()}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, path, metadata={_META_KEY: json.dumps(self.metadata())})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Model":
        path = os.fspath(path)
        meta, tensors = read_model_file(path)
        try:
            features = FeatureConfig.from_dict(meta["features"])
            head = HeadConfig.from_dict(meta["head"])
            network = PredictionNetwork(head)
            network.load_state_dict(tensors, strict=True)
            calibration = Calibration.from_dict(meta["calibration"]) if meta.get("calibration") else None
            grades = GradeScale.from_dict(meta["grades"]) if meta.get("grades") else None
            info = ModelInfo(
                name=str(meta["name"]),
                version=int(meta["version"]),
                description=str(meta.get("description", "")),
                training=dict(meta.get("training") or {}),
                card=dict(meta.get("card") or {}),
            )
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ModelFileError(f"{path}: not a valid vqscope model ({type(exc).__name__}: {exc})", path) from None
        return cls(info, features, network, calibration, grades, path=path)


def pool_clip_probabilities(p: np.ndarray) -> float:
    """A video's probability of a distortion from its clips': the mean of the top third.

    The plain mean would hide a distortion that hits a third of the video; the maximum would
    let one uncertain clip of fifty decide. (The trained model's card reports AUC with this.)
    """
    top = np.sort(np.asarray(p, dtype=np.float64))[::-1]
    return float(top[: max(1, int(np.ceil(len(top) / 3)))].mean())


def read_model_file(path: str, tensors: bool = True) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Header metadata (and tensors) of a model file, with format checks."""
    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: model file not found", path)
    try:
        with safe_open(path, framework="pt") as fh:
            raw = (fh.metadata() or {}).get(_META_KEY)
            data = {k: fh.get_tensor(k) for k in fh.keys()} if tensors else {}
    except Exception as exc:
        raise ModelFileError(f"{path}: not a safetensors model file ({type(exc).__name__})", path) from None
    if raw is None:
        raise ModelFileError(f"{path}: safetensors file without vqscope metadata", path)
    meta = json.loads(raw)
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a vqscope model file", path)
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model format {meta.get('format_version')} is newer than this vqscope reads ({FORMAT_VERSION})",
            path,
        )
    return meta, data


def _backbone_weights(features: FeatureConfig) -> dict[str, Any]:
    """For each backbone: which weights, and the hash they must have."""
    out: dict[str, Any] = {}
    for name in features.spatial + features.temporal:
        spec = get_backbone_spec(name)
        chosen = features.weights.get(name, "default")
        if chosen == "default":
            chosen = spec.default_weights
        entry: dict[str, Any] = {"weights": chosen}
        if spec.weights is not None and chosen is not None:
            try:
                entry["sha256"] = spec.weights.from_name(str(chosen)).weights.sha256
            except Exception:
                pass
        out[name] = entry
    return out


def model_card_summary(meta: Mapping[str, Any]) -> str:
    card = meta.get("card") or {}
    return str(card.get("summary", meta.get("description", "")))
