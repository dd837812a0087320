#!/usr/bin/env python3
"""Does each result tell one story? The default model on the real clips, before and after.

    python scripts/result_story.py [--save after.json] [--out docs/result-story.md]
        [--before before.json --before-command "how before.json was made"]

Scores the clips of ../shared/media (every .mp4 but the empty one) and the rated videos of
../shared/rated (labels.csv; two of them are ../media clips, scored once) with the default
model, and writes, per video, the overall score and grade, each dimension's score and grade,
the likely distortions (p >= 0.5) and the text. `--save` keeps the results as JSON, so a run
of this script with the library of another commit (the "before") can be set beside this one
with `--before`.

Counted, on the five taxonomy dimensions of every video (issue 19, "one story per result"):
- grades, by grade;
- contradictions of three kinds: a dimension graded good or excellent while a type of it is
  likely (read from grades and probabilities only, not from the text: since the change, the
  cap in calibration.grade_dimension makes this zero by construction); an overall below every
  dimension with a description that does not say why (counted by the sentence describe.py
  writes, "... sits below every dimension: ...", and to be read in the texts below); a video
  with a short side under 256 px graded "excellent" in blur or artifact without a warning.
The rated videos are for evaluation only: their MOS is set beside the score (Spearman rank
agreement), nothing is fitted or chosen on them.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
TAXONOMY_DIMENSIONS = ("color", "noise", "artifact", "blur", "temporal")
TYPES_OF = {
    "color": ("overexposure", "underexposure", "color_cast"),
    "noise": ("noise",),
    "artifact": ("compression", "mosaic", "oversharpening"),
    "blur": ("defocus_blur", "motion_blur"),
    "temporal": ("stutter", "jitter", "flicker"),
}
LIKELY = 0.5
INTRO = """What changed (issue 19, "one story per result"); scores and probabilities are untouched:
- Dimension grades of models trained on the designed damage scale (vqscope-lite@2, @6, @7: their
  files say so) read that scale (calibration.designed_damage_scale): excellent when less than half
  the mildest trained level's loss is expected (>= 94.2), good about the mildest level (>= 78.4),
  then fair, poor, bad about the next three (>= 60.2, >= 40.4). Before, they used the overall
  score's 20-point bands, whose "excellent" took in a whole trained level of damage.
- A dimension is graded at most fair while the same result calls one of its types likely
  (p >= 0.5), video and clip alike; its sentence says what the score alone reads and why the
  grade is lower. The overall grade is not capped (it is the result's grade, on the model's own,
  possibly rater-fitted scale); where it stays good or excellent beside likely types, the text
  says that the overall score already counts them.
- Where overall sits below every dimension, the description says why, from how the model made
  it: the dimensions' losses compound (their product), and overall is averaged with an overall
  regressor that names no distortion.
- A video whose short side is far below the training videos' (read from the model's feature
  normalisation: under 210 px for vqscope-lite@7) gets a warning, a sentence, and a caveat on good
  or excellent noise, artifact and blur grades."""
SMALL = 256  # short side (px) under which a blur or artifact "excellent" needs a warning (the issue's 192x144)


def videos(media: Path, rated: Path) -> list[tuple[Path, dict[str, str] | None]]:
    """(path, MOS row or None) for every video, each file once, media first."""
    labels: dict[Path, dict[str, str]] = {}
    if (rated / "labels.csv").is_file():
        with open(rated / "labels.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                labels[(rated / row["file"]).resolve()] = row
    out: list[tuple[Path, dict[str, str] | None]] = []
    for path in sorted(media.glob("*.mp4")):
        if path.stat().st_size > 0:
            out.append((path.resolve(), labels.get(path.resolve())))
    seen = {p for p, _ in out}
    out += [(p, row) for p, row in labels.items() if p not in seen and p.is_file()]
    return out


def score_all(model_name: str | None, items: Sequence[tuple[Path, dict[str, str] | None]],
              media: Path) -> list[dict[str, Any]]:
    from vqscope.zoo import load_model

    model = load_model(model_name)
    out = []
    for path, row in items:
        result = model.score(path).to_dict()
        result.pop("clips", None)
        result["video"] = path.name
        result["mos_0_100"] = None if row is None else float(row["mos_0_100"])
        result["dataset"] = None if row is None else row["dataset"]
        result["media"] = path.parent == media
        out.append(result)
        print(f"{path.name}: {result['score']:.2f} {result['grade']}", file=sys.stderr)
    return out


def likely(result: dict[str, Any]) -> list[tuple[str, float]]:
    return sorted(((t, p) for t, p in result["distortions"].items() if p >= LIKELY), key=lambda tp: -tp[1])


def contradictions(result: dict[str, Any]) -> list[tuple[str, str]]:
    """What in one result says two things at once, as (kind, detail) (see the module docstring)."""
    found = []
    dims, probs = result["dimensions"], result["distortions"]
    for d in TAXONOMY_DIMENSIONS:
        if d not in dims:
            continue
        hits = [t for t in TYPES_OF[d] if probs.get(t, 0.0) >= LIKELY]
        if hits and dims[d]["grade"] in ("good", "excellent"):
            found.append(("likely type", f"{d} {dims[d]['grade']} with {', '.join(hits)} likely"))
    scores = [dims[d]["score"] for d in TAXONOMY_DIMENSIONS if d in dims]
    if scores and result["score"] < min(scores) and "below every dimension" not in result["description"]:
        found.append(("overall below", "overall below every dimension, unexplained"))
    small = any("smaller than" in w for w in result.get("warnings", []))
    if min(result["width"], result["height"]) < SMALL and not small:
        for d in ("blur", "artifact"):
            if dims.get(d, {}).get("grade") == "excellent":
                found.append(("small video", f"{d} excellent at {result['width']}x{result['height']} without a warning"))
    return found


def counts(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    grades = [r["dimensions"][d]["grade"] for r in results for d in TAXONOMY_DIMENSIONS if d in r["dimensions"]]
    kinds = [kind for r in results for kind, _ in contradictions(r)]
    rated = [r for r in results if r["mos_0_100"] is not None]
    return {
        "videos": len(results),
        "dimension_grades": len(grades),
        "by_grade": {g: grades.count(g) for g in ("excellent", "good", "fair", "poor", "bad")},
        "contradictions": len(kinds),
        "by_kind": {k: kinds.count(k) for k in ("likely type", "overall below", "small video")},
        "rated": len(rated),
        "srocc_mos": srocc(rated),
        "srocc_by_dataset": {name: (srocc(group), len(group)) for name in sorted({r["dataset"] for r in rated})
                             for group in [[r for r in rated if r["dataset"] == name]]},
    }


def srocc(rated: Sequence[dict[str, Any]]) -> float | None:
    """Spearman's rank correlation of score and MOS (0-100), None under three videos."""
    if len(rated) < 3:
        return None
    return round(float(spearmanr([r["score"] for r in rated], [r["mos_0_100"] for r in rated])[0]), 3)


def table(results: Sequence[dict[str, Any]]) -> list[str]:
    head = "| video | size | MOS 0-100 | overall | " + " | ".join(TAXONOMY_DIMENSIONS) + " | likely distortions |"
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for r in results:
        dims = " | ".join(f"{r['dimensions'][d]['score']:.1f} {r['dimensions'][d]['grade']}" for d in TAXONOMY_DIMENSIONS)
        mos = "" if r["mos_0_100"] is None else f"{r['mos_0_100']:.1f}"
        seen = ", ".join(f"{t} {p:.2f}" for t, p in likely(r)) or "none"
        lines.append(f"| {r['video']} | {r['width']}x{r['height']} | {mos} | {r['score']:.1f} {r['grade']} | {dims} | {seen} |")
    return lines


def texts(results: Sequence[dict[str, Any]]) -> list[str]:
    lines = []
    for r in results:
        lines.append(f"- **{r['video']}**: {r['description']}")
        for d in TAXONOMY_DIMENSIONS:
            text = r["dimensions"][d].get("description")
            if text:
                lines.append(f"  - {text}")
        for w in r.get("warnings", []):
            lines.append(f"  - warning: {w}")
        issues = contradictions(r)
        if issues:
            lines.append("  - contradictions: " + "; ".join(detail for _, detail in issues))
    return lines


def count_table(named: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
    lines = [("| run | videos | dimension grades | excellent | good | fair | poor | bad | contradictions (likely type / "
              "overall below / small video) | SROCC with MOS, rated (mixed scales) | per database |"),
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, c in named:
        g, k = c["by_grade"], c["by_kind"]
        per = ", ".join(f"{d} {v} ({n})" for d, (v, n) in c["srocc_by_dataset"].items() if v is not None) or "-"
        rho = f"{c['srocc_mos']} ({c['rated']} videos)" if c["srocc_mos"] is not None else "-"
        lines.append(f"| {name} | {c['videos']} | {c['dimension_grades']} | {g['excellent']} | {g['good']} | {g['fair']} | "
                     f"{g['poor']} | {g['bad']} | {c['contradictions']} ({k['likely type']} / {k['overall below']} / "
                     f"{k['small video']}) | {rho} | {per} |")
    return lines


def largest_change(after: Sequence[dict[str, Any]], before: Sequence[dict[str, Any]]) -> float:
    """The largest difference of any score or probability between two runs over the same videos."""
    pairs = list(zip(after, before))
    return max([abs(a["score"] - b["score"]) for a, b in pairs]
               + [abs(a["dimensions"][d]["score"] - b["dimensions"][d]["score"]) for a, b in pairs for d in a["dimensions"]]
               + [abs(p - b["distortions"][t]) for a, b in pairs for t, p in a["distortions"].items()])


def report(after: Sequence[dict[str, Any]], before: Sequence[dict[str, Any]] | None, command: str,
           before_command: str | None = None) -> str:
    media = [r for r in after if r["media"]]
    named = []
    for label, results in (("before", before), ("after", after)):
        if results:
            named += [(f"{label}, ../shared/media", [r for r in results if r["media"]]), (f"{label}, all", results)]
    lines = ["# One story per result: the default model on the real clips", "",
             (f"Made by `{command}` (scripts/result_story.py; its docstring says what is counted). "
              f"{len(media)} clips of ../shared/media and the rated videos of ../shared/rated ({len(after)} files; two "
              "rated videos are media clips). The rated videos are for evaluation only: nothing was fitted, tuned or "
              "chosen on them. Dimension grades are counted over the five taxonomy dimensions."), "",
             *([f"Before: `{before_command}`.", ""] if before and before_command else []),
             INTRO, "", *count_table([(name, counts(results)) for name, results in named]), ""]
    if before:
        moved = largest_change(after, before)
        lines += [(f"Scores {'unchanged' if moved == 0 else 'changed'}: the largest difference of any score or "
                   f"probability between the two runs is {moved:.4f}; grades and texts are what changed."), ""]
    lines += ["## After" if before else "## Results", "", *table(after), "", *texts(after), ""]
    if before:
        lines += ["## Before", "", *table(before), "", *texts(before), ""]
    return "\n".join(lines)


def matched(before: Sequence[dict[str, Any]], after: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The earlier run's results in the order of this one's, marked as this one's are."""
    by_name = {r["video"]: r for r in before}
    missing = [r["video"] for r in after if r["video"] not in by_name]
    if missing:
        raise SystemExit(f"--before lacks {', '.join(missing)}")
    return [{**by_name[r["video"]], "media": r["media"], "mos_0_100": r["mos_0_100"], "dataset": r["dataset"]}
            for r in after]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model name or file (default: the default model)")
    parser.add_argument("--media", type=Path, default=SHARED / "media")
    parser.add_argument("--rated", type=Path, default=SHARED / "rated")
    parser.add_argument("--save", type=Path, help="write these results as JSON")
    parser.add_argument("--before", type=Path, help="results JSON of an earlier run, shown beside these")
    parser.add_argument("--before-command", help="how the --before results were made, for the report")
    parser.add_argument("--out", type=Path, help="write the Markdown report here (default: stdout)")
    args = parser.parse_args(argv)
    items = videos(args.media, args.rated)
    if not items:
        print(f"no videos under {args.media} or {args.rated}", file=sys.stderr)
        return 2
    results = score_all(args.model, items, args.media.resolve())
    if args.save:
        args.save.write_text(json.dumps(results, indent=1))
    before = matched(json.loads(args.before.read_text()), results) if args.before else None
    shown = [a for a in (argv if argv is not None else sys.argv[1:])]
    if args.before_command:  # said once, on its own line
        at = shown.index("--before-command")
        del shown[at:at + 2]
    command = "python " + shlex.join(["scripts/result_story.py", *shown])
    text = report(results, before, command, args.before_command)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    print(json.dumps({name: counts(r) for name, r in (("before", before), ("after", results)) if r}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
