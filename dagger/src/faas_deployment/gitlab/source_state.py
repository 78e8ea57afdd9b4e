"""What runs in the source environment of a promotion: :class:`SourceState` and its providers.

A provider answers ``(env, component) -> SourceState``: which chart version (and,
when it can see it, which image tag) runs, whether it is healthy, and the evidence
quoted in the merge request. Three providers: the source config itself
(:class:`ConfigState`, healthy by assumption), a HelmRelease saved as JSON
(:class:`HelmReleaseStatusFile`) and the live HelmRelease read from the Kubernetes
API (:class:`ClusterState`), both read by :func:`state_from_helmrelease` after
helm-controller's ``api/v2`` types. What the promotion does with the state is
:mod:`.promoted_change`'s concern.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ruamel.yaml import YAML

from ..charts import bump
from ..core import layout, repofiles
from ..core.errors import UserError


@dataclass(frozen=True)
class SourceState:
    """What runs in the source environment, as far as a provider can tell.

    ``chart_version`` without build metadata; ``image_tag`` None when the provider
    cannot see it (a HelmRelease does not record values); ``digest`` the chart's
    ``sha256:...`` or None; ``evidence`` one or more lines for the merge request.
    """

    chart_version: str
    image_tag: str | None
    digest: str | None
    healthy: bool
    evidence: str


class SourceStateProvider(Protocol):
    """``provider(env, component) -> SourceState``: what runs in ``env``.

    Implementations: :class:`ConfigState` (the source config, always available),
    :class:`HelmReleaseStatusFile` (a HelmRelease document saved as JSON),
    :class:`ClusterState` (the live HelmRelease, :func:`state_from_helmrelease`).
    """

    def __call__(self, env: str, component: str) -> SourceState: ...


def config_values(text: str, shown: str) -> dict[str, Any]:
    """The ``default_context`` mapping (the values) of a config's ``text``, read as YAML 1.2 (ruamel, safe).

    Raises:
        UserError: no top-level ``default_context`` mapping (``shown`` names the file);
        ruamel's ``YAMLError`` for text that is not YAML.
    """
    data = YAML(typ="safe", pure=True).load(text)
    context = data.get(bump.CONTEXT_KEY) if isinstance(data, dict) else None
    if not isinstance(context, dict):
        raise UserError(f"{shown}: no top-level {bump.CONTEXT_KEY}: mapping")
    return context


@dataclass(frozen=True)
class ConfigState:
    """The source config as the state: healthy by assumption, said so in the evidence."""

    source: Path

    def __call__(self, env: str, component: str) -> SourceState:
        path = layout.config_path(self.source, env, component)
        shown = path.relative_to(self.source).as_posix()
        context = config_values(repofiles.read_text(self.source, shown), shown)
        return SourceState(str(context.get(bump.VERSION_KEY)), optional_str(context.get(bump.TAG_KEY)), None, True,
                           f"source config {shown} (not verified in the cluster)")


def optional_str(value: Any) -> str | None:
    """``None`` for ``None``, else ``str(value)``."""
    return None if value is None else str(value)


def state_from_helmrelease(document: Any, *, shown: str) -> SourceState:
    """The :class:`SourceState` of a ``helm.toolkit.fluxcd.io/v2`` HelmRelease object.

    Reads ``status.history[0]`` (newest first: ``chartVersion``, ``status``,
    ``ociDigest`` or ``digest``), the ``Ready`` condition and
    ``status.observedGeneration`` against ``metadata.generation`` (helm-controller
    ``api/v2/helmrelease_types.go``, ``snapshot_types.go``). Healthy means
    ``history[0].status == "deployed"``, ``Ready=True`` and the generation
    observed; a ``chartVersion`` of ``<version>+<digest12>`` (a ``chartRef`` to an
    OCIRepository) counts as ``<version>``.

    Raises:
        UserError: not a HelmRelease object, or no ``status.history``.
    """
    if not isinstance(document, dict) or document.get("kind") != "HelmRelease":
        raise UserError(f"{shown}: expected a HelmRelease object (kind: HelmRelease), "
                        f"e.g. from kubectl get helmrelease NAME -o json")
    status = found if isinstance(found := document.get("status"), dict) else {}
    history = status.get("history")
    if not isinstance(history, list) or not history or not isinstance(history[0], dict):
        raise UserError(f"{shown}: status.history: empty or missing; the HelmRelease has never been released")
    latest = history[0]
    version = str(latest.get("chartVersion", ""))
    listed = found if isinstance(found := status.get("conditions"), list) else []
    conditions = {str(c.get("type")): c for c in listed if isinstance(c, dict)}
    ready = conditions.get("Ready", {})
    metadata = found if isinstance(found := document.get("metadata"), dict) else {}
    generation, observed = metadata.get("generation"), status.get("observedGeneration")
    observed_ok = generation is None or observed == generation
    healthy = latest.get("status") == "deployed" and ready.get("status") == "True" and observed_ok
    name = f"{metadata.get('namespace', '')}/{metadata.get('name', '')}".strip("/")
    evidence = (
        f"HelmRelease {name}: history[0] chartVersion {version} status {latest.get('status')}"
        f" digest {latest.get('ociDigest') or latest.get('digest') or '(none)'};"
        f" Ready={ready.get('status', 'Unknown')} ({ready.get('reason', '')}: {ready.get('message', '')})"
        + ("" if observed_ok else f"; observedGeneration {observed} != generation {generation}")
    )
    digest = optional_str(latest.get("ociDigest") or latest.get("digest") or None)
    return SourceState(version.split("+", 1)[0], None, digest, healthy, evidence)


@dataclass(frozen=True)
class HelmReleaseStatusFile:
    """A HelmRelease saved as JSON (``kubectl get helmrelease -o json``), for every component.

    Raises (when called): UserError naming the file when it is unreadable or not JSON.
    """

    path: Path

    def __call__(self, env: str, component: str) -> SourceState:
        shown = str(self.path)
        try:
            document = json.loads(Path(self.path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"--source-status {shown}: cannot be read: {exc}") from None
        except json.JSONDecodeError as exc:
            raise UserError(f"--source-status {shown}: not JSON (line {exc.lineno}, column {exc.colno}): "
                            f"{exc.msg}") from None
        return state_from_helmrelease(document, shown=f"--source-status {shown}")


@dataclass(frozen=True)
class ClusterState:
    """The source environment's live HelmRelease, GET from the Kubernetes API.

    ``client``: a Kubernetes API client (:func:`rollout.make_client`), read within
    ``timeout`` seconds (a server that drips or never answers ends it there). The HelmRelease is
    ``<namespace>/<flux_name_prefix><component>`` of ``env/<env>/environment.yaml``
    (:mod:`settings`). Raises (when called): UserError when the settings are invalid
    or the API refuses or cannot be reached; never shows the kubeconfig.
    """

    source: Path
    client: Any
    timeout: float = 60.0  # seconds for the read (``rollout.GET_TIMEOUT``)

    def __call__(self, env: str, component: str) -> SourceState:
        from ..flux import rollout, settings  # the Kubernetes client only when a cluster is read
        env_settings = settings.load(self.source, env)
        name = env_settings.object_name(component)
        document = rollout.get_release(self.client, env_settings.namespace, name, timeout=self.timeout)
        return state_from_helmrelease(document, shown=f"HelmRelease {env_settings.namespace}/{name} (cluster)")

