"""Descriptions written by a language model: `vqscope describe FILE --llm URL`.

vqscope's own text (describe.py) is exact but terse. A vision-language model can say more
about what the viewer sees, but it cannot measure stutter or tell a 38 from a 62; so it is
given both: a few key frames (JPEG data URLs) and vqscope's structured findings (scores,
grades, likely distortions with the time ranges where they concentrate), and asked to write
from the findings, not to contradict them. Any OpenAI-compatible chat completions server
works (vLLM, llama.cpp server, Ollama, a hosted API): `POST {URL}/v1/chat/completions` with
`image_url` content parts. An API key, where the server wants one, comes from
$VQSCOPE_LLM_API_KEY. Every failure (unreachable, timeout, non-200, malformed answer) is one
typed error with a one-line message.
"""

from __future__ import annotations

import base64
import fractions
import json
import os
from typing import Any, Sequence

from .describe import THRESHOLD, dimension_texts, distortion_name, distortion_ranges
from .errors import ConfigError, LLMError
from .result import Result

API_KEY_ENV = "VQSCOPE_LLM_API_KEY"
FRAME_LONG_SIDE = 512  # enough for a model to see blocking and blur; keeps the request small
_JPEG_Q = 3  # mjpeg quantiser (2 best .. 31 worst)

SYSTEM_PROMPT = (
    "You are a video quality expert. You receive key frames of a video and the measurements of "
    "vqscope, a no-reference video quality model: a 0-100 score and a grade per quality dimension "
    "(color, noise, artifact, blur, temporal, overall) and the probability of each distortion type, "
    "with the time ranges where it concentrates. Write a short description (3 to 5 sentences) of the "
    "video's visual quality for a person deciding what to do with it: what is good, what is wrong, and "
    "when. Base every claim on the measurements; use the frames to say what the problems look like. "
    "The frames cannot show motion, stutter or flicker: trust the measurements for those. Do not "
    "invent distortions the measurements do not support, and quote times in seconds."
)


def findings(result: Result, threshold: float = THRESHOLD) -> dict[str, Any]:
    """What vqscope measured, in the shape the language model is given (also `--json` output)."""
    distortions = []
    for kind, p in sorted(result.distortions.items(), key=lambda kv: (-kv[1], kv[0])):
        item: dict[str, Any] = {"type": kind, "name": distortion_name(kind), "probability": round(p, 3),
                                "likely": p >= threshold}
        found = distortion_ranges(result.clips, kind, threshold)
        if found is not None and found[0]:
            item["time_ranges_s"] = [[round(a, 2), round(b, 2)] for a, b in found[0]]
        distortions.append(item)
    texts = dimension_texts(result)
    return {
        "video": os.path.basename(result.video),
        "duration_s": round(result.duration_s, 2),
        "resolution": f"{result.width}x{result.height}",
        "fps": round(result.fps, 2),
        "score": round(result.score, 1),
        "grade": result.grade,
        "percentile": None if result.scaled_score is None else round(result.scaled_score, 1),
        "dimensions": {k: {"score": round(d.score, 1), "grade": d.grade, "description": texts[k]}
                       for k, d in result.dimensions.items()},
        "distortions": distortions,
        "distortion_threshold": threshold,
        "clip_scores": [[round(c.start_s, 2), round(c.end_s, 2), round(c.score, 1)] for c in result.clips],
        "summary": result.description,
    }


def key_times(result: Result, count: int = 4) -> list[float]:
    """Times of the frames to show: key frames of clips spread over the video, the worst clip included."""
    clips = result.clips
    if count < 1 or not clips:
        return []
    if len(clips) <= count:
        chosen = list(range(len(clips)))
    else:
        chosen = sorted({round(i * (len(clips) - 1) / (count - 1)) for i in range(count)} if count > 1 else {0})
        worst = min(range(len(clips)), key=lambda i: clips[i].score)
        if worst not in chosen:
            nearest = min(chosen, key=lambda i: abs(i - worst))
            chosen = sorted((set(chosen) - {nearest}) | {worst})
    return [clips[i].key_time_s for i in chosen]


def _jpeg(rgb: Any) -> bytes:
    import av

    height, width = rgb.shape[:2]
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj420p")
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height = width, height
    codec.pix_fmt = "yuvj420p"
    codec.time_base = fractions.Fraction(1, 25)
    codec.qmin = codec.qmax = _JPEG_Q
    return b"".join(bytes(p) for p in codec.encode(frame) + codec.encode(None))


def sample_frames(path: str, times: Sequence[float], long_side: int = FRAME_LONG_SIDE) -> list[tuple[float, str]]:
    """(time, JPEG data URL) of the first frame at or after each time, in display orientation."""
    from .video import VideoReader

    out = []
    with VideoReader(path) as reader:
        for t in times:
            frame = next(reader.frames(max(0.0, float(t))), None)
            if frame is None:
                continue
            w, h = frame.display_size
            scale = min(1.0, long_side / max(w, h))
            size = (max(2, int(w * scale) // 2 * 2), max(2, int(h * scale) // 2 * 2))
            data = base64.b64encode(_jpeg(frame.rgb(*size))).decode("ascii")
            out.append((float(frame.time_s), f"data:image/jpeg;base64,{data}"))
    return out


def build_messages(result: Result, frames: Sequence[tuple[float, str]], threshold: float = THRESHOLD) -> list[dict]:
    content: list[dict[str, Any]] = [{
        "type": "text",
        "text": "vqscope findings (JSON):\n" + json.dumps(findings(result, threshold), ensure_ascii=False, indent=1)
                + f"\n\n{len(frames)} key frame(s) follow, each after its time.",
    }]
    for t, url in frames:
        content.append({"type": "text", "text": f"Frame at {t:.1f} s:"})
        content.append({"type": "image_url", "image_url": {"url": url}})
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}]


def _base(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"--llm {url!r}: give the server's http:// or https:// URL")
    for suffix in ("/chat/completions", "/v1"):
        if url.endswith(suffix):
            url = url[: -len(suffix)].rstrip("/")
    return url.removesuffix("/v1")


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ChatClient:
    """A minimal OpenAI-compatible client: list models, one chat completion. Errors are LLMError."""

    def __init__(self, url: str, timeout: float = 120.0, api_key: str | None = None):
        self.base = _base(url)
        self.timeout = timeout
        self.api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)

    def _request(self, method: str, path: str, body: dict | None = None) -> Any:
        import httpx

        url = f"{self.base}/v1/{path}"
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            response = httpx.request(method, url, json=body, headers=headers, timeout=self.timeout)
        except httpx.TimeoutException:
            raise LLMError(f"{url}: no answer within {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise LLMError(f"cannot reach the language model server at {url} ({_one_line(exc) or type(exc).__name__})") from None
        if response.status_code != 200:
            raise LLMError(f"{url} answered HTTP {response.status_code}: {_one_line(response.text) or response.reason_phrase}")
        try:
            return response.json()
        except ValueError:
            raise LLMError(f"{url} answered with something that is not JSON: {_one_line(response.text, 80)!r}") from None

    def first_model(self) -> str:
        """The server's first model: servers that host one model need no --llm-model."""
        data = self._request("GET", "models")
        try:
            return str(data["data"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise LLMError(f"{self.base}/v1/models lists no model; name one with --llm-model") from None

    def complete(self, messages: list[dict], model: str, max_tokens: int = 400) -> str:
        body = {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0.2}
        data = self._request("POST", "chat/completions", body)
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise LLMError(f"{self.base}/v1/chat/completions: unexpected answer (no choices[0].message.content)") from None
        if isinstance(content, list):  # some servers answer in content parts
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        if not isinstance(content, str) or not content.strip():
            raise LLMError(f"{self.base}/v1/chat/completions: the model returned an empty answer")
        return content.strip()


def describe_with_llm(
    result: Result,
    video_path: str,
    url: str,
    model: str | None = None,
    frames: int = 4,
    timeout: float = 120.0,
    threshold: float = THRESHOLD,
) -> str:
    """Score-based findings + key frames -> the language model's description of the video."""
    if frames < 0:
        raise ConfigError("--frames must be 0 or more")
    if not timeout > 0:
        raise ConfigError("--llm-timeout must be greater than 0")
    client = ChatClient(url, timeout)
    images = sample_frames(video_path, key_times(result, frames)) if frames else []
    messages = build_messages(result, images, threshold)
    return client.complete(messages, model or client.first_model())
