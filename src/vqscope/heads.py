"""Heads: the prediction network from a clip's feature vector to its scores.

Features are standardised with statistics stored in the model (fitted on its training
set), go through a shared trunk (an MLP), then through one linear output per head. A model
trained on several datasets has one head per dataset over the same trunk, as BILIVQA does,
and scores new videos with its `primary` head; later models add heads per quality dimension.
Scores are produced on a 0-100 scale. A model may also carry a distortion head: one logit per
distortion type over the same trunk, read as independent probabilities (a video can have
several distortions at once, so this is multi-label, not a softmax). That head is either linear
on the trunk or, with `distortion_trees`, gradient-boosted trees on the features themselves
(`tree_head.BoostedTrees`), which the rest of the network never sees differently.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from .taxonomy import DIMENSIONS, types_of
from .tree_head import BoostedTrees

CLAMP_Z = 6.0  # standardised features are clamped to +-CLAMP_Z
DISTORTION_PREFIX = "p:"  # outputs named "p:<type>" are distortion probabilities


@dataclass(frozen=True)
class HeadConfig:
    in_dim: int
    hidden: tuple[int, ...] = (128,)
    dropout: float = 0.2
    heads: tuple[str, ...] = ("overall",)
    primary: str = "overall"
    distortions: tuple[str, ...] = ()  # distortion types of the multi-label head (none: no head)
    # Dimension scores gated by detection: 100 - (100 - raw) * max p(type of that dimension).
    gate_dimensions: bool = False
    # (trees, nodes, depth) of a boosted-tree distortion head on the raw features, in place of
    # the linear one on the trunk; () for the linear head.
    distortion_trees: tuple[int, ...] = ()
    # (trees, nodes, depth) of a boosted-tree severity head: per type, the share of quality it
    # leaves. With it, taxonomy dimensions are composed from the types (see `forward`) instead
    # of read from linear heads.
    severity_trees: tuple[int, ...] = ()
    # (trees, nodes, depth) of a boosted-tree regressor of the overall score (as a share of 100)
    # on the features. With it, a composed overall is the mean of the composition and this
    # regression: the composition multiplies twelve detectors' errors, the regression makes
    # different ones, and their mean ranks videos better than either (cross-validation in
    # scripts/train_fine.py, reported in the model card).
    overall_trees: tuple[int, ...] = ()
    # Distortion logits pass through a per-type affine map (Platt scaling) fitted on
    # out-of-fold predictions for sources the head never saw: trees are sure of what they
    # learnt on their training content and far less right on new content, and an
    # overconfident probability both raises false alarms and, in the composition, takes
    # quality away from clean videos.
    calibrated: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "heads", tuple(self.heads))
        object.__setattr__(self, "distortions", tuple(self.distortions))
        object.__setattr__(self, "distortion_trees", tuple(int(v) for v in self.distortion_trees))
        object.__setattr__(self, "severity_trees", tuple(int(v) for v in self.severity_trees))
        object.__setattr__(self, "overall_trees", tuple(int(v) for v in self.overall_trees))
        if self.primary not in self.heads:
            raise ValueError(f"primary head {self.primary!r} is not among heads {self.heads}")
        for name in ("distortion_trees", "severity_trees"):
            shape = getattr(self, name)
            if shape and (len(shape) != 3 or not self.distortions):
                raise ValueError(f"{name} is (trees, nodes, depth) and needs distortion types")
        if self.calibrated and not self.distortions:
            raise ValueError("calibrated needs a distortion head")
        if self.overall_trees and (len(self.overall_trees) != 3 or "overall" not in self.composed):
            raise ValueError("overall_trees is (trees, nodes, depth) and needs an overall composed by a severity head")

    @property
    def composed(self) -> tuple[str, ...]:
        """Heads composed from the severity head (the taxonomy dimensions), not linear."""
        return tuple(h for h in self.heads if h in DIMENSIONS) if self.severity_trees else ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "HeadConfig":
        return cls(**dict(data))


class PredictionNetwork(nn.Module):
    """Standardise -> MLP trunk -> one linear output per head, scaled to 0-100."""

    def __init__(self, config: HeadConfig):
        super().__init__()
        self.config = config
        self.register_buffer("feature_mean", torch.zeros(config.in_dim))
        self.register_buffer("feature_std", torch.ones(config.in_dim))
        layers: list[nn.Module] = []
        width = config.in_dim
        for hidden in config.hidden:
            layers += [nn.Linear(width, hidden), nn.GELU(), nn.Dropout(config.dropout)]
            width = hidden
        self.trunk = nn.Sequential(*layers)
        self.heads = nn.ModuleDict({name: nn.Linear(width, 1) for name in config.heads if name not in config.composed})
        self.severity_head = BoostedTrees(len(config.distortions), *config.severity_trees) if config.severity_trees else None
        self.overall_head = BoostedTrees(1, *config.overall_trees) if config.overall_trees else None
        self.distortion_head: nn.Module | None = None
        if config.distortion_trees:
            self.distortion_head = BoostedTrees(len(config.distortions), *config.distortion_trees)
        elif config.distortions:
            self.distortion_head = nn.Linear(width, len(config.distortions))
        if config.calibrated:
            self.register_buffer("distortion_scale", torch.ones(len(config.distortions)))
            self.register_buffer("distortion_shift", torch.zeros(len(config.distortions)))

    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(torch.clamp(std, min=1e-6))

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        # Clamped: a video unlike any training clip (a statistic far outside its training range)
        # must not push the score to +-infinity through one feature.
        return torch.clamp((x - self.feature_mean) / self.feature_std, -CLAMP_Z, CLAMP_Z)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(self.standardise(x))

    @property
    def output_names(self) -> list[str]:
        """Every output of `forward`: score heads, then `DISTORTION_PREFIX + type` probabilities."""
        return list(self.config.heads) + [DISTORTION_PREFIX + t for t in self.config.distortions]

    def distortion_logits(self, z: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of the distortion head (calibrated where the network is): from the trunk's
        output `z`, or for a tree head from the features `x` themselves."""
        if self.distortion_head is None:
            raise KeyError("this network has no distortion head")
        if self.config.distortion_trees:
            if x is None:
                raise ValueError("a tree distortion head reads the features: pass x")
            logits = self.distortion_head(x)
        else:
            logits = self.distortion_head(z)
        if self.config.calibrated:
            logits = logits * self.distortion_scale + self.distortion_shift
        return logits

    def with_distortion_trees(self, trees: BoostedTrees) -> "PredictionNetwork":
        """This network with `trees` as its distortion head (trunk and score heads kept)."""
        return self._with_tree_head("distortion_head", trees, distortion_trees=trees.shape[1:])

    def with_severity_trees(self, trees: BoostedTrees) -> "PredictionNetwork":
        """This network with `trees` as its severity head: its taxonomy dimensions are then
        composed from the types, their linear heads (and a trunk nothing else reads) dropped."""
        config = HeadConfig(**{**self.config.to_dict(), "severity_trees": trees.shape[1:]})
        trunk_read = not config.distortion_trees or any(h not in config.composed for h in config.heads)
        return self._with_tree_head("severity_head", trees, severity_trees=trees.shape[1:],
                                    hidden=config.hidden if trunk_read else ())

    def with_overall_trees(self, trees: BoostedTrees) -> "PredictionNetwork":
        """This network with `trees` (one output: the overall score / 100) as its overall
        regressor; its composed overall becomes the mean of the two."""
        return self._with_tree_head("overall_head", trees, outputs=1, overall_trees=trees.shape[1:])

    def without_overall_trees(self) -> "PredictionNetwork":
        """This network with its overall regressor dropped: overall is the composition alone
        (what a model card compares the shipped overall against)."""
        return self._rebuilt({}, overall_trees=())

    def with_distortion_calibration(self, scale: Sequence[float], shift: Sequence[float]) -> "PredictionNetwork":
        """This network with its distortion logits mapped to `scale * logit + shift` per type
        (`train.fit_logit_calibration`); scale and shift of ones and zeros undo it."""
        n = len(self.config.distortions)
        state = {"distortion_scale": torch.as_tensor(scale, dtype=torch.float32).reshape(-1),
                 "distortion_shift": torch.as_tensor(shift, dtype=torch.float32).reshape(-1)}
        if any(v.numel() != n for v in state.values()):
            raise ValueError(f"a calibration needs {n} scales and shifts, one per distortion type")
        if not (torch.isfinite(state["distortion_scale"]).all() and torch.isfinite(state["distortion_shift"]).all()
                and (state["distortion_scale"] > 0).all()):
            raise ValueError("calibration scales must be positive and finite (the map must keep each type's ranking)")
        return self._rebuilt(state, calibrated=True)

    def _with_tree_head(self, attribute: str, trees: BoostedTrees, outputs: int | None = None,
                        **changes: Any) -> "PredictionNetwork":
        """A new network with `changes` to the config and `trees` (`outputs` of them, one per
        distortion type unless given) as module `attribute`."""
        outputs = len(self.config.distortions) if outputs is None else outputs
        if trees.outputs != outputs:
            raise ValueError(f"{trees.outputs} tree outputs where {attribute} has {outputs}")
        return self._rebuilt({f"{attribute}.{k}": v for k, v in trees.state_dict().items()}, **changes)

    def _rebuilt(self, new_state: dict[str, torch.Tensor], **changes: Any) -> "PredictionNetwork":
        """A new network with `changes` to the config, the weights in `new_state`, and every
        other weight of this one that the new network still has."""
        network = PredictionNetwork(HeadConfig(**{**self.config.to_dict(), **changes}))
        wanted = network.state_dict()
        kept = {k: v for k, v in self.state_dict().items() if k in wanted and k not in new_state}
        kept.update(new_state)
        network.load_state_dict(kept, strict=True)
        return network.train(self.training)

    def _type_columns(self, head: str) -> list[int]:
        """Distortion-head columns of the types of taxonomy dimension `head` (every type for
        overall; none for dataset heads)."""
        types = types_of(head) if head in DIMENSIONS else ()
        return [i for i, t in enumerate(self.config.distortions) if t in types]

    def _gate_columns(self, head: str) -> list[int]:
        """Distortion-head columns that gate score head `head` (none for dataset heads)."""
        if not (self.config.gate_dimensions and self.config.distortions):
            return []
        return self._type_columns(head)

    def forward(self, x: torch.Tensor, heads: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """x [N, in_dim] -> {head: [N] scores on 0-100, "p:type": [N] probabilities}.

        With `gate_dimensions`, a dimension's score only falls below 100 as far as one of its
        distortion types is detected. Without the gate, a clean video's dimension scores
        scatter a few points below 100 from content alone, and that scatter, not the
        distortions, would decide how clean videos rank against mildly distorted ones.

        With a severity head, a taxonomy dimension is composed the way its training target is
        built: 100 times the product, over its types (all twelve for overall), of
        1 - (1 - k) * p, k being the share of quality the type would leave (severity head,
        clamped to [0, 1]) and p the probability that it is there (distortion head). With an
        overall regressor, overall is the mean of that product and the regression.
        """
        z = self.embed(x)
        names = heads if heads is not None else self.output_names
        out: dict[str, torch.Tensor] = {}
        probs = None
        kept = None
        for name in names:
            if name in self.config.composed:
                if probs is None:
                    probs = torch.sigmoid(self.distortion_logits(z, x))
                if kept is None:
                    # A type takes away what its severity head says, as far as it is detected;
                    # a dimension keeps the product of what its types leave.
                    assert self.severity_head is not None
                    kept = 1.0 - (1.0 - self.severity_head(x).clamp(0.0, 1.0)) * probs
                out[name] = kept[:, self._type_columns(name)].prod(dim=1) * 100.0
                if name == "overall" and self.overall_head is not None:
                    regressed = self.overall_head(x)[:, 0].clamp(0.0, 1.0) * 100.0
                    out[name] = 0.5 * (out[name] + regressed)
                continue
            columns = [] if name.startswith(DISTORTION_PREFIX) else self._gate_columns(name)
            if (name.startswith(DISTORTION_PREFIX) or columns) and probs is None:
                probs = torch.sigmoid(self.distortion_logits(z, x))
            if name.startswith(DISTORTION_PREFIX):
                out[name] = probs[:, self.config.distortions.index(name[len(DISTORTION_PREFIX):])]
                continue
            raw = self.heads[name](z).squeeze(-1) * 100.0
            if columns:
                gate = probs[:, columns].max(dim=1).values
                raw = 100.0 - (100.0 - raw) * gate
            out[name] = raw
        return out

