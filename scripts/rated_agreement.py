#!/usr/bin/env python3
"""Agreement of models with people on the rated real videos of ../shared/rated (evaluation only).

    python scripts/rated_agreement.py [--model vqscope-lite] [--model M2 ...] [--rated ../shared/rated]

Scores each video of `labels.csv` and prints, per model, the table of MOS against score and
grade, and the Spearman correlation within each database (KoNViD-1k and LSVQ were rated by
different people on different scales, so rank within a database first) and pooled on the
0-100 mapping. Seven videos measure nothing precisely: a rank correlation on seven has a 95%
interval about 0.8 wide. These videos are for evaluation only: nothing may be trained, tuned,
selected or chosen on them, and this script only reports.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

from scipy.stats import spearmanr

HERE = Path(__file__).resolve().parent
DEFAULT_RATED = HERE.parents[1] / "shared" / "rated"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=None, help="model name or file (repeatable)")
    parser.add_argument("--rated", default=str(DEFAULT_RATED), help="folder with labels.csv (default ../shared/rated)")
    args = parser.parse_args(argv)
    labels = Path(args.rated) / "labels.csv"
    if not labels.is_file():
        print(f"rated_agreement: {labels} not found (../shared/rated is absent)", file=sys.stderr)
        return 2
    rows = list(csv.DictReader(labels.open(encoding="utf-8")))

    import vqscope

    for name in args.model or ["vqscope-lite"]:
        model = vqscope.load_model(name)
        scored = []
        print(f"\n{model.id} on {len(rows)} rated videos of {args.rated}")
        print(f"  {'video':<30} {'database':<10} {'MOS':>7} {'0-100':>6} {'score':>6}  grade")
        for row in rows:
            path = os.path.normpath(os.path.join(args.rated, row["file"]))
            result = model.score(path)
            scored.append((row["dataset"], float(row["mos_0_100"]), result.score))
            print(f"  {os.path.basename(path):<30} {row['dataset']:<10} {float(row['mos']):>7.2f} "
                  f"{float(row['mos_0_100']):>6.1f} {result.score:>6.1f}  {result.grade}")
        for database in sorted({d for d, _, _ in scored}):
            part = [(m, s) for d, m, s in scored if d == database]
            rho = spearmanr([m for m, _ in part], [s for _, s in part]).statistic if len(part) > 2 else float("nan")
            print(f"  SROCC within {database} ({len(part)} videos): {rho:.2f}")
        rho = spearmanr([m for _, m, _ in scored], [s for _, _, s in scored]).statistic
        print(f"  SROCC pooled on the 0-100 mapping ({len(scored)} videos): {rho:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
