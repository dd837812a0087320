"""The prediction network: from a clip's feature vector to its scores.

Features are standardised with statistics stored in the model (fitted on its training set), go
through a shared trunk (an MLP), then through one linear output per score head. A model trained
on several datasets has one head per dataset over the same trunk, as BILIVQA does, and scores
new videos with its `primary` head; later models add heads per quality dimension. Scores are on
a 0-100 scale. What follows the trunk beyond the linear heads is made of parts (heads/config.py,
heads/parts.py): a distortion head (one logit per type, read as independent probabilities: a
video can have several distortions at once, so multi-label, not a softmax), maps of its logits,
and score parts that read the probabilities.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from .config import HeadConfig, Part
from .parts import PART_CLASSES, build_part, part_of
from .trees import BoostedTrees

CLAMP_Z = 6.0  # standardised features are clamped to +-CLAMP_Z
DISTORTION_PREFIX = "p:"  # outputs named "p:<type>" are distortion probabilities
# Weights of the flag era's Platt scaling, stored on the network itself.
_LEGACY_KEYS = {"distortion_scale": "distortion_calibration.scale", "distortion_shift": "distortion_calibration.shift"}


class PredictionNetwork(nn.Module):
    """Standardise -> MLP trunk -> one linear output per head, scaled to 0-100, then the parts."""

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
        # Built after the trunk and heads: their random initial weights, drawn first, stay what a
        # seed gave them before parts existed.
        self.logit_maps: list[str] = []
        self.score_parts: list[str] = []
        for part in config.parts:
            module = build_part(part, config, width)
            self.add_module(module.attribute, module)
            if part.role == "logits":
                self.logit_maps.append(module.attribute)
            elif part.role == "scores":
                self.score_parts.append(module.attribute)
        if not any(p.role == "distortions" for p in config.parts):
            self.distortion_head: nn.Module | None = None

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

    def distortion_logits(self, z: torch.Tensor | None, x: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of the distortion head after its logit maps: from the trunk's output `z`, or
        for a tree head from the features `x` themselves."""
        if self.distortion_head is None:
            raise KeyError("this network has no distortion head")
        logits = self.distortion_head.logits(z, x)
        for name in self.logit_maps:
            logits = getattr(self, name)(logits)
        return logits

    # --- composing -----------------------------------------------------------------------
    def with_part(self, kind: str, fitted: nn.Module | None = None) -> "PredictionNetwork":
        """This network with part `kind` added (or replaced), its weights those of `fitted`
        (boosted trees from `heads.fit_boosted_trees`, a `PlattScaling.fitted(...)`; none for a
        part without weights). Everything else keeps its weights; the trunk is dropped when no
        output reads it any more (a composition of tree parts only)."""
        part = part_of(kind, fitted) if fitted is not None else Part(kind)
        config = self.config.with_part(part)
        if not config.reads_trunk:
            config = config.replace(hidden=())
        network = PredictionNetwork(config)
        new_state = {}
        if fitted is not None:
            attribute = PART_CLASSES[kind].attribute
            target = getattr(network, attribute)
            wanted, got = target.state_dict(), fitted.state_dict()
            if isinstance(fitted, BoostedTrees) and fitted.outputs != target.outputs:
                raise ValueError(f"{fitted.outputs} tree outputs where {kind} has {target.outputs}")
            if {k: tuple(v.shape) for k, v in got.items()} != {k: tuple(v.shape) for k, v in wanted.items()}:
                raise ValueError(f"the fitted {kind} does not fit this network's {attribute} "
                                 f"({len(self.config.distortions)} distortion types)")
            new_state = {f"{attribute}.{k}": v for k, v in got.items()}
        return self._rebuilt(config, new_state)

    def without_part(self, kind: str) -> "PredictionNetwork":
        """This network with part `kind` dropped (a model card compares a composed overall with
        and without its regression this way)."""
        return self._rebuilt(self.config.without_part(kind), {})

    def _rebuilt(self, config: HeadConfig, new_state: dict[str, torch.Tensor]) -> "PredictionNetwork":
        """A new network of `config` with the weights in `new_state`, every other weight of this
        one that the new network still has, and its own initial weights for the rest."""
        network = PredictionNetwork(config)
        state = network.state_dict()  # a new part with no weights given keeps its initial ones
        state.update({k: v for k, v in self.state_dict().items() if k in state})
        state.update(new_state)
        network.load_state_dict(state, strict=True)
        return network.train(self.training)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """Also reads the weights of model files written before parts existed."""
        state = {_LEGACY_KEYS.get(k, k): v for k, v in state_dict.items()}
        return super().load_state_dict(state, strict=strict, assign=assign)

    # --- scoring -------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, heads: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """x [N, in_dim] -> {head: [N] scores on 0-100, "p:type": [N] probabilities}, in the
        order asked for (every output by default)."""
        names = list(heads) if heads is not None else self.output_names
        z = self.embed(x)
        probs = torch.sigmoid(self.distortion_logits(z, x)) if self.distortion_head is not None else None
        out: dict[str, torch.Tensor] = {}
        for name in names:
            if name in self.heads:
                out[name] = self.heads[name](z).squeeze(-1) * 100.0
            elif name.startswith(DISTORTION_PREFIX):
                if probs is None:
                    raise KeyError("this network has no distortion head")
                out[name] = probs[:, self.config.distortions.index(name[len(DISTORTION_PREFIX):])]
            elif name not in self.config.composed:
                raise KeyError(f"no output {name!r}; outputs: {', '.join(self.output_names)}")
        for attribute in self.score_parts:
            getattr(self, attribute).apply(out, x, probs, names)
        return {name: out[name] for name in names}

