"""Training from a TOML config, multi-head fitting, splits, evaluation and the three commands.

The multi-head claim is tested on synthetic feature matrices (two "studies" that disagree
about one distortion); the commands run end to end on small generated videos.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import textured_frames
from vqscope.cli import main
from vqscope.data.datasets import VideoItem
from vqscope.data.encode import write_video
from vqscope.errors import ConfigError
from vqscope.evaluate import EvalSet
from vqscope.experiment.config import DatasetEntry, TrainSection, load_config, name_for_spec, parse_config
from vqscope.experiment.data import VideoSet, clip_rows
from vqscope.experiment.multihead import fit_multihead, head_of, plcc_loss, predict_videos, rank_loss
from vqscope.experiment.splits import make_split
from vqscope.metrics import srocc
from vqscope.model import Model, read_model_file

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def one_thread():
    """Small MLPs train several times faster on one thread than on two contended ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- config ------------------------------------------------------------------------------
MINIMAL = """
[model]
name = "m"
[[datasets]]
spec = "csv:labels.csv"
split = "all"
"""


def test_example_config_parses_into_typed_sections():
    config = load_config(ROOT / "examples" / "train_konvid_lsvq.toml")
    assert config.model.name == "bilivqa-konvid-lsvq" and config.primary == "lsvq"
    assert config.features.config.spatial == ("mobilenet_v2",) and config.features.config.temporal == ("x3d_m",)
    assert config.features.config.weights == {"mobilenet_v2": "IMAGENET1K_V1", "x3d_m": "KINETICS400"}
    assert [d.name for d in config.datasets] == ["konvid1k", "lsvq"]
    assert config.datasets[0].split == "kfold" and config.datasets[1].test_split == "test"
    assert config.train.loss == "l1" and config.train.videos_per_dataset == 16
    assert config.head_names == ("konvid1k", "lsvq")
    assert config.output_path() == (ROOT / "models" / "bilivqa-konvid-lsvq-1.safetensors").resolve()
    meta = config.to_metadata()
    assert meta["toml"].startswith("# A BILIVQA-style model") and meta["parsed"]["train"]["seed"] == 0


def test_defaults_and_relative_paths(tmp_path):
    config = parse_config(MINIMAL, base_dir=tmp_path)
    assert config.datasets[0].name == "labels" and config.datasets[0].spec == f"csv:{tmp_path / 'labels.csv'}"
    assert config.train == TrainSection() and config.primary == "labels"
    assert config.output_path() == Path.cwd() / "m-1.safetensors"
    assert name_for_spec("lsvq:/data/LSVQ@test") == "lsvq" and name_for_spec("csv:/x/2024 set.csv") == "d_2024_set"


@pytest.mark.parametrize("extra, message", [
    ("[train]\npateince = 3", "unknown key 'pateince' in [train]; did you mean 'patience'?"),
    ("[train]\nlr = \"fast\"", "train.lr must be a number, got 'fast'"),
    ("[train]\nloss = \"huber\"", "train.loss must be one of l1, mse, got 'huber'"),
    ("[train]\ncorrelation_loss = \"srocc\"", "train.correlation_loss must be one of plcc, rank, none"),
    ("[train]\nvideos_per_dataset = 1", "train.videos_per_dataset must be at least 2"),
    ("[train]\nshared_head = 1", "train.shared_head must be true or false, got 1"),
    ("[features]\nspatial = [\"resnet50\"]", "unknown backbone 'resnet50'"),
    ("[features]\ntemporal = [\"mobilenet_v2\"]", "'mobilenet_v2' is not a temporal backbone"),
    ("[features.weights]\nx3d_m = \"KINETICS400\"", "features.weights names 'x3d_m', which is not among the backbones"),
    ("[features.clip_plan]\nmax_clips = 0", "features.clip_plan: max_clips must be >= 1"),
    ("[optimizer]\nlr = 1", "unknown key 'optimizer' in the top level"),
])
def test_bad_keys_and_values_name_the_key(extra, message):
    with pytest.raises(ConfigError) as info:
        parse_config(MINIMAL + extra)
    assert message in info.value.message


@pytest.mark.parametrize("text, message", [
    ("[model]\nname = \"m\"", "config has no [[datasets]] tables"),
    ("[[datasets]]\nspec = \"csv:x.csv\"", "config has no [model] table"),
    ("[model]\nname = \"M M\"\n[[datasets]]\nspec = \"csv:x.csv\"", "model.name 'M M' must be lower case"),
    ("[model]\nname = \"m\"\n[[datasets]]\nname = \"a\"", "datasets[0] needs a spec"),
    ("[model]\nname = \"m\"\n[[datasets]]\nspec = \"csv:x.csv\"\nsplit = \"kfold\"\nfold = 5",
     "kfold needs folds >= 2 and 0 <= fold < folds"),
    ("[model]\nname = \"m\"\n[[datasets]]\nspec = \"lsvq:/d@test\"", "selects split 'test'"),
    ("[model]\nname = \"m\"\n[[datasets]]\nspec = \"nosuch:/d\"", "unknown dataset adapter 'nosuch'"),
    ("[model]\nname = \"m\"\nprimary = \"b\"\n[[datasets]]\nname = \"a\"\nspec = \"csv:x.csv\"",
     "model.primary 'b' is not the name of a dataset"),
    ("[model]\nname = \"m\"\n[[datasets]]\nspec = \"csv:x.csv\"\n[[datasets]]\nspec = \"csv:y/x.csv\"",
     "dataset names must be unique"),
    ("[model]\nname = \"m\"\n[[datasets]]\nspec = \"csv:x.csv\"\nval_fraction = 0.0",
     "early stopping needs validation videos"),
    ("[model\nname = 1", "not valid TOML"),
])
def test_bad_structure_is_a_config_error(text, message):
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert message in info.value.message


# --- splits and packing ------------------------------------------------------------------
def video_set(name: str, mos: np.ndarray, features: list[np.ndarray], splits=None, scale=(0.0, 100.0)) -> VideoSet:
    items = [VideoItem(key=f"{name}{i}", path=f"/none/{name}{i}.mp4", mos=float(m),
                       split=None if splits is None else splits[i]) for i, m in enumerate(mos)]
    count = np.array([len(f) for f in features])
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    target = 100.0 * (np.asarray(mos, dtype=float) - scale[0]) / (scale[1] - scale[0])
    return VideoSet(name, scale, items, np.concatenate(features).astype(np.float32), start, count, target)


def test_clip_rows_and_subset_keep_videos_together():
    v = video_set("a", np.arange(4.0), [np.full((n, 2), i, dtype=np.float32) for i, n in enumerate([2, 1, 3, 2])])
    assert clip_rows(v.start, v.count, np.array([2, 0])).tolist() == [3, 4, 5, 0, 1]
    sub = v.subset([3, 1])
    assert sub.features[:, 0].tolist() == [3, 3, 1] and sub.start.tolist() == [0, 2] and sub.target.tolist() == [3, 1]
    assert sub.owner.tolist() == [0, 0, 1]


def test_kfold_is_a_partition_stable_under_reordering():
    n = 50
    v = video_set("k", np.arange(n, dtype=float), [np.zeros((1, 2))] * n)
    entry = DatasetEntry(name="k", spec="csv:x.csv", split="kfold", folds=5, val_fraction=0.2)
    tests = [make_split(entry, v, seed=3, fold=f) for f in range(5)]
    assert sorted(np.concatenate([s.test for s in tests]).tolist()) == list(range(n))
    first = tests[0]
    assert len(first.test) == 10 and len(first.val) == 8 and len(first.train) == 32
    assert not set(first.train) & set(first.val) and not set(first.train) & set(first.test)
    reversed_set = v.subset(np.arange(n)[::-1])
    again = make_split(entry, reversed_set, seed=3, fold=0)
    keys = lambda s, vs, part: sorted(vs.items[i].key for i in getattr(s, part))  # noqa: E731
    for part in ("train", "val", "test"):
        assert keys(first, v, part) == keys(again, reversed_set, part)
    assert keys(make_split(entry, v, seed=4, fold=0), v, "test") != keys(first, v, "test")


def test_official_split_and_its_errors():
    splits = ["train"] * 8 + ["test"] * 3 + ["val"] * 2
    v = video_set("o", np.arange(13.0), [np.zeros((1, 2))] * 13, splits=splits)
    s = make_split(DatasetEntry(name="o", spec="csv:x.csv", val_split="val"), v, seed=0)
    assert s.counts() == {"train": 8, "val": 2, "test": 3}
    carved = make_split(DatasetEntry(name="o", spec="csv:x.csv", val_fraction=0.25), v, seed=0)
    assert carved.counts() == {"train": 6, "val": 2, "test": 3}
    with pytest.raises(ConfigError, match="has no split 'test_1080p'"):
        make_split(DatasetEntry(name="o", spec="csv:x.csv", test_split="test_1080p"), v, seed=0)
    none = video_set("n", np.arange(5.0), [np.zeros((1, 2))] * 5)
    with pytest.raises(ConfigError, match="has no official splits"):
        make_split(DatasetEntry(name="n", spec="csv:x.csv"), none, seed=0)


def test_correlation_losses():
    y = torch.tensor([0.1, 0.4, 0.2, 0.9])
    assert float(plcc_loss(y * 3 + 1, y)) == pytest.approx(0.0, abs=1e-6)
    assert float(plcc_loss(-y, y)) == pytest.approx(2.0, abs=1e-6)
    assert float(rank_loss(y * 5, y)) == 0.0  # every pair in order
    worse = rank_loss(torch.tensor([0.9, 0.2, 0.4, 0.1]), y)
    assert float(worse) > 0
    p = torch.tensor([0.5, 0.5, 0.2, 0.8], requires_grad=True)
    rank_loss(p, y).backward()
    assert p.grad is not None and torch.isfinite(p.grad).all()


# --- the multi-head claim, on synthetic features -----------------------------------------
LEVELS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])


def synthetic_study(name: str, kinds: tuple[int, int], rng: np.random.Generator, mixing: np.ndarray,
                    n: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Severities of three distortions (blur, noise, compression), two present per study;
    clip features a fixed nonlinear mix of severities and content, plus measurement noise."""
    sev = np.zeros((n, 3))
    for k in kinds:
        sev[:, k] = rng.choice(LEVELS, size=n)
    content = rng.normal(0, 1, size=(n, 2))
    feats = []
    for i in range(n):
        latent = np.concatenate([sev[i], content[i]])
        clips = np.tanh(latent @ mixing) + rng.normal(0, 0.05, size=(3, mixing.shape[1]))
        feats.append(clips.astype(np.float32))
    return sev, feats


def two_studies(seed: int = 0, n: int = 150):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(0, 0.8, size=(5, 12))
    sev_a, feats_a = synthetic_study("A", (0, 1), rng, mixing, n)
    sev_b, feats_b = synthetic_study("B", (2, 1), rng, mixing, n)
    # study A (1-5) is harsh on noise; study B (0-100) barely minds noise, punishes compression
    mos_a = np.clip(1 + 4 * np.exp(-1.6 * (0.55 * sev_a[:, 0] + 1.0 * sev_a[:, 1])) + rng.normal(0, 0.1, n), 1, 5)
    mos_b = np.clip(100 / (1 + np.exp(5 * (sev_b[:, 2] + 0.15 * sev_b[:, 1] - 0.6))) + rng.normal(0, 2.5, n), 0, 100)
    a = video_set("A", mos_a, feats_a, scale=(1.0, 5.0))
    b = video_set("B", mos_b, feats_b, scale=(0.0, 100.0))
    return a, b


def test_separate_heads_beat_a_shared_head_when_studies_disagree():
    config = dict(hidden=(32,), dropout=0.1, lr=3e-3, epochs=60, patience=15, videos_per_dataset=16)
    wins = []
    for seed in (0, 1):
        a, b = two_studies(seed)
        train = {"A": a.subset(range(0, 90)), "B": b.subset(range(0, 90))}
        val = {"A": a.subset(range(90, 110)), "B": b.subset(range(90, 110))}
        test = {"A": a.subset(range(110, 150)), "B": b.subset(range(110, 150))}
        scores = {}
        for shared in (False, True):
            section = TrainSection(**config, seed=seed, shared_head=shared)
            result = fit_multihead(train, val, section, primary="A")
            assert result.network.config.heads == (("overall",) if shared else ("A", "B"))
            preds = {n: predict_videos(result.network, v, head_of(n, section)) for n, v in test.items()}
            pooled = srocc(np.concatenate([preds["A"], preds["B"]]), np.concatenate([test["A"].target, test["B"].target]))
            scores[shared] = (srocc(preds["A"], test["A"].target), srocc(preds["B"], test["B"].target), pooled)
        separate, one = scores[False], scores[True]
        assert separate[2] > one[2] + 0.05, (seed, scores)  # pooled: the shared head cannot hold both scales
        wins.append(np.mean(separate[:2]) > np.mean(one[:2]))
    assert all(wins)


def test_training_is_reproducible_with_a_fixed_seed():
    a, b = two_studies(3, n=60)
    train = {"A": a.subset(range(40)), "B": b.subset(range(40))}
    val = {"A": a.subset(range(40, 60)), "B": b.subset(range(40, 60))}
    section = TrainSection(hidden=(8,), epochs=5, videos_per_dataset=8, seed=11, correlation_loss="rank")
    one = fit_multihead(train, val, section)
    two = fit_multihead(train, val, section)
    for (k, x), (_, y) in zip(one.network.state_dict().items(), two.network.state_dict().items()):
        assert torch.equal(x, y), k
    assert one.history == two.history and len(one.history) >= 1


def test_constant_training_features_are_switched_off():
    """A feature that never moves in training must not blow up a test video where it does."""
    a, b = two_studies(4, n=60)
    a.features[:, 5] = 0.0
    b.features[:, 5] = 0.0
    train = {"A": a.subset(range(40)), "B": b.subset(range(40))}
    val = {"A": a.subset(range(40, 60)), "B": b.subset(range(40, 60))}
    result = fit_multihead(train, val, TrainSection(hidden=(8,), epochs=3, videos_per_dataset=8))
    probe = a.subset(range(40, 60))
    before = predict_videos(result.network, probe, "A")
    probe.features[:, 5] = 0.5
    assert np.allclose(predict_videos(result.network, probe, "A"), before, atol=1e-3)


# --- the commands, end to end on generated videos ------------------------------------------
def make_study(folder: Path, name: str, n: int, mos_of, seed: int) -> Path:
    """n small videos of varying x264 quality, labels in NAME.csv with a train/test split."""
    rows = []
    rng = np.random.default_rng(seed)
    for i in range(n):
        crf = int(rng.integers(14, 50))
        path = folder / name / f"{i}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, textured_frames(30, 64, 96, speed=2 + i % 3, seed=seed * 100 + i), 24, crf=crf)
        rows.append([f"{name}/{i}.mp4", round(mos_of(crf), 3), "test" if i % 4 == 0 else "train"])
    label = folder / f"{name}.csv"
    with open(label, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "mos", "split"])
        writer.writerows(rows)
    return label


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    folder = tmp_path_factory.mktemp("studies")
    make_study(folder, "lab1", 16, lambda crf: 1 + 4 * (50 - crf) / 36, seed=1)  # MOS 1-5
    make_study(folder, "lab2", 16, lambda crf: 100 * ((50 - crf) / 36) ** 2, seed=2)  # MOS 0-100
    (folder / "train.toml").write_text("""
[model]
name = "two-labs"
description = "test model"
primary = "lab2"
output = "two-labs-1.safetensors"

[features]
spatial = ["frame_stats"]
temporal = ["motion_stats"]
cache_dir = "cache"
workers = 1

[train]
hidden = [16]
epochs = 15
patience = 5
videos_per_dataset = 4

[[datasets]]
spec = "csv:lab1.csv"
val_fraction = 0.25

[[datasets]]
spec = "csv:lab2.csv"
val_fraction = 0.25
""")
    return folder


def test_features_train_eval_score(studies, tmp_path, capsys):
    s = studies
    assert main(["features", f"csv:{s / 'lab1.csv'}", f"csv:{s / 'lab2.csv'}", "--config", str(s / "train.toml"),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "16 extracted, 0 already cached, 0 failed" in out
    assert main(["features", "--config", str(s / "train.toml"), "--no-progress"]) == 0  # the config's datasets
    assert capsys.readouterr().out.count("0 extracted, 16 already cached") == 2  # resumable: nothing redone
    memo = json.loads((s / "cache" / "content-hashes.json").read_text())
    assert len(memo) == 32 and all(len(row[3]) == 64 for row in memo)  # hashes kept for the next run

    assert main(["train", str(s / "train.toml"), "--no-progress"]) == 0
    out, err = capsys.readouterr()
    # each dataset's line: the config's name, then the dataset's where it differs, never one twice
    assert "vqscope: lab1: csv: 16 found" in err and not re.search(r"^vqscope: ([\w.-]+): \1:", err, re.M)
    model_path = s / "two-labs-1.safetensors"
    assert f"wrote {model_path}" in out and "heads: lab1, lab2, primary: lab2" in out and "test lab1: SROCC" in out
    meta, _ = read_model_file(str(model_path), tensors=False)
    training = meta["training"]
    assert training["config"]["toml"] == (s / "train.toml").read_text()
    assert training["config"]["parsed"]["train"]["epochs"] == 15
    assert [d["name"] for d in training["datasets"]] == ["lab1", "lab2"]
    assert training["datasets"][0]["scale"] == [1.0, 5.0] and training["datasets"][1]["scale"] == [0.0, 100.0]
    assert training["datasets"][0]["split"] == {"method": "official", "train": 9, "val": 3, "test": 4}
    assert set(meta["card"]["evaluation"]) == {"lab1", "lab2"}
    assert meta["calibration"]["size"] == 32
    # and its card beside it, from what the model file stores
    card = model_path.with_suffix(".md").read_text()
    assert card.startswith("# Model card: two-labs@1") and "| lab1 (lab1) | `csv:" in card
    lab1 = meta["card"]["evaluation"]["lab1"]
    assert f"| lab1 | {lab1['n']} | {lab1['srocc']:.3f} [" in card and "`vqscope train train.toml`" in card

    # the trained model is an ordinary model file: `vqscope score` reads it
    model = Model.load(model_path)
    assert model.network.config.heads == ("lab1", "lab2") and model.network.config.primary == "lab2"
    assert main(["score", str(s / "lab1" / "0.mp4"), "--model", str(model_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "two-labs@1"

    report, plots = tmp_path / "report.md", tmp_path / "plots"
    code = main(["eval", str(model_path), f"csv:{s / 'lab1.csv'}@test", f"lab2=csv:{s / 'lab2.csv'}@test",
                 "--cache-dir", str(s / "cache"), "--report", str(report), "--plot-dir", str(plots),
                 "--bootstrap", "50", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "two-labs@1:lab1" in out and "two-labs@1:matched" in out and "pooled" in out
    text = report.read_text()
    assert "## Cross-dataset SROCC with 95% interval" in text and "| two-labs@1:matched |" in text
    assert "](plots/two-labs_1_lab1__lab2.png)" in text
    pngs = sorted(p.name for p in plots.glob("*.png"))
    assert len(pngs) == 9  # 3 rows (lab1, lab2, matched) x 3 columns (lab1, lab2, pooled)
    assert (plots / pngs[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    html = tmp_path / "report.html"
    assert main(["eval", str(model_path), f"csv:{s / 'lab2.csv'}@test", "--head", "lab2", "--cache-dir",
                 str(s / "cache"), "--report", str(html), "--bootstrap", "20", "--json", "--no-progress"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in results["rows"]] == ["two-labs@1:lab2"] and results["columns"] == ["lab2"]
    metrics = results["results"][0]["metrics"]
    assert metrics["n"] == 4 and set(metrics["ci"]) >= {"srocc", "plcc_mapped"}
    assert html.read_text().startswith("<!doctype html>") and "<table>" in html.read_text()


def test_command_errors_are_one_line(studies, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nname = \"x\"\n[train]\nepoch = 3\n[[datasets]]\nspec = \"csv:a.csv\"\n")
    assert main(["train", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "vqscope: error: unknown key 'epoch' in [train]; did you mean 'epochs'?"
    assert main(["train", str(tmp_path / "missing.toml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    assert main(["eval", "vqscope-lite", f"csv:{studies / 'lab1.csv'}", "--head", "nope", "--cache-dir",
                 str(tmp_path)]) == 2
    assert "no model has head 'nope'" in capsys.readouterr().err
    assert main(["eval", "vqscope-lite", f"a=csv:{studies / 'lab1.csv'}", f"a=csv:{studies / 'lab2.csv'}"]) == 2
    assert "test set names must differ" in capsys.readouterr().err
    assert main(["eval", "vqscope-lite", f"csv:{studies / 'lab1.csv'}", "--report", str(tmp_path / "r.pdf")]) == 2
    assert main(["features", "csv:/no/such.csv", "--cache-dir", str(tmp_path)]) == 2
    assert "dataset path not found" in capsys.readouterr().err


def test_test_set_names():
    assert EvalSet.parse("lsvq:/d/LSVQ@test") == EvalSet("lsvq", "lsvq:/d/LSVQ@test")
    assert EvalSet.parse("kv=konvid1k:/d/k") == EvalSet("kv", "konvid1k:/d/k")
    assert EvalSet.parse("csv:/d/a=b.csv").name == "a_b"


def test_kfold_cross_validation_with_a_shared_head(studies, tmp_path, capsys):
    config = tmp_path / "cv.toml"
    config.write_text(f"""
[model]
name = "cv"
[features]
spatial = ["frame_stats"]
temporal = ["motion_stats"]
cache_dir = "{studies / 'cache'}"
[train]
hidden = [8]
epochs = 4
videos_per_dataset = 4
shared_head = true
cross_validate = true
correlation_loss = "rank"
loss = "mse"
[[datasets]]
spec = "csv:{studies / 'lab1.csv'}"
split = "kfold"
folds = 2
fold = 1
val_fraction = 0.4
[[datasets]]
spec = "csv:{studies / 'lab2.csv'}"
split = "all"
val_fraction = 0.25
""")
    out = tmp_path / "cv.safetensors"
    assert main(["train", str(config), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    assert "heads: overall, primary: overall" in capsys.readouterr().out
    meta, _ = read_model_file(str(out), tensors=False)
    cv = meta["training"]["cross_validation"]
    assert [f["fold"] for f in cv["folds"]] == [0, 1] and set(cv["lab1"]) == {"srocc", "plcc_mapped"}
    assert meta["training"]["datasets"][0]["split"]["fold"] == 1  # the saved model is the configured fold's
    assert meta["training"]["datasets"][1]["split"]["test"] == 0
    assert set(meta["card"]["evaluation"]) == {"lab1"} and "cross_validation" in meta["card"]


def test_unreadable_videos_are_reported_and_left_out(studies, tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    label = tmp_path / "mixed.csv"
    rows = [f"{studies / 'lab1' / f'{i}.mp4'},{1 + i / 2},train" for i in range(6)]
    label.write_text("path,mos,split\n" + "\n".join(rows + [f"{broken},3,train"]) + "\n")
    code = main(["features", f"csv:{label}", "--cache-dir", str(studies / "cache"), "--spatial", "frame_stats",
                 "--temporal", "motion_stats", "--workers", "1", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 3  # some failed
    assert "0 extracted, 6 already cached, 1 failed" in captured.out  # same settings as the config: cache shared
    assert f"failed {broken}: not_a_video" in captured.err
    assert main(["features", f"csv:{label}", "--temporal", "motion_stats", "--weights", "x3d_m=KINETICS400",
                 "--cache-dir", str(tmp_path)]) == 2
    assert "--weights names 'x3d_m'" in capsys.readouterr().err
