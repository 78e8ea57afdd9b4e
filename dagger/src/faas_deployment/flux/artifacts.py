"""A component's objects as a Flux OCI artifact: its bytes, its tags and its annotations.

Delivery mode beside Helm charts: every component's rendered objects go to ONE
OCI repository (``--repository oci://HOST/PATH``), as ``flux push artifact`` would
push them, under two tags (:func:`moving_tag`, :func:`version_tag`):

- ``app-<component>``: the moving tag a Flux Operator ``ResourceSetInputProvider``
  (type ``OCIArtifactTag``) watches (:mod:`.flux_operator`, :data:`INCLUDE_TAG`);
- ``app-<component>-<chart_version>``: immutable (:data:`EXCLUDE_TAG` keeps it
  from the provider).

How they are pushed, moved and retired is :mod:`.artifact_repository`.

The artifact format is Flux's (fluxcd/pkg ``oci/push.go`` ``Client.Push``,
``oci/globals.go``, ``oci/meta.go``, ``oci/constants.go``): an OCI image manifest
(``application/vnd.oci.image.manifest.v1+json``) whose config has media type
``application/vnd.cncf.flux.config.v1+json`` (go-containerregistry's config file of
an empty image with ``created`` set and the layer's diff ID), one layer
``application/vnd.cncf.flux.content.v1.tar+gzip``, and the manifest annotations
``org.opencontainers.image.created`` (RFC 3339), ``.source`` and ``.revision``
(``<branch>@sha1:<sha>``, as ``flux push artifact --revision`` documents). The
layer is reproducible (:func:`packaging.reproducible_tar_gz`); its files are a
chart's rendered templates (:func:`rendered_files`) or a directory of objects
(:func:`directory_files`).
"""

from __future__ import annotations

import datetime
import gzip
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..bundle.objects import read_objects
from ..core import names
from ..core.errors import UserError, printable
from ..core.packaging import reproducible_tar_gz
from ..images.images import git_facts, strip_userinfo
from ..registry.oci_manifest import MANIFEST_MEDIA_TYPE, oci_tag

FLUX_CONFIG_MEDIA_TYPE = "application/vnd.cncf.flux.config.v1+json"
FLUX_CONTENT_MEDIA_TYPE = "application/vnd.cncf.flux.content.v1.tar+gzip"
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_SOURCE = "org.opencontainers.image.source"
ANNOTATION_REVISION = "org.opencontainers.image.revision"
TAG_PREFIX = "app-"
#: Tags the input provider exports: the moving ``app-<c>`` tags only. RE2 has no
#: look-ahead, so the immutable ``app-<c>-<semver>`` tags are left out by ``excludeTag``.
INCLUDE_TAG = "^app-.*"
EXCLUDE_TAG = r"^app-.*-[0-9]+\.[0-9]+\.[0-9]+([-_][0-9A-Za-z.+_-]*)?$"


def layer_of(manifest: bytes) -> str | None:
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


def check_component_name(component: str) -> None:
    """The tag ``app-<component>`` names Flux objects: the component must be a DNS-1123 label part."""
    if not names.is_dns_label(component) or len(moving_tag(component)) > names.DNS_LABEL_MAX:
        raise UserError(f"component {component!r}: app-<component> names Kubernetes objects; "
                        f"use lowercase letters, digits and '-' (at most {63 - len(TAG_PREFIX)} characters)")


# --------------------------------------------------------------------------- content


def rendered_files(rendered: dict[str, str]) -> dict[str, bytes]:
    """``{template path: manifest}`` from :func:`chart.render_objects` as archive files.

    The chart-name prefix is dropped (``faas-operator/templates/deployment.yaml`` ->
    ``templates/deployment.yaml``), as ``helm template --output-dir`` lays out files
    below the chart's own directory.
    """
    return {path.split("/", 1)[-1]: text.encode() for path, text in rendered.items()}


def directory_files(directory: Path) -> dict[str, bytes]:
    """The objects of ``directory`` (``--objects``), validated: :func:`faas_deployment.bundle.objects.read_objects`.

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
    return {"mediaType": media_type, "size": len(data), "digest": names.sha256_digest(data)}


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
    diff_id = names.sha256_digest(gzip.decompress(layer))
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
    return FluxArtifact(layer, config, manifest, names.sha256_digest(manifest), names.sha256_digest(layer))


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

