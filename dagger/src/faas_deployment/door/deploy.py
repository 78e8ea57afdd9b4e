"""Flux verbs: ``flux`` (the environment's Flux objects), ``deploy`` (publish, request a
reconcile, wait for each HelmRelease) and ``wait``.

The wait is :mod:`faas_deployment.flux.rollout`'s, its outcomes
:mod:`faas_deployment.flux.rollout_outcome`'s; the deploy's order (publish, trigger,
wait, then the bundle) is :mod:`faas_deployment.flux.deploy`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import UserError
from . import charts
from .defaults import FLUX_NAMESPACE
from .results import Result, make_result, reveal
from .running import check_timeout, tempdir
from .workspace import Registry, Workspace

if TYPE_CHECKING:
    from ..core.secrets import SecretValue
    from ..flux.flux import Chart
    from ..flux.rollout_outcome import Expected
    from ..flux.settings import Settings



def expected_for(ws: Workspace, env: str, component: str) -> Expected:
    """What ``publish`` pushes for ``component``: chart name, version and manifest digest (packaged locally,
    :func:`charts.package_chart`; the digest of the Helm OCI manifest, :func:`oci_manifest.helm_artifact`)."""
    from ..flux.rollout_outcome import Expected
    from ..registry.oci_manifest import helm_artifact

    with tempdir(prefix="faas-wait-") as scratch:
        package = charts.package_chart(ws, env, component, Path(scratch))
        return Expected(package.name, package.version, helm_artifact(package).digest)


def chart_names(ws: Workspace, env: str) -> list[Chart]:
    """Every component of ``env`` with its ``chart_name`` (validated configs)."""
    from ..flux.flux import Chart

    return [Chart(c, ws.values(env, c)["chart_name"]) for c in ws.components(env)]

def flux(ws: Workspace, env: str, out: Path, *, registry_secret: str = "", plain_http: bool = False) -> Result:
    """``flux``: the environment's Flux objects (OCIRepository, HelmRelease, Receiver) written into ``out``;
    ``registry_secret``: the OCIRepositories' pull Secret; ``plain_http``: their ``insecure: true``.

    Raises:
        UserError: ``registry_secret`` is not a DNS-1123 subdomain (a Secret name).
    """
    from ..core import names
    from ..flux import flux as flux_objects

    if registry_secret and not names.is_dns_subdomain(registry_secret):
        raise UserError(f"--registry-secret {registry_secret!r}: expected a Secret name (DNS-1123 subdomain: "
                        "lower-case letters, digits, '-' and '.', at most 253 characters)")
    written = flux_objects.write_objects(ws.settings(env), chart_names(ws, env), Path(out),
                                 registry_secret=registry_secret, insecure=plain_http)
    return make_result([str(p) for p in written.files] + [f"removed {p}" for p in written.removed],
                   {"files": written.files, "removed": written.removed}, path=Path(out))


def deploy_registry(env_settings: Settings, registry: Registry, timeout: float | None = None) -> Registry:
    """The registry ``deploy`` publishes to: ``registry.registry`` when given, else the environment's
    ``chart_registry``, with its ``chart_registry_immutable_tags``; within ``timeout`` s (default:
    ``deploy_timeout``)."""
    timeout = check_timeout(timeout)
    registry = replace(registry, timeout=env_settings.deploy_timeout if timeout is None else timeout)
    if registry.registry is not None:
        return registry
    return replace(registry, registry=env_settings.chart_registry,
                   immutable_tags=registry.immutable_tags or env_settings.chart_registry_immutable_tags)


def deploy(ws: Workspace, env: str, *, component: str | None = None, registry: Registry | None = None,
           receiver_token: SecretValue | None = None, trigger_api: bool = False,
           kubeconfig: SecretValue | None = None, kube_context: str | None = None, timeout: float | None = None,
           receiver_url: str | None = None, upload_token: SecretValue | None = None, admin_url: str | None = None,
           prerelease: str = "", environ: Mapping[str, str] | None = None) -> Result:
    """``deploy``: publish, trigger Flux (Receiver or Kubernetes API), wait for each HelmRelease.

    One deadline (``timeout``, default ``deploy_timeout`` of ``environment.yaml``)
    bounds the whole deploy, the publishing included. The result's exit code is
    the rollouts' (:func:`rollout_outcome.exit_code`).

    Raises:
        UserError: not exactly one trigger; see :func:`deploy.deploy`.
    """
    import os

    from ..flux import deploy as rollouts
    from ..flux import rollout

    registry = registry or Registry()
    timeout = check_timeout(timeout)
    names = ws.resolve(env, component)
    if (receiver_token is None) == (not trigger_api):
        raise UserError("deploy: give exactly one trigger, --receiver-token (Flux Receiver) or --trigger-api")
    env_settings = ws.settings(env)
    target = charts.target(ws, env, deploy_registry(env_settings, registry, timeout))
    receiver_token, upload_token = reveal(receiver_token), reveal(upload_token)
    from ..core.secrets import refuse_inside

    for secret, flag in ((receiver_token, "--receiver-token"), (upload_token, "--admin-token")):
        refuse_inside(secret, flag, {"--receiver-url": receiver_url, "--admin-url": admin_url,
                                     "--registry": registry.registry, "--prerelease": prerelease})
    client = rollout.make_client(reveal(kubeconfig), kube_context or None)
    token = rollout.request_token(dict(os.environ if environ is None else environ)) if trigger_api else None
    result = rollouts.deploy(
        env, env_settings, ws.source, names,
        publish=lambda chosen: charts.publish_charts(ws, env, target, chosen, prerelease=prerelease),
        deadline=target.deadline, receiver_token=receiver_token, client=client, timeout=timeout,
        receiver_url=receiver_url, upload_token=upload_token, admin_url=admin_url, request_token=token)
    return rollout_result(result.lines, result.outcomes)


def wait(ws: Workspace, env: str, *, component: str | None = None, kubeconfig: SecretValue | None = None,
         kube_context: str | None = None, timeout: float | None = None, artifact: str | None = None,
         artifact_namespace: str = FLUX_NAMESPACE) -> Result:
    """``wait``: until each HelmRelease runs the version its config describes, or with ``artifact``
    until Kustomization ``app-<component>`` applied that digest."""
    from ..flux import deploy as rollouts
    from ..flux import rollout

    timeout = check_timeout(timeout)
    if artifact:
        if not component:
            raise UserError("wait --artifact: give --component C (its Kustomization app-<C>)")
        ws.resolve(env, component)
        client = rollout.make_client(reveal(kubeconfig), kube_context or None)
        outcome = rollouts.wait_artifact(
            client,
            namespace=artifact_namespace or FLUX_NAMESPACE,
            component=component,
            digest=artifact,
            timeout=ws.settings(env).deploy_timeout if timeout is None else timeout,
        )
        return rollout_result([outcome.line], [outcome])
    names = ws.resolve(env, component)
    env_settings = ws.settings(env)
    expected = {n: expected_for(ws, env, n) for n in names}
    client = rollout.make_client(reveal(kubeconfig), kube_context or None)
    outcomes = rollouts.wait_all(
        client, env_settings, expected, timeout=env_settings.deploy_timeout if timeout is None else timeout
    )
    return rollout_result([o.line for o in outcomes], outcomes)


def rollout_result(lines: list[str], outcomes: list[Any]) -> Result:
    import json

    from ..flux import rollout_outcome

    return make_result(lines, json.loads(rollout_outcome.report_json(outcomes)),
                       exit_code=rollout_outcome.exit_code(outcomes))

