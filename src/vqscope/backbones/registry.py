"""One registry for every feature extractor, learned or not, behind `create_backbone(name)`.

A backbone is an `nn.Module` with `features(x) -> Tensor[N, feature_dim]`. Its spec says
which role it plays (spatial: the key frame of a clip; temporal: the clip's window of
consecutive frames) and how decoded frames must be converted for it (`FrameInput`), so the
feature stage can prepare inputs without knowing any architecture.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Literal

from torch import nn

from ..errors import UnknownBackboneError, WeightsError
from .weights import WeightsEnum, load_state_dict

Role = Literal["spatial", "temporal"]


@dataclass(frozen=True)
class FrameInput:
    """How a decoded frame becomes one input picture of a backbone.

    `short_side` None keeps the native resolution; `crop` takes a centred square of that
    side (the whole frame where it is smaller). `decimate` (luma only) samples every k-th
    pixel instead of resampling: for motion statistics it is accurate enough and costs
    nothing. "yuv" is a native-resolution crop of the decoder's own planes (full-range
    YUV 4:4:4), for statistics that must see pixels as coded. Pixels are scaled to [0, 1],
    then normalised with `mean` and `std`.
    """

    color: Literal["rgb", "luma", "yuv"] = "rgb"
    short_side: int | None = 224
    crop: int | None = 224
    decimate: bool = False
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    role: Role
    builder: Callable[..., nn.Module]
    frame_input: FrameInput
    feature_dim: int
    weights: type[WeightsEnum] | None = None
    default_weights: str | None = None
    description: str = ""
    # Raised whenever the code computing a backbone's features changes, so that cached
    # features of the old code are never read as the new one's (it is part of the feature
    # cache key, as `frame_input` is: a new crop or resolution needs no raise).
    version: int = 1


_REGISTRY: dict[str, BackboneSpec] = {}


def register(spec: BackboneSpec) -> BackboneSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"backbone {spec.name!r} registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def list_backbones(role: Role | None = None) -> list[BackboneSpec]:
    return [s for s in _REGISTRY.values() if role is None or s.role == role]


def get_backbone_spec(name: str) -> BackboneSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        choices = ", ".join(sorted(_REGISTRY))
        raise UnknownBackboneError(f"unknown backbone {name!r} (choices: {choices})") from None


def create_backbone(
    name: str,
    weights: "str | WeightsEnum | os.PathLike[str] | None" = "default",
    *,
    sha256: str = "",
) -> nn.Module:
    """Build a backbone in eval mode.

    `weights`: "default" (the spec's default set, if it has one), None (random init), the
    name of a member of the architecture's weights enum, a member itself, a local path, or a
    URL. Paths and URLs must hold a state dict in the official key layout; it is loaded
    strictly, so a checkpoint for another architecture fails loudly.
    """
    spec = get_backbone_spec(name)
    if isinstance(weights, str) and weights == "default":
        weights = spec.default_weights
    member: WeightsEnum | None = None
    if isinstance(weights, WeightsEnum):
        member = weights
    elif isinstance(weights, str) and spec.weights is not None and not _looks_like_file(weights):
        member = spec.weights.from_name(weights)
    elif isinstance(weights, str) and spec.weights is None and not _looks_like_file(weights):
        raise WeightsError(f"backbone {name!r} has no pretrained weights named {weights!r}")
    model = spec.builder()
    if member is not None:
        state = load_state_dict(member)
    elif weights is not None:
        state = load_state_dict(weights, sha256=sha256)
    else:
        state = None
    if state is not None:
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise WeightsError(f"weights do not fit backbone {name!r}: {first}") from None
        model.weights_id = member.name if member is not None else os.fspath(weights)  # type: ignore[arg-type]
    else:
        model.weights_id = None
    return model.eval()


def _looks_like_file(text: str) -> bool:
    return os.sep in text or text.startswith(("http:", "https:", "file:", "ftp:")) or text.endswith(
        (".pth", ".pt", ".pyth", ".bin", ".safetensors", ".ckpt")
    )
