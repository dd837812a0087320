"""A study in and out: datasets for training, FineVD-like JSON, ratings CSV both ways.

Out:
- `csv`: one row per rated video, `path, mos` (1-5) and the dimension MOS where rated, with
  count, interval and standard deviation beside them: exactly what the `csv` dataset
  adapter reads, so `vqscope train --rated csv:FILE` (and `vqscope eval`) take it as it is.
  `path` is the original video (what a model scores), not the rating copy raters watched.
- `finevd`: a JSON list of records like FineVD's (video, overall and the five dimensions,
  plus the share of raters who saw each distortion type), read by the `finevd` adapter.
- `ratings`: every answer, one row each (rater, video, score, dimensions, tags, kind, time):
  the raw data, for other tools and for re-analysis.

In: a ratings CSV from anywhere (a crowdsourcing site's export): a rater column, a video
column and a score column, named as such sites name them, optional dimension columns
(color, noise, artifact, blur, temporal) and a tags column. The same columns the `ratings`
export writes, so an export imports back unchanged.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, TextIO

from ..errors import BadRatingError, OutputError
from ..taxonomy import DISTORTION_TYPES
from .ratings import RATED_DIMENSIONS
from .results import StudyResults, study_results
from .store import StudyStore

EXPORT_FORMATS = ("csv", "finevd", "ratings")

#: Column names accepted on import, lowercased; the first of each list is what export writes.
RATER_COLUMNS = ("rater", "worker", "worker_id", "workerid", "subject", "participant", "user", "observer")
VIDEO_COLUMNS = ("video", "item", "file", "filename", "file_name", "stimulus", "name", "video_name")
SCORE_COLUMNS = ("score", "rating", "answer", "value", "overall", "opinion")
TAG_COLUMNS = ("tags", "distortions")
KIND_COLUMNS = ("kind",)


def media_path(item: Any) -> str | None:
    """The file a model should score for an item: the original where it still exists."""
    if item.source and os.path.isfile(item.source):
        return item.source
    return item.media


def dataset_rows(results: StudyResults) -> list[dict[str, Any]]:
    """Rows of the `csv` export: videos with a MOS and a file on this server."""
    by_id = {i.id: i for i in results.items}
    rows = []
    for row in results.rows():
        path = media_path(by_id[row["item"]])
        if path is None:
            continue
        out = {"path": path, "mos": row["mos"]}
        for dim in RATED_DIMENSIONS:
            if dim in row["dimensions"]:
                out[dim] = row["dimensions"][dim]["mos"]
        ci = row["ci95"] or [None, None]
        out.update(count=row["count"], ci_low=ci[0], ci_high=ci[1], std=row["std"], video=row["video"],
                   item=row["item"])
        rows.append(out)
    return rows


def export_text(store: StudyStore, study_id: str, fmt: str) -> tuple[str, str, str]:
    """(text, media type, file name) of a study exported as `fmt` (one of EXPORT_FORMATS)."""
    if fmt not in EXPORT_FORMATS:
        raise BadRatingError(f"unknown export format {fmt!r} (formats: {', '.join(EXPORT_FORMATS)})")
    if fmt == "ratings":
        return _ratings_csv(store, study_id), "text/csv", f"study-{study_id}-ratings.csv"
    results = study_results(store, study_id)
    if results.analysis is None:
        raise BadRatingError(f"study {study_id} has no ratings yet: nothing to export")
    if fmt == "finevd":
        return json.dumps(_finevd_records(results), indent=1), "application/json", f"study-{study_id}.json"
    buffer = io.StringIO()
    _dataset_csv(dataset_rows(results), buffer)
    return buffer.getvalue(), "text/csv", f"study-{study_id}.csv"


def write_export(store: StudyStore, study_id: str, fmt: str, out: str | os.PathLike[str]) -> int:
    """Write an export to `out`; the number of rows (records) written."""
    text, _, _ = export_text(store, study_id, fmt)
    try:
        Path(out).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"{out}: cannot write the export ({exc.strerror or exc})", str(out)) from None
    return len(json.loads(text)) if fmt == "finevd" else max(0, text.count("\n") - 1)


def _dataset_csv(rows: list[dict[str, Any]], stream: TextIO) -> None:
    columns = ["path", "mos", *[d for d in RATED_DIMENSIONS if any(d in r for r in rows)],
               "count", "ci_low", "ci_high", "std", "video", "item"]
    writer = csv.DictWriter(stream, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def _finevd_records(results: StudyResults) -> list[dict[str, Any]]:
    by_id = {i.id: i for i in results.items}
    out = []
    for row in results.rows():
        path = media_path(by_id[row["item"]])
        record: dict[str, Any] = {"video_name": path or row["video"], "video": row["video"], "overall": row["mos"]}
        for dim in RATED_DIMENSIONS:
            if dim in row["dimensions"]:
                record[dim] = row["dimensions"][dim]["mos"]
        if row["tags"] is not None:
            record["distortions"] = row["tags"]
        record["count"] = row["count"]
        out.append(record)
    return out


def _ratings_csv(store: StudyStore, study_id: str) -> str:
    items = {i.id: i.video for i in store.items(study_id)}
    raters = {r.id: r.name for r in store.raters(study_id)}
    ratings, comparisons = store.collected(study_id)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if comparisons and not ratings:
        writer.writerow(["rater", "first", "second", "preferred", "kind", "submitted_at"])
        for c in comparisons:
            writer.writerow([raters[c.rater], items[c.first], items[c.second], items[c.preferred], c.kind,
                             round(c.at, 3)])
        return buffer.getvalue()
    writer.writerow(["rater", "video", "score", *RATED_DIMENSIONS, "tags", "kind", "submitted_at"])
    for r in ratings:
        writer.writerow([raters[r.rater], items[r.item], r.score, *[r.dimensions.get(d, "") for d in RATED_DIMENSIONS],
                         ";".join(r.tags), r.kind, round(r.at, 3)])
    return buffer.getvalue()


def read_ratings_file(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """`read_ratings_csv` of a file; a missing or unreadable file is a usage error (exit 2)."""
    from ..errors import ConfigError

    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            return read_ratings_csv(fh, str(path))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None


def read_ratings_csv(stream: TextIO, name: str = "ratings.csv") -> list[dict[str, Any]]:
    """Rows {rater, item, score, dimensions, tags, kind} of a ratings CSV (see the module
    docstring for the columns). Raises BadRatingError naming the file and line at fault."""
    reader = csv.reader(stream)
    try:
        header = next(reader)
    except StopIteration:
        raise BadRatingError(f"{name}: empty file") from None
    except csv.Error as exc:
        raise BadRatingError(f"{name}: not a CSV file ({exc})") from None
    columns = [h.strip().lower().lstrip("\ufeff") for h in header]

    def find(names: Iterable[str], what: str, required: bool = True) -> int | None:
        for candidate in names:
            if candidate in columns:
                return columns.index(candidate)
        if required:
            raise BadRatingError(f"{name}: no {what} column (expected one of: {', '.join(names)})")
        return None

    rater, video, score = find(RATER_COLUMNS, "rater"), find(VIDEO_COLUMNS, "video"), find(SCORE_COLUMNS, "score")
    tags_col, kind_col = find(TAG_COLUMNS, "tags", False), find(KIND_COLUMNS, "kind", False)
    dims = {d: columns.index(d) for d in RATED_DIMENSIONS if d in columns}
    rows = []
    try:
        for line, values in enumerate(reader, start=2):
            if not any(v.strip() for v in values):
                continue
            if len(values) < len(columns):
                values = values + [""] * (len(columns) - len(values))
            row: dict[str, Any] = {"rater": values[rater].strip(), "item": values[video].strip(),
                                   "score": _number(values[score], name, line, "score")}
            row["dimensions"] = {d: _number(values[k], name, line, d) for d, k in dims.items() if values[k].strip()}
            if tags_col is not None and values[tags_col].strip():
                tags = [t.strip() for t in values[tags_col].replace("|", ";").replace(",", ";").split(";") if t.strip()]
                unknown = [t for t in tags if t not in DISTORTION_TYPES]
                if unknown:
                    raise BadRatingError(f"{name}, line {line}: unknown distortion type {unknown[0]!r}")
                row["tags"] = tags
            if kind_col is not None and values[kind_col].strip():
                row["kind"] = values[kind_col].strip()
            if not row["rater"] or not row["item"]:
                raise BadRatingError(f"{name}, line {line}: empty rater or video")
            rows.append(row)
    except csv.Error as exc:
        raise BadRatingError(f"{name}: not a CSV file ({exc})") from None
    if not rows:
        raise BadRatingError(f"{name}: no ratings")
    return rows


def _number(text: str, name: str, line: int, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise BadRatingError(f"{name}, line {line}: {what} {text.strip()!r} is not a number")
    return int(value) if value == int(value) else value


# -- ratings to a dataset `vqscope train --rated` reads -----------------------------------------
def write_dataset(rows: list[dict[str, Any]], out: str | os.PathLike[str]) -> Path:
    """Write `dataset_rows`-shaped rows as the `csv` adapter's file (path, mos, dimensions, ...)."""
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", encoding="utf-8", newline="") as fh:
            _dataset_csv(rows, fh)
    except OSError as exc:
        raise OutputError(f"{out}: cannot write the dataset ({exc.strerror or exc})", str(out)) from None
    return out


def study_dataset(store: StudyStore, study_id: str, out: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    """A study's MOS as a dataset file, and what a model card says of its source."""
    results = study_results(store, study_id)
    if results.analysis is None:
        raise BadRatingError(f"study {study_id} has no ratings yet: nothing to train on")
    rows = dataset_rows(results)
    if not rows:
        raise BadRatingError(f"study {study_id}: none of its rated videos is on this server")
    analysis = results.analysis
    source = {"name": results.study.name, "study": study_id, "videos": len(rows),
              "raters": len(analysis.raters) - len(analysis.rejected), "rejected_raters": len(analysis.rejected),
              "ratings": sum(r["count"] for r in rows)}
    return write_dataset(rows, out), source


def ratings_dataset(rows: list[dict[str, Any]], videos: str | os.PathLike[str], out: str | os.PathLike[str],
                    name: str) -> tuple[Path, dict[str, Any]]:
    """Ratings collected elsewhere (`read_ratings_csv` rows) screened and averaged exactly as a
    study's are, as a dataset file of the videos found in `videos`."""
    from .mos import analyse_ratings
    from .ratings import Rating

    folder = Path(videos)
    if not folder.is_dir():
        raise BadRatingError(f"{folder}: no such folder of videos")
    try:
        ratings = [Rating(str(r["rater"]), str(r["item"]), r["score"], dict(r.get("dimensions") or {}),
                          tuple(r.get("tags") or ()), kind=str(r.get("kind") or "main")) for r in rows]
        analysis = analyse_ratings(ratings)
    except (ValueError, TypeError) as exc:
        raise BadRatingError(str(exc)) from None
    out_rows = []
    for result in analysis.items:
        path = folder / result.item
        if not path.is_file():
            continue
        row = result.to_dict()
        ci = row["ci95"] or [None, None]
        out_rows.append({"path": str(path.resolve()), "mos": row["mos"],
                         **{d: v["mos"] for d, v in row["dimensions"].items()},
                         "count": row["count"], "ci_low": ci[0], "ci_high": ci[1], "std": row["std"],
                         "video": result.video, "item": result.item})
    if not out_rows:
        raise BadRatingError(f"none of the rated videos is in {folder}")
    source = {"name": name, "ratings_file": True, "videos": len(out_rows),
              "raters": len(analysis.raters) - len(analysis.rejected), "rejected_raters": len(analysis.rejected),
              "ratings": sum(r["count"] for r in out_rows)}
    return write_dataset(out_rows, out), source
