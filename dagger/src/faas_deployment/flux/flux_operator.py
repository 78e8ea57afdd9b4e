"""The Flux Operator objects that deploy the artifact repository's components.

A ``ResourceSetInputProvider`` watching the moving ``app-<component>`` tags
(:mod:`.artifacts`), a ``ResourceSet`` making one ``OCIRepository`` and one
``Kustomization`` per tag, and a ``Receiver`` that makes every OCIRepository of
the set reconcile at once (:func:`flux_objects`, which says why these kinds);
``artifact-objects`` writes them (:func:`write_flux_objects`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core import names, yaml_out
from ..core.errors import UserError
from ..registry.registry_client import check_root
from .artifacts import EXCLUDE_TAG, INCLUDE_TAG

#: The Flux Operator API (controlplaneio-fluxcd/flux-operator ``api/v1``).
FLUX_OPERATOR_API = "fluxcd.controlplane.io/v1"
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

