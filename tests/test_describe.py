"""Descriptions: per dimension, with the time ranges where distortions concentrate, and `vqscope describe`."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from fine_results import fine_model, fine_result, overall_only_result
from vqscope.cli import main
from vqscope.describe import (
    attach_dimension_descriptions,
    describe,
    describe_dimensions,
    distortion_ranges,
    time_ranges,
    where_phrase,
)
from vqscope.result import ClipResult, DimensionScore, Result
from vqscope.taxonomy import DIMENSIONS


def test_each_dimension_names_its_likely_distortions_and_when():
    r = fine_result()
    texts = describe_dimensions(r.dimensions, r.distortions, r.clips)
    assert list(texts) == list(DIMENSIONS)
    assert texts["blur"] == "Blur is fair (42): motion blur likely (p=0.86), mostly at 2.0-5.0 s."
    assert texts["artifact"].startswith("Artifacts are fair (45): compression artifacts likely (p=0.75), throughout")
    # clean dimensions say so, naming the closest call
    assert texts["color"].startswith("Colour is good (72); no distortion of this kind likely")
    assert "noise, p=0.30" in texts["noise"]
    # overall gathers every type, most likely first
    assert texts["overall"].index("motion blur") < texts["overall"].index("compression")


def test_overall_description_names_distortions_with_time_ranges():
    r = fine_result()
    text = describe(r.grade, r.score, r.scaled_score, r.clips, r.dimensions, r.distortions)
    assert "Likely distortions: motion blur (p=0.86, mostly at 2.0-5.0 s), compression artifacts (p=0.75, throughout)." in text
    assert "Weakest dimension: blur" in text
    assert "Quality drops at 2.0-5.0 s" in text


def test_no_weakest_dimension_is_named_when_all_share_one_grade():
    r = fine_result()
    same = {k: replace(v, grade="excellent") for k, v in r.dimensions.items()}
    text = describe(r.grade, r.score, r.scaled_score, r.clips, same, r.distortions)
    assert "Every dimension is excellent." in text and "Weakest dimension" not in text


SYNTHETIC_SET = {"benchmark": "vqscope synthetic fine corpus v7 (8904 videos)", "size": 8904}


def test_single_head_results_keep_their_old_description():
    r = overall_only_result()
    assert describe(r.grade, r.score, r.scaled_score, r.clips, r.dimensions, {}, calibration=SYNTHETIC_SET) == (
        "Fair overall quality (40/100, above 30% of its calibration set, 8,904 synthetic videos). "
        "Quality is steady over time.")
    assert describe_dimensions(r.dimensions, {}, r.clips) == {"overall": "Overall quality is fair (40)."}


def test_the_scaled_score_says_what_the_calibration_set_is():
    r = overall_only_result()

    def opening(calibration):
        return describe(r.grade, r.score, r.scaled_score, r.clips, r.dimensions, {}, calibration=calibration) \
            .split(". ")[0]

    assert opening(SYNTHETIC_SET) == "Fair overall quality (40/100, above 30% of its calibration set, 8,904 synthetic videos)"
    # a set whose name does not say it is synthetic is not called so; a short name is quoted
    assert opening({"benchmark": "konvid test split (1200 videos)", "size": 1200}) == \
        "Fair overall quality (40/100, above 30% of its calibration set, 1,200 videos (konvid test split))"
    assert opening({"benchmark": "/data/a.mp4 /data/b.mp4 /data/c.mp4 /data/d.mp4 /data/e.mp4", "size": 5}) == \
        "Fair overall quality (40/100, above 30% of its calibration set, 5 videos)"
    # without the model's calibration nothing is claimed about the set
    assert opening(None) == "Fair overall quality (40/100, above 30% of the calibration set)"


def test_a_models_descriptions_name_its_own_calibration_set(video_factory):
    from test_model import tiny_model
    from vqscope.model import read_model_file
    from vqscope.zoo import resolve_model_path

    text = tiny_model().score(video_factory("three_s.mp4", n=72, fps=24)).description
    assert "% of its calibration set, 50 videos (unit-test set))." in text
    meta, _ = read_model_file(str(resolve_model_path(None)), tensors=False)  # the shipped default
    r = overall_only_result()
    shipped = describe(r.grade, r.score, r.scaled_score, r.clips, r.dimensions, {}, calibration=meta["calibration"])
    assert f"of its calibration set, {meta['calibration']['size']:,} synthetic videos)" in shipped


def test_a_dimension_dip_is_named_when_no_distortion_is_predicted():
    clips = [ClipResult(i, float(i), i + 1.0, 50.0, float(i),
                        dimensions={"blur": DimensionScore(20.0 if i in (3, 4) else 70.0, "x")}) for i in range(7)]
    text = describe_dimensions({"blur": DimensionScore(55.7, "fair")}, {}, clips)["blur"]
    assert text == "Blur is fair (56); lowest at 3.0-5.0 s (down to 20)."


def test_ranges_do_not_bridge_time_that_was_not_scored():
    # --max-clips on a long video: clips 0-1, 10-11, 20-21 s; the two first flagged.
    clips = [ClipResult(i, t, t + 1.0, 50.0, t) for i, t in enumerate((0.0, 10.0, 20.0))]
    assert time_ranges(clips, [True, True, False]) == [(0.0, 1.0), (10.0, 11.0)]
    touching = [ClipResult(i, float(i), i + 1.0, 50.0, float(i)) for i in range(4)]
    assert time_ranges(touching, [True, True, False, True]) == [(0.0, 2.0), (3.0, 4.0)]


def test_where_phrase_forms():
    assert where_phrase([(0.0, 6.0)], 6, 6) == "throughout"
    assert where_phrase([(2.0, 5.0)], 3, 6) == "mostly at 2.0-5.0 s"
    assert where_phrase([(0.0, 1.0), (3.0, 4.0)], 2, 6) == "mostly at 0.0-1.0 s and 3.0-4.0 s"
    many = [(float(i), i + 1.0) for i in range(0, 20, 2)]
    assert where_phrase(many, 10, 20).endswith("(and 7 shorter stretches)")
    assert where_phrase([], 0, 6) is None


def test_no_time_ranges_without_clip_level_probabilities():
    r = fine_result()
    bare = [replace(c, distortions={}) for c in r.clips]
    assert distortion_ranges(bare, "motion_blur") is None
    text = describe_dimensions(r.dimensions, r.distortions, bare)["blur"]
    assert text == "Blur is fair (42): motion blur likely (p=0.86)."


def test_attached_descriptions_travel_in_the_result_json():
    r = fine_result()
    attach_dimension_descriptions(r.dimensions, r.distortions, r.clips)
    d = json.loads(r.to_json())
    assert d["dimensions"]["blur"]["description"].startswith("Blur is fair (42): motion blur likely")
    assert Result.from_dict(d).dimensions["blur"].description == r.dimensions["blur"].description


@pytest.fixture
def fine(monkeypatch):
    model = fine_model()
    monkeypatch.setattr("vqscope.zoo.load_model", lambda name=None: model)
    return model


def test_describe_command_prints_vqscope_text(capsys, fine, video_factory):
    video = video_factory("six_s.mp4", n=144, fps=24)
    assert main(["describe", video, "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Fair overall quality") and "motion blur (p=0.86, mostly at 2.0-5.0 s)" in out[0]
    assert "  blur: Blur is fair (42): motion blur likely (p=0.86), mostly at 2.0-5.0 s." in out
    assert sum(line.startswith("  ") for line in out) == 6

    assert main(["describe", video, "--json", "--no-progress"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["dimensions"]) == set(DIMENSIONS) and "llm" not in data
    assert data["model"] == "fine@1"


def test_describe_command_bad_input_is_one_line(capsys, fine, tmp_path):
    assert main(["describe", str(tmp_path / "missing.mp4")]) == 10
    err = capsys.readouterr().err
    assert err.startswith("vqscope: error:") and err.count("\n") == 1


def test_a_probability_just_under_the_threshold_is_never_printed_as_reaching_it():
    from vqscope.ask import ask

    r = fine_result()
    near = {k: 0.01 for k in r.distortions} | {"defocus_blur": 0.4957}
    text = describe(r.grade, r.score, r.scaled_score, r.clips, r.dimensions, near)
    assert "Likely distortions" not in text
    blur = describe_dimensions(r.dimensions, near, r.clips)["blur"]
    assert "no distortion of this kind likely (highest: defocus blur, p=0.49)" in blur
    answer = ask(replace(r, distortions=near, clips=[replace(c, distortions={}) for c in r.clips]), "which distortions?")
    assert "none has p >= 0.50" in answer.text and "(p=0.49)" in answer.text
    # at or above it, the cut keeps what rounding would give
    assert "defocus blur likely (p=0.50)" in describe_dimensions(r.dimensions, near | {"defocus_blur": 0.5}, r.clips)["blur"]
