"""Who may do what, checked before a request's body is read.

Three tokens, three roles, each including the ones below it:

    admin   --token / $VQSCOPE_TOKEN (the write token)   everything: alert rules, studies, submit, read
    writer  --submit-token / $VQSCOPE_SUBMIT_TOKEN       submit jobs and batches, read
    reader  --read-token / $VQSCOPE_READ_TOKEN           read: jobs, results, batches, alerts, dashboard data, /metrics

Reads (every GET that is not public) are open unless the service is told otherwise: a read
token makes them need a token (any of the three); `open_reads=False` makes them need one even
without a read token (the admin or submit token then reads). `vqscope serve` closes reads by
default when it listens on anything but a loopback address (see the README).

Always public: /healthz (liveness), the dashboard page and its static files (the page asks for
a token when the data needs one), the API spec, and the raters' pages and API (a rater's link
carries its own invitation token, checked by the study routes).

The check is an ASGI middleware: it finds the route the router would pick (same matching, so
no path spelling gets around it), decides the role from the route's template, and answers 401
(no or unknown token) or 403 (a token whose role is too low) before the application reads or
parses a byte of the body. FastAPI dependencies run after body parsing, which let an
unauthenticated client make the server read and parse hundreds of megabytes. Anything not
listed here needs a reader for GET/HEAD and the admin for every other method.
"""

from __future__ import annotations

import hmac
import json
import os
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.routing import Match

from ..errors import ConfigError

READ_TOKEN_ENV = "VQSCOPE_READ_TOKEN"
SUBMIT_TOKEN_ENV = "VQSCOPE_SUBMIT_TOKEN"
ROUTE_KEY = "vqscope.route"  # the matched route's template, kept in the ASGI scope for later middleware
ROLE_KEY = "vqscope.role"  # the role the request's token grants


class Role(IntEnum):
    PUBLIC = 0
    READER = 1
    WRITER = 2
    ADMIN = 3


_PUBLIC = {"/healthz", "/", "/dashboard", "/static/{name}", "/favicon.ico", "/openapi.json", "/docs", "/docs/oauth2-redirect",
           "/redoc"}
_PUBLIC_PREFIXES = ("/rate/", "/api/rate/")
_ADMIN_PREFIXES = ("/api/studies",)
_WRITER = {("POST", "/api/jobs"), ("POST", "/api/jobs/upload"), ("POST", "/api/batches")}
_READ_METHODS = ("GET", "HEAD")
_NEEDS = {Role.READER: "read this", Role.WRITER: "submit jobs", Role.ADMIN: "do this (it needs the admin token)"}


def route_role(method: str, template: str | None) -> Role:
    """The least role a request needs, from its route template (None: no route matched)."""
    if template is not None:
        if template in _PUBLIC or template.startswith(_PUBLIC_PREFIXES):
            return Role.PUBLIC
        if template.startswith(_ADMIN_PREFIXES):
            return Role.ADMIN
        if (method, template) in _WRITER:
            return Role.WRITER
    return Role.READER if method in _READ_METHODS else Role.ADMIN


@dataclass(frozen=True)
class AccessPolicy:
    """The tokens and whether reads are open; `grant` tells what a request's token allows."""

    admin_token: str
    submit_token: str | None = None
    read_token: str | None = None
    open_reads: bool = True

    def __post_init__(self) -> None:
        given = [t for t in (self.admin_token, self.submit_token, self.read_token) if t is not None]
        if any(not t.strip() or len(t) > 4096 for t in given):
            raise ConfigError("tokens must be non-empty and at most 4096 characters")
        if len(set(given)) != len(given):
            raise ConfigError("the admin, submit and read tokens must differ from each other")
        if self.read_token and self.open_reads:
            raise ConfigError("--open-reads contradicts --read-token (a read token makes reads need a token)")

    @classmethod
    def from_config(cls, config: Any, admin_token: str) -> "AccessPolicy":
        read = config.read_token or os.environ.get(READ_TOKEN_ENV) or None
        submit = config.submit_token or os.environ.get(SUBMIT_TOKEN_ENV) or None
        open_reads = config.open_reads
        if open_reads is None:
            open_reads = read is None
        return cls(admin_token, submit, read, bool(open_reads))

    def required(self, method: str, template: str | None) -> Role:
        role = route_role(method, template)
        return Role.PUBLIC if role == Role.READER and self.open_reads else role

    def grant(self, authorization: str | None) -> Role | None:
        """PUBLIC without credentials, the token's role, or None for a wrong or malformed one."""
        if authorization is None:
            return Role.PUBLIC
        scheme, _, given = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return None
        given_bytes = given.strip().encode("utf-8", "surrogateescape")
        found = None
        for token, role in ((self.admin_token, Role.ADMIN), (self.submit_token, Role.WRITER),
                            (self.read_token, Role.READER)):
            # every configured token is compared, so the time taken does not say which one matched
            if token is not None and hmac.compare_digest(given_bytes, token.encode("utf-8")):
                found = role
        return found

    def describe(self) -> str:
        reads = "open" if self.open_reads else "need a token (" + ", ".join(
            n for n, t in (("read", self.read_token), ("submit", self.submit_token), ("admin", self.admin_token))
            if t) + ")"
        return f"reads {reads}; submit: {'submit or admin' if self.submit_token else 'admin'} token"


def route_template(router: Any, scope: dict[str, Any]) -> str | None:
    """The template of the route the router will pick (cached in the scope), None if none matches."""
    if ROUTE_KEY in scope:
        return scope[ROUTE_KEY]
    template = partial = None
    for route in getattr(router, "routes", ()):
        match, _child = route.matches(scope)
        if match is Match.FULL:
            template = route.path
            break
        if match is Match.PARTIAL and partial is None:
            partial = route.path
    scope[ROUTE_KEY] = template or partial
    return scope[ROUTE_KEY]


def header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def has_body(scope: dict[str, Any]) -> bool:
    length = header(scope, b"content-length")
    return header(scope, b"transfer-encoding") is not None or (length is not None and length.strip() not in ("", "0"))


async def send_error(send: Any, scope: dict[str, Any], status: int, kind: str, message: str,
                     extra_headers: list[tuple[bytes, bytes]] = (), close: bool | None = None) -> None:
    """A JSON error answered by a middleware; the connection is closed if a body was sent and not read."""
    body = json.dumps({"error": kind, "message": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               *extra_headers]
    if close or (close is None and has_body(scope)):
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def refusal(granted: Role, needed: Role) -> str:
    return f"a {granted.name.lower()} token may not {_NEEDS[needed]}"


def require(policy: AccessPolicy, role: Role) -> Any:
    """A FastAPI dependency repeating the middleware's check for one route (and marking it in the API spec)."""
    bearer = HTTPBearer(auto_error=False, description="a token: admin (--token), submit or read")

    def check(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        granted = policy.grant(f"Bearer {creds.credentials}" if creds else None)
        if granted is None or granted == Role.PUBLIC:
            raise HTTPException(401, f"a valid token is needed to {_NEEDS[role]} (Authorization: Bearer TOKEN)",
                                headers={"WWW-Authenticate": "Bearer"})
        if granted < role:
            raise HTTPException(403, refusal(granted, role))

    return Depends(check)


class AuthMiddleware:
    """Refuses a request whose token does not allow its route, before its body is read."""

    def __init__(self, app: Any, policy: AccessPolicy, router: Any):
        self.app = app
        self.policy = policy
        self.router = router

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        needed = self.policy.required(method, route_template(self.router, scope))
        granted = self.policy.grant(header(scope, b"authorization")) if needed > Role.PUBLIC else Role.PUBLIC
        if granted is None or (needed > Role.PUBLIC and granted == Role.PUBLIC):
            what = "a token is needed" if granted == Role.PUBLIC else "the token is not valid"
            await send_error(send, scope, 401, "unauthorized",
                             f"{what} to {_NEEDS[needed]} (Authorization: Bearer TOKEN)",
                             [(b"www-authenticate", b"Bearer")])
            return
        if granted < needed:
            await send_error(send, scope, 403, "forbidden", refusal(granted, needed))
            return
        scope[ROLE_KEY] = granted
        await self.app(scope, receive, send)


def is_loopback(host: str) -> bool:
    """Whether a listen address reaches only this machine (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve_open_reads(host: str, open_reads: bool, private_reads: bool, read_token: str | None) -> bool | None:
    """`vqscope serve`'s read rule: open on a loopback address, private elsewhere, unless told.

    --open-reads / --private-reads decide; a read token closes reads; otherwise reads stay open
    (None: the config's default) only where the server listens on a loopback address.
    """
    if open_reads and read_token:
        raise ConfigError("--open-reads contradicts --read-token (a read token makes reads need a token)")
    if open_reads:
        return True
    if private_reads or read_token:
        return False
    return None if is_loopback(host) else False
