"""HTTP transport to an OCI registry, on oras-py and requests: retries, deadlines, auth backends, TLS failures.

oras-py speaks the distribution protocol (auth challenges, blob uploads, tag
lists); this module adds what the pipeline needs under the
:class:`~faas_deployment.registry.registry_client.RegistryClient`:

- a retry policy of our own (tenacity): connection errors and 5xx are retried
  with capped exponential backoff and jitter, a bounded number of times
  (:data:`RETRY_ATTEMPTS`), never past the deadline, each retry announced on
  standard error (:func:`progress.retry`); 401, 403 and TLS failures (a
  certificate that does not verify, a server that does not speak TLS) fail at
  once with their cause. oras-py's built-in retry (fixed sleeps of up to 83 s, on
  any exception) is bypassed;
- a session (:class:`GuardedSession`) that talks only to the registry host and
  its token service, with timeouts within the deadline and the ``--ca-file`` trust;
- the auth scheme (``Basic`` or ``Bearer`` token service) read from the registry's
  ``WWW-Authenticate`` challenge (:func:`auth_scheme`), and oras-py's auth
  backends fixed where they fail (:class:`_TokenAuth`, :class:`_BasicAuth`);
- transport failures worded without their text, which may quote URLs or headers
  (:func:`failure`, :func:`describe`), and distribution's error codes
  (:func:`error_codes`).
"""

from __future__ import annotations

import logging
import ssl
import urllib.parse
from typing import Any

import oras.auth
import oras.provider
import requests
import tenacity

from ..core import progress
from ..core.deadline import Deadline
from ..core.errors import UserError

# oras-py logs through the logging module with no handler of its own, so Python's
# last-resort handler printed its lines on stderr beside our error (for a refused
# token: "Please use basic auth with a username or password", though we did). Our
# errors say what went wrong; oras-py's lines reach an application only if it
# configures logging ("Configuring Logging for a Library", Python logging HOWTO).
logging.getLogger("oras").addHandler(logging.NullHandler())

RETRY_ATTEMPTS = 5
RETRY_INITIAL_SECONDS = 0.5
RETRY_MAX_SECONDS = 8.0


class TransientRegistryError(Exception):
    """A 5xx answer or a broken connection: worth another try."""


class RegistryAuthError(UserError):
    """The registry refused the credentials (401) or the action (403)."""



def _retryable(exc: BaseException) -> bool:
    # A TLS failure is a ConnectionError to requests, but no retry cures a certificate.
    if isinstance(exc, requests.exceptions.SSLError):
        return False
    return isinstance(exc, (TransientRegistryError, requests.ConnectionError, requests.Timeout))


def _announce_retry(state: tenacity.RetryCallState) -> None:
    """``registry HOST: METHOD /path: <failure>; attempt N in S s`` on standard error (no secret: URLs hold none)."""
    owner, args = state.args[0], state.args[1:]  # the OrasRegistry (do_request) or the GuardedSession (ping)
    host = owner.registry_host if isinstance(owner, GuardedSession) else owner.session.registry_host
    url = str(args[0] if args else state.kwargs.get("url", ""))
    method = str(args[1] if len(args) > 1 else state.kwargs.get("method", "GET"))
    path = urllib.parse.urlsplit(url).path or "/"
    failure = state.outcome.exception() if state.outcome is not None else None
    delay = state.next_action.sleep if state.next_action is not None else 0.0
    progress.retry(f"registry {host}: {method} {path}",
                   describe(failure) if failure else "failed", delay, state.attempt_number)


def _deadline_of(state: tenacity.RetryCallState) -> Deadline:
    owner = state.args[0]  # the OrasRegistry, or the GuardedSession for _ping
    return owner.deadline


class _BoundedWait(tenacity.wait.wait_base):
    """Capped exponential backoff with jitter, never past the deadline of the call's owner."""

    def __init__(self, base: tenacity.wait.wait_base):
        self.base = base

    def __call__(self, state: tenacity.RetryCallState) -> float:
        return min(self.base(state), _deadline_of(state).remaining())


class _DeadlineStop(tenacity.stop.stop_base):
    def __call__(self, state: tenacity.RetryCallState) -> bool:
        return _deadline_of(state).remaining() <= 0


_retrying = tenacity.retry(
    retry=tenacity.retry_if_exception(_retryable),
    stop=tenacity.stop_after_attempt(RETRY_ATTEMPTS) | _DeadlineStop(),
    wait=_BoundedWait(tenacity.wait_exponential_jitter(multiplier=RETRY_INITIAL_SECONDS, max=RETRY_MAX_SECONDS)),
    before_sleep=_announce_retry,
    reraise=True,
)


class GuardedSession(requests.Session):
    """A requests session that keeps credentials home and time bounded.

    - Only the registry host and its token service (the ``realm`` of the registry's
      challenge) are contacted: a ``Link`` or ``Location`` header pointing at another
      host is refused, so credentials never travel there (oras-py would resend them
      after that host's 401).
    - Every request gets connect/read timeouts within the deadline, and none starts
      after it.
    """

    def __init__(self, registry_host: str, deadline: Deadline, verify: bool | str = True):
        super().__init__()
        self.registry_host = registry_host
        self.token_host: str | None = None
        self.deadline = deadline
        self.verify = verify

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        target = urllib.parse.urlsplit(url).netloc.lower()
        if target != self.registry_host.lower() and target != (self.token_host or "").lower():
            raise UserError(
                f"registry {self.registry_host}: the registry pointed the client to another host ({target}) "
                f"in a Link or Location header; refused: credentials go only to the registry and its token service"
            )
        self.deadline.check(f"registry {self.registry_host}")
        kwargs["timeout"] = self.deadline.request_timeout()
        kwargs.setdefault("allow_redirects", True)
        if kwargs.get("verify") in (None, True):
            # Explicitly: requests would otherwise prefer $REQUESTS_CA_BUNDLE over the session's --ca-file.
            kwargs["verify"] = self.verify
        return super().request(method, url, *args, **kwargs)

    def rebuild_auth(self, prepared_request, response) -> None:
        # A redirect to another host loses every credential header (requests strips only Authorization).
        super().rebuild_auth(prepared_request, response)
        if urllib.parse.urlsplit(prepared_request.url).netloc.lower() != self.registry_host.lower():
            prepared_request.headers.pop("Authorization", None)

    @_retrying
    def ping(self, url: str) -> requests.Response:
        response = self.get(url)
        if response.status_code >= 500:
            raise TransientRegistryError(f"HTTP {response.status_code} from the registry")
        return response


class _TokenAuth(oras.auth.TokenAuth):
    """oras-py's ``token`` backend, asking for a new token when the held one lacks the scope.

    oras-py keeps one token per client and, on a 401 to a request that carried it,
    sends the same token again (it asks anew only after a 403). A token service
    grants the scope of one challenge (``repository:NAME:pull`` for a tag list,
    ``pull,push`` for an upload), and distribution answers a token without the
    needed scope with 401 ``error="insufficient_scope"`` (Docker token
    authentication spec), so the next repository or the first push would fail.
    Here a 401 to a tokened request drops the token, and oras-py requests one for
    the new challenge's scope with the Basic credentials.
    """

    def authenticate_request(
        self, original: requests.Response, headers: dict, refresh: bool = False
    ) -> tuple[dict, bool]:
        stale = original.status_code == 401 and self.token is not None
        return super().authenticate_request(original, headers, refresh=refresh or stale)


class _BasicAuth(oras.auth.BasicAuth):
    """oras-py's ``basic`` backend, declining a challenge when it holds no credentials.

    oras-py's own reads an attribute it never set (``AttributeError: 'BasicAuth'
    object has no attribute '_basic_auth'``); declining makes oras-py raise the
    ``ValueError`` that :meth:`RegistryClient._request` turns into "needs credentials".
    """

    def authenticate_request(self, original: requests.Response, headers: dict, refresh: bool = False):
        if getattr(self, "_basic_auth", None) is None:
            return dict(headers or {}), False
        return super().authenticate_request(original, headers, refresh=refresh)


class OrasRegistry(oras.provider.Registry):
    """oras-py's registry client with the retry policy of this module (and :class:`_TokenAuth`)."""

    auth: Any  # oras-py's auth backend (oras-py has no types)

    def __init__(self, *, hostname: str, insecure: bool, auth_backend: str, session: GuardedSession):
        super().__init__(hostname=hostname, insecure=insecure, auth_backend=auth_backend, tls_verify=session.verify)
        self.session = session
        self.deadline = session.deadline
        auth = _TokenAuth() if auth_backend == "token" else _BasicAuth()
        auth.prefix, auth._tls_verify = self.auth.prefix, self.auth._tls_verify
        self.auth = auth
        self.auth.session = session

    @_retrying
    def do_request(self, *args: Any, **kwargs: Any) -> requests.Response:
        # functools.wraps keeps the undecorated oras-py request in __wrapped__.
        response = oras.provider.Registry.do_request.__wrapped__(self, *args, **kwargs)
        if response.status_code >= 500:
            raise TransientRegistryError(f"HTTP {response.status_code} from the registry")
        return response


def failure(host: str, what: str, exc: BaseException) -> UserError:
    """The error of a request to registry ``host`` that failed with ``exc``, with a hint for a TLS failure.

    Never the exception's text: it may quote a URL or header; only its kind is shown (:func:`describe`).
    """
    if isinstance(exc, requests.exceptions.SSLError):
        hint = (
            "the registry speaks plain HTTP: pass --plain-http for a local test registry"
            if "wrong version number" in describe(exc) or "record layer" in describe(exc)
            else "for a registry whose certificate comes from a private CA, "
            "pass --ca-file PATH (its PEM certificate)"
        )
        return UserError(f"registry {host}: {what}: {describe(exc)} ({hint})")
    return UserError(f"registry {host}: {what}: {describe(exc)}")


def needs_credentials(host: str) -> RegistryAuthError:
    """The error for registry ``host`` answering 401 to a client without credentials."""
    return RegistryAuthError(
        f"registry {host}: the registry needs credentials: pass --username and --password "
        f"(env:NAME or file:PATH)"
    )


def auth_scheme(session: GuardedSession, ping: str, has_credentials: bool) -> str:
    """``"token"`` or ``"basic"``: the oras-py auth backend for the challenge the registry answers ``GET ping`` with.

    ``ping`` is the registry's ``/v2/`` URL (distribution spec, "API version
    check"). A ``Bearer`` challenge (Docker token authentication spec) gives
    ``"token"`` and sets the session's token service host (its ``realm``); any other
    answer gives ``"basic"``.

    Raises:
        UserError: the TLS handshake failed, the registry cannot be reached (after
            the retries); RegistryAuthError: it answers 401 and ``has_credentials`` is false.
    """
    try:
        answer = session.ping(ping)
    except requests.exceptions.SSLError as exc:
        raise failure(session.registry_host, "TLS handshake failed", exc) from None
    except (TransientRegistryError, requests.RequestException) as exc:
        raise failure(
            session.registry_host,
            "cannot reach the registry (check the address, and --plain-http for an HTTP registry)", exc
        ) from None
    challenge = answer.headers.get("WWW-Authenticate", "")
    if challenge.lower().startswith("bearer"):
        realm = oras.auth.utils.parse_auth_header(challenge).realm or ""
        session.token_host = urllib.parse.urlsplit(realm).netloc or None
        return "token"
    if answer.status_code == 401 and not has_credentials:
        raise needs_credentials(session.registry_host)
    return "basic"


def error_codes(response: requests.Response) -> set[str]:
    """The ``errors[].code`` values of a distribution error body (empty when there are none)."""
    try:
        body = response.json()
    except ValueError:
        return set()
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return set()
    return {str(e.get("code")) for e in errors if isinstance(e, dict) and isinstance(e.get("code"), str)}


def describe(exc: BaseException) -> str:
    """A transport failure's kind, without its text (which may quote URLs and headers)."""
    if isinstance(exc, TransientRegistryError):
        return str(exc)  # our own text: "HTTP <status> from the registry"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS failed: " + _tls_cause(exc)
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed (refused, reset or name not resolved)"
    return type(exc).__name__


def _tls_cause(exc: BaseException) -> str:
    """The ``ssl`` module's reason inside a requests TLS failure (``certificate verify failed: self-signed
    certificate``, ``wrong version number``), never the URL around it."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        item = todo.pop(0)
        if id(item) in seen or not isinstance(item, BaseException):
            continue
        seen.add(id(item))
        if isinstance(item, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {item.verify_message}"
        if isinstance(item, ssl.SSLError) and item.reason:
            return str(item.reason).lower().replace("_", " ")
        todo += [*item.args, getattr(item, "reason", None), item.__cause__, item.__context__]
    return "the TLS handshake failed"
