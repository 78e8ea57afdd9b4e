"""Operator admin API: wait for readiness, then upload the manifest bundle exactly once.

Contract (``docs/admin-api.md``; every path is a parameter):

- readiness: ``GET <admin-url><ready-path>`` (default ``/healthz``); any 2xx means ready;
- upload: ``POST <admin-url><upload-path>`` (default ``/admin/manifests``),
  ``multipart/form-data`` with the field ``file`` (``application/zip``), the header
  ``Authorization: Bearer <token>`` and :data:`SHA256_HEADER` carrying the bundle's
  hex sha256 (the operator verifies the bytes with it), plus
  :data:`IDEMPOTENCY_HEADER` carrying the same sha256: the API answers a repeat
  of a key it has stored with the same result and stores nothing new; any 2xx
  means accepted;
- current bundle: ``GET <admin-url><upload-path>`` with the same token answers
  ``{"sha256": "<hex>" | null}``, the sha256 of the bundle in force. The client
  asks before uploading (the same sha256: ``unchanged``, nothing sent) and again
  after every ambiguous failure (a broken connection or a 5xx once the request
  was sent: the API may have stored it), so one bundle is stored once.

Retry rules, all under one overall deadline (``timeout``, seconds):

- readiness: connection refused, timeouts, broken connections and any non-2xx
  answer mean "not ready yet"; 401 and 403 fail at once. On time-out the error
  counts what was seen per HTTP status or error kind, with the elapsed time.
- upload: 5xx, 429 and broken connections are retried; any other answer outside
  2xx fails at once with its status and a short, secret-free excerpt of the body.
- ``Retry-After`` (seconds or an HTTP date) on a readiness or upload answer is
  honoured: it lengthens a wait, never shortens it, and one past the deadline
  ends the wait at once.

Waits (tenacity drives both loops; no wait goes past the deadline, and the last
attempt starts :data:`MIN_ATTEMPT_SECONDS` before it and may take that long):

- readiness (:class:`Poll`): one probe every second, start to start, plus a
  uniform 0-0.04 s: at most 60 probes a minute, and the upload starts within
  about one second of the API becoming ready (``docs/admin-api.md``, "Waiting
  for readiness", for the figures).
- upload (:class:`Backoff`): capped exponential backoff plus jitter (tenacity's
  ``wait_exponential`` + ``wait_random``): 0.5 s, 1 s, 2 s, then 4 s, each plus a
  uniform 0-1 s: a failing upload is a server in trouble, not one starting.

Defaults: overall deadline :data:`DEFAULT_TIMEOUT` (300 s, room for an operator
rollout), one readiness probe at most :data:`DEFAULT_PROBE_TIMEOUT` (5 s), one
upload request at most :data:`DEFAULT_UPLOAD_REQUEST_TIMEOUT` (60 s). Every retry
and the readiness it ends with print one line each (:mod:`faas_deployment.core.progress`).

Every request, connect, each read and write and the whole exchange, ends by the
overall deadline (the socket timeouts shrink to the time left), so a server that
drips its answer cannot hold the job past it. A token over plain HTTP to a host
other than loopback is warned about on standard error.

The token is revealed only into the ``Authorization`` header: it never appears in
a URL, a log line, a return value or an exception's text (answers from the server
are redacted before they are shown).
"""

from __future__ import annotations

import email.utils
import json
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import httpx
import tenacity

from ..core import progress
from ..core.deadline import Deadline
from ..core.errors import UserError, printable
from ..core.secrets import SecretValue, sanitize
from ..core.urls import is_loopback
from .archive import Bundle, sha256_file

DEFAULT_READY_PATH = "/healthz"
DEFAULT_UPLOAD_PATH = "/admin/manifests"
DEFAULT_TIMEOUT = 300.0
"""Overall deadline for readiness plus upload, in seconds."""
DEFAULT_PROBE_TIMEOUT = 5.0
"""Longest wait for one readiness answer, in seconds (a slower answer counts as not ready)."""
DEFAULT_UPLOAD_REQUEST_TIMEOUT = 60.0
"""Longest wait for one upload request (connect, each read and write), in seconds."""
SHA256_HEADER = "X-Bundle-Sha256"
"""Request header carrying the bundle's hex sha256."""

IDEMPOTENCY_HEADER = "Idempotency-Key"
"""Request header making an upload idempotent: the bundle's hex sha256
(IETF draft-ietf-httpapi-idempotency-key-header)."""
MIN_ATTEMPT_SECONDS = 0.1
"""No attempt starts with less time than this left: the last one starts this long before the deadline."""
EXCERPT_CHARS = 200
"""Longest excerpt of a server answer shown in a message, in characters."""


@dataclass(frozen=True)
class Poll:
    """Readiness polling, in seconds: a probe every ``interval`` (start to start) plus ``uniform(0, jitter)``.

    With the defaults the gap between two probes is 1.00-1.04 s: never more than
    60 probes in a minute, and readiness is seen at most ~1.04 s after it
    happens (half that on average). The jitter keeps clients started together
    from probing in step.
    """

    interval: float = 1.0
    jitter: float = 0.04

    def __post_init__(self) -> None:
        if not (self.interval > 0 and self.jitter >= 0):
            raise UserError(f"readiness poll: expected interval > 0 and jitter >= 0 s, got {self}")


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with jitter between upload attempts, in seconds.

    The n-th wait (n from 1) is ``min(initial * 2**(n-1), cap) + uniform(0, jitter)``,
    clipped to the time left before the deadline.
    """

    initial: float = 0.5
    cap: float = 4.0
    jitter: float = 1.0

    def strategy(self) -> tenacity.wait.wait_base:
        return tenacity.wait_exponential(multiplier=self.initial, exp_base=2, max=self.cap) + tenacity.wait_random(
            0, self.jitter
        )


class _DeadlineTimeouts(dict):
    """httpcore's per-request timeouts, each clipped to the time left before a deadline.

    httpcore reads ``extensions["timeout"].get("connect" | "read" | "write" |
    "pool")`` before each step (``httpcore/_sync/http11.py``); answering with the
    time left bounds every step by the deadline. A step that loops over many reads
    (the response head, read one byte at a time from a dripping server) is bounded
    by :func:`_request`'s watchdog.
    """

    def __init__(self, limit: float, deadline: Deadline):
        super().__init__(connect=limit, read=limit, write=limit, pool=limit)
        self._limit = limit
        self._deadline = deadline

    def get(self, key: str, default: object = None) -> float:
        return max(0.001, min(self._limit, self._deadline.remaining()))


def _request(http: httpx.Client, method: str, url: str, deadline: Deadline, limit: float,
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


@dataclass(frozen=True)
class ReadinessReport:
    """The outcome of :func:`wait_until_ready`.

    Attributes:
        url: the readiness URL polled.
        status: the 2xx status that ended the wait.
        attempts: requests made, the successful one included.
        elapsed: seconds from the first request to the 2xx answer.
        seen: count of each answer before it, keyed ``"HTTP 503"``, ``"connection refused"``, ...
    """

    url: str
    status: int
    attempts: int
    elapsed: float
    seen: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class UploadResult:
    """The outcome of :func:`upload_bundle`.

    Attributes:
        url: the upload URL.
        status: the 2xx status of the accepted upload.
        answer: a short excerpt of the server's answer (redacted, one line).
        attempts: requests made, the accepted one included.
        elapsed: seconds spent uploading, retries included.
        sha256: hex sha256 of the bytes sent.
        size: bundle size, in bytes.
        seen: count of each failed attempt's answer, keyed like :attr:`ReadinessReport.seen`.
        unchanged: the API already held this bundle before this run (nothing was sent).
    """

    url: str
    status: int
    answer: str
    attempts: int
    elapsed: float
    sha256: str
    size: int
    seen: dict[str, int] = field(default_factory=dict)
    unchanged: bool = False


class _Transient(Exception):
    """One failed attempt that may succeed later."""

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
        raise UserError(f"{flag}: the URL holds credentials; pass the token with --token env:NAME instead")
    if url.query or url.fragment:
        raise UserError(f"{flag}: the URL holds a query or fragment; give the API's base URL only")
    if "?" in path or "#" in path:
        raise UserError(f"{path_flag}: the path holds a query or fragment; give a plain path such as /healthz")
    base = str(url).rstrip("/")
    return f"{base}/{path.lstrip('/')}"


def _excerpt(text: str, *secrets: SecretValue | str | None) -> str:
    """A bounded, sanitized summary of a server's answer: one line of at most :data:`EXCERPT_CHARS` characters.

    Never the raw body: every secret the run holds and every word sharing a part
    of one is replaced (:func:`secrets.sanitize`: a server that echoes the token
    minus its last characters must not print the rest), and control characters
    are escaped (:func:`errors.printable`). Only the first 64 KiB are read.
    """
    flat = " ".join(sanitize(text[:65536], *secrets).split())
    flat = printable(flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 3] + "...")
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 3] + "..."


def _error_kind(exc: httpx.TransportError) -> str:
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


def _retry_after(value: str | None) -> float | None:
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


def _summary(seen: Counter[str]) -> str:
    return ", ".join(f"{kind} x{count}" for kind, count in seen.most_common())


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _retrying(deadline: Deadline, base: Callable[[tenacity.RetryCallState], float], what: str,
              quiet: bool) -> tenacity.Retrying:
    """A tenacity loop that retries :class:`_Transient` until the deadline, waiting ``base(state)`` seconds.

    Each retry prints one line through :func:`progress.retry` unless ``quiet``.
    """

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        delay = base(state)
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)  # Retry-After: 0 or a past date keeps the regular wait
        return max(0.0, min(delay, deadline.remaining() - MIN_ATTEMPT_SECONDS))

    def stop(state: tenacity.RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after is not None and exc.retry_after > deadline.remaining():
            return True
        return deadline.remaining() < MIN_ATTEMPT_SECONDS  # the wait above leaves at least this much

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if not quiet:
            exc = state.outcome.exception() if state.outcome else None
            kind = exc.kind if isinstance(exc, _Transient) else type(exc).__name__
            progress.retry(what, f"{kind} ({deadline.remaining():.0f} s left)", state.upcoming_sleep,
                           state.attempt_number)

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(_Transient),
        wait=wait,
        stop=stop,
        before_sleep=before_sleep,
        reraise=False,
    )


def _client(client: httpx.Client | None) -> tuple[httpx.Client, bool]:
    if client is not None:
        return client, False
    return _new_client(), True


def _new_client() -> httpx.Client:
    """No redirects; no idle connection kept (each request connects, see :func:`_request`)."""
    return httpx.Client(follow_redirects=False, limits=httpx.Limits(max_keepalive_connections=0))


def wait_until_ready(
    admin_url: str,
    *,
    ready_path: str = DEFAULT_READY_PATH,
    timeout: float = DEFAULT_TIMEOUT,
    probe_timeout: float = DEFAULT_PROBE_TIMEOUT,
    poll: Poll = Poll(),
    deadline: Deadline | None = None,
    client: httpx.Client | None = None,
    quiet: bool = False,
) -> ReadinessReport:
    """Poll ``GET <admin_url><ready_path>`` until a 2xx answer.

    Args:
        admin_url: the operator admin API's base URL, ``http(s)://host[:port][/prefix]``.
        ready_path: the readiness path.
        timeout: overall deadline in seconds (ignored when ``deadline`` is given).
        probe_timeout: longest wait for one answer, in seconds.
        poll: when to probe (default: every 1.00-1.04 s, start to start; a
            ``Retry-After`` on a not-ready answer lengthens the wait).
        deadline: a shared deadline (e.g. readiness plus upload).
        client: an ``httpx.Client`` to reuse.
        quiet: no line per failed probe (by default :func:`progress.retry` prints one).

    Returns:
        A :class:`ReadinessReport`.

    Raises:
        UserError: 401/403 (at once), or not ready before the deadline: the text
            counts the answers seen per status or error kind and the elapsed time.
    """
    url = endpoint(admin_url, ready_path, path_flag="--ready-path")
    deadline = deadline or Deadline(timeout)
    started = time.monotonic()
    seen: Counter[str] = Counter()
    http, owned = _client(client)
    probe_started = [time.monotonic()]

    def every(state: tenacity.RetryCallState) -> float:
        """The poll interval from the last probe's start, plus jitter."""
        return poll.interval + random.uniform(0, poll.jitter) - (time.monotonic() - probe_started[0])

    def probe() -> int:
        probe_started[0] = time.monotonic()
        limit = max(MIN_ATTEMPT_SECONDS, min(probe_timeout, deadline.remaining()))
        try:
            response = _request(http, "GET", url, deadline, limit)
        except httpx.TransportError as exc:
            kind = _error_kind(exc)
            seen[kind] += 1
            raise _Transient(kind) from None
        if response.status_code in (401, 403):
            seen[f"HTTP {response.status_code}"] += 1
            raise UserError(
                f"admin API readiness {url}: HTTP {response.status_code} "
                f"({_excerpt(response.text) or response.reason_phrase}); the readiness path must not need "
                "credentials: check --ready-path and --admin-url"
            )
        if not response.is_success:
            kind = f"HTTP {response.status_code}"
            seen[kind] += 1
            raise _Transient(kind, _retry_after(response.headers.get("Retry-After")), _excerpt(response.text))
        return response.status_code

    last: _Transient | None = None
    try:
        for attempt in _retrying(deadline, every, f"admin API not ready at {url}", quiet):
            with attempt:
                status = probe()
            if attempt.retry_state.outcome and not attempt.retry_state.outcome.failed:
                return ReadinessReport(url, status, sum(seen.values()) + 1, time.monotonic() - started, dict(seen))
    except tenacity.RetryError as exc:
        failure = exc.last_attempt.exception()
        last = failure if isinstance(failure, _Transient) else None
    finally:
        if owned:
            http.close()
    attempts = sum(seen.values())
    hint = "check --admin-url and --ready-path" if any(k.startswith("HTTP 4") for k in seen) else (
        "is the operator running? raise --timeout if it needs longer to start")
    raise UserError(
        f"admin API at {url} not ready after {time.monotonic() - started:.1f} s "
        f"(deadline {deadline.seconds:g} s; {_plural(attempts, 'attempt')}: {_summary(seen)})"
        f"{_past_deadline(last, deadline)}; {hint}"
    )


def _past_deadline(last: _Transient | None, deadline: Deadline) -> str:
    """``; the last answer asked to retry after N s, past the deadline`` when it did; else empty."""
    if last is not None and last.retry_after is not None and last.retry_after > deadline.remaining():
        return f"; the last answer asked to retry after {last.retry_after:.0f} s, past the deadline"
    return ""


def _check_token(token: SecretValue | str) -> SecretValue:
    secret = token if isinstance(token, SecretValue) else SecretValue(token, "token")
    value = secret.reveal()
    if not value or any(not (0x21 <= ord(ch) <= 0x7E) for ch in value):
        raise UserError(
            f"--token {secret.source}: the token is empty or holds spaces, line breaks or non-ASCII characters; "
            "an HTTP bearer token is printable ASCII (check the variable or file it comes from)"
        )
    return secret


def upload_bundle(
    admin_url: str,
    bundle: Bundle | Path,
    token: SecretValue | str,
    *,
    upload_path: str = DEFAULT_UPLOAD_PATH,
    timeout: float = DEFAULT_TIMEOUT,
    request_timeout: float = DEFAULT_UPLOAD_REQUEST_TIMEOUT,
    backoff: Backoff = Backoff(),
    deadline: Deadline | None = None,
    client: httpx.Client | None = None,
    quiet: bool = False,
) -> UploadResult:
    """Upload the bundle to ``<admin_url><upload_path>`` exactly once.

    First ``GET`` the upload path: when the API holds this sha256 already,
    nothing is sent (``unchanged``). Otherwise ``POST`` it with the sha256 as
    :data:`IDEMPOTENCY_HEADER`; after an ambiguous failure (a broken connection
    once connected, a 5xx) ``GET`` again before any new ``POST``, so a bundle the
    API stored before failing is not stored twice. The file is streamed from disk
    on every attempt (memory stays bounded).

    Args:
        admin_url: the operator admin API's base URL.
        bundle: the :class:`~faas_deployment.bundle.archive.Bundle` (or a zip's path).
        token: the bearer token; revealed only into the ``Authorization`` header.
        upload_path: the upload path.
        timeout: overall deadline in seconds (ignored when ``deadline`` is given).
        request_timeout: longest wait for one request's connect, read or write, in seconds.
        backoff: waits between attempts.
        deadline: a shared deadline.
        client: an ``httpx.Client`` to reuse.
        quiet: no line per failed attempt (by default :func:`progress.retry` prints one).

    Returns:
        An :class:`UploadResult`.

    Raises:
        UserError: 401/403 or another 4xx than 429 (at once, with the status and a
            redacted excerpt of the answer); a ``GET`` answer that is not
            ``{"sha256": ...}``; no success before the deadline (with counts of
            what was seen); an unusable token or URL.
    """
    url = endpoint(admin_url, upload_path)
    secret = _check_token(token)
    path = bundle.path if isinstance(bundle, Bundle) else Path(bundle)
    if not path.is_file():
        raise UserError(f"bundle {path}: not found; build it first (faas-deploy manifests --out {path})")
    digest = bundle.sha256 if isinstance(bundle, Bundle) else sha256_file(path)
    size = path.stat().st_size
    deadline = deadline or Deadline(timeout)
    started = time.monotonic()
    seen: Counter[str] = Counter()
    http, owned = _client(client)
    auth = {"Authorization": f"Bearer {secret.reveal()}"}
    headers = {**auth, SHA256_HEADER: digest, IDEMPOTENCY_HEADER: digest}
    warn_plain_http(url)
    state = {"check": True, "unchanged": True}

    def transient(exc: httpx.TransportError) -> _Transient:
        kind = _error_kind(exc)
        seen[kind] += 1
        return _Transient(kind)

    def refused(response: httpx.Response, what: str) -> UserError:
        status = response.status_code
        seen[f"HTTP {status}"] += 1
        if status in (401, 403):
            advice = "the admin API refused the token: check --token and that it may upload manifests"
        elif status == 413:
            advice = f"the bundle ({size} bytes) is larger than the admin API accepts: trim dynamic/ or raise its limit"
        else:
            advice = "check --upload-path and the operator's admin API version"
        return UserError(f"{what} {url} failed: HTTP {status} {response.reason_phrase}: "
                         f"{_excerpt(response.text, secret) or '(empty answer)'}; {advice}")

    def current() -> str | None:
        """The sha256 of the bundle the API holds (``GET`` on the upload path)."""
        limit = max(MIN_ATTEMPT_SECONDS, min(request_timeout, deadline.remaining()))
        try:
            response = _request(http, "GET", url, deadline, limit, headers=auth)
        except httpx.TransportError as exc:
            raise transient(exc) from None
        if response.status_code == 429 or response.status_code >= 500:
            seen[f"HTTP {response.status_code}"] += 1
            raise _Transient(f"HTTP {response.status_code}", _retry_after(response.headers.get("Retry-After")),
                             _excerpt(response.text, secret))
        if not response.is_success:
            raise refused(response, "asking for the current bundle at")
        try:
            held = json.loads(response.content).get("sha256")
        except (ValueError, AttributeError):
            held = False
        if held is not None and not isinstance(held, str):
            raise UserError(f"asking for the current bundle at {url}: the answer is not "
                            '{"sha256": "<hex>" | null}; check --upload-path and the admin API version')
        return held

    def send() -> httpx.Response | None:
        """``None`` when the API holds the bundle already; else the accepted answer."""
        if state["check"]:  # first attempt, or the last one may have been stored
            if current() == digest:
                return None
            state["check"] = False
        limit = max(MIN_ATTEMPT_SECONDS, min(request_timeout, deadline.remaining()))
        state["unchanged"] = False
        try:
            with path.open("rb") as handle:
                response = _request(http, "POST", url, deadline, limit,
                                    files={"file": (path.name, handle, "application/zip")}, headers=headers)
        except httpx.TransportError as exc:
            state["check"] = not isinstance(exc, httpx.ConnectError)  # sent, maybe stored
            raise transient(exc) from None
        status = response.status_code
        if response.is_success:
            return response
        if status == 429 or status >= 500:
            seen[f"HTTP {status}"] += 1
            state["check"] = status >= 500
            raise _Transient(f"HTTP {status}", _retry_after(response.headers.get("Retry-After")),
                             _excerpt(response.text, secret))
        raise refused(response, "upload to")

    last: _Transient | None = None
    try:
        for attempt in _retrying(deadline, backoff.strategy(), f"upload to {url} not accepted", quiet):
            with attempt:
                response = send()
            outcome = attempt.retry_state.outcome
            if outcome and not outcome.failed:
                attempts = sum(seen.values()) + 1
                if response is None:
                    return UploadResult(url, 200, "the admin API holds this bundle", attempts,
                                        time.monotonic() - started, digest, size, dict(seen), state["unchanged"])
                return UploadResult(url, response.status_code, _excerpt(response.text, secret) or
                                    response.reason_phrase, attempts, time.monotonic() - started,
                                    digest, size, dict(seen))
    except tenacity.RetryError as exc:
        failure = exc.last_attempt.exception()
        last = failure if isinstance(failure, _Transient) else None
    finally:
        if owned:
            http.close()
    detail = _past_deadline(last, deadline)
    if not detail and last is not None and last.excerpt:
        detail = f"; last answer: {last.excerpt}"
    raise UserError(
        f"upload to {url} not accepted after {time.monotonic() - started:.1f} s "
        f"(deadline {deadline.seconds:g} s; {_plural(sum(seen.values()), 'attempt')}: {_summary(seen)}){detail}; "
        f"the bundle is kept at {path}: retry later or raise --timeout"
    )


def upload_manifests(
    admin_url: str,
    bundle: Bundle,
    token: SecretValue | str,
    *,
    ready_path: str = DEFAULT_READY_PATH,
    upload_path: str = DEFAULT_UPLOAD_PATH,
    timeout: float = DEFAULT_TIMEOUT,
    probe_timeout: float = DEFAULT_PROBE_TIMEOUT,
    request_timeout: float = DEFAULT_UPLOAD_REQUEST_TIMEOUT,
    poll: Poll = Poll(),
    backoff: Backoff = Backoff(),
    quiet: bool = False,
) -> str:
    """Wait for readiness, then upload ``bundle`` once, both under one ``timeout`` (seconds).

    Returns:
        One line: ``uploaded <sha256> (<bytes> bytes, <n> files) to <url>: HTTP <status> <short answer>``,
        or ``unchanged <sha256> (<bytes> bytes, <n> files) at <url>`` when the API
        already held this bundle (nothing sent).

    Raises:
        UserError: as :func:`wait_until_ready` and :func:`upload_bundle`.
    """
    secret = _check_token(token)
    endpoint(admin_url, upload_path)  # reject a bad URL before waiting
    deadline = Deadline(timeout)
    with _new_client() as http:
        ready = wait_until_ready(admin_url, ready_path=ready_path, probe_timeout=probe_timeout, poll=poll,
                                 deadline=deadline, client=http, quiet=quiet)
        if not quiet:
            progress.note(f"admin API ready at {ready.url} after {ready.elapsed:.1f} s "
                          f"({_plural(ready.attempts, 'probe')})")
        result = upload_bundle(admin_url, bundle, secret, upload_path=upload_path, request_timeout=request_timeout,
                               backoff=backoff, deadline=deadline, client=http, quiet=quiet)
    if result.unchanged:
        return f"unchanged {result.sha256} ({result.size} bytes, {bundle.entries} files) at {result.url}"
    return (f"uploaded {result.sha256} ({result.size} bytes, {bundle.entries} files) to {result.url}: "
            f"HTTP {result.status} {result.answer}")
