"""The artifact repository: publish a component's Flux OCI artifact under its tags, or retire it.

The one OCI repository ``oci://HOST[:PORT]/PATH`` (:class:`ArtifactRepository`)
holds every component's ``app-*`` tags (:mod:`.artifacts`). :func:`publish`
keeps the tag rules:

- ``app-<component>``: the moving tag the Flux Operator watches; it is re-pointed
  only when the content (the layer digest) changed, so a commit that changes
  nothing in the objects does not redeploy even though the ``revision``/``created``
  annotations differ;
- ``app-<component>-<chart_version>``: immutable, under the chart publishing rules
  of :mod:`~faas_deployment.registry.publishing` (same layer -> ``unchanged``;
  other layer -> refused, bump ``chart_version``; lower than the highest
  published -> refused).

:func:`retire` deletes the moving tag of a removed component, keeping its
immutable tags, so the ResourceSet drops it and Flux prunes it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..core import names
from ..core.errors import UserError
from ..core.versions import decide, version_of_tag
from ..registry.credentials import RegistryCredentials
from ..registry.oci_manifest import oci_tag
from ..registry.registry_client import RegistryClient, check_root
from .artifacts import (
    EXCLUDE_TAG,
    FLUX_CONTENT_MEDIA_TYPE,
    TAG_PREFIX,
    FluxArtifact,
    layer_of,
    moving_tag,
    now_rfc3339,
    version_tag,
)

#: Set on the manifest copy :func:`retire` deletes, so the immutable tags keep theirs.
ANNOTATION_RETIRED = "io.faas-deployment.retired"


class ArtifactRepository:
    """The one OCI repository ``oci://HOST[:PORT]/PATH`` holding every component's ``app-*`` tags.

    It reuses :class:`registry_client.RegistryClient` (transport, retries, auth): the repository
    is ``<parent>/<last path segment>``.

    Raises:
        UserError: a malformed URL (before any network), unreachable registry, refused credentials.
    """

    def __init__(self, url: str, *, credentials: RegistryCredentials | None = None, plain_http: bool = False,
                 ca_file: str | Path | None = None):
        self.url = check_root(url)
        location = names.parse_oci_url(self.url)
        if not location.path:
            raise UserError(f"--registry: expected oci://HOST[:PORT]/PATH with a repository path, got {url!r}")
        parent_path, _, self.name = location.path.rpartition("/")
        parent = str(names.OciUrl(location.host, parent_path))
        self.reference = location.reference
        self._registry = RegistryClient(parent, credentials=credentials, plain_http=plain_http, ca_file=ca_file)

    @property
    def registry(self) -> RegistryClient:
        """The client of the repository's parent path (the repository is :attr:`name` under it)."""
        return self._registry

    def layer_digest(self, tag: str) -> tuple[bytes, str] | None:
        """``(manifest bytes, layer digest)`` at ``tag``; ``None`` when the tag is absent.

        Raises:
            UserError: the tag holds something other than a one-layer Flux artifact.
        """
        manifest = self._registry.manifest(self.name, tag)
        if manifest is None:
            return None
        layer = layer_of(manifest)
        if layer is None:
            raise UserError(
                f"{self.reference}:{tag}: not a Flux artifact (expected one {FLUX_CONTENT_MEDIA_TYPE} layer); "
                f"remove the tag or choose another repository"
            )
        return manifest, layer

    def upload(self, blobs: list[tuple[bytes, dict]]) -> None:
        """Upload ``blobs`` (``(bytes, descriptor)``) into the repository."""
        self._registry.upload_blobs(self.name, blobs)

    def clear_settled_lease(self, tag: str, layer: str) -> None:
        """Remove a publish lease left on ``tag`` now that it holds ``layer`` (:func:`lease.clear_settled`)."""
        from ..registry import lease

        lease.clear_settled(self._registry, self.name, tag, layer)

    def tags(self) -> list[str]:
        return self._registry.tags(self.name) or []  # None: the repository does not exist yet

    def put(self, tag: str, manifest: bytes, blobs: list[tuple[bytes, dict]]) -> str:
        return self._registry.push_manifest(self.name, tag, blobs, manifest)

    def delete(self, digest: str) -> None:
        self._registry.delete_manifest(self.name, digest)


@dataclass(frozen=True)
class ArtifactResult:
    """What happened to one component.

    Attributes:
        version_outcome: ``pushed`` or ``unchanged`` for ``app-<c>-<version>``.
        moving_outcome: ``moved`` or ``unchanged`` for ``app-<c>``.
        reference: ``HOST/PATH``.
        component, version: the tags' parts.
        digest: the manifest digest ``app-<c>`` now points at.
        layer_digest: the content's digest.
    """

    version_outcome: str
    moving_outcome: str
    reference: str
    component: str
    version: str
    digest: str
    layer_digest: str

    @property
    def line(self) -> str:
        return (f"{self.version_outcome} {self.reference}:{version_tag(self.component, self.version)}; "
                f"{self.moving_outcome} {self.reference}:{moving_tag(self.component)}@{self.digest}")


def publish(
    repository: ArtifactRepository, artifact: FluxArtifact, *, component: str, version: str, config: str
) -> ArtifactResult:
    """Push ``artifact`` under the tag rules of the module doc.

    A new ``app-<c>-<version>`` is pushed under the protocol of charts
    (:class:`publishing.VersionPush`: the publish lease, the state read again under
    it, the version read back), so of concurrent publishers of one version with
    other content one pushes and the others are refused.

    Args:
        config: the cookiecutter-config.yaml ``version`` comes from (named in errors).

    Returns:
        The :class:`ArtifactResult`; nothing is uploaded when both tags already
        hold the same layer.

    Raises:
        UserError: the immutable tag holds another layer, or ``version`` is lower than
            the highest ``app-<c>-<version>`` published (see :func:`versions.decide`).
    """
    from ..registry.publishing import VersionPush

    fixed, moving = version_tag(component, version), moving_tag(component)
    prefix = f"{fixed[: -len(oci_tag(version))]}"

    def read() -> tuple[list[str], str | None]:
        at = repository.layer_digest(fixed)
        return repository.tags(), at[1] if at else None

    def rules(tags: list[str], layer: str | None) -> str:
        """:func:`versions.decide` over the versions of this component's ``app-<c>-<version>`` tags."""
        published = [t[len(prefix):] for t in tags if t.startswith(prefix) and version_of_tag(t[len(prefix):])]
        return decide(config=config, name=f"{repository.reference}:{TAG_PREFIX}{component}", version=version,
                      digest=artifact.layer_digest, published_versions=published, published_digest=layer)

    at_fixed = repository.layer_digest(fixed)
    if at_fixed is not None:
        rules([], at_fixed[1])  # raises for another layer
        repository.clear_settled_lease(fixed, at_fixed[1])
        version_outcome = "unchanged"
    else:
        rules(*read())
        repository.upload(artifact.blobs())
        version_outcome = VersionPush(
            registry=repository.registry, name=repository.name, version=fixed, manifest=artifact.manifest,
            digest=artifact.layer_digest, config=config, read=read, rules=rules,
            content=lambda landed: layer_of(landed[1]) if landed else None,
            lease_config=json.loads(artifact.manifest)["config"],
        ).push()
        if version_outcome == "unchanged":  # another publisher pushed this layer meanwhile
            at_fixed = repository.layer_digest(fixed)
    manifest = at_fixed[0] if version_outcome == "unchanged" and at_fixed else artifact.manifest
    at_moving = repository.layer_digest(moving)
    if at_moving is not None and at_moving[1] == artifact.layer_digest:
        return ArtifactResult(version_outcome, "unchanged", repository.reference, component, version,
                              names.sha256_digest(at_moving[0]), artifact.layer_digest)
    # The blobs are in the repository now (pushed above, or under the unchanged tag): the manifest alone.
    digest = repository.put(moving, manifest, [])
    return ArtifactResult(
        version_outcome, "moved", repository.reference, component, version, digest, artifact.layer_digest
    )


def retire(repository: ArtifactRepository, component: str) -> str:
    """Delete ``app-<component>`` so the ResourceSet drops the component and Flux prunes it.

    distribution deletes manifests by digest, removing every tag pointing at that
    manifest (OCI distribution spec, "Deleting manifests"). So that the immutable
    ``app-<c>-<version>`` tags survive, the moving tag is first re-pointed at a copy
    of its manifest carrying one more annotation (:data:`ANNOTATION_RETIRED`), and that
    copy is deleted.

    Returns:
        ``retired HOST/PATH:app-<c>@<digest>``, or ``absent HOST/PATH:app-<c>`` when the
        component was retired already (its ``app-<c>-<version>`` tags remain).

    Raises:
        UserError: the registry refuses deletes (distribution: ``storage.delete.enabled``);
            or it holds no tag of the component at all (a misspelt name: the components
            it knows are listed).
    """
    tag = moving_tag(component)
    current = repository.layer_digest(tag)
    if current is None:
        tags = repository.tags()
        prefix = f"{tag}-"
        if any(t.startswith(prefix) and version_of_tag(t[len(prefix):]) for t in tags):
            return f"absent {repository.reference}:{tag}"
        known = sorted(t[len(TAG_PREFIX):] for t in tags if t.startswith(TAG_PREFIX) and not re.match(EXCLUDE_TAG, t))
        raise UserError(f"retire-artifact --component {component}: {repository.reference} holds no artifact of "
                        f"{component} ({tag} or {tag}-<version>): check the name; components published there: "
                        f"{', '.join(known) or 'none'}")
    document = json.loads(current[0])
    document.setdefault("annotations", {})[ANNOTATION_RETIRED] = now_rfc3339()
    copy = json.dumps(document, separators=(",", ":")).encode()
    digest = repository.put(tag, copy, [])
    repository.delete(digest)
    return f"retired {repository.reference}:{tag}@{names.sha256_digest(current[0])}"
