"""The registry client: one OCI repository root and the operations the pipeline does there.

A :class:`RegistryClient` serves charts (``<root>/<chart_name>:<tag>``), image tag
checks (:mod:`faas_deployment.images.image_tags`), Flux OCI artifacts
(:mod:`faas_deployment.flux.artifact_repository`) and leases (:mod:`.lease`): tag lists,
manifests by tag or digest (cross-checked, so a registry whose answers disagree is
refused before anything is pushed), blob uploads, manifest pushes and deletes.

Under it, :mod:`.transport` carries every request (retries, deadlines, auth, TLS,
credentials kept to the registry host); the bytes pushed are built by
:mod:`.oci_manifest`. Credentials are set in memory only (no
``~/.docker/config.json`` is written); once the auth scheme is read from the
registry's challenge, with ``Basic`` every later request carries the credentials,
so no request is answered 401 again. A private certificate authority
(``--ca-file``) is trusted for the registry's TLS.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import oras.container
import requests

from ..core import names, urls
from ..core.deadline import DEFAULT_TIMEOUT, Deadline
from ..core.errors import UserError
from ..core.names import sha256_digest
from .credentials import RegistryCredentials, check_ca_file
from .oci_manifest import (
    EMPTY_MEDIA_TYPE,
    HELM_CONFIG_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    HelmArtifact,
    oci_tag,
)
from .transport import (
    RETRY_ATTEMPTS,
    GuardedSession,
    OrasRegistry,
    RegistryAuthError,
    TransientRegistryError,
    auth_scheme,
    error_codes,
    failure,
    needs_credentials,
)

#: Most tag-list pages followed (``Link: rel="next"``); a registry pointing further, or back to a page, is refused.
MAX_TAG_PAGES = 1000


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


class RegistryClient:
    """The registry client for one OCI repository root, ``oci://host[:port]/path``.

    The root holds charts at ``<root>/<chart_name>:<tag>``; the same client checks
    image tags, pushes OCI artifacts and holds leases under it.

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
        _session: tuple[GuardedSession, str] | None = None,
    ):
        self.root = check_root(root)
        self.host = names.parse_oci_url(self.root).host
        self.credentials = credentials
        self.plain_http = plain_http
        if _session is None:
            ca = check_ca_file(ca_file)
            if plain_http:
                urls.warn_plain_http("--plain-http", urls.host_of(self.host), credentials=credentials is not None)
            session = GuardedSession(self.host, deadline or Deadline(DEFAULT_TIMEOUT), str(ca) if ca else True)
            self._session = session
            backend = auth_scheme(session, f"{'http' if plain_http else 'https'}://{self.host}/v2/",
                                  credentials is not None)
        else:
            session, backend = _session
            self._session = session
        self.backend = backend
        self._client = OrasRegistry(hostname=self.host, insecure=plain_http, auth_backend=backend, session=session)
        if credentials is not None:
            self._client.auth.set_basic_auth(credentials.username, credentials.password.reveal())
            if backend == "basic":
                # The scheme is known: send the credentials with every request, not after a 401 each time.
                session.headers["Authorization"] = f"Basic {credentials.basic()}"

    @property
    def deadline(self) -> Deadline:
        return self._session.deadline

    def fork(self) -> RegistryClient:
        """A client on the same session and auth scheme (no new probe), with its own bearer token."""
        if self.backend != "token":
            return self
        return RegistryClient(self.root, credentials=self.credentials, plain_http=self.plain_http,
                              _session=(self._session, self.backend))

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
            raise failure(self.host, what, exc) from None
        except (TransientRegistryError, requests.RequestException) as exc:
            raise failure(self.host, f"{what} failed after {RETRY_ATTEMPTS} attempts", exc) from None
        except ValueError:  # oras-py could not answer the challenge: the token service gave no token
            if self.credentials is None:
                raise needs_credentials(self.host) from None
            raise RegistryAuthError(
                f"registry {self.host}: {what}: the registry's token service refused the credentials "
                f"(check --username and --password)"
            ) from None
        if response.status_code == 401 and self.credentials is None:
            raise needs_credentials(self.host)
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
                if error_codes(response) == {"NAME_UNKNOWN"}:
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
        digest = sha256_digest(response.content)
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
                    raise failure(self.host, f"uploading blob {descriptor['digest']}", exc) from None
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
                f"{' '.join(sorted(error_codes(response)))}".rstrip()
            )
        return sha256_digest(manifest)

    def manifest(self, name: str, reference: str) -> bytes | None:
        """The OCI image manifest bytes at ``reference`` (a tag or digest), or ``None`` when absent."""
        got = self.get_manifest(name, reference)
        return None if got is None else got[1]

    def push_blobs(self, artifact: HelmArtifact) -> None:
        """Upload the artifact's config and chart layer (two requests each: POST, PUT)."""
        package = artifact.package
        config = {"digest": sha256_digest(artifact.config), "size": len(artifact.config),
                  "mediaType": HELM_CONFIG_MEDIA_TYPE}
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
            config = {"mediaType": EMPTY_MEDIA_TYPE, "digest": sha256_digest(empty), "size": len(empty)}
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
