"""Request size limits, enforced while the body streams in, and chosen per route.

Three sizes:
- uploads (multipart: a video, a ratings file): the upload limit (`--max-upload-mb`, 512 MB),
  streamed to disk by the handler, never held in memory;
- bulk JSON (a batch of up to 10,000 videos, a study, a list of raters): `--max-json-mb`
  (8 MB: a batch of 10,000 typical paths is 1.1 MB, 10,000 signed URLs of ~200 characters
  2.1 MB, 10,000 items with 150-character paths, four tags and every option 3.3 MB);
- every other body (one job, an alert rule, a rating): 64 KB.

A JSON body is parsed in memory, so its limit bounds the memory and the time that parsing can
take. Starlette spools a multipart upload to disk before the handler sees it, so a limit
checked in the handler comes after the disk is already full. This ASGI middleware refuses a
declared Content-Length over the limit before reading anything, and stops a chunked body as
soon as it passes the limit. The overflow is raised as an HTTPException so that FastAPI's body
parsing passes it through as a 413 rather than turning it into "invalid body". It runs after
the token check (auth.py), so an unauthenticated body is never read at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException

from ..errors import ConfigError
from .auth import header, route_template, send_error

MULTIPART_SLACK = 64 * 1024  # multipart framing adds a little to the file itself; the file's own limit is exact
SMALL_JSON_BYTES = 64 * 1024
DEFAULT_JSON_BYTES = 8 * 1024 * 1024
UPLOAD_ROUTES = {("POST", "/api/jobs/upload"), ("POST", "/api/studies/{study_id}/items/upload"),
                 ("POST", "/api/studies/{study_id}/ratings/import")}
BULK_ROUTES = {("POST", "/api/batches"), ("POST", "/api/studies"), ("POST", "/api/studies/{study_id}/raters")}


class BodyTooLarge(HTTPException):
    def __init__(self, message: str):
        super().__init__(413, message)


@dataclass(frozen=True)
class BodyLimits:
    upload_bytes: int
    json_bytes: int = DEFAULT_JSON_BYTES
    small_bytes: int = SMALL_JSON_BYTES

    def __post_init__(self) -> None:
        if self.upload_bytes < 1 or self.json_bytes < 1 or self.small_bytes < 1:
            raise ConfigError("request size limits must be positive")

    def limit_for(self, method: str, template: str | None) -> int:
        if (method, template) in UPLOAD_ROUTES:
            return self.upload_bytes + MULTIPART_SLACK
        if (method, template) in BULK_ROUTES:
            return self.json_bytes
        return min(self.small_bytes, self.json_bytes)


def describe(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MB" if limit % (1024 * 1024) == 0 else f"{limit} bytes"


class BodyLimitMiddleware:
    def __init__(self, app: Any, limits: BodyLimits, router: Any):
        self.app = app
        self.limits = limits
        self.router = router

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        template = route_template(self.router, scope)
        limit = self.limits.limit_for(method, template)
        message = f"the request body is over this server's limit of {describe(limit)} for {method} {template or 'this path'}"
        declared = header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            await send_error(send, scope, 413, "too_large", message)
            return
        received = 0
        started = False

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            message_in = await receive()
            if message_in["type"] == "http.request":
                received += len(message_in.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(message)
            return message_in

        async def tracking_send(message_out: dict[str, Any]) -> None:
            nonlocal started
            if message_out["type"] == "http.response.start":
                started = True
            await send(message_out)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await send_error(send, scope, 413, "too_large", message, close=True)
