"""Result: the contract every interface shares (library, CLI, files, service).

Field names and order follow ../shared/DESIGN.md; what a model does not predict is absent
rather than invented (a model without dimension heads reports only "overall", a model
without a distortion head reports no distortions).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

from .errors import ConfigError, NotPredictedError
from .taxonomy import DIMENSIONS, types_of


_DIMENSION_ALIASES = {"colour": "color", "artifacts": "artifact", "artefact": "artifact", "artefacts": "artifact"}


def parse_dimensions(names: str | Iterable[str]) -> tuple[str, ...]:
    """"color,blur" or ["color", "blur"] -> ("color", "blur"): known names, in the order given, once each.

    Checked against the taxonomy before anything is scored, so a typo costs nothing; the error
    lists every valid name (and the nearest one) because the user cannot guess them.
    """
    items = names.split(",") if isinstance(names, str) else [p for n in names for p in str(n).split(",")]
    out: list[str] = []
    for raw in items:
        name = raw.strip().lower()
        if not name:
            continue
        name = _DIMENSION_ALIASES.get(name, name)
        if name not in DIMENSIONS:
            near = difflib.get_close_matches(name, DIMENSIONS, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ConfigError(f"unknown dimension {raw.strip()!r} (dimensions: {', '.join(DIMENSIONS)}){hint}")
        if name not in out:
            out.append(name)
    if not out:
        raise ConfigError(f"no dimension named (dimensions: {', '.join(DIMENSIONS)})")
    return tuple(out)


def require_dimensions(names: Iterable[str], available: Iterable[str], model: str) -> None:
    """Raise NotPredictedError naming what `model` does predict when a name is missing from it."""
    have = [d for d in DIMENSIONS if d in set(available)]
    missing = [n for n in names if n not in have]
    if missing:
        raise NotPredictedError(
            f"model {model} does not predict the dimension(s) {', '.join(missing)} "
            f"(it predicts: {', '.join(have) or 'none'}); use a model with dimension heads"
        )


@dataclass
class DimensionScore:
    score: float
    grade: str
    description: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"score": round(self.score, 2), "grade": self.grade}
        if self.description:
            d["description"] = self.description
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DimensionScore":
        return cls(float(data["score"]), str(data["grade"]), data.get("description"))


@dataclass
class ClipResult:
    index: int
    start_s: float
    end_s: float
    score: float
    key_time_s: float
    padded: bool = False
    dimensions: dict[str, DimensionScore] = field(default_factory=dict)
    distortions: dict[str, float] = field(default_factory=dict)  # per-type probability in this clip

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "score": round(self.score, 2),
            "dimensions": {k: v.to_dict() for k, v in self.dimensions.items()},
            "key_time_s": round(self.key_time_s, 3),
        }
        if self.distortions:
            d["distortions"] = {k: round(v, 4) for k, v in self.distortions.items()}
        if self.padded:
            d["padded"] = True
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], index: int) -> "ClipResult":
        return cls(
            index=index,
            start_s=float(data["start_s"]),
            end_s=float(data["end_s"]),
            score=float(data["score"]),
            key_time_s=float(data.get("key_time_s", data["start_s"])),
            padded=bool(data.get("padded", False)),
            dimensions={k: DimensionScore.from_dict(v) for k, v in data.get("dimensions", {}).items()},
            distortions={k: float(v) for k, v in data.get("distortions", {}).items()},
        )


@dataclass
class Result:
    video: str
    model: str
    duration_s: float
    width: int
    height: int
    fps: float
    score: float  # predicted MOS, 0-100
    scaled_score: float | None  # percentile on the model's calibration set
    grade: str
    dimensions: dict[str, DimensionScore]
    distortions: dict[str, float]
    description: str
    clips: list[ClipResult]
    padded: bool = False  # shorter than one temporal window: windows were padded
    warnings: list[str] = field(default_factory=list)
    video_info: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "video": self.video,
            "model": self.model,
            "duration_s": round(self.duration_s, 3),
            "width": self.width,
            "height": self.height,
            "fps": round(self.fps, 3),
            "score": round(self.score, 2),
            "scaled_score": None if self.scaled_score is None else round(self.scaled_score, 2),
            "grade": self.grade,
            "dimensions": {k: v.to_dict() for k, v in self.dimensions.items()},
            "distortions": {k: round(v, 4) for k, v in self.distortions.items()},
            "description": self.description,
            "clips": [c.to_dict() for c in self.clips],
            "padded": self.padded,
            "warnings": list(self.warnings),
            "video_info": dict(self.video_info),
            "elapsed_s": None if self.elapsed_s is None else round(self.elapsed_s, 3),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def only(self, dimensions: str | Iterable[str]) -> "Result":
        """A copy that keeps just these dimensions, at video and clip level.

        Distortion probabilities are kept for the types those dimensions gather ("overall"
        gathers all twelve), so that asking for colour does not return blur findings. The
        overall score, grade and description stay: they are the result's identity. One
        function serves the CLI (`--dimensions`) and the service (`dimensions`), so both
        filter alike. Unknown names raise ConfigError; names the model does not predict
        raise NotPredictedError.
        """
        names = parse_dimensions(dimensions)
        require_dimensions(names, self.dimensions, self.model)
        types = {t for n in names for t in types_of(n)}
        return replace(
            self,
            dimensions={n: self.dimensions[n] for n in names},
            distortions={t: p for t, p in self.distortions.items() if t in types},
            clips=[
                replace(
                    c,
                    dimensions={n: c.dimensions[n] for n in names if n in c.dimensions},
                    distortions={t: p for t, p in c.distortions.items() if t in types},
                )
                for c in self.clips
            ],
            warnings=list(self.warnings),
            video_info=dict(self.video_info),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Result":
        return cls(
            video=str(data["video"]),
            model=str(data["model"]),
            duration_s=float(data["duration_s"]),
            width=int(data["width"]),
            height=int(data["height"]),
            fps=float(data["fps"]),
            score=float(data["score"]),
            scaled_score=None if data.get("scaled_score") is None else float(data["scaled_score"]),
            grade=str(data["grade"]),
            dimensions={k: DimensionScore.from_dict(v) for k, v in data.get("dimensions", {}).items()},
            distortions={k: float(v) for k, v in data.get("distortions", {}).items()},
            description=str(data.get("description", "")),
            clips=[ClipResult.from_dict(c, i) for i, c in enumerate(data.get("clips", []))],
            padded=bool(data.get("padded", False)),
            warnings=list(data.get("warnings", [])),
            video_info=dict(data.get("video_info", {})),
            elapsed_s=data.get("elapsed_s"),
        )
