"""`vqscope ask`: the deterministic question parser and answers read from a Result."""

from __future__ import annotations

import json

import pytest

from fine_results import fine_model, fine_result, overall_only_result
from test_model import tiny_model
from vqscope.ask import answer, ask, parse_question
from vqscope.cli import main
from vqscope.errors import ConfigError
from vqscope.errors import NotPredictedError


@pytest.mark.parametrize("question, types", [
    ("Is there motion blur?", ("motion_blur",)),
    ("is it shaky?", ("jitter",)),
    ("Any camera shake?", ("jitter",)),
    ("is it blocky", ("compression",)),
    ("are there compression artefacts?", ("compression",)),
    ("is it pixelated?", ("mosaic",)),
    ("is it blurry?", ("defocus_blur",)),
    ("is it out of focus?", ("defocus_blur",)),
    ("is there blur?", ("defocus_blur", "motion_blur")),
    ("is it too dark?", ("underexposure",)),
    ("is it washed-out?", ("overexposure",)),
    ("is it overexposed", ("overexposure",)),
    ("is it grainy?", ("noise",)),
    ("are there dropped frames?", ("stutter",)),
    ("is it choppy?", ("stutter",)),
    ("does it freeze?", ("stutter",)),
    ("any halos?", ("oversharpening",)),
    ("is it oversharpened?", ("oversharpening",)),
    ("is there a colour cast?", ("color_cast",)),
    ("is the white balance off?", ("color_cast",)),
    ("is the saturation wrong?", ("color_cast",)),
    ("does it flicker?", ("flicker",)),
])
def test_yes_no_synonyms(question, types):
    q = parse_question(question)
    assert (q.kind, q.types) == ("yes_no", types)


@pytest.mark.parametrize("question, kind, dimension", [
    ("which distortions?", "list", None),
    ("What is wrong?", "list", None),
    ("what's wrong with the colour?", "list", "color"),
    ("which artifacts are there?", "list", "artifact"),
    ("how is the color?", "dimension", "color"),
    ("How good is the noise?", "dimension", "noise"),
    ("how is the motion blur?", "dimension", "blur"),  # "motion blur" is not read as "motion"
    ("is the motion smooth?", "dimension", "temporal"),
    ("what is the blur score?", "dimension", "blur"),
    ("how good is it?", "dimension", "overall"),
])
def test_list_and_dimension_questions(question, kind, dimension):
    q = parse_question(question)
    assert (q.kind, q.dimension) == (kind, dimension)


@pytest.mark.parametrize("question", ["hello", "", "what colour is the car?", "play it again"])
def test_unrecognised_questions_are_refused_with_examples(question):
    with pytest.raises(ConfigError, match="questions vqscope answers: .*is there motion blur"):
        parse_question(question)


def test_yes_answer_states_probability_threshold_and_where():
    a = ask(fine_result(), "is there motion blur?")
    assert a.text == "Yes: motion blur is likely (p=0.86, threshold 0.50), mostly at 2.0-5.0 s."
    d = a.to_dict()
    assert (d["answer"], d["distortion"], d["probability"], d["threshold"]) == ("yes", "motion_blur", 0.86, 0.5)
    assert d["ranges"] == [{"start_s": 2.0, "end_s": 5.0}]


def test_no_answer_and_a_stricter_threshold():
    assert ask(fine_result(), "is it grainy?").text == "No: noise is unlikely (p=0.30, threshold 0.50)."
    strict = ask(fine_result(), "is there motion blur?", threshold=0.9).to_dict()
    assert strict["answer"] == "no" and strict["threshold"] == 0.9


def test_blur_alone_answers_about_the_most_likely_blur():
    d = ask(fine_result(), "is it blurred?").to_dict()
    assert d["distortion"] == "motion_blur" and d["answer"] == "yes"
    assert d["candidates"] == {"defocus_blur": 0.2, "motion_blur": 0.86}
    assert "Also considered: defocus blur (p=0.20)" in d["text"]


def test_list_answer_is_sorted_and_located_in_time():
    d = ask(fine_result(), "which distortions?").to_dict()
    assert [i["distortion"] for i in d["answer"]] == ["motion_blur", "compression"]
    assert d["answer"][1]["ranges"] == [{"start_s": 0.0, "end_s": 6.0}]
    assert d["text"] == ("Likely distortions (p >= 0.50): motion blur (p=0.86, mostly at 2.0-5.0 s); "
                         "compression artifacts (p=0.75, throughout).")
    colour = ask(fine_result(), "what is wrong with the color?")
    assert colour.to_dict()["answer"] == [] and colour.text.startswith("No colour distortion is likely")


def test_dimension_answer_gives_score_grade_description():
    d = ask(fine_result(), "how is the blur?").to_dict()
    assert (d["dimension"], d["score"], d["grade"]) == ("blur", 42.5, "fair")
    assert d["text"] == d["description"] == "Blur is fair (42): motion blur likely (p=0.86), mostly at 2.0-5.0 s."


def test_a_single_head_model_answers_only_about_overall():
    r = overall_only_result()
    assert ask(r, "how good is it overall?").to_dict()["grade"] == "fair"
    with pytest.raises(NotPredictedError, match="does not predict distortions"):
        ask(r, "is it shaky?")
    with pytest.raises(NotPredictedError, match="color"):
        answer(parse_question("how is the color?"), r)


@pytest.fixture
def fine(monkeypatch):
    model = fine_model()
    monkeypatch.setattr("vqscope.zoo.load_model", lambda name=None: model)
    return model


def test_ask_command_text_and_json(capsys, fine, video_factory):
    video = video_factory("six_s.mp4", n=144, fps=24)
    assert main(["ask", video, "is there motion blur?", "--no-progress"]) == 0
    assert capsys.readouterr().out == "Yes: motion blur is likely (p=0.86, threshold 0.50), mostly at 2.0-5.0 s.\n"
    assert main(["ask", video, "which distortions?", "--json", "--no-progress"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["kind"] == "list" and d["video"] == video and d["answer"][0]["distortion"] == "motion_blur"


def test_ask_command_refuses_before_scoring(capsys, monkeypatch, video_factory, tmp_path):
    video = video_factory("three_s.mp4", n=72, fps=24)
    assert main(["ask", video, "what's for dinner?"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vqscope: error: cannot understand the question") and err.count("\n") == 1
    # a model without a distortion head: refused by its head configuration, nothing decoded
    model = tiny_model()
    monkeypatch.setattr("vqscope.zoo.load_model", lambda name=None: model)
    monkeypatch.setattr(model, "score", lambda *a, **k: pytest.fail("scored anyway"))
    assert main(["ask", video, "is it shaky?"]) == 2
    assert "does not predict distortions" in capsys.readouterr().err
    assert main(["ask", video, "is it shaky?", "--threshold", "1.5"]) == 2


def test_ask_command_with_a_single_head_model_file(capsys, tmp_path, video_factory):
    path = tiny_model().save(tmp_path / "tiny.safetensors")
    video = video_factory("three_s.mp4", n=72, fps=24)
    assert main(["ask", video, "how is the overall quality?", "--model", str(path), "--json", "--no-progress"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["dimension"] == "overall" and d["text"].startswith("Overall quality is ")
