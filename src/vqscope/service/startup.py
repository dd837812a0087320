"""`serve`'s start-up: the listening socket is ours, so its errors are one typed line.

Why: `uvicorn.run()` binds the port itself, logs its own error and calls `sys.exit(3)`, which
vqscope documents as "some videos failed", and a port out of range came out as a
traceback. Here the port is checked before anything starts (a usage error, exit 2) and the
socket is bound and listening before the model is loaded or the database opened, so a second
`serve` on a busy port stops at once (a `ListenError`, exit 31) and touches nothing; uvicorn is
then handed the socket. SO_REUSEADDR lets a restarted server take its port back while the old
connections linger in TIME_WAIT; listening at once (not when uvicorn starts) is what makes a
second process fail on bind rather than later, since on Linux two sockets with SO_REUSEADDR
may both bind a port that no one listens on yet.
"""

from __future__ import annotations

import errno
import socket

from ..errors import ConfigError, ListenError

BACKLOG = 2048  # uvicorn's default


def check_port(port: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"--port must be a number from 0 to 65535 (0: any free port), not {port}")
    return port


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port and listening (IPv4 or IPv6, as the host resolves)."""
    check_port(port)
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(f"--host {host}: not an address of this machine ({getattr(exc, 'strerror', exc)})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            why = "the port is already in use (another vqscope serve, or another program: pick another --port)"
        elif exc.errno in (errno.EACCES, errno.EPERM):
            why = "not allowed (ports below 1024 need privileges: pick --port 1024 or above)"
        elif exc.errno == errno.EADDRNOTAVAIL:
            why = "the address is not one of this machine's (check --host)"
        else:
            why = exc.strerror or str(exc)
        raise ListenError(f"cannot listen on {where}: {why}") from None
    return sock


def address(sock: socket.socket) -> str:
    """http://host:port of a listening socket (the real port when 0 was asked for)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
