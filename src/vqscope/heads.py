"""Heads: the prediction network from a clip's feature vector to its scores.

Features are standardised with statistics stored in the model (fitted on its training
set), go through a shared trunk (an MLP), then through one linear output per head. A model
trained on several datasets has one head per dataset over the same trunk, as BILIVQA does,
and scores new videos with its `primary` head; later models add heads per quality dimension.
Scores are produced on a 0-100 scale.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import torch
from torch import nn

CLAMP_Z = 6.0  # standardised features are clamped to +-CLAMP_Z


@dataclass(frozen=True)
class HeadConfig:
    in_dim: int
    hidden: tuple[int, ...] = (128,)
    dropout: float = 0.2
    heads: tuple[str, ...] = ("overall",)
    primary: str = "overall"

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "heads", tuple(self.heads))
        if self.primary not in self.heads:
            raise ValueError(f"primary head {self.primary!r} is not among heads {self.heads}")

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
        self.heads = nn.ModuleDict({name: nn.Linear(width, 1) for name in config.heads})

    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(torch.clamp(std, min=1e-6))

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        # Clamped: a video unlike any training clip (a statistic far outside its training range)
        # must not push the score to +-infinity through one feature.
        return torch.clamp((x - self.feature_mean) / self.feature_std, -CLAMP_Z, CLAMP_Z)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(self.standardise(x))

    def forward(self, x: torch.Tensor, heads: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """x [N, in_dim] -> {head: [N] scores on 0-100}."""
        z = self.embed(x)
        names = heads if heads is not None else list(self.heads.keys())
        return {name: self.heads[name](z).squeeze(-1) * 100.0 for name in names}

