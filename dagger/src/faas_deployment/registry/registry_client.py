"""OCI transport for Helm charts, on oras-py.

oras-py speaks the distribution protocol (auth challenges, blob uploads, tag
lists); this module adds what the pipeline needs on top:

- a retry policy of our own (tenacity): connection errors and 5xx are retried
  with capped exponential backoff and jitter, a bounded number of times, each
  retry announced on standard error (:func:`progress.retry`); 401, 403 and TLS
  failures (a certificate that does not verify, a server that does not speak TLS)
  fail at once with their cause. oras-py's built-in retry (fixed sleeps of up to
  83 s, on any exception) is bypassed;
- credentials set in memory only (no ``~/.docker/config.json`` is written), and
  the auth scheme (``Basic`` or ``Bearer`` token service) read from the registry's
  ``WWW-Authenticate`` challenge, once per client: with ``Basic``, every later
  request carries the credentials, so no request is answered 401 again;
- a private certificate authority (``--ca-file``) trusted for the registry's TLS;
- Helm's OCI layout (HIP-0006: config ``application/vnd.cncf.helm.config.v1+json``,
  one layer ``application/vnd.cncf.helm.chart.content.v1.tar+gzip``) built as exact
  bytes, with no ``org.opencontainers.image.created`` annotation, so a reproducible
  package always gives the same manifest digest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import ssl
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import oras.auth
import oras.container
import oras.provider
import requests
import tenacity

from ..core import names, progress, urls, versions
from ..core.deadline import DEFAULT_TIMEOUT, Deadline
from ..core.errors import UserError
from ..core.packaging import ChartPackage
from .credentials import RegistryCredentials, check_ca_file

#: Most tag-list pages followed (``Link: rel="next"``); a registry pointing further, or back to a page, is refused.
MAX_TAG_PAGES = 1000

# oras-py logs through the logging module with no handler of its own, so Python's
# last-resort handler printed its lines on stderr beside our error (for a refused
# token: "Please use basic auth with a username or password", though we did). Our
# errors say what went wrong; oras-py's lines reach an application only if it
# configures logging ("Configuring Logging for a Library", Python logging HOWTO).
logging.getLogger("oras").addHandler(logging.NullHandler())

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
HELM_CONFIG_MEDIA_TYPE = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART_LAYER_MEDIA_TYPE = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"

#: Chart.yaml fields in the order Helm's ``chart.Metadata`` marshals them.
_HELM_METADATA_ORDER = (
    "name", "home", "sources", "version", "description", "keywords", "maintainers", "icon",
    "apiVersion", "condition", "tags", "appVersion", "deprecated", "annotations",
    "kubeVersion", "dependencies", "type",
)

RETRY_ATTEMPTS = 5
RETRY_INITIAL_SECONDS = 0.5
RETRY_MAX_SECONDS = 8.0


class TransientRegistryError(Exception):
    """A 5xx answer or a broken connection: worth another try."""


class RegistryAuthError(UserError):
    """The registry refused the credentials (401) or the action (403)."""


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class HelmArtifact:
    """The exact bytes of a chart's OCI artifact.

    Attributes:
        config: the config blob (Chart.yaml metadata as JSON).
        manifest: the image manifest bytes as pushed.
        digest: ``sha256:<hex>`` of ``manifest``, the artifact's digest.
    """

    package: ChartPackage
    config: bytes
    manifest: bytes
    digest: str


def helm_artifact(package: ChartPackage) -> HelmArtifact:
    """Build the OCI artifact Helm expects for ``package`` (deterministic bytes)."""
    meta = package.metadata
    ordered = {key: meta[key] for key in _HELM_METADATA_ORDER if meta.get(key) not in (None, "", [], {})}
    config = json.dumps(ordered, separators=(",", ":")).encode()
    layer = package.path.read_bytes()
    annotations = {
        "org.opencontainers.image.title": package.name,
        "org.opencontainers.image.version": package.version,
    }
    if meta.get("description"):
        annotations["org.opencontainers.image.description"] = str(meta["description"])
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": HELM_CONFIG_MEDIA_TYPE, "digest": _sha256(config), "size": len(config)},
        "layers": [{"mediaType": HELM_CHART_LAYER_MEDIA_TYPE, "digest": _sha256(layer), "size": len(layer)}],
        "annotations": annotations,
    }
    manifest_bytes = json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode()
    return HelmArtifact(package, config, manifest_bytes, _sha256(manifest_bytes))


#: The tag Helm uses for a chart version (``+`` becomes ``_``): :func:`faas_deployment.core.versions.tag`.
oci_tag = versions.tag


def _retryable(exc: BaseException) -> bool:
    # A TLS failure is a ConnectionError to requests, but no retry cures a certificate.
    if isinstance(exc, requests.exceptions.SSLError):
        return False
    return isinstance(exc, (TransientRegistryError, requests.ConnectionError, requests.Timeout))


def _announce_retry(state: tenacity.RetryCallState) -> None:
    """``registry HOST: METHOD /path: <failure>; attempt N in S s`` on standard error (no secret: URLs hold none)."""
    owner, args = state.args[0], state.args[1:]  # the _Registry (do_request) or the _GuardedSession (ping)
    host = owner.registry_host if isinstance(owner, _GuardedSession) else owner.session.registry_host
    url = str(args[0] if args else state.kwargs.get("url", ""))
    method = str(args[1] if len(args) > 1 else state.kwargs.get("method", "GET"))
    path = urllib.parse.urlsplit(url).path or "/"
    failure = state.outcome.exception() if state.outcome is not None else None
    delay = state.next_action.sleep if state.next_action is not None else 0.0
    progress.retry(f"registry {host}: {method} {path}",
                   _describe(failure) if failure else "failed", delay, state.attempt_number)


def _deadline_of(state: tenacity.RetryCallState) -> Deadline:
    owner = state.args[0]  # the _Registry, or the _GuardedSession for _ping
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


class _GuardedSession(requests.Session):
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
    ``ValueError`` that :meth:`ChartRegistry._request` turns into "needs credentials".
    """

    def authenticate_request(self, original: requests.Response, headers: dict, refresh: bool = False):
        if getattr(self, "_basic_auth", None) is None:
            return dict(headers or {}), False
        return super().authenticate_request(original, headers, refresh=refresh)


class _Registry(oras.provider.Registry):
    """oras-py's registry client with the retry policy of this module (and :class:`_TokenAuth`)."""

    auth: Any  # oras-py's auth backend (oras-py has no types)

    def __init__(self, *, hostname: str, insecure: bool, auth_backend: str, session: _GuardedSession):
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


def check_root(root: str) -> str:
    """``oci://HOST[:PORT]/PATH`` without a trailing slash; UserError for any other form.

    The host follows the reference grammar's ``domainAndPort`` and the path its
    lowercase repository components (:mod:`names`): Helm and Flux refuse to pull
    from an uppercase path, so it is refused before anything is pushed there. A
    root with credentials (``oci://user:pass@host/...``) is refused without
    repeating it.
    """
    urls.refuse_userinfo("--registry", root)
    expected = "expected oci://HOST[:PORT]/PATH (Helm's form)"
    try:
        return str(names.parse_oci_url(root))
    except names.OciUrlError as exc:
        if exc.part == "host":
            raise UserError(f"--registry: {exc.value!r} is not a registry host; {expected}, got {root!r}") from None
        if exc.part == "path":
            raise UserError(
                f"--registry: the repository path {exc.value!r} is not valid: OCI repository paths are lowercase "
                f"letters, digits and separators ('.', '_', '-') between '/' (Helm and Flux cannot pull from "
                f"another form); got {root!r}"
            ) from None
        raise UserError(f"--registry: {expected}, got {root!r}") from None


class ChartRegistry:
    """One OCI repository root, ``oci://host[:port]/path``, holding charts at ``<root>/<name>:<version>``.

    One client is one requests session (kept-alive connections) and one reading of
    the registry's auth scheme; :meth:`fork` gives a client sharing both with its
    own bearer token (oras-py holds one token per client, and a token's scope is one
    repository).

    Args:
        root: ``oci://host/path`` (the ``oci://`` scheme is required, as in Helm).
        credentials: the registry credentials, or ``None`` for anonymous access.
        plain_http: talk HTTP instead of HTTPS (TLS is the default).
        ca_file: a PEM file of CA certificates to trust for the registry's TLS
            (a private CA), instead of the system's.

    Raises:
        UserError: malformed root, unreachable registry, a TLS failure, a registry
            that needs credentials when none were given, refused credentials.
    """

    def __init__(
        self,
        root: str,
        *,
        credentials: RegistryCredentials | None = None,
        plain_http: bool = False,
        ca_file: str | Path | None = None,
        deadline: Deadline | None = None,
        _session: tuple[_GuardedSession, str] | None = None,
    ):
        self.root = check_root(root)
        self.host = names.parse_oci_url(self.root).host
        self.credentials = credentials
        self.plain_http = plain_http
        if _session is None:
            ca = check_ca_file(ca_file)
            if plain_http:
                urls.warn_plain_http("--plain-http", urls.host_of(self.host), credentials=credentials is not None)
            session = _GuardedSession(self.host, deadline or Deadline(DEFAULT_TIMEOUT), str(ca) if ca else True)
            self._session = session
            backend = self._auth_scheme(f"{'http' if plain_http else 'https'}://{self.host}/v2/")
        else:
            session, backend = _session
            self._session = session
        self.backend = backend
        self._client = _Registry(hostname=self.host, insecure=plain_http, auth_backend=backend, session=session)
        if credentials is not None:
            self._client.auth.set_basic_auth(credentials.username, credentials.password.reveal())
            if backend == "basic":
                # The scheme is known: send the credentials with every request, not after a 401 each time.
                session.headers["Authorization"] = f"Basic {credentials.basic()}"

    @property
    def deadline(self) -> Deadline:
        return self._session.deadline

    def fork(self) -> ChartRegistry:
        """A client on the same session and auth scheme (no new probe), with its own bearer token."""
        if self.backend != "token":
            return self
        return ChartRegistry(self.root, credentials=self.credentials, plain_http=self.plain_http,
                             _session=(self._session, self.backend))

    def _fail(self, what: str, exc: BaseException) -> UserError:
        # Never the exception's text: it may quote a URL or header; only its kind is safe to show.
        if isinstance(exc, requests.exceptions.SSLError):
            hint = (
                "the registry speaks plain HTTP: pass --plain-http for a local test registry"
                if "wrong version number" in _describe(exc) or "record layer" in _describe(exc)
                else "for a registry whose certificate comes from a private CA, "
                "pass --ca-file PATH (its PEM certificate)"
            )
            return UserError(f"registry {self.host}: {what}: {_describe(exc)} ({hint})")
        return UserError(f"registry {self.host}: {what}: {_describe(exc)}")

    def _needs_credentials(self) -> UserError:
        return RegistryAuthError(
            f"registry {self.host}: the registry needs credentials: pass --username and --password "
            f"(env:NAME or file:PATH)"
        )

    def _auth_scheme(self, ping: str) -> str:
        try:
            answer = self._session.ping(ping)
        except requests.exceptions.SSLError as exc:
            raise self._fail("TLS handshake failed", exc) from None
        except (TransientRegistryError, requests.RequestException) as exc:
            raise self._fail(
                "cannot reach the registry (check the address, and --plain-http for an HTTP registry)", exc
            ) from None
        challenge = answer.headers.get("WWW-Authenticate", "")
        if challenge.lower().startswith("bearer"):
            realm = oras.auth.utils.parse_auth_header(challenge).realm or ""
            self._session.token_host = urllib.parse.urlsplit(realm).netloc or None
            return "token"
        if answer.status_code == 401 and self.credentials is None:
            raise self._needs_credentials()
        return "basic"

    def reference(self, name: str, version: str | None = None) -> str:
        """``host/path/name[:tag]`` (no scheme), as Helm and Flux print references."""
        base = f"{names.parse_oci_url(self.root).reference}/{name}"
        return f"{base}:{oci_tag(version)}" if version else base

    def _container(self, name: str, version: str | None = None) -> oras.container.Container:
        return self._client.get_container(self.reference(name, version))

    def _request(self, what: str, url: str, method: str, **kwargs: Any) -> requests.Response:
        try:
            response = self._client.do_request(url, method, **kwargs)
        except requests.exceptions.SSLError as exc:
            raise self._fail(what, exc) from None
        except (TransientRegistryError, requests.RequestException) as exc:
            raise self._fail(f"{what} failed after {RETRY_ATTEMPTS} attempts", exc) from None
        except ValueError:  # oras-py could not answer the challenge: the token service gave no token
            if self.credentials is None:
                raise self._needs_credentials() from None
            raise RegistryAuthError(
                f"registry {self.host}: {what}: the registry's token service refused the credentials "
                f"(check --username and --password)"
            ) from None
        if response.status_code == 401 and self.credentials is None:
            raise self._needs_credentials()
        if response.status_code in (401, 403):
            raise RegistryAuthError(
                f"registry {self.host}: {what}: HTTP {response.status_code}: "
                f"credentials refused or not allowed (check --username and --password)"
            )
        return response

    def _url(self, path: str) -> str:
        return f"{self._client.prefix}://{path}"

    def refuse(self, what: str, why: str) -> UserError:
        """An error refusing to go on because the registry's answers cannot be trusted (nothing was pushed)."""
        return UserError(
            f"registry {self.host}: {what}: {why}; nothing was pushed (a registry whose answers disagree "
            f"could make a push overwrite a published version: check the registry or a proxy in front of it)"
        )

    def tags(self, name: str) -> list[str] | None:
        """Every tag of ``<root>/<name>``; ``None`` when the repository does not exist.

        The answer must be distribution's: 200 with ``{"name": ..., "tags": [str, ...]}``
        (``tags`` may be ``null``), or 404 with error code ``NAME_UNKNOWN`` (OCI
        distribution spec, "Listing Tags" and error codes). Pages (``Link: rel="next"``)
        are followed up to :data:`MAX_TAG_PAGES`, never twice the same.

        Raises:
            UserError: any other answer (not JSON, a list, non-string tags, a bare 404,
                a page loop).
        """
        what = f"listing tags of {self.reference(name)}"
        tags: list[str] = []
        url = self._url(self._container(name).tags_url())
        seen: set[str] = set()
        while url:
            if url in seen or len(seen) >= MAX_TAG_PAGES:
                raise self.refuse(what, f"the pages (Link: rel=\"next\") loop or exceed {MAX_TAG_PAGES}")
            seen.add(url)
            response = self._request(what, url, "GET")
            if response.status_code == 404 and not seen - {url}:
                if _error_codes(response) == {"NAME_UNKNOWN"}:
                    return None
                raise self.refuse(what, "HTTP 404 without the NAME_UNKNOWN error a missing repository gets")
            if response.status_code != 200:
                raise UserError(f"registry {self.host}: {what}: HTTP {response.status_code}")
            try:
                body = response.json()
            except ValueError:
                raise self.refuse(what, "the answer is not JSON") from None
            page = body.get("tags") if isinstance(body, dict) else "not an object"
            if page is None:
                page = []
            if not isinstance(page, list) or not all(isinstance(t, str) for t in page):
                raise self.refuse(what, 'the answer is not {"tags": [strings]}')
            tags.extend(page)
            link = response.links.get("next", {}).get("url")
            url = requests.compat.urljoin(url, link) if link else ""
        return tags

    def _manifest(self, name: str, tag: str, method: str, accept: str = MANIFEST_MEDIA_TYPE) -> requests.Response:
        return self._request(
            f"resolving {self.reference(name, tag)}",
            self._url(self._container(name).manifest_url(tag)),
            method,
            headers={"Accept": accept},
        )

    def manifest_head_response(self, name: str, tag: str, accept: str = MANIFEST_MEDIA_TYPE) -> requests.Response:
        """``HEAD`` the manifest tagged ``tag`` accepting the media types ``accept``; the answer as is.

        Raises:
            UserError: unreachable after the retries; RegistryAuthError for 401/403.
        """
        return self._manifest(name, tag, "HEAD", accept)

    def get_manifest(self, name: str, tag: str, accept: str = MANIFEST_MEDIA_TYPE) -> tuple[str, bytes] | None:
        """``(digest, bytes)`` of the manifest tagged ``tag`` (digest computed from the bytes), or ``None`` (404).

        Raises:
            UserError: another status, or a ``Docker-Content-Digest`` that is not the bytes' digest.
        """
        response = self._manifest(name, tag, "GET", accept)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise UserError(f"registry {self.host}: resolving {self.reference(name, tag)}: HTTP {response.status_code}")
        digest = _sha256(response.content)
        claimed = response.headers.get("Docker-Content-Digest")
        if claimed and claimed != digest:
            raise self.refuse(
                f"resolving {self.reference(name, tag)}", "the manifest's bytes do not match its Docker-Content-Digest"
            )
        return digest, response.content

    def head_manifest(self, name: str, tag: str) -> tuple[int, str | None]:
        """``(status, Docker-Content-Digest)`` of ``HEAD`` by tag: 200 or 404, the digest when the registry gives one.

        Raises:
            UserError: another status.
        """
        head = self._manifest(name, tag, "HEAD")
        if head.status_code not in (200, 404):
            raise UserError(f"registry {self.host}: resolving {self.reference(name, tag)}: HTTP {head.status_code}")
        return head.status_code, head.headers.get("Docker-Content-Digest") if head.status_code == 200 else None

    def manifest_digest(self, name: str, version: str, tags: list[str] | None,
                        head: tuple[int, str | None] | None = None) -> str | None:
        """Digest of the manifest tagged ``version``, or ``None`` when the tag does not exist.

        Cross-checked: the tag list (``tags``, from :meth:`tags`) and ``HEAD`` (``head``, from
        :meth:`head_manifest`, made here when not given) must agree; when they disagree or
        ``HEAD`` gives no digest, ``GET`` by tag decides, and all three must tell one story.

        Raises:
            UserError: the answers disagree (nothing may be pushed on such a registry).
        """
        tag = oci_tag(version)
        what = f"resolving {self.reference(name, version)}"
        listed = tag in (tags or [])
        status, head_digest = head or self.head_manifest(name, tag)
        if status == 200 and head_digest and listed:
            return head_digest
        if status == 404 and not listed:
            return None  # the tag list and HEAD agree: absent
        got = self.get_manifest(name, tag)
        if got is not None and listed and (head_digest in (None, got[0])) and status == 200:
            return got[0]  # HEAD without Docker-Content-Digest (allowed), GET agrees with the list
        story = (
            f"tag list {'holds' if listed else 'lacks'} {tag}, HEAD answers {status}"
            f"{'' if status != 200 else (' with ' + head_digest if head_digest else ' without Docker-Content-Digest')}"
            ", "
            f"GET answers {'404' if got is None else got[0]}"
        )
        raise self.refuse(what, f"the registry's answers disagree ({story})")

    def upload_blobs(self, name: str, blobs: list[tuple[bytes, dict]]) -> None:
        """Upload ``blobs`` (``(bytes, descriptor)``) to ``<root>/<name>`` (two requests each: POST, PUT).

        Raises:
            UserError: the registry refused a blob (RegistryAuthError for 401/403).
        """
        container = self._container(name)
        with tempfile.TemporaryDirectory(prefix="faas-oci-") as scratch:
            for index, (data, descriptor) in enumerate(blobs):
                path = Path(scratch) / f"blob-{index}"
                path.write_bytes(data)
                try:
                    # POST and PUT, without oras-py's HEAD first: a blob is content-addressed, so
                    # uploading one the registry holds is harmless, and on a first push none is there.
                    response = self._client.put_upload(str(path), container, descriptor)
                except (TransientRegistryError, requests.RequestException) as exc:
                    raise self._fail(f"uploading blob {descriptor['digest']}", exc) from None
                except ValueError:  # oras-py: no token, or the registry started no upload (401/403 to the POST)
                    raise RegistryAuthError(
                        f"registry {self.host}: uploading a blob to {self.reference(name)}: "
                        f"push not allowed with these credentials (check --username and its push access)"
                    ) from None
                if response.status_code in (401, 403):
                    raise RegistryAuthError(
                        f"registry {self.host}: uploading a blob: HTTP {response.status_code}: "
                        "push not allowed with these credentials"
                    )
                if response.status_code not in (200, 201, 202):
                    raise UserError(
                        f"registry {self.host}: uploading blob {descriptor['digest']}: HTTP {response.status_code}"
                    )

    def put_manifest(self, name: str, tag: str, manifest: bytes) -> requests.Response:
        """``PUT`` ``manifest`` under ``tag``; the answer as is (2xx, or the registry's refusal)."""
        return self._request(
            f"pushing the manifest of {self.reference(name, tag)}",
            self._url(self._container(name, tag).manifest_url()),
            "PUT",
            headers={"Content-Type": MANIFEST_MEDIA_TYPE},
            data=manifest,
        )

    def delete_manifest(self, name: str, digest: str) -> None:
        """DELETE the manifest ``digest`` of ``<root>/<name>`` (distribution removes every tag pointing at it).

        Raises:
            UserError: the registry refused (405: deletion disabled, ``storage.delete.enabled``).
        """
        response = self._request(
            f"deleting {self.reference(name)}@{digest}",
            self._url(self._container(name).manifest_url(digest)),
            "DELETE",
        )
        if response.status_code == 405:
            raise UserError(f"registry {self.host}: deleting {self.reference(name)}@{digest}: HTTP 405: "
                            f"the registry does not allow deletes (distribution: storage.delete.enabled: true)")
        if response.status_code not in (200, 202, 404):
            raise UserError(
                f"registry {self.host}: deleting {self.reference(name)}@{digest}: HTTP {response.status_code}"
            )

    def push_manifest(self, name: str, tag: str, blobs: list[tuple[bytes, dict]], manifest: bytes) -> str:
        """Upload ``blobs`` (``(bytes, descriptor)``), then PUT ``manifest`` at ``tag``.

        Returns:
            The manifest's digest.

        Raises:
            UserError: the registry refused a blob or the manifest (RegistryAuthError for 401/403).
        """
        self.upload_blobs(name, blobs)
        response = self.put_manifest(name, tag, manifest)
        if response.status_code not in (200, 201, 202):
            raise ManifestRefused(
                f"registry {self.host}: pushing the manifest of {self.reference(name, tag)}: "
                f"HTTP {response.status_code} "
                f"{' '.join(sorted(_error_codes(response)))}".rstrip()
            )
        return _sha256(manifest)

    def manifest(self, name: str, reference: str) -> bytes | None:
        """The OCI image manifest bytes at ``reference`` (a tag or digest), or ``None`` when absent."""
        got = self.get_manifest(name, reference)
        return None if got is None else got[1]

    def push_blobs(self, artifact: HelmArtifact) -> None:
        """Upload the artifact's config and chart layer (two requests each: POST, PUT)."""
        package = artifact.package
        config = {"digest": _sha256(artifact.config), "size": len(artifact.config), "mediaType": HELM_CONFIG_MEDIA_TYPE}
        self.upload_blobs(
            package.name,
            [(artifact.config, config), (package.path.read_bytes(), json.loads(artifact.manifest)["layers"][0])],
        )

    def push_small_manifest(self, name: str, tag: str, annotations: dict[str, str], config: dict | None = None) -> str:
        """Push an OCI manifest with no layers, carrying ``annotations``; returns its digest.

        Its config is ``config`` (the descriptor of a blob already in the repository, uploaded
        by the caller), else the empty JSON blob ``{}``, uploaded first.

        Raises:
            UserError: the registry refused it.
        """
        blobs: list[tuple[bytes, dict]] = []
        if config is None:
            empty = b"{}"
            config = {"mediaType": EMPTY_MEDIA_TYPE, "digest": _sha256(empty), "size": len(empty)}
            blobs.append((empty, config))
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_MEDIA_TYPE,
                "config": config,
                "layers": [],
                "annotations": annotations,
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        return self.push_manifest(name, tag, blobs, manifest)


class ManifestRefused(UserError):
    """The registry answered a manifest ``PUT`` with a 4xx other than 401/403 (e.g. an immutable tag)."""


EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"


def _error_codes(response: requests.Response) -> set[str]:
    """The ``errors[].code`` values of a distribution error body (empty when there are none)."""
    try:
        body = response.json()
    except ValueError:
        return set()
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return set()
    return {str(e.get("code")) for e in errors if isinstance(e, dict) and isinstance(e.get("code"), str)}


def _describe(exc: BaseException) -> str:
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
