"""The card of a model fitted to ratings: what it learnt from, what was measured, how to read it.

Two forms of the same facts: `model_card` goes inside the model file (what `vqscope models`
and the service show), `markdown_card` beside it (NAME-VERSION.md, like the shipped models'
cards). Both say only what the cross-validation measured, on which videos, against which base.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:
    from ..data.datasets import Dataset
    from ..metrics import DetailedAgreement
    from ..model import Model
    from .fit import Candidate, CandidateScore, FeatureSet, RatedFit

def source_label(source: Mapping[str, Any], dataset: Dataset) -> str:
    """How the card names the ratings: "study 12 (spring uploads)", or the ratings' name."""
    study, name = source.get("study"), source.get("name")
    if study is not None:
        return f"study {study}" + (f" ({name})" if name and str(name) != str(study) else "")
    return f"ratings '{name or dataset.name}'"


def _raters(source: Mapping[str, Any]) -> str:
    raters = source.get("raters")
    return f"{raters} raters" if raters is not None else "raters not recorded"


def _figure(agreement: DetailedAgreement | None, metric: str) -> str:
    """'0.812 [0.701, 0.880]': a figure and its 95% interval."""
    if agreement is None:
        return "n/a"
    value = float(getattr(agreement, metric))
    low, high = agreement.intervals.get(metric, (float("nan"), float("nan")))
    if math.isnan(value):
        return "undefined (constant scores)"
    if math.isnan(low):
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


_CARRIED_TEXT = {
    "everything": "the base's dimension and distortion heads are kept; overall comes from the new head",
    "distortions": "the base's distortion head is kept; overall and the rated dimensions come from the new heads",
    "nothing": "the new heads alone",
}


def _description(fit: RatedFit, fs: FeatureSet, base: Model, label: str) -> str:
    return (f"{fit.chosen.describe()} on {fs.name} features ({'+'.join(fs.config.spatial + fs.config.temporal)}), "
            f"fitted to {label}; {_CARRIED_TEXT[fit.carried]} (base {base.id})")


def model_card(fit: RatedFit, base: Model, source: Mapping[str, Any], dataset: Dataset) -> dict[str, Any]:
    """`info.card`: a summary line and what was measured, on what."""
    label = source_label(source, dataset)
    summary = (f"fitted to {label} ({fit.videos} videos, {_raters(source)}): {fit.chosen.feature_set} features, "
               f"{fit.chosen.head} head; nested {len(fit.overall.outer_choices)}-fold CV SROCC "
               f"{_figure(fit.cv, 'srocc')} against {base.id}'s {_figure(fit.base_cv, 'srocc')} on the same videos")
    if fit.forced:
        summary += " (published with force: it does not beat the base)"
    return {
        "summary": summary,
        "source": _card_source(source, label, fit.videos),
        "chosen": {**fit.chosen.to_dict(), "head_name": fit.overall.name},
        "cross_validation": {
            "method": "nested k-fold: inner folds choose feature set, head and strength; figures on the pooled "
                      "out-of-fold predictions of the outer folds, 95% bootstrap intervals",
            "folds": len(fit.overall.outer_choices),
            "overall": fit.cv.to_dict(),
            "dimensions": {d: h.to_dict() for d, h in fit.dimensions.items()},
            "outer_choices": [c.to_dict() for c in fit.overall.outer_choices],
            "gain_over_base": fit.gain.to_dict() if fit.gain is not None else None,
        },
        "base": {"id": base.id, "overall": fit.base_cv.to_dict(),
                 "note": "the base never saw these videos: its figures use all of them"},
        "candidates": [s.to_dict() for s in fit.candidates],
        "beats_base": fit.beats_base,
        "forced": fit.forced,
        "carried_from_base": _CARRIED_TEXT[fit.carried],
    }


def _card_source(source: Mapping[str, Any], label: str, videos: int) -> dict[str, Any]:
    """What the ratings are, as the caller described them, with the videos actually used."""
    out = {k: v for k, v in source.items() if isinstance(v, (str, int, float, bool, type(None)))}
    if out.get("videos") not in (None, videos):
        out["videos_in_source"] = out["videos"]  # some were not on disk or could not be decoded
    out.update({"label": label, "videos": videos, "raters": source.get("raters")})
    return out


def markdown_card(fit: RatedFit, base: Model, source: Mapping[str, Any], dataset: Dataset) -> str:
    """The NAME-VERSION.md card written beside the model file."""
    model = fit.model
    label = source_label(source, dataset)
    config = model.network.config
    lines = [
        f"# Model card: {model.id}",
        "",
        f"Fitted to people's ratings: {label}, {fit.videos} videos, {_raters(source)}. "
        f"{fit.chosen.describe().capitalize()} on frozen `{fit.chosen.feature_set}` features "
        f"({' + '.join(model.features.spatial + model.features.temporal)}), chosen by cross-validation; "
        f"base model {base.id}.",
        "",
        "## What was measured",
        f"Nested {len(fit.overall.outer_choices)}-fold cross-validation on the {fit.videos} rated videos: in each outer "
        "fold, inner folds on the remaining videos chose the feature set, the head and its strength, the choice was "
        "refitted on those videos and predicted the held-out ones. Figures are on the pooled out-of-fold predictions, "
        "against the MOS, with 95% bootstrap intervals (PLCC after a logistic mapping). The base never saw these "
        "videos, so its figures use all of them.",
        "",
        "| model | SROCC | KRCC | PLCC |",
        "| --- | --- | --- | --- |",
        f"| **{model.id}** (cross-validated) | {_figure(fit.cv, 'srocc')} | {_figure(fit.cv, 'krcc')} | "
        f"{_figure(fit.cv, 'plcc_mapped')} |",
        f"| {base.id} | {_figure(fit.base_cv, 'srocc')} | {_figure(fit.base_cv, 'krcc')} | "
        f"{_figure(fit.base_cv, 'plcc_mapped')} |",
        "",
    ]
    if fit.gain is not None:
        lines += [f"SROCC gain over the base: {fit.gain.describe()} (95% interval of a paired bootstrap over the "
                  "videos).", ""]
    if fit.forced:
        lines += ["**Published with force: this head does not beat the base in cross-validation.**", ""]
    if fit.dimensions:
        lines += ["Dimension heads (feature set fixed to the one chosen above; head and strength chosen the same "
                  "nested way), against the raters' dimension scores:", "",
                  "| dimension | videos | head | SROCC (cross-validated) | base SROCC |", "| --- | --- | --- | --- | --- |"]
        for d, h in fit.dimensions.items():
            lines.append(f"| {d} | {h.videos} | {h.chosen.head} {_strength(h.chosen)} | {_figure(h.cv, 'srocc')} | "
                         f"{_figure(h.base, 'srocc')} |")
        lines.append("")
    lines += ["## How it was chosen",
              "Cross-validated SROCC of every feature set and head (best strength of each) on all rated videos: the "
              "figures the choice was made on, optimistic for the winner.", "",
              "| feature set | head | best strength | SROCC |", "| --- | --- | --- | --- |"]
    for s in _best_per_head(fit.candidates):
        mark = " (chosen)" if s.candidate == fit.chosen else ""
        lines.append(f"| {s.candidate.feature_set} | {s.candidate.head} | {_strength(s.candidate)} | "
                     f"{'n/a' if math.isnan(s.srocc) else f'{s.srocc:.3f}'}{mark} |")
    outer = ", ".join(c.short() for c in fit.overall.outer_choices)
    lines += ["", f"Choices of the outer folds: {outer}.", "",
              "## What it reports",
              f"Overall: the `{config.primary}` head (the MOS, on 0-100 as (mos - low) / (high - low) * 100). "
              f"{_CARRIED_TEXT[fit.carried].capitalize()}.",
              f"Heads: {', '.join(config.heads)}" + (f"; distortion types: {', '.join(config.distortions)}"
                                                    if config.distortions else "") + ".",
              f"Grades: the base's scale ({', '.join(model.grades.labels)} at {', '.join(f'{t:g}' for t in model.grades.thresholds)} "
              f"on the {model.grades.basis}).",
              ("Scaled score: the percentile among this model's own scores of the rated videos."
               if model.calibration is not None else "No scaled score: every rated video scored the same."),
              "",
              "## Limits",
              f"- {fit.videos} videos: an SROCC interval this wide is what that many videos can tell; the figures hold "
              "for videos like the rated ones, not for other content.",
              "- The MOS is the raters' opinion on this study's videos and screen; the model learns their taste, "
              "including its noise.",
              "- The scaled score is relative to the rated videos, not to the base's benchmark."
              + (" The grades are read on it, as the base's were on its own benchmark: they mean a rank among "
                 "the rated videos now." if model.grades.basis == "scaled" else ""),
              ""]
    return "\n".join(lines)


def _strength(c: Candidate) -> str:
    return f"{int(c.strength)} components" if c.head == "pcr" else f"{c.strength:g}"


def _best_per_head(scores: Sequence[CandidateScore]) -> list[CandidateScore]:
    best: dict[tuple[str, str], CandidateScore] = {}
    for s in scores:
        key = (s.candidate.feature_set, s.candidate.head)
        if key not in best or (not math.isnan(s.srocc) and (math.isnan(best[key].srocc) or s.srocc > best[key].srocc + 1e-4)):
            best[key] = s
    return list(best.values())


def best_per_head(fit: RatedFit) -> list[CandidateScore]:
    """The best strength of each (feature set, head), for a short table."""
    return _best_per_head(fit.candidates)
