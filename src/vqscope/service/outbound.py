"""Outbound HTTP for URL jobs and webhooks: only to addresses the operator allows, pinned, bounded.

A URL job or a webhook makes the server send a request on a client's behalf. Without a check,
anyone holding the write token could have it read the cloud metadata service, an admin page on
localhost or a database on the private network (server-side request forgery). Checking a host
name and then letting an HTTP library resolve it again is not enough: a DNS server can answer
a public address to the check and 127.0.0.1 to the connection (DNS rebinding). So here each
hop is resolved exactly once, every address the name resolves to is checked, and the socket
is connected to that very checked address. The URL's host name still goes into the Host
header and, for https, into SNI and certificate verification, so pinning changes nothing a
server can see. Redirects are followed here, hop by hop (at most `max_redirects`), each one
resolved and checked again.

By default only globally routable unicast addresses are reached: loopback, private, link-
local, shared (carrier-grade NAT), multicast, reserved and unspecified addresses are refused,
also when written as IPv4-mapped, 6to4 or NAT64 IPv6 addresses, in octal or integer spellings,
or when only one of a name's several addresses is one of them. An operator who needs internal
fetches allows networks or host names explicitly (`--allow-fetch`).

A whole exchange has a deadline, not only a per-read timeout: a watchdog shuts the socket down
when it passes, so a server that sends a byte every few seconds cannot hold a worker.

Proxies are not used (HTTP_PROXY and friends are ignored): through a proxy the address that
is finally reached is not ours to check.
"""

from __future__ import annotations

import base64
import functools
import http.client
import ipaddress
import logging
import re
import socket
import ssl
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping
from urllib.parse import quote, unquote, urljoin, urlsplit

from ..errors import ConfigError, VQScopeError
from .redact import redact_url, redact_webhook

log = logging.getLogger("vqscope.service")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_CHARS = 8192
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")
_HOST_CHARS = re.compile(r"^[a-z0-9_.-]+$")
_HOST_PATTERN = re.compile(r"^(\*\.)?([a-z0-9_-]+\.)*[a-z0-9_-]+$")
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_PATH_SAFE = "/%:@!$&'()*+,;=-._~?"


# -- errors -------------------------------------------------------------------------------------
class OutboundError(VQScopeError):
    """An outbound request failed: HTTP error status, timeout, refused connection, ..."""

    exit_code = 2
    kind = "download_failed"


class BadURLError(OutboundError):
    """The URL itself is unusable (scheme, host, port, characters)."""

    kind = "bad_source"


class AddressNotAllowedError(OutboundError):
    """The URL's host is, or resolves to, an address this server does not send requests to."""

    kind = "address_not_allowed"


# -- which addresses ----------------------------------------------------------------------------
def non_public_kind(ip: IPAddress) -> str | None:
    """Why `ip` is not a public unicast address ("loopback", "private", ...), or None if it is one.

    `is_global` is the base, with what it misses added: multicast (global in its sense),
    IPv6 site-local, and IPv4 addresses inside IPv6 ones (mapped, 6to4, NAT64), which reach
    the IPv4 address they hold.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            kind = non_public_kind(inner)
            return f"{kind} (inside an IPv6 address)" if kind else None
        if ip.is_site_local:
            return "site-local"
    for test, kind in ((lambda a: a.is_unspecified, "unspecified"), (lambda a: a.is_loopback, "loopback"),
                       (lambda a: a.is_link_local, "link-local"), (lambda a: a.is_multicast, "multicast"),
                       (lambda a: a.version == 4 and a in _SHARED, "shared (carrier-grade NAT)"),
                       (lambda a: a.is_private, "private"), (lambda a: a.is_reserved, "reserved")):
        if test(ip):
            return kind
    return None if ip.is_global else "non-public"


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _host_pattern(entry: str) -> str:
    try:
        host = entry.strip().rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        host = ""
    if not _HOST_PATTERN.match(host):
        raise ConfigError(f"--allow-fetch {entry!r}: give a network (10.0.0.0/8, 127.0.0.1/32, fd00::/8), "
                          "a host name (files.internal) or a domain (*.corp.example)")
    return host


@dataclass(frozen=True)
class FetchPolicy:
    """Where outbound requests may go: public addresses, plus what the operator allows."""

    allow_nets: tuple[IPNetwork, ...] = ()
    allow_hosts: tuple[str, ...] = ()  # exact names, or "*.example.com" for names under example.com
    any_address: bool = False  # no address check at all (`vqscope batch`: the list is the operator's own)
    max_redirects: int = 5

    @classmethod
    def from_entries(cls, entries: Iterable[str], max_redirects: int = 5) -> FetchPolicy:
        """`--allow-fetch` values: networks in CIDR form (a bare address is one host) or host names."""
        nets: list[IPNetwork] = []
        hosts: list[str] = []
        for entry in entries:
            text = str(entry).strip()
            try:
                nets.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                hosts.append(_host_pattern(text))
        return cls(tuple(nets), tuple(hosts), max_redirects=max_redirects)

    @classmethod
    def unrestricted(cls, max_redirects: int = 5) -> FetchPolicy:
        return cls(any_address=True, max_redirects=max_redirects)

    def host_allowed(self, host: str) -> bool:
        host = host.rstrip(".").lower()
        return any(host.endswith(p[1:]) if p.startswith("*.") else host == p for p in self.allow_hosts)

    def refusal(self, host: str, ip: IPAddress) -> str | None:
        """None if a connection to `ip` (for `host`) is allowed, else the kind of address it is."""
        if self.any_address or self.host_allowed(host):
            return None
        forms = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and _embedded_ipv4(ip) is not None:
            forms.append(_embedded_ipv4(ip))
        if any(form in net for form in forms for net in self.allow_nets):
            return None
        return non_public_kind(ip)


# -- URLs -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """One URL taken apart: where to connect and what to ask for."""

    scheme: str
    host: str  # ASCII (IDNA), lower case, no brackets
    port: int
    path: str  # the request target: path and query, percent-encoded ASCII
    authorization: str | None  # from user:password@ in the URL

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def default_port(self) -> int:
        return 443 if self.tls else 80

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port


def parse_target(url: str) -> Target:
    """An http(s) URL with a host, or a `BadURLError` saying what is wrong with it."""
    if not isinstance(url, str) or not url:
        raise BadURLError("give an http:// or https:// URL", None)
    shown = redact(url)
    if len(url) > MAX_URL_CHARS:
        raise BadURLError(f"{shown}: a URL of more than {MAX_URL_CHARS} characters", None)
    if _CONTROL_OR_SPACE.search(url) or "\\" in url:
        raise BadURLError(f"{shown}: a URL may not hold spaces, control characters or backslashes", None)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadURLError(f"{shown}: not a valid URL ({exc})", None) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BadURLError(f"{shown}: only http:// and https:// URLs can be fetched", None)
    host = _ascii_host(parts.hostname or "", shown)
    if port == 0:
        raise BadURLError(f"{shown}: port 0 is not a port to fetch from", None)
    path = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        path += "?" + quote(parts.query, safe=_PATH_SAFE)
    authorization = None
    if parts.username is not None or parts.password is not None:
        pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}".encode("utf-8")
        authorization = "Basic " + base64.b64encode(pair).decode("ascii")
    return Target(scheme, host, port or (443 if scheme == "https" else 80), path, authorization)


def _ascii_host(host: str, shown: str) -> str:
    if not host:
        raise BadURLError(f"{shown}: the URL names no host", None)
    if ":" in host:  # an IPv6 literal (urlsplit took the brackets off)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise BadURLError(f"{shown}: {host!r} is not a valid IPv6 address", None) from None
        return host
    try:
        ascii_host = host.rstrip(".").encode("idna").decode("ascii").lower() if not host.isascii() else host
    except UnicodeError:
        raise BadURLError(f"{shown}: {host!r} is not a valid host name", None) from None
    if not _HOST_CHARS.match(ascii_host):
        raise BadURLError(f"{shown}: {host!r} is not a valid host name", None)
    return ascii_host


def redact(url: str, keep_path: bool = True) -> str:
    """A URL as errors and logs show it (redact.py's rule: no credentials, no query; no path
    either for webhooks, whose path is often their secret), printable and cut short."""
    shown = redact_url(str(url)) if keep_path else str(redact_webhook(str(url)))
    shown = _CONTROL_OR_SPACE.sub("?", shown)
    return shown if len(shown) <= 200 else shown[:199] + "…"


def literal_addresses(host: str) -> list[IPAddress]:
    """The addresses a host stands for without asking DNS: IP literals in any spelling the
    system resolver accepts (0177.0.0.1, 2130706433, 0x7f.1, ::ffff:7f00:1) and localhost."""
    if ":" in host:
        try:
            return [ipaddress.IPv6Address(host)]
        except ValueError:
            return []
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return [ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1")]
    try:
        return [ipaddress.IPv4Address(socket.inet_aton(host))]
    except (OSError, ValueError):
        return []


def check_target(url: str, policy: FetchPolicy) -> Target:
    """Refuse at once what can be refused without DNS (used when a job or rule is submitted);
    the check that counts is the one on every connection (`open_url`)."""
    target = parse_target(url)
    for ip in literal_addresses(target.host):
        kind = policy.refusal(target.host, ip)
        if kind:
            raise AddressNotAllowedError(_refused(redact(url), target.host, ip, kind, literal=True), None)
    return target


def _refused(shown: str, host: str, ip: IPAddress, kind: str, literal: bool) -> str:
    # The address itself is named only when the client wrote it: telling which internal address
    # a name resolves to would map the private network for whoever asks.
    what = f"{ip} is a {kind} address" if literal else f"{host} resolves to a {kind} address"
    return (f"{shown}: {what}; this server sends requests only to public addresses "
            "(its operator can allow others with --allow-fetch)")


# -- resolving once ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Address:
    """One checked socket address: the only place a connection for its hop may go."""

    family: int
    sockaddr: tuple
    ip: IPAddress


def checked_addresses(target: Target, policy: FetchPolicy, shown: str) -> list[Address]:
    """Resolve `target.host` once; all of its addresses must be allowed (a name that answers a
    public and a private address is refused: which one a client library would pick is luck)."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise OutboundError(f"{shown}: cannot resolve {target.host} ({exc.strerror or exc})", None) from None
    except (UnicodeError, OSError) as exc:
        raise OutboundError(f"{shown}: cannot resolve {target.host} ({exc})", None) from None
    literal = bool(literal_addresses(target.host))
    found: list[Address] = []
    for family, _type, _proto, _canon, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        kind = policy.refusal(target.host, ip)
        if kind:
            log.info("refused an outbound request to %s: %s is %s", shown, ip, kind)
            raise AddressNotAllowedError(_refused(shown, target.host, ip, kind, literal), None)
        if all(a.sockaddr != sockaddr for a in found):
            found.append(Address(family, tuple(sockaddr), ip))
    if not found:
        raise OutboundError(f"{shown}: {target.host} has no IPv4 or IPv6 address", None)
    return found


# -- the deadline -----------------------------------------------------------------------------------
class Deadline:
    """A whole exchange's time limit, and the per-operation (idle) timeout within it.

    Socket timeouts bound each operation only; a peer that trickles bytes resets them forever.
    A timer therefore shuts the connection down when the deadline passes, which wakes a blocked
    handshake or read at once. It acts on duplicates of the sockets' descriptors that only
    this object opens and closes (under its lock), so a late timer can never touch a
    descriptor that http.client closed and the system handed to someone else since.
    """

    def __init__(self, seconds: float, idle_s: float):
        self.seconds = float(seconds)
        self.idle_s = float(idle_s)
        self._end = time.monotonic() + self.seconds
        self._lock = threading.Lock()
        self._guards: list[socket.socket] = []
        self.expired = False
        self._timer = threading.Timer(max(self.seconds, 0.0), self._expire)
        self._timer.daemon = True
        self._timer.start()

    def step(self) -> float:
        """The timeout for the next socket operation (raises once the deadline has passed)."""
        left = self._end - time.monotonic()
        if left <= 0 or self.expired:
            self.expired = True
            raise TimeoutError("deadline passed")
        return max(min(self.idle_s, left), 0.001)

    @property
    def passed(self) -> bool:
        """Whether the deadline has passed (a socket timeout cut to the time left counts too)."""
        return self.expired or time.monotonic() >= self._end - 0.005

    def guard(self, sock: socket.socket) -> socket.socket:
        """Watch `sock`'s connection (through a duplicate descriptor, returned for `release`)."""
        dup = sock.dup()
        with self._lock:
            if self.expired:
                _shutdown(dup)
            self._guards.append(dup)
        return dup

    def release(self, guard: socket.socket | None) -> None:
        with self._lock:
            if guard is not None and any(g is guard for g in self._guards):
                self._guards = [g for g in self._guards if g is not guard]
                guard.close()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for guard in self._guards:
                _shutdown(guard)

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            for guard in self._guards:
                guard.close()
            self._guards = []


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


# -- pinned connections -----------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def default_tls_context() -> ssl.SSLContext:
    """Certificates verified against the system's trust store, host names checked."""
    return ssl.create_default_context()


class PinnedConnection(http.client.HTTPConnection):
    """HTTP or HTTPS to one checked socket address, whatever the host name resolves to now.

    http.client writes the Host header from `host`; for https the socket is wrapped with
    `server_hostname=host`, which sets SNI and has the certificate checked against that name.
    """

    def __init__(self, target: Target, address: Address, deadline: Deadline, tls_context: ssl.SSLContext | None):
        super().__init__(target.host, target.port, timeout=deadline.idle_s)
        self.default_port = target.default_port  # Host: name, not name:443
        self.target = target
        self.address = address
        self.deadline = deadline
        self.tls_context = tls_context
        self.guard: socket.socket | None = None
        self.pinned: socket.socket | None = None  # kept after http.client hands the socket to the response

    def connect(self) -> None:
        sock = socket.socket(self.address.family, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.deadline.step())
            self.guard = self.deadline.guard(sock)
            sock.connect(self.address.sockaddr)
            if self.target.tls:
                context = self.tls_context or default_tls_context()
                sock = context.wrap_socket(sock, server_hostname=self.target.host, do_handshake_on_connect=False)
                sock.settimeout(self.deadline.step())
                sock.do_handshake()
        except BaseException:
            sock.close()
            raise
        self.sock = self.pinned = sock

    def release(self) -> None:
        """Close the connection for good (http.client's close() may leave the socket to its response)."""
        self.close()
        self.deadline.release(self.guard)


class Response:
    """An answer being read: status, headers, and `read(n)` that keeps to the deadline."""

    def __init__(self, raw: http.client.HTTPResponse, conn: PinnedConnection, url: str, shown: str):
        self.raw = raw
        self.conn = conn
        self.url = url  # after redirects
        self.shown = shown
        self.status = raw.status
        self.reason = _printable(raw.reason)
        self.headers = raw.headers
        self.received = 0

    def read(self, n: int = 1 << 20) -> bytes:
        """At most `n` bytes (b"" at the end); an answer cut short or too slow raises."""
        deadline = self.conn.deadline
        with _failures(self.shown, deadline):
            sock = self.conn.pinned
            if sock is not None and sock.fileno() != -1:
                sock.settimeout(deadline.step())
            block = self.raw.read1(n)
            if deadline.expired:
                raise TimeoutError("deadline passed")
        self.received += len(block)
        if not block and self.raw.length:  # http.client's read1 does not flag a short body itself
            raise OutboundError(f"{self.shown}: the connection closed after {self.received} bytes, "
                                f"{self.raw.length} short of the length announced", None)
        return block


def _printable(text: str | None) -> str:
    return _CONTROL_OR_SPACE.sub(" ", text or "").strip()[:100]


@contextmanager
def _failures(shown: str, deadline: Deadline) -> Iterator[None]:
    """Network and protocol failures as one-line `OutboundError`s."""
    try:
        yield
    except OutboundError:
        raise
    except Exception as exc:
        if deadline.passed:
            raise OutboundError(f"{shown}: no complete answer within {deadline.seconds:g} s", None) from None
        if isinstance(exc, ssl.SSLCertVerificationError):
            raise OutboundError(f"{shown}: TLS certificate not accepted ({exc.verify_message})", None) from None
        if isinstance(exc, (TimeoutError, socket.timeout)):
            raise OutboundError(f"{shown}: timed out (nothing received for {deadline.idle_s:g} s)", None) from None
        if isinstance(exc, http.client.HTTPException):
            raise OutboundError(f"{shown}: not a valid HTTP answer ({type(exc).__name__})", None) from None
        if isinstance(exc, (OSError, ssl.SSLError)):
            raise OutboundError(f"{shown}: {getattr(exc, 'strerror', None) or exc}", None) from None
        raise


@contextmanager
def open_url(
    url: str,
    policy: FetchPolicy,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    deadline_s: float = 300.0,
    idle_s: float = 30.0,
    follow_redirects: bool = True,
    shown: str | None = None,
    tls_context: ssl.SSLContext | None = None,
) -> Iterator[Response]:
    """Send one request (following GET redirects, each hop checked) and yield the final answer.

    Every hop: parse, resolve once, check every address, connect to a checked one. Redirects
    go at most `policy.max_redirects` deep; credentials from the URL are not carried to
    another origin. The deadline covers all hops and the reading of the body.
    """
    shown = shown or redact(url)
    deadline = Deadline(deadline_s, min(idle_s, deadline_s))
    conn: PinnedConnection | None = None
    try:
        current, first_origin = url, parse_target(url).origin
        for _hop in range(policy.max_redirects + 1):
            target = parse_target(current)
            hop_shown = shown if current == url else f"{shown} (redirected to {redact(current)})"
            addresses = checked_addresses(target, policy, hop_shown)
            send = {"User-Agent": "vqscope", "Connection": "close", **(headers or {})}
            if target.authorization and target.origin == first_origin:
                send.setdefault("Authorization", target.authorization)
            conn, raw = _exchange(target, addresses, method, body, send, deadline, hop_shown, tls_context)
            location = raw.getheader("Location")
            if follow_redirects and method in ("GET", "HEAD") and raw.status in _REDIRECTS and location:
                raw.close()
                conn.release()
                conn = None
                current = urljoin(current, location.strip())
                parse_target(current)  # a redirect to ftp:// or to no host is refused like a URL
                continue
            yield Response(raw, conn, current, hop_shown)
            return
        raise OutboundError(f"{shown}: more than {policy.max_redirects} redirects", None)
    finally:
        deadline.close()
        if conn is not None:
            conn.release()


def _exchange(target: Target, addresses: list[Address], method: str, body: bytes | None, headers: dict[str, str],
              deadline: Deadline, shown: str, tls_context: ssl.SSLContext | None,
              ) -> tuple[PinnedConnection, http.client.HTTPResponse]:
    """Connect to the first checked address that answers, send, and read the status and headers."""
    with _failures(shown, deadline):
        last: BaseException | None = None
        for address in addresses:
            conn = PinnedConnection(target, address, deadline, tls_context)
            try:
                conn.connect()
            except (ConnectionError, OSError) as exc:
                conn.release()
                if deadline.passed or isinstance(exc, ssl.SSLError):
                    raise
                last = exc
                continue
            try:
                conn.request(method, target.path, body=body, headers=headers)
                conn.pinned.settimeout(deadline.step())
                return conn, conn.getresponse()
            except BaseException:
                conn.release()
                raise
        assert last is not None
        raise last
