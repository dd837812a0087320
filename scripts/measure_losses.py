"""Measure a loss table (data/loss_table.py) on a `vqscope synth` corpus folder.

    python scripts/measure_losses.py CORPUS_FOLDER --out src/vqscope/data/loss_tables/gmsd.json

Reads only the corpus's training and validation sources. The shipped `gmsd` table was measured
on the default recipe's corpus (configs/vqscope-lite.toml, 8,904 renders), see docs/training.md.
"""

from __future__ import annotations

import argparse
import sys

from vqscope.data.loss_table import measure_table
from vqscope.data.synth import read_samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus")
    parser.add_argument("--out", required=True)
    parser.add_argument("--name", default="gmsd")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    samples = read_samples(args.corpus)
    if not samples:
        print(f"error: {args.corpus} holds no corpus sample", file=sys.stderr)
        return 2
    try:
        table = measure_table(args.corpus, samples, name=args.name, workers=args.workers,
                              log=lambda m: print(m, file=sys.stderr, flush=True))
        table.save(args.out)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for t, v in table.losses.items():
        mark = "measured" if t in table.measured else "anchored"
        print(f"{t:16s} {mark:9s} " + " ".join(f"{x:.3f}" for x in v))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
