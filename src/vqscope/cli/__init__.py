"""The `vqscope` command.

    vqscope score FILE                      readable summary and clip timeline
    vqscope score FILE --json               the result contract as JSON
    vqscope score DIR_OR_FILES... --out results.jsonl|.csv|.parquet
    vqscope probe FILE                      what the decoder sees
    vqscope models                          shipped models
    vqscope backbones                       registered feature extractors
    vqscope features DATASET_SPEC...        extract and cache clip features of a dataset
    vqscope train CONFIG.toml               train a model (one head per dataset) from a config
    vqscope train --from-study ID | --ratings CSV | --rated SPEC ...   heads fitted to people's ratings
    vqscope eval MODEL DATASET_SPEC...      SROCC/KRCC/PLCC/RMSE with intervals, report, plots
    vqscope calibrate MODEL BENCHMARK... --out FILE   percentile scale on a fixed benchmark set
    vqscope serve                           HTTP service, workers, dashboard, /metrics
    vqscope ask FILE "is it shaky?"         yes/no, which distortions, how a dimension is
    vqscope describe FILE [--llm URL]       text descriptions (vqscope's, or a language model's)
    vqscope batch LIST --out DIR.parquet [--ray [ADDRESS]]   score a list of videos or URLs (Ray Data)
    vqscope synth SOURCES... --out DIR      a labelled corpus of the twelve distortion types
    vqscope export onnx|tensorrt [MODEL] --out DIR   other runtimes
    vqscope study create|invite|results|export|import|thresholds|plan ...   rating studies

Every expected failure prints one line, `vqscope: error: ...`, and exits with the code of its
error class (see vqscope.errors); tracebacks appear only with --debug. That rule lives here, in
`main`, once; the commands live in one module per group, each a set of parser builders and
handlers with a `register(sub)`:

    scoring.py    score, probe, models, backbones, ask, describe, batch
    training.py   features, train, eval, calibrate, synth
    service.py    serve
    export.py     export onnx | tensorrt
    studies.py    study create | invite | results | export | import | thresholds | plan | ...
    common.py     log lines, progress bars, the console
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .. import __version__
from ..errors import EXIT_INTERNAL, VQScopeError
from . import export, scoring, service, studies, training
from .common import silence_stdout


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vqscope", description="No-reference video quality assessment.")
    parser.add_argument("--version", action="version", version=f"vqscope {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for group in (scoring, training, service, export, studies):
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except VQScopeError as exc:
        if args.debug:
            raise
        print(f"vqscope: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("vqscope: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        silence_stdout()
        return 0
    except Exception as exc:  # a bug: say so in one line, keep the traceback for --debug
        if args.debug:
            raise
        print(f"vqscope: internal error: {type(exc).__name__}: {exc} (run with --debug for details)", file=sys.stderr)
        return EXIT_INTERNAL
