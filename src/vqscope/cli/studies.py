"""`vqscope study ...`: rating studies from the command line.

    vqscope study create NAME [VIDEOS...] [--jobs ID,..] [--since 7d --tag T] [--select N] ...
    vqscope study list | show ID | close ID
    vqscope study invite ID --raters N [--names a,b] [--base-url URL]   the raters' links
    vqscope study results ID [--json]                                    MOS, intervals, screening
    vqscope study export ID --out FILE [--format csv|finevd|ratings]     a dataset `vqscope train` reads
    vqscope study import ID RATINGS.csv | --new NAME RATINGS.csv [--videos DIR]
    vqscope study thresholds ID --model M --out FILE [--version N]       grades set by people
    vqscope study plan --videos N --raters R [--json]                    how many raters for what precision

The commands work on the service's store directly (the same --data-dir / --db as `vqscope
serve`), so they run beside a live service or without one; raters rate in the service.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .common import add_store_options, log, open_store

_STORE_COMMANDS = ("create", "list", "show", "close", "invite", "results", "export", "import", "thresholds")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "study", help="rating studies: people rate videos, their MOS trains models and sets grades",
        description="Run a rating study on your own videos (ACR on the 5-level P.910 scale, the FineVD form, or "
                    "pairwise), screen raters (BT.500, P.913 via sureal), export the MOS as a dataset, fit grade "
                    "thresholds to it. Raters rate in `vqscope serve` at the links `study invite` prints.")
    commands = p.add_subparsers(dest="study_command", metavar="COMMAND")
    commands.required = True

    c = commands.add_parser("create", help="make a study from videos, scored jobs or a query over jobs")
    c.add_argument("name", help="the study's name")
    c.add_argument("videos", nargs="*", metavar="VIDEO", help="video files on this server")
    c.add_argument("--method", choices=("acr", "finevd", "pairwise"), default="acr",
                   help="acr: one 1-5 score (default); finevd: six dimensions + distortion types; pairwise: "
                        "which of two close calls is better")
    c.add_argument("--jobs", default=None, metavar="ID,...", help="ids of scored jobs of the service")
    c.add_argument("--since", default=None, help="scored jobs created since (ISO 8601, epoch s, or e.g. 7d)")
    c.add_argument("--until", default=None, help="... and before")
    c.add_argument("--tag", action="append", default=[], help="scored jobs with this tag (repeatable: all of them)")
    c.add_argument("--grade", action="append", default=[], help="scored jobs with this overall grade (repeatable)")
    c.add_argument("--limit", type=int, default=1000, help="the query draws on at most this many jobs (default 1000)")
    c.add_argument("--select", type=int, default=None, metavar="N",
                   help="choose the N videos that teach most: spread over the score range and feature space")
    c.add_argument("--bands", type=int, default=5, help="score bands of --select (default 5)")
    c.add_argument("--model", "-m", default=None,
                   help="model that scores VIDEOs for --select (default: the service's model, vqscope-lite)")
    c.add_argument("--per-rater", type=int, default=None, metavar="N", help="videos (pairs) per rater (default: all)")
    c.add_argument("--repeats", type=int, default=2, help="videos each rater rates twice (default 2)")
    c.add_argument("--anchor", action="append", default=[], metavar="VIDEO=LABEL",
                   help="a training example and its label (bad ... excellent); repeatable")
    c.add_argument("--gold", action="append", default=[], metavar="VIDEO=SCORE",
                   help="a gold item and its expected 1-5 answer; repeatable")
    c.add_argument("--pairs", type=int, default=None, help="pairwise: close-call pairs (default: one per video)")
    c.add_argument("--instructions", default="", help="text shown to raters (or @FILE)")
    c.add_argument("--no-full-view", action="store_true", help="let raters answer before a video has played through")
    c.add_argument("--copy", action="store_true", help="copy the videos into the data folder")
    c.add_argument("--path-root", action="append", default=[], metavar="DIR",
                   help="only accept videos under DIR (repeatable)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--json", action="store_true")

    commands.add_parser("list", help="studies, newest first").add_argument("--json", action="store_true")
    s = commands.add_parser("show", help="a study's videos, raters and their progress")
    s.add_argument("study")
    s.add_argument("--json", action="store_true")
    commands.add_parser("close", help="stop taking ratings").add_argument("study")

    i = commands.add_parser("invite", help="invite raters: prints each rater's link (shown only now)")
    i.add_argument("study")
    i.add_argument("--raters", type=int, default=None, metavar="N", help="this many raters, named rater-N")
    i.add_argument("--names", default=None, metavar="A,B,...", help="raters' names")
    i.add_argument("--base-url", default="http://127.0.0.1:8000", help="where raters reach the service")
    i.add_argument("--json", action="store_true")

    r = commands.add_parser("results", help="MOS with 95%% intervals, per dimension, tags; rejected raters")
    r.add_argument("study")
    r.add_argument("--json", action="store_true")

    e = commands.add_parser("export", help="the MOS as a dataset (`vqscope train --rated csv:FILE`) or raw ratings")
    e.add_argument("study")
    e.add_argument("--out", "-o", required=True, metavar="FILE")
    e.add_argument("--format", choices=("csv", "finevd", "ratings"), default="csv",
                   help="csv: path, mos, dimensions (default); finevd: FineVD-like JSON; ratings: every answer")

    m = commands.add_parser("import", help="import ratings collected elsewhere (CSV: rater, video, score, ...)")
    m.add_argument("study", nargs="?", default=None, help="the study to add them to")
    m.add_argument("ratings", metavar="RATINGS.csv")
    m.add_argument("--new", default=None, metavar="NAME", help="make a new study of the CSV's videos instead")
    m.add_argument("--videos", default=None, metavar="DIR", help="with --new: where the CSV's videos are")
    m.add_argument("--method", choices=("acr", "finevd"), default=None,
                   help="with --new: the form (default: finevd when the CSV has dimension columns)")

    t = commands.add_parser("thresholds", help="fit a model's grade thresholds to a study: a new model version")
    t.add_argument("study")
    t.add_argument("--model", "-m", default=None, help="the model whose scale to fit (default: vqscope-lite)")
    t.add_argument("--out", "-o", default=None, metavar="FILE", help="the new model file (default: only show)")
    t.add_argument("--version", type=int, default=None, help="version of the new model (default: the model's + 1)")
    t.add_argument("--json", action="store_true")

    pl = commands.add_parser("plan", help="simulate raters: how precise a study of this size will be")
    pl.add_argument("--videos", type=int, required=True)
    pl.add_argument("--raters", type=int, required=True)
    pl.add_argument("--per-rater", type=int, default=None, help="videos each rater sees (default: all)")
    pl.add_argument("--careless", type=float, default=0.1, help="share of careless raters (default 0.1)")
    pl.add_argument("--runs", type=int, default=20, help="simulated studies (default 20)")
    pl.add_argument("--seed", type=int, default=0)
    pl.add_argument("--json", action="store_true")

    for command in _STORE_COMMANDS:
        add_store_options(commands.choices[command])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    command = args.study_command
    if command == "plan":
        return _plan(args)
    # the local user is the operator: any path, unless confined with --path-root
    roots = tuple(Path(p) for p in getattr(args, "path_root", []) or ()) or None
    with open_store(args, path_roots=roots) as (config, jobs, studies):
        return _COMMANDS[command](args, config, jobs, studies)


# -- the commands ---------------------------------------------------------------------------------
def _create(args, config, jobs, studies) -> int:
    from ..service.times import parse_time
    from ..service.store import JobFilter
    from ..studies.builder import StudySpec, build_study
    from ..studies.design import StudyConfig

    instructions = args.instructions
    if instructions.startswith("@"):
        try:
            instructions = Path(instructions[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--instructions {instructions}: {exc.strerror or exc}") from None
    try:
        study_config = StudyConfig(method=args.method, per_rater=args.per_rater, repeats=args.repeats,
                                   instructions=instructions, full_view=not args.no_full_view, seed=args.seed)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    query = None
    if args.since or args.until or args.tag or args.grade:
        now = jobs.clock()
        try:
            query = JobFilter(tags=tuple(args.tag), grades=tuple(args.grade), since=parse_time(args.since, now),
                              until=parse_time(args.until, now))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    spec = StudySpec(
        name=args.name, config=study_config, paths=list(args.videos),
        jobs=[j.strip() for j in (args.jobs or "").split(",") if j.strip()], query=query, query_limit=args.limit,
        select=args.select, bands=args.bands, anchors=[_extra(a, "anchor") for a in args.anchor],
        gold=[_extra(g, "gold") for g in args.gold], pairs=args.pairs, copy=args.copy,
    )
    model = None
    score_paths = None
    if args.select is not None and args.videos:
        from ..zoo import load_model

        model = load_model(args.model)
        score_paths = _scorer(model)
    built = build_study(spec, jobs=jobs, studies=studies, media_dir=config.data_dir / "studies" / "media",
                        path_roots=config.path_roots, model=model.id if model else None, score_paths=score_paths)
    study = built.study
    if args.json:
        from ..service.studies import item_out, study_out

        print(json.dumps({**study_out(study), "item_list": [item_out(i) for i in studies.items(study.id)],
                          "skipped": [{"source": s.source, "reason": s.reason} for s in built.skipped]}, indent=2))
    else:
        print(f"study {study.id} ({study.name}): {study.items} items, method {study.method}")
        for item in studies.items(study.id):
            extra = f"  [{item.kind}{': ' + item.label if item.label else ''}]" if item.kind != "video" else ""
            why = f"  {item.reason}" if item.reason else ""
            print(f"  {item.video}{extra}{why}")
        print(f"next: vqscope study invite {study.id} --raters N")
    for s in built.skipped:
        log(f"left out {s.source}: {s.reason}")
    return 0


def _extra(text: str, kind: str) -> Any:
    from ..studies.builder import Extra

    video, eq, value = text.rpartition("=")
    if not eq or not video or not value:
        raise ConfigError(f"--{kind} {text!r} is not VIDEO={'LABEL' if kind == 'anchor' else 'SCORE'}")
    job = video[4:] if video.startswith("job:") else None
    path = None if job else video
    if kind == "anchor":
        return Extra(path=path, job=job, label=value.strip())
    try:
        return Extra(path=path, job=job, score=int(value))
    except ValueError:
        raise ConfigError(f"--gold {text!r}: the score is a whole number from 1 to 5") from None


def _scorer(model: Any):
    from ..errors import VQScopeError

    def score(paths: list[str]) -> list[dict[str, Any]]:
        out = []
        for n, path in enumerate(paths, start=1):
            log(f"scoring {n}/{len(paths)} for --select: {path}")
            try:
                out.append(model.score(path).to_dict())
            except VQScopeError as exc:
                out.append({"status": "error", "error": exc.kind, "message": exc.message})
        return out

    return score


def _list(args, config, jobs, studies) -> int:
    from ..service.studies import study_out

    rows = [study_out(s) for s in studies.list()]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("no studies yet (vqscope study create NAME VIDEOS...)")
    for row in rows if not args.json else ():
        print(f"{row['id']}  {row['name'][:30]:<30} {row['method']:<8} {row['state']:<6} {row['items']:>4} items "
              f"{row['raters']:>3} raters {row['ratings']:>5} ratings")
    return 0


def _show(args, config, jobs, studies) -> int:
    from ..service.studies import item_out, rater_out, study_out

    study = studies.get(args.study)
    items, raters = studies.items(study.id), studies.raters(study.id)
    if args.json:
        print(json.dumps({**study_out(study), "item_list": [item_out(i) for i in items],
                          "rater_list": [rater_out(r) for r in raters]}, indent=2))
        return 0
    print(f"study {study.id} ({study.name}): {study.method}, {study.state}, {study.items} items, "
          f"{study.raters} raters, {study.ratings} ratings")
    for item in items:
        score = f"{item.model_score:5.1f}" if item.model_score is not None else "    -"
        kind = "" if item.kind == "video" else f" [{item.kind}]"
        print(f"  {item.id}  {score}  {item.video}{kind}")
    for rater in raters:
        print(f"  rater {rater.name}: {rater.done}/{rater.total} answered ({rater.source})")
    return 0


def _close(args, config, jobs, studies) -> int:
    study = studies.close(args.study)
    print(f"study {study.id} closed: {study.ratings} ratings kept")
    return 0


def _invite(args, config, jobs, studies) -> int:
    names = [n.strip() for n in (args.names or "").split(",") if n.strip()]
    if args.raters is not None:
        if args.raters < 1:
            raise ConfigError("--raters must be at least 1")
        first = studies.get(args.study).raters
        names += [f"rater-{first + len(names) + k + 1}" for k in range(args.raters)]
    if not names:
        raise ConfigError("give --raters N or --names A,B,...")
    base = args.base_url.rstrip("/")
    invitations = studies.invite(args.study, names)
    if args.json:
        print(json.dumps([{"rater": inv.rater.id, "name": inv.rater.name, "link": base + inv.path,
                           "tasks": inv.rater.total} for inv in invitations], indent=2))
    else:
        for inv in invitations:
            print(f"{inv.rater.name}\t{base}{inv.path}")
        log("each link is shown only now: send it to its rater (the store keeps only a hash of it)")
    return 0


def _results(args, config, jobs, studies) -> int:
    from ..studies.results import study_results

    results = study_results(studies, args.study)
    print(json.dumps(results.to_dict(), indent=2) if args.json else results.text())
    return 0


def _export(args, config, jobs, studies) -> int:
    from ..studies.exchange import write_export

    rows = write_export(studies, args.study, args.format, args.out)
    hint = f" (train on it: vqscope train --rated csv:{args.out} ...)" if args.format == "csv" else ""
    print(f"wrote {rows} rows to {args.out}{hint}")
    return 0


def _import(args, config, jobs, studies) -> int:
    from ..studies.exchange import read_ratings_file

    if (args.study is None) == (args.new is None):
        raise ConfigError("give a study id to import into, or --new NAME for a new study")
    rows = read_ratings_file(args.ratings)
    study_id = args.study
    if args.new is not None:
        study_id = _study_for_import(args, studies, rows).id
    counts = studies.import_ratings(study_id, rows)
    print(f"study {study_id}: {counts['added']} ratings imported, {counts['skipped']} already there, "
          f"{counts['raters']} raters")
    return 0


def _study_for_import(args, studies, rows):
    """A study whose items are the CSV's videos (found under --videos where given)."""
    from ..studies.design import StudyConfig
    from ..studies.store import NewItem

    method = args.method or ("finevd" if any(r.get("dimensions") for r in rows) else "acr")
    folder = Path(args.videos) if args.videos else None
    if folder is not None and not folder.is_dir():
        raise ConfigError(f"--videos {folder}: no such folder")
    items = []
    for name in dict.fromkeys(r["item"] for r in rows):
        path = (folder / name) if folder is not None else None
        found = str(path.resolve()) if path is not None and path.is_file() else None
        items.append(NewItem(video=name, media=found, source_kind="import", source=found))
    missing = sum(i.media is None for i in items)
    if folder is not None and missing:
        log(f"{missing} of {len(items)} videos are not in {folder}: they cannot be trained on")
    return studies.create(args.new, StudyConfig(method=method, repeats=0), items)


def _thresholds(args, config, jobs, studies) -> int:
    from ..zoo import load_model
    from ..studies.results import study_results
    from ..studies.thresholds import fit_grade_thresholds, regrade

    model = load_model(args.model)
    results = study_results(studies, args.study)
    if results.analysis is None:
        raise ConfigError(f"study {args.study} has no ratings yet")
    rejected = set(results.analysis.rejected)
    ratings, _ = studies.collected(args.study)
    accepted = [r for r in ratings if r.kind == "main" and r.rater not in rejected]
    scores = _model_values(model, results, studies)
    fit = fit_grade_thresholds(scores, accepted, old=model.grades)
    if args.json:
        print(json.dumps({"model": model.id, **fit.to_dict()}, indent=2))
    else:
        print(f"{model.id}, grades fitted to study {args.study} ({len(rejected)} rejected raters left out):")
        print(fit.table())
    if args.out:
        from ..errors import OutputError

        new = regrade(model, fit, version=args.version, study=args.study)
        if os.path.abspath(args.out) == os.path.abspath(model.path or ""):
            raise ConfigError("--out must be a new file: a published model file is never changed in place")
        try:
            new.save(args.out)
        except OSError as exc:
            raise OutputError(f"{args.out}: cannot write the model file ({exc.strerror})") from None
        log(f"wrote {new.id} to {args.out}")
    return 0


def _model_values(model: Any, results: Any, studies: Any) -> dict[str, float]:
    """Item id -> the model's value on its grade basis: the stored score where the study was
    scored by this model, else the model scores the video now."""
    from ..errors import VQScopeError
    from ..studies.exchange import media_path

    values: dict[str, float] = {}
    scaled = model.grades.basis == "scaled"
    for item in results.items:
        if item.kind != "video":
            continue
        score = item.model_score if results.study.model == model.id else None
        if score is None:
            path = media_path(item)
            if path is None:
                continue
            try:
                score = model.score(path).score
            except VQScopeError as exc:
                log(f"left out {item.video}: {exc.message}")
                continue
        values[item.id] = model.calibration.scaled(score) if scaled and model.calibration else float(score)
    return values


def _plan(args: argparse.Namespace) -> int:
    from ..studies.simulate import plan_study

    try:
        plan = plan_study(args.videos, args.raters, careless_share=args.careless, per_rater=args.per_rater,
                          runs=args.runs, seed=args.seed)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    print(json.dumps(plan.to_dict(), indent=2) if args.json else plan.text())
    return 0




_COMMANDS = {"create": _create, "list": _list, "show": _show, "close": _close, "invite": _invite,
             "results": _results, "export": _export, "import": _import, "thresholds": _thresholds}
