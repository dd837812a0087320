"""Questions about a video's quality, answered from its Result: `vqscope ask FILE "is it shaky?"`.

FineVQ answers distortion questions with a language model; vqscope answers them from its own
heads, so the parser is small and deterministic on purpose: the same question always gets the
same reading, and a question it does not understand is refused with examples rather than
guessed at. Three kinds of question:

- yes/no about a distortion type ("is there motion blur?", "is it shaky?", "is it blurry?"):
  the probability against a stated threshold (0.5), and the time ranges where clips exceed it.
  A word that covers several types ("blur", "exposure", "artifacts") is answered about the most
  likely of them, naming the others.
- list ("which distortions?", "what is wrong with the colour?"): every type above the threshold,
  most likely first, each with where it concentrates in time.
- dimension ("how is the color?", "how good is the noise?", "is the motion smooth?"): that
  dimension's score, grade and description.

Everyday words map to the twelve types of vqscope.taxonomy (`PHRASES`); matching is on whole
words, longest phrase first, so "motion blur" is never read as "motion" plus "blur".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from .describe import THRESHOLD, dimension_texts, distortion_name, distortion_ranges, format_p, where_phrase
from .errors import ConfigError
from .errors import NotPredictedError
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
_add(_EXPOSURE, "exposure", "exposed")

# Words that name a dimension without naming a distortion ("how is the colour?").
DIMENSION_WORDS: dict[str, str] = {
    "color": "color", "colors": "color", "colouring": "color", "brightness": "color", "contrast": "color",
    "sharpness": "blur", "sharp": "blur", "focus": "blur", "detail": "blur", "details": "blur",
    "temporal": "temporal", "motion": "temporal", "movement": "temporal", "smooth": "temporal",
    "smoothness": "temporal", "stability": "temporal", "stable": "temporal", "steady": "temporal",
    "playback": "temporal", "frame rate": "temporal", "framerate": "temporal",
    "overall": "overall", "quality": "overall", "overall quality": "overall",
    "good": "overall", "bad": "overall", "ok": "overall", "okay": "overall", "fine": "overall",
    "acceptable": "overall", "decent": "overall", "watchable": "overall",
}

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

EXAMPLES = (
    "is there motion blur?", "is it shaky?", "is it too dark?", "which distortions?", "what is wrong?",
    "how is the color?", "how good is the noise?",
)


@dataclass(frozen=True)
class Question:
    """What a question asks, once parsed: its kind and the types or dimension it is about."""

    text: str
    kind: str  # "yes_no" | "list" | "dimension"
    types: tuple[str, ...] = ()  # yes_no: candidate types; list: the types it is limited to (empty: all)
    dimension: str | None = None  # dimension: which one; list: the dimension it is limited to, if any
    phrase: str | None = None  # the words that named the distortion (for the answer's text)


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


def parse_question(text: str) -> Question:
    """Read a question. Raises ConfigError, with examples, when it is not one vqscope answers."""
    norm = normalise(text)
    if not norm:
        raise _refuse(text)
    rest, type_hits = _find(norm, PHRASES)
    _, dim_hits = _find(rest, DIMENSION_WORDS)
    types: list[str] = []
    for _, phrase in type_hits:
        types += [t for t in PHRASES[phrase] if t not in types]
    dims = [DIMENSION_WORDS[p] for _, p in dim_hits]
    phrase = type_hits[0][1] if type_hits else None
    named_dim = next((d for d in dims if d != "overall"), None)
    if named_dim is None and types:
        owners = {DISTORTION_DIMENSION[t] for t in types}
        named_dim = owners.pop() if len(owners) == 1 else None

    if _HOW.search(norm):
        return Question(text, "dimension", dimension=named_dim or "overall", phrase=phrase)
    if _LIST.search(norm) or (types and _WHICH.search(norm)):
        scope = tuple(types) if types else (types_of(named_dim) if named_dim else ())
        return Question(text, "list", types=scope, dimension=named_dim, phrase=phrase)
    if types:
        return Question(text, "yes_no", types=tuple(types), phrase=phrase)
    if dims and _YES_NO.search(norm):  # "is the colour ok?", "is the motion smooth?"
        return Question(text, "dimension", dimension=named_dim or "overall")
    raise _refuse(text)


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
        candidates = {t: result.distortions[t] for t in question.types if t in result.distortions}
        kind = max(candidates, key=lambda t: (candidates[t], t))
        p = candidates[kind]
        ranges, where = _ranges(result, kind, threshold)
        name = distortion_name(kind)
        if p >= threshold:
            text = f"Yes: {name} is likely (p={format_p(p)}, threshold {threshold:.2f})" + (f", {where}." if where else ".")
        else:
            text = f"No: {name} is unlikely (p={format_p(p)}, threshold {threshold:.2f})"
            text += f", though clips exceed the threshold {where.removeprefix('mostly ')}." if where else "."
        others = [t for t in sorted(candidates, key=lambda t: -candidates[t]) if t != kind]
        if others:
            text += " Also considered: " + ", ".join(f"{distortion_name(t)} (p={format_p(candidates[t])})" for t in others) + "."
        data = {**base, "answer": "yes" if p >= threshold else "no", "distortion": kind,
                "probability": round(p, 4), "ranges": ranges,
                "candidates": {t: round(v, 4) for t, v in candidates.items()}}
        return Answer(question, text, data)

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


def ask(result: Result, question: str, threshold: float = THRESHOLD) -> Answer:
    """Parse and answer in one call (library use)."""
    if not 0.0 < threshold < 1.0:
        raise ConfigError("the threshold must be between 0 and 1")
    return answer(parse_question(question), result, threshold)
