"""Held-out figures of a model trained on a synthetic corpus: what its card reports.

Dimensions are judged on the graded mixes, where every dimension varies in every video (as each
dimension's opinion score does over FineVQ's rated videos), and also shown on the catalogue
(every type at every level alone, pairs, triples), where most videos tie at 100 in a given
dimension; types by ROC AUC and F1 at 0.5 on every held-out video; the yes/no answers by false
alarms and misses; confined damage by clip-level AUC.
"""

from __future__ import annotations

import numpy as np

from ..data.distortions import Step
from ..data.synth import dimension_targets, frame_levels
from ..metrics import agreement, f1_score, roc_auc
from ..taxonomy import DIMENSIONS, DISTORTION_DIMENSION, DISTORTION_TYPES
from ..train import fine_figures, pooled_probabilities, predict_fine, video_means, video_predictions


def held_out_figures(network, x, clips, samples, video_dims, video_presence, videos) -> dict:
    """Cross-validation figures on `videos`, judged as the held-out test is (`evaluate`): type
    AUC over all of them, dimension SROCC over their graded mixes (and their catalogue)."""
    videos = np.sort(videos)
    rows = np.isin(clips.sample_index, videos)
    vd, vp = video_predictions(network, x[rows], np.searchsorted(videos, clips.sample_index[rows]), len(videos))
    mix = np.array([samples[i].kind == "mix" for i in videos], dtype=bool)

    def figures(subset: np.ndarray) -> dict:
        return fine_figures(vd[subset], vp[subset], video_dims[videos[subset]], video_presence[videos[subset]],
                            network.config.heads, network.config.distortions)

    every, on_mixes, on_catalogue = figures(np.ones(len(videos), dtype=bool)), figures(mix), figures(~mix)
    return {"mean_auc": every["mean_auc"], "mean_srocc": on_mixes["mean_srocc"], "min_srocc": on_mixes["min_srocc"],
            "mean_srocc_catalogue": on_catalogue["mean_srocc"]}


def dimension_figures(vd, video_dims, samples, videos, rng, table=None) -> dict:
    """Per dimension on `videos`: agreement with the targets, the SROCC ceiling their ties leave,
    and the SROCC within the dimension (videos carrying one of its types, and clean ones)."""
    out = {}
    blind_targets = blind_to_mildest(samples, videos, table)
    for k, d in enumerate(DIMENSIONS):
        out[d] = agreement(vd[videos, k], video_dims[videos, k]).to_dict()
        # Videos that carry nothing of a dimension tie at 100. A predictor that ranks every
        # distorted video perfectly but orders the clean ones at random reaches only this
        # SROCC: the ceiling the ties leave for scores that are never exactly 100.
        jitter = video_dims[videos, k] + rng.uniform(0, 1e-3, size=len(videos))
        out[d]["tie_ceiling_srocc"] = round(agreement(jitter, video_dims[videos, k]).srocc, 4)
        # A perfect grader that cannot see any type's mildest level (it scores those as clean):
        # how much of the SROCC rests on seeing level 0, the mildest the generator makes.
        blind = blind_targets[:, k] + rng.uniform(0, 1e-3, size=len(videos))
        out[d]["blind_to_mildest_srocc"] = round(agreement(blind, video_dims[videos, k]).srocc, 4)
        mine = [i for i in videos if not samples[i].recipe or any(
            d == "overall" or DISTORTION_DIMENSION[step["name"]] == d for step in samples[i].recipe)]
        out[d]["within"] = agreement(vd[mine, k], video_dims[mine, k]).to_dict()
    return out


def blind_to_mildest(samples, videos, table=None) -> np.ndarray:
    """[videos, 6] video targets with every level-0 step left out, built as the corpus builds
    its targets (per frame, then the mean over frames)."""
    out = np.empty((len(videos), len(DIMENSIONS)))
    for r, i in enumerate(videos):
        recipe = tuple(Step(**step) for step in samples[i].recipe if step["level"] > 0)
        targets = dimension_targets(frame_levels(recipe, samples[i].frames), table)
        out[r] = [targets[d].mean() for d in DIMENSIONS]
    return out


def type_figures(vp, video_presence, videos) -> dict:
    out = {}
    for j, t in enumerate(DISTORTION_TYPES):
        y = video_presence[videos, j]
        out[t] = {"auc": round(roc_auc(vp[videos, j], y), 4), "f1": round(f1_score(vp[videos, j], y), 4),
                  "positives": int(y.sum())}
    return out


def decision_figures(vp, video_presence, samples, videos) -> dict:
    """What the yes/no answers at p >= 0.5 are worth: types called present that are not, per
    undistorted and per single-type video, and the share of present types called absent."""
    called, present = vp[videos] >= 0.5, video_presence[videos] > 0
    false = (called & ~present).sum(axis=1)
    n_steps = np.array([len(samples[i].recipe) for i in videos])
    return {"false_alarms_per_clean_video": round(float(false[n_steps == 0].mean()), 3),
            "false_alarms_per_single_type_video": round(float(false[n_steps == 1].mean()), 3),
            "missed_share": round(float((present & ~called).sum() / max(1, present.sum())), 3),
            "clean_videos": int((n_steps == 0).sum())}


def summary_figures(ev: dict) -> dict:
    """The held-out figures two models (or two variants of one) are compared on in a card."""
    return {"dimensions": {d: ev["dimensions"][d]["srocc"] for d in DIMENSIONS}, "mean_auc": ev["mean_auc"],
            "mean_f1": ev["mean_f1"], "f1": {t: ev["types"][t]["f1"] for t in DISTORTION_TYPES},
            **ev["decisions"]}


def evaluate(network, clips, samples, video_dims, video_presence, test_v) -> dict:
    """Held-out figures. Dimensions are judged on the graded mixes, where every dimension varies
    in every video (as each dimension's opinion score does over FineVQ's rated videos), and also
    shown on the catalogue; types on all held-out videos."""
    n = len(samples)
    dims, probs = predict_fine(network, clips.features)
    vd = np.stack([video_means(dims[:, k], clips.sample_index, n) for k in range(len(DIMENSIONS))], axis=1)
    vp = pooled_probabilities(probs, clips.sample_index, n)
    mixes = np.array([i for i in test_v if samples[i].kind == "mix"], dtype=int)
    catalogue = np.array([i for i in test_v if samples[i].kind != "mix"], dtype=int)
    rng = np.random.default_rng(0)
    out: dict = {"n_videos": int(len(test_v)), "n_mixes": int(len(mixes)), "n_catalogue": int(len(catalogue)),
                 "dimensions": dimension_figures(vd, video_dims, samples, mixes, rng, clips.table),
                 "catalogue_dimensions": dimension_figures(vd, video_dims, samples, catalogue, rng, clips.table),
                 "types": type_figures(vp, video_presence, test_v)}
    for name, videos in (("mixes", mixes), ("catalogue", catalogue)):
        out[f"types_{name}"] = type_figures(vp, video_presence, videos)
        out[f"mean_auc_{name}"] = round(float(np.mean([v["auc"] for v in out[f"types_{name}"].values()])), 4)
    out["mean_auc"] = round(float(np.mean([v["auc"] for v in out["types"].values()])), 4)
    out["mean_f1"] = round(float(np.mean([v["f1"] for v in out["types"].values()])), 4)
    out["decisions"] = decision_figures(vp, video_presence, samples, test_v)
    out["min_srocc"] = round(float(min(v["srocc"] for v in out["dimensions"].values())), 4)
    out["mean_srocc"] = round(float(np.mean([v["srocc"] for v in out["dimensions"].values()])), 4)
    out["min_srocc_catalogue"] = round(float(min(v["srocc"] for v in out["catalogue_dimensions"].values())), 4)
    # Confusion: single-type held-out videos, by the type the model finds most likely.
    confusion = {t: {u: 0 for u in (*DISTORTION_TYPES, "none")} for t in (*DISTORTION_TYPES, "pristine")}
    for i in catalogue:
        recipe = samples[i].recipe
        if len(recipe) > 1:
            continue
        truth = recipe[0]["name"] if recipe else "pristine"
        top = int(np.argmax(vp[i]))
        confusion[truth][DISTORTION_TYPES[top] if vp[i, top] >= 0.5 else "none"] += 1
    out["confusion"] = confusion
    # Time: in held-out videos with a distortion confined to a stretch, do clip probabilities
    # single out the clips that carry it?
    confined = [i for i in catalogue if len(samples[i].recipe) == 1
                and (samples[i].recipe[0]["start"] > 0 or samples[i].recipe[0]["end"] < 1)]
    scores, labels = [], []
    for i in confined:
        j = DISTORTION_TYPES.index(samples[i].recipe[0]["name"])
        rows = clips.sample_index == i
        scores += list(probs[rows, j])
        labels += list(clips.presence[rows, j] >= 0.5)
    out["confined"] = {"videos": len(confined), "clips": len(scores),
                       "clip_auc": round(roc_auc(scores, labels), 4) if scores else None}
    return out
