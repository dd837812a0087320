"""The kinds of part a prediction network can have after its trunk (see heads/config.py).

Each part is a small `nn.Module` that lives under a fixed attribute of the network, so its
weights sit in the model file under stable names (`distortion_head.*`, `severity_head.*`, ...):

- a distortion head turns the trunk's output `z` (or the raw features `x`) into one logit per
  distortion type;
- a logit map changes those logits (Platt scaling);
- a score part reads the probabilities and changes or makes score outputs (a gate on linear
  dimension heads, a composition of the dimensions from the types, a blend of the overall).

A new kind of head is a class here with its kind in `config.PART_KINDS`.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..taxonomy import DIMENSIONS, types_of
from .config import HeadConfig, Part
from .trees import BoostedTrees


def type_columns(config: HeadConfig, head: str) -> list[int]:
    """Distortion-head columns of the types of taxonomy dimension `head` (every type for
    overall; none for dataset heads)."""
    types = types_of(head) if head in DIMENSIONS else ()
    return [i for i, t in enumerate(config.distortions) if t in types]


class LinearDistortions(nn.Linear):
    """One logit per distortion type, linear on the trunk."""

    attribute = "distortion_head"

    def logits(self, z: torch.Tensor, x: torch.Tensor | None) -> torch.Tensor:
        return self(z)


class TreeDistortions(BoostedTrees):
    """One boosted-tree ensemble per distortion type on the raw features (heads/trees.py): on
    tables of hand-made statistics, trees find the thresholds that tell a distortion from
    content better than a linear head does (the default model's cross-validation measures it)."""

    attribute = "distortion_head"

    def logits(self, z: torch.Tensor, x: torch.Tensor | None) -> torch.Tensor:
        if x is None:
            raise ValueError("a tree distortion head reads the features: pass x")
        return self(x)


class PlattScaling(nn.Module):
    """Distortion logits mapped to `scale * logit + shift` per type, fitted on out-of-fold
    predictions for sources the head never saw (`train.fit_logit_calibration`): trees are sure
    of what they learnt on their training content and far less right on new content, and an
    overconfident probability both raises false alarms and, in a composition, takes quality
    away from clean videos."""

    attribute = "distortion_calibration"

    def __init__(self, types: int):
        super().__init__()
        self.register_buffer("scale", torch.ones(types))
        self.register_buffer("shift", torch.zeros(types))

    @classmethod
    def fitted(cls, scale: Sequence[float], shift: Sequence[float]) -> "PlattScaling":
        scale_t = torch.as_tensor(scale, dtype=torch.float32).reshape(-1)
        shift_t = torch.as_tensor(shift, dtype=torch.float32).reshape(-1)
        if scale_t.numel() != shift_t.numel():
            raise ValueError("a calibration needs as many shifts as scales")
        if not (torch.isfinite(scale_t).all() and torch.isfinite(shift_t).all() and (scale_t > 0).all()):
            raise ValueError("calibration scales must be positive and finite (the map must keep each type's ranking)")
        part = cls(scale_t.numel())
        with torch.no_grad():
            part.scale.copy_(scale_t)
            part.shift.copy_(shift_t)
        return part

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits * self.scale + self.shift


class DetectionGate(nn.Module):
    """A linear dimension head's score falls below 100 only as far as one of its types is
    detected: 100 - (100 - raw) * max p(type of that dimension). Without the gate, a clean
    video's dimension scores scatter a few points below 100 from content alone, and that
    scatter, not the distortions, would decide how clean videos rank against mildly distorted
    ones."""

    attribute = "detection_gate"

    def __init__(self, config: HeadConfig):
        super().__init__()
        self.columns = {h: type_columns(config, h) for h in config.heads if h not in config.composed}

    def apply(self, out: dict[str, torch.Tensor], x: torch.Tensor, probs: torch.Tensor,
              wanted: Sequence[str]) -> None:
        for name, columns in self.columns.items():
            if columns and name in out:
                gate = probs[:, columns].max(dim=1).values
                out[name] = 100.0 - (100.0 - out[name]) * gate


class SeverityComposition(BoostedTrees):
    """Taxonomy dimensions composed the way their training target is built: 100 times the
    product, over the dimension's types (all twelve for overall), of 1 - (1 - k) * p, k being
    the share of quality the type would leave (this boosted-tree regressor, clamped to [0, 1])
    and p the probability that it is there (the distortion head)."""

    attribute = "severity_head"

    def __init__(self, config: HeadConfig, trees: int, nodes: int, depth: int):
        super().__init__(len(config.distortions), trees, nodes, depth)
        self.columns = {h: type_columns(config, h) for h in config.composed}

    def apply(self, out: dict[str, torch.Tensor], x: torch.Tensor, probs: torch.Tensor,
              wanted: Sequence[str]) -> None:
        names = [h for h in self.columns if h in wanted]
        if not names:
            return
        kept = 1.0 - (1.0 - self(x).clamp(0.0, 1.0)) * probs
        for name in names:
            out[name] = kept[:, self.columns[name]].prod(dim=1) * 100.0


class OverallRegression(BoostedTrees):
    """A boosted-tree regressor of the overall score (as a share of 100) on the features; the
    composed overall becomes the mean of the composition and this regression. The composition
    multiplies twelve detectors' errors, the regression makes different ones, and their mean
    ranks videos better than either (the default model's cross-validation, in its card)."""

    attribute = "overall_head"

    def __init__(self, trees: int, nodes: int, depth: int):
        super().__init__(1, trees, nodes, depth)

    def apply(self, out: dict[str, torch.Tensor], x: torch.Tensor, probs: torch.Tensor,
              wanted: Sequence[str]) -> None:
        if "overall" in out:
            regressed = self(x)[:, 0].clamp(0.0, 1.0) * 100.0
            out["overall"] = 0.5 * (out["overall"] + regressed)


PART_CLASSES: dict[str, type[nn.Module]] = {
    "linear_distortions": LinearDistortions,
    "tree_distortions": TreeDistortions,
    "platt_scaling": PlattScaling,
    "detection_gate": DetectionGate,
    "severity_composition": SeverityComposition,
    "overall_regression": OverallRegression,
}


def build_part(part: Part, config: HeadConfig, width: int) -> nn.Module:
    """A new (untrained) module of `part` for a network of `config` whose trunk is `width` wide."""
    types = len(config.distortions)
    if part.kind == "linear_distortions":
        return LinearDistortions(width, types)
    if part.kind == "tree_distortions":
        return TreeDistortions(types, *part.shape)
    if part.kind == "platt_scaling":
        return PlattScaling(types)
    if part.kind == "detection_gate":
        return DetectionGate(config)
    if part.kind == "severity_composition":
        return SeverityComposition(config, *part.shape)
    if part.kind == "overall_regression":
        return OverallRegression(*part.shape)
    raise ValueError(f"unknown head part {part.kind!r}")


def part_of(kind: str, module: nn.Module) -> Part:
    """The `Part` that a fitted module (boosted trees of `fit_boosted_trees`, a `PlattScaling`)
    fills as part `kind`."""
    shape = tuple(module.shape[1:]) if isinstance(module, BoostedTrees) else ()
    return Part(kind, shape)
