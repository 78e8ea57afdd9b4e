"""The Flux objects that deploy what the pipeline publishes, and the Receiver trigger.

Objects, per environment (``env/<env>/environment.yaml`` gives names and places):

- per component, an ``OCIRepository`` (``source.toolkit.fluxcd.io/v1``) watching
  ``<chart_registry>/<chart_name>`` with ``ref.semver`` and a ``layerSelector`` that
  copies Helm's chart layer (:data:`oci_manifest.HELM_CHART_LAYER_MEDIA_TYPE`) as the artifact;
- per component, a ``HelmRelease`` (``helm.toolkit.fluxcd.io/v2``) with ``chartRef``
  to that OCIRepository and install/upgrade remediation (:data:`REMEDIATION`);
- one ``Receiver`` (``notification.toolkit.fluxcd.io/v1``, ``generic-hmac``) whose
  resources are every OCIRepository and HelmRelease above.

Flux's rule with ``chartRef`` (helm-controller ``internal/controller``, the chart is
taken from the OCIRepository's artifact): the OCI tag must equal the ``Chart.yaml``
version (our publisher pushes ``<name>:<chart_version>``), and the HelmRelease's
revision becomes ``<version>+<first 12 hex of the manifest digest>``
(:func:`release_revision`).

Trigger: notification-controller's ``generic-hmac`` Receiver
(``internal/server/receiver_handlers.go``): the hook path is ``/hook/`` + hex
sha256(token + name + namespace), the header ``X-Signature: sha256=<hex
HMAC-SHA256(token, raw body)>``; 200 means the resources were annotated, 400 a bad
signature, 404 an unknown hook, 503 a Receiver not ready yet.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ..core import progress, yaml_out
from ..core.errors import UserError
from ..core.secrets import SecretValue, redact
from ..registry.oci_manifest import HELM_CHART_LAYER_MEDIA_TYPE
from .settings import Settings

"""Media type of the chart layer of Helm's OCI artifact (Helm ``pkg/registry``)."""
SOURCE_INTERVAL = "5m"
RELEASE_INTERVAL = "10m"
RELEASE_TIMEOUT = "5m"
REMEDIATION: dict[str, Any] = {
    "install": {"remediation": {"retries": 3}},
    "upgrade": {"cleanupOnFail": True, "remediation": {"retries": 3, "remediateLastFailure": True,
                                                       "strategy": "rollback"}},
}
"""Install: retry 3 times (uninstall between). Upgrade: retry 3 times, then roll back to the last
deployed release (helm-controller ``api/v2`` ``Install``/``Upgrade`` remediation)."""


@dataclass(frozen=True)
class Chart:
    """One component's chart as Flux sees it: the component, ``chart_name``."""

    component: str
    name: str


def release_revision(version: str, digest: str) -> str:
    """HelmRelease revision with ``chartRef``: ``<version>+<first 12 hex of digest>``.

    ``digest`` is the chart's OCI manifest digest (``sha256:<hex>``).
    """
    return f"{version}+{digest.split(':', 1)[-1][:12]}"


def source_revision(version: str, digest: str) -> str:
    """An OCIRepository's ``status.artifact.revision`` for a tag: ``<tag>@<digest>`` (source-controller)."""
    return f"{version}@{digest}"


def oci_repository(settings: Settings, chart: Chart, *, registry_secret: str = "",
                   insecure: bool = False) -> dict[str, Any]:
    """The OCIRepository of ``chart``; ``registry_secret`` (a ``kubernetes.io/dockerconfigjson``
    Secret) becomes ``spec.secretRef``, ``insecure`` (a plain HTTP registry) ``spec.insecure``
    (source-controller ``api/v1/ocirepository_types.go``)."""
    spec: dict[str, Any] = {
        "interval": SOURCE_INTERVAL,
        "url": f"{settings.chart_registry}/{chart.name}",
        "ref": {"semver": settings.chart_semver},
        "layerSelector": {"mediaType": HELM_CHART_LAYER_MEDIA_TYPE, "operation": "copy"},
    }
    if registry_secret:
        spec["secretRef"] = {"name": registry_secret}
    if insecure:
        spec["insecure"] = True
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "OCIRepository",
        "metadata": {"name": settings.object_name(chart.component), "namespace": settings.namespace},
        "spec": spec,
    }


def helm_release(settings: Settings, chart: Chart) -> dict[str, Any]:
    name = settings.object_name(chart.component)
    return {
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {"name": name, "namespace": settings.namespace},
        "spec": {
            "interval": RELEASE_INTERVAL,
            "timeout": RELEASE_TIMEOUT,
            "releaseName": chart.name,
            "chartRef": {"kind": "OCIRepository", "name": name, "namespace": settings.namespace},
            **REMEDIATION,
        },
    }


def receiver(settings: Settings, charts: list[Chart]) -> dict[str, Any]:
    resources = []
    for chart in charts:
        name = settings.object_name(chart.component)
        resources.append({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository", "name": name})
        resources.append({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "name": name})
    return {
        "apiVersion": "notification.toolkit.fluxcd.io/v1",
        "kind": "Receiver",
        "metadata": {"name": settings.receiver_name, "namespace": settings.namespace},
        "spec": {"type": "generic-hmac", "secretRef": {"name": receiver_secret_name(settings)},
                 "resources": resources},
    }


def receiver_secret_name(settings: Settings) -> str:
    """The Secret (key ``token``) the Receiver verifies with: ``<receiver_name>-token``."""
    return f"{settings.receiver_name}-token"


def objects(settings: Settings, charts: list[Chart], *, registry_secret: str = "",
            insecure: bool = False) -> dict[str, list[dict[str, Any]]]:
    """The files to write: ``<component>.yaml`` (OCIRepository, HelmRelease) and ``receiver.yaml``;
    ``registry_secret`` and ``insecure`` as in :func:`oci_repository`."""
    files = {f"{c.component}.yaml": [oci_repository(settings, c, registry_secret=registry_secret, insecure=insecure),
                                      helm_release(settings, c)] for c in charts}
    files["receiver.yaml"] = [receiver(settings, charts)]
    return files


#: The first line of every file :func:`write_objects` writes: how a later run knows the files it wrote.
MARKER = "# Generated by faas-deploy flux from env/{env}/. Do not edit: the next run rewrites or removes this file.\n"
_MARKER_START = MARKER.split("{", 1)[0].encode()


@dataclass(frozen=True)
class Written:
    """What :func:`write_objects` did: the files written and the stale ones removed (paths, sorted)."""

    files: list[Path]
    removed: list[Path]


def write_objects(settings: Settings, charts: list[Chart], out: Path, *, registry_secret: str = "",
                  insecure: bool = False) -> Written:
    """Write :func:`objects` under ``out`` (created) as the environment's exact set of files
    (``registry_secret``, ``insecure``: as in :func:`oci_repository`).

    Each file is one multi-document YAML stream (no anchors or aliases:
    :mod:`faas_deployment.core.yaml_out`) opening with :data:`MARKER`, written to a
    temporary file then renamed into place (a link at that name is replaced, never
    followed). Then every other regular ``*.yaml`` file directly in ``out`` that opens
    with the marker, a file an earlier run wrote for a component gone since, is
    removed: applying ``out`` must not keep a removed component deployed. Nothing
    else in ``out`` is touched (files without the marker, links, directories).

    Raises:
        UserError: ``out`` exists and is not a directory, or a file cannot be written or removed.
    """
    files = objects(settings, charts, registry_secret=registry_secret, insecure=insecure)
    partial = None
    try:
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, docs in files.items():
            path = out / name
            partial = out / f".{name}.partial"
            partial.write_text(MARKER.format(env=settings.env) + yaml_out.dump_all(docs), encoding="utf-8")
            os.replace(partial, path)
            written.append(path)
        partial = None
        removed = []
        for entry in sorted(os.scandir(out), key=lambda e: e.name):
            if entry.name in files or not entry.name.endswith(".yaml") or not entry.is_file(follow_symlinks=False):
                continue
            with open(entry.path, "rb") as handle:
                opening = handle.read(len(_MARKER_START))
            if opening == _MARKER_START:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    except OSError as exc:
        if partial is not None:
            with contextlib.suppress(OSError):
                partial.unlink()
        raise UserError(f"--out {out}: cannot write the Flux objects there: {exc.strerror or exc}") from None
    return Written(sorted(written), removed)


# --------------------------------------------------------------------------- Receiver


def hook_path(token: str, name: str, namespace: str) -> str:
    """``/hook/<hex sha256(token + name + namespace)>`` (notification-controller ``Receiver.GetWebhookPath``)."""
    return "/hook/" + hashlib.sha256((token + name + namespace).encode()).hexdigest()


def signature(token: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256(token, body)>``, the ``X-Signature`` header of ``generic-hmac``."""
    return "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


RETRIED = {404, 429, 500, 502, 503, 504}


def notify(
    settings: Settings,
    token: SecretValue,
    payload: dict[str, Any],
    *,
    deadline: float,
    receiver_url: str | None = None,
    client: httpx.Client | None = None,
    backoff: tuple[float, float] = (0.5, 4.0),
) -> str:
    """POST ``payload`` (JSON) to the environment's Receiver, signed; retry 404/429/5xx until ``deadline``.

    ``deadline`` is a ``time.monotonic()`` instant. ``receiver_url`` overrides the
    setting. Returns a line ``notified receiver <ns>/<name> at <url>: HTTP 200``
    (the hook path, derived from the token, is never shown).

    Raises:
        UserError: 400 (the signature was refused: the token differs from the
            Receiver's Secret), another 4xx, or no 200 before the deadline.
    """
    base = (receiver_url or settings.receiver_url).rstrip("/")
    secret = token.reveal()
    body = json.dumps(payload, sort_keys=True).encode()
    url = base + hook_path(secret, settings.receiver_name, settings.namespace)
    headers = {"Content-Type": "application/json", "X-Signature": signature(secret, body)}
    owned = client is None
    http = client or httpx.Client(timeout=10.0)
    wait, seen = backoff[0], []
    where = f"receiver {settings.namespace}/{settings.receiver_name} at {base}"
    try:
        while True:
            try:
                answer = http.post(url, content=body, headers=headers)
                status, text = answer.status_code, answer.text[:200]
            except httpx.TransportError as exc:
                status, text = 0, type(exc).__name__
            if status == 200:
                return f"notified {where}: HTTP 200"
            seen.append(str(status or text))
            if status and status not in RETRIED:
                why = ("the signature was refused: the token is not the one in Secret "
                       f"{receiver_secret_name(settings)}" if status == 400 else "refused")
                raise UserError(f"{where}: HTTP {status}, {why}: {redact(text, secret)}")
            if time.monotonic() + wait > deadline:
                raise UserError(f"{where}: no HTTP 200 before the deadline (answers: {', '.join(seen)}); "
                                "check that the Receiver exists and is Ready (404: unknown hook, 503: not ready)")
            progress.retry(where, f"HTTP {status}" if status else text, wait, len(seen))
            time.sleep(wait)
            wait = min(wait * 2, backoff[1])
    finally:
        if owned:
            http.close()
