"""Public MOS datasets already on disk, loaded with one call.

    >>> ds = load_dataset("konvid1k:/data/KoNViD_1k")
    >>> ds.summary()
    'konvid1k: 1200 found, 0 missing, MOS scale 1-5, no official splits'
    >>> test = load_dataset("lsvq:/data/LSVQ@test_1080p")
    >>> own = load_dataset("csv:/data/my_labels.csv?scale=1,5")

Nothing is downloaded. An adapter reads the dataset's own label file(s), in the format the
dataset is distributed in, and lists every labelled video with the absolute path where the
video file is expected. Labelled videos present on disk go to `Dataset.items`, the others to
`Dataset.missing` (no error is raised for those; `summary()` reports the count). A missing
dataset folder or label file raises `ConfigError` naming the path.

Spec strings
------------
``ADAPTER:PATH[@SPLIT][?KEY=VALUE&...]``

- ``ADAPTER``: one of `list_adapters()`; case, ``-`` and ``_`` are ignored, so ``KoNViD-1k``,
  ``live_vqc`` and ``youtube-ugc`` work too.
- ``PATH``: the dataset root folder as distributed, or the label file itself. ``~`` is expanded.
- ``@SPLIT``: keep one official split (``lsvq:/data/LSVQ@test``). An ``@`` followed by a path
  separator is taken as part of the path.
- options, for every adapter:
  ``scale=LO,HI`` overrides the MOS scale (and every label must then lie within it);
  ``videos=DIR`` looks for the videos in DIR instead of the folder the dataset layout implies.

Adapters, their formats, and where each format comes from
---------------------------------------------------------
The formats were read off public code that consumes the official files (the datasets
themselves cannot be fetched here); each adapter finds its columns by name, case-insensitively,
so extra or reordered columns do not matter.

``konvid1k`` -- KoNViD-1k, MOS 1-5, no official split.
    Labels: ``KoNViD_1k_attributes.csv`` (columns ``flickr_id``, ``file_name``, ``MOS``, ...) or,
    if that is absent, ``KoNViD_1k_mos.csv`` (columns ``"flickr_id","mos"``), looked up in the
    root, its ``KoNViD_1k_metadata/`` and its ``KoNViD_1k_videos/`` folders. Videos:
    ``KoNViD_1k_videos/<flickr_id>.mp4``; the older ``file_name`` naming
    (``<id>_original_centercrop_960x540_8s.mp4``) is accepted when that file is the one present.
    Key: the flickr id. Sources: lidq92/VSFA ``data/data_info_maker.m`` (``data.file_name``,
    ``data.MOS``) and its ``CNNfeatures.py`` (``info['flickr_id']``, ``info['MOS']``,
    ``<flickr_id>.mp4``); jarikorhonen/cnn-tlvqm ``computeFeaturesForKoNViD1k.m`` (file name in
    column 3, MOS in column 4 on a 1-5 scale); consumers reading ``KoNViD_1k_mos.csv`` as
    ``"flickr_id","mos"``.

``livevqc`` -- LIVE-VQC, MOS 0-100, no official split.
    Labels: ``data.mat`` (MATLAB v5/v7, read with `scipy.io.loadmat`) holding ``video_list``
    (585 file names such as ``A001.mp4``, a cell array) and ``mos`` (585 x 1). Videos:
    ``Video/<name>``. Key: the name without extension. Sources: consumer scripts that do
    ``loadmat('data.mat')``, ``video_list[i][0][0]`` -> ``'A001.mp4'``, ``mos[i][0]``, with
    the videos under ``LIVE_VQC/Video/`` (e.g. the ``mat_to_csv`` converter next to vztu/COVER's
    ``examplar_data_labels/LIVE_VQC/data.mat``).

``youtubeugc`` -- YouTube-UGC, MOS 1-5, no official split.
    Labels: ``original_videos_MOS_for_YouTube_UGC_dataset.xlsx`` (sheet ``MOS``, columns
    ``vid``, ``category``, ``MOS full``, ...; read with openpyxl, an optional dependency) or a
    CSV export of that sheet (``original_videos_MOS_for_YouTube_UGC_dataset.csv``). The xlsx is
    used when openpyxl is installed, else the CSV. Videos: the original ``<vid>.mkv`` files
    (``Animation_1080P-01b3.mkv``), searched recursively (the bucket nests them as
    ``<category>/<resolution>/``); other containers with the same stem and the H.264 transcodes
    ``<vid>_crf_10_ss_00_t_20.0.mp4`` are accepted when no ``.mkv`` is present. A missing video
    is expected at ``<root>/<vid>.mkv``. Key: ``vid``. Sources: winwinwenwen77/ModularBVQA
    (``pd.read_excel(..., sheet_name='diff2')``, ``df['vid']``, ``df['MOS full']``); converters
    reading ``sheet_name='MOS'`` with required columns ``vid``, ``category``, ``MOS full``;
    SimpleVQA-style configs pointing at the CSV export. Rows with an empty MOS are skipped.

``lsvq`` -- LSVQ (LIVE Large-Scale Social Video Quality), MOS 0-100, splits ``train``,
    ``test``, ``test_1080p``.
    Labels: ``labels_train_test.csv`` and ``labels_test_1080p.csv`` from the PatchVQ v0.1
    release. Columns ``name, p1, p2, p3, height, width, mos_p1, mos_p2, mos_p3, mos,
    frame_number, ..., is_test, is_valid``; the 1080p file has no ``is_test``. A row of
    ``labels_train_test.csv`` is in the test split when ``is_test`` is true (written ``True`` /
    ``False``), else in train; every row of ``labels_test_1080p.csv`` is ``test_1080p`` (sizes
    in the literature: 28,056 / 7,182 / 3,573). Videos: ``<root>/<name>.mp4`` with names like
    ``yfcc-batch3/1724``. Key: ``name``. Sources: baidut/PatchVQ ``README.md`` ("``is_test``
    column denotes if a video is in the train set or the test set") and ``json/LSVQ.json``;
    sunwei925/SimpleVQA ``data/LSVQ_whole_test.csv`` (the header and ``True``/``False`` values)
    and ``data_loader.py`` (``<name>.mp4`` under the LSVQ folder).

``finevd`` -- FineVD (FineVQ, CVPR 2025), MOS 1-5 by default, splits ``train``, ``val``
    (and ``test`` if a ``MOS_test.csv`` is present), per-dimension labels.
    Labels: ``MOS_train.csv`` and ``MOS_val.csv`` (in the root or in its ``FineVD/`` folder),
    columns ``video_name`` (a file name such as ``1_06_01_1719442192.mp4``), ``color``,
    ``noise``, ``artifact``, ``blur``, ``temporal``, ``overall``; MOS = ``overall``, all six go
    to `VideoItem.dimensions`. Videos: ``videos_all/videos_all_videos/<video_name>`` (also
    ``videos_all_videos/``, ``videos_all/``, ``videos/`` or the root). Key: the name without
    extension. Confidence is moderate: the official dataset card (huggingface.co/datasets/
    IntMeGroup/FineVD) was not readable here, and this layout comes from two independent
    public consumers (an mmaction2 FineVD annotation builder and a "FineVD technical
    validation" script), which agree on the file names, columns and video folder; one of them
    reports the scale as "approximately 1-5". The official repo IntMeGroup/FineVQ only says
    ``huggingface-cli download IntMeGroup/FineVD``. Because a third-party metadata file
    (xinyiW915/FGSVQA) lists FineVD MOS on a 0-100 range, the scale is inferred like the
    generic CSV (1-5 when every label lies in 1..5, else 0-100) and ``?scale=`` overrides it.
    Also accepted, when PATH is a file: any CSV with those columns (its split taken from
    ``train``/``val``/``test`` in the file name), or a JSON file holding either a list of
    records with those keys (plus an optional ``split``) or an object mapping a split name to
    such a list; JSON Lines (``.jsonl``) too. ``video``, ``name`` or ``path`` may replace
    ``video_name``; an absolute path is taken as it is (``vqscope study export --format
    finevd`` writes them).

``csv`` -- any labels in a CSV file (PATH must be the file).
    Columns: ``path`` (absolute, or relative to the CSV's folder), ``mos``; optional ``split``
    and optional dimension columns ``color``, ``noise``, ``artifact``, ``blur``, ``temporal``,
    ``overall`` (empty cells are left out). Key: ``path`` as written. Scale: ``?scale=LO,HI``;
    by default 1-5 when every MOS (and dimension label) lies in 1..5, else 0-100 when all lie
    in 0..100, else an error asking for ``?scale=``.

Registry
--------
`ADAPTERS` maps each canonical adapter name to its `Adapter` record (loader, scale, splits,
description); `register_adapter` adds one (a decorator, in the style of pyiqa's dataset
registry and torchvision's model registry) and `list_adapters()` lists the names.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import ConfigError
from ..taxonomy import DIMENSIONS  # FineVD's six label columns, also read by the generic CSV adapter

#: Options every spec may carry after ``?``.
SPEC_OPTIONS: tuple[str, ...] = ("scale", "videos")

_VIDEO_SUFFIXES = (".mkv", ".mp4", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg", ".y4m")


# --- data model ---------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoItem:
    """One labelled video."""

    key: str  # the dataset's own id of the video
    path: str  # absolute path where the video file is expected
    mos: float  # on the dataset's own MOS scale
    split: str | None = None  # official split, where the dataset defines them
    dimensions: Mapping[str, float] = field(default_factory=dict, hash=False)  # same scale as mos


@dataclass
class Dataset:
    """Labelled videos of one dataset: those found on disk and those that are not."""

    name: str
    scale: tuple[float, float]
    items: list[VideoItem] = field(default_factory=list, repr=False)  # labelled and on disk
    missing: list[VideoItem] = field(default_factory=list, repr=False)  # labelled, not on disk
    root: str | None = None
    label_files: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[VideoItem]:
        return iter(self.items)

    @property
    def splits(self) -> tuple[str, ...]:
        """Official split names present, in order of first appearance in the labels."""
        seen: dict[str, None] = {}
        for item in (*self.items, *self.missing):
            if item.split is not None:
                seen.setdefault(item.split, None)
        return tuple(seen)

    def split(self, name: str) -> "Dataset":
        """The items of one official split (found and missing alike)."""
        available = self.splits
        if name not in available:
            if available:
                raise ConfigError(f"{self.name} has no split {name!r} (splits: {', '.join(available)})")
            raise ConfigError(f"{self.name} has no official splits, so there is no split {name!r}")
        return Dataset(
            name=self.name,
            scale=self.scale,
            items=[item for item in self.items if item.split == name],
            missing=[item for item in self.missing if item.split == name],
            root=self.root,
            label_files=self.label_files,
        )

    def to_unit(self, mos: Any) -> Any:
        """Map MOS on this dataset's scale to [0, 1] (a float for a number, else an array)."""
        low, high = self.scale
        return _affine(mos, lambda v: (v - low) / (high - low))

    def from_unit(self, unit: Any) -> Any:
        """Map a [0, 1] value back to this dataset's MOS scale."""
        low, high = self.scale
        return _affine(unit, lambda v: low + v * (high - low))

    def summary(self) -> str:
        """One line: name, videos found, videos missing, MOS scale, splits."""
        low, high = self.scale
        text = f"{self.name}: {len(self.items)} found, {len(self.missing)} missing, MOS scale {low:g}-{high:g}"
        splits = self.splits
        if not splits:
            return text + ", no official splits"
        counts = []
        for name in splits:
            found = sum(1 for item in self.items if item.split == name)
            lost = sum(1 for item in self.missing if item.split == name)
            counts.append(f"{name} {found}" + (f" (+{lost} missing)" if lost else ""))
        return text + ", splits: " + ", ".join(counts)


def _affine(value: Any, fn: Callable[[Any], Any]) -> Any:
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return float(fn(float(value)))
    return fn(np.asarray(value, dtype=float))


# --- spec ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetSpec:
    """A parsed ``ADAPTER:PATH[@SPLIT][?KEY=VALUE&...]``."""

    adapter: str
    path: str
    split: str | None = None
    options: Mapping[str, str] = field(default_factory=dict, hash=False)

    @classmethod
    def parse(cls, text: str) -> "DatasetSpec":
        raw = text.strip()
        name, sep, rest = raw.partition(":")
        if not sep or not name.strip() or not rest.strip():
            raise ConfigError(f"dataset spec {raw!r} is not of the form ADAPTER:PATH[@SPLIT][?KEY=VALUE]")
        adapter = get_adapter(name).name
        options: dict[str, str] = {}
        if "?" in rest:
            rest, _, query = rest.rpartition("?")
            for part in query.split("&"):
                if not part.strip():
                    continue
                key, eq, value = part.partition("=")
                key = key.strip().lower()
                if not eq or not key:
                    raise ConfigError(f"dataset spec {raw!r}: option {part!r} is not KEY=VALUE")
                if key not in SPEC_OPTIONS:
                    raise ConfigError(
                        f"dataset spec {raw!r}: unknown option {key!r} (options: {', '.join(SPEC_OPTIONS)})"
                    )
                options[key] = value.strip()
        split = None
        if "@" in rest:
            head, _, tail = rest.rpartition("@")
            is_path_part = "/" in tail or os.sep in tail or os.path.exists(os.path.expanduser(rest))
            if head and tail.strip() and not is_path_part:
                rest, split = head, tail.strip()
        if not rest.strip():
            raise ConfigError(f"dataset spec {raw!r} has no path")
        if "scale" in options:
            _parse_scale(options["scale"])  # fail early on a malformed scale
        return cls(adapter=adapter, path=rest.strip(), split=split, options=options)

    def __str__(self) -> str:
        text = f"{self.adapter}:{self.path}"
        if self.split:
            text += f"@{self.split}"
        if self.options:
            text += "?" + "&".join(f"{k}={v}" for k, v in self.options.items())
        return text


def _parse_scale(text: str) -> tuple[float, float]:
    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) != 2:
            raise ValueError
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        raise ConfigError(f"scale {text!r} is not LOW,HIGH (e.g. scale=1,5)") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ConfigError(f"scale {text!r} needs finite LOW < HIGH")
    return low, high


# --- registry -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Adapter:
    name: str
    loader: Callable[[DatasetSpec], Dataset]
    scale: tuple[float, float] | None  # None: inferred from the labels
    splits: tuple[str, ...] = ()
    description: str = ""


#: Canonical adapter name -> Adapter.
ADAPTERS: dict[str, Adapter] = {}


def _normalize_name(name: str) -> str:
    return re.sub(r"[-_\s]", "", name.strip().lower())


def register_adapter(
    name: str,
    *,
    scale: tuple[float, float] | None,
    splits: Sequence[str] = (),
    description: str = "",
) -> Callable[[Callable[[DatasetSpec], Dataset]], Callable[[DatasetSpec], Dataset]]:
    """Decorator registering ``loader(spec) -> Dataset`` under `name`."""
    key = _normalize_name(name)

    def decorate(loader: Callable[[DatasetSpec], Dataset]) -> Callable[[DatasetSpec], Dataset]:
        if key in ADAPTERS:
            raise ValueError(f"dataset adapter {key!r} is already registered")
        ADAPTERS[key] = Adapter(key, loader, scale, tuple(splits), description)
        return loader

    return decorate


def list_adapters() -> list[str]:
    return sorted(ADAPTERS)


def get_adapter(name: str) -> Adapter:
    adapter = ADAPTERS.get(_normalize_name(name))
    if adapter is None:
        raise ConfigError(f"unknown dataset adapter {name.strip()!r} (choices: {', '.join(list_adapters())})")
    return adapter


def load_dataset(spec: str | DatasetSpec) -> Dataset:
    """Load a dataset from a spec string or `DatasetSpec` (see the module docstring)."""
    if isinstance(spec, str):
        spec = DatasetSpec.parse(spec)
    adapter = get_adapter(spec.adapter)
    dataset = adapter.loader(spec)
    if spec.split is not None:
        dataset = dataset.split(spec.split)
    return dataset


# --- shared helpers -----------------------------------------------------------------------
def _abspath(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.abspath(os.path.expanduser(str(path))))


def _existing_path(spec: DatasetSpec) -> Path:
    path = _abspath(spec.path)
    if not path.exists():
        raise ConfigError(f"{spec.adapter}: dataset path not found: {path}", path=str(path))
    return path


def _videos_option(spec: DatasetSpec) -> Path | None:
    value = spec.options.get("videos")
    if not value:
        return None
    path = _abspath(value)
    if not path.is_dir():
        raise ConfigError(f"{spec.adapter}: videos folder not found: {path}", path=str(path))
    return path


def _first_file(folders: Sequence[Path], names: Sequence[str]) -> Path | None:
    """The first existing file, trying every folder for a name before the next name."""
    for name in names:
        for folder in folders:
            candidate = folder / name
            if candidate.is_file():
                return candidate
    return None


def _first_dir(candidates: Sequence[Path]) -> Path | None:
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None


def _has_videos(folder: Path) -> bool:
    try:
        return any(entry.is_file() and Path(entry.name).suffix.lower() in _VIDEO_SUFFIXES
                   for entry in os.scandir(folder))
    except OSError:
        return False


def _norm_column(name: str) -> str:
    return re.sub(r"[\s_]+", "", name.strip().lower())


class _Table:
    """Header plus rows of strings, with case-insensitive column lookup."""

    def __init__(self, source: Path, header: Sequence[str], rows: Sequence[Sequence[str]], first_line: int = 2):
        self.source = source
        self.header = [str(h).strip() for h in header]
        self.rows = rows
        self.first_line = first_line  # line number of rows[0], for messages
        self._index = {}
        for i, name in enumerate(self.header):
            self._index.setdefault(_norm_column(name), i)

    def column(self, *names: str, required: bool = True) -> int | None:
        for name in names:
            index = self._index.get(_norm_column(name))
            if index is not None:
                return index
        if required:
            shown = ", ".join(h for h in self.header[:12] if h) + (", ..." if len(self.header) > 12 else "")
            raise ConfigError(f"{self.source}: no column {names[0]!r} (columns: {shown})", path=str(self.source))
        return None

    def cell(self, row: Sequence[str], index: int | None) -> str:
        if index is None or index >= len(row):
            return ""
        return str(row[index]).strip()

    def number(self, row: Sequence[str], index: int | None, what: str, line: int) -> float | None:
        text = self.cell(row, index)
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"{self.source}, line {line}: {what} {text!r} is not a number",
                              path=str(self.source)) from None
        if not math.isfinite(value):
            raise ConfigError(f"{self.source}, line {line}: {what} {text!r} is not finite", path=str(self.source))
        return value


def _read_csv(path: Path) -> _Table:
    try:
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            rows = [row for row in reader if any(cell.strip() for cell in row)]
    except OSError as exc:
        raise ConfigError(f"cannot read label file {path}: {exc.strerror or exc}", path=str(path)) from None
    except csv.Error as exc:
        raise ConfigError(f"{path} is not a readable CSV file: {exc}", path=str(path)) from None
    if header is None:
        raise ConfigError(f"label file is empty: {path}", path=str(path))
    return _Table(path, header, rows)


def _decide_scale(
    spec: DatasetSpec, default: tuple[float, float] | None, values: Sequence[float]
) -> tuple[float, float]:
    """The `?scale=` option if given (checked against the labels), else `default`, else inferred."""
    text = spec.options.get("scale")
    if text:
        low, high = _parse_scale(text)
        outside = [v for v in values if v < low or v > high]
        if outside:
            raise ConfigError(
                f"{spec.adapter}: {len(outside)} labels lie outside the given scale {low:g}-{high:g} "
                f"(range {min(values):g}..{max(values):g})"
            )
        return low, high
    if default is not None:
        return default
    if not values or all(1.0 <= v <= 5.0 for v in values):
        return (1.0, 5.0)
    if all(0.0 <= v <= 100.0 for v in values):
        return (0.0, 100.0)
    raise ConfigError(
        f"{spec.adapter}: labels range {min(values):g}..{max(values):g}, neither 1-5 nor 0-100; "
        f"give the scale in the spec, e.g. ?scale={math.floor(min(values))},{math.ceil(max(values))}"
    )


def _finish(
    spec: DatasetSpec,
    labelled: list[VideoItem],
    *,
    default_scale: tuple[float, float] | None,
    root: Path,
    label_files: Sequence[Path],
) -> Dataset:
    values = [item.mos for item in labelled] + [v for item in labelled for v in item.dimensions.values()]
    scale = _decide_scale(spec, default_scale, values)
    items: list[VideoItem] = []
    missing: list[VideoItem] = []
    for item in labelled:
        (items if os.path.isfile(item.path) else missing).append(item)
    return Dataset(
        name=spec.adapter,
        scale=(float(scale[0]), float(scale[1])),
        items=items,
        missing=missing,
        root=str(root),
        label_files=tuple(str(p) for p in label_files),
    )


# --- KoNViD-1k ----------------------------------------------------------------------------
KONVID_ATTRIBUTES = "KoNViD_1k_attributes.csv"
KONVID_MOS = "KoNViD_1k_mos.csv"
KONVID_VIDEOS = "KoNViD_1k_videos"


@register_adapter("konvid1k", scale=(1.0, 5.0), description="KoNViD-1k (1200 Flickr videos, MOS 1-5)")
def _load_konvid1k(spec: DatasetSpec) -> Dataset:
    path = _existing_path(spec)
    if path.is_file():
        label = path
        roots = [path.parent, path.parent.parent]
    else:
        label = _first_file([path, path / "KoNViD_1k_metadata", path / KONVID_VIDEOS], [KONVID_ATTRIBUTES, KONVID_MOS])
        if label is None:
            raise ConfigError(f"konvid1k: label file not found: {path / KONVID_ATTRIBUTES} (nor {KONVID_MOS})",
                              path=str(path / KONVID_ATTRIBUTES))
        roots = [path]
    videos = _videos_option(spec) or _first_dir([r / KONVID_VIDEOS for r in roots])
    if videos is None:
        videos = label.parent if _has_videos(label.parent) else roots[0] / KONVID_VIDEOS
    table = _read_csv(label)
    id_col = table.column("flickr_id")
    mos_col = table.column("mos")
    name_col = table.column("file_name", required=False)
    labelled = []
    for line, row in enumerate(table.rows, start=table.first_line):
        key = table.cell(row, id_col)
        mos = table.number(row, mos_col, "MOS", line)
        if not key or mos is None:
            continue
        key = re.sub(r"\.0+$", "", key)  # ids written as floats by a spreadsheet
        video = videos / f"{key}.mp4"
        file_name = table.cell(row, name_col)
        if not video.is_file() and file_name and (videos / file_name).is_file():
            video = videos / file_name
        labelled.append(VideoItem(key=key, path=str(video), mos=mos))
    return _finish(spec, labelled, default_scale=(1.0, 5.0), root=roots[0], label_files=[label])


# --- LIVE-VQC -----------------------------------------------------------------------------
LIVEVQC_MAT = "data.mat"


def _mat_string(value: Any) -> str:
    """A MATLAB string as `loadmat` returns it: a cell holds array(['A001.mp4']), possibly nested."""
    while isinstance(value, np.ndarray):
        if value.size == 0:
            return ""
        value = value.ravel()[0]
    return str(value).strip()


@register_adapter("livevqc", scale=(0.0, 100.0), description="LIVE-VQC (585 mobile videos, MOS 0-100)")
def _load_livevqc(spec: DatasetSpec) -> Dataset:
    from scipy.io import loadmat

    path = _existing_path(spec)
    label = path if path.is_file() else path / LIVEVQC_MAT
    if not label.is_file():
        raise ConfigError(f"livevqc: label file not found: {label}", path=str(label))
    root = label.parent
    videos = _videos_option(spec) or _first_dir([root / "Video", root / "video", root / "Videos"]) or root / "Video"
    try:
        mat = loadmat(str(label))
    except NotImplementedError:
        raise ConfigError(f"livevqc: {label} is a MATLAB v7.3 file; re-save it as v7 (save(..., '-v7'))",
                          path=str(label)) from None
    except Exception as exc:  # scipy raises several types for a damaged or foreign file
        raise ConfigError(f"livevqc: cannot read {label} as a .mat file ({exc})", path=str(label)) from None
    if "video_list" not in mat or "mos" not in mat:
        found = ", ".join(k for k in mat if not k.startswith("__"))
        raise ConfigError(f"livevqc: {label} lacks video_list and mos (variables: {found})", path=str(label))
    names = [_mat_string(v) for v in np.ravel(mat["video_list"])]
    try:
        scores = np.ravel(np.asarray(mat["mos"], dtype=float))
    except (TypeError, ValueError):
        raise ConfigError(f"livevqc: {label}: mos is not numeric", path=str(label)) from None
    if len(names) != len(scores):
        raise ConfigError(f"livevqc: {label}: {len(names)} names in video_list but {len(scores)} values in mos",
                          path=str(label))
    labelled = []
    for name, mos in zip(names, scores):
        if not name or not math.isfinite(mos):
            continue
        file_name = name if Path(name).suffix else f"{name}.mp4"
        labelled.append(VideoItem(key=Path(file_name).stem, path=str(videos / file_name), mos=float(mos)))
    return _finish(spec, labelled, default_scale=(0.0, 100.0), root=root, label_files=[label])


# --- YouTube-UGC --------------------------------------------------------------------------
UGC_XLSX = "original_videos_MOS_for_YouTube_UGC_dataset.xlsx"
UGC_CSV = "original_videos_MOS_for_YouTube_UGC_dataset.csv"
_UGC_TRANSCODE = re.compile(r"^(.*)_crf_\d+_ss_\d+_t_[0-9.]+$")


def _openpyxl():
    try:
        import openpyxl
    except ImportError:
        return None
    return openpyxl


def _read_ugc_xlsx(path: Path) -> _Table:
    openpyxl = _openpyxl()
    if openpyxl is None:
        raise ConfigError(
            f"youtubeugc: reading {path} needs openpyxl (pip install openpyxl), "
            f"or put its CSV export {UGC_CSV} beside it",
            path=str(path),
        )
    try:
        book = openpyxl.load_workbook(str(path), read_only=True, data_only=True)
    except Exception as exc:
        raise ConfigError(f"youtubeugc: cannot read {path} as an xlsx workbook ({exc})", path=str(path)) from None
    try:
        names = list(book.sheetnames)
        order = [n for n in names if n.strip().lower() == "mos"] + [n for n in names if n.strip().lower() != "mos"]
        for sheet in order:
            rows = [["" if v is None else str(v) for v in row] for row in book[sheet].iter_rows(values_only=True)]
            for offset, header in enumerate(rows[:10]):
                normalized = {_norm_column(h) for h in header}
                if "vid" in normalized and ({"mosfull", "mos"} & normalized):
                    body = [r for r in rows[offset + 1:] if any(c.strip() for c in r)]
                    return _Table(path, header, body, first_line=offset + 2)
    finally:
        book.close()
    raise ConfigError(f"youtubeugc: no sheet of {path} has the columns vid and 'MOS full'", path=str(path))


def _index_videos(folder: Path) -> dict[str, Path]:
    """Stem -> video file under `folder` (recursive); .mkv first, transcodes last."""
    rank = {suffix: i for i, suffix in enumerate(_VIDEO_SUFFIXES)}
    best: dict[str, tuple[int, Path]] = {}
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            stem, suffix = os.path.splitext(name)
            suffix = suffix.lower()
            if suffix not in rank:
                continue
            candidates = [(stem, rank[suffix])]
            match = _UGC_TRANSCODE.match(stem)
            if match:
                candidates = [(match.group(1), len(rank) + rank[suffix])]
            for key, score in candidates:
                if key not in best or score < best[key][0]:
                    best[key] = (score, Path(dirpath) / name)
    return {key: p for key, (_score, p) in best.items()}


@register_adapter("youtubeugc", scale=(1.0, 5.0), description="YouTube-UGC (original .mkv videos, MOS 1-5)")
def _load_youtubeugc(spec: DatasetSpec) -> Dataset:
    path = _existing_path(spec)
    if path.is_file():
        xlsx = path if path.suffix.lower() in (".xlsx", ".xlsm") else None
        csv_file = None if xlsx else path
        root = path.parent
    else:
        root = path
        xlsx = _first_file([path], [UGC_XLSX]) or next(iter(sorted(path.rglob(UGC_XLSX))), None)
        csv_file = _first_file([path], [UGC_CSV]) or next(iter(sorted(path.rglob(UGC_CSV))), None)
        if xlsx is None and csv_file is None:
            raise ConfigError(f"youtubeugc: label file not found: {path / UGC_XLSX} (nor {UGC_CSV})",
                              path=str(path / UGC_XLSX))
        if xlsx is not None and csv_file is not None and _openpyxl() is None:
            xlsx = None  # fall back on the CSV export rather than fail
    label = xlsx if xlsx is not None else csv_file
    assert label is not None
    table = _read_ugc_xlsx(label) if xlsx is not None else _read_csv(label)
    vid_col = table.column("vid")
    mos_col = table.column("MOS full", "mos")
    videos = _videos_option(spec) or root
    index = _index_videos(videos)
    labelled = []
    for line, row in enumerate(table.rows, start=table.first_line):
        vid = table.cell(row, vid_col)
        mos = table.number(row, mos_col, "MOS", line)
        if not vid or mos is None:
            continue
        video = index.get(vid, videos / f"{vid}.mkv")
        labelled.append(VideoItem(key=vid, path=str(video), mos=mos))
    return _finish(spec, labelled, default_scale=(1.0, 5.0), root=root, label_files=[label])


# --- LSVQ ---------------------------------------------------------------------------------
LSVQ_TRAIN_TEST = "labels_train_test.csv"
LSVQ_TEST_1080P = "labels_test_1080p.csv"
_TRUE = {"true", "1", "1.0", "yes", "y", "t"}
_FALSE = {"false", "0", "0.0", "no", "n", "f", ""}


@register_adapter(
    "lsvq", scale=(0.0, 100.0), splits=("train", "test", "test_1080p"),
    description="LSVQ (39k UGC videos, MOS 0-100, official train/test/test_1080p)",
)
def _load_lsvq(spec: DatasetSpec) -> Dataset:
    path = _existing_path(spec)
    if path.is_file():
        root, files = path.parent, [path]
    else:
        root = path
        files = [p for p in (path / LSVQ_TRAIN_TEST, path / LSVQ_TEST_1080P) if p.is_file()]
        if not files:
            raise ConfigError(f"lsvq: label file not found: {path / LSVQ_TRAIN_TEST} (nor {LSVQ_TEST_1080P})",
                              path=str(path / LSVQ_TRAIN_TEST))
        needed = {"test_1080p": LSVQ_TEST_1080P, "train": LSVQ_TRAIN_TEST, "test": LSVQ_TRAIN_TEST}.get(spec.split or "")
        if needed and not (path / needed).is_file():
            raise ConfigError(f"lsvq: split {spec.split} needs {path / needed}, which does not exist",
                              path=str(path / needed))
    videos = _videos_option(spec) or root
    labelled = []
    for label in files:
        table = _read_csv(label)
        name_col = table.column("name")
        mos_col = table.column("mos")
        test_col = table.column("is_test", required=False)
        if test_col is None and "1080p" not in label.name.lower():
            raise ConfigError(f"lsvq: {label} has no is_test column, so its train and test rows cannot be told apart",
                              path=str(label))
        for line, row in enumerate(table.rows, start=table.first_line):
            name = table.cell(row, name_col)
            mos = table.number(row, mos_col, "mos", line)
            if not name or mos is None:
                continue
            if test_col is None:
                split = "test_1080p"
            else:
                flag = table.cell(row, test_col).lower()
                if flag in _TRUE:
                    split = "test"
                elif flag in _FALSE:
                    split = "train"
                else:
                    raise ConfigError(f"{label}, line {line}: is_test {flag!r} is not true or false", path=str(label))
            relative = name if name.lower().endswith(".mp4") else f"{name}.mp4"
            video = videos.joinpath(*relative.replace("\\", "/").split("/"))
            labelled.append(VideoItem(key=name, path=str(video), mos=mos, split=split))
    return _finish(spec, labelled, default_scale=(0.0, 100.0), root=root, label_files=files)


# --- FineVD -------------------------------------------------------------------------------
FINEVD_LABELS = (("train", "MOS_train.csv"), ("val", "MOS_val.csv"), ("test", "MOS_test.csv"))
FINEVD_VIDEO_DIRS = ("videos_all/videos_all_videos", "videos_all_videos", "videos_all", "videos")
_FINEVD_NAME_COLUMNS = ("video_name", "video", "name", "path")


def _split_from_filename(path: Path) -> str | None:
    stem = path.stem.lower()
    for split in ("train", "val", "test"):
        if re.search(rf"(^|[^a-z]){split}", stem):
            return split
    return None


def _finevd_records(path: Path) -> list[tuple[str | None, dict[str, Any], int]]:
    """(split, record, line) from a FineVD-style JSON / JSON Lines file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"cannot read label file {path}: {exc.strerror or exc}", path=str(path)) from None
    try:
        if path.suffix.lower() == ".jsonl":
            data: Any = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc.msg} (line {exc.lineno})", path=str(path)) from None
    default = _split_from_filename(path)
    out: list[tuple[str | None, dict[str, Any], int]] = []
    if isinstance(data, dict):
        for split, records in data.items():
            if not isinstance(records, list):
                raise ConfigError(f"{path}: {split!r} should map to a list of records", path=str(path))
            out += [(str(split), r, i + 1) for i, r in enumerate(records)]
    elif isinstance(data, list):
        out = [(None, r, i + 1) for i, r in enumerate(data)]
    else:
        raise ConfigError(f"{path}: expected a list of records or an object of split -> list", path=str(path))
    result = []
    for split, record, index in out:
        if not isinstance(record, dict):
            raise ConfigError(f"{path}: record {index} is not an object", path=str(path))
        result.append((split or (str(record["split"]) if record.get("split") else None) or default, record, index))
    return result


@register_adapter(
    "finevd", scale=None, splits=("train", "val"),
    description="FineVD (UGC videos, overall + color/noise/artifact/blur/temporal MOS)",
)
def _load_finevd(spec: DatasetSpec) -> Dataset:
    path = _existing_path(spec)
    if path.is_file():
        label_files = [(None, path)]
        label_dir = path.parent
        roots = [label_dir, label_dir.parent, label_dir.parent.parent]
    else:
        label_dir = _first_dir([d for d in (path, path / "FineVD", path / "FineVD" / "FineVD")
                                if (d / FINEVD_LABELS[0][1]).is_file()])
        if label_dir is None:
            raise ConfigError(f"finevd: label file not found: {path / FINEVD_LABELS[0][1]} "
                              f"(nor in {path / 'FineVD'})", path=str(path / FINEVD_LABELS[0][1]))
        label_files = [(split, label_dir / name) for split, name in FINEVD_LABELS if (label_dir / name).is_file()]
        roots = [path, label_dir, label_dir.parent]
    videos = _videos_option(spec) or _first_dir([r / d for r in roots for d in FINEVD_VIDEO_DIRS])
    if videos is None:
        videos = next((r for r in roots if _has_videos(r)), roots[0] / FINEVD_VIDEO_DIRS[0])

    labelled = []

    def add(name: str, split: str | None, values: dict[str, float], where: str) -> None:
        if not name:
            return
        if "overall" not in values:
            raise ConfigError(f"finevd: {where}: no overall label", path=str(path))
        file_name = name if Path(name).suffix else f"{name}.mp4"
        if os.path.isabs(file_name):
            video = Path(file_name)
        else:
            video = videos.joinpath(*file_name.replace("\\", "/").split("/"))
        labelled.append(VideoItem(key=Path(file_name).stem, path=str(video), mos=values["overall"],
                                  split=split, dimensions=values))

    for split, label in label_files:
        if label.suffix.lower() in (".json", ".jsonl"):
            for rec_split, record, index in _finevd_records(label):
                name = next((str(record[k]).strip() for k in _FINEVD_NAME_COLUMNS if record.get(k)), "")
                values = {}
                for dim in DIMENSIONS:
                    if record.get(dim) not in (None, ""):
                        try:
                            values[dim] = float(record[dim])
                        except (TypeError, ValueError):
                            raise ConfigError(f"{label}, record {index}: {dim} {record[dim]!r} is not a number",
                                              path=str(label)) from None
                add(name, rec_split, values, f"{label}, record {index}")
            continue
        table = _read_csv(label)
        name_col = table.column(*_FINEVD_NAME_COLUMNS)
        table.column("overall")
        dim_cols = {dim: table.column(dim, required=False) for dim in DIMENSIONS}
        file_split = split if split is not None else _split_from_filename(label)
        split_col = table.column("split", required=False)
        for line, row in enumerate(table.rows, start=table.first_line):
            values = {}
            for dim, col in dim_cols.items():
                value = table.number(row, col, dim, line)
                if value is not None:
                    values[dim] = value
            row_split = table.cell(row, split_col) or file_split
            if not values:
                continue
            add(table.cell(row, name_col), row_split, values, f"{label}, line {line}")
    root = path if path.is_dir() else label_dir
    return _finish(spec, labelled, default_scale=None, root=root, label_files=[p for _s, p in label_files])


# --- generic CSV --------------------------------------------------------------------------
@register_adapter("csv", scale=None, description="your own CSV: path, mos[, split][, dimension columns]")
def _load_csv(spec: DatasetSpec) -> Dataset:
    path = _existing_path(spec)
    if path.is_dir():
        raise ConfigError(f"csv: {path} is a folder; give the CSV label file itself", path=str(path))
    table = _read_csv(path)
    path_col = table.column("path")
    mos_col = table.column("mos")
    split_col = table.column("split", required=False)
    dim_cols = {dim: table.column(dim, required=False) for dim in DIMENSIONS}
    base = _videos_option(spec) or path.parent
    labelled = []
    for line, row in enumerate(table.rows, start=table.first_line):
        written = table.cell(row, path_col)
        if not written:
            raise ConfigError(f"{path}, line {line}: empty path", path=str(path))
        mos = table.number(row, mos_col, "mos", line)
        if mos is None:
            raise ConfigError(f"{path}, line {line}: empty mos", path=str(path))
        dims = {}
        for dim, col in dim_cols.items():
            value = table.number(row, col, dim, line)
            if value is not None:
                dims[dim] = value
        video = Path(os.path.expanduser(written))
        if not video.is_absolute():
            video = base / video
        labelled.append(VideoItem(key=written, path=os.path.abspath(video), mos=mos,
                                  split=table.cell(row, split_col) or None, dimensions=dims))
    return _finish(spec, labelled, default_scale=None, root=path.parent, label_files=[path])


__all__ = [
    "ADAPTERS",
    "Adapter",
    "DIMENSIONS",
    "Dataset",
    "DatasetSpec",
    "VideoItem",
    "get_adapter",
    "list_adapters",
    "load_dataset",
    "register_adapter",
]
