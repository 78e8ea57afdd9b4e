"""Bounded requests to the Kubernetes API server: GET, merge-PATCH and a one-object watch.

The connection (server URL, TLS, bearer token, client certificate, exec plugin)
comes from the kubeconfig through lightkube's own adapter
(``lightkube.config.client_adapter``); the requests are made here, because every
one must hold a deadline and every answer must be read as what it is:

- **Deadline.** A request runs on a daemon thread the caller waits for until the
  deadline (a server that drips one byte a second, or never answers, is
  abandoned there: :class:`Timeout`); each socket wait is at most
  :data:`REQUEST_TIMEOUT_CAP` seconds and the time left.
- **Answers.** At most :data:`MAX_BYTES` bytes are read (a watch: per event line);
  the body must be JSON (else :class:`Malformed`, "not JSON", with the content
  type); JSON nested too deeply for the parser is :class:`Malformed` too. A
  refusal is read as the API server writes it, a ``Status`` object
  (apimachinery ``pkg/apis/meta/v1/types.go``: ``kind: Status``, ``code``,
  ``reason``, ``message``), and raised as :class:`Refused`.
- **Watch.** ``GET .../<plural>?watch=true&fieldSelector=metadata.name=<name>``:
  one JSON event per line, ``{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR,
  "object": ...}`` (apimachinery ``pkg/apis/meta/v1/watch.go``, ``WatchEvent``).
  An ``ERROR`` event carries a ``Status``; code 410 (``Expired``/``Gone``: the
  resourceVersion is too old, apiserver ``storage/cacher``) is answered as
  client-go's reflector does (``tools/cache/reflector.go``): list again (here a
  GET of the one object) and watch from its resourceVersion.

Messages never hold the bearer token; text from the server is shown only through
:func:`secrets.sanitize` and :func:`errors.printable`, at most
:data:`EXCERPT_CHARS` characters.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from ..core.errors import UserError, printable
from ..core.secrets import sanitize

#: Longest single connect or read wait, seconds (less when the deadline is nearer).
REQUEST_TIMEOUT_CAP = 30.0
#: Largest answer (or watch event line) read, bytes: a HelmRelease with its history is kilobytes.
MAX_BYTES = 4 * 1024 * 1024
#: Longest excerpt of a server's text shown in a message, characters.
EXCERPT_CHARS = 160

T = TypeVar("T")


@dataclass(frozen=True)
class Kind:
    """A namespaced resource: API ``group``, ``version``, ``plural`` and its ``kind`` name."""

    group: str
    version: str
    plural: str
    kind: str

    def path(self, namespace: str, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}/namespaces/{urllib.parse.quote(namespace, safe='')}/{self.plural}"
        return f"{base}/{urllib.parse.quote(name, safe='')}" if name is not None else base


class KubeError(UserError):
    """A request to the Kubernetes API did not give a usable answer."""


class Timeout(KubeError):
    """No (complete) answer before the deadline."""


class Unreachable(KubeError):
    """The connection failed (refused, reset, TLS, DNS)."""


class Malformed(KubeError):
    """The answer is not what the API server sends: not JSON, too large, too deeply nested, wrongly typed."""


class Refused(KubeError):
    """The API server answered with an error status (its ``Status`` object read)."""

    def __init__(self, message: str, code: int, reason: str = ""):
        super().__init__(message)
        self.code = code
        self.reason = reason


def excerpt(text: str) -> str:
    """Server text fit to show: secrets removed, control characters escaped, one line, bounded."""
    flat = printable(" ".join(sanitize(text[:65536]).split()))
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 3] + "..."


def bounded(fn: Callable[[], T], deadline: float, what: str) -> T:
    """``fn()`` on a daemon thread, waited for until ``deadline`` (monotonic seconds).

    Raises:
        Timeout: not finished at the deadline (the thread is abandoned).
        BaseException: whatever ``fn`` raised.
    """
    box: list[Any] = []

    def run() -> None:
        try:
            box.append((True, fn()))
        except BaseException as exc:  # handed to the caller
            box.append((False, exc))

    thread = threading.Thread(target=run, daemon=True, name=f"kube {what}")
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    if not box:
        raise Timeout(f"{what}: no complete answer from the Kubernetes API server before the deadline")
    ok, value = box[0]
    if ok:
        return value
    raise value


def decode(data: bytes, what: str, content_type: str = "") -> Any:
    """``data`` parsed as JSON.

    Raises:
        Malformed: not UTF-8 JSON (content type and a sanitized excerpt named), or nested too deeply.
    """
    try:
        return json.loads(data)
    except RecursionError:
        raise Malformed(f"{what}: the answer is JSON nested too deeply to read ({len(data)} bytes); "
                        f"not an answer of a Kubernetes API server") from None
    except (ValueError, UnicodeDecodeError):
        shown = excerpt(data[:200].decode("utf-8", errors="replace"))
        raise Malformed(f"{what}: the answer is not JSON (Content-Type {printable(content_type or 'none')!s}, "
                        f"{len(data)} bytes: {shown!r}); is the server URL of the kubeconfig a Kubernetes API "
                        f"server?") from None


def status_of(data: Any) -> tuple[int | None, str, str]:
    """``(code, reason, message)`` of a ``Status`` object (apimachinery ``metav1.Status``); blanks when not one."""
    if not isinstance(data, dict) or data.get("kind") != "Status":
        return None, "", ""
    code, reason, message = data.get("code"), data.get("reason"), data.get("message")
    return (code if isinstance(code, int) and not isinstance(code, bool) else None,
            reason if isinstance(reason, str) else "", message if isinstance(message, str) else "")


class KubeApi:
    """Requests to one API server over an ``httpx``-compatible client ``http`` (base URL and auth set)."""

    def __init__(self, http: Any):
        self.http = http

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------------ one request

    def _timeout(self, deadline: float) -> float:
        return max(0.05, min(REQUEST_TIMEOUT_CAP, deadline - time.monotonic()))

    def _call(self, method: str, path: str, what: str, deadline: float, **kwargs: Any) -> Any:
        """One request on the calling thread: the decoded JSON body of a 2xx answer."""
        try:
            with self.http.stream(method, path, timeout=self._timeout(deadline), **kwargs) as response:
                data = self._read(response, what, deadline)
                status, content_type = response.status_code, response.headers.get("content-type", "")
                phrase = getattr(response, "reason_phrase", "")
        except KubeError:
            raise
        except Exception as exc:  # the HTTP client's transport errors, named by class only
            raise self._transport(exc, what) from None
        if not 200 <= status < 300:
            raise self._refused(status, phrase, data, content_type, what)
        return decode(data, what, content_type)

    @staticmethod
    def _read(response: Any, what: str, deadline: float) -> bytes:
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > MAX_BYTES:
                raise Malformed(f"{what}: the answer is larger than {MAX_BYTES} bytes; not an answer of a "
                                f"Kubernetes API server for one object")
            chunks.append(chunk)
            if time.monotonic() >= deadline:
                raise Timeout(f"{what}: the answer was still arriving at the deadline")
        return b"".join(chunks)

    @staticmethod
    def _transport(exc: BaseException, what: str) -> KubeError:
        name = type(exc).__name__
        if "Timeout" in name:
            return Timeout(f"{what}: the Kubernetes API server did not answer in time ({name})")
        return Unreachable(f"{what}: cannot reach the Kubernetes API server ({name})")

    @staticmethod
    def _refused(status: int, phrase: str, data: bytes, content_type: str, what: str) -> Refused:
        try:
            body = json.loads(data) if data else None
        except (ValueError, RecursionError):
            body = None
        code, reason, message = status_of(body)
        advice = {401: "the credentials were refused", 403: "access is forbidden",
                  404: "not found (generate and apply the Flux objects: faas-deploy flux)"}.get(status, "failed")
        detail = f"{reason}: {excerpt(message)}" if reason or message else excerpt(phrase or "")
        return Refused(f"{what}: HTTP {status}, {advice}: {detail}".rstrip(": "), code or status, reason)

    # ------------------------------------------------------------------ verbs

    def get(self, kind: Kind, namespace: str, name: str, *, deadline: float) -> dict[str, Any]:
        """GET one object; the object (a JSON object), within ``deadline`` (monotonic seconds).

        Raises:
            Timeout, Unreachable, Refused, Malformed (an answer that is not a JSON object).
        """
        what = f"{kind.kind} {namespace}/{name}"
        data = bounded(lambda: self._call("GET", kind.path(namespace, name), what, deadline), deadline, what)
        if not isinstance(data, dict):
            raise Malformed(f"{what}: the answer is a JSON {type(data).__name__}, not an object")
        return data

    def merge_patch(self, kind: Kind, namespace: str, name: str, patch: dict[str, Any], *,
                    deadline: float, field_manager: str = "faas-deploy") -> dict[str, Any]:
        """PATCH one object with ``application/merge-patch+json`` (RFC 7386), within ``deadline``.

        Raises:
            Timeout, Unreachable, Refused, Malformed.
        """
        what = f"{kind.kind} {namespace}/{name}"
        body = json.dumps(patch).encode()
        data = bounded(lambda: self._call("PATCH", kind.path(namespace, name), what, deadline, content=body,
                                          params={"fieldManager": field_manager},
                                          headers={"Content-Type": "application/merge-patch+json"}),
                       deadline, what)
        if not isinstance(data, dict):
            raise Malformed(f"{what}: the answer is a JSON {type(data).__name__}, not an object")
        return data

    def watch(self, kind: Kind, namespace: str, name: str, *, resource_version: str | None,
              server_timeout: int, stop: threading.Event) -> Iterator[tuple[str, Any]]:
        """One watch request of object ``name``: its events ``(type, object)`` until the stream ends.

        Runs on the caller's thread (the watcher thread of :mod:`rollout`); each read
        waits at most :data:`REQUEST_TIMEOUT_CAP` seconds beyond ``server_timeout``.

        Raises:
            Refused (an ``ERROR`` event: its Status code, 410 included), Malformed (a line
            that is not a JSON event, or larger than :data:`MAX_BYTES`), Unreachable, Timeout.
        """
        what = f"{kind.kind} {namespace}/{name} (watch)"
        params: dict[str, Any] = {"watch": "true", "fieldSelector": f"metadata.name={name}",
                                  "timeoutSeconds": str(server_timeout), "allowWatchBookmarks": "true"}
        if resource_version:
            params["resourceVersion"] = resource_version
        try:
            with self.http.stream("GET", kind.path(namespace), params=params,
                                  timeout=server_timeout + REQUEST_TIMEOUT_CAP) as response:
                if not 200 <= response.status_code < 300:
                    data = self._read(response, what, time.monotonic() + REQUEST_TIMEOUT_CAP)
                    raise self._refused(response.status_code, getattr(response, "reason_phrase", ""), data,
                                        response.headers.get("content-type", ""), what)
                pending = b""
                for chunk in response.iter_bytes():
                    if stop.is_set():
                        return
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    if len(pending) > MAX_BYTES:
                        raise Malformed(f"{what}: an event line larger than {MAX_BYTES} bytes")
                    for line in lines:
                        if line.strip():
                            yield self._event(line, what)
                if pending.strip():
                    yield self._event(pending, what)
        except KubeError:
            raise
        except Exception as exc:
            raise self._transport(exc, what) from None

    @staticmethod
    def _event(line: bytes, what: str) -> tuple[str, Any]:
        event = decode(line, what)
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise Malformed(f"{what}: a watch event is not {{\"type\": string, \"object\": ...}}")
        kind, obj = event["type"], event.get("object")
        if kind == "ERROR":
            code, reason, message = status_of(obj)
            raise Refused(f"{what}: the watch ended with an error, {code} {reason}: {excerpt(message)}",
                          code or 500, reason)
        if kind not in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK"):
            raise Malformed(f"{what}: a watch event of unknown type {excerpt(kind)!r}")
        if not isinstance(obj, dict):
            raise Malformed(f"{what}: a {kind} event's object is a JSON {type(obj).__name__}, not an object")
        return kind, obj
