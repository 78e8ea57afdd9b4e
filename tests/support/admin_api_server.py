"""A loopback double of the operator's admin API (the far side of a wire we don't own).

It implements the contract written in ``docs/admin-api.md`` (the operator's
side of it; the client is ``faas_deployment/bundle/admin_api.py``): ``GET /healthz``
answers 200 once ready; ``POST /admin/manifests`` takes a ``multipart/form-data``
field ``file`` (``application/zip``) with ``Authorization: Bearer <token>``,
``X-Bundle-Sha256`` and ``Idempotency-Key`` (the same sha256), checks them, stores
the zip and answers 201; a repeat of a stored key is answered with the same status
and body and stores nothing; ``GET /admin/manifests`` (same token) answers
``{"sha256": <the current bundle's sha256 or null>}``. Faults are scripted per
endpoint:

- ``listen_after`` seconds: the port is reserved but nothing listens (connection refused);
- ``unready_for`` seconds: ``/healthz`` answers 503 until then;
- ``health_plan`` / ``upload_plan``: actions consumed one per request before the
  default behaviour: an ``int`` status, :class:`Answer` (status, headers, body),
  :class:`Slow` (sleep, then answer), :class:`Reset` (read part of the body, then
  reset the connection), :class:`EchoAuth` (answer with the Authorization header
  in the body, as a careless server might), :class:`StoreThen` (store the upload,
  then reset the connection or answer a status: the ambiguous failures),
  :class:`Drip` (answer one byte per ``interval`` seconds, forever);
- ``current_plan``: actions for ``GET`` on the upload path.

Every request is recorded; accepted uploads keep their exact bytes.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import io
import json
import socket
import struct
import threading
import time
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""


@dataclass(frozen=True)
class Slow:
    seconds: float
    status: int = 200


@dataclass(frozen=True)
class Reset:
    """Read ``fraction`` of the request body, then reset the connection (RST)."""

    fraction: float = 0.5


@dataclass(frozen=True)
class StoreThen:
    """Store the upload as accepted, then fail: ``status`` 0 resets the connection."""

    status: int = 0


@dataclass(frozen=True)
class Drip:
    """Answer one byte every ``interval`` seconds until the client goes away."""

    interval: float = 1.0


@dataclass(frozen=True)
class EchoAuth:
    status: int = 400


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    at: float  # time.monotonic()
    outcome: str  # "HTTP 200", "reset", ...


@dataclass(frozen=True)
class Upload:
    data: bytes
    filename: str
    content_type: str
    sha256_header: str
    at: float


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AdminApiServer:
    """Start with :meth:`start` (or as a context manager); stop with :meth:`stop`."""

    def __init__(
        self,
        token: str,
        *,
        listen_after: float = 0.0,
        unready_for: float = 0.0,
        health_plan: list | None = None,
        upload_plan: list | None = None,
        current_plan: list | None = None,
        ready_path: str = "/healthz",
        upload_path: str = "/admin/manifests",
    ):
        self.token = token
        self.listen_after = listen_after
        self.unready_for = unready_for
        self.health_plan = list(health_plan or [])
        self.upload_plan = list(upload_plan or [])
        self.current_plan = list(current_plan or [])
        self.answers: dict[str, tuple[int, str]] = {}  # Idempotency-Key -> (status, body)
        self.ready_path = ready_path
        self.upload_path = upload_path
        self.port = _free_port()
        self.requests: list[Request] = []
        self.accepted: list[Upload] = []
        self.started = 0.0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._later: threading.Thread | None = None
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ready_at(self) -> float:
        """Monotonic time from which ``/healthz`` answers 200 (without a health plan)."""
        return self.started + max(self.listen_after, self.unready_for)

    @property
    def current(self) -> str | None:
        """The sha256 of the bundle in force (the last one stored), or ``None``."""
        with self._lock:
            return self.accepted[-1].sha256_header if self.accepted else None

    def attempts(self, path: str, method: str | None = None) -> list[Request]:
        """Requests recorded on ``path`` (of ``method`` only, if given), in order."""
        with self._lock:
            return [r for r in self.requests if r.path == path and method in (None, r.method)]

    # -- lifecycle -------------------------------------------------------
    def start(self) -> AdminApiServer:
        self.started = time.monotonic()
        if self.listen_after > 0:
            self._later = threading.Thread(target=self._listen_later, daemon=True)
            self._later.start()
        else:
            self._listen()
        return self

    def _listen_later(self) -> None:
        if not self._stopped.wait(self.listen_after):
            self._listen()

    def _listen(self) -> None:
        server = self

        class Handler(_Handler):
            owner = server

        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stopped.set()
        if self._later is not None:
            self._later.join()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> AdminApiServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- behaviour -------------------------------------------------------
    def _next(self, plan: list):
        with self._lock:
            return plan.pop(0) if plan else None

    def _record(self, method: str, path: str, outcome: str) -> None:
        with self._lock:
            self.requests.append(Request(method, path, time.monotonic(), outcome))


class _Handler(BaseHTTPRequestHandler):
    owner: AdminApiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # silence the default access log
        pass

    def _send(self, status: int, body: str = "", headers: dict[str, str] | None = None, outcome: str = "") -> None:
        """Record the request, then answer (so a test never sees the answer before the record)."""
        self.owner._record(self.command, self.path, outcome or f"HTTP {status}")
        data = body.encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json" if body.startswith("{") else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _reset(self, fraction: float) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(int(length * fraction))
        self.owner._record(self.command, self.path, "reset")
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def finish(self) -> None:
        try:
            super().finish()
        except (OSError, ValueError):
            pass

    def _act(self, action, default) -> None:
        """Play a scripted action, or ``default`` when there is none."""
        if action is None:
            default()
            return
        if isinstance(action, int):
            action = Answer(action, body=f"scripted {action}")
        if isinstance(action, Slow):
            time.sleep(action.seconds)
            try:
                self._send(action.status, "slow answer", outcome=f"slow HTTP {action.status}")
            except OSError:
                pass
            return
        if isinstance(action, Reset):
            self._reset(action.fraction)
            return
        if isinstance(action, StoreThen):
            status, body = self._check_and_store()
            if status // 100 != 2:
                self._send(status, body)
                return
            if action.status:
                self._send(action.status, "internal error after storing", outcome=f"stored, then HTTP {action.status}")
            else:
                self.owner._record(self.command, self.path, "stored, then reset")
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()
            return
        if isinstance(action, Drip):
            self._drain()
            self.owner._record(self.command, self.path, "drip")
            try:
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1_000_000:
                    if self.owner._stopped.is_set():
                        break
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(action.interval)
            except OSError:
                pass
            self.close_connection = True
            return
        if isinstance(action, EchoAuth):
            self._drain()
            self._send(action.status, f"bad request; you sent Authorization: {self.headers.get('Authorization')}")
            return
        self._drain()
        self._send(action.status, action.body, action.headers)

    def _drain(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        owner = self.owner
        if self.path == owner.upload_path:
            self._act(owner._next(owner.current_plan), self._current)
            return
        if self.path != owner.ready_path:
            self._send(404, "not found")
            return

        def default() -> None:
            if time.monotonic() < owner.started + owner.unready_for:
                self._send(503, "starting")
            else:
                self._send(200, '{"status": "ok"}')

        self._act(owner._next(owner.health_plan), default)

    def do_POST(self) -> None:
        owner = self.owner
        if self.path != owner.upload_path:
            self._drain()
            self._send(404, "not found")
            return
        self._act(owner._next(owner.upload_plan), self._accept)

    def _current(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {self.owner.token}":
            self._send(401, '{"error": "invalid token"}')
            return
        self._send(200, json.dumps({"sha256": self.owner.current}))

    def _accept(self) -> None:
        self._send(*self._check_and_store())

    def _check_and_store(self) -> tuple[int, str]:
        """Check one upload and store it: ``(status, body)`` to answer.

        A repeat of a stored ``Idempotency-Key`` gets the stored answer, and nothing
        is stored again; a key that differs from ``X-Bundle-Sha256`` is refused.
        """
        owner = self.owner
        body = self._drain()
        if self.headers.get("Authorization") != f"Bearer {owner.token}":
            return 401, '{"error": "invalid token"}'
        declared = self.headers.get("X-Bundle-Sha256", "")
        key = self.headers.get("Idempotency-Key")
        if key is not None and key != declared:
            return 422, '{"error": "Idempotency-Key differs from X-Bundle-Sha256"}'
        with owner._lock:
            repeat = owner.answers.get(key) if key else None
        if repeat is not None:
            return repeat
        ctype = self.headers.get("Content-Type", "")
        if not ctype.startswith("multipart/form-data"):
            return 415, '{"error": "expected multipart/form-data"}'
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body
        )
        parts = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
        part = parts.get("file")
        if part is None:
            return 400, '{"error": "no file field"}'
        data = part.get_payload(decode=True)
        if hashlib.sha256(data).hexdigest() != declared:
            return 400, '{"error": "sha256 mismatch"}'
        try:
            names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        except zipfile.BadZipFile:
            return 422, '{"error": "not a zip"}'
        answer = (201, json.dumps({"status": "accepted", "files": len(names)}))
        with owner._lock:
            owner.accepted.append(Upload(data, part.get_filename() or "", part.get_content_type(), declared,
                                         time.monotonic()))
            if key:
                owner.answers[key] = answer
        return answer
