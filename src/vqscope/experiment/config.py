"""The training configuration: one TOML file, read into typed dataclasses.

A research run is only reproducible if everything that shaped it is written down in one
place and kept with the result, so `vqscope train` takes a single TOML file and stores its
text (and the parsed form) inside the model file it writes. Reading is strict: an unknown
key or a value of the wrong type stops the run with a `ConfigError` that names the key, the
table it sits in and what was expected -- a misspelt `pateince` silently ignored would cost
a night of training with the default.

Relative paths (dataset spec paths, weights files, the cache folder, the output file) are
taken relative to the folder of the TOML file, so a config and its data can move together.

    [model]                 name, version, description, primary head, output file
    [features]              backbones, weights, clip plan, cache folder, workers
    [train]                 network, optimiser, batches, losses, early stopping, seed
    [[datasets]]            one table per dataset: name (= its head), spec, split

A model learns from MOS datasets ([[datasets]]) or from a synthetic corpus of graded damage on
real footage ([corpus], made by `vqscope synth`'s generator), as the shipped default does; a
corpus run also reads

    [corpus]                sources, clip length and size, graded mixes per source, work folder
    [choose]                what cross-validation over the sources chooses between: feature sets,
                            kinds of head, folds, calibration of the distortion probabilities
    [trees]                 settings of the boosted-tree parts
    [card]                  the real clips the model card reports on

configs/vqscope-lite.toml is the default model's recipe.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from ..backbones import get_backbone_spec
from ..data.datasets import DatasetSpec
from ..errors import ConfigError, VQScopeError
from ..features import FeatureConfig
from ..sampling import ClipPlanConfig

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
LOSSES = ("l1", "mse")
CORRELATION_LOSSES = ("plcc", "rank", "none")
SPLIT_METHODS = ("official", "kfold", "all")


def default_cache_dir() -> Path:
    """Feature cache: $VQSCOPE_FEATURE_CACHE, else ~/.cache/vqscope/features (XDG aware)."""
    env = os.environ.get("VQSCOPE_FEATURE_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vqscope" / "features"


def default_corpus_dir() -> Path:
    """Synthetic corpora and their sources: $VQSCOPE_CORPUS_DIR, else ~/.cache/vqscope/corpus."""
    env = os.environ.get("VQSCOPE_CORPUS_DIR")
    if env:
        return Path(env).expanduser()
    return default_cache_dir().parent / "corpus"


def default_workers() -> int:
    """Decode workers: every core, at most 8 (each holds its own copy of the backbones)."""
    return max(1, min(8, os.cpu_count() or 1))


def name_for_spec(spec: str | DatasetSpec) -> str:
    """The default name of a dataset (and of its head): the adapter, or a CSV file's stem."""
    parsed = DatasetSpec.parse(spec) if isinstance(spec, str) else spec
    base = Path(parsed.path).stem if parsed.adapter in ("csv", "finevd") and Path(parsed.path).suffix else parsed.adapter
    clean = re.sub(r"[^A-Za-z0-9_-]", "_", base) or parsed.adapter
    return clean if clean[0].isalpha() or clean[0] == "_" else f"d_{clean}"


# --- sections ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSection:
    name: str
    version: int = 1
    description: str = ""
    primary: str | None = None  # head used for scoring; None: the first dataset's
    output: str | None = None  # model file; None: NAME-VERSION.safetensors beside the config


@dataclass(frozen=True)
class FeatureSection:
    config: FeatureConfig = field(default_factory=FeatureConfig)
    cache_dir: str | None = None  # None: default_cache_dir()
    workers: int | None = None  # None: default_workers()

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else default_cache_dir()


@dataclass(frozen=True)
class TrainSection:
    """How the prediction network is fitted (see experiment/multihead.py for why)."""

    hidden: tuple[int, ...] = (128,)
    dropout: float = 0.2
    lr: float = 1e-3
    weight_decay: float = 1e-2
    epochs: int = 100
    patience: int = 15  # epochs without a better validation SROCC before stopping
    videos_per_dataset: int = 16  # videos of *each* dataset in every batch
    loss: str = "l1"  # l1 | mse, on the 0-1 scale
    correlation_loss: str = "plcc"  # plcc | rank | none, within each dataset of a batch
    correlation_weight: float = 1.0
    seed: int = 0
    shared_head: bool = False  # one head for every dataset (the ablation multi-head beats)
    cross_validate: bool = False  # train every k-fold split and report mean and spread


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset of the run; its `name` is also the name of its head."""

    name: str
    spec: str
    split: str = "official"  # official | kfold | all
    train_split: str = "train"
    val_split: str | None = None  # None: carve val_fraction out of the training videos
    test_split: str | None = "test"
    folds: int = 5
    fold: int = 0
    val_fraction: float = 0.1


# Kinds of head a corpus run can compare, each adding parts to the one before it (heads/config.py).
HEAD_CHOICES = ("linear", "trees", "trees+severity", "trees+severity+overall")


@dataclass(frozen=True)
class CorpusSection:
    """A synthetic corpus made by `vqscope synth`'s generator (data/synth.py): every taxonomy
    type at every level on each source, and graded mixes of several."""

    sources: tuple[str, ...] = ("packaged",)  # "packaged": footage in Debian and PyPI packages; files, folders
    seconds: float = 2.5
    max_long_side: int = 768
    mixes: int = 48  # graded mixes per source
    work_dir: str | None = None  # None: default_corpus_dir()
    folder: str | None = None  # a corpus `vqscope synth --out FOLDER` made: trained on as it is, nothing rendered
    target: str = "designed"  # loss table of the targets: "designed", a packaged table ("gmsd") or a table file
    codecs: tuple[str, ...] = ("libx264",)  # encoders of compression samples ("libx264", "libx265"), shared by hash

    @property
    def work_path(self) -> Path:
        return Path(self.work_dir) if self.work_dir else default_corpus_dir()


@dataclass(frozen=True)
class ChooseSection:
    """What k-fold cross-validation by source over the non-test sources chooses between: the best
    mean type AUC plus mean dimension SROCC wins."""

    folds: int = 4
    feature_sets: tuple[tuple[str, FeatureConfig], ...] = ()  # (); the [features] backbones alone
    heads: tuple[str, ...] = ("linear",)  # among HEAD_CHOICES
    calibrate_distortions: bool = True  # Platt scaling of a tree head, on the out-of-fold logits


@dataclass(frozen=True)
class TreesSection:
    """scikit-learn HistGradientBoosting settings of every boosted-tree part."""

    max_iter: int = 300
    learning_rate: float = 0.05
    max_leaf_nodes: int = 15
    l2_regularization: float = 1.0


@dataclass(frozen=True)
class CardSection:
    real_clips: str | None = None  # a folder of real clips the card scores (never trained on)


@dataclass(frozen=True)
class ExperimentConfig:
    model: ModelSection
    features: FeatureSection
    train: TrainSection
    datasets: tuple[DatasetEntry, ...]
    corpus: CorpusSection | None = None
    choose: ChooseSection = field(default_factory=ChooseSection)
    trees: TreesSection = field(default_factory=TreesSection)
    card: CardSection = field(default_factory=CardSection)
    text: str = ""  # the TOML as written
    raw: Mapping[str, Any] = field(default_factory=dict)  # the TOML as parsed
    path: str | None = None

    @property
    def primary(self) -> str:
        if self.train.shared_head or self.corpus is not None:
            return "overall"
        return self.model.primary or self.datasets[0].name

    @property
    def head_names(self) -> tuple[str, ...]:
        return ("overall",) if self.train.shared_head else tuple(d.name for d in self.datasets)

    def output_path(self) -> Path:
        if self.model.output:
            return Path(self.model.output)
        base = Path(self.path).parent if self.path else Path.cwd()
        return base / f"{self.model.name}-{self.model.version}.safetensors"

    def to_metadata(self) -> dict[str, Any]:
        """What the model file keeps: the TOML text, its parsed form, and where it was read."""
        return {"path": self.path, "toml": self.text, "parsed": jsonable(self.raw)}


# --- reading -------------------------------------------------------------------------------
def load_config(path: str | os.PathLike[str]) -> ExperimentConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}", path=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}", path=str(path)) from None
    return parse_config(text, base_dir=path.resolve().parent, path=str(path.resolve()))


def parse_config(text: str, base_dir: str | os.PathLike[str] | None = None, path: str | None = None) -> ExperimentConfig:
    where = path or "config"
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc})", path=path) from None
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    _known(raw, ("model", "features", "train", "datasets", "corpus", "choose", "trees", "card"), "the top level")
    model = _model(_table(raw, "model", required=True), base)
    features = _features(_table(raw, "features"), base)
    train = _train(_table(raw, "train"))
    if "corpus" in raw:
        if "datasets" in raw:
            raise ConfigError("a config trains on [[datasets]] or on a [corpus], not both")
        config = ExperimentConfig(model, features, train, (), corpus=_corpus(_table(raw, "corpus"), base),
                                  choose=_choose(_table(raw, "choose"), features.config),
                                  trees=_trees(_table(raw, "trees")), card=_card(_table(raw, "card"), base),
                                  text=text, raw=raw, path=path)
        return config
    extra = [k for k in ("choose", "trees", "card") if k in raw]
    if extra:
        raise ConfigError(f"[{extra[0]}] goes with a [corpus]; a config with [[datasets]] does not read it")
    datasets = _datasets(raw.get("datasets"), base, train)
    config = ExperimentConfig(model, features, train, datasets, text=text, raw=raw, path=path)
    names = [d.name for d in datasets]
    if model.primary is not None and not train.shared_head and model.primary not in names:
        raise ConfigError(f"model.primary {model.primary!r} is not the name of a dataset ({', '.join(names)})")
    if train.cross_validate:
        folds = {d.folds for d in datasets if d.split == "kfold"}
        if not folds:
            raise ConfigError("train.cross_validate needs at least one dataset with split = \"kfold\"")
        if len(folds) > 1:
            raise ConfigError(f"train.cross_validate needs the same number of folds in every kfold dataset, "
                              f"got {sorted(folds)}")
    return config


def _table(raw: Mapping[str, Any], key: str, required: bool = False) -> dict[str, Any]:
    value = raw.get(key)
    if value is None:
        if required:
            raise ConfigError(f"config has no [{key}] table")
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be a table ([{key}]), got {type(value).__name__}")
    return value


def _known(table: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (keys: {', '.join(allowed)})"
            raise ConfigError(f"unknown key {key!r} in {where}{hint}")


def _get(table: Mapping[str, Any], key: str, kind: str, default: Any, where: str) -> Any:
    """table[key] checked against `kind` (str, int, float, bool, str?, ints), else `default`."""
    if key not in table:
        return default
    value = table[key]
    label = f"{where}.{key}"
    if kind in ("str", "str?"):
        if isinstance(value, str) and value.strip():
            return value.strip()
        raise ConfigError(f"{label} must be a non-empty string, got {value!r}")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{label} must be true or false, got {value!r}")
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{label} must be an integer, got {value!r}")
    if kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{label} must be a number, got {value!r}")
    if kind == "ints":
        if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return tuple(value)
        raise ConfigError(f"{label} must be a list of integers, got {value!r}")
    if kind == "strs":
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(v.strip() for v in value)
        raise ConfigError(f"{label} must be a list of strings, got {value!r}")
    raise AssertionError(kind)


def _choice(value: str, choices: tuple[str, ...], label: str) -> str:
    if value.lower() not in choices:
        raise ConfigError(f"{label} must be one of {', '.join(choices)}, got {value!r}")
    return value.lower()


def _resolve(path: str, base: Path) -> str:
    expanded = Path(os.path.expanduser(path))
    return os.path.normpath(expanded if expanded.is_absolute() else (base / expanded))


def _model(t: Mapping[str, Any], base: Path) -> ModelSection:
    _known(t, tuple(f.name for f in fields(ModelSection)), "[model]")
    name = _get(t, "name", "str", None, "model")
    if name is None:
        raise ConfigError("[model] needs a name (e.g. name = \"my-vqa\")")
    if not re.match(r"^[a-z0-9][a-z0-9_.-]*$", name):
        raise ConfigError(f"model.name {name!r} must be lower case letters, digits, '.', '_' or '-'")
    version = _get(t, "version", "int", 1, "model")
    if version < 1:
        raise ConfigError(f"model.version must be at least 1, got {version}")
    output = _get(t, "output", "str", None, "model")
    return ModelSection(
        name=name,
        version=version,
        description=_get(t, "description", "str", "", "model"),
        primary=_get(t, "primary", "str", None, "model"),
        output=_resolve(output, base) if output else None,
    )


def _features(t: Mapping[str, Any], base: Path) -> FeatureSection:
    allowed = ("spatial", "temporal", "weights", "clip_plan", "video_meta", "cache_dir", "workers")
    _known(t, allowed, "[features]")
    default = FeatureConfig()
    spatial = _get(t, "spatial", "strs", default.spatial, "features")
    temporal = _get(t, "temporal", "strs", default.temporal, "features")
    weights_table = t.get("weights", {})
    if not isinstance(weights_table, dict):
        raise ConfigError("features.weights must be a table of backbone = weights")
    weights = {}
    for backbone, value in weights_table.items():
        if backbone not in spatial + temporal:
            raise ConfigError(f"features.weights names {backbone!r}, which is not among the backbones "
                              f"({', '.join(spatial + temporal)})")
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"features.weights.{backbone} must be a weights name, a file or a URL, got {value!r}")
        value = value.strip()
        looks_like_file = "/" in value or os.sep in value or value.startswith("~") or value.endswith(
            (".pth", ".pt", ".pyth", ".bin", ".ckpt", ".safetensors"))
        if looks_like_file and "://" not in value:
            value = _resolve(value, base)
        weights[backbone] = value
    plan_table = t.get("clip_plan", {})
    if not isinstance(plan_table, dict):
        raise ConfigError("features.clip_plan must be a table")
    _known(plan_table, ("clip_seconds", "max_clips", "window_frames"), "[features.clip_plan]")
    plan_default = ClipPlanConfig()
    try:
        plan = ClipPlanConfig(
            clip_seconds=_get(plan_table, "clip_seconds", "float", plan_default.clip_seconds, "features.clip_plan"),
            max_clips=_get(plan_table, "max_clips", "int", plan_default.max_clips, "features.clip_plan"),
            window_frames=_get(plan_table, "window_frames", "int", plan_default.window_frames, "features.clip_plan"),
        )
    except ValueError as exc:
        raise ConfigError(f"features.clip_plan: {exc}") from None
    try:
        for name in spatial + temporal:
            get_backbone_spec(name)
        config = FeatureConfig(
            spatial=spatial,
            temporal=temporal,
            weights=weights,
            clip_plan=plan,
            video_meta=_get(t, "video_meta", "bool", default.video_meta, "features"),
        )
    except VQScopeError as exc:
        raise ConfigError(f"[features]: {exc.message}") from None
    cache_dir = _get(t, "cache_dir", "str", None, "features")
    workers = _get(t, "workers", "int", None, "features")
    if workers is not None and workers < 1:
        raise ConfigError(f"features.workers must be at least 1, got {workers}")
    return FeatureSection(config, _resolve(cache_dir, base) if cache_dir else None, workers)


def _train(t: Mapping[str, Any]) -> TrainSection:
    _known(t, tuple(f.name for f in fields(TrainSection)), "[train]")
    d = TrainSection()
    w = "train"
    section = TrainSection(
        hidden=_get(t, "hidden", "ints", d.hidden, w),
        dropout=_get(t, "dropout", "float", d.dropout, w),
        lr=_get(t, "lr", "float", d.lr, w),
        weight_decay=_get(t, "weight_decay", "float", d.weight_decay, w),
        epochs=_get(t, "epochs", "int", d.epochs, w),
        patience=_get(t, "patience", "int", d.patience, w),
        videos_per_dataset=_get(t, "videos_per_dataset", "int", d.videos_per_dataset, w),
        loss=_choice(_get(t, "loss", "str", d.loss, w), LOSSES, "train.loss"),
        correlation_loss=_choice(_get(t, "correlation_loss", "str", d.correlation_loss, w), CORRELATION_LOSSES,
                                 "train.correlation_loss"),
        correlation_weight=_get(t, "correlation_weight", "float", d.correlation_weight, w),
        seed=_get(t, "seed", "int", d.seed, w),
        shared_head=_get(t, "shared_head", "bool", d.shared_head, w),
        cross_validate=_get(t, "cross_validate", "bool", d.cross_validate, w),
    )
    checks = [
        (all(h >= 1 for h in section.hidden), "train.hidden must hold positive layer widths"),
        (0.0 <= section.dropout < 1.0, "train.dropout must lie in [0, 1)"),
        (section.lr > 0, "train.lr must be greater than 0"),
        (section.weight_decay >= 0, "train.weight_decay must be 0 or more"),
        (section.epochs >= 1, "train.epochs must be at least 1"),
        (section.patience >= 1, "train.patience must be at least 1"),
        (section.videos_per_dataset >= 2, "train.videos_per_dataset must be at least 2 (a correlation needs two)"),
        (section.correlation_weight >= 0, "train.correlation_weight must be 0 or more"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    return section


def _datasets(value: Any, base: Path, train: TrainSection) -> tuple[DatasetEntry, ...]:
    if value is None:
        raise ConfigError("config has no [[datasets]] tables: name at least one dataset to train on")
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value) or not value:
        raise ConfigError("datasets must be an array of tables ([[datasets]] with name and spec)")
    entries = []
    for i, t in enumerate(value):
        where = f"datasets[{i}]"
        _known(t, tuple(f.name for f in fields(DatasetEntry)), f"[[datasets]] #{i + 1}")
        text = _get(t, "spec", "str", None, where)
        if text is None:
            raise ConfigError(f"{where} needs a spec, e.g. spec = \"konvid1k:/data/KoNViD_1k\"")
        parsed = DatasetSpec.parse(text)
        if parsed.split is not None:
            raise ConfigError(f"{where}.spec {text!r} selects split {parsed.split!r}: give the whole dataset and "
                              f"choose splits with train_split / test_split")
        parsed = DatasetSpec(parsed.adapter, _resolve(parsed.path, base), None, parsed.options)
        name = _get(t, "name", "str", None, where) or name_for_spec(parsed)
        if not _NAME_RE.match(name):
            raise ConfigError(f"{where}.name {name!r} must start with a letter and hold only letters, digits, _ or -")
        if name == "overall" and not train.shared_head:
            raise ConfigError(f"{where}.name 'overall' is reserved for the shared head; pick another name")
        d = DatasetEntry(name=name, spec=str(parsed))
        entry = DatasetEntry(
            name=name,
            spec=str(parsed),
            split=_choice(_get(t, "split", "str", d.split, where), SPLIT_METHODS, f"{where}.split"),
            train_split=_get(t, "train_split", "str", d.train_split, where),
            val_split=_get(t, "val_split", "str", d.val_split, where),
            test_split=_get(t, "test_split", "str", d.test_split, where),
            folds=_get(t, "folds", "int", d.folds, where),
            fold=_get(t, "fold", "int", d.fold, where),
            val_fraction=_get(t, "val_fraction", "float", d.val_fraction, where),
        )
        if entry.split == "kfold" and not (entry.folds >= 2 and 0 <= entry.fold < entry.folds):
            raise ConfigError(f"{where}: kfold needs folds >= 2 and 0 <= fold < folds (got folds={entry.folds}, "
                              f"fold={entry.fold})")
        if not 0.0 <= entry.val_fraction < 1.0:
            raise ConfigError(f"{where}.val_fraction must lie in [0, 1), got {entry.val_fraction}")
        if entry.val_split is None and entry.val_fraction == 0.0:
            raise ConfigError(f"{where}: early stopping needs validation videos: set val_fraction > 0 or val_split")
        entries.append(entry)
    names = [e.name for e in entries]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"dataset names must be unique (each names a head): {', '.join(dupes)} repeated")
    return tuple(entries)


def _target(value: str, base: Path) -> str:
    """A loss table's name, or its file resolved against the config's folder; checked now so a
    wrong name fails before hours of rendering."""
    from ..data.loss_table import known_tables, table_named

    if value in known_tables():
        return value
    path = _resolve(value, base)
    if not Path(path).is_file():
        raise ConfigError(f"corpus.target: no loss table {value!r}: name one of {', '.join(known_tables())}, "
                          f"or a table file")
    try:
        table_named(path)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"corpus.target: {value}: not a loss table ({exc})") from None
    return path


def _codecs(value) -> tuple[str, ...]:
    from ..data.distortions import check_codecs

    try:
        return check_codecs(value)
    except ValueError as exc:
        raise ConfigError(f"corpus.{exc}") from None


def _corpus(t: Mapping[str, Any], base: Path) -> CorpusSection:
    _known(t, tuple(f.name for f in fields(CorpusSection)), "[corpus]")
    d, w = CorpusSection(), "corpus"
    sources = _get(t, "sources", "strs", d.sources, w)
    if not sources:
        raise ConfigError("corpus.sources is empty: name \"packaged\" or files and folders of footage")
    work_dir = _get(t, "work_dir", "str", None, w)
    folder = _get(t, "folder", "str", None, w)
    if folder is not None:
        made = [k for k in ("sources", "seconds", "max_long_side", "mixes", "codecs") if k in t]
        if made:
            raise ConfigError(f"corpus.folder is a corpus `vqscope synth` already made; corpus.{made[0]} was set "
                              f"when it was made and cannot be given here")
    section = CorpusSection(
        sources=tuple(s if s == "packaged" else _resolve(s, base) for s in sources),
        seconds=_get(t, "seconds", "float", d.seconds, w),
        max_long_side=_get(t, "max_long_side", "int", d.max_long_side, w),
        mixes=_get(t, "mixes", "int", d.mixes, w),
        work_dir=_resolve(work_dir, base) if work_dir else None,
        folder=_resolve(folder, base) if folder else None,
        target=_target(_get(t, "target", "str", d.target, w), base),
        codecs=_codecs(_get(t, "codecs", "strs", d.codecs, w)),
    )
    for ok, message in ((section.seconds > 0, "corpus.seconds must be greater than 0"),
                        (section.max_long_side >= 64, "corpus.max_long_side must be at least 64"),
                        (section.mixes >= 2, "corpus.mixes must be at least 2 (dimensions are judged on the "
                                             "held-out graded mixes)")):
        if not ok:
            raise ConfigError(message)
    return section


def _choose(t: Mapping[str, Any], features: FeatureConfig) -> ChooseSection:
    _known(t, tuple(f.name for f in fields(ChooseSection)), "[choose]")
    d, w = ChooseSection(), "choose"
    heads = _get(t, "heads", "strs", d.heads, w)
    for h in heads:
        _choice(h, HEAD_CHOICES, "choose.heads entries")
    sets_table = t.get("feature_sets", {})
    if not isinstance(sets_table, dict):
        raise ConfigError("choose.feature_sets must be a table of name = { spatial = [...], temporal = [...] }")
    sets = []
    for name, spec in sets_table.items():
        where = f"choose.feature_sets.{name}"
        if not isinstance(spec, dict):
            raise ConfigError(f"{where} must be a table with spatial and temporal backbone lists")
        _known(spec, ("spatial", "temporal"), f"[{where}]")
        try:
            backbones = (_get(spec, "spatial", "strs", (), where), _get(spec, "temporal", "strs", (), where))
            for backbone in backbones[0] + backbones[1]:
                get_backbone_spec(backbone)
                if backbone not in features.spatial + features.temporal:
                    raise ConfigError(f"{where} names {backbone!r}, which [features] does not extract "
                                      f"({', '.join(features.spatial + features.temporal)})")
            sets.append((name, FeatureConfig(spatial=backbones[0], temporal=backbones[1], weights=features.weights,
                                             clip_plan=features.clip_plan, video_meta=features.video_meta)))
        except VQScopeError as exc:
            raise ConfigError(f"{where}: {exc.message}") from None
    section = ChooseSection(folds=_get(t, "folds", "int", d.folds, w), feature_sets=tuple(sets),
                            heads=tuple(h.lower() for h in heads),
                            calibrate_distortions=_get(t, "calibrate_distortions", "bool", d.calibrate_distortions, w))
    if section.folds < 2:
        raise ConfigError(f"choose.folds must be at least 2, got {section.folds}")
    if not section.heads:
        raise ConfigError(f"choose.heads is empty: name at least one of {', '.join(HEAD_CHOICES)}")
    return section


def _trees(t: Mapping[str, Any]) -> TreesSection:
    _known(t, tuple(f.name for f in fields(TreesSection)), "[trees]")
    d, w = TreesSection(), "trees"
    section = TreesSection(max_iter=_get(t, "max_iter", "int", d.max_iter, w),
                           learning_rate=_get(t, "learning_rate", "float", d.learning_rate, w),
                           max_leaf_nodes=_get(t, "max_leaf_nodes", "int", d.max_leaf_nodes, w),
                           l2_regularization=_get(t, "l2_regularization", "float", d.l2_regularization, w))
    for ok, message in ((section.max_iter >= 1, "trees.max_iter must be at least 1"),
                        (section.learning_rate > 0, "trees.learning_rate must be greater than 0"),
                        (section.max_leaf_nodes >= 2, "trees.max_leaf_nodes must be at least 2"),
                        (section.l2_regularization >= 0, "trees.l2_regularization must be 0 or more")):
        if not ok:
            raise ConfigError(message)
    return section


def _card(t: Mapping[str, Any], base: Path) -> CardSection:
    _known(t, tuple(f.name for f in fields(CardSection)), "[card]")
    folder = _get(t, "real_clips", "str", None, "card")
    return CardSection(real_clips=_resolve(folder, base) if folder else None)


def jsonable(value: Any) -> Any:
    """TOML values as JSON values (dates and times become ISO strings)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (dt.date, dt.time, dt.datetime)):
        return value.isoformat()
    return value
