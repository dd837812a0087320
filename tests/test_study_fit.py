"""Learning from a study: heads fitted to rated videos, published only when they beat the base.

Videos are small generated clips whose x264 quality (CRF) varies; the "raters" give a MOS
that falls with the CRF, a property the frame statistics can see. Features come from the
weight-free frame_stats + motion_stats backbones (the `tiny_model` configuration), extracted
once into a cache shared by the module.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vqscope.calibration import Calibration
from vqscope.cli import main
from vqscope.data.datasets import load_dataset
from vqscope.errors import ConfigError, NotBetterError
from vqscope.features import FeatureConfig, FeatureExtractor
from vqscope.heads import HeadConfig, PredictionNetwork
from vqscope.model import Model, ModelInfo
from vqscope.sampling import ClipPlanConfig
from vqscope.studies.fit import EFFICIENTNET, FeatureSet, _assemble, fit_rated, resolve_feature_sets
from vqscope.taxonomy import DIMENSIONS
from vqscope.zoo import load_model
from test_model import tiny_model

N_VIDEOS = 28
CRFS = [int(round(10 + 41 * i / (N_VIDEOS - 1))) for i in range(N_VIDEOS)]


def mos_of_crf(crf: int) -> float:
    """What the raters say: 5 at CRF 10, 1 at CRF 51."""
    return round(5.0 - 4.0 * (crf - 10) / 41.0, 3)


@pytest.fixture(scope="module")
def rated(video_factory, tmp_path_factory):
    """Videos of every quality (CRF), a feature cache, and a folder for CSVs and models."""
    videos = [video_factory(f"rated{i}.mp4", n=48, seed=200 + i, crf=crf) for i, crf in enumerate(CRFS)]
    root = tmp_path_factory.mktemp("study_fit")
    return {"videos": videos, "root": root, "cache": str(root / "cache")}


@pytest.fixture(scope="module")
def matched_mos(rated):
    """A MOS that is a monotone function of `tiny_model(name="matched")`'s own scores."""
    scores = [tiny_model(name="matched").score(v).score for v in rated["videos"]]
    return [round(1.0 + 4.0 * (s - min(scores)) / (max(scores) - min(scores)), 4) for s in scores]


def write_csv(path: Path, videos, mos, **dimensions) -> str:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "mos", *dimensions])
        for i, video in enumerate(videos):
            w.writerow([video, mos[i], *(values[i] for values in dimensions.values())])
    return str(path)


def blind_model(name: str = "blind") -> Model:
    """A base that ignores the picture: every video scores 50."""
    base = tiny_model(name=name)
    network = PredictionNetwork(HeadConfig(in_dim=base.features.dim, hidden=(), dropout=0.0))
    with torch.no_grad():
        network.heads["overall"].weight.zero_()
        network.heads["overall"].bias.fill_(0.5)
    return Model(ModelInfo(name, 1, "constant"), base.features, network, base.calibration)


def linear_fine_model(video_factory) -> Model:
    """A base with linear dimension heads and a linear distortion head on standardised
    features (hidden=()), standardised on other videos; its overall is blind (constant)."""
    features = tiny_model().features
    torch.manual_seed(3)
    network = PredictionNetwork(HeadConfig(in_dim=features.dim, hidden=(), dropout=0.0, heads=DIMENSIONS,
                                           distortions=("noise", "compression")))
    extractor = FeatureExtractor(features)
    x = torch.from_numpy(np.concatenate([extractor.extract(video_factory(f"norm{i}.mp4", n=48, seed=300 + i, crf=c)).matrix
                                         for i, c in enumerate((12, 30, 48))]))
    network.set_normalisation(x.mean(dim=0), x.std(dim=0))
    with torch.no_grad():
        for name in DIMENSIONS:
            network.heads[name].weight.mul_(0.1)
            network.heads[name].bias.fill_(0.6)
        network.heads["overall"].weight.zero_()
    calibration = Calibration.fit(np.linspace(20, 80, 50), "unit-test set", "f" * 64)
    return Model(ModelInfo("fine", 4, "linear fine heads"), features, network, calibration)


def fit(dataset, base, rated, **options):
    kwargs = {"base": base, "feature_sets": ("statistics",), "folds": 3, "cache_dir": rated["cache"], "workers": 1,
              "n_boot": 100, "name": "studyfit", "version": 1,
              "source": {"study": 7, "name": "spring uploads", "raters": 12}}
    kwargs.update(options)
    return fit_rated(dataset, **kwargs)


def test_fit_beats_a_blind_base_and_publishes_a_model_that_scores(rated):
    label = write_csv(rated["root"] / "crf.csv", rated["videos"], [mos_of_crf(c) for c in CRFS])
    out = rated["root"] / "models" / "studyfit-1.safetensors"
    result = fit(load_dataset(f"csv:{label}"), blind_model(), rated, folds=5, out=out)

    assert result.published and result.beats_base and not result.forced
    assert result.cv.srocc > 0.8 and result.cv.intervals["srocc"][0] > 0.5  # nested CV, not the choosing figure
    assert np.isnan(result.base_cv.srocc) and result.gain is None  # a constant base ranks nothing
    assert result.chosen.feature_set == "statistics" and result.chosen.head in ("ridge", "pcr")
    assert len(result.candidates) == 10 and len(result.overall.outer_choices) == 5
    assert result.carried == "nothing"  # the blind base has nothing else to keep

    model = Model.load(result.path)
    config = model.network.config
    assert config.heads == ("spring_uploads",) and config.primary == "spring_uploads" and config.hidden == ()
    assert model.features == tiny_model().features
    best, worst = model.score(rated["videos"][0]), model.score(rated["videos"][-1])
    assert best.score > worst.score + 30 and best.model == "studyfit@1"
    assert set(best.dimensions) == {"overall"}
    assert model.calibration is not None and model.calibration.size == N_VIDEOS
    assert "spring uploads" in model.calibration.benchmark and len(model.calibration.fingerprint) == 64
    card = model.info.card
    assert card["source"]["study"] == 7 and card["source"]["raters"] == 12 and card["source"]["videos"] == N_VIDEOS
    assert card["cross_validation"]["overall"]["srocc"] == round(result.cv.srocc, 4)
    assert "study 7 (spring uploads)" in card["summary"] and "blind@1" in card["summary"]
    text = Path(result.card_path).read_text()
    assert Path(result.card_path).name == "studyfit-1.md" and Path(result.card_path).parent == out.parent
    assert "study 7 (spring uploads), 28 videos, 12 raters" in text
    assert f"{result.cv.srocc:.3f}" in text and "blind@1" in text


def test_cli_publishes_a_model_that_vqscope_score_runs(rated, tmp_path, capsys):
    label = write_csv(tmp_path / "week12.csv", rated["videos"], [mos_of_crf(c) for c in CRFS])
    base = str(blind_model().save(tmp_path / "blind-1.safetensors"))
    out = tmp_path / "out" / "mine-3.safetensors"
    code = main(["train", "--rated", f"csv:{label}", "--name", "mine", "--version", "3", "--out", str(out),
                 "--base", base, "--features", "statistics", "--folds", "3", "--bootstrap", "100",
                 "--cache-dir", rated["cache"], "--workers", "1", "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "<- chosen" in printed and "new mine@3" in printed and "base blind@1" in printed
    assert f"wrote {out}" in printed and f"card  {tmp_path / 'out' / 'mine-3.md'}" in printed
    assert main(["score", rated["videos"][3], "--model", str(out), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["model"] == "mine@3" and 0 <= scored["score"] <= 100
    card = (tmp_path / "out" / "mine-3.md").read_text()
    assert "ratings 'week12', 28 videos, raters not recorded" in card


def test_a_base_that_already_matches_the_mos_wins_unless_forced(rated, matched_mos, tmp_path, capsys):
    label = write_csv(tmp_path / "matched.csv", rated["videos"], matched_mos)
    base_file = str(tiny_model(name="matched").save(tmp_path / "matched-1.safetensors"))
    out = tmp_path / "m-2.safetensors"
    args = ["train", "--rated", f"csv:{label}", "--name", "m", "--version", "2", "--out", str(out), "--base", base_file,
            "--features", "statistics", "--folds", "3", "--bootstrap", "50", "--cache-dir", rated["cache"],
            "--workers", "1", "--no-progress"]
    assert main(args) == NotBetterError.exit_code == 27
    captured = capsys.readouterr()
    error = captured.err.strip().splitlines()[-1]
    assert error.startswith("vqscope: error: the fitted head does not beat matched@1 in cross-validation: SROCC ")
    assert "against the base's 1.000" in error and "--force" in error
    assert "base matched@1" in captured.out  # the table is printed before the refusal
    assert "SROCC gain over the base: -" in captured.out
    assert not out.exists() and not (tmp_path / "m-2.md").exists()

    assert main(args + ["--force"]) == 0
    assert "published with --force" in capsys.readouterr().out
    assert out.exists() and "does not beat the base" in (tmp_path / "m-2.md").read_text()
    assert Model.load(out).info.card["forced"] is True


def test_refusal_carries_the_figures(rated, matched_mos, tmp_path):
    label = write_csv(tmp_path / "matched.csv", rated["videos"], matched_mos)
    with pytest.raises(NotBetterError) as info:
        fit(load_dataset(f"csv:{label}"), tiny_model(name="matched"), rated, out=tmp_path / "x.safetensors")
    result = info.value.result
    assert result.base_cv.srocc == pytest.approx(1.0) and result.cv.srocc < 1.0
    assert result.gain.value == pytest.approx(result.cv.srocc - 1.0) and result.gain.high <= 0.0 + 1e-9
    assert not result.published and result.path is None and not (tmp_path / "x.safetensors").exists()


def test_dimension_columns_give_dimension_heads_and_keep_the_distortion_head(rated, video_factory, tmp_path):
    rng = np.random.default_rng(1)
    mos = [mos_of_crf(c) for c in CRFS]
    artifact = [round(float(np.clip(m + rng.normal(0, 0.2), 1, 5)), 3) for m in mos]
    blur = [round(float(np.clip(m + rng.normal(0, 0.4), 1, 5)), 3) if i % 7 else "" for i, m in enumerate(mos)]
    label = write_csv(tmp_path / "fine.csv", rated["videos"], mos, artifact=artifact, blur=blur)
    base = linear_fine_model(video_factory)
    result = fit(load_dataset(f"csv:{label}"), base, rated, out=tmp_path / "fine-5.safetensors", version=5,
                 source={"name": "finevd form"})

    assert set(result.dimensions) == {"artifact", "blur"}
    assert result.dimensions["blur"].videos == N_VIDEOS - 4  # four rows left blur empty
    assert result.dimensions["artifact"].cv.srocc > 0.7
    assert result.dimensions["artifact"].base is not None  # the base predicts artifact: compared on the same videos
    assert result.carried == "distortions"
    model = Model.load(result.path)
    config = model.network.config
    assert config.heads == ("finevd_form", "artifact", "blur") and config.distortions == ("noise", "compression")
    assert not config.has("detection_gate")
    scored, by_base = model.score(rated["videos"][0]), base.score(rated["videos"][0])
    assert set(scored.dimensions) == {"overall", "artifact", "blur"}
    assert scored.distortions == pytest.approx(by_base.distortions, abs=1e-5)  # the base's detector, unchanged
    assert model.score(rated["videos"][-1]).dimensions["artifact"].score < scored.dimensions["artifact"].score
    assert "| artifact | 28 |" in Path(result.card_path).read_text()


def test_without_dimension_ratings_the_base_heads_are_carried_over(rated, video_factory, tmp_path):
    label = write_csv(tmp_path / "overall.csv", rated["videos"], [mos_of_crf(c) for c in CRFS])
    base = linear_fine_model(video_factory)
    result = fit(load_dataset(f"csv:{label}"), base, rated, out=tmp_path / "carry-1.safetensors", name="carry")

    assert result.carried == "everything" and result.beats_base
    model = Model.load(result.path)
    assert model.network.config.heads == (*DIMENSIONS, "spring_uploads")
    assert model.network.config.primary == "spring_uploads"
    ours, theirs = model.score(rated["videos"][5]), base.score(rated["videos"][5])
    # The base's six dimensions and two types read the same standardisation as before ...
    for dim in ("color", "noise", "artifact", "blur", "temporal"):
        assert ours.dimensions[dim].score == pytest.approx(theirs.dimensions[dim].score, abs=1e-3)
    assert ours.distortions == pytest.approx(theirs.distortions, abs=1e-5)
    # ... and overall is the new head's, not the base's blind one.
    assert theirs.score == pytest.approx(60.0, abs=1e-3) and ours.score != pytest.approx(theirs.score, abs=1.0)
    assert ours.dimensions["overall"].score == pytest.approx(ours.score)


def test_the_shipped_model_as_base_keeps_its_composed_dimensions(rated, tmp_path):
    """The shipped default composes its dimensions from boosted trees on the raw features; a
    new primary head joins them and overall is read from it."""
    shipped = load_model()
    label = write_csv(tmp_path / "crf.csv", rated["videos"], [mos_of_crf(c) for c in CRFS])
    result = fit(load_dataset(f"csv:{label}"), shipped, rated, n_boot=20)

    assert result.carried == "everything" and result.model.features == shipped.features
    config = result.model.network.config
    assert config.heads == (*shipped.network.config.heads, "spring_uploads") and config.primary == "spring_uploads"
    assert config.part("severity_composition") == shipped.network.config.part("severity_composition")
    ours, theirs = result.model.score(rated["videos"][-1]), shipped.score(rated["videos"][-1])
    for dim in ("color", "noise", "artifact", "blur", "temporal"):
        assert ours.dimensions[dim].score == pytest.approx(theirs.dimensions[dim].score, abs=1e-3)
    assert ours.distortions == pytest.approx(theirs.distortions, abs=1e-5)
    assert ours.grade == result.model.grades.grade(ours.score) and result.model.grades == shipped.grades


def test_the_reported_figure_comes_from_videos_the_choice_never_saw(rated, tmp_path, monkeypatch):
    """Nested CV: every outer fold chooses on some videos and predicts others; the last choice
    (the published one) is made on all videos and predicts none. A MOS unrelated to the videos
    then gives a nested SROCC near zero."""
    from vqscope.studies import fit as fitting

    calls = []
    select, predict = fitting._select, fitting._Clips.predict

    def recorded_select(data, y, videos, *args):
        chosen = select(data, y, videos, *args)  # its inner folds predict first
        calls.append(("choose", set(videos)))
        return chosen

    monkeypatch.setattr(fitting, "_select", recorded_select)
    monkeypatch.setattr(fitting._Clips, "predict", lambda self, head, videos, *a: calls.append(("predict", set(videos)))
                        or predict(self, head, videos, *a))
    mos = np.round(np.random.default_rng(5).uniform(1, 5, N_VIDEOS), 3)
    label = write_csv(tmp_path / "unrelated.csv", rated["videos"], list(mos))
    result = fit(load_dataset(f"csv:{label}"), tiny_model(), rated)

    outer = [(calls[i][1], calls[i + 1][1]) for i, (kind, _) in enumerate(calls) if kind == "choose"
             and i + 1 < len(calls) and calls[i + 1][0] == "predict"]
    assert len(outer) == 3  # one per outer fold: a choice, then the held-out predictions
    assert all(not (chosen_on & predicted) for chosen_on, predicted in outer)
    assert set().union(*(predicted for _, predicted in outer)) == set(range(N_VIDEOS))
    assert calls[-1] == ("choose", set(range(N_VIDEOS)))  # the published choice
    assert abs(result.cv.srocc) < 0.45
    assert not result.published and result.path is None  # out=None: nothing written, nothing refused


def test_a_callers_feature_config_is_tried_beside_the_base_features(rated, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    label = write_csv(tmp_path / "crf.csv", [*rated["videos"], str(broken)], [mos_of_crf(c) for c in CRFS] + [3.0])
    one_clip = FeatureConfig(spatial=("frame_stats",), temporal=(), clip_plan=ClipPlanConfig(max_clips=1))
    result = fit(load_dataset(f"csv:{label}"), blind_model(), rated, feature_sets=("statistics", ("first", one_clip)))
    assert list(result.dropped) == [str(broken)] and "not_a_video" in result.dropped[str(broken)]
    assert result.videos == N_VIDEOS  # the others all kept, though "first" has one clip a video
    assert {s.candidate.feature_set for s in result.candidates} == {"statistics", "first"}
    assert result.model.features == (one_clip if result.chosen.feature_set == "first" else tiny_model().features)


def test_feature_sets_resolve_against_the_base():
    base = tiny_model()
    sets = {fs.name: fs for fs in resolve_feature_sets(["statistics", "efficientnet", "both", "statistics"], base)}
    assert list(sets) == ["statistics", "efficientnet", "both"]
    assert sets["statistics"].config == base.features
    eff = sets["efficientnet"].config
    assert eff.spatial == (EFFICIENTNET,) and eff.temporal == () and eff.clip_plan == base.features.clip_plan
    both = sets["both"]
    assert both.config.spatial == ("frame_stats", EFFICIENTNET) and both.config.temporal == ("motion_stats",)
    assert both.parts == (base.features, eff)  # joined from the two caches, never extracted as one
    custom = FeatureConfig(spatial=("frame_stats",), temporal=())
    assert resolve_feature_sets([custom], base)[0] == FeatureSet("frame_stats", custom, (custom,))
    # "both" puts each block where the joined layout has it
    parts = [np.arange(2 * p.dim, dtype=np.float32).reshape(2, p.dim) + 1000 * k for k, p in enumerate(both.parts)]
    joined = _assemble(both, parts)
    widths = dict(base.features.layout)
    assert joined.shape == (2, both.config.dim)
    assert np.array_equal(joined[:, : widths["frame_stats"]], parts[0][:, : widths["frame_stats"]])
    assert np.array_equal(joined[:, widths["frame_stats"]: widths["frame_stats"] + eff.dim - 3], parts[1][:, :-3])
    assert np.array_equal(joined[:, -3:], parts[0][:, -3:])  # video metadata of the first part


def test_bad_inputs_give_one_line(rated, tmp_path, capsys):
    few = write_csv(tmp_path / "few.csv", rated["videos"][:9], [mos_of_crf(c) for c in CRFS[:9]])
    with pytest.raises(ConfigError, match=r"9 rated videos on disk; fitting a head needs at least 10"):
        fit(load_dataset(f"csv:{few}"), tiny_model(), rated)
    label = write_csv(tmp_path / "ok.csv", rated["videos"], [mos_of_crf(c) for c in CRFS])
    with pytest.raises(ConfigError, match=r"unknown feature set 'resnet'"):
        fit(load_dataset(f"csv:{label}"), tiny_model(), rated, feature_sets=("statistics", "resnet"))
    flat = write_csv(tmp_path / "flat.csv", rated["videos"], [3] * N_VIDEOS)
    with pytest.raises(ConfigError, match=r"same MOS"):
        fit(load_dataset(f"csv:{flat}"), tiny_model(), rated)

    base = str(tiny_model().save(tmp_path / "tiny-1.safetensors"))
    common = ["--out", str(tmp_path / "x.safetensors"), "--base", base, "--cache-dir", rated["cache"], "--workers", "1",
              "--no-progress"]
    cases = [
        (["train", "--rated", f"csv:{few}", "--name", "x", "--version", "1", *common], "at least 10"),
        (["train", "--rated", f"csv:{label}", "--name", "x", "--version", "1", "--features", "statistics,bogus",
          *common], "unknown feature set 'bogus'"),
        (["train", "--rated", f"csv:{label}", "--version", "1", *common], "needs --name"),
        (["train", "cfg.toml", "--rated", f"csv:{label}"], "exactly one"),
        (["train"], "exactly one"),
        (["train", "cfg.toml", "--force"], "--force only go with --rated"),
        (["train", "--rated", f"csv:{label}", "--name", "bad name", "--version", "1", *common], "model name"),
    ]
    for argv, expected in cases:
        assert main(argv) == ConfigError.exit_code, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("vqscope: error: ") and expected in err[-1], (argv, err)
    assert not (tmp_path / "x.safetensors").exists()
