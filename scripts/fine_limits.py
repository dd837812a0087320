#!/usr/bin/env python3
"""Where a fine-grained model loses dimension SROCC on held-out sources, and why.

    python scripts/fine_limits.py --work-dir ~/.cache/vqscope/corpus --version 7 [--out docs/fine-limits.md]

Reads the corpus and its cached features as `vqscope train configs/vqscope-lite.toml` left them
in its work folder (no rendering, no training) and prints four markdown tables, each on the held-out (test) sources:

1. Oracles: each dimension's SROCC on the graded mixes when one of its types is replaced, clip by
   clip, by the truth (presence and severity). A type whose oracle lifts the dimension most is
   where the dimension is lost.
2. Within a source: each type's ROC AUC pooled over sources, against the mean AUC within one
   source (its distorted videos against its undistorted ones), and against the pooled AUC once
   each source's undistorted baseline is subtracted. Within-source figures ask whether the
   features see the damage at all; the pooled one also asks the model to know what the content
   looks like undamaged.
3. By kind of source: dimension SROCC on the mixes of camera footage and sample photographs,
   of desktop wallpapers (photographs graded for their look) and of the underwater photographs
   of a game. A type's detection depends on how far the content's own look resembles its damage.
4. By level, and unmasked: the ROC AUC of the weakest types at each level, on all videos and on
   videos without mosaic, compression or noise (steps that hide blur, and that the targets
   still count).
"""

from __future__ import annotations

import argparse
import fnmatch
import time
import sys
from pathlib import Path

import numpy as np
import torch

from vqscope.experiment.config import load_config
from vqscope.experiment.synthetic import columns_of
from vqscope.data.synth import extract_synth_features, read_samples
from vqscope.metrics import agreement, roc_auc
from vqscope.model import Model
from vqscope.taxonomy import DIMENSIONS, DISTORTION_TYPES, types_of
from vqscope.train import pooled_probabilities, predict_fine, video_means

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "src" / "vqscope" / "model_zoo"
# The features the default model's recipe extracts (every set it compares is a slice of them).
UNION = load_config(ROOT / "configs" / "vqscope-lite.toml").features.config


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

# Kinds of source, by name pattern (first match wins; the rest are camera footage and photographs).
SOURCE_KINDS = (
    ("desktop wallpapers", ("deb:plasma-workspace-wallpapers:*", "deb:mate-backgrounds:*", "deb:lomiri-wallpapers-*")),
    ("underwater (krank)", ("deb:krank:*",)),
)
CAMERA = "camera footage and sample photos"


def kind_of(source: str) -> str:
    for kind, patterns in SOURCE_KINDS:
        if any(fnmatch.fnmatchcase(source, p) for p in patterns):
            return kind
    return CAMERA


def composed(p: np.ndarray, k: np.ndarray, dim: str) -> np.ndarray:
    """Clip scores of a dimension composed as the model composes them (without the overall
    regressor): 100 * prod over its types of 1 - (1 - k) * p."""
    cols = [DISTORTION_TYPES.index(t) for t in types_of(dim)]
    return 100.0 * (1.0 - (1.0 - k[:, cols]) * p[:, cols]).prod(axis=1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work-dir", required=True, help="the corpus work folder of `vqscope train configs/vqscope-lite.toml` (its fine/ corpus and features)")
    ap.add_argument("--version", type=int, required=True, help="the model to analyse (vqscope-lite-VERSION)")
    ap.add_argument("--out", default=None, help="also write the tables to this markdown file")
    args = ap.parse_args()

    weights = ZOO / f"vqscope-lite-{args.version}.safetensors"
    if not weights.is_file():
        ap.error(f"no model vqscope-lite@{args.version} in {ZOO}")
    corpus = Path(args.work_dir) / "fine"
    samples = sorted(read_samples(corpus), key=lambda s: s.id) if corpus.is_dir() else []
    if not samples:
        ap.error(f"no rendered corpus in {corpus}: run `vqscope train configs/vqscope-lite.toml --cache-dir {args.work_dir}` first")
    log(f"{len(samples)} samples; reading features (extracted once by vqscope train)")
    clips = extract_synth_features(corpus, samples, UNION, workers=1, log=log)
    model = Model.load(weights)
    net = model.network.eval()
    x = clips.features[:, columns_of(model.features, UNION)]
    dims, p = predict_fine(net, x)
    with torch.no_grad():
        k = net.severity_head(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).clamp(0, 1).numpy()

    n, owner = len(samples), clips.sample_index
    source = np.array([s.source for s in samples])
    test = np.flatnonzero(np.array([s.split for s in samples]) == "test")
    mix = np.array([i for i in test if samples[i].kind == "mix"])
    clean = {s: [i for i in test if source[i] == s and not samples[i].recipe] for s in set(source[test])}
    target = np.array([[s.dimensions[d] for d in DIMENSIONS] for s in samples])
    model_dims = np.stack([video_means(dims[:, j], owner, n) for j in range(len(DIMENSIONS))], axis=1)
    vp = pooled_probabilities(p, owner, n)
    true_p, true_k = (clips.presence > 0).astype(np.float64), clips.keep

    def srocc(scores: np.ndarray, videos: np.ndarray, dim: str) -> float:
        return agreement(scores[videos], target[videos, DIMENSIONS.index(dim)]).srocc

    def auc(scores: np.ndarray, pos, neg) -> float:
        """ROC AUC of `scores` (one per video) of the videos `pos` against the videos `neg`."""
        return roc_auc(np.r_[scores[pos], scores[neg]], np.r_[np.ones(len(pos)), np.zeros(len(neg))])

    out = [f"# Where vqscope-lite@{args.version} loses dimension SROCC (held-out sources)", "",
           f"`python scripts/fine_limits.py --work-dir WORK --version {args.version}`: "
           f"{len(set(source[test]))} held-out sources, {len(mix)} graded mixes.", "",
           "## 1. Oracles: one type replaced by the truth", "",
           "SROCC on the graded mixes of the model as shipped, of its composition with one type's "
           "presence and severity replaced clip by clip by the truth, and with all of them replaced.", "",
           "| dimension | model | composed | type replaced: SROCC | all true |", "| --- | --- | --- | --- | --- |"]
    for dim in DIMENSIONS[:-1]:
        score = video_means(composed(p, k, dim), owner, n)
        each = []
        for t in types_of(dim):
            j = DISTORTION_TYPES.index(t)
            pp, kk = p.copy(), k.copy()
            pp[:, j], kk[:, j] = true_p[:, j], true_k[:, j]
            each.append(f"{t} {srocc(video_means(composed(pp, kk, dim), owner, n), mix, dim):.3f}")
        perfect = srocc(video_means(composed(true_p, true_k, dim), owner, n), mix, dim)
        out.append(f"| {dim} | {srocc(model_dims[:, DIMENSIONS.index(dim)], mix, dim):.3f} | "
                   f"{srocc(score, mix, dim):.3f} | {'; '.join(each)} | {perfect:.3f} |")

    out += ["", "## 2. Each type pooled over sources and within one source", "",
            "ROC AUC of the video probability, distorted videos (the type on at least half the frames) "
            "against videos without it: pooled over the held-out sources; the mean (and lowest) within "
            "one source; pooled again after subtracting each source's logit on its undistorted video.", "",
            "| type | pooled | within a source: mean (lowest) | source baseline subtracted |",
            "| --- | --- | --- | --- |"]
    logit = np.log(np.clip(vp, 1e-6, 1 - 1e-6) / np.clip(1 - vp, 1e-6, 1))
    for j, t in enumerate(DISTORTION_TYPES):
        presence = np.array([s.presence[t] for s in samples])
        pos, neg = test[presence[test] >= 0.5], test[presence[test] == 0]
        per_source = [(pos[source[pos] == s], neg[source[neg] == s]) for s in sorted(clean)]
        within = [auc(vp[:, j], a, b) for a, b in per_source if len(a) >= 3 and len(b) >= 3]
        shifted = logit[:, j].copy()
        for s, rows in clean.items():
            shifted[source == s] -= np.median(logit[rows, j])
        out.append(f"| {t} | {auc(vp[:, j], pos, neg):.3f} | "
                   f"{np.mean(within):.3f} ({np.min(within):.2f}) | {auc(shifted, pos, neg):.3f} |")

    kinds = [CAMERA] + [kind for kind, _ in SOURCE_KINDS]
    out += ["", "## 3. By kind of source", "",
            "Dimension SROCC on the graded mixes of each kind of held-out source, and colour cast's ROC AUC "
            "there (pooled over that kind's sources).", "",
            "| kind of source | sources | mixes | " + " | ".join(DIMENSIONS) + " | colour cast AUC |",
            "| --- | --- | --- | " + " | ".join("---" for _ in DIMENSIONS) + " | --- |"]
    cast = DISTORTION_TYPES.index("color_cast")
    presence = np.array([s.presence["color_cast"] for s in samples])
    for kind in kinds:
        videos = np.array([i for i in mix if kind_of(source[i]) == kind])
        if len(videos) == 0:
            continue
        kind_test = np.array([i for i in test if kind_of(source[i]) == kind])
        cast_auc = auc(vp[:, cast], kind_test[presence[kind_test] >= 0.5], kind_test[presence[kind_test] == 0])
        figures = " | ".join(f"{srocc(model_dims[:, d], videos, dim):.3f}" for d, dim in enumerate(DIMENSIONS))
        out.append(f"| {kind} | {len(set(source[videos]))} | {len(videos)} | {figures} | {cast_auc:.3f} |")

    masking = {"mosaic", "compression", "noise"}
    out += ["", "## 4. By level, and without the steps that hide damage", "",
            "ROC AUC of the weakest types' video probability at each level (level 0 is meant to be barely "
            "visible), against the videos without the type: on all held-out videos, and on those without "
            "mosaic, compression or noise (the targets count a blur that a later mosaic averages away).", "",
            "| type | videos | all levels | level 0 | level 1 | level 2 | level 3 |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for t in ("color_cast", "defocus_blur", "motion_blur"):
        j = DISTORTION_TYPES.index(t)
        for label, keep in (("all", lambda i: True), ("without mosaic, compression, noise",
                                                       lambda i: not masking & {s["name"] for s in samples[i].recipe})):
            videos = [i for i in test if keep(i)]
            neg = [i for i in videos if samples[i].presence[t] == 0]
            pos = [i for i in videos if samples[i].presence[t] >= 0.5]
            level = {i: next(s["level"] for s in samples[i].recipe if s["name"] == t) for i in pos}
            by_level = " | ".join(f"{auc(vp[:, j], [i for i in pos if level[i] == lv], neg):.3f}" for lv in range(4))
            out.append(f"| {t} | {label} ({len(pos)} with it) | {auc(vp[:, j], pos, neg):.3f} | {by_level} |")

    text = "\n".join(out) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
        log(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
