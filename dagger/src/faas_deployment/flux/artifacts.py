"""A component's manifests as a Flux OCI artifact, one tag per component, for Flux Operator ResourceSets.

Delivery mode beside Helm charts: every component's rendered objects go to ONE
OCI repository (``--registry oci://HOST/PATH``), as ``flux push artifact`` would
push them, under two tags:

- ``app-<component>``: the moving tag a Flux Operator ``ResourceSetInputProvider``
  (type ``OCIArtifactTag``) watches; it is re-pointed only when the content (the
  layer digest) changed, so a commit that changes nothing in the manifests does not
  redeploy even though the ``revision``/``created`` annotations differ;
- ``app-<component>-<chart_version>``: immutable, under the chart publishing rules
  of :mod:`publishing` (same layer -> ``unchanged``; other layer -> refused, bump
  ``chart_version``; lower than the highest published -> refused).

The artifact format is Flux's (fluxcd/pkg ``oci/push.go`` ``Client.Push``,
``oci/globals.go``, ``oci/meta.go``, ``oci/constants.go``): an OCI image manifest
(``application/vnd.oci.image.manifest.v1+json``) whose config has media type
``application/vnd.cncf.flux.config.v1+json`` (go-containerregistry's config file of
an empty image with ``created`` set and the layer's diff ID), one layer
``application/vnd.cncf.flux.content.v1.tar+gzip``, and the manifest annotations
``org.opencontainers.image.created`` (RFC 3339), ``.source`` and ``.revision``
(``<branch>@sha1:<sha>``, as ``flux push artifact --revision`` documents). The
layer is reproducible (:func:`packaging.reproducible_tar_gz`).
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..bundle.objects import read_objects
from ..core import names, yaml_out
from ..core.errors import UserError, printable
from ..core.packaging import reproducible_tar_gz
from ..core.versions import decide, version_of_tag
from ..images.images import git_facts, strip_userinfo
from ..registry.credentials import RegistryCredentials
from ..registry.registry_client import MANIFEST_MEDIA_TYPE, ChartRegistry, check_root, oci_tag

FLUX_CONFIG_MEDIA_TYPE = "application/vnd.cncf.flux.config.v1+json"
FLUX_CONTENT_MEDIA_TYPE = "application/vnd.cncf.flux.content.v1.tar+gzip"
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_SOURCE = "org.opencontainers.image.source"
ANNOTATION_REVISION = "org.opencontainers.image.revision"
#: Set on the manifest copy :func:`retire` deletes, so the immutable tags keep theirs.
ANNOTATION_RETIRED = "io.faas-deployment.retired"
TAG_PREFIX = "app-"


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer_of(manifest: bytes) -> str | None:
    """The layer digest of a one-layer Flux artifact manifest; ``None`` for anything else."""
    try:
        layers = json.loads(manifest)["layers"]
        if len(layers) != 1 or layers[0]["mediaType"] != FLUX_CONTENT_MEDIA_TYPE:
            return None
        digest = layers[0]["digest"]
        return digest if isinstance(digest, str) else None
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def moving_tag(component: str) -> str:
    """``app-<component>``: the tag the ResourceSetInputProvider watches."""
    return f"{TAG_PREFIX}{component}"


def version_tag(component: str, version: str) -> str:
    """``app-<component>-<chart_version>`` (``+`` becomes ``_``, as in Helm's OCI tags)."""
    return f"{TAG_PREFIX}{component}-{oci_tag(version)}"


# --------------------------------------------------------------------------- content


def rendered_files(rendered: dict[str, str]) -> dict[str, bytes]:
    """``{template path: manifest}`` from :func:`chart.render_objects` as archive files.

    The chart-name prefix is dropped (``faas-operator/templates/deployment.yaml`` ->
    ``templates/deployment.yaml``), as ``helm template --output-dir`` lays out files
    below the chart's own directory.
    """
    return {path.split("/", 1)[-1]: text.encode() for path, text in rendered.items()}


def directory_files(directory: Path) -> dict[str, bytes]:
    """The manifests of ``directory`` (``--manifests``), validated: :func:`faas_deployment.bundle.objects.read_objects`.

    Returns:
        ``{relative POSIX path: bytes}``.

    Raises:
        ValidationError: a link, a special file, a file that is not a bounded YAML
            file of Kubernetes objects (``apiVersion``, ``kind``, ``metadata.name``),
            an unrendered ``{{`` placeholder, an object twice (every problem listed,
            never with the files' text).
    """
    return read_objects(directory)


# --------------------------------------------------------------------------- artifact bytes


@dataclass(frozen=True)
class FluxArtifact:
    """The exact bytes of one Flux OCI artifact.

    Attributes:
        layer: the ``.tar.gz`` content layer (reproducible: same files, same bytes).
        config: the config blob.
        manifest: the image manifest bytes as pushed.
        digest: ``sha256:<hex>`` of ``manifest``.
        layer_digest: ``sha256:<hex>`` of ``layer``: what "content changed" compares.
    """

    layer: bytes
    config: bytes
    manifest: bytes
    digest: str
    layer_digest: str

    def blobs(self) -> list[tuple[bytes, dict]]:
        """``(bytes, descriptor)`` for the config and the layer, as the manifest names them."""
        document = json.loads(self.manifest)
        return [(self.config, document["config"]), (self.layer, document["layers"][0])]


def _descriptor(media_type: str, data: bytes) -> dict:
    # go-containerregistry's v1.Descriptor field order: mediaType, size, digest.
    return {"mediaType": media_type, "size": len(data), "digest": _sha256(data)}


def flux_artifact(files: dict[str, bytes], *, source: str, revision: str, created: str) -> FluxArtifact:
    """Build the artifact ``flux push artifact`` would push for ``files`` (fluxcd/pkg ``oci/push.go``).

    Args:
        files: ``{relative path: content}`` of the layer.
        source: ``org.opencontainers.image.source`` (a URL; user info is stripped).
        revision: ``org.opencontainers.image.revision``, ``<branch>@sha1:<sha>``.
        created: ``org.opencontainers.image.created``, RFC 3339 UTC (``2026-01-02T03:04:05Z``).

    Raises:
        UserError: ``created`` is not RFC 3339 (Flux refuses it too: ``time.Parse(time.RFC3339, ...)``).
    """
    try:
        datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise UserError(f"created: expected an RFC 3339 UTC time like 2026-01-02T03:04:05Z, got {created!r}") from None
    layer = reproducible_tar_gz(files)
    diff_id = _sha256(gzip.decompress(layer))
    # go-containerregistry ConfigFile JSON (pkg/v1/config.go): empty.Image's config with
    # Created set by Push and one History entry and diff ID added by mutate.Append.
    config = json.dumps(
        {
            "architecture": "",
            "created": created,
            "history": [{"created": "0001-01-01T00:00:00Z"}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "config": {},
        },
        separators=(",", ":"),
    ).encode()
    annotations = {
        ANNOTATION_CREATED: created,
        ANNOTATION_REVISION: revision,
        ANNOTATION_SOURCE: strip_userinfo(source),
    }
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": _descriptor(FLUX_CONFIG_MEDIA_TYPE, config),
            "layers": [_descriptor(FLUX_CONTENT_MEDIA_TYPE, layer)],
            "annotations": dict(sorted((k, v) for k, v in annotations.items() if v)),
        },
        separators=(",", ":"),
    ).encode()
    return FluxArtifact(layer, config, manifest, _sha256(manifest), _sha256(layer))


def now_rfc3339() -> str:
    """The current UTC time as Flux writes ``created`` (RFC 3339, seconds)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


#: ``org.opencontainers.image.source`` forms: a URL a browser or git reaches (``https://``,
#: ``http://``, ``ssh://``, ``git://``) or git's scp-like ``user@host:path``; never a local path.
_SOURCE_URL = re.compile(r"^(https?|ssh|git)://[^\s/@]+(/\S*)?$|^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s/]\S*$")
_REVISION = re.compile(r"^[^\s@]+@sha1:[0-9a-f]{40}$|^[^\s@]+@sha256:[0-9a-f]{64}$|^[0-9a-f]{40}$")


def annotations_of(revision: str, source_url: str, *, where: str) -> tuple[str, str]:
    """The ``revision`` and ``source`` annotations of an artifact, checked: both are required.

    ``flux push artifact`` requires ``--source`` and ``--revision`` (fluxcd/flux2
    ``cmd/flux/push_artifact.go``: "--source is required", "--revision is required"),
    and Flux shows them as the origin of what a cluster runs: an empty one, or a
    local filesystem path as the source, says nothing to whoever reads it there.

    Args:
        revision: ``<branch>@sha1:<40 hex>`` (Flux's form; also ``<ref>@sha256:<64 hex>``
            or a bare 40-hex SHA), ``""`` when ``where`` found none.
        source_url: ``http(s)://``, ``ssh://``, ``git://`` or scp-like ``user@host:path``,
            user info stripped; ``""`` when none was found.
        where: what the defaults were read from, for the message.

    Raises:
        UserError: a missing or malformed value, naming the flag that gives it.
    """
    source_url = strip_userinfo(source_url)
    if not revision:
        raise UserError(f"--revision: {where} has no git commit to name; give --revision <branch>@sha1:<sha> "
                        f"(flux push artifact requires a revision), e.g. $CI_COMMIT_REF_NAME@sha1:$CI_COMMIT_SHA")
    if not _REVISION.match(revision):
        raise UserError(f"--revision {printable(revision)!r}: expected <branch>@sha1:<40 hex digits> (Flux's form)")
    if not source_url:
        raise UserError(f"--source-url: {where} has no git remote origin; give --source-url https://HOST/PATH "
                        f"(flux push artifact requires a source), e.g. $CI_PROJECT_URL")
    if not _SOURCE_URL.match(source_url):
        raise UserError(f"--source-url {printable(source_url)!r}: expected the repository's URL (https://HOST/PATH, "
                        f"ssh://, git:// or user@host:path), not a local path; give --source-url")
    return revision, source_url


def git_revision(source: Path) -> tuple[str, str]:
    """``(<branch>@sha1:<sha>, origin URL)`` of the git work tree at ``source``; ``("", "")`` outside git.

    A detached HEAD (as in CI) gives ``HEAD@sha1:<sha>``: pass ``--revision`` (e.g.
    ``$CI_COMMIT_REF_NAME@sha1:$CI_COMMIT_SHA``) for the branch name.
    """

    facts = git_facts(source)
    if facts is None:
        return "", ""
    done = subprocess.run(["git", "-C", str(source), "rev-parse", "--abbrev-ref", "HEAD"],
                          capture_output=True, text=True, check=False)
    branch = done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "HEAD"
    return f"{branch}@sha1:{facts.revision}", facts.source_url


# --------------------------------------------------------------------------- the repository


class ArtifactRepository:
    """The one OCI repository ``oci://HOST[:PORT]/PATH`` holding every component's ``app-*`` tags.

    It reuses :class:`registry_client.ChartRegistry` (transport, retries, auth): the repository
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
        self._registry = ChartRegistry(parent, credentials=credentials, plain_http=plain_http, ca_file=ca_file)

    @property
    def registry(self) -> ChartRegistry:
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
        layer = _layer_of(manifest)
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
            content=lambda landed: _layer_of(landed[1]) if landed else None,
            lease_config=json.loads(artifact.manifest)["config"],
        ).push()
        if version_outcome == "unchanged":  # another publisher pushed this layer meanwhile
            at_fixed = repository.layer_digest(fixed)
    manifest = at_fixed[0] if version_outcome == "unchanged" and at_fixed else artifact.manifest
    at_moving = repository.layer_digest(moving)
    if at_moving is not None and at_moving[1] == artifact.layer_digest:
        return ArtifactResult(version_outcome, "unchanged", repository.reference, component, version,
                              _sha256(at_moving[0]), artifact.layer_digest)
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
    return f"retired {repository.reference}:{tag}@{_sha256(current[0])}"


# --------------------------------------------------------------------------- Flux Operator objects

#: The Flux Operator API (controlplaneio-fluxcd/flux-operator ``api/v1``).
FLUX_OPERATOR_API = "fluxcd.controlplane.io/v1"
#: Tags the input provider exports: the moving ``app-<c>`` tags only. RE2 has no
#: look-ahead, so the immutable ``app-<c>-<semver>`` tags are left out by ``excludeTag``.
INCLUDE_TAG = "^app-.*"
EXCLUDE_TAG = r"^app-.*-[0-9]+\.[0-9]+\.[0-9]+([-_][0-9A-Za-z.+_-]*)?$"
#: The label the ResourceSet puts on what it creates (``commonMetadata``), value the set's name;
#: the Receiver finds the set's OCIRepositories by it.
ARTIFACT_SET_LABEL = "faas-deploy/artifact-set"


@dataclass(frozen=True)
class FluxObjectSettings:
    """What the generated objects need.

    Attributes:
        url: ``oci://HOST/PATH``, the artifact repository.
        name: base name of the objects (``faas-<env>`` by default).
        namespace: where the Flux Operator objects and the per-component Flux objects live.
        target_namespace: where the components' manifests are applied.
        interval: Flux reconcile interval (Go duration).
        timeout: Kustomization health-check timeout (Go duration).
        registry_secret: docker-config Secret for the registry, ``""`` for anonymous.
        receiver_secret: Secret holding the Receiver's ``token``.
        insecure: plain HTTP registry (tests only).
    """

    url: str
    name: str
    namespace: str = "flux-system"
    target_namespace: str = "default"
    interval: str = "10m"
    timeout: str = "5m"
    registry_secret: str = ""
    receiver_secret: str = "faas-receiver-token"
    insecure: bool = False


def flux_objects(settings: FluxObjectSettings) -> dict[str, dict]:
    """The Flux Operator side, as ``{file name: object}``.

    - ``resourcesetinputprovider.yaml``: type ``OCIArtifactTag`` on the repository,
      ``filter.includeTag``/``excludeTag`` (``api/v1/resourcesetinputprovider_types.go``);
      it exports per tag ``id``, ``tag`` and ``digest`` (docs/api/v1/resourcesetinputprovider.md);
      its scan (every ``settings.interval``) adds and removes components;
    - ``resourceset.yaml``: ``inputsFrom`` the provider, ``commonMetadata.labels``
      ``{ARTIFACT_SET_LABEL: settings.name}``, and per input an ``OCIRepository``
      (source.toolkit.fluxcd.io/v1) following ``ref.tag: << inputs.tag >>`` and a
      ``Kustomization`` (kustomize.toolkit.fluxcd.io/v1) with ``wait: true`` and
      ``prune: true`` (``api/v1/resourceset_types.go``);
    - ``receiver.yaml``: a ``generic-hmac`` Receiver (notification.toolkit.fluxcd.io/v1)
      whose resource is ``{kind: OCIRepository, name: "*", matchLabels: {ARTIFACT_SET_LABEL:
      settings.name}}``: a call annotates every OCIRepository of the set
      (``reconcile.fluxcd.io/requestedAt``), so source-controller resolves each
      ``app-<component>`` tag anew and a moved tag reaches the cluster at once.

    Why these kinds: notification-controller v1.9 (Flux 2.9) accepts only Flux source,
    kustomize, helm and image kinds in ``spec.resources[].kind`` (the enum of
    ``api/v1/receiver_types.go`` ``ReceiverResource``, in its CRD), so a Receiver cannot
    name the provider (HTTP 422); ``name: "*"`` requires ``matchLabels``
    (``api/v1/reference_types.go``) and lists the kind in the Receiver's namespace by
    those labels (``internal/server/receiver_handlers.go`` ``notifyDynamicResources``;
    none found: logged, still HTTP 200). The OCIRepositories follow the tag rather than
    the provider's ``digest``: an OCIRepository pinned by digest would re-fetch the same
    digest until the provider's next scan, and no Receiver kind reaches the provider.

    Raises:
        UserError: malformed ``settings.url``; ``settings.name`` not a DNS-1123 label
            (it is also the label value).
    """
    url = check_root(settings.url)
    if not names.is_dns_label(settings.name):
        raise UserError(f"name {settings.name!r}: names the Flux objects and labels their OCIRepositories; use "
                        f"lowercase letters, digits and '-' (at most {names.DNS_LABEL_MAX} characters)")
    meta = {"name": settings.name, "namespace": settings.namespace}
    labels = {ARTIFACT_SET_LABEL: settings.name}
    provider_spec: dict = {
        "type": "OCIArtifactTag",
        "url": url,
        "filter": {"includeTag": INCLUDE_TAG, "excludeTag": EXCLUDE_TAG},
    }
    if settings.registry_secret:
        provider_spec["secretRef"] = {"name": settings.registry_secret}
    if settings.insecure:
        provider_spec["insecure"] = True
    source_spec: dict = {"interval": settings.interval, "url": url, "ref": {"tag": "<< inputs.tag >>"}}
    if settings.registry_secret:
        source_spec["secretRef"] = {"name": settings.registry_secret}
    if settings.insecure:
        source_spec["insecure"] = True
    item = {"name": "<< inputs.tag >>", "namespace": settings.namespace}
    resources = [
        {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository", "metadata": item, "spec": source_spec},
        {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": item,
            "spec": {
                "interval": settings.interval,
                "sourceRef": {"kind": "OCIRepository", "name": "<< inputs.tag >>"},
                "path": "./",
                "prune": True,
                "wait": True,
                "timeout": settings.timeout,
                "targetNamespace": settings.target_namespace,
            },
        },
    ]
    provider_ref = {"apiVersion": FLUX_OPERATOR_API, "kind": "ResourceSetInputProvider", "name": settings.name}
    return {
        "resourcesetinputprovider.yaml": {"apiVersion": FLUX_OPERATOR_API, "kind": "ResourceSetInputProvider",
                                          "metadata": meta, "spec": provider_spec},
        "resourceset.yaml": {"apiVersion": FLUX_OPERATOR_API, "kind": "ResourceSet", "metadata": meta,
                             "spec": {"commonMetadata": {"labels": labels}, "inputsFrom": [provider_ref],
                                      "resources": resources}},
        "receiver.yaml": {"apiVersion": "notification.toolkit.fluxcd.io/v1", "kind": "Receiver", "metadata": meta,
                          "spec": {"type": "generic-hmac", "secretRef": {"name": settings.receiver_secret},
                                   "resources": [{"apiVersion": "source.toolkit.fluxcd.io/v1",
                                                  "kind": "OCIRepository", "name": "*", "matchLabels": dict(labels)}]}},
    }


def write_flux_objects(settings: FluxObjectSettings, out: Path) -> list[Path]:
    """Write :func:`flux_objects` as YAML files into ``out`` (created once they are valid); returns the paths,
    sorted."""
    objs = flux_objects(settings)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, obj in sorted(objs.items()):
        path = out / name
        path.write_text(yaml_out.dump(obj))
        written.append(path)
    return written


def check_component_name(component: str) -> None:
    """The tag ``app-<component>`` names Flux objects: the component must be a DNS-1123 label part."""
    if not names.is_dns_label(component) or len(moving_tag(component)) > names.DNS_LABEL_MAX:
        raise UserError(f"component {component!r}: app-<component> names Kubernetes objects; "
                        f"use lowercase letters, digits and '-' (at most {63 - len(TAG_PREFIX)} characters)")
