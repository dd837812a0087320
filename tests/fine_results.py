"""Fine-grained Results (six dimensions, twelve distortions, per clip) for the tests of
`--dimensions`, `ask`, `describe` and `describe --llm`: they test the Result contract, not a
trained model. `fine_model()` is a real Model (weight-free backbones) whose results are made
fine-grained by `enrich`, so the CLI and service paths run as they do with a model whose heads
fill every dimension."""

from __future__ import annotations

from dataclasses import replace

import torch

from vqscope.describe import describe
from vqscope.features import FeatureConfig
from vqscope.heads import HeadConfig, PredictionNetwork
from vqscope.model import Model, ModelInfo
from vqscope.result import ClipResult, DimensionScore, Result
from vqscope.taxonomy import DIMENSIONS, DISTORTION_TYPES


def _grade(score: float) -> str:
    return ("bad", "poor", "fair", "good", "excellent")[min(4, int(score // 20))]


def _clip_values(i: int) -> tuple[dict[str, float], dict[str, float]]:
    """Clip i: motion blur in clips 2-4 (2.0-5.0 s for 1-s clips), compression throughout."""
    blurred = 2 <= i <= 4
    dims = {"color": 72.0, "noise": 55.0, "artifact": 45.0, "blur": 60.0, "temporal": 58.0, "overall": 50.0}
    if blurred:
        dims["blur"], dims["overall"] = 25.0, 38.0
    probs = {t: 0.05 for t in DISTORTION_TYPES}
    probs.update(compression=0.7 + 0.02 * i, motion_blur=0.9 if blurred else 0.1, defocus_blur=0.2, noise=0.3)
    return dims, probs


def enrich(result: Result) -> Result:
    """The same clips with six dimension scores and twelve probabilities each (see _clip_values)."""
    clips = []
    for c in result.clips:
        dims, probs = _clip_values(c.index)
        clips.append(replace(c, score=dims["overall"], distortions=probs,
                             dimensions={k: DimensionScore(v, _grade(v)) for k, v in dims.items()}))
    n = len(clips)
    video_dims = {k: DimensionScore(sum(c.dimensions[k].score for c in clips) / n, "") for k in DIMENSIONS}
    for d in video_dims.values():
        d.grade = _grade(d.score)
    probs = {t: sum(c.distortions[t] for c in clips) / n for t in DISTORTION_TYPES}
    if n >= 5:
        probs["motion_blur"] = 0.86
    score = video_dims["overall"].score
    return replace(result, score=score, grade=_grade(score), dimensions=video_dims, distortions=probs, clips=clips,
                   description=describe(_grade(score), score, result.scaled_score, clips, video_dims, probs))


def fine_result(clips: int = 6, video: str = "clip.mp4") -> Result:
    """Six 1-s clips: motion blur p=0.86 at 2.0-5.0 s, compression p~0.75 throughout, colour good."""
    return enrich(overall_only_result(clips, video))


def overall_only_result(clips: int = 3, video: str = "clip.mp4") -> Result:
    """What the shipped single-head model reports: "overall" only, no distortions."""
    out = [ClipResult(index=i, start_s=float(i), end_s=float(i + 1), score=40.0, key_time_s=float(i) + 0.5,
                      dimensions={"overall": DimensionScore(40.0, "fair")}) for i in range(clips)]
    return Result(video=video, model="lite@1", duration_s=float(clips), width=128, height=72, fps=24.0,
                  score=40.0, scaled_score=30.0, grade="fair", dimensions={"overall": DimensionScore(40.0, "fair")},
                  distortions={}, description="Fair overall quality.", clips=out)


class FineModel(Model):
    """A real model with dimension heads and a distortion head; its results are `enrich`ed."""

    def result_from_features(self, vf, video):  # noqa: ANN001
        return enrich(super().result_from_features(vf, video))


def fine_model(name: str = "fine") -> FineModel:
    torch.manual_seed(0)
    features = FeatureConfig(spatial=("frame_stats",), temporal=("motion_stats",))
    network = PredictionNetwork(HeadConfig(in_dim=features.dim, hidden=(), heads=DIMENSIONS, primary="overall",
                                           distortions=DISTORTION_TYPES))
    return FineModel(ModelInfo(name, 1, "unit-test fine-grained model"), features, network)
