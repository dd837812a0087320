"""What a prediction network is made of: the trunk's shape, its score heads, and its parts.

A network is a trunk (an MLP on the standardised features) with one linear score head per name,
plus any number of *parts* named in order, each of one kind:

    linear_distortions        a linear distortion head on the trunk (one logit per type)
    tree_distortions          boosted trees on the raw features in its place (trees, nodes, depth)
    platt_scaling             a per-type affine map of the distortion logits (Platt scaling)
    detection_gate            a dimension falls below 100 only as far as one of its types is detected
    severity_composition      taxonomy dimensions composed from a boosted-tree severity head
                              (trees, nodes, depth) and the detection probabilities
    overall_regression        a composed overall averaged with a boosted-tree regression of it

Parts are composed the way scikit-learn composes estimators: a model names the parts it has,
in the order they apply, and a new kind of head is a new part (heads/parts.py), not a new flag
on this config. Model files written before parts existed stored one flag per kind
(`gate_dimensions`, `distortion_trees`, `severity_trees`, `overall_trees`, `calibrated`);
`HeadConfig.from_dict` reads them as the parts they meant, so those files load and score as
they always did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..taxonomy import DIMENSIONS

# kind -> (role, whether it takes a (trees, nodes, depth) shape). Roles apply in this order:
# the distortion head makes logits, logit maps change them, score parts read the probabilities.
PART_KINDS: dict[str, tuple[str, bool]] = {
    "linear_distortions": ("distortions", False),
    "tree_distortions": ("distortions", True),
    "platt_scaling": ("logits", False),
    "detection_gate": ("scores", False),
    "severity_composition": ("scores", True),
    "overall_regression": ("scores", True),
}
_ROLE_ORDER = ("distortions", "logits", "scores")
# The flags of model files written before parts existed, in the order their parts apply.
_LEGACY_FLAGS = ("distortion_trees", "calibrated", "gate_dimensions", "severity_trees", "overall_trees")


@dataclass(frozen=True)
class Part:
    """One part of a prediction network: its kind and, for a tree part, (trees, nodes, depth)."""

    kind: str
    shape: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(v) for v in self.shape))
        if self.kind not in PART_KINDS:
            raise ValueError(f"unknown head part {self.kind!r}; known: {', '.join(PART_KINDS)}")
        shaped = PART_KINDS[self.kind][1]
        if shaped and len(self.shape) != 3:
            raise ValueError(f"{self.kind} is (trees, nodes, depth); got {self.shape}")
        if not shaped and self.shape:
            raise ValueError(f"{self.kind} takes no shape; got {self.shape}")

    @property
    def role(self) -> str:
        return PART_KINDS[self.kind][0]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "shape": list(self.shape)} if self.shape else {"kind": self.kind}

    @classmethod
    def from_dict(cls, data: "Mapping[str, Any] | str | Part") -> "Part":
        if isinstance(data, Part):
            return data
        if isinstance(data, str):
            return cls(data)
        unknown = set(data) - {"kind", "shape"}
        if unknown:
            raise ValueError(f"unknown key(s) of a head part: {', '.join(sorted(unknown))}")
        return cls(str(data["kind"]), tuple(data.get("shape", ())))


@dataclass(frozen=True)
class HeadConfig:
    """The shape of a prediction network. With `distortions` and no distortion part named, the
    distortion head is linear on the trunk (`linear_distortions` is added first)."""

    in_dim: int
    hidden: tuple[int, ...] = (128,)
    dropout: float = 0.2
    heads: tuple[str, ...] = ("overall",)
    primary: str = "overall"
    distortions: tuple[str, ...] = ()  # distortion types of the multi-label head (none: no head)
    parts: tuple[Part, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "heads", tuple(self.heads))
        object.__setattr__(self, "distortions", tuple(self.distortions))
        parts = tuple(p if isinstance(p, Part) else Part.from_dict(p) for p in self.parts)
        if self.distortions and not any(p.role == "distortions" for p in parts):
            parts = (Part("linear_distortions"),) + parts
        object.__setattr__(self, "parts", parts)
        if self.primary not in self.heads:
            raise ValueError(f"primary head {self.primary!r} is not among heads {self.heads}")
        kinds = [p.kind for p in parts]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"a part is named twice: {kinds}")
        roles = [_ROLE_ORDER.index(p.role) for p in parts]
        if roles != sorted(roles):
            raise ValueError("parts go in order: a distortion head, then logit maps, then score parts")
        if sum(p.role == "distortions" for p in parts) > 1:
            raise ValueError("a network has one distortion head: linear_distortions or tree_distortions")
        if parts and not self.distortions:
            raise ValueError(f"{parts[0].kind} needs distortion types")
        if "overall_regression" in kinds and "severity_composition" not in kinds[:kinds.index("overall_regression")]:
            raise ValueError("overall_regression needs a severity_composition before it")
        if self.has("overall_regression") and "overall" not in self.heads:
            raise ValueError("overall_regression needs an overall head")

    def has(self, kind: str) -> bool:
        return any(p.kind == kind for p in self.parts)

    def part(self, kind: str) -> Part | None:
        return next((p for p in self.parts if p.kind == kind), None)

    @property
    def composed(self) -> tuple[str, ...]:
        """Heads composed from the severity head (the taxonomy dimensions), not linear."""
        return tuple(h for h in self.heads if h in DIMENSIONS) if self.has("severity_composition") else ()

    @property
    def reads_trunk(self) -> bool:
        """Whether any output goes through the trunk (a linear score or distortion head)."""
        return self.has("linear_distortions") or any(h not in self.composed for h in self.heads)

    def with_part(self, part: Part) -> "HeadConfig":
        """This config with `part` in its place: replacing the part of the same role where only
        one may be (the distortion head) or the same kind, else inserted where its role goes."""
        kept = [p for p in self.parts if p.kind != part.kind and not (part.role == "distortions" == p.role)]
        rank = _ROLE_ORDER.index(part.role)
        at = next((i for i, p in enumerate(kept) if _ROLE_ORDER.index(p.role) > rank), len(kept))
        return self.replace(parts=tuple(kept[:at]) + (part,) + tuple(kept[at:]))

    def without_part(self, kind: str) -> "HeadConfig":
        return self.replace(parts=tuple(p for p in self.parts if p.kind != kind))

    def replace(self, **changes: Any) -> "HeadConfig":
        return HeadConfig(**{**self._fields(), **changes})

    def _fields(self) -> dict[str, Any]:
        return {"in_dim": self.in_dim, "hidden": self.hidden, "dropout": self.dropout, "heads": self.heads,
                "primary": self.primary, "distortions": self.distortions, "parts": self.parts}

    def to_dict(self) -> dict[str, Any]:
        return {**self._fields(), "hidden": list(self.hidden), "heads": list(self.heads),
                "distortions": list(self.distortions), "parts": [p.to_dict() for p in self.parts]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "HeadConfig":
        data = dict(data)
        legacy = {k: data.pop(k) for k in _LEGACY_FLAGS if k in data}
        if legacy:
            if "parts" in data:
                raise ValueError(f"a head config has parts and the old flags {', '.join(legacy)}")
            data["parts"] = _parts_of_flags(legacy, bool(data.get("distortions")))
        data["parts"] = tuple(Part.from_dict(p) for p in data.get("parts", ()))
        return cls(**data)


def _parts_of_flags(flags: Mapping[str, Any], distortions: bool) -> tuple[Part, ...]:
    """The parts that a model file of the flag era meant by its flags (a gate without
    distortion types gated nothing)."""
    parts = []
    if flags.get("distortion_trees"):
        parts.append(Part("tree_distortions", tuple(flags["distortion_trees"])))
    if flags.get("calibrated"):
        parts.append(Part("platt_scaling"))
    if flags.get("gate_dimensions") and distortions:
        parts.append(Part("detection_gate"))
    if flags.get("severity_trees"):
        parts.append(Part("severity_composition", tuple(flags["severity_trees"])))
    if flags.get("overall_trees"):
        parts.append(Part("overall_regression", tuple(flags["overall_trees"])))
    return tuple(parts)
