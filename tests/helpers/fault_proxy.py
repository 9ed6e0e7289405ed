"""A fault-injecting HTTP reverse proxy on 127.0.0.1, for S3 clients in front of moto.

Real faults, on real sockets: a seeded share of requests is answered ``500``/``503`` with an
S3 error body, or the connection is dropped without an answer (the client sees a reset or a
closed connection); keys matching ``deny`` always answer ``403 AccessDenied``. Faults are
bounded (``max_faults``) and the proxy stops itself after ``lifetime_s``, so a stuck test
cannot leave it running. Every fault is recorded in ``faults`` (kind, method, path).
"""

from __future__ import annotations

import http.client
import random
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}

_ERROR_BODY = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
    "<Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>"
)


@dataclass
class FaultPlan:
    """What to break, seeded and bounded.

    ``rate`` of the GETs whose path contains ``match`` get a fault of ``kinds``, at most
    ``max_faults`` in all; paths containing a ``deny`` entry always answer 403; a ``flaky``
    entry ``(substring, n, kind)`` answers the first ``n`` requests of its paths with ``kind``
    (GETs only, with ``only_get``).
    """

    rate: float = 0.08
    kinds: tuple[str, ...] = ("500", "503", "drop")
    max_faults: int = 200
    seed: int = 0
    match: str = ""
    deny: tuple[str, ...] = ()
    flaky: tuple[tuple[str, int, str], ...] = ()
    only_get: bool = True


@dataclass
class FaultProxy:
    """A running proxy: point the S3 client's ``endpoint_url`` at :attr:`url`."""

    upstream: str
    plan: FaultPlan
    lifetime_s: float = 600.0
    faults: list[tuple[str, str, str]] = field(default_factory=list)
    requests: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.plan.seed)
        self._lock = threading.Lock()
        self._armed = True
        self._flaky_left: dict[int, int] = {}
        up = urlsplit(self.upstream)
        self._up_host, self._up_port = up.hostname or "127.0.0.1", up.port or 80
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._timer = threading.Timer(self.lifetime_s, self.stop)
        self._timer.daemon = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()

    def disarm(self) -> None:
        """Stop injecting random faults (denied keys still answer 403)."""
        with self._lock:
            self._armed = False

    def arm(self) -> None:
        with self._lock:
            self._armed = True

    def counts(self) -> dict[str, int]:
        with self._lock:
            out: dict[str, int] = {}
            for kind, _, _ in self.faults:
                out[kind] = out.get(kind, 0) + 1
            return out

    def decide(self, method: str, path: str) -> str | None:
        """The fault for this request, or None to forward it."""
        key = path.split("?", 1)[0]
        with self._lock:
            self.requests += 1
            if any(d in key for d in self.plan.deny):
                self.faults.append(("403", method, path))
                return "403"
            get_only = self.plan.only_get and method != "GET"
            for i, (sub, n, kind) in enumerate(self.plan.flaky):
                if sub in key and not get_only and self._flaky_left.get(i, n) > 0:
                    self._flaky_left[i] = self._flaky_left.get(i, n) - 1
                    self.faults.append((kind, method, path))
                    return kind
            if not self._armed or get_only:
                return None
            if self.plan.match not in key:
                return None
            if len(self.faults) >= self.plan.max_faults:
                return None
            if self._rng.random() >= self.plan.rate:
                return None
            kind = self._rng.choice(self.plan.kinds)
            self.faults.append((kind, method, path))
            return kind

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple:
        conn = http.client.HTTPConnection(self._up_host, self._up_port, timeout=60)
        try:
            conn.request(method, path, body=body or None, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.reason, resp.getheaders(), resp.read()
        finally:
            conn.close()


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            fault = proxy.decide(self.command, self.path)
            if fault == "drop":
                # no answer at all: the client sees the connection closed / reset
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                self.close_connection = True
                self.connection.close()
                return
            if fault in ("500", "503", "403"):
                code, message = {
                    "500": ("InternalError", "injected internal error"),
                    "503": ("SlowDown", "injected: reduce your request rate"),
                    "403": ("AccessDenied", "Access Denied"),
                }[fault]
                payload = _ERROR_BODY.format(code=code, message=message).encode()
                self.send_response(int(fault))
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
            status, reason, resp_headers, data = proxy.forward(
                self.command, self.path, headers, body
            )
            self.send_response(status, reason)
            head = self.command == "HEAD"
            for key, value in resp_headers:
                if key.lower() in _HOP_HEADERS or (key.lower() == "content-length" and not head):
                    continue
                self.send_header(key, value)
            if not head:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    return Handler


@contextmanager
def fault_proxy(upstream: str, plan: FaultPlan, lifetime_s: float = 600.0) -> Iterator[FaultProxy]:
    """Start a proxy in front of ``upstream`` for the ``with`` block; always stopped after."""
    proxy = FaultProxy(upstream, plan, lifetime_s=lifetime_s).start()
    try:
        yield proxy
    finally:
        proxy.stop()
