"""Outbound requests (URL jobs, webhooks) and server paths: only what the operator allows.

Network rule for these tests: only 127.0.0.1 and ::1 ever receive traffic. Every test runs
with `socket.socket.connect` wrapped so that a connection to any other address fails the test
before it is made, and names other than IP literals are answered by a stub resolver (`dns`),
never by a real DNS server.
"""

from __future__ import annotations

import http.server
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import unquote

import pytest
from service_support import AUTH, TOKEN, TestClient, tiny_model_file, wait_until

from vqscope.errors import ConfigError, InputNotFoundError
from vqscope.service.alerts import AlertMonitor, AlertRule, post_json
from vqscope.service.config import ServiceConfig
from vqscope.service.outbound import (
    AddressNotAllowedError,
    BadURLError,
    FetchPolicy,
    OutboundError,
    non_public_kind,
    open_url,
)
from vqscope.service.sources import (
    BadPathError,
    NotARegularFileError,
    PathNotAllowedError,
    TooLargeError,
    check_path,
    check_url,
    download,
)

LOOPBACK = FetchPolicy.from_entries(["127.0.0.1/32"])


# -- the network rule ---------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def connects(monkeypatch) -> list[tuple]:
    """Every connect() of this test; one to anything but loopback fails the test instead."""
    seen: list[tuple] = []
    real = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> Any:
        seen.append(tuple(address) if isinstance(address, tuple) else (address,))
        if not isinstance(address, tuple) or address[0] not in ("127.0.0.1", "::1"):
            raise AssertionError(f"a connection to {address!r} was attempted")
        return real(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen


class StubDNS:
    """Answers for made-up names; IP literals resolve as usual, any other name fails (no DNS)."""

    def __init__(self) -> None:
        self.answers: dict[str, Callable[[], list[str]] | list[str]] = {}
        self.calls: list[str] = []

    def getaddrinfo(self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0):
        name = host.decode() if isinstance(host, bytes) else str(host)
        self.calls.append(name)
        if name in self.answers:
            answer = self.answers[name]
            ips = answer() if callable(answer) else answer
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, int(port), 0, 0)) if ":" in ip
                    else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, int(port))) for ip in ips]
        return _real_getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)


_real_getaddrinfo = socket.getaddrinfo


@pytest.fixture(autouse=True)
def dns(monkeypatch) -> StubDNS:
    stub = StubDNS()
    monkeypatch.setattr(socket, "getaddrinfo", stub.getaddrinfo)
    return stub


# -- a local server with the behaviours the tests need --------------------------------------------
class Origin:
    """An HTTP server on 127.0.0.1 (or ::1) whose paths do odd things on purpose."""

    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None):
        self.requests: list[dict[str, Any]] = []
        self.trickles: list[str] = []  # how each trickle ended: "cut" (the client hung up) or "sent"
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                origin.requests.append({"path": self.path, "host": self.headers.get("Host"),
                                        "authorization": self.headers.get("Authorization")})
                origin.route(self)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                origin.requests.append({"path": self.path, "host": self.headers.get("Host"), "body": json.loads(body)})
                origin.route(self)

        class Server(http.server.ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
            daemon_threads = True

        self.httpd = Server((host, 0), Handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.base = f"{'https' if tls else 'http'}://{f'[{host}]' if ':' in host else host}:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def route(self, h: http.server.BaseHTTPRequestHandler) -> None:
        path, _, query = h.path.partition("?")
        if path == "/v.bin":
            return self._send(h, 200, b"V" * 3000)
        if path.startswith("/hops/"):
            n = int(path.rsplit("/", 1)[1])
            return self._send(h, 200, b"end of chain") if n == 0 else self._redirect(h, f"/hops/{n - 1}")
        if path == "/loop":
            return self._redirect(h, "/loop")
        if path == "/to":
            return self._redirect(h, unquote(query))
        if path == "/status/500":
            return self._send(h, 500, b"no")
        if path == "/hook-moved":
            return self._redirect(h, "/hook")
        if path.startswith("/hook"):
            return self._send(h, 204, b"")
        if path == "/no-length":  # HTTP/1.0: the body ends when the connection closes
            h.send_response(200)
            h.end_headers()
            h.wfile.write(b"x" * 3000)
            return None
        if path == "/short":
            h.send_response(200)
            h.send_header("Content-Length", "1000")
            h.end_headers()
            h.wfile.write(b"x" * 500)
            return None
        if path == "/huge":
            h.send_response(200)
            h.send_header("Content-Length", str(10**12))
            h.end_headers()
            return None
        if path in ("/trickle", "/trickle-head"):
            return self.trickles.append(self._trickle(h, head=path == "/trickle-head"))
        return self._send(h, 404, b"not here")

    @staticmethod
    def _send(h: http.server.BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        h.send_response(status)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    @staticmethod
    def _redirect(h: http.server.BaseHTTPRequestHandler, location: str) -> None:
        h.send_response(302)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()

    @staticmethod
    def _trickle(h: http.server.BaseHTTPRequestHandler, head: bool) -> str:
        """One byte every 0.05 s (20 s in all): never a timeout per read, done only if the client waits."""
        data = b"HTTP/1.0 200 OK\r\nX-Slow: " + b"a" * 400 if head else b"b" * 400
        if not head:
            h.send_response(200)
            h.send_header("Content-Length", "400")
            h.end_headers()
            h.wfile.flush()
        try:
            for i in range(len(data)):
                h.wfile.write(data[i:i + 1])
                h.wfile.flush()
                time.sleep(0.05)
        except OSError:
            return "cut"
        return "sent"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def origin() -> Iterator[Origin]:
    server = Origin()
    yield server
    server.close()


# -- which addresses are public ------------------------------------------------------------------
NON_PUBLIC = ["0.0.0.0", "127.0.0.1", "127.255.255.254", "10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1",
              "100.127.255.254", "169.254.169.254", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
              "192.0.2.1", "198.18.0.1", "::", "::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
              "::ffff:0.0.0.0", "fe80::1", "fc00::1", "fd12:3456::1", "fec0::1", "ff02::1", "ff0e::1",
              "2002:7f00:1::1", "2002:a00:1::", "64:ff9b::a00:1", "64:ff9b::7f00:1", "2001:db8::1", "100::1",
              "::127.0.0.1"]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808",
          "2002:808:808::1"]


@pytest.mark.parametrize("address", NON_PUBLIC)
def test_non_public_addresses_are_named(address):
    assert non_public_kind(ipaddress.ip_address(address)) is not None
    assert FetchPolicy().refusal("example.com", ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address):
    assert FetchPolicy().refusal("example.com", ipaddress.ip_address(address)) is None


def test_the_allow_list_takes_networks_addresses_and_names():
    policy = FetchPolicy.from_entries(["10.0.0.0/8", "127.0.0.1", "fd00::/8", "files.internal", "*.corp.example"])
    ip = ipaddress.ip_address
    assert policy.refusal("x", ip("10.200.0.1")) is None
    assert policy.refusal("x", ip("::ffff:10.200.0.1")) is None  # the same host, written as IPv6
    assert policy.refusal("x", ip("127.0.0.1")) is None
    assert policy.refusal("x", ip("127.0.0.2")) == "loopback"
    assert policy.refusal("x", ip("fd00::5")) is None
    assert policy.refusal("x", ip("192.168.0.1")) == "private"
    assert policy.refusal("files.internal", ip("192.168.0.1")) is None
    assert policy.refusal("FILES.internal.", ip("192.168.0.1")) is None
    assert policy.refusal("a.b.corp.example", ip("172.16.0.9")) is None
    assert policy.refusal("corp.example", ip("172.16.0.9")) == "private"
    assert policy.refusal("evilcorp.example", ip("172.16.0.9")) == "private"
    for bad in ["10.0.0.0/33", "http://x", "a b", "", "*"]:
        with pytest.raises(ConfigError):
            FetchPolicy.from_entries([bad])


# -- URLs at submission --------------------------------------------------------------------------
@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://0177.0.0.1/", "http://2130706433/", "http://0x7f.1/", "http://127.1:8080/x",
    "http://0.0.0.0/", "http://0/", "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/",
    "http://[::]/", "http://localhost:8000/", "http://api.localhost/", "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/", "https://[fe80::1]/", "http://100.64.1.1/", "http://[2002:7f00:1::]/",
])
def test_internal_literals_are_refused_at_submission_without_dns(url, dns, connects):
    with pytest.raises(AddressNotAllowedError) as caught:
        check_url(url, policy=FetchPolicy())
    assert caught.value.kind == "address_not_allowed" and "--allow-fetch" in caught.value.message
    assert dns.calls == [] and connects == []


@pytest.mark.parametrize("url", ["http://", "http:///x", "https://:80/", "ftp://example.com/x.mp4",
                                 "file:///etc/passwd", "http://a b/", "http://x:99999/", "http://x:0/", "javascript:alert(1)",
                                 "http://ex\\ample.com/", "http://exa_mple.com\x00/", "http://[zz::1]/"])
def test_malformed_urls_are_bad_sources(url):
    with pytest.raises(BadURLError) as caught:
        check_url(url, policy=FetchPolicy())
    assert caught.value.kind == "bad_source"


def test_public_and_allowed_urls_pass_submission(dns):
    signed = "https://videos.example.com/a.mp4?sig=1"
    assert check_url(signed, policy=FetchPolicy()) == signed
    assert check_url("http://93.184.216.34/a.mp4", policy=FetchPolicy())
    assert check_url("http://127.0.0.1:9/a.mp4", policy=LOOPBACK)
    assert dns.calls == []  # names are resolved when fetched, not when submitted


# -- every connection checked, pinned -------------------------------------------------------------
def test_a_name_with_any_internal_address_is_refused_before_connecting(tmp_path, dns, connects):
    dns.answers["videos.example.com"] = ["93.184.216.34", "10.0.0.7"]
    dns.answers["mapped.example.com"] = ["::ffff:127.0.0.1"]
    dns.answers["meta.example.com"] = ["169.254.169.254"]
    for name in dns.answers:
        with pytest.raises(AddressNotAllowedError) as caught:
            download(f"https://{name}/v.mp4", tmp_path, "job", 10_000)
        assert name in caught.value.message
        assert "10.0.0.7" not in caught.value.message and "169.254" not in caught.value.message  # no map of the inside
    assert connects == []
    assert list(tmp_path.iterdir()) == []


def test_loopback_is_fetched_only_when_allowed(origin, tmp_path, connects):
    url = f"{origin.base}/v.bin"
    with pytest.raises(AddressNotAllowedError):
        download(url, tmp_path, "refused", 10_000)
    assert connects == [] and origin.requests == []
    got = download(url, tmp_path, "allowed", 10_000, policy=LOOPBACK)
    assert got.read_bytes() == b"V" * 3000 and got.name == "allowed.bin"
    assert connects == [("127.0.0.1", origin.port)]


def test_ipv6_loopback_needs_its_own_allowance(tmp_path, connects):
    try:
        server = Origin("::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        url = f"{server.base}/v.bin"
        with pytest.raises(AddressNotAllowedError):
            download(url, tmp_path, "a", 10_000, policy=LOOPBACK)  # 127.0.0.1/32 does not cover ::1
        assert download(url, tmp_path, "b", 10_000, policy=FetchPolicy.from_entries(["::1/128"])).stat().st_size == 3000
        assert server.requests[0]["host"] == f"[::1]:{server.port}"
    finally:
        server.close()


def test_the_connection_goes_to_the_checked_address_when_the_name_rebinds(origin, tmp_path, dns, connects):
    answers = iter([["127.0.0.1"]])
    dns.answers["rebind.example"] = lambda: next(answers, ["10.9.9.9"])  # first the checked answer, then inside
    got = download(f"http://rebind.example:{origin.port}/v.bin", tmp_path, "pinned", 10_000, policy=LOOPBACK)
    assert got.read_bytes() == b"V" * 3000
    assert dns.calls.count("rebind.example") == 1  # resolved once: nothing asked DNS again before connecting
    assert connects == [("127.0.0.1", origin.port)]
    assert origin.requests[0]["host"] == f"rebind.example:{origin.port}"  # the name still goes in Host


def test_each_redirect_is_resolved_and_checked_again(origin, tmp_path, dns, connects):
    dns.answers["internal.example"] = ["10.0.0.5"]
    follow = {"policy": LOOPBACK}
    assert download(f"{origin.base}/hops/3", tmp_path, "ok", 1000, **follow).read_bytes() == b"end of chain"
    for location in ["http://internal.example/x", "http://[::1]:9/x", "http://0177.0.0.2:9/x",
                     "http://169.254.169.254/latest/meta-data/"]:
        with pytest.raises(AddressNotAllowedError) as caught:
            download(f"{origin.base}/to?{location}", tmp_path, "no", 1000, **follow)
        assert "redirected to" in caught.value.message
    assert all(c[0] == "127.0.0.1" for c in connects)
    assert ("10.0.0.5", 80) not in connects
    with pytest.raises(OutboundError, match="more than 5 redirects"):
        download(f"{origin.base}/loop", tmp_path, "loop", 1000, **follow)
    with pytest.raises(OutboundError, match="more than 5 redirects"):
        download(f"{origin.base}/hops/6", tmp_path, "long", 1000, **follow)
    with pytest.raises(BadURLError):
        download(f"{origin.base}/to?file:///etc/passwd", tmp_path, "file", 1000, **follow)
    assert list(tmp_path.iterdir()) == [tmp_path / "ok"]


def test_a_redirect_to_loopback_from_an_allowed_host_is_refused(origin, tmp_path, dns, connects):
    """An allowed internal host cannot hand the fetch on to loopback."""
    dns.answers["files.internal"] = ["127.0.0.1"]
    policy = FetchPolicy.from_entries(["files.internal"])
    url = f"http://files.internal:{origin.port}/to?http://127.0.0.1:{origin.port}/v.bin"
    with pytest.raises(AddressNotAllowedError, match="127.0.0.1 is a loopback address"):
        download(url, tmp_path, "x", 10_000, policy=policy)
    assert len(origin.requests) == 1


def test_credentials_in_the_url_go_to_their_origin_only(origin, tmp_path, dns):
    dns.answers["other.example"] = ["127.0.0.1"]
    policy = FetchPolicy.from_entries(["127.0.0.1/32", "other.example"])
    download(f"http://user:secret@127.0.0.1:{origin.port}/to?http://other.example:{origin.port}/v.bin", tmp_path, "a",
             10_000, policy=policy)
    assert origin.requests[0]["authorization"].startswith("Basic ")
    assert origin.requests[1]["authorization"] is None


# -- https: pinned address, checked name ----------------------------------------------------------
@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=videos.test",
                    "-addext", "subjectAltName=DNS:videos.test"], check=True, capture_output=True, timeout=60)
    return cert, key


def test_https_connects_to_the_checked_address_with_the_name_in_sni_and_host(certificate, dns, connects):
    cert, key = certificate
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    sni: list[str | None] = []
    server_tls.sni_callback = lambda _sock, name, _ctx: sni.append(name)
    server = Origin(tls=server_tls)
    client_tls = ssl.create_default_context(cafile=str(cert))
    try:
        dns.answers["videos.test"] = ["127.0.0.1"]
        dns.answers["impostor.test"] = ["127.0.0.1"]
        policy = FetchPolicy.from_entries(["videos.test", "impostor.test"])
        with open_url(f"https://videos.test:{server.port}/v.bin", policy, tls_context=client_tls) as response:
            assert response.status == 200 and response.read(10_000) == b"V" * 3000
        assert sni == ["videos.test"] and server.requests[0]["host"] == f"videos.test:{server.port}"
        assert connects == [("127.0.0.1", server.port)]
        # the certificate is checked against the URL's name, not the address connected to
        impostor = f"https://impostor.test:{server.port}/v.bin"
        with pytest.raises(OutboundError, match="certificate"), open_url(impostor, policy, tls_context=client_tls):
            pass
        # and a name not allowed is refused before any handshake
        strict = FetchPolicy()
        with pytest.raises(AddressNotAllowedError), open_url(f"https://videos.test:{server.port}/v.bin", strict):
            pass
        assert len(server.requests) == 1
    finally:
        server.close()


# -- time and size ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/trickle", "/trickle-head"])
def test_a_trickling_server_is_cut_off_at_the_deadline(origin, tmp_path, path):
    # a byte every 0.05 s never trips the 5 s per-read timeout; the 0.5 s deadline ends it
    with pytest.raises(OutboundError, match=r"no complete answer within 0\.5 s"):
        download(f"{origin.base}{path}", tmp_path, "slow", 10_000, timeout=5, deadline_s=0.5, policy=LOOPBACK)
    assert list(tmp_path.iterdir()) == []  # no file, no .part
    # the connection was cut while the server still had bytes to trickle, not after it gave up
    assert wait_until(lambda: origin.trickles, 30, what="the trickle to end") == ["cut"]


def test_the_size_limit_holds_while_streaming(origin, tmp_path):
    with pytest.raises(TooLargeError):
        download(f"{origin.base}/no-length", tmp_path, "a", 1000, policy=LOOPBACK)
    with pytest.raises(TooLargeError, match="1000000000000 bytes"):
        download(f"{origin.base}/huge", tmp_path, "b", 1000, policy=LOOPBACK)
    assert download(f"{origin.base}/no-length", tmp_path, "c", 3000, policy=LOOPBACK).stat().st_size == 3000
    with pytest.raises(OutboundError, match="closed after 500 bytes"):
        download(f"{origin.base}/short", tmp_path, "d", 10_000, policy=LOOPBACK)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_http_errors_are_typed_and_redacted(origin, tmp_path):
    with pytest.raises(OutboundError) as caught:
        download(f"http://me:pw@127.0.0.1:{origin.port}/absent.mp4?X-Amz-Signature=abc", tmp_path, "x", 10,
                 policy=LOOPBACK)
    assert caught.value.kind == "download_failed" and "HTTP 404" in caught.value.message
    assert "pw" not in caught.value.message and "abc" not in caught.value.message
    with pytest.raises(OutboundError, match="cannot resolve"):
        download("http://no-such-host.invalid/x", tmp_path, "x", 10, policy=LOOPBACK)


# -- webhooks ---------------------------------------------------------------------------------------
def test_webhooks_are_posted_only_where_allowed_and_not_redirected(origin, dns, connects):
    hook = f"{origin.base}/hook/T000/SECRET"
    assert post_json(hook, {"a": 1}, retries=1, policy=LOOPBACK) is None
    assert origin.requests[-1]["body"] == {"a": 1}
    refused = post_json(hook, {"a": 2}, retries=3)  # default policy: public only; refused at once, not retried
    assert refused is not None and "loopback" in refused and "SECRET" not in refused
    dns.answers["hooks.example.com"] = ["10.1.1.1"]
    inside = post_json("https://hooks.example.com/services/SECRET", {"a": 3}, retries=3)
    assert inside is not None and "private" in inside and "SECRET" not in inside
    moved = post_json(f"{origin.base}/hook-moved", {"a": 4}, retries=1, policy=LOOPBACK)
    assert moved is not None and "HTTP 302" in moved
    failed = post_json(f"{origin.base}/status/500", {"a": 5}, retries=1, policy=LOOPBACK)
    assert failed is not None and failed.endswith("HTTP 500 Internal Server Error")
    assert [r["path"] for r in origin.requests] == ["/hook/T000/SECRET", "/hook-moved", "/status/500"]
    assert all(c[0] == "127.0.0.1" for c in connects)


def test_the_alert_monitor_sends_under_its_policy(origin):
    allowed = AlertMonitor(store=None, fetch_policy=LOOPBACK)
    strict = AlertMonitor(store=None)
    assert allowed.notify(f"{origin.base}/hook", {"x": 1}) is None
    assert "loopback" in strict.notify(f"{origin.base}/hook", {"x": 2})
    assert len(origin.requests) == 1


@pytest.mark.parametrize("webhook", ["http://", "http:///x", "https://:443/", "ftp://hooks.example.com/x",
                                     "hooks.example.com/x", "http://a b/", "http://x:99999/"])
def test_rules_with_unusable_webhooks_are_refused(webhook):
    with pytest.raises(ValueError, match="webhook"):
        AlertRule(name="r", metric="failure_rate", threshold=0.5, webhook=webhook)


def test_rules_with_usable_webhooks_are_kept():
    for webhook in ["https://hooks.example.com/services/T/B/X", "http://127.0.0.1:9000/hook", "http://[::1]/x"]:
        assert AlertRule(name="r", metric="failure_rate", threshold=0.5, webhook=webhook).webhook == webhook


# -- server paths -----------------------------------------------------------------------------------
def test_paths_are_refused_unless_the_operator_enabled_them(tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    with pytest.raises(PathNotAllowedError, match="--path-root"):
        check_path(str(video), ())
    assert check_path(str(video), (tmp_path.resolve(),)) == str(video.resolve())
    assert check_path(str(video), None) == str(video.resolve())  # --any-path
    outside = tmp_path / "root"
    outside.mkdir()
    (outside / "link.mp4").symlink_to(video)
    with pytest.raises(PathNotAllowedError):
        check_path(str(outside / "link.mp4"), (outside.resolve(),))


@pytest.mark.parametrize("path", ["/tmp/a\x00b.mp4", "/" + "a" * 5000, "/tmp/" + "b" * 300 + ".mp4", "/tmp/\ud800.mp4"])
def test_impossible_paths_are_typed_errors(path):
    with pytest.raises(BadPathError) as caught:
        check_path(path, None)
    assert caught.value.kind == "bad_path" and len(caught.value.message) < 400


def test_only_regular_files_are_accepted(tmp_path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    with pytest.raises(NotARegularFileError):
        check_path(str(fifo), (tmp_path.resolve(),))  # decided by stat: never opened, so never blocks
    sock_path = tmp_path / "s.mp4"
    with socket.socket(socket.AF_UNIX) as unix:
        unix.bind(str(sock_path))
        with pytest.raises(NotARegularFileError):
            check_path(str(sock_path), None)
    with pytest.raises(NotARegularFileError):
        check_path("/dev/null", None)
    with pytest.raises(InputNotFoundError):
        check_path(str(tmp_path / "absent.mp4"), None)


# -- the service ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("paths")
    (folder / "a.mp4").write_bytes(b"not really a video")
    os.mkfifo(folder / "pipe.mp4")
    return folder


def service(root: Path, **options: Any) -> TestClient:
    from vqscope.service import create_app

    config = ServiceConfig(data_dir=root / "data", model=tiny_model_file(root), token=TOKEN, **options)
    return TestClient(create_app(config, background=False))


def test_a_default_service_refuses_paths_and_internal_urls(tmp_path, media, dns, connects):
    with service(tmp_path) as client:
        r = client.post("/api/jobs", json={"path": str(media / "a.mp4")}, headers=AUTH)
        assert r.status_code == 403 and r.json()["error"] == "path_not_allowed", r.text
        assert "--path-root" in r.json()["message"]
        batch = client.post("/api/batches", json={"items": [{"path": str(media / "a.mp4")}]}, headers=AUTH)
        assert batch.status_code == 403
        for url in ["http://127.0.0.1:9/v.mp4", "http://[::1]/v.mp4", "http://0177.0.0.1/", "http://169.254.169.254/x"]:
            r = client.post("/api/jobs", json={"url": url}, headers=AUTH)
            assert r.status_code in (403, 422) and r.json()["error"] == "address_not_allowed", r.text
        r = client.post("/api/jobs", json={"url": "http:///v.mp4"}, headers=AUTH)
        assert r.status_code == 422 and r.json()["error"] == "bad_source"
        ok = client.post("/api/jobs", json={"url": "https://videos.example.com/v.mp4"}, headers=AUTH)
        assert ok.status_code == 202  # a name: resolved and checked when the job runs
        assert client.get("/api/jobs").json()["total"] == 1
    assert connects == []


def test_a_service_with_a_path_root_checks_each_path(tmp_path, media):
    with service(tmp_path, path_roots=(media,)) as client:
        def post(path: str):
            return client.post("/api/jobs", json={"path": path}, headers=AUTH)

        assert post(str(media / "a.mp4")).status_code == 202
        # (the request schema may refuse a NUL or a long path first: invalid_request, also a 422)
        for path, kinds in [(str(media / "pipe.mp4"), {"not_a_regular_file"}),
                            (str(media / "a\x00.mp4"), {"bad_path", "invalid_request"}),
                            (str(media / ("x" * 5000)), {"bad_path", "invalid_request"}),
                            (str(media / "absent.mp4"), {"not_found"})]:
            r = post(path)
            assert r.status_code == 422 and r.json()["error"] in kinds, r.text
        r = post("/etc/passwd")
        assert r.status_code == 403 and r.json()["error"] == "path_not_allowed"


def test_a_service_allowing_loopback_fetches_from_it(tmp_path):
    with service(tmp_path, allow_fetch=("127.0.0.1/32",)) as client:
        r = client.post("/api/jobs", json={"url": "http://127.0.0.1:9/v.mp4"}, headers=AUTH)
        assert r.status_code == 202, r.text
        r = client.put("/api/alert-rules/r1", json={"name": "r1", "metric": "failure_rate", "threshold": 0.5,
                                                    "webhook": "http://"}, headers=AUTH)
        assert r.status_code == 422


def test_serve_flags_are_checked_at_start(tmp_path, capsys):
    from vqscope.cli import main

    data = str(tmp_path / "d")
    base = ["serve", "--data-dir", data, "--migrate-only"]
    assert main(base + ["--any-path", "--path-root", str(tmp_path)]) == 2
    assert main(base + ["--allow-fetch", "not a network"]) == 2
    assert main(base + ["--webhook", "http://"]) == 2
    assert main(base + ["--fetch-timeout", "0"]) == 2
    err = capsys.readouterr().err
    assert "--any-path" in err and "--allow-fetch" in err and "--webhook" in err and "--fetch-timeout" in err
    good = ["--allow-fetch", "10.0.0.0/8", "--allow-fetch", "files.internal", "--path-root", str(tmp_path)]
    assert main(base + good) == 0


def test_batch_fetches_through_the_same_guarded_path(origin, tmp_path, connects):
    from vqscope.distributed import local_copy

    with local_copy(f"{origin.base}/v.bin", 10_000) as local:  # the operator's own list: any address
        assert Path(local).read_bytes() == b"V" * 3000
    assert not Path(local).exists()
    with pytest.raises(OutboundError, match="more than 5 redirects"), local_copy(f"{origin.base}/loop", 10_000):
        pass
    assert all(c[0] == "127.0.0.1" for c in connects)
