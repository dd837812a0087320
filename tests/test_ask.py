"""`vqscope ask`: the deterministic question parser and answers read from a Result."""

from __future__ import annotations

import json

import pytest

from fine_results import fine_model, fine_result, overall_only_result
from test_model import tiny_model
from vqscope.ask import answer, ask, parse_question
from vqscope.cli import main
from vqscope.errors import ConfigError, NotPredictedError, UnanswerableQuestionError


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


# -- yes or no, always with a probability; synonyms; refusals -----------------------------------
@pytest.mark.parametrize("question, types, absence", [
    ("is it sharp?", ("defocus_blur", "motion_blur"), True),
    ("is it in focus?", ("defocus_blur", "motion_blur"), True),
    ("is the picture crisp?", ("defocus_blur", "motion_blur"), True),
    ("is it not sharp?", ("defocus_blur",), False),  # "not sharp" is read whole, not as "sharp"
    ("is it out of focus?", ("defocus_blur",), False),
    ("is the lighting ok?", ("overexposure", "underexposure"), True),
    ("is the brightness right?", ("overexposure", "underexposure"), True),
    ("is there enough light?", ("overexposure", "underexposure"), True),
    ("is the lighting bad?", ("overexposure", "underexposure"), False),
    ("is it steady?", ("jitter",), True),
    ("is the motion smooth?", ("stutter", "jitter"), True),
    ("is the noise ok?", ("noise",), True),
    ("is it grainy?", ("noise",), False),
    ("is it blocky?", ("compression",), False),
    ("is it pixelated?", ("mosaic",), False),
    ("is the white balance off?", ("color_cast",), False),
    ("is the colour ok?", ("overexposure", "underexposure", "color_cast"), True),
])
def test_yes_no_questions_name_types_and_polarity(question, types, absence):
    q = parse_question(question)
    assert (q.kind, q.types, q.absence) == ("yes_no", types, absence)


def test_is_it_good_is_about_every_type_and_reports_the_overall_score():
    q = parse_question("is it good?")
    assert (q.kind, q.absence, q.dimension, len(q.types)) == ("yes_no", True, "overall", 12)
    d = ask(fine_result(), "is it good?").to_dict()
    assert (d["answer"], d["distortion"], d["probability"]) == ("no", "motion_blur", 0.86)
    assert d["dimension"] == "overall" and d["text"].endswith("The overall quality score is 44/100 (fair).")


@pytest.mark.parametrize("question, answer_, p", [
    ("is it sharp?", "no", 0.86),  # motion blur p=0.86 in the fine result
    ("is it blurry?", "no", 0.2),  # "blurry" names defocus blur only
    ("is the lighting ok?", "yes", 0.05),
    ("is it steady?", "yes", 0.05),
    ("is the noise ok?", "yes", 0.3),
    ("is the colour ok?", "yes", 0.05),
])
def test_every_yes_no_question_is_answered_yes_or_no_with_its_probability(question, answer_, p):
    a = ask(fine_result(), question)
    d = a.to_dict()
    assert d["kind"] == "yes_no" and d["answer"] == answer_ and d["probability"] == pytest.approx(p, abs=1e-3)
    assert a.text.startswith("Yes: " if answer_ == "yes" else "No: ") and "p=" in a.text


def test_absence_answers_read_the_other_way():
    no = ask(fine_result(), "is it sharp?")
    assert no.text.startswith("No: motion blur is likely (p=0.86, threshold 0.50), mostly at 2.0-5.0 s.")
    yes = ask(fine_result(), "is the lighting ok?")
    assert yes.text.startswith("Yes: no overexposure or underexposure is likely; the most likely is")
    assert yes.to_dict()["asks_absence"] is True


@pytest.mark.parametrize("question, reason", [
    ("is the audio ok?", "does not analyse sound"),
    ("is the sound in sync?", "does not analyse sound"),
    ("is the music too loud?", "does not analyse sound"),
    ("is it funny?", "not what the video shows"),
    ("what is it about?", "not what the video shows"),
    ("is it boring?", "not what the video shows"),
])
def test_questions_about_sound_or_content_are_refused_with_a_reason(question, reason):
    with pytest.raises(UnanswerableQuestionError, match=reason) as caught:
        parse_question(question)
    assert caught.value.exit_code == 2 and caught.value.kind == "unanswerable"


def test_a_yes_no_question_needs_a_distortion_head():
    with pytest.raises(NotPredictedError, match="does not predict distortions"):
        ask(overall_only_result(), "is it good?")


def test_ask_command_refuses_audio_before_scoring(capsys, monkeypatch, video_factory):
    model = tiny_model()
    monkeypatch.setattr("vqscope.zoo.load_model", lambda name=None: pytest.fail("loaded a model anyway"))
    monkeypatch.setattr(model, "score", lambda *a, **k: pytest.fail("scored anyway"))
    assert main(["ask", video_factory("three_s.mp4", n=72, fps=24), "is the audio ok?"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vqscope: error: cannot answer 'is the audio ok?'") and err.count("\n") == 1


# -- one scoring for ask, describe and score of the same file -------------------------------------
@pytest.fixture
def result_cache(tmp_path, monkeypatch):
    folder = tmp_path / "results"
    monkeypatch.setenv("VQSCOPE_RESULT_CACHE", str(folder))
    return folder


@pytest.fixture
def score_calls(monkeypatch):
    from vqscope.model import Model

    calls: list[str] = []
    real = Model.score

    def counting(self, path, *args, **kwargs):
        calls.append(str(path))
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(Model, "score", counting)
    return calls


def test_a_second_question_does_not_score_again(capsys, tmp_path, video_factory, result_cache, score_calls):
    model_file = tiny_model().save(tmp_path / "tiny-1.safetensors")
    video = video_factory("three_s.mp4", n=72, fps=24)
    base = ["--model", str(model_file), "--no-progress"]
    assert main(["ask", video, "how is the overall quality?", *base, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert len(score_calls) == 1 and list(result_cache.rglob("*.json"))
    assert main(["ask", video, "how good is it?", *base, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == first["score"]
    assert main(["describe", video, *base]) == 0
    capsys.readouterr()
    assert main(["score", video, *base, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == pytest.approx(first["score"], abs=0.01)
    assert len(score_calls) == 1  # ask, ask, describe, score: one scoring
    assert main(["ask", video, "how good is it?", *base, "--no-cache"]) == 0
    assert main(["ask", video, "how good is it?", *base, "--clip-seconds", "0.5"]) == 0  # other options
    assert len(score_calls) == 3


def test_the_cache_follows_content_not_names(capsys, tmp_path, video_factory, result_cache, score_calls):
    import shutil

    model_file = tiny_model().save(tmp_path / "tiny-1.safetensors")
    video = video_factory("three_s.mp4", n=72, fps=24)
    copy = tmp_path / "renamed.mp4"
    shutil.copy(video, copy)
    assert main(["ask", video, "how good is it?", "--model", str(model_file), "--json"]) == 0
    capsys.readouterr()
    assert main(["ask", str(copy), "how good is it?", "--model", str(model_file), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["video"] == str(copy)  # reported under the name asked about
    assert len(score_calls) == 1
    other = tiny_model(seed=1).save(tmp_path / "tiny-2.safetensors")  # another model file: scored
    assert main(["ask", video, "how good is it?", "--model", str(other)]) == 0
    assert len(score_calls) == 2
