#!/usr/bin/env python3
"""Choosing what to rate: learning curves of a head fitted on chosen versus random ratings.

    python bench/study_selection.py [--seeds 10] [--pool 3000] [--sizes 50,100,...]
                                    [--strategies chosen,random,...] [--variants unequal,balanced]
                                    [--json FILE]

Runs `vqscope.studies.selection_sim.selection_experiment` on simulated pools (the design is in the
docstring of `simulate_pool`): for each variant, strategy and number of ratings, a ridge head
is fitted on the rated videos' simulated MOS and judged on every unrated video of the pool.
It prints, per variant, one table per metric (mean over seeds, sd after the +-), the current
model's own SROCC, and how many random ratings do as well as 150 chosen ones.

Variants: "unequal" (a few kinds of content dominate; the model is wrong per kind by sd 12
points) and "balanced" (kinds of equal size, systematic error sd 3 points). Strategies:
chosen (quantile score bands + k-centre, the default of choose_items), random, chosen-width
(equal-width bands + k-centre), k-centre-only (one band) and width-bands-only (equal-width
bands, random inside). Needs scikit-learn. Takes about 2 minutes for 10 seeds on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vqscope.studies.selection_sim import (
    METRICS,
    STRATEGIES,
    VARIANTS,
    Experiment,
    selection_experiment,
)

LABELS = {
    "srocc": "SROCC with the truth on unrated videos (higher is better)",
    "rmse": "RMSE on 1-5, unrated videos (lower is better)",
    "worst_kind_rmse": "RMSE on 1-5 on the kind of content the head gets most wrong (lower is better)",
    "extremes_rmse": "RMSE on 1-5 on the 10% best and 10% worst videos (lower is better)",
}


def _list(text: str, allowed: tuple[str, ...] | None = None) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if allowed is not None:
        bad = [t for t in items if t not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown: {', '.join(bad)} (choose from {', '.join(allowed)})")
    return items


def table(exp: Experiment, metric: str) -> str:
    sizes = next(iter(exp.curves.values())).sizes
    lines = [f"  {LABELS[metric]}", "  " + f"{'N':>17}" + "".join(f"{n:>14}" for n in sizes)]
    for name, curve in exp.curves.items():
        cells = "".join(f"{f'{m:.3f}+-{s:.3f}':>14}" for m, s in zip(curve.mean(metric), curve.sd(metric)))
        lines.append(f"  {name:>17}{cells}")
    return "\n".join(lines)


def report(exp: Experiment, seconds: float) -> str:
    c = exp.config
    head = (f"== variant {exp.variant}: {c.videos} videos, {c.features} features, {c.clusters} kinds "
            f"(share ~ 1/k^{c.cluster_exponent:g}), systematic error sd {c.systematic_sd:g} points, "
            f"slope {c.gain_range[0]:g}-{c.gain_range[1]:g}, {c.raters} raters; {exp.seeds} seeds, {seconds:.0f} s")
    out = [head, f"  current model's SROCC with the truth (whole pool): {exp.model_srocc:.3f}"]
    for metric in METRICS:
        out.append(table(exp, metric))
    if "chosen" in exp.curves and "random" in exp.curves and 150 in exp.curves["chosen"].sizes:
        sizes = exp.curves["random"].sizes
        for metric in ("srocc", "worst_kind_rmse"):
            n = exp.matched_at(150, metric)
            text = f"more than {sizes[-1]}" if n is None else (f"{sizes[0]} or fewer" if n <= sizes[0] else f"about {n:.0f}")
            out.append(f"  random ratings matching 150 chosen, by {metric}: {text}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="simulated pools per variant (default 10)")
    parser.add_argument("--pool", type=int, default=3000, help="videos per pool (default 3000)")
    parser.add_argument("--sizes", type=lambda t: [int(v) for v in _list(t)], default=[50, 100, 150, 200, 300, 500, 1000])
    parser.add_argument("--strategies", type=lambda t: _list(t, STRATEGIES), default=list(STRATEGIES))
    parser.add_argument("--variants", type=lambda t: _list(t, tuple(VARIANTS)), default=list(VARIANTS))
    parser.add_argument("--bands", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the curves as JSON to this file")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.pool < 100 or max(args.sizes) >= args.pool:
        parser.error("need --seeds >= 1, --pool >= 100 and every size below the pool")

    results = []
    for variant in args.variants:
        config = replace(VARIANTS[variant], videos=args.pool)
        start = time.perf_counter()
        exp = selection_experiment(config, args.sizes, args.seeds, args.strategies, args.bands)
        exp.variant = variant
        print(report(exp, time.perf_counter() - start), flush=True)
        results.append(exp.to_dict())
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
