"""A fault-injecting, lying HTTP proxy on 127.0.0.1 in front of the real registry, and stalling servers.

Faults (``Faults.plan``/``always``): ``"503"`` answers 503, ``"reset"`` drops the
connection. Lies (``Faults.lie``) rewrite the registry's true answer the way a
broken registry or proxy would:

- ``head-404``: ``HEAD .../manifests/<tag>`` answers 404 (the tag list still holds the tag);
- ``head-no-digest``: that HEAD answers 200 without ``Docker-Content-Digest``;
- ``tags-404``: ``GET .../tags/list`` answers a bare 404 (no ``NAME_UNKNOWN`` body);
- ``tags-not-json``, ``tags-json-list``, ``tags-non-string``: a tag list of the wrong shape;
- ``tags-link-loop``: the tag list's ``Link: rel="next"`` points at itself;
- ``tags-link-foreign``: it points at another host (``foreign`` server, which records what it gets);
- ``put-immutable``: a manifest ``PUT`` over an existing tag answers 400 ``TAG_INVALID``
  as registries with tag immutability do (ECR ``ImageTagAlreadyExistsException``,
  Harbor ``412``/GAR ``400``: one representative status here); and ``hidden_tag``
  stays invisible (tag list, HEAD, GET) until the first ``PUT`` to it, as a
  concurrent publisher's push looks to a client that read just before it. The
  check and the ``PUT`` it guards are one step (a lock), as in a registry that
  enforces immutability: of concurrent ``PUT``s to a free tag, one lands.

``fixed = (status, body)`` answers every tag-list request with that, for fuzzing.

Every request is recorded in ``Faults.log`` as ``(method, path, status, authorization scheme)``
(the scheme only, never the credentials), so tests and benchmarks count round trips.
With ``tls=(cert, key)`` the proxy speaks HTTPS with that certificate (a registry
behind a private CA).
"""

from __future__ import annotations

import http.server
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}
_MANIFEST_BY_TAG = re.compile(r"^/v2/.+/manifests/(?!sha256:)[^/]+$")
_TAGS = re.compile(r"^/v2/.+/tags/list")


@dataclass
class Faults:
    """What the proxy does: ``plan`` (one fault per request, then forward), ``always``, ``lie``."""

    plan: list[str] = field(default_factory=list)
    always: str | None = None
    lie: str | None = None
    foreign: str = ""  # host:port of the foreign server for tags-link-foreign
    hidden_tag: str = ""
    revealed: bool = False
    fixed: tuple[int, bytes] | None = None
    injected: int = 0
    forwarded: int = 0
    log: list[tuple[str, str, int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, method: str, path: str, status: int, authorization: str | None) -> None:
        with self.lock:
            self.log.append((method, path, status, (authorization or "").split(" ", 1)[0]))

    def count(self, method: str | None = None, status: int | None = None, path: str = "") -> int:
        """How many recorded requests match ``method``, ``status`` and contain ``path``."""
        with self.lock:
            return sum(1 for m, p, s, _ in self.log
                       if (method is None or m == method) and (status is None or s == status) and path in p)

    def next(self) -> str | None:
        with self.lock:
            if self.always:
                self.injected += 1
                return self.always
            if self.plan:
                self.injected += 1
                return self.plan.pop(0)
            self.forwarded += 1
            return None


def _lie(faults: Faults, method: str, path: str, status: int, headers: dict[str, str], body: bytes):
    lie = faults.lie
    if faults.fixed is not None and _TAGS.match(path):
        return faults.fixed[0], {"Content-Type": "application/json"}, faults.fixed[1]
    if faults.hidden_tag and not faults.revealed:
        if (
            _MANIFEST_BY_TAG.match(path)
            and path.endswith("/manifests/" + faults.hidden_tag)
            and method in ("GET", "HEAD")
        ):
            return 404, {"Content-Type": "application/json"}, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}'
        if _TAGS.match(path) and method == "GET" and status == 200:
            listing = json.loads(body)
            listing["tags"] = [t for t in listing.get("tags") or [] if t != faults.hidden_tag]
            return 200, headers, json.dumps(listing).encode()
    if lie == "head-404" and method == "HEAD" and _MANIFEST_BY_TAG.match(path) and status == 200:
        return 404, {"Content-Type": "application/json"}, b""
    if lie == "head-no-digest" and method == "HEAD" and _MANIFEST_BY_TAG.match(path) and status == 200:
        return 200, {k: v for k, v in headers.items() if k.lower() != "docker-content-digest"}, body
    if method == "GET" and _TAGS.match(path) and status == 200:
        if lie == "tags-404":
            return 404, {}, b"404 page not found\n"
        if lie == "tags-not-json":
            return 200, {"Content-Type": "application/json"}, b"<html>oops</html>"
        if lie == "tags-json-list":
            return 200, {"Content-Type": "application/json"}, json.dumps(json.loads(body)["tags"]).encode()
        if lie == "tags-non-string":
            return (
                200,
                {"Content-Type": "application/json"},
                json.dumps({"name": "x", "tags": [1, None, {"a": 2}]}).encode(),
            )
        if lie == "tags-link-loop":
            return 200, {**headers, "Link": f'<{path}>; rel="next"'}, body
        if lie == "tags-link-foreign":
            return 200, {**headers, "Link": f'<http://{faults.foreign}/v2/stolen/tags/list>; rel="next"'}, body
    return status, headers, body


@contextmanager
def registry_proxy(upstream_url: str, tls: tuple[Path, Path] | None = None) -> Iterator[tuple[str, Faults]]:
    """Start the proxy (HTTPS with ``tls=(cert, key)``); yields ``("127.0.0.1:PORT", faults)``; stops it on exit."""
    faults = Faults()
    upstream = httpx.Client(base_url=upstream_url, timeout=30)
    immutable_put = threading.Lock()  # put-immutable: the existence check and the PUT as one step

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _send(self, status: int, headers: dict[str, str], payload: bytes, length: str | None = None) -> None:
            faults.record(self.command, self.path, status, self.headers.get("Authorization"))
            self.send_response(status)
            for key, value in headers.items():
                if key.lower() not in HOP_BY_HOP | {"content-encoding"}:
                    self.send_header(key, value)
            self.send_header("Content-Length", length if length is not None else str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _body(self) -> bytes:
            """The request body, by Content-Length or chunked transfer coding (RFC 9112, 7.1), as Go clients stream."""
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailer fields
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _handle(self):
            body = self._body()
            fault = faults.next()
            if fault == "reset":
                faults.record(self.command, self.path, 0, self.headers.get("Authorization"))
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if fault == "503":
                self._send(503, {}, b"")
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            if tls is not None:
                headers["X-Forwarded-Proto"] = "https"  # distribution then writes https:// Location headers
            if faults.lie == "put-immutable" and self.command == "PUT" and _MANIFEST_BY_TAG.match(self.path):
                if faults.hidden_tag and self.path.endswith("/manifests/" + faults.hidden_tag):
                    faults.revealed = True
                with immutable_put:
                    probe = upstream.head(
                        self.path, headers={**headers, "Accept": "application/vnd.oci.image.manifest.v1+json"}
                    )
                    if probe.status_code == 200:
                        error = {"errors": [{"code": "TAG_INVALID", "message": "tag is immutable"}]}
                        self._send(400, {"Content-Type": "application/json"}, json.dumps(error).encode())
                        return
                    answer = upstream.request(self.command, self.path, headers=headers, content=body)
            else:
                answer = upstream.request(self.command, self.path, headers=headers, content=body)
            status, out_headers, payload = _lie(
                faults, self.command, self.path, answer.status_code, dict(answer.headers), answer.content
            )
            length = (
                answer.headers.get("content-length", "0")
                if self.command == "HEAD" and status == answer.status_code
                else None
            )
            self._send(status, out_headers, payload, length)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", faults
    finally:
        server.shutdown()
        server.server_close()
        upstream.close()


@dataclass
class Recorder:
    """What a loopback server received: one ``(request line, headers)`` per request."""

    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)


@contextmanager
def recording_server(status: int = 401) -> Iterator[tuple[str, Recorder]]:
    """A server answering every request with ``status`` and a Basic challenge, recording what it got."""
    recorder = Recorder()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _handle(self):
            recorder.requests.append((self.requestline, dict(self.headers.items())))
            self.send_response(status)
            self.send_header("WWW-Authenticate", 'Basic realm="foreign"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", recorder
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def stalling_server(mode: str) -> Iterator[str]:
    """A raw TCP server on 127.0.0.1: ``silent`` accepts and never answers; ``drip`` sends one byte a second.

    Yields ``"127.0.0.1:PORT"``; every connection is closed on exit.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()
    connections: list[socket.socket] = []
    answer = (
        b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"tags": [' + b" " * 2000
    )

    def serve_one(conn: socket.socket) -> None:
        try:
            if mode == "drip":
                for byte in answer:
                    if stop.wait(1.0):
                        return
                    conn.sendall(bytes([byte]))
            else:
                stop.wait()
        except OSError:
            pass

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connections.append(conn)
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()
        for conn in connections:
            conn.close()
        time.sleep(0)
