"""Features: run the backbones over the clips of a video.

Decoding and clip assembly run in a background thread while the backbones run in the
caller's thread, so FFmpeg's decoder and PyTorch's kernels overlap (both release the GIL).
At most `queue_size` assembled clips wait between the two, which is what bounds memory on
long videos: a clip is a key frame and 32 small luma frames, a few MB at most.
"""

from __future__ import annotations

import math
import os
import queue
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from ..backbones import create_backbone, fuse_conv_bn, get_backbone_spec
from ..backbones.registry import BackboneSpec
from ..errors import ConfigError, CorruptVideoError
from ..sampling import ClipAssembler, ClipInputs, ClipPlan, ClipPlanConfig, ClipSpec, plan_clips
from ..video import DecodedFrame, VideoInfo, VideoReader
from .inputs import image_batch, window_batch
from .pipeline import ClipPreparer

if TYPE_CHECKING:
    from .pipeline import DecodedVideo

META_FEATURES = ("log2_short_side", "log2_long_side", "log2_fps")


@dataclass(frozen=True)
class FeatureConfig:
    """Which backbones make a clip's feature vector, with which weights, over which clip plan."""

    spatial: tuple[str, ...] = ("efficientnet_lite0_native", "frame_stats")
    temporal: tuple[str, ...] = ("motion_stats",)
    weights: Mapping[str, str] = field(default_factory=dict)  # backbone -> weights; absent = "default"
    clip_plan: ClipPlanConfig = field(default_factory=ClipPlanConfig)
    video_meta: bool = True  # append resolution and frame rate (log2) to every clip

    def __post_init__(self) -> None:
        object.__setattr__(self, "spatial", tuple(self.spatial))
        object.__setattr__(self, "temporal", tuple(self.temporal))
        object.__setattr__(self, "weights", dict(self.weights))
        for name in self.spatial:
            if get_backbone_spec(name).role != "spatial":
                raise ConfigError(f"backbone {name!r} is not a spatial backbone")
        for name in self.temporal:
            if get_backbone_spec(name).role != "temporal":
                raise ConfigError(f"backbone {name!r} is not a temporal backbone")
        if not self.spatial and not self.temporal:
            raise ConfigError("a feature configuration needs at least one backbone")

    @property
    def layout(self) -> list[tuple[str, int]]:
        """(block name, width) of each block of the feature vector, in order."""
        blocks = [(n, get_backbone_spec(n).feature_dim) for n in self.spatial + self.temporal]
        if self.video_meta:
            blocks.append(("video_meta", len(META_FEATURES)))
        return blocks

    @property
    def dim(self) -> int:
        return sum(width for _, width in self.layout)

    def to_dict(self) -> dict[str, Any]:
        return {
            "spatial": list(self.spatial),
            "temporal": list(self.temporal),
            "weights": dict(self.weights),
            "clip_plan": self.clip_plan.to_dict(),
            "video_meta": self.video_meta,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FeatureConfig":
        return cls(
            spatial=tuple(data.get("spatial", ())),
            temporal=tuple(data.get("temporal", ())),
            weights=dict(data.get("weights", {})),
            clip_plan=ClipPlanConfig(**data.get("clip_plan", {})),
            video_meta=bool(data.get("video_meta", True)),
        )


@dataclass
class ClipFeatures:
    spec: ClipSpec
    vector: np.ndarray  # float32 [feature dim]
    key_time_s: float
    window_start_s: float
    window_end_s: float
    padded: bool


@dataclass
class VideoFeatures:
    info: VideoInfo
    plan: ClipPlan
    clips: list[ClipFeatures]
    warnings: list[str] = field(default_factory=list)

    @property
    def matrix(self) -> np.ndarray:
        return np.stack([c.vector for c in self.clips]).astype(np.float32)

    @property
    def padded(self) -> bool:
        return any(c.padded for c in self.clips)


class _Stop(Exception):
    pass


class FeatureExtractor:
    """Builds the configured backbones once and extracts per-clip features for videos."""

    def __init__(
        self,
        config: FeatureConfig | None = None,
        *,
        queue_size: int = 4,
        torch_threads: int | None = None,
        batch_size: int = 4,
    ):
        self.config = config or FeatureConfig()
        # Clips per backbone call in `features_of`. Small on purpose: on a CPU, EfficientNet-
        # Lite0 costs 15.4 ms an image at batch 1, 14.5 at 2-4, but 17.5 at 8 and 20.7 at 16,
        # where a batch's activations no longer fit the caches (2-core machine, one thread).
        self.batch_size = batch_size
        self._preparer = ClipPreparer.for_config(self.config)
        self.queue_size = queue_size
        # One core stays with the decode thread (and the decoder's own threads): per-clip
        # inference is a batch of one, which gains little from a second intra-op thread but
        # loses much when that thread fights the decoder for the same core.
        self.torch_threads = torch_threads or max(1, (os.cpu_count() or 2) - 1)
        # Decoder back-end (vqscope.decode_backends): PyAV unless told otherwise, so feature
        # caches and training never depend on which machine extracted them.
        self.decoder: Any = "pyav"
        self._specs: dict[str, BackboneSpec] = {}
        self._models: dict[str, torch.nn.Module] = {}
        for name in self.config.spatial + self.config.temporal:
            spec = get_backbone_spec(name)
            model = create_backbone(name, weights=self.config.weights.get(name, "default"))
            model = fuse_conv_bn(model, inplace=True)
            if spec.frame_input.color == "rgb" and spec.role == "spatial":
                model = model.to(memory_format=torch.channels_last)
            self._specs[name] = spec
            self._models[name] = model

    def backbone(self, name: str) -> Any:
        """The module (or runtime stand-in) that computes backbone `name`'s features."""
        return self._models[name]

    def replace_backbone(self, name: str, runner: Any) -> None:
        """Run backbone `name` elsewhere (e.g. ONNX Runtime): `runner.features(x) -> Tensor`."""
        if name not in self._models:
            raise KeyError(f"backbone {name!r} is not part of this extractor")
        self._models[name] = runner

    # -- per-frame preparation (runs in the decode thread) --------------------------------
    def _prepare_key(self, frame: DecodedFrame) -> dict[str, np.ndarray]:
        return self._preparer.key(frame)

    def _prepare_window(self, frame: DecodedFrame) -> dict[str, np.ndarray]:
        return self._preparer.window(frame)

    # -- per-clip compute (runs in the caller's thread) -----------------------------------
    @torch.inference_mode()
    def clip_vector(self, clip: ClipInputs, info: VideoInfo) -> np.ndarray:
        parts = []
        for name in self.config.spatial:
            spec = self._specs[name]
            x = image_batch([clip.key[name]], spec.frame_input)
            if spec.frame_input.color == "rgb":
                x = x.contiguous(memory_format=torch.channels_last)
            parts.append(self._models[name].features(x)[0])
        for name in self.config.temporal:
            spec = self._specs[name]
            x = window_batch([clip.window[name]], spec.frame_input)
            parts.append(self._models[name].features(x)[0])
        if self.config.video_meta:
            parts.append(torch.tensor(video_meta(info), dtype=torch.float32))
        return torch.cat([p.float().flatten() for p in parts]).numpy()

    # -- batched compute over decoded videos (vqscope.features.pipeline) ----------------
    def features_of(self, videos: Sequence["DecodedVideo"], *, threads: int | None = None) -> list[VideoFeatures]:
        """All clips of all given videos through each backbone in batches (clips across videos
        batched together).

        Batches hold clips of several videos, `batch_size` at most, grouped by input shape
        (videos of different sizes give crops or windows of different sizes). Backbones are
        reached through `.features(x)` of whatever the extractor holds, so ONNX stand-ins
        installed by `replace_backbone` batch the same way. `threads`: torch intra-op threads
        for the call (default `torch_threads`).
        """
        for video in videos:
            if not video.clips:
                raise CorruptVideoError(f"{video.path}: no clip could be assembled from the stream", video.path)
        flat = [clip for video in videos for clip in video.clips]
        if not flat:
            return []
        saved = torch.get_num_threads()
        torch.set_num_threads(threads or min(saved, self.torch_threads))
        try:
            blocks = self._batched_blocks(flat)
        finally:
            torch.set_num_threads(saved)
        out: list[VideoFeatures] = []
        row = 0
        for video in videos:
            meta = np.asarray(video_meta(video.info), dtype=np.float32) if self.config.video_meta else None
            clips = []
            for inputs in video.clips:
                parts = [block[row] for block in blocks]
                if meta is not None:
                    parts.append(meta)
                clips.append(
                    ClipFeatures(
                        spec=inputs.spec,
                        vector=np.concatenate(parts).astype(np.float32, copy=False),
                        key_time_s=inputs.key_time_s,
                        window_start_s=inputs.window_start_s,
                        window_end_s=inputs.window_end_s,
                        padded=inputs.padded,
                    )
                )
                row += 1
            clips.sort(key=lambda c: c.spec.index)
            out.append(VideoFeatures(info=video.info, plan=video.plan, clips=clips, warnings=list(video.warnings)))
        return out

    @torch.inference_mode()
    def _batched_blocks(self, clips: Sequence[ClipInputs]) -> list[np.ndarray]:
        """[clips, width] float32 features of each backbone, in config order.

        Clips are batched by input shape: videos of different resolutions give different
        crop or window sizes, which cannot share a tensor.
        """
        step = max(1, int(self.batch_size))
        names = self.config.spatial + self.config.temporal
        blocks = {name: np.empty((len(clips), self._specs[name].feature_dim), dtype=np.float32) for name in names}
        # Backbones that read the same FrameInput get the same prepared arrays (frame and detail
        # statistics read one crop): each batch is converted once and goes through all of them.
        families: dict[tuple, list[str]] = {}
        for name in names:
            spec = self._specs[name]
            families.setdefault((spec.role, spec.frame_input), []).append(name)
        for (role, frame_input), members_of in families.items():
            spatial = role == "spatial"
            first = members_of[0]
            inputs = [c.key[first] if spatial else c.window[first] for c in clips]
            groups: dict[tuple, list[int]] = {}
            for i, x in enumerate(inputs):
                shape = x.shape if spatial else (len(x), *x[0].shape)
                groups.setdefault(shape, []).append(i)
            for members in groups.values():
                for start in range(0, len(members), step):
                    idx = members[start : start + step]
                    if spatial:
                        x = image_batch([inputs[i] for i in idx], frame_input)
                        if frame_input.color == "rgb":
                            x = x.contiguous(memory_format=torch.channels_last)
                    else:
                        x = window_batch([inputs[i] for i in idx], frame_input)
                    for name in members_of:
                        y = self._models[name].features(x)
                        blocks[name][idx] = y.float().reshape(len(idx), -1).numpy()
        return [blocks[name] for name in names]

    def iter_clips(self, reader: VideoReader, plan: ClipPlan, warnings: list[str]) -> Iterator[ClipInputs]:
        """Assembled clips, produced by a decode thread, consumed here."""
        assembler = ClipAssembler(plan, self._prepare_key, self._prepare_window)
        q: queue.Queue = queue.Queue(maxsize=self.queue_size)
        stop = threading.Event()
        done = object()

        def produce() -> None:
            try:
                for item in assembler.run(reader):
                    while not stop.is_set():
                        try:
                            q.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                q.put(done)
            except BaseException as exc:  # handed to the consumer, re-raised there
                q.put(exc)

        worker = threading.Thread(target=produce, name="vqscope-decode", daemon=True)
        worker.start()
        try:
            while True:
                item = q.get()
                if item is done:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while worker.is_alive():
                try:
                    q.get_nowait()
                except queue.Empty:
                    worker.join(timeout=0.05)
        warnings.extend(assembler.warnings)

    def extract(
        self,
        path: str | os.PathLike[str],
        plan_config: ClipPlanConfig | None = None,
        on_clip: Callable[[int, int], None] | None = None,
    ) -> VideoFeatures:
        """Per-clip feature vectors of one video; `on_clip(done, total)` reports progress."""
        plan_config = plan_config or self.config.clip_plan
        threads = torch.get_num_threads()
        torch.set_num_threads(min(threads, self.torch_threads))
        try:
            return self._extract(path, plan_config, on_clip)
        finally:
            torch.set_num_threads(threads)

    def _extract(
        self,
        path: str | os.PathLike[str],
        plan_config: ClipPlanConfig,
        on_clip: Callable[[int, int], None] | None,
    ) -> VideoFeatures:
        from ..decode_backends import open_reader

        with open_reader(path, self.decoder) as reader:
            info = reader.info
            plan = plan_clips(info.duration_s, info.display_fps, plan_config)
            warnings: list[str] = []
            clips: list[ClipFeatures] = []
            for inputs in self.iter_clips(reader, plan, warnings):
                clips.append(
                    ClipFeatures(
                        spec=inputs.spec,
                        vector=self.clip_vector(inputs, info),
                        key_time_s=inputs.key_time_s,
                        window_start_s=inputs.window_start_s,
                        window_end_s=inputs.window_end_s,
                        padded=inputs.padded,
                    )
                )
                if on_clip is not None:
                    on_clip(len(clips), len(plan))
            warnings.extend(reader.decode_warnings)
        if not clips:
            raise CorruptVideoError(f"{info.path}: no clip could be assembled from the stream", info.path)
        clips.sort(key=lambda c: c.spec.index)
        return VideoFeatures(info=info, plan=plan, clips=clips, warnings=warnings)


def video_meta(info: VideoInfo) -> list[float]:
    """Resolution and frame rate as features: viewers judge a 144p or 8 fps video by them."""
    short, long = sorted((max(info.width, 1), max(info.height, 1)))
    return [math.log2(short), math.log2(long), math.log2(max(info.display_fps, 1.0))]
