"""Questions about a video's quality, answered from its Result: `vqscope ask FILE "is it shaky?"`.

FineVQ answers distortion questions with a language model; vqscope answers them from its own
heads, so the parser is small and deterministic on purpose: the same question always gets the
same reading, and a question it does not understand is refused with examples rather than
guessed at. Three kinds of question:

- yes/no ("is there motion blur?", "is it shaky?", "is it sharp?", "is the lighting ok?",
  "is the colour ok?", "is it good?"): always answered yes or no, with the probability it
  rests on, the only probabilities vqscope has being those of its twelve distortion types.
  A question asks either whether a distortion is there ("is it blurry?", "is the colour
  wrong?") or whether it is absent ("is it sharp?", "is it in focus?", "is it steady?",
  "is the lighting ok?": evaluative words such as ok/fine/good ask for absence, bad/wrong/off
  for presence). It is about the types its words name, or about all types of a dimension it
  names ("is the colour ok?"; "is it good?" names all twelve), and is answered from the most
  likely of them against the threshold (0.5), with the time ranges where clips exceed it and,
  where a dimension is named, that dimension's score and grade. A model without a distortion
  head has no probability to answer from: such a question is refused, pointing to "how is ...?".
- list ("which distortions?", "what is wrong with the colour?"): every type above the threshold,
  most likely first, each with where it concentrates in time.
- dimension ("how is the color?", "how good is the noise?", "what is the blur score?"): that
  dimension's score, grade and description.

What no picture-quality model can tell is refused with a short reason (exit 2, kind
`unanswerable`), before any video is scored: the sound ("is the audio ok?") and the content
or its appeal ("is it funny?", "what is it about?").

Everyday words map to the twelve types of vqscope.taxonomy (`PHRASES` for a distortion's
presence, `ABSENCE_PHRASES` for its absence, `TOPICS` for neutral words such as "lighting");
matching is on whole words, longest phrase first over all tables together, so "motion blur"
is never read as "motion" plus "blur" and "not sharp" never as "sharp".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from .describe import THRESHOLD, dimension_texts, distortion_name, distortion_ranges, format_p, where_phrase
from .errors import ConfigError, NotPredictedError, UnanswerableQuestionError
from .result import Result, require_dimensions
from .taxonomy import DIMENSIONS, DISTORTION_DIMENSION, DISTORTION_TYPES, types_of

_BLUR = ("defocus_blur", "motion_blur")
_ARTIFACTS = ("compression", "mosaic", "oversharpening")
_EXPOSURE = ("overexposure", "underexposure")

# phrase (normalised: lower case, "color", spaces for hyphens) -> distortion types it names
PHRASES: dict[str, tuple[str, ...]] = {}


def _add(types: tuple[str, ...], *phrases: str) -> None:
    for phrase in phrases:
        PHRASES[phrase] = types


_add(("overexposure",), "overexposure", "overexposed", "over exposure", "over exposed", "washed out",
     "blown out", "blown highlights", "too bright", "burnt out", "clipped highlights")
_add(("underexposure",), "underexposure", "underexposed", "under exposure", "under exposed", "too dark", "dark",
     "too dim", "crushed blacks")
_add(("color_cast",), "color cast", "colour cast", "cast", "white balance", "saturation", "oversaturated",
     "over saturated", "undersaturated", "desaturated", "saturated", "tint", "tinted", "wrong colors",
     "wrong color", "off colors", "color shift")
_add(("noise",), "noise", "noisy", "grain", "grainy", "graininess", "sensor noise")
_add(("compression",), "compression", "compressed", "compression artifacts", "blocky", "blocking", "blockiness",
     "macroblocking", "block artifacts", "blocks", "ringing", "low bitrate", "bitrate")
_add(("mosaic",), "mosaic", "pixelated", "pixelation", "pixellated", "pixelized", "pixelization", "pixelly")
_add(("oversharpening",), "oversharpening", "oversharpened", "over sharpened", "over sharpening", "halo", "halos",
     "haloes", "haloing", "sharpening artifacts", "too sharp")
_add(("defocus_blur",), "defocus", "defocused", "defocus blur", "out of focus", "blurry", "unfocused",
     "soft focus", "not sharp", "not in focus")
_add(("motion_blur",), "motion blur", "motion blurred", "motion blurring", "smear", "smeared", "smearing")
_add(_BLUR, "blur", "blurred", "blurring", "blurriness", "soft")
_add(("stutter",), "stutter", "stutters", "stuttering", "stuttery", "frozen", "freeze", "freezes", "freezing",
     "dropped frames", "dropped frame", "frame drops", "frame drop", "choppy", "choppiness", "judder",
     "juddering", "jerky", "laggy", "lag")
_add(("jitter",), "jitter", "jittery", "jittering", "shaky", "shake", "shakes", "shaking", "camera shake",
     "shaky camera", "unstable", "wobbly", "wobble", "trembling")
_add(("flicker",), "flicker", "flickers", "flickering", "flickery", "flashing", "strobing", "pulsing brightness")
_add(_ARTIFACTS, "artifacts", "artifact", "artifacting")

# phrase -> distortion types whose *absence* it names ("is it sharp?" asks that no blur is likely)
ABSENCE_PHRASES: dict[str, tuple[str, ...]] = {}
for _types, _phrases in (
    (_BLUR, ("sharp", "sharply", "crisp", "in focus", "focused", "well focused", "sharply focused")),
    (("jitter",), ("steady", "stable", "stabilized", "stabilised", "shake free")),
    (("stutter", "jitter"), ("smooth", "fluid", "smoothly")),
    (_EXPOSURE, ("well lit", "well exposed", "properly exposed", "correctly exposed")),
    (("noise",), ("noise free", "noiseless")),
    (("flicker",), ("flicker free",)),
):
    for _phrase in _phrases:
        ABSENCE_PHRASES[_phrase] = _types

# neutral words naming what a question is about; evaluative words decide presence or absence
TOPICS: dict[str, tuple[str, ...]] = {
    "lighting": _EXPOSURE, "light": _EXPOSURE, "exposure": _EXPOSURE, "exposed": _EXPOSURE,
    "brightness": _EXPOSURE, "exposure level": _EXPOSURE,
    "sharpness": _BLUR, "focus": _BLUR, "detail": _BLUR, "details": _BLUR,
    "smoothness": ("stutter", "jitter"), "stability": ("jitter",), "stabilization": ("jitter",),
}

# Words that name a dimension without naming a distortion ("how is the colour?").
DIMENSION_WORDS: dict[str, str] = {
    "color": "color", "colors": "color", "colouring": "color", "contrast": "color",
    "temporal": "temporal", "motion": "temporal", "movement": "temporal",
    "playback": "temporal", "frame rate": "temporal", "framerate": "temporal",
    "overall": "overall", "quality": "overall", "overall quality": "overall",
    "good": "overall", "bad": "overall", "ok": "overall", "okay": "overall", "fine": "overall",
    "acceptable": "overall", "decent": "overall", "watchable": "overall",
}

# Evaluative words: "is the lighting ok?" asks for absence, "is the colour wrong?" for presence.
GOOD_WORDS = ("ok", "okay", "fine", "good", "great", "alright", "all right", "acceptable", "decent", "right",
              "correct", "normal", "natural", "proper", "properly", "watchable", "nice", "clean", "enough")
BAD_WORDS = ("bad", "wrong", "off", "poor", "problem", "problems", "issue", "issues", "broken", "terrible",
             "awful", "defective", "messed up")

# What no picture-quality model can tell: refused with the reason, before any scoring.
OUT_OF_SCOPE: dict[str, str] = {}
for _reason, _words in (
    ("vqscope judges the picture only and does not analyse sound",
     ("audio", "sound", "sounds", "soundtrack", "music", "voice", "voices", "speech", "dialogue", "dialog",
      "loud", "volume", "hiss", "hum", "lip sync", "lipsync", "mono", "stereo", "audible", "hear")),
    ("vqscope rates technical picture quality, not what the video shows or how appealing it is",
     ("funny", "boring", "interesting", "entertaining", "exciting", "scary", "sad", "happy", "beautiful",
      "pretty", "ugly", "cute", "appropriate", "offensive", "violent", "nsfw", "what is it about",
      "what is this about", "story", "plot", "who", "fake", "deepfake", "ai generated", "real", "genuine",
      "copyright", "copyrighted", "popular", "viral", "worth watching")),
):
    for _word in _words:
        OUT_OF_SCOPE[_word] = _reason

_LIST = re.compile(
    r"\b(which|what)\b.*\b(distortions?|problems?|issues?|defects?|wrong|flaws?|types?)\b"
    r"|\blist\b|\bany (distortions?|problems?|issues?|defects?|flaws?)\b|\bwhat is wrong\b"
    r"|^(distortions?|problems?|issues?)$"
)
_HOW = re.compile(r"^(how|rate|what is the (\w+ )?(score|grade|rating))\b|\b(score|grade|rating) (of|for)\b")
_WHICH = re.compile(r"^(which|what)\b")
_YES_NO = re.compile(r"^(is|are|does|do|did|was|were|has|have|can|could|will|would)\b")
_TOKENS = re.compile(r"[^a-z0-9 ]+")

_NOUN = {"color": "colour ", "noise": "noise ", "artifact": "artifact ", "blur": "blur ", "temporal": "temporal ",
         "overall": ""}

_DIM_LABEL = {"color": "colour", "noise": "noise", "artifact": "artifact", "blur": "blur",
              "temporal": "temporal", "overall": "overall quality"}

EXAMPLES = (
    "is there motion blur?", "is it shaky?", "is it sharp?", "is the lighting ok?", "which distortions?",
    "what is wrong?", "how is the color?", "how good is the noise?",
)


@dataclass(frozen=True)
class Question:
    """What a question asks, once parsed: its kind and the types or dimension it is about."""

    text: str
    kind: str  # "yes_no" | "list" | "dimension"
    types: tuple[str, ...] = ()  # yes_no: candidate types; list: the types it is limited to (empty: all)
    dimension: str | None = None  # dimension: which one; list/yes_no: the dimension it names, if any
    phrase: str | None = None  # the words that named the distortion (for the answer's text)
    absence: bool = False  # yes_no: asks that the distortion is absent ("is it sharp?")


@dataclass
class Answer:
    question: Question
    text: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"question": self.question.text, "kind": self.question.kind, **self.data, "text": self.text}


def normalise(text: str) -> str:
    t = text.lower().replace("’", "'")
    t = re.sub(r"colou?r", "color", t)
    t = re.sub(r"artefact", "artifact", t)
    t = t.replace("what's", "what is").replace("how's", "how is").replace("isn't", "is not")
    t = _TOKENS.sub(" ", t.replace("-", " ").replace("_", " "))
    return " ".join(t.split())


def _find(text: str, table: dict[str, Any]) -> tuple[str, list[tuple[int, str]]]:
    """Whole-word matches of the table's phrases, longest first; matched words are consumed."""
    found: list[tuple[int, str]] = []
    for phrase in sorted(table, key=lambda p: (-len(p), p)):
        pattern = re.compile(r"(?<![a-z0-9#])" + re.escape(phrase) + r"(?![a-z0-9#])")
        while True:
            m = pattern.search(text)
            if m is None:
                break
            found.append((m.start(), phrase))
            text = text[: m.start()] + "#" * len(phrase) + text[m.end():]
    found.sort()
    return text, found


def _refuse(text: str) -> ConfigError:
    shown = "; ".join(f'"{e}"' for e in EXAMPLES)
    return ConfigError(f"cannot understand the question {text.strip()!r}; questions vqscope answers: {shown}")


def _out_of_scope(text: str, norm: str) -> None:
    """Refuse, with the reason, a question about what vqscope cannot perceive or judge."""
    _, hits = _find(norm, OUT_OF_SCOPE)
    if hits:
        word = hits[0][1]
        raise UnanswerableQuestionError(
            f"cannot answer {text.strip()!r}: {OUT_OF_SCOPE[word]} ({word!r}); ask about the picture, "
            f"e.g. \"is it sharp?\", \"is the lighting ok?\", \"which distortions?\""
        )


def _has_word(norm: str, words: Iterable[str]) -> bool:
    return any(re.search(r"(?<![a-z0-9])" + re.escape(w) + r"(?![a-z0-9])", norm) for w in words)


# every phrase table, matched together (longest first): phrase -> (role, value)
_TABLE: dict[str, tuple[str, Any]] = {
    **{p: ("dimension", d) for p, d in DIMENSION_WORDS.items()},
    **{p: ("topic", t) for p, t in TOPICS.items()},
    **{p: ("absence", t) for p, t in ABSENCE_PHRASES.items()},
    **{p: ("presence", t) for p, t in PHRASES.items()},
}


def parse_question(text: str) -> Question:
    """Read a question. Raises ConfigError, with examples, when it is not one vqscope answers,
    and UnanswerableQuestionError, with the reason, when it is about sound or content."""
    norm = normalise(text)
    if not norm:
        raise _refuse(text)
    _out_of_scope(text, norm)
    _, hits = _find(norm, _TABLE)
    roles = [(_TABLE[phrase][0], _TABLE[phrase][1], phrase) for _, phrase in hits]
    types: list[str] = []
    for role, value, _ in roles:
        if role != "dimension":
            types += [t for t in value if t not in types]
    dims = [value for role, value, _ in roles if role == "dimension"]
    named = [phrase for role, _, phrase in roles if role in ("presence", "absence")]
    phrase = named[0] if named else None
    named_dim = next((d for d in dims if d != "overall"), None)
    if named_dim is None and types:
        owners = {DISTORTION_DIMENSION[t] for t in types}
        named_dim = owners.pop() if len(owners) == 1 else None

    if _HOW.search(norm):
        return Question(text, "dimension", dimension=named_dim or "overall", phrase=phrase)
    if _LIST.search(norm) or (types and _WHICH.search(norm)):
        scope = tuple(types) if types else (types_of(named_dim) if named_dim else ())
        return Question(text, "list", types=scope, dimension=named_dim, phrase=phrase)
    if types or (dims and _YES_NO.search(norm)):
        # a dimension the words name ("is the colour ok?", "is it good?"): its score is reported too
        dimension = next((d for d in dims if d != "overall"), None if types else "overall") if dims else None
        if not types:  # every type of the dimension
            types = list(types_of(named_dim or "overall"))
        absence = _asks_absence(norm, {role for role, _, _ in roles})
        return Question(text, "yes_no", types=tuple(types), dimension=dimension, phrase=phrase, absence=absence)
    raise _refuse(text)


def _asks_absence(norm: str, roles: set[str]) -> bool:
    """Whether a yes/no question asks that a distortion is absent: its evaluative words decide
    ("is the noise ok?" -> absent, "is the colour off?" -> present), else its phrases ("is it
    sharp?" -> absent, "is it blurry?" -> present)."""
    if _has_word(norm, BAD_WORDS):
        return False
    if _has_word(norm, GOOD_WORDS):
        return True
    return "absence" in roles and "presence" not in roles


def model_predicts(model: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(dimensions, distortion types) a model's results carry, read from its head configuration.

    "overall" is always there (the primary head fills it); other dimensions are heads named
    after them; distortion types are those of its distortion head.
    """
    config = model.network.config
    dims = tuple(d for d in DIMENSIONS if d == "overall" or d in config.heads)
    return dims, tuple(getattr(config, "distortions", ()) or ())


def check_answerable(question: Question, dimensions: Iterable[str], distortions: Iterable[str], model: str) -> None:
    """Refuse, before any video is scored, a question the model cannot answer."""
    if question.kind == "dimension":
        require_dimensions([question.dimension or "overall"], dimensions, model)
        return
    have = set(distortions)
    if not have:
        raise NotPredictedError(
            f"model {model} does not predict distortions, so it cannot answer {question.text.strip()!r}; "
            f"ask about a dimension it has ({', '.join(dimensions) or 'none'}), e.g. \"how is the overall quality?\", "
            f"or use a model with a distortion head"
        )
    if question.kind == "yes_no" and not have & set(question.types):
        raise NotPredictedError(f"model {model} does not predict {', '.join(question.types)}")


def _ranges(result: Result, kind: str, threshold: float) -> tuple[list[dict[str, float]], str | None]:
    found = distortion_ranges(result.clips, kind, threshold)
    if found is None:
        return [], None
    ranges, flagged = found
    return ([{"start_s": round(a, 3), "end_s": round(b, 3)} for a, b in ranges],
            where_phrase(ranges, flagged, len(result.clips)))


def answer(question: Question, result: Result, threshold: float = THRESHOLD) -> Answer:
    """Answer a parsed question from a scored Result."""
    check_answerable(question, result.dimensions, result.distortions, result.model)
    base: dict[str, Any] = {"video": result.video, "model": result.model}
    if question.kind == "dimension":
        name = question.dimension or "overall"
        dim = result.dimensions[name]
        description = dimension_texts(result)[name]
        data = {**base, "dimension": name, "score": round(dim.score, 2), "grade": dim.grade,
                "description": description}
        return Answer(question, description, data)

    base["threshold"] = threshold
    if question.kind == "yes_no":
        return _yes_no(question, result, threshold, base)

    scope = [t for t in (question.types or DISTORTION_TYPES) if t in result.distortions]
    likely = sorted((t for t in scope if result.distortions[t] >= threshold),
                    key=lambda t: (-result.distortions[t], t))
    items = []
    parts = []
    for t in likely:
        ranges, where = _ranges(result, t, threshold)
        p = result.distortions[t]
        items.append({"distortion": t, "probability": round(p, 4), "ranges": ranges})
        parts.append(f"{distortion_name(t)} (p={format_p(p)}" + (f", {where})" if where else ")"))
    about = _NOUN.get(question.dimension or "overall", "")
    if parts:
        text = f"Likely {about}distortions (p >= {threshold:.2f}): " + "; ".join(parts) + "."
    elif scope:
        top = max(scope, key=lambda t: (result.distortions[t], t))
        text = (f"No {about}distortion is likely (none has p >= {threshold:.2f}); the most likely is "
                f"{distortion_name(top)} (p={format_p(result.distortions[top])}).")
    else:
        text = f"Model {result.model} predicts no {about}distortion."
    data = {**base, "answer": items, "scope": question.dimension or (list(question.types) or None)}
    return Answer(question, text, data)


def _yes_no(question: Question, result: Result, threshold: float, base: dict[str, Any]) -> Answer:
    """Yes or no, from the most likely of the question's types against the threshold: "yes"
    where it is likely and the question asks for presence, or unlikely and it asks for absence."""
    candidates = {t: result.distortions[t] for t in question.types if t in result.distortions}
    kind = max(candidates, key=lambda t: (candidates[t], t))
    p = candidates[kind]
    likely = p >= threshold
    yes = likely != question.absence
    ranges, where = _ranges(result, kind, threshold)
    text = ("Yes: " if yes else "No: ") + _finding(question, candidates, kind, threshold, where)
    others = [t for t in sorted(candidates, key=lambda t: -candidates[t]) if t != kind]
    if others:
        shown = ", ".join(f"{distortion_name(t)} (p={format_p(candidates[t])})" for t in others[:3])
        text += f" Also considered: {shown}" + (f" and {len(others) - 3} less likely." if len(others) > 3 else ".")
    data = {**base, "answer": "yes" if yes else "no", "distortion": kind, "probability": round(p, 4),
            "asks_absence": question.absence, "ranges": ranges,
            "candidates": {t: round(v, 4) for t, v in candidates.items()}}
    dim = result.dimensions.get(question.dimension) if question.dimension else None
    if dim is not None:
        text += f" The {_DIM_LABEL[question.dimension]} score is {dim.score:.0f}/100 ({dim.grade})."
        data.update(dimension=question.dimension, dimension_score=round(dim.score, 2), dimension_grade=dim.grade)
    return Answer(question, text, data)


def _finding(question: Question, candidates: dict[str, float], kind: str, threshold: float, where: str | None) -> str:
    """What the probabilities say, whatever the question's polarity: the most likely type is
    likely (with where), or nothing of the kind is (with the highest probability)."""
    p, name, limit = candidates[kind], distortion_name(kind), f"threshold {threshold:.2f}"
    if p >= threshold:
        return f"{name} is likely (p={format_p(p)}, {limit})" + (f", {where}." if where else ".")
    text = (f"{name} is unlikely (p={format_p(p)}, {limit})" if len(candidates) == 1 else
            f"no {_group(question, candidates)} is likely; the most likely is {name} (p={format_p(p)}, {limit})")
    return text + (f", though clips exceed the threshold {where.removeprefix('mostly ')}." if where else ".")


def _group(question: Question, candidates: dict[str, float]) -> str:
    """A name for several candidate types: the dimension's distortions, or the types by name."""
    dim = question.dimension
    if dim and set(candidates) == set(types_of(dim)):
        return f"{_NOUN.get(dim, '')}distortion"
    names = [distortion_name(t) for t in candidates]
    return ", ".join(names[:-1]) + f" or {names[-1]}"


def ask(result: Result, question: str, threshold: float = THRESHOLD) -> Answer:
    """Parse and answer in one call (library use)."""
    if not 0.0 < threshold < 1.0:
        raise ConfigError("the threshold must be between 0 and 1")
    return answer(parse_question(question), result, threshold)
