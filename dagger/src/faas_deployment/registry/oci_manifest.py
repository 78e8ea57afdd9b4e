"""OCI manifests as exact bytes: media types, digests, and Helm's chart manifest (HIP-0006).

A digest is ``sha256:<hex>`` of the bytes (OCI image spec, "Digests"), so "same
content" means same bytes. Helm's OCI layout (HIP-0006: config
``application/vnd.cncf.helm.config.v1+json``, one layer
``application/vnd.cncf.helm.chart.content.v1.tar+gzip``) is built here as exact
bytes, with no ``org.opencontainers.image.created`` annotation, so a reproducible
package always gives the same manifest digest. Pushing them is
:mod:`.registry_client`'s concern.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..core import versions
from ..core.names import sha256_digest
from ..core.packaging import ChartPackage

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
#: The empty JSON blob ``{}`` as a config (OCI image spec, "Guidance for an Empty Descriptor").
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
HELM_CONFIG_MEDIA_TYPE = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART_LAYER_MEDIA_TYPE = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"

#: Chart.yaml fields in the order Helm's ``chart.Metadata`` marshals them.
_HELM_METADATA_ORDER = (
    "name", "home", "sources", "version", "description", "keywords", "maintainers", "icon",
    "apiVersion", "condition", "tags", "appVersion", "deprecated", "annotations",
    "kubeVersion", "dependencies", "type",
)


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
        "config": {"mediaType": HELM_CONFIG_MEDIA_TYPE, "digest": sha256_digest(config), "size": len(config)},
        "layers": [{"mediaType": HELM_CHART_LAYER_MEDIA_TYPE, "digest": sha256_digest(layer), "size": len(layer)}],
        "annotations": annotations,
    }
    manifest_bytes = json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode()
    return HelmArtifact(package, config, manifest_bytes, sha256_digest(manifest_bytes))


#: The tag Helm uses for a chart version (``+`` becomes ``_``): :func:`faas_deployment.core.versions.tag`.
oci_tag = versions.tag
