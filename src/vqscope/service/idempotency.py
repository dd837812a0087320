"""Idempotency keys: a submission retried with the same `Idempotency-Key` makes no second job.

Why: a client whose request was committed but never answered (the server was killed, the
connection dropped) cannot tell whether its job exists, and retrying used to make a second
one. With a key, the retry gets the first request's job(s) back, whatever happened to the
first answer, because the key is committed in the same transaction as the jobs (see
`JobStore.submit_idempotent`): either both exist or neither does.

The rules, as in the IETF draft "The Idempotency-Key HTTP Header Field" and Stripe's API:
- A key is any 1-255 visible ASCII characters the client chooses (a UUID is usual).
- Keys are scoped to the token that sent them (stored as a SHA-256 of the token, never the
  token), so two clients cannot see or block each other's keys.
- The same key with the same request (same endpoint, same JSON after parsing, or for an
  upload the same bytes, file name and fields) answers with the first request's job(s): 202
  again, the same ids, their current state, and `Idempotent-Replayed: true`.
- The same key with a different request is refused: 422 `idempotency_key_reused`.
- Keys expire after `ServiceConfig.idempotency_ttl_s` (24 h by default; 0 keeps them
  forever): a retry is a matter of seconds or minutes, and 24 h bounds the table to a day's
  submissions. An expired key is free to be used again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..errors import VQScopeError

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
DEFAULT_TTL_S = 24 * 3600.0


class IdempotencyError(VQScopeError):
    """A malformed Idempotency-Key header (HTTP 422)."""

    exit_code = 2
    kind = "invalid_idempotency_key"


class IdempotencyKeyReusedError(IdempotencyError):
    """The key was already used for a different request (HTTP 422)."""

    kind = "idempotency_key_reused"


@dataclass(frozen=True)
class IdempotencyKey:
    scope: str  # SHA-256 (hex) of the credential that sent it
    key: str  # as the client sent it
    fingerprint: str  # SHA-256 (hex) of the endpoint and the request, to tell a retry from a new request


def request_key(header: str | None, authorization: str | None, endpoint: str, request: Any) -> IdempotencyKey | None:
    """The key of a request, or None when it has no Idempotency-Key header.

    `request` is what identifies the request: the parsed body (a dict), or for uploads the
    file's digest with the form fields; `endpoint` keeps one key from serving two endpoints.
    """
    if header is None:
        return None
    key = header.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not all(33 <= ord(c) <= 126 for c in key):
        raise IdempotencyError(
            f"the {HEADER} header must be 1-{MAX_KEY_LENGTH} visible ASCII characters (e.g. a UUID)")
    credential = (authorization or "").partition(" ")[2].strip() or (authorization or "")
    scope = hashlib.sha256(credential.encode("utf-8")).hexdigest()
    body = json.dumps({"endpoint": endpoint, "request": request}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True, default=str)
    return IdempotencyKey(scope, key, hashlib.sha256(body.encode("utf-8")).hexdigest())


class HashingReader:
    """A binary stream that hashes what is read through it (an upload is hashed while stored)."""

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        block = self.stream.read(size)
        self.sha256.update(block)
        return block

    def hexdigest(self) -> str:
        return self.sha256.hexdigest()
