"""Results of many videos: files (.jsonl, .csv, .parquet), resumable, and what the terminal shows.

Files
-----
Each video's record is written as soon as it is scored, so an interrupted run loses at most
the video in flight.

- **JSONL** keeps the full record (the result contract of `vqscope score --json`, plus
  `status`), one line a video.
- **CSV** and **Parquet** hold one flat row a video, the same columns in both (`COLUMNS`):
  ``video, model, status, score, scaled_score, grade``; then ``{dimension}_score`` and
  ``{dimension}_grade`` for color, noise, artifact, blur and temporal; ``p_{type}`` for the
  twelve distortion types (``p_overexposure`` ... ``p_flicker``); then ``duration_s, width,
  height, fps, padded, clip_count, description, warnings`` (" | "-joined), ``error, message,
  elapsed_s``. The columns are the whole taxonomy whatever the model, so every file (and every
  `vqscope batch` part) has one schema; what a model does not predict is empty (a model with
  only an overall head leaves the dimension and ``p_`` columns empty; ``overall`` is ``score``
  and ``grade``). Per-dimension sentences and ``video_info`` are in JSONL only.
- **The clip timeline** is one row a clip with ``clip_index`` (0 = first clip), ``start_s,
  end_s, score``, ``{dimension}_score``, the clip's ``p_{type}`` and ``padded``
  (`CLIP_COLUMNS`). Parquet nests these rows in the video's row (column ``clips``, a list of
  structs: ``df.explode("clips")`` in pandas, ``UNNEST(clips)`` in DuckDB); CSV cannot nest,
  so they go to a clip file beside it, ``NAME.clips.csv``, which also names ``video`` and
  ``model``.

One rounding rule in every format (and in `vqscope batch`): the result contract's
(`Result.to_dict`) -- scores (overall, scaled, dimension, clip) to 2 decimals, probabilities to
4, seconds and fps to 3.

Re-runs, in every format: a video already scored ``ok`` by the same model is skipped; any
other (a failure, or a video the model has not scored) is scored again, and its new row
*replaces* the earlier one. Rows are appended while the run goes (JSONL and CSV append;
Parquet, which cannot be appended to, appends to a journal beside it,
NAME.parquet.partial.jsonl); at the end of the run the file is rewritten (a temporary file,
then renamed) wherever a (video, model) has more than one row, keeping the latest row in the
place of the first, and the journal is folded into the Parquet file. So a finished run leaves
one row per (video, model); a crashed run may leave a superseded row until the next run ends,
and readers take the last row of a (video, model). Files written by older versions (nested
fields as JSON text in cells) are converted to this layout the next time a run ends on them.

Terminal
--------
`timeline` draws a Result's clip table to fit the console's width (Rich gives any pipe 80
columns): the clip, its time and score always, then the dimensions, then the bar. Where the
full layout does not fit, the bar gets coarser (10 points a block) and dimension headers are
abbreviated (col, noi, art, blu, tmp) with a legend; then the bar goes; then the dimensions
that score highest (the least informative) go, named in the legend. A number is never cut.
`summary` is the table of several videos (video, score, grade, the weakest dimension, the
likely distortions).
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .errors import OutputError
from .taxonomy import DIMENSIONS, DISTORTION_TYPES

VIDEO_EXTENSIONS = {
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv", ".ts", ".mts", ".m2ts", ".3gp",
    ".wmv", ".mpg", ".mpeg", ".ogv", ".y4m", ".gif",
}
FORMATS = (".jsonl", ".csv", ".parquet")

#: The dimensions with columns of their own ("overall" is `score` and `grade`).
FINE_DIMENSIONS: tuple[str, ...] = tuple(d for d in DIMENSIONS if d != "overall")
BASE_COLUMNS = ("video", "model", "status", "score", "scaled_score", "grade")
DIMENSION_COLUMNS = tuple(f"{d}_{part}" for d in FINE_DIMENSIONS for part in ("score", "grade"))
DISTORTION_COLUMNS = tuple(f"p_{t}" for t in DISTORTION_TYPES)
TAIL_COLUMNS = ("duration_s", "width", "height", "fps", "padded", "clip_count", "description", "warnings",
                "error", "message", "elapsed_s")
#: The flat row of a video in CSV and Parquet, in this order.
COLUMNS = BASE_COLUMNS + DIMENSION_COLUMNS + DISTORTION_COLUMNS + TAIL_COLUMNS
#: A clip's row: in the clip file of a CSV (all of them), nested in Parquet (from clip_index on).
CLIP_COLUMNS = ("video", "model", "clip_index", "start_s", "end_s", "score",
                *(f"{d}_score" for d in FINE_DIMENSIONS), *DISTORTION_COLUMNS, "padded")
CLIP_FIELDS = CLIP_COLUMNS[2:]
WARNING_SEPARATOR = " | "

_INT_COLUMNS = {"width", "height", "clip_count", "clip_index"}
_SECONDS_COLUMNS = {"duration_s", "fps", "elapsed_s", "start_s", "end_s"}
_LEGACY_JSON = ("clips", "dimensions", "distortions", "warnings")


def decimals(column: str) -> int | None:
    """The rounding rule: decimals a numeric column keeps (None: not a rounded number)."""
    if column.startswith("p_"):
        return 4
    if column == "score" or column.endswith("_score"):
        return 2
    if column in _SECONDS_COLUMNS:
        return 3
    return None


def expand_inputs(paths: Iterable[str]) -> list[str]:
    """Files named on the command line, plus video files found (recursively) in folders.

    A named file is kept whatever its extension, so that a wrong file gets a clear error
    rather than being silently left out.
    """
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            found = []
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for f in files:
                    if Path(f).suffix.lower() in VIDEO_EXTENSIONS:
                        found.append(os.path.join(root, f))
            out.extend(sorted(found))
        else:
            out.append(p)
    seen: set[str] = set()
    return [p for p in out if not (p in seen or seen.add(p))]


def ok_record(result_dict: dict[str, Any]) -> dict[str, Any]:
    return {**result_dict, "status": "ok"}


def error_record(video: str, model: str, error: str, message: str) -> dict[str, Any]:
    return {"video": video, "model": model, "status": "error", "error": error, "message": message}


def name_once(subject: str, message: str) -> str:
    """`message` about `subject` (a path, a dataset), naming it once, first.

    Errors name their file already ("/v/a.mp4: not a video"), so a caller that puts the path in
    front again says it twice; a message naming it further in ("not_a_video: /v/a.mp4: ...")
    gets it moved to the front; one that does not name it gets it added.
    """
    subject, message = str(subject), str(message)
    lead = f"{subject}: "
    if not subject or message.startswith(lead) or message == subject:
        return message
    if lead in message:
        return lead + message.replace(lead, "", 1)
    if subject in message:
        return message
    return lead + message


def without_subject(subject: str, message: str) -> str:
    """`message` with a leading "SUBJECT: " removed (for a table that shows the subject already)."""
    return message.removeprefix(f"{subject}: ")


# -- flat rows -------------------------------------------------------------------------------
def _typed(column: str, value: Any) -> Any:
    """A cell in its column's type and rounding (values read back from CSV arrive as text)."""
    if value is None or (isinstance(value, str) and value == ""):
        return None
    if column == "padded":
        return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "1", "yes")
    if column in _INT_COLUMNS:
        return int(float(value))
    places = decimals(column)
    if places is not None:
        number = float(value)
        return round(number, places) if math.isfinite(number) else None
    return " ".join(str(value).splitlines()) if "\n" in str(value) or "\r" in str(value) else str(value)


def _legacy(row: Mapping[str, Any]) -> Mapping[str, Any]:
    """A row of an older file (nested fields as JSON text) as a record; other rows unchanged."""
    texts = {c: row[c] for c in _LEGACY_JSON if isinstance(row.get(c), str) and row[c][:1] in ("{", "[")}
    if not any(c in texts for c in ("clips", "dimensions", "distortions")):
        return row
    out = dict(row)
    for c, text in texts.items():
        try:
            out[c] = json.loads(text)
        except ValueError:
            out[c] = None
    return out


def flat_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record (the result contract plus `status`, or an error record, or a row read back) as
    the flat row of `COLUMNS`, typed and rounded."""
    record = _legacy(record)
    row: dict[str, Any] = {}
    for c in COLUMNS:
        value = record.get(c)
        row[c] = None if isinstance(value, (dict, list)) else value
    dims = record.get("dimensions")
    if isinstance(dims, Mapping):
        for d in FINE_DIMENSIONS:
            if isinstance(dims.get(d), Mapping):
                row[f"{d}_score"] = dims[d].get("score")
                row[f"{d}_grade"] = dims[d].get("grade")
    distortions = record.get("distortions")
    if isinstance(distortions, Mapping):
        for t, p in distortions.items():
            if f"p_{t}" in row:
                row[f"p_{t}"] = p
    if isinstance(record.get("clips"), list):
        row["clip_count"] = len(record["clips"])
    if isinstance(record.get("warnings"), list):
        row["warnings"] = WARNING_SEPARATOR.join(str(w) for w in record["warnings"]) or None
    return {c: _typed(c, v) for c, v in row.items()}


def clip_rows(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The clip timeline of a record as rows of `CLIP_COLUMNS` (none for an error record)."""
    record = _legacy(record)
    clips = record.get("clips")
    if record.get("status", "ok") != "ok" or not isinstance(clips, list):
        return []
    out = []
    for i, clip in enumerate(clips):
        if not isinstance(clip, Mapping):
            continue
        if "clip_index" in clip:  # a nested row read back from Parquet
            row = {c: clip.get(c) for c in CLIP_FIELDS}
        else:
            row = {"clip_index": i, "start_s": clip.get("start_s"), "end_s": clip.get("end_s"),
                   "score": clip.get("score"), "padded": bool(clip.get("padded", False))}
            dims = clip.get("dimensions") or {}
            for d in FINE_DIMENSIONS:
                row[f"{d}_score"] = (dims.get(d) or {}).get("score") if isinstance(dims.get(d), Mapping) else None
            for t, p in (clip.get("distortions") or {}).items():
                if f"p_{t}" in DISTORTION_COLUMNS:
                    row[f"p_{t}"] = p
        full = {"video": record.get("video"), "model": record.get("model"), **row}
        out.append({c: _typed(c, full.get(c)) for c in CLIP_COLUMNS})
    return out


def _arrow_type(column: str) -> Any:
    import pyarrow as pa

    if column == "padded":
        return pa.bool_()
    if column in _INT_COLUMNS:
        return pa.int64()
    if decimals(column) is not None:
        return pa.float64()
    return pa.string()


def parquet_schema(extra: Sequence[str] = ()) -> Any:
    """`COLUMNS`, the nested `clips` timeline, then `extra` text columns."""
    import pyarrow as pa

    clip = pa.struct([(c, _arrow_type(c)) for c in CLIP_FIELDS])
    return pa.schema([(c, _arrow_type(c)) for c in COLUMNS] + [("clips", pa.list_(clip))]
                     + [(c, pa.string()) for c in extra])


def parquet_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record (or a Parquet row read back) as a row of `parquet_schema()`."""
    record = _legacy(record)
    row = flat_row(record)
    clips = clip_rows(record)
    row["clips"] = [{c: r[c] for c in CLIP_FIELDS} for r in clips] if clips or record.get("status") == "ok" else None
    return row


def _key(row: Mapping[str, Any]) -> tuple[str, str]:
    return str(row.get("video")), str(row.get("model"))


def latest_rows(rows: Iterable[Mapping[str, Any]]) -> list[Any]:
    """One row per (video, model): the last one, in the place of the first."""
    out: dict[tuple[str, str], Any] = {}
    for r in rows:
        out[_key(r)] = r
    return list(out.values())


# -- the results file --------------------------------------------------------------------------
class ResultFile:
    """Append-as-you-go writer for one results file; a context manager (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.format = self.path.suffix.lower()
        if self.format not in FORMATS:
            raise OutputError(f"{self.path}: unknown results format (use {', '.join(FORMATS)})")
        if self.path.is_dir():
            raise OutputError(f"{self.path}: is a directory")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self.path.parent}: cannot create folder ({exc.strerror})") from None
        self.journal = self.path.with_name(self.path.name + ".partial.jsonl")
        #: the clip timeline of a CSV results file
        self.clip_path = self.path.with_name(self.path.stem + ".clips.csv") if self.format == ".csv" else None
        self._existing = self._read_existing()
        self._handle: Any = None
        self._clip_handle: Any = None
        self._csv: csv.DictWriter | None = None
        self._clip_csv: csv.DictWriter | None = None
        self._written: set[tuple[str, str]] = set()  # (video, model) of the rows this run wrote

    # -- reading back ------------------------------------------------------------------
    def _read_existing(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        try:
            if self.format == ".jsonl" and self.path.exists():
                records += _read_jsonl(self.path)
            elif self.format == ".csv" and self.path.exists():
                records += _read_csv(self.path)[1]
            elif self.format == ".parquet":
                if self.path.exists():
                    import pyarrow.parquet as pq

                    records += pq.read_table(self.path).to_pylist()
                if self.journal.exists():
                    records += _read_jsonl(self.journal)
        except (OSError, ValueError) as exc:
            raise OutputError(f"{self.path}: cannot read existing results ({exc})") from None
        except Exception as exc:  # pyarrow raises its own types for damaged files
            raise OutputError(f"{self.path}: cannot read existing results ({type(exc).__name__})") from None
        return records

    def scored(self, model: str) -> set[str]:
        """Videos whose latest record from `model` is a success: what a re-run skips."""
        last: dict[str, str] = {}
        for r in self._existing:
            if r.get("model") == model and "video" in r:
                last[str(r["video"])] = str(r.get("status", "ok"))
        return {v for v, status in last.items() if status == "ok"}

    # -- writing -----------------------------------------------------------------------
    def __enter__(self) -> "ResultFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, record: dict[str, Any]) -> None:
        self._written.add(_key(record))
        try:
            if self.format == ".csv":
                self._write_csv(record)
            else:
                target = self.path if self.format == ".jsonl" else self.journal
                if self._handle is None:
                    _drop_partial_line(target)  # a crash's half line must not swallow the next record
                    self._handle = open(target, "a", encoding="utf-8")
                self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                self._handle.flush()
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write results ({exc.strerror})") from None

    def _write_csv(self, record: dict[str, Any]) -> None:
        assert self.clip_path is not None
        if self._csv is None:
            if self.path.exists() and self.path.stat().st_size and _read_csv_header(self.path) != list(COLUMNS):
                self._compact_csv()  # an older layout: converted before rows of this one follow
            _drop_partial_line(self.path)
            new = not self.path.exists() or self.path.stat().st_size == 0
            self._handle = open(self.path, "a", newline="", encoding="utf-8")
            self._csv = csv.DictWriter(self._handle, fieldnames=list(COLUMNS))
            if new:
                self._csv.writeheader()
        clips = clip_rows(record)
        if clips:  # the clips first: a video's row is the sign that its timeline is complete
            if self._clip_csv is None:
                _drop_partial_line(self.clip_path)
                new = not self.clip_path.exists() or self.clip_path.stat().st_size == 0
                self._clip_handle = open(self.clip_path, "a", newline="", encoding="utf-8")
                self._clip_csv = csv.DictWriter(self._clip_handle, fieldnames=list(CLIP_COLUMNS))
                if new:
                    self._clip_csv.writeheader()
            self._clip_csv.writerows(clips)
            self._clip_handle.flush()
        self._csv.writerow(flat_row(record))
        self._handle.flush()

    def close(self) -> None:
        for name in ("_handle", "_clip_handle"):
            handle = getattr(self, name)
            if handle is not None:
                handle.close()
                setattr(self, name, None)
        self._csv = self._clip_csv = None
        try:
            if self.format == ".jsonl" and self.path.exists() and self._superseded():
                self._compact_jsonl()
            elif self.format == ".csv" and self.path.exists():
                self._compact_csv()
            elif self.format == ".parquet" and self.journal.exists():
                self._fold_journal()
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write results ({exc.strerror or exc})") from None

    # -- one row per (video, model) ---------------------------------------------------------
    def _superseded(self) -> bool:
        """Whether the file may hold more than one row of a (video, model): a row of this run
        replaces an earlier one, or the file had such rows already (a crashed run's)."""
        keys = [_key(r) for r in self._existing]
        unique = set(keys)
        return len(unique) < len(keys) or bool(self._written & unique)

    def _compact_jsonl(self) -> None:
        records = _read_jsonl(self.path)
        kept = latest_rows(records)
        if len(kept) < len(records):
            _replace_text(self.path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))

    def _compact_csv(self) -> None:
        """Latest row per (video, model), older layouts converted, and the clip file matched to
        it: the last `clip_count` clip rows of every video scored ok, no others."""
        assert self.clip_path is not None
        header, raw = _read_csv(self.path)
        records = [_legacy(r) for r in raw]
        rows = [flat_row(r) for r in records]
        kept = latest_rows(rows)
        if header != list(COLUMNS) or len(kept) < len(rows):
            _write_csv_file(self.path, COLUMNS, kept)
        grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for record in records:  # timelines of an older layout, held in the rows themselves
            if isinstance(record.get("clips"), list):
                grouped[_key(record)] = clip_rows(record)
        total = 0
        if self.clip_path.exists():
            clip_header, clip_raw = _read_csv(self.clip_path)
            total = len(clip_raw)
            for r in clip_raw:
                grouped.setdefault(_key(r), []).append(r)
        clips = []
        for row in kept:
            if row["status"] == "ok" and row["clip_count"]:
                clips += grouped.get(_key(row), [])[-row["clip_count"]:]
        if len(clips) != total or (total and clip_header != list(CLIP_COLUMNS)):
            _write_csv_file(self.clip_path, CLIP_COLUMNS, [{c: _typed(c, r.get(c)) for c in CLIP_COLUMNS}
                                                          for r in clips])

    def _fold_journal(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        records = self._read_existing()
        kept = latest_rows(records)
        tmp = self.path.with_name(self.path.name + ".tmp")
        pq.write_table(pa.Table.from_pylist([parquet_row(r) for r in kept], schema=parquet_schema()), tmp)
        os.replace(tmp, self.path)
        self.journal.unlink()


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a crash: that video is simply scored again
    return out


def _drop_partial_line(path: Path) -> None:
    """Cut a last line that a crash left without its end, so that appending starts a line.

    Safe because no cell or JSON value vqscope writes holds a newline: every newline ends a
    row (error messages are one line; warnings are joined with " | ")."""
    try:
        with open(path, "rb+") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0:
                return
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) == b"\n":
                return
            keep, step = 0, 1 << 16
            position = size
            while position > 0:  # back to the last newline
                start = max(0, position - step)
                fh.seek(start)
                block = fh.read(position - start)
                found = block.rfind(b"\n")
                if found >= 0:
                    keep = start + found + 1
                    break
                position = start
            fh.truncate(keep)
    except FileNotFoundError:
        return


def _read_csv_header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as fh:
        return next(csv.reader(fh), [])


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    csv.field_size_limit(1 << 28)  # descriptions and older files' JSON cells are long
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = [r for r in reader if r.get("video")]  # a line cut short by a crash has no video
        return list(reader.fieldnames or []), rows


def _replace_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _write_csv_file(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


# -- the terminal ------------------------------------------------------------------------------
#: Dimension headers where the full names do not fit; the legend spells them out.
ABBREVIATIONS = {"color": "col", "noise": "noi", "artifact": "art", "blur": "blu", "temporal": "tmp"}
_BAR_BLOCKS = (20, 10)  # blocks of the bar at full score: 5 points a block, then 10
_FULL_BLOCK = "\u2588"


def _natural_width(console: Any, renderable: Any) -> int:
    from rich.measure import Measurement

    return Measurement.get(console, console.options.update_width(100_000), renderable).maximum


def _timeline_table(result: Any, dims: Sequence[str], short: bool, blocks: int) -> Any:
    from rich.table import Table

    table = Table(title="Clip timeline", show_edge=False)
    # no_wrap off, fold: a console narrower than even the leanest layout wraps a number, never cuts it
    for header, right in (("clip", True), ("time (s)", False), ("score", True),
                          *((ABBREVIATIONS[d] if short else d, True) for d in dims)):
        table.add_column(header, justify="right" if right else "left", overflow="fold")
    if blocks:
        table.add_column("", no_wrap=True, overflow="fold")
    per_block = 100 / blocks if blocks else 0
    for c in result.clips:
        cells = [f"{c.index + 1}{'*' if c.padded else ''}", f"{c.start_s:.1f}-{c.end_s:.1f}", f"{c.score:.1f}"]
        cells += [f"{c.dimensions[d].score:.1f}" if d in c.dimensions else "" for d in dims]
        if blocks:
            cells.append(_FULL_BLOCK * round(c.score / per_block))
        table.add_row(*cells)
    return table


def timeline(result: Any, console: Any) -> list[Any]:
    """The clip table of `result` that fits `console.width`, and its legend where it needs one
    (see the module docstring for the order in which columns give way)."""
    from rich.text import Text

    width = console.width
    dims = [d for d in FINE_DIMENSIONS if any(d in c.dimensions for c in result.clips)]

    def video_score(d: str) -> float:
        found = result.dimensions.get(d)
        return found.score if found is not None else -1.0

    giving_way = sorted(dims, key=lambda d: (-video_score(d), -FINE_DIMENSIONS.index(d)))
    layouts = []
    for dropped in range(len(dims) + 1):
        shown = [d for d in dims if d not in giving_way[:dropped]]
        for blocks in (_BAR_BLOCKS + (0,) if dropped == 0 else (0,)):
            for short in ((False, True) if shown else (False,)):
                layouts.append((shown, short, blocks))
    table = None
    for shown, short, blocks in layouts:
        table = _timeline_table(result, shown, short, blocks)
        if _natural_width(console, table) <= width:
            break
    assert table is not None
    legend = []
    if short:
        legend.append("  ".join(f"{ABBREVIATIONS[d]} {d}" for d in shown))
    gone = [d for d in dims if d not in shown]
    if gone:
        legend.append(f"not shown at {width} columns: {', '.join(gone)} (in --json)")
    if blocks and blocks != _BAR_BLOCKS[0]:
        legend.append(f"{_FULL_BLOCK} {100 // blocks} points")
    if any(c.padded for c in result.clips):
        legend.append("* padded: shorter than one temporal window")
    out: list[Any] = [table]
    if legend:
        out.append(Text("; ".join(legend), style="dim"))
    return out


def weakest_dimension(record: Mapping[str, Any]) -> tuple[str, float, str] | None:
    """(name, score, grade) of the lowest-graded dimension of a record, the lowest score among
    equals; None where the record has no dimension besides overall."""
    from .calibration import GRADES

    dims = {k: v for k, v in (record.get("dimensions") or {}).items() if k != "overall" and isinstance(v, Mapping)}
    if not dims:
        return None

    def rank(item: tuple[str, Mapping[str, Any]]) -> tuple[int, float]:
        grade = str(item[1].get("grade"))
        return (GRADES.index(grade) if grade in GRADES else len(GRADES)), float(item[1].get("score", 0.0))

    name, dim = min(dims.items(), key=rank)
    return name, float(dim["score"]), str(dim["grade"])


def likely_distortions(record: Mapping[str, Any], threshold: float | None = None) -> list[tuple[str, float]]:
    """(type, p) of the distortions at or above the threshold, likeliest first."""
    from .describe import THRESHOLD

    limit = THRESHOLD if threshold is None else threshold
    found = [(t, float(p)) for t, p in (record.get("distortions") or {}).items() if float(p) >= limit]
    return sorted(found, key=lambda tp: (-tp[1], tp[0]))


def _share(budget: int, natural: Mapping[str, int], weight: Mapping[str, float], floor: int = 8) -> dict[str, int]:
    """Split `budget` columns among flexible columns in proportion to `weight`, none above its
    natural width (what one gives up goes to the others), none below `floor`."""
    caps = {c: max(1, n) for c, n in natural.items()}
    out = {c: 0 for c in caps}
    left, open_ = budget, set(caps)
    while open_ and left > 0:
        total = sum(weight[c] for c in open_)
        grant = {c: max(1, int(left * weight[c] / total)) for c in open_}
        done = {c for c in open_ if out[c] + grant[c] >= caps[c]}
        if not done:
            for c in open_:
                out[c] += grant[c]
            break
        for c in done:
            left -= caps[c] - out[c]
            out[c] = caps[c]
        open_ -= done
    return {c: max(min(floor, caps[c]), w) for c, w in out.items()}


def summary(records: Sequence[Mapping[str, Any]], width: int = 80) -> list[Any]:
    """The table of several videos: video, score, grade, the weakest dimension and the likely
    distortions (the two last only where some record has them); failures with their message.

    Videos are named relative to the folder they share (named in the title). Where the table is
    wider than `width`, score and grade keep their width and the video, weakest and distortion
    columns share the rest (2 : 1 : 1.5): names fold, text wraps between words, nothing is cut."""
    from rich.table import Table
    from rich.text import Text

    from .describe import distortion_name, format_p

    videos = [str(r.get("video")) for r in records]
    folders = {os.path.dirname(v) for v in videos}
    common = os.path.commonpath(list(folders)) if len(videos) > 1 and all(folders) and \
        len({os.path.isabs(v) for v in videos}) == 1 else ""
    if common == os.sep:
        common = ""
    names = [os.path.relpath(v, common) if common else v for v in videos]
    good = [r for r in records if r.get("status") == "ok"]
    has_dims = any(weakest_dimension(r) is not None for r in good)
    has_types = any(r.get("distortions") for r in good)
    failed = len(good) < len(records)
    columns = ["video", "score", "grade"] + (["weakest"] if has_dims else []) + \
        (["likely distortions" if has_types else "error"] if has_types or failed else [])
    rows: list[list[Any]] = []
    for r, video, name in zip(records, videos, names):
        if r.get("status") != "ok":
            message = without_subject(video, str(r.get("message") or r.get("error") or "failed"))
            cells: list[Any] = [name, "", Text("error", style="red")] + ([""] if has_dims else []) + \
                [Text(message, style="red")]
        else:
            cells = [name, f"{float(r['score']):.1f}", str(r.get("grade", ""))]
            if has_dims:
                weakest = weakest_dimension(r)
                cells.append(f"{weakest[0]} {weakest[1]:.1f} {weakest[2]}" if weakest else "")
            if has_types:
                likely = likely_distortions(r)
                cells.append(", ".join(f"{distortion_name(t)} {format_p(p)}" for t, p in likely) or "none")
            elif failed:
                cells.append("")
        rows.append(cells)
    natural = {c: max([len(c)] + [len(str(row[i])) for row in rows]) for i, c in enumerate(columns)}
    caps: dict[str, int] = {}
    room = width - (3 * len(columns) - 1)  # a space each side of every cell, a rule between cells
    if sum(natural.values()) > room:
        flexible = [c for c in columns if c not in ("score", "grade")]
        budget = room - sum(natural[c] for c in columns if c not in flexible)
        weight = {"video": 2.0, "weakest": 1.0}
        caps = _share(budget, {c: natural[c] for c in flexible}, {c: weight.get(c, 1.5) for c in flexible})
    ok = len(good)
    title = f"{ok} of {len(records)} videos scored" + (f", in {common}" if common else "")
    table = Table(title=title, show_edge=False)
    for c in columns:
        table.add_column(c, justify="right" if c == "score" else "left", overflow="fold", max_width=caps.get(c))
    for row in rows:
        table.add_row(*row)
    return [table]
