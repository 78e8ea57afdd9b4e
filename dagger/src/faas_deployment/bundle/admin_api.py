"""Operator admin API: wait for readiness, then upload the bundle exactly once.

This module uploads the bundle (:func:`upload_bundle`) and ties the two steps
under one deadline (:func:`upload_when_ready`); the readiness wait is
:mod:`.readiness`, and the HTTP plumbing both share (deadline-bounded requests,
the retry loop, redacted excerpts) is :mod:`.admin_http`.

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
attempt starts :data:`~.admin_http.MIN_ATTEMPT_SECONDS` before it and may take that long):

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

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import tenacity

from ..core import progress
from ..core.deadline import Deadline
from ..core.errors import UserError
from ..core.secrets import SecretValue
from .admin_http import (
    DEFAULT_TIMEOUT,
    MIN_ATTEMPT_SECONDS,
    Transient,
    client_for,
    endpoint,
    error_kind,
    excerpt,
    new_client,
    past_deadline,
    plural,
    request,
    retry_after,
    retrying,
    summary,
    warn_plain_http,
)
from .archive import Bundle, sha256_file
from .readiness import DEFAULT_PROBE_TIMEOUT, DEFAULT_READY_PATH, Poll, wait_until_ready

DEFAULT_UPLOAD_PATH = "/admin/manifests"
"""The upload path of the admin API contract."""
DEFAULT_UPLOAD_REQUEST_TIMEOUT = 60.0
"""Longest wait for one upload request (connect, each read and write), in seconds."""
SHA256_HEADER = "X-Bundle-Sha256"
"""Request header carrying the bundle's hex sha256."""

IDEMPOTENCY_HEADER = "Idempotency-Key"
"""Request header making an upload idempotent: the bundle's hex sha256
(IETF draft-ietf-httpapi-idempotency-key-header)."""


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
        seen: count of each failed attempt's answer, keyed like :attr:`.readiness.ReadinessReport.seen`.
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



def _check_token(token: SecretValue | str) -> SecretValue:
    secret = token if isinstance(token, SecretValue) else SecretValue(token, "token")
    value = secret.reveal()
    if not value or any(not (0x21 <= ord(ch) <= 0x7E) for ch in value):
        raise UserError(
            f"--admin-token {secret.source}: the token is empty or holds spaces, line breaks or non-ASCII characters; "
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
    http, owned = client_for(client)
    auth = {"Authorization": f"Bearer {secret.reveal()}"}
    headers = {**auth, SHA256_HEADER: digest, IDEMPOTENCY_HEADER: digest}
    warn_plain_http(url)
    state = {"check": True, "unchanged": True}

    def transient(exc: httpx.TransportError) -> Transient:
        kind = error_kind(exc)
        seen[kind] += 1
        return Transient(kind)

    def refused(response: httpx.Response, what: str) -> UserError:
        status = response.status_code
        seen[f"HTTP {status}"] += 1
        if status in (401, 403):
            advice = "the admin API refused the token: check --admin-token and that it may upload the bundle"
        elif status == 413:
            advice = f"the bundle ({size} bytes) is larger than the admin API accepts: trim dynamic/ or raise its limit"
        else:
            advice = "check --upload-path and the operator's admin API version"
        return UserError(f"{what} {url} failed: HTTP {status} {response.reason_phrase}: "
                         f"{excerpt(response.text, secret) or '(empty answer)'}; {advice}")

    def current() -> str | None:
        """The sha256 of the bundle the API holds (``GET`` on the upload path)."""
        limit = max(MIN_ATTEMPT_SECONDS, min(request_timeout, deadline.remaining()))
        try:
            response = request(http, "GET", url, deadline, limit, headers=auth)
        except httpx.TransportError as exc:
            raise transient(exc) from None
        if response.status_code == 429 or response.status_code >= 500:
            seen[f"HTTP {response.status_code}"] += 1
            raise Transient(f"HTTP {response.status_code}", retry_after(response.headers.get("Retry-After")),
                             excerpt(response.text, secret))
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
                response = request(http, "POST", url, deadline, limit,
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
            raise Transient(f"HTTP {status}", retry_after(response.headers.get("Retry-After")),
                             excerpt(response.text, secret))
        raise refused(response, "upload to")

    last: Transient | None = None
    try:
        for attempt in retrying(deadline, backoff.strategy(), f"upload to {url} not accepted", quiet):
            with attempt:
                response = send()
            outcome = attempt.retry_state.outcome
            if outcome and not outcome.failed:
                attempts = sum(seen.values()) + 1
                if response is None:
                    return UploadResult(url, 200, "the admin API holds this bundle", attempts,
                                        time.monotonic() - started, digest, size, dict(seen), state["unchanged"])
                return UploadResult(url, response.status_code, excerpt(response.text, secret) or
                                    response.reason_phrase, attempts, time.monotonic() - started,
                                    digest, size, dict(seen))
    except tenacity.RetryError as exc:
        failure = exc.last_attempt.exception()
        last = failure if isinstance(failure, Transient) else None
    finally:
        if owned:
            http.close()
    detail = past_deadline(last, deadline)
    if not detail and last is not None and last.excerpt:
        detail = f"; last answer: {last.excerpt}"
    raise UserError(
        f"upload to {url} not accepted after {time.monotonic() - started:.1f} s "
        f"(deadline {deadline.seconds:g} s; {plural(sum(seen.values()), 'attempt')}: {summary(seen)}){detail}; "
        f"the bundle is kept at {path}: retry later or raise --timeout"
    )


def upload_when_ready(
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
    with new_client() as http:
        ready = wait_until_ready(admin_url, ready_path=ready_path, probe_timeout=probe_timeout, poll=poll,
                                 deadline=deadline, client=http, quiet=quiet)
        if not quiet:
            progress.note(f"admin API ready at {ready.url} after {ready.elapsed:.1f} s "
                          f"({plural(ready.attempts, 'probe')})")
        result = upload_bundle(admin_url, bundle, secret, upload_path=upload_path, request_timeout=request_timeout,
                               backoff=backoff, deadline=deadline, client=http, quiet=quiet)
    if result.unchanged:
        return f"unchanged {result.sha256} ({result.size} bytes, {bundle.entries} files) at {result.url}"
    return (f"uploaded {result.sha256} ({result.size} bytes, {bundle.entries} files) to {result.url}: "
            f"HTTP {result.status} {result.answer}")
