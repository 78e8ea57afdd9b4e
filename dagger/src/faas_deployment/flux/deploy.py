"""``deploy`` and ``wait``: publish, trigger Flux through the Receiver, wait for each HelmRelease.

Per environment, components run concurrently. The ordering rule for the operator's
manifests: with ``upload`` set, the bundle is uploaded only after the operator's
HelmRelease runs the chart just published (:mod:`rollout` ``deployed``), and then
through :func:`admin_api.upload_when_ready`, which first polls readiness: so the
bundle reaches the new operator, never the old one. Nothing is uploaded when the
operator's rollout did not end ``deployed``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..bundle import admin_api, archive, templates
from ..core import names
from ..core.errors import UserError
from ..core.layout import OPERATOR
from ..core.progress import step
from ..core.secrets import SecretValue
from . import flux, rollout, rollout_outcome
from . import settings as settings_mod
from .artifacts import moving_tag

if TYPE_CHECKING:
    from ..core.deadline import Deadline
    from ..registry.publishing import PublishResult


@dataclass
class DeployResult:
    """Lines to print (publish, trigger, one per release, upload) and the rollout outcomes."""

    lines: list[str] = field(default_factory=list)
    outcomes: list[rollout_outcome.Outcome] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return rollout_outcome.exit_code(self.outcomes)


def wait_all(client: Any, settings: settings_mod.Settings, expected: dict[str, rollout_outcome.Expected], *,
             timeout: float, secrets: tuple[Any, ...] = (), token: str | None = None) -> list[rollout_outcome.Outcome]:
    """Wait for every component's HelmRelease concurrently; outcomes in component order.

    ``token``: the ``requestedAt`` value of an API trigger, which each HelmRelease must have handled.
    """
    def one(component: str) -> rollout_outcome.Outcome:
        return rollout.wait_release(client, component=component, namespace=settings.namespace,
                                    name=settings.object_name(component), expected=expected[component],
                                    timeout=timeout, token=token, secrets=secrets)
    names = sorted(expected)
    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        return list(pool.map(one, names))


def wait_artifact(client: Any, *, namespace: str, component: str, digest: str,
                  timeout: float) -> rollout_outcome.Outcome:
    """Wait until Kustomization ``namespace/app-<component>`` (the Flux OCI artifact's, docs/artifacts.md)
    is Ready with ``status.lastAppliedRevision`` carrying manifest ``digest`` (``sha256:<64 hex>``,
    what ``publish-artifact`` printed); see :func:`rollout.wait_kustomization`.

    Raises:
        UserError: ``digest`` malformed; the API refuses or cannot be reached.
    """
    if not names.is_digest(digest):
        raise UserError(f"--artifact {digest!r}: expected the pushed manifest digest sha256:<64 hex digits> "
                        f"(the @sha256:... publish-artifact printed)")
    name = moving_tag(component)
    return rollout.wait_kustomization(client, component=component, namespace=namespace, name=name,
                                      expected=rollout_outcome.Expected(name, digest, digest), timeout=timeout)


def deploy(
    env: str,
    settings: settings_mod.Settings,
    source: Path,
    components: list[str],
    *,
    publish: Callable[[list[str]], list[PublishResult]],
    deadline: Deadline | None,
    receiver_token: SecretValue | None,
    client: Any,
    request_token: str | None = None,
    timeout: float | None = None,
    receiver_url: str | None = None,
    upload_token: SecretValue | None = None,
    admin_url: str | None = None,
) -> DeployResult:
    """Publish ``components`` of ``env`` (with ``publish``, which packages them all first), trigger Flux,
    wait for each release.

    Trigger: the Receiver with ``receiver_token``; without it, the Kubernetes API
    (``request_token`` merge-patched as ``reconcile.fluxcd.io/requestedAt``, and each
    HelmRelease must then report it in ``lastHandledReconcileAt``).

    With ``upload_token``, then upload ``env/<env>/operator/dynamic/`` of ``source`` once
    the operator is ``deployed`` (see the module doc). One deadline bounds it all: the
    publishing target's ``deadline`` when it has one, else ``timeout`` seconds (default:
    the setting ``deploy_timeout``). The versions waited for are those ``publish`` pushed
    (a pre-release included).

    Raises:
        ValidationError / UserError: as ``publish``; the Receiver refused or never answered
            200 (:func:`flux.notify`); the Kubernetes API refused.
    """
    names = components
    bundle = None
    if upload_token is not None:
        if OPERATOR not in names:
            raise UserError(f"--admin-token: the deploy must include the {OPERATOR} component")
        bundle_path = Path(tempfile.mkdtemp(prefix="faas-bundle-")) / f"{env}.zip"
        bundle = archive.write_bundle(templates.dynamic_dir(source, env), bundle_path)
    result = DeployResult()
    total = timeout or settings.deploy_timeout
    # one deadline from the start, the publishing included (the target's, when it has one)
    ends = time.monotonic() + (deadline.remaining() if deadline is not None else total)
    published = publish(names)
    result.lines += [r.line for r in published]
    expected = {}
    for name, r in zip(names, published, strict=True):
        chart, version = r.reference.rsplit("/", 1)[-1].rsplit(":", 1)
        expected[name] = rollout_outcome.Expected(chart, version, r.digest)
    if receiver_token is not None:
        payload = {"env": env, "charts": {n: e.revision for n, e in expected.items()}}
        with step(f"notify {env} receiver"):
            result.lines.append(flux.notify(settings, receiver_token, payload, deadline=ends,
                                            receiver_url=receiver_url))
    else:
        if request_token is None:
            raise UserError("deploy: give a Receiver token or a request token for the Kubernetes API trigger")
        with step(f"request reconcile of {env}"):
            for name in expected:
                rollout.request_reconcile(client, settings.namespace, settings.object_name(name), request_token,
                                          deadline=ends)
        result.lines.append(f"requested reconcile {request_token} of {', '.join(sorted(expected))}")
    secrets = (receiver_token, upload_token)
    result.outcomes = wait_all(client, settings, expected, timeout=max(0.1, ends - time.monotonic()),
                               secrets=secrets, token=None if receiver_token is not None else request_token)
    result.lines += [o.line for o in result.outcomes]
    if bundle is not None and upload_token is not None:
        operator = next(o for o in result.outcomes if o.component == OPERATOR)
        if operator.state != rollout_outcome.DEPLOYED:
            result.lines.append(f"not uploaded: the operator's rollout ended {operator.state}")
        else:
            result.lines.append(admin_api.upload_when_ready(admin_url or settings.admin_url, bundle, upload_token,
                                                           timeout=settings.upload_timeout))
    return result
