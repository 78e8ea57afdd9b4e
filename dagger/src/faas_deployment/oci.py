"""OCI transport for Helm charts, on oras-py.

oras-py speaks the distribution protocol (auth challenges, blob uploads, tag
lists); this module adds what the pipeline needs on top:

- a retry policy of our own (tenacity): connection errors and 5xx are retried
  with capped exponential backoff and jitter, a bounded number of times; 401 and
  403 fail at once. oras-py's built-in retry (fixed sleeps of up to 83 s, on any
  exception) is bypassed;
- credentials set in memory only (no ``~/.docker/config.json`` is written), and
  the auth scheme (``Basic`` or ``Bearer`` token service) read from the registry's
  ``WWW-Authenticate`` challenge;
- Helm's OCI layout (HIP-0006: config ``application/vnd.cncf.helm.config.v1+json``,
  one layer ``application/vnd.cncf.helm.chart.content.v1.tar+gzip``) built as exact
  bytes, with no ``org.opencontainers.image.created`` annotation, so a reproducible
  package always gives the same manifest digest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import oras.auth
import oras.container
import oras.provider
import requests
import tenacity

from .errors import UserError
from .packaging import ChartPackage
from .secrets import SecretValue, redact

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


def oci_tag(version: str) -> str:
    """The tag Helm uses for a chart version: ``+`` is not allowed in OCI tags, so it becomes ``_``."""
    return version.replace("+", "_")


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, (TransientRegistryError, requests.ConnectionError, requests.Timeout))


_retrying = tenacity.retry(
    retry=tenacity.retry_if_exception(_retryable),
    stop=tenacity.stop_after_attempt(RETRY_ATTEMPTS),
    wait=tenacity.wait_exponential_jitter(multiplier=RETRY_INITIAL_SECONDS, max=RETRY_MAX_SECONDS),
    reraise=True,
)


@_retrying
def _ping(url: str) -> requests.Response:
    response = requests.get(url, timeout=10)
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

    def authenticate_request(  # type: ignore[override]
        self, original: requests.Response, headers: dict, refresh: bool = False
    ) -> tuple[dict, bool]:
        stale = original.status_code == 401 and self.token is not None
        return super().authenticate_request(original, headers, refresh=refresh or stale)


class _Registry(oras.provider.Registry):
    """oras-py's registry client with the retry policy of this module (and :class:`_TokenAuth`)."""

    def __init__(self, *, hostname: str, insecure: bool, auth_backend: str):
        super().__init__(hostname=hostname, insecure=insecure, auth_backend=auth_backend)
        if auth_backend == "token":
            auth = _TokenAuth()
            auth.session, auth.prefix, auth._tls_verify = self.auth.session, self.auth.prefix, self.auth._tls_verify
            self.auth = auth

    @_retrying
    def do_request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        # functools.wraps keeps the undecorated oras-py request in __wrapped__.
        response = oras.provider.Registry.do_request.__wrapped__(self, *args, **kwargs)
        if response.status_code >= 500:
            raise TransientRegistryError(f"HTTP {response.status_code} from the registry")
        return response


def check_root(root: str) -> str:
    """``oci://HOST[:PORT]/PATH`` without a trailing slash; UserError for any other form."""
    if not root.startswith("oci://") or not root[len("oci://"):].strip("/"):
        raise UserError(f"--registry: expected oci://HOST[:PORT]/PATH, got {root!r}")
    return root.rstrip("/")


class ChartRegistry:
    """One OCI repository root, ``oci://host[:port]/path``, holding charts at ``<root>/<name>:<version>``.

    Args:
        root: ``oci://host/path`` (the ``oci://`` scheme is required, as in Helm).
        username, password: credentials, or both ``None`` for anonymous access.
        plain_http: talk HTTP instead of HTTPS (TLS is the default).

    Raises:
        UserError: malformed root, unreachable registry, refused credentials.
    """

    def __init__(
        self,
        root: str,
        *,
        username: str | None = None,
        password: SecretValue | None = None,
        plain_http: bool = False,
    ):
        self.root = check_root(root)
        self.host = self.root[len("oci://"):].split("/", 1)[0]
        self._password = password
        scheme = "http" if plain_http else "https"
        backend = self._auth_scheme(f"{scheme}://{self.host}/v2/")
        self._client = _Registry(hostname=self.host, insecure=plain_http, auth_backend=backend)
        if username and password is not None:
            self._client.auth.set_basic_auth(username, password.reveal())

    def _fail(self, what: str, exc: BaseException) -> UserError:
        return UserError(redact(f"registry {self.host}: {what}: {exc}", self._password))

    def _auth_scheme(self, ping: str) -> str:
        try:
            answer = _ping(ping)
        except (TransientRegistryError, requests.RequestException) as exc:
            raise self._fail("cannot reach the registry (check the address, and --plain-http for an HTTP registry)", exc) from None
        challenge = answer.headers.get("WWW-Authenticate", "")
        return "token" if challenge.lower().startswith("bearer") else "basic"

    def reference(self, name: str, version: str | None = None) -> str:
        """``host/path/name[:tag]`` (no scheme), as Helm and Flux print references."""
        base = f"{self.root[len('oci://'):]}/{name}"
        return f"{base}:{oci_tag(version)}" if version else base

    def _container(self, name: str, version: str | None = None) -> oras.container.Container:
        return self._client.get_container(self.reference(name, version))

    def _request(self, what: str, url: str, method: str, **kwargs: Any) -> requests.Response:
        try:
            response = self._client.do_request(url, method, **kwargs)
        except (TransientRegistryError, requests.RequestException) as exc:
            raise self._fail(f"{what} failed after {RETRY_ATTEMPTS} attempts", exc) from None
        except ValueError:  # oras-py could not answer the challenge: the token service gave no token
            raise RegistryAuthError(
                f"registry {self.host}: {what}: the registry's token service refused the credentials "
                f"(check --username and --password)"
            ) from None
        if response.status_code in (401, 403):
            raise RegistryAuthError(
                f"registry {self.host}: {what}: HTTP {response.status_code}: "
                f"credentials refused or not allowed (check --username and --password)"
            )
        return response

    def _url(self, path: str) -> str:
        return f"{self._client.prefix}://{path}"

    def tags(self, name: str) -> list[str]:
        """Every tag of ``<root>/<name>``; ``[]`` when the repository does not exist yet."""
        container = self._container(name)
        tags: list[str] = []
        url = self._url(container.tags_url())
        while url:
            response = self._request(f"listing tags of {self.reference(name)}", url, "GET")
            if response.status_code == 404:
                return []
            if response.status_code != 200:
                raise UserError(f"registry {self.host}: listing tags of {self.reference(name)}: HTTP {response.status_code}")
            tags.extend(response.json().get("tags") or [])
            link = response.links.get("next", {}).get("url")
            url = requests.compat.urljoin(url, link) if link else ""
        return tags

    def manifest_digest(self, name: str, version: str) -> str | None:
        """Digest of the manifest tagged ``version``, or ``None`` when the tag does not exist."""
        container = self._container(name, version)
        response = self._request(
            f"resolving {self.reference(name, version)}",
            self._url(container.manifest_url()),
            "HEAD",
            headers={"Accept": MANIFEST_MEDIA_TYPE},
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise UserError(f"registry {self.host}: resolving {self.reference(name, version)}: HTTP {response.status_code}")
        return response.headers.get("Docker-Content-Digest")

    def push(self, artifact: HelmArtifact) -> str:
        """Upload the artifact's blobs (skipping those present) and tag its manifest.

        Returns:
            The manifest digest the registry reports (equal to ``artifact.digest``).
        """
        package = artifact.package
        layer = json.loads(artifact.manifest)["layers"][0]
        return self.push_manifest(
            package.name, package.version,
            [(artifact.config, {"digest": _sha256(artifact.config), "size": len(artifact.config), "mediaType": HELM_CONFIG_MEDIA_TYPE}),
             (package.path.read_bytes(), layer)],
            artifact.manifest,
        )

    def push_manifest(self, name: str, tag: str, blobs: list[tuple[bytes, dict]], manifest: bytes) -> str:
        """Upload ``blobs`` (``(bytes, descriptor)``; oras-py skips those present), then PUT ``manifest`` at ``tag``.

        Returns:
            The manifest digest the registry reports.

        Raises:
            UserError: the registry refused a blob or the manifest (RegistryAuthError for 401/403).
        """
        container = self._container(name, tag)
        with tempfile.TemporaryDirectory(prefix="faas-oci-") as scratch:
            for index, (data, descriptor) in enumerate(blobs):
                path = Path(scratch) / f"blob-{index}"
                path.write_bytes(data)
                try:
                    response = self._client.upload_blob(str(path), container, descriptor)
                except (TransientRegistryError, requests.RequestException) as exc:
                    raise self._fail(f"uploading blob {descriptor['digest']}", exc) from None
                except ValueError:  # oras-py: no token, or the registry started no upload (401/403 to the POST)
                    raise RegistryAuthError(
                        f"registry {self.host}: uploading a blob to {self.reference(name)}: "
                        f"push not allowed with these credentials (check --username and its push access)"
                    ) from None
                if response.status_code in (401, 403):
                    raise RegistryAuthError(f"registry {self.host}: uploading a blob: HTTP {response.status_code}: push not allowed with these credentials")
                if response.status_code not in (200, 201, 202):
                    raise UserError(f"registry {self.host}: uploading blob {descriptor['digest']}: HTTP {response.status_code}")
        response = self._request(
            f"pushing the manifest of {self.reference(name, tag)}",
            self._url(container.manifest_url()),
            "PUT",
            headers={"Content-Type": MANIFEST_MEDIA_TYPE},
            data=manifest,
        )
        if response.status_code not in (200, 201, 202):
            raise UserError(
                f"registry {self.host}: pushing the manifest of {self.reference(name, tag)}: "
                f"HTTP {response.status_code}: {redact(response.text[:300], self._password)}"
            )
        return response.headers.get("Docker-Content-Digest") or _sha256(manifest)

    def manifest(self, name: str, reference: str) -> bytes | None:
        """The OCI image manifest bytes at ``reference`` (a tag or digest), or ``None`` when absent."""
        at = f"@{reference}" if reference.startswith("sha256:") else f":{reference}"
        container = self._client.get_container(self.reference(name) + at)
        response = self._request(
            f"reading {self.reference(name, reference)}", self._url(container.manifest_url()), "GET",
            headers={"Accept": MANIFEST_MEDIA_TYPE},
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise UserError(f"registry {self.host}: reading {self.reference(name, reference)}: HTTP {response.status_code}")
        return response.content

    def delete_manifest(self, name: str, digest: str) -> None:
        """DELETE the manifest ``digest`` of ``<root>/<name>`` (distribution removes every tag pointing at it).

        Raises:
            UserError: the registry refused (405: deletion disabled, ``storage.delete.enabled``).
        """
        url = self._url(self._client.get_container(f"{self.reference(name)}@{digest}").manifest_url())
        response = self._request(f"deleting {self.reference(name)}@{digest}", url, "DELETE")
        if response.status_code == 405:
            raise UserError(f"registry {self.host}: deleting {self.reference(name)}@{digest}: HTTP 405: "
                            f"the registry does not allow deletes (distribution: storage.delete.enabled: true)")
        if response.status_code not in (200, 202, 404):
            raise UserError(f"registry {self.host}: deleting {self.reference(name)}@{digest}: HTTP {response.status_code}")
