"""Wait until a HelmRelease runs exactly the chart that was pushed (Kubernetes API, lightkube).

Rules (helm-controller ``api/v2`` ``helmrelease_types.go`` and ``condition_types.go``,
``internal/controller/helmrelease_controller.go``), ours the revision
``<version>+<digest12>`` (:func:`flux.release_revision`):

- **deployed**: ``observedGeneration == metadata.generation``, ``status.history[0]``
  has ``status: deployed`` and ``chartVersion`` equal to ours, ``Ready=True`` (and
  ``TestSuccess=True`` when ``spec.test.enable``), and the OCIRepository's
  ``status.artifact.revision`` is ``<version>@<digest>``;
- **failed** (at once, with the controller's message) once ``lastAttemptedRevision``
  is ours: ``Stalled=True``, ``Remediated=True`` (a rollback deploys the old
  version again), ``Released=False``, ``TestSuccess=False``; and ``Ready=False`` with
  reason ``ChartMutateError``, ``ValuesError`` or ``ArtifactFailed`` (except the
  controller's transient ``Source not ready: artifact not found. Retrying`` message);
  each such condition must carry the current generation in its own
  ``observedGeneration``: ``status.observedGeneration`` lags while helm-controller
  retries a failed install or upgrade (it is written only when a reconcile ends
  without error), so a first install that fails never moves it;
- **superseded**: ``lastAttemptedRevision`` has a higher semver than ours;
- **timeout**: none of these before the deadline; the last conditions are shown.

Transport: one watch of the HelmRelease (``fieldSelector=metadata.name=<name>``,
server-side ``timeoutSeconds`` :data:`WATCH_SECONDS`, re-opened from the last
``resourceVersion``) and a GET of the OCIRepository at most every
:data:`SOURCE_POLL_SECONDS`: about 10 requests a minute per release, and the verdict
within milliseconds of the event that makes it.

A Flux OCI artifact's Kustomization ``app-<component>`` is waited for with the same
watch (:func:`wait_kustomization`, rules in :func:`evaluate_kustomization`).
"""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import yaml
from lightkube import Client, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.types import PatchType
from lightkube.generic_resource import create_namespaced_resource

from . import versions
from .errors import UserError
from .secrets import SecretValue, redact

HelmRelease = create_namespaced_resource("helm.toolkit.fluxcd.io", "v2", "HelmRelease", "helmreleases")
OCIRepository = create_namespaced_resource("source.toolkit.fluxcd.io", "v1", "OCIRepository", "ocirepositories")
Kustomization = create_namespaced_resource("kustomize.toolkit.fluxcd.io", "v1", "Kustomization", "kustomizations")

WATCH_SECONDS = 50
SOURCE_POLL_SECONDS = 10.0
FAILING_REASONS = {"ChartMutateError", "ValuesError", "ArtifactFailed"}
TRANSIENT_MESSAGE = "Source not ready"

DEPLOYED, FAILED, SUPERSEDED, TIMEOUT = "deployed", "failed", "superseded", "timeout"
EXIT_CODES = {DEPLOYED: 0, FAILED: 3, SUPERSEDED: 4, TIMEOUT: 5}
"""Exit code per outcome (1 stays "a problem the user can fix", 2 a bad command line)."""


@dataclass(frozen=True)
class Expected:
    """What was pushed: ``chart`` name, ``version`` and manifest ``digest`` (``sha256:<hex>``)."""

    chart: str
    version: str
    digest: str

    @property
    def revision(self) -> str:
        return f"{self.version}+{self.digest.split(':', 1)[-1][:12]}"

    @property
    def source_revision(self) -> str:
        return f"{self.version}@{self.digest}"


@dataclass
class Outcome:
    """One release's verdict: ``state`` (:data:`EXIT_CODES` keys), a ``message``, ``seconds`` waited."""

    component: str
    namespace: str
    name: str
    expected: Expected
    state: str
    message: str
    seconds: float = 0.0
    conditions: list[dict[str, Any]] = field(default_factory=list)
    kind: str = "HelmRelease"

    @property
    def line(self) -> str:
        where = f"{self.namespace}/{self.name}"
        ref = f"{self.expected.chart}@{self.expected.version}"
        if self.state == DEPLOYED:
            return f"deployed {ref} to {where} in {self.seconds:.1f} s"
        return f"{self.state} {ref} at {where} after {self.seconds:.1f} s: {self.message}"

    def report(self) -> dict[str, Any]:
        return {"component": self.component, "namespace": self.namespace, self.kind.lower(): self.name,
                "chart": self.expected.chart, "version": self.expected.version, "digest": self.expected.digest,
                "revision": self.expected.revision if self.kind == "HelmRelease" else self.expected.digest,
                "outcome": self.state, "exit_code": EXIT_CODES[self.state],
                "message": self.message, "seconds": round(self.seconds, 3),
                "conditions": self.conditions}


def _conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or [] if isinstance(c, dict)}


def _is(conds: dict[str, dict[str, Any]], kind: str, status: str) -> bool:
    return conds.get(kind, {}).get("status") == status


def _current(condition: dict[str, Any], generation: Any) -> bool:
    """The condition was set for the object's current ``generation`` (its own ``observedGeneration``;
    fluxcd/pkg ``runtime/conditions.Set`` writes the latest generation there)."""
    return condition.get("observedGeneration") == generation


def _newer(attempted: str, ours: str) -> bool:
    return versions.newer(attempted, ours)


def evaluate(release: dict[str, Any], expected: Expected, *, source_ours: bool,
             token: str | None = None) -> tuple[str, str] | None:
    """The verdict ``(state, message)`` for one HelmRelease object, or ``None`` to keep waiting.

    ``source_ours``: the OCIRepository's artifact is the pushed one. ``token``: the
    ``reconcile.fluxcd.io/requestedAt`` value the API trigger set, if any.
    """
    meta, status = release.get("metadata") or {}, release.get("status") or {}
    generation = meta.get("generation")
    if token is not None and status.get("lastHandledReconcileAt") != token:
        return None
    conds = _conditions(release)
    attempted = status.get("lastAttemptedRevision") or ""
    if attempted and attempted != expected.revision and _newer(attempted, expected.revision):
        return SUPERSEDED, f"the HelmRelease moved on to {attempted}"
    # A failure is read from its condition's own observedGeneration: helm-controller writes
    # status.observedGeneration only when a reconcile ends without error or requeue
    # (internal/controller/helmrelease_controller.go), so during the install or upgrade
    # retries of a remediation it stays behind while the conditions are current.
    if attempted == expected.revision:
        for kind, state in (("Stalled", "True"), ("Remediated", "True"), ("Released", "False"),
                            ("TestSuccess", "False")):
            if _is(conds, kind, state) and _current(conds[kind], generation):
                c = conds[kind]
                return FAILED, f"{kind}={state} {c.get('reason', '')}: {c.get('message', '')}"
    ready = conds.get("Ready", {})
    if (ready.get("status") == "False" and ready.get("reason") in FAILING_REASONS and source_ours
            and _current(ready, generation)
            and not str(ready.get("message", "")).startswith(TRANSIENT_MESSAGE)):
        return FAILED, f"Ready=False {ready['reason']}: {ready.get('message', '')}"
    if status.get("observedGeneration") != generation:
        return None
    history = status.get("history") or []
    head = history[0] if history and isinstance(history[0], dict) else {}
    tests = ((release.get("spec") or {}).get("test") or {}).get("enable")
    if (head.get("status") == "deployed" and head.get("chartVersion") == expected.revision
            and ready.get("status") == "True" and source_ours
            and (not tests or _is(conds, "TestSuccess", "True"))):
        return DEPLOYED, ready.get("message", "")
    return None


REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
"""Annotation Flux controllers echo into ``status.lastHandledReconcileAt`` (fluxcd/pkg ``apis/meta``)."""


def request_token(environ: dict[str, str]) -> str:
    """A traceable ``requestedAt`` value: ``faas-deploy/<CI_PIPELINE_ID>/<CI_JOB_ID>/<unix ns>`` (ids when set)."""
    ids = [environ.get(k, "") for k in ("CI_PIPELINE_ID", "CI_JOB_ID")]
    return "/".join(["faas-deploy", *(i for i in ids if i), str(time.time_ns())])


def request_reconcile(client: Client, namespace: str, name: str, token: str) -> None:
    """Merge-patch ``reconcile.fluxcd.io/requestedAt: token`` on the OCIRepository, then the HelmRelease.

    The order of ``flux reconcile helmrelease --with-source``: the source fetches the
    new tag first. Raises UserError when the API refuses (see :func:`_api`).
    """
    patch = {"metadata": {"annotations": {REQUESTED_AT: token}}}
    for kind in (OCIRepository, HelmRelease):
        _api(lambda kind=kind: client.patch(kind, name, patch, namespace=namespace, patch_type=PatchType.MERGE),
             namespace, name)


def _summary(release: dict[str, Any] | None) -> str:
    if not release:
        return "no HelmRelease seen"
    conds = _conditions(release)
    parts = [f"{k}={c.get('status')} {c.get('reason', '')}: {c.get('message', '')}" for k, c in conds.items()]
    attempted = (release.get("status") or {}).get("lastAttemptedRevision", "none")
    return f"lastAttemptedRevision {attempted}; " + ("; ".join(parts) or "no conditions")


def make_client(kubeconfig: SecretValue | None, context: str | None = None) -> Client:
    """A lightkube client from a kubeconfig secret (its YAML text), else in-cluster / ``$KUBECONFIG``.

    Raises:
        UserError: the kubeconfig is not valid YAML or lacks the context (its text is never shown).
    """
    try:
        if kubeconfig is None:
            config = KubeConfig.from_env()
        else:
            data = yaml.safe_load(kubeconfig.reveal())
            if not isinstance(data, dict):
                raise UserError(f"--kubeconfig {kubeconfig.source}: expected a kubeconfig YAML mapping")
            config = KubeConfig.from_dict(data)
        return Client(config=config.get(context_name=context), field_manager="faas-deploy")
    except UserError:
        raise
    except Exception as exc:  # lightkube raises several kinds here; the text never holds the file
        where = kubeconfig.source if kubeconfig else "in-cluster or $KUBECONFIG"
        raise UserError(f"--kubeconfig {where}: cannot build a Kubernetes client ({type(exc).__name__})") from None


def get_release(client: Client, namespace: str, name: str) -> dict[str, Any]:
    """GET HelmRelease ``namespace/name``: the object as a dict (``kind``, ``metadata``, ``status``).

    Raises:
        UserError: the API refuses (401/403/404) or cannot be reached (see :func:`_api`).
    """
    obj = _api(lambda: client.get(HelmRelease, name=name, namespace=namespace), namespace, name)
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def wait_release(client: Client, *, component: str, namespace: str, name: str, expected: Expected,
                 timeout: float, token: str | None = None, secrets: tuple[Any, ...] = ()) -> Outcome:
    """Watch HelmRelease ``namespace/name`` until :func:`evaluate` decides or ``timeout`` seconds pass.

    Never raises for a rollout outcome: failures, supersession and timeouts are
    :class:`Outcome` states. Raises UserError when the API refuses (401/403/404).
    """
    started = time.monotonic()
    deadline = started + timeout
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    stop = threading.Event()

    def source() -> bool:
        try:
            obj = client.get(OCIRepository, name=name, namespace=namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                return False
            raise
        data = obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
        artifact = (data.get("status") or {}).get("artifact") or {}
        return artifact.get("revision") == expected.source_revision

    def outcome(state: str, message: str, release: dict[str, Any] | None) -> Outcome:
        conds = list(_conditions(release or {}).values())
        return Outcome(component, namespace, name, expected, state, redact(message, *secrets),
                       time.monotonic() - started, conds)

    try:
        source_ours = _api(source, namespace, name)
        next_source = time.monotonic() + SOURCE_POLL_SECONDS
        _start_watch(client, HelmRelease, namespace, name, events, stop)
        release: dict[str, Any] | None = None
        while True:
            now = time.monotonic()
            if now >= deadline:
                return outcome(TIMEOUT, _summary(release), release)
            try:
                kind, item = events.get(timeout=max(0.01, min(deadline, next_source) - now))
            except queue.Empty:
                kind, item = "tick", None
            if kind == "error":
                _api(lambda: (_ for _ in ()).throw(item), namespace, name)
            if kind == "release":
                release = item
            if time.monotonic() >= next_source or (release is not None and not source_ours
                                                   and _candidate(release, expected)):
                source_ours = _api(source, namespace, name)
                next_source = time.monotonic() + SOURCE_POLL_SECONDS
            if release is not None:
                verdict = evaluate(release, expected, source_ours=source_ours, token=token)
                if verdict:
                    return outcome(verdict[0], verdict[1], release)
    finally:
        stop.set()


KUSTOMIZATION_FAILING_REASONS = {"BuildFailed", "HealthCheckFailed", "ReconciliationFailed", "PruneFailed",
                                 "ArtifactFailed"}
"""``Ready=False`` reasons of kustomize-controller (fluxcd/pkg ``apis/meta`` reasons set in
``internal/controller/kustomization_controller.go``) that end the wait for the attempted revision."""


def carries(revision: str, digest: str) -> bool:
    """``revision`` names manifest ``digest``: ``<tag>@sha256:<hex>`` (e.g. ``latest@sha256:...``) or ``sha256:<hex>``.

    The Kustomization's ``status.lastAppliedRevision`` "equals the Revision of the
    applied Artifact from the referenced Source" (kustomize-controller ``api/v1/kustomization_types.go``),
    source-controller's OCIRepository revision ``<tag>@<digest>``.
    """
    return bool(revision) and revision.rsplit("@", 1)[-1] == digest


def evaluate_kustomization(obj: dict[str, Any], digest: str) -> tuple[str, str] | None:
    """The verdict ``(state, message)`` for one Kustomization object, or ``None`` to keep waiting.

    - **deployed**: ``observedGeneration == metadata.generation``, ``Ready=True`` and
      ``status.lastAppliedRevision`` carries ``digest`` (:func:`carries`);
    - **failed**: ``status.lastAttemptedRevision`` carries ``digest`` and ``Stalled=True``, or
      ``Ready=False`` with a reason of :data:`KUSTOMIZATION_FAILING_REASONS`.
    """
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    if status.get("observedGeneration") != meta.get("generation"):
        return None
    conds = _conditions(obj)
    ready = conds.get("Ready", {})
    if carries(status.get("lastAppliedRevision") or "", digest) and ready.get("status") == "True":
        return DEPLOYED, ready.get("message", "")
    if carries(status.get("lastAttemptedRevision") or "", digest):
        if _is(conds, "Stalled", "True"):
            c = conds["Stalled"]
            return FAILED, f"Stalled=True {c.get('reason', '')}: {c.get('message', '')}"
        if ready.get("status") == "False" and ready.get("reason") in KUSTOMIZATION_FAILING_REASONS:
            return FAILED, f"Ready=False {ready['reason']}: {ready.get('message', '')}"
    return None


def wait_kustomization(client: Client, *, component: str, namespace: str, name: str, expected: Expected,
                       timeout: float, secrets: tuple[Any, ...] = ()) -> Outcome:
    """Watch Kustomization ``namespace/name`` until :func:`evaluate_kustomization` decides on
    ``expected.digest`` (the pushed manifest) or ``timeout`` seconds pass.

    The same watch as :func:`wait_release` (:func:`_start_watch`), no source poll:
    the Kustomization's own revision names the digest. Outcomes deployed, failed,
    timeout (no order between digests, so never superseded). Raises UserError when
    the API refuses (401/403/404) or cannot be reached.
    """
    started = time.monotonic()
    deadline = started + timeout
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    stop = threading.Event()
    obj: dict[str, Any] | None = None

    def outcome(state: str, message: str) -> Outcome:
        return Outcome(component, namespace, name, expected, state, redact(message, *secrets),
                       time.monotonic() - started, list(_conditions(obj or {}).values()), kind="Kustomization")
    try:
        _start_watch(client, Kustomization, namespace, name, events, stop)
        while True:
            now = time.monotonic()
            if now >= deadline:
                applied = ((obj or {}).get("status") or {}).get("lastAppliedRevision", "none")
                return outcome(TIMEOUT, f"lastAppliedRevision {applied}; {_summary(obj)}" if obj
                               else "no Kustomization seen")
            try:
                kind, item = events.get(timeout=max(0.01, deadline - now))
            except queue.Empty:
                continue
            if kind == "error":
                _api(lambda: (_ for _ in ()).throw(item), namespace, name)
            obj = item
            verdict = evaluate_kustomization(obj, expected.digest)
            if verdict:
                return outcome(*verdict)
    finally:
        stop.set()


def _start_watch(client: Client, kind: Any, namespace: str, name: str,
                 events: "queue.Queue[tuple[str, Any]]", stop: threading.Event) -> None:
    """Watch one object (``fieldSelector=metadata.name=<name>``, server-side ``timeoutSeconds``
    :data:`WATCH_SECONDS`, re-opened from the last ``resourceVersion``) on a daemon thread:
    ``("release", dict)`` per event, ``("error", exc)`` once, until ``stop`` is set."""
    def watcher() -> None:
        version = None
        while not stop.is_set():
            try:
                for _kind, obj in client.watch(kind, namespace=namespace, fields={"metadata.name": name},
                                                server_timeout=WATCH_SECONDS, resource_version=version):
                    data = obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
                    version = (data.get("metadata") or {}).get("resourceVersion", version)
                    events.put(("release", data))
                    if stop.is_set():
                        return
            except Exception as exc:  # handed to the waiting thread
                events.put(("error", exc))
                return
            time.sleep(0.05)
    threading.Thread(target=watcher, daemon=True, name=f"watch-{name}").start()


def _candidate(release: dict[str, Any], expected: Expected) -> bool:
    """The release claims our revision: worth one GET of the source before the verdict."""
    status = release.get("status") or {}
    head = (status.get("history") or [{}])[0]
    return status.get("lastAttemptedRevision") == expected.revision or (
        isinstance(head, dict) and head.get("chartVersion") == expected.revision)


def _api(fn, namespace: str, name: str):
    """``fn()``, with the API's refusals as UserError: lightkube's ApiError (a request) and the
    HTTP client's ``HTTPStatusError`` (a watch stream, which lightkube does not translate; read
    by its ``response.status_code``, as lightkube's own client class may vary)."""
    try:
        return fn()
    except UserError:
        raise
    except Exception as exc:
        response = getattr(exc, "response", None)
        if isinstance(exc, ApiError):
            code, message = exc.status.code, exc.status.message
        elif isinstance(getattr(response, "status_code", None), int):
            code, message = response.status_code, getattr(response, "reason_phrase", "")
        else:
            raise UserError(f"Kubernetes API, {namespace}/{name}: {type(exc).__name__}: "
                            f"cannot reach the API server") from None
        what = {401: "the credentials were refused", 403: "access is forbidden",
                404: "not found (generate and apply the Flux objects: faas-deploy flux)"}.get(code, "failed")
        raise UserError(f"Kubernetes API, {namespace}/{name}: HTTP {code}, {what}: {message}") from None


def report_json(outcomes: list[Outcome]) -> str:
    """The JSON report of every outcome: ``{"outcomes": [...], "exit_code": N}``."""
    return json.dumps({"outcomes": [o.report() for o in outcomes], "exit_code": exit_code(outcomes)}, indent=2)


def exit_code(outcomes: list[Outcome]) -> int:
    """The worst outcome's code: failed (3) over superseded (4) over timeout (5), else 0."""
    states = {o.state for o in outcomes}
    for state in (FAILED, TIMEOUT, SUPERSEDED):
        if state in states:
            return EXIT_CODES[state]
    return 0
