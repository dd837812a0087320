"""How much quality each distortion level takes away: the table the synthetic targets are built on.

The synthetic corpus (data/synth.py) labels every frame with the distortions done to it; the
training targets turn those labels into 0-100 scores through a loss per type and level. The
first table was designed: one curve for every type, `distortions.quality_loss`, on the claim
that level k of any two types looks about equally bad. Checked against damage made by other
tools (bench/real_damage.py), that claim does not hold: the strongest blur cost the model about
39 points and the strongest underexposure 16, although a full-reference measure rates the
second as the worse damage.

A *measured* table puts every type on the scale of one full-reference measure instead: where
the measure is known to see the damage, the losses are what it says of the corpus's own renders;
where it is not, the designed claim (level k of any type hurts alike) is kept, but read on the
measured scale. Each single-type, whole-video sample of a training or validation source is
compared with the same source's undistorted render by `fr_target.frame_targets` (GMSD of Xue et
al. 2014 per frame; for repeated frames the frame-rate model of Ou et al. 2011). The loss of a
level is the median over sources of 1 - target / 100, made non-decreasing over levels. Test
sources are never read.

* measured: compression, mosaic, oversharpening, defocus_blur, motion_blur, noise (GMSD ranks
  JPEG/JPEG 2000 compression, blur and noise among the best full-reference measures on LIVE,
  CSIQ and TID2013), over- and underexposure (GMSD normalises gradient magnitude, so it sees
  what exposure damage leaves visible: blown highlights and crushed shadows whose detail is
  gone, not the gain itself), and stutter (the frame-rate model, fitted by its authors to
  ratings);
* anchored: color_cast (GMSD reads luma only), flicker (a per-frame gain, which GMSD does not
  see) and jitter (a geometric shift, which a pixel-aligned measure counts as heavy damage a
  viewer does not see as lost detail). Their level at relative strength (k+1)/n takes the mean
  loss of the measured types at the same relative strength: the designed claim, on the
  measured scale.

A table is a small JSON file, versioned by name, that travels with the model's training record.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ..taxonomy import DISTORTION_TYPES

#: Types whose loss a full-reference measure can stand for (see the module docstring).
MEASURED_TYPES = ("overexposure", "underexposure", "noise", "compression", "mosaic", "oversharpening", "defocus_blur",
                  "motion_blur", "stutter")
#: Tables shipped with the package, by name: `[corpus] target = "gmsd"` reads data/loss_tables/gmsd.json.
PACKAGED = Path(__file__).with_name("loss_tables")


@dataclass(frozen=True)
class LossTable:
    """Per type, the share of quality each of its levels takes away (0-1, level 0 the mildest)."""

    name: str
    losses: Mapping[str, tuple[float, ...]]
    measured: tuple[str, ...] = ()  # types whose losses were measured; the rest are designed or anchored
    provenance: Mapping[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "losses": {k: [round(float(v), 4) for v in vs] for k, vs in self.losses.items()},
                "measured": list(self.measured), "provenance": dict(self.provenance)}

    def save(self, path: str | os.PathLike[str]) -> Path:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=2)
        # one line per list of numbers: a table reads as a table
        text = re.sub(r"\[\s+([-0-9.e,\s]+?)\s+\]", lambda m: "[" + ", ".join(
            x.strip() for x in m.group(1).split(",")) + "]", text)
        out.write_text(text + "\n")
        return out

    @classmethod
    def from_dict(cls, d: Mapping) -> "LossTable":
        from .distortions import TYPES

        losses = {str(k): tuple(float(x) for x in v) for k, v in d["losses"].items()}
        for name in DISTORTION_TYPES:
            if name not in losses:
                raise ValueError(f"loss table {d.get('name')!r} has no losses for {name}")
            if len(losses[name]) != TYPES[name].n_levels:
                raise ValueError(f"loss table {d.get('name')!r}: {name} has {len(losses[name])} levels, "
                                 f"the generator {TYPES[name].n_levels}")
            if not all(0.0 <= x < 1.0 for x in losses[name]):
                raise ValueError(f"loss table {d.get('name')!r}: {name}'s losses must lie in [0, 1)")
        return cls(str(d["name"]), losses, tuple(d.get("measured", ())), dict(d.get("provenance", {})))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "LossTable":
        return cls.from_dict(json.loads(Path(path).read_text()))


def designed_table() -> LossTable:
    """The designed curve `quality_loss` for every type: what vqscope-lite@7 was trained on."""
    from .distortions import TYPES, quality_loss

    return LossTable("designed", {t: tuple(quality_loss(k, TYPES[t].n_levels) for k in range(TYPES[t].n_levels))
                                  for t in DISTORTION_TYPES})


def table_named(name_or_path: str) -> LossTable:
    """"designed", a packaged table's name ("gmsd"), or the path of a table file."""
    if name_or_path == "designed":
        return designed_table()
    packaged = PACKAGED / f"{name_or_path}.json"
    if packaged.is_file():
        return LossTable.load(packaged)
    path = Path(name_or_path)
    if path.is_file():
        return LossTable.load(path)
    raise FileNotFoundError(f"no loss table {name_or_path!r}: name one of {', '.join(known_tables())}, "
                            f"or a table file")


def known_tables() -> list[str]:
    """The names `table_named` takes besides a file: "designed" and the packaged tables."""
    return ["designed"] + sorted(p.stem for p in PACKAGED.glob("*.json"))


def anchored_losses(measured: Mapping[str, Sequence[float]], n_levels: int) -> tuple[float, ...]:
    """Losses of an `n_levels` type no measure can see: at relative strength (k+1)/n, the mean
    over measured types of their loss at that strength (linear between their levels, 0 at 0)."""
    out = []
    for k in range(n_levels):
        p = (k + 1) / n_levels
        at = [np.interp(p, np.arange(len(v) + 1) / len(v), [0.0, *v]) for v in measured.values()]
        out.append(float(np.mean(at)))
    return tuple(out)


# -- measuring ------------------------------------------------------------------------------------

def _shown_from_source(source_half, distorted_half, reach: int = 8) -> list[int]:
    """For each distorted frame, the source frame it repeats: the nearest (mean absolute luma
    difference at quarter size) among itself and the `reach` frames before it. A stutter render
    only ever shows an earlier or the same frame."""
    import torch.nn.functional as F

    s = F.avg_pool2d(source_half, 2).flatten(1)
    d = F.avg_pool2d(distorted_half, 2).flatten(1)
    shown = []
    for i in range(d.shape[0]):
        lo = max(0, i - reach)
        diff = (s[lo : i + 1] - d[i]).abs().mean(dim=1)
        shown.append(lo + int(diff.argmin()))
    return shown


def _measure_segment(args: tuple[str, str, list[tuple[str, int, str]], float, int, int]) -> list[tuple[str, int, float]]:
    """(type, level, 0-100 target) of each single-type render of one source segment."""
    import torch

    from .fr_target import frame_targets, luma_of_video

    torch.set_num_threads(1)
    folder, pristine, renders, fps, height, width = args
    root = Path(folder)
    source_half, _ = luma_of_video(str(root / pristine), (height, width))
    out = []
    for name, level, video in renders:
        distorted_half, _ = luma_of_video(str(root / video), (height, width))
        n = min(len(source_half), len(distorted_half))
        src, dist = source_half[:n], distorted_half[:n]
        shown = _shown_from_source(src, dist) if name == "stutter" else None
        target = frame_targets(src, dist, shown=shown, fps=fps)["target"]
        out.append((name, level, float(np.mean(target))))
    return out


def measure_table(
    folder: str | os.PathLike[str],
    samples: Sequence,
    name: str = "gmsd",
    types: Sequence[str] = MEASURED_TYPES,
    workers: int = 1,
    log: Callable[[str], None] = print,
) -> LossTable:
    """Measure the losses of `types` on a `vqscope synth` corpus's training and validation
    sources (test sources are never read); the other types are anchored on them
    (`anchored_losses`)."""
    from .distortions import TYPES

    by_segment: dict[tuple[str, int], dict] = {}
    for s in samples:
        if s.split == "test":
            continue
        unit = by_segment.setdefault((s.source, s.segment), {"pristine": None, "renders": [], "sample": s})
        if not s.recipe:
            unit["pristine"] = s.video
        elif len(s.recipe) == 1 and s.kind == "single":
            step = s.recipe[0]
            if step["name"] in types and step["start"] <= 0.0 and step["end"] >= 1.0:
                unit["renders"].append((step["name"], int(step["level"]), s.video))
    jobs = [(str(folder), u["pristine"], u["renders"], u["sample"].fps, u["sample"].height, u["sample"].width)
            for u in by_segment.values() if u["pristine"] and u["renders"]]
    if not jobs:
        raise ValueError("the corpus holds no training source with an undistorted render and single-type renders")
    log(f"loss table: {sum(len(j[2]) for j in jobs)} renders of {len(jobs)} training and validation sources")
    results: list[tuple[str, int, float]] = []
    pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
    with pool or contextlib.nullcontext():
        parts = pool.imap_unordered(_measure_segment, jobs) if pool else map(_measure_segment, jobs)
        for i, part in enumerate(parts, 1):
            results += part
            if i % 10 == 0 or i == len(jobs):
                log(f"loss table: {i}/{len(jobs)} sources")
    losses: dict[str, tuple[float, ...]] = {}
    stats: dict[str, list[dict]] = {}
    for t in types:
        levels = []
        for k in range(TYPES[t].n_levels):
            values = np.array([1.0 - r[2] / 100.0 for r in results if r[0] == t and r[1] == k])
            if len(values) == 0:
                raise ValueError(f"no whole-video render of {t} level {k} among the training sources")
            levels.append({"median": float(np.median(values)), "q25": float(np.quantile(values, 0.25)),
                           "q75": float(np.quantile(values, 0.75)), "n": int(len(values))})
        stats[t] = levels
        # Non-decreasing over levels: a stronger setting never counts as less damage.
        losses[t] = tuple(float(np.clip(x, 0.0, 0.95)) for x in np.maximum.accumulate([lv["median"] for lv in levels]))
    measured = dict(losses)
    for t in DISTORTION_TYPES:
        if t not in measured:
            losses[t] = anchored_losses(measured, TYPES[t].n_levels)
    provenance = {
        "measure": "fr_target.frame_targets: 100*exp(-GMSD/0.08) per frame, times the frame-rate share kept "
                   "where frames repeat (Ou et al. 2011); loss = 1 - mean over frames / 100; median over sources",
        "corpus_sources": len(jobs), "renders": len(results), "levels": stats,
        "anchored": sorted(set(DISTORTION_TYPES) - set(types)),
    }
    return LossTable(name, losses, tuple(types), provenance)
