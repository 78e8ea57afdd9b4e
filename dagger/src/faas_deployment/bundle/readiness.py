"""Readiness of the operator's admin API: poll ``GET <admin-url><ready-path>`` until a 2xx answer.

Contract (``docs/admin-api.md``, "Waiting for readiness"): the readiness path
(default :data:`DEFAULT_READY_PATH`) needs no credentials; any 2xx means ready.
Connection refused, timeouts, broken connections and any other answer mean "not
ready yet", except 401 and 403, which fail at once. On time-out the error counts
what was seen per HTTP status or error kind, with the elapsed time.

Waits (:class:`Poll`, driven by tenacity through :func:`.admin_http.retrying`):
one probe every second, start to start, plus a uniform 0-0.04 s: at most 60
probes a minute, and the upload starts within about one second of the API
becoming ready. A ``Retry-After`` on a not-ready answer lengthens a wait. One
probe waits at most :data:`DEFAULT_PROBE_TIMEOUT` (5 s) for its answer; the whole
wait ends by the overall deadline (:data:`~.admin_http.DEFAULT_TIMEOUT`, or the
one shared with the upload).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import tenacity

from ..core.deadline import Deadline
from ..core.errors import UserError
from .admin_http import (
    DEFAULT_TIMEOUT,
    MIN_ATTEMPT_SECONDS,
    Transient,
    client_for,
    endpoint,
    error_kind,
    excerpt,
    past_deadline,
    plural,
    request,
    retry_after,
    retrying,
    summary,
)

DEFAULT_READY_PATH = "/healthz"
"""The readiness path of the admin API contract."""
DEFAULT_PROBE_TIMEOUT = 5.0
"""Longest wait for one readiness answer, in seconds (a slower answer counts as not ready)."""


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
    http, owned = client_for(client)
    probe_started = [time.monotonic()]

    def every(state: tenacity.RetryCallState) -> float:
        """The poll interval from the last probe's start, plus jitter."""
        return poll.interval + random.uniform(0, poll.jitter) - (time.monotonic() - probe_started[0])

    def probe() -> int:
        probe_started[0] = time.monotonic()
        limit = max(MIN_ATTEMPT_SECONDS, min(probe_timeout, deadline.remaining()))
        try:
            response = request(http, "GET", url, deadline, limit)
        except httpx.TransportError as exc:
            kind = error_kind(exc)
            seen[kind] += 1
            raise Transient(kind) from None
        if response.status_code in (401, 403):
            seen[f"HTTP {response.status_code}"] += 1
            raise UserError(
                f"admin API readiness {url}: HTTP {response.status_code} "
                f"({excerpt(response.text) or response.reason_phrase}); the readiness path must not need "
                "credentials: check --ready-path and --admin-url"
            )
        if not response.is_success:
            kind = f"HTTP {response.status_code}"
            seen[kind] += 1
            raise Transient(kind, retry_after(response.headers.get("Retry-After")), excerpt(response.text))
        return response.status_code

    last: Transient | None = None
    try:
        for attempt in retrying(deadline, every, f"admin API not ready at {url}", quiet):
            with attempt:
                status = probe()
            if attempt.retry_state.outcome and not attempt.retry_state.outcome.failed:
                return ReadinessReport(url, status, sum(seen.values()) + 1, time.monotonic() - started, dict(seen))
    except tenacity.RetryError as exc:
        failure = exc.last_attempt.exception()
        last = failure if isinstance(failure, Transient) else None
    finally:
        if owned:
            http.close()
    attempts = sum(seen.values())
    hint = "check --admin-url and --ready-path" if any(k.startswith("HTTP 4") for k in seen) else (
        "is the operator running? raise --timeout if it needs longer to start")
    raise UserError(
        f"admin API at {url} not ready after {time.monotonic() - started:.1f} s "
        f"(deadline {deadline.seconds:g} s; {plural(attempts, 'attempt')}: {summary(seen)})"
        f"{past_deadline(last, deadline)}; {hint}"
    )

