"""The HTTP plumbing of the admin API client: deadline-bounded requests, retries, safe excerpts.

Shared by the readiness wait (:mod:`.readiness`) and the upload (:mod:`.admin_api`):

- :func:`endpoint` joins ``--admin-url`` and an API path, refusing credentials, a
  query or a fragment in either;
- :func:`request` sends one request whose connect, each read and write and the
  whole exchange end by the overall deadline (the socket timeouts shrink to the
  time left, and a watchdog shuts the socket when it passes), so a server that
  drips its answer cannot hold the job past it;
- :func:`retrying` is the tenacity loop both use: it retries :class:`Transient`
  failures until the deadline, honours ``Retry-After`` (seconds or an HTTP date:
  it lengthens a wait, never shortens it, and one past the deadline ends the wait
  at once), never waits past the deadline, and starts the last attempt
  :data:`MIN_ATTEMPT_SECONDS` before it; each retry prints one line
  (:mod:`faas_deployment.core.progress`);
- :func:`excerpt` is the only way a server's answer reaches a message: one line of
  at most :data:`EXCERPT_CHARS` characters, every secret redacted;
- :func:`warn_plain_http` warns about a token sent over plain HTTP to a host other
  than loopback.
"""

from __future__ import annotations

import email.utils
import socket
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone

import httpx
import tenacity

from ..core import progress
from ..core.deadline import Deadline
from ..core.errors import UserError, printable
from ..core.secrets import SecretValue, sanitize
from ..core.urls import is_loopback

DEFAULT_TIMEOUT = 300.0
"""Overall deadline for readiness plus upload, in seconds."""
MIN_ATTEMPT_SECONDS = 0.1
"""No attempt starts with less time than this left: the last one starts this long before the deadline."""
EXCERPT_CHARS = 200
"""Longest excerpt of a server answer shown in a message, in characters."""


class _DeadlineTimeouts(dict):
    """httpcore's per-request timeouts, each clipped to the time left before a deadline.

    httpcore reads ``extensions["timeout"].get("connect" | "read" | "write" |
    "pool")`` before each step (``httpcore/_sync/http11.py``); answering with the
    time left bounds every step by the deadline. A step that loops over many reads
    (the response head, read one byte at a time from a dripping server) is bounded
    by :func:`request`'s watchdog.
    """

    def __init__(self, limit: float, deadline: Deadline):
        super().__init__(connect=limit, read=limit, write=limit, pool=limit)
        self._limit = limit
        self._deadline = deadline

    def get(self, key: str, default: object = None) -> float:
        return max(0.001, min(self._limit, self._deadline.remaining()))


def request(http: httpx.Client, method: str, url: str, deadline: Deadline, limit: float,
             **kwargs: object) -> httpx.Response:
    """One request whose connect, reads, writes and total time end by ``deadline``.

    Each socket step waits at most ``limit`` seconds and never past the deadline;
    a watchdog shuts the connection's socket down when the deadline passes (the
    socket comes from httpcore's ``trace`` extension, event
    ``connection.connect_tcp.complete``; clients here keep no idle connection,
    so every request connects).

    Raises:
        httpx.TransportError: as ``httpx.Client.send``; ``httpx.ReadTimeout`` when
            the watchdog ended the request.
    """
    request = http.build_request(method, url, **kwargs)  # type: ignore[arg-type]
    request.extensions["timeout"] = _DeadlineTimeouts(limit, deadline)
    sockets: list[socket.socket] = []

    def trace(event: str, info: dict[str, object]) -> None:
        if event == "connection.connect_tcp.complete":
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None  # type: ignore[attr-defined]
            if sock is not None:
                sockets.append(sock)

    expired = threading.Event()

    def expire() -> None:
        expired.set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    request.extensions["trace"] = trace
    watchdog = threading.Timer(deadline.remaining(), expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        return http.send(request)
    except httpx.TransportError as exc:
        if expired.is_set():
            raise httpx.ReadTimeout("the overall deadline passed during the request", request=request) from exc
        raise
    finally:
        watchdog.cancel()


def warn_plain_http(url: str, what: str = "the admin API token") -> None:
    """Warn on standard error when ``url`` is plain HTTP to a host other than loopback."""
    parsed = httpx.URL(url)
    if parsed.scheme == "http" and not is_loopback(parsed.host):
        progress.note(f"WARNING: {what} is sent over plain HTTP to {parsed.host}: anyone on the path can read it; "
                      "use https://")



class Transient(Exception):
    """One failed attempt that may succeed later: ``kind`` (``"HTTP 503"``, ``"timeout"``, ...), the answer's
    ``Retry-After`` in seconds (``None`` without one) and a redacted ``excerpt`` of its body."""

    def __init__(self, kind: str, retry_after: float | None = None, excerpt: str = ""):
        super().__init__(kind)
        self.kind = kind
        self.retry_after = retry_after
        self.excerpt = excerpt



def endpoint(admin_url: str, path: str, *, flag: str = "--admin-url", path_flag: str = "--upload-path") -> str:
    """Join the admin URL and an API path (``/healthz``) into one URL.

    Raises:
        UserError: the admin URL is not ``http(s)://host[:port][/prefix]`` or holds
            credentials, a query or a fragment; the path holds a query or fragment.
    """
    try:
        url = httpx.URL(admin_url)
    except (httpx.InvalidURL, TypeError):
        raise UserError(f"{flag}: not a valid URL; expected http(s)://HOST[:PORT][/PREFIX]") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise UserError(f"{flag}: expected http(s)://HOST[:PORT][/PREFIX], got scheme {url.scheme or 'none'!r}")
    if url.userinfo:
        raise UserError(f"{flag}: the URL holds credentials; pass the token with --admin-token env:NAME instead")
    if url.query or url.fragment:
        raise UserError(f"{flag}: the URL holds a query or fragment; give the API's base URL only")
    if "?" in path or "#" in path:
        raise UserError(f"{path_flag}: the path holds a query or fragment; give a plain path such as /healthz")
    base = str(url).rstrip("/")
    return f"{base}/{path.lstrip('/')}"


def excerpt(text: str, *secrets: SecretValue | str | None) -> str:
    """A bounded, sanitized summary of a server's answer: one line of at most :data:`EXCERPT_CHARS` characters.

    Never the raw body: every secret the run holds and every word sharing a part
    of one is replaced (:func:`secrets.sanitize`: a server that echoes the token
    minus its last characters must not print the rest), and control characters
    are escaped (:func:`errors.printable`). Only the first 64 KiB are read.
    """
    flat = " ".join(sanitize(text[:65536], *secrets).split())
    flat = printable(flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 3] + "...")
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 3] + "..."


def error_kind(exc: httpx.TransportError) -> str:
    """A short, secret-free name for a transport failure."""
    text = str(exc).lower()
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused" if "refused" in text else "connection failed"
    if "reset" in text or "broken pipe" in text:
        return "connection reset"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "connection closed"
    return f"{type(exc).__name__}"


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` value (delta-seconds or HTTP date); ``None`` if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def summary(seen: Counter[str]) -> str:
    """``HTTP 503 x4, connection refused x2``: what was seen, most frequent first."""
    return ", ".join(f"{kind} x{count}" for kind, count in seen.most_common())


def plural(count: int, word: str) -> str:
    """``1 attempt``, ``2 attempts``."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def retrying(deadline: Deadline, base: Callable[[tenacity.RetryCallState], float], what: str,
              quiet: bool) -> tenacity.Retrying:
    """A tenacity loop that retries :class:`Transient` until the deadline, waiting ``base(state)`` seconds.

    Each retry prints one line through :func:`progress.retry` unless ``quiet``.
    """

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        delay = base(state)
        if isinstance(exc, Transient) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)  # Retry-After: 0 or a past date keeps the regular wait
        return max(0.0, min(delay, deadline.remaining() - MIN_ATTEMPT_SECONDS))

    def stop(state: tenacity.RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Transient) and exc.retry_after is not None and exc.retry_after > deadline.remaining():
            return True
        return deadline.remaining() < MIN_ATTEMPT_SECONDS  # the wait above leaves at least this much

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if not quiet:
            exc = state.outcome.exception() if state.outcome else None
            kind = exc.kind if isinstance(exc, Transient) else type(exc).__name__
            progress.retry(what, f"{kind} ({deadline.remaining():.0f} s left)", state.upcoming_sleep,
                           state.attempt_number)

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(Transient),
        wait=wait,
        stop=stop,
        before_sleep=before_sleep,
        reraise=False,
    )


def client_for(client: httpx.Client | None) -> tuple[httpx.Client, bool]:
    """``(client, owned)``: the caller's client, or a new one (:func:`new_client`) the caller must close."""
    if client is not None:
        return client, False
    return new_client(), True


def new_client() -> httpx.Client:
    """No redirects; no idle connection kept (each request connects, see :func:`request`)."""
    return httpx.Client(follow_redirects=False, limits=httpx.Limits(max_keepalive_connections=0))



def past_deadline(last: Transient | None, deadline: Deadline) -> str:
    """``; the last answer asked to retry after N s, past the deadline`` when it did; else empty."""
    if last is not None and last.retry_after is not None and last.retry_after > deadline.remaining():
        return f"; the last answer asked to retry after {last.retry_after:.0f} s, past the deadline"
    return ""

