"""Wait until a HelmRelease runs exactly the chart that was pushed (Kubernetes API, :mod:`kube_api`).

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

Every request ends by the wait's deadline (:mod:`kube_api`): a server that drips
or never answers makes the outcome ``timeout`` at the deadline. Every object read
is checked against :data:`FIELDS` (a status field of the wrong JSON type is an
error naming the object and the field). A watch ``ERROR`` 410 re-reads and
resumes; a watch that ends without an event is re-opened after a backoff.
Messages from the cluster (condition messages) are printed and reported with
every known secret redacted and control characters escaped (:func:`shown`).
"""

from __future__ import annotations

import json
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..core import versions
from ..core.errors import UserError, printable
from ..core.secrets import SecretValue, redact_known
from .kube_api import REQUEST_TIMEOUT_CAP, Kind, KubeApi, Malformed, Refused, Timeout, Unreachable

HelmRelease = Kind("helm.toolkit.fluxcd.io", "v2", "helmreleases", "HelmRelease")
OCIRepository = Kind("source.toolkit.fluxcd.io", "v1", "ocirepositories", "OCIRepository")
Kustomization = Kind("kustomize.toolkit.fluxcd.io", "v1", "kustomizations", "Kustomization")
Client = KubeApi  # what :func:`make_client` returns

WATCH_SECONDS = 50
#: Re-opening a watch that ended without an event: client-go's reflector backoff
#: (``tools/cache/reflector.go``: ``NewExponentialBackoffManager(800ms, 30s, 2min, 2.0, 1.0)``):
#: 0.8 s doubling to 30 s, plus up to as much again of jitter.
WATCH_BACKOFF_INITIAL, WATCH_BACKOFF_CAP = 0.8, 30.0
#: Default deadline of a single read of one object (``promote --kubeconfig``), seconds.
GET_TIMEOUT = 60.0
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


def _conditions(obj: dict[str, Any]) -> dict[Any, dict[str, Any]]:
    return {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or [] if isinstance(c, dict)}


def _is(conds: dict[str, dict[str, Any]], kind: str, status: str) -> bool:
    return conds.get(kind, {}).get("status") == status


def _current(condition: dict[str, Any], generation: Any) -> bool:
    """The condition was set for the object's current ``generation`` (its own ``observedGeneration``;
    fluxcd/pkg ``runtime/conditions.Set`` writes the latest generation there)."""
    return condition.get("observedGeneration") == generation


def _newer(attempted: str, ours: str) -> bool:
    return versions.newer(attempted, ours)


#: The fields the verdicts read, with the JSON type each must have when present (``null`` is absent);
#: ``[]`` stands for every element of a list. Types from helm-controller ``api/v2``, source-controller
#: ``api/v1`` (``Artifact``), kustomize-controller ``api/v1`` and apimachinery ``metav1.Condition``.
FIELDS: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("metadata", dict), ("metadata.generation", int), ("metadata.resourceVersion", str),
    ("spec", dict), ("spec.test", dict), ("spec.test.enable", bool),
    ("status", dict), ("status.observedGeneration", int), ("status.lastAttemptedRevision", str),
    ("status.lastAppliedRevision", str), ("status.lastHandledReconcileAt", str),
    ("status.conditions", list), ("status.conditions[]", dict), ("status.conditions[].type", str),
    ("status.conditions[].status", str), ("status.conditions[].reason", str), ("status.conditions[].message", str),
    ("status.conditions[].observedGeneration", int),
    ("status.history", list), ("status.history[]", dict), ("status.history[].chartVersion", str),
    ("status.history[].status", str), ("status.artifact", dict), ("status.artifact.revision", str),
)
_JSON_NAMES: dict[object, str] = {dict: "an object", list: "a list", str: "a string", int: "an integer",
                                  bool: "a boolean", float: "a number", type(None): "null"}


def _values(obj: Any, path: str) -> list[tuple[str, Any]]:
    """``(shown path, value)`` of every value at dotted ``path`` (``[]``: each element), skipping absent ones."""
    found: list[tuple[str, Any]] = [("", obj)]
    for part in path.split("."):
        step: list[tuple[str, Any]] = []
        key, each = (part[:-2], True) if part.endswith("[]") else (part, False)
        for shown, value in found:
            child = value.get(key) if isinstance(value, dict) else None
            where = f"{shown}.{key}" if shown else key
            if child is None:
                continue
            if each:
                if isinstance(child, list):
                    step.extend((f"{where}[{i}]", item) for i, item in enumerate(child) if item is not None)
            else:
                step.append((where, child))
        found = step
    return found


def check_object(obj: Any, kind: str, namespace: str, name: str) -> dict[str, Any]:
    """``obj`` when every field of :data:`FIELDS` it has is of the right JSON type.

    Raises:
        Malformed: the object is not a JSON object, or a field has the wrong type
            (the object, the field's path and both types named).
    """
    where = f"{kind} {namespace}/{name}"
    if not isinstance(obj, dict):
        raise Malformed(f"{where}: expected a JSON object, got {_JSON_NAMES.get(type(obj), type(obj).__name__)}")
    for path, expected in FIELDS:
        for shown, value in _values(obj, path):
            ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
            if not ok:
                raise Malformed(f"{where}: {shown}: expected {_JSON_NAMES.get(expected, str(expected))}, got "
                                f"{_JSON_NAMES.get(type(value), type(value).__name__)} (the API server or a "
                                f"controller wrote a malformed object)")
    return obj


def shown(text: str, secrets: tuple[Any, ...] = ()) -> str:
    """A message from the cluster fit to print: every known secret redacted, control characters escaped."""
    return printable(redact_known(text, *secrets))


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


def request_reconcile(client: Client, namespace: str, name: str, token: str, *, deadline: float) -> None:
    """Merge-patch ``reconcile.fluxcd.io/requestedAt: token`` on the OCIRepository, then the HelmRelease.

    The order of ``flux reconcile helmrelease --with-source``: the source fetches the
    new tag first. ``deadline``: monotonic seconds.

    Raises:
        KubeError: the API refuses, cannot be reached or does not answer by ``deadline``.
    """
    patch = {"metadata": {"annotations": {REQUESTED_AT: token}}}
    for kind in (OCIRepository, HelmRelease):
        client.merge_patch(kind, namespace, name, patch, deadline=deadline)


def _summary(release: dict[str, Any] | None) -> str:
    if not release:
        return "no HelmRelease seen"
    conds = _conditions(release)
    parts = [f"{k}={c.get('status')} {c.get('reason', '')}: {c.get('message', '')}" for k, c in conds.items()]
    attempted = (release.get("status") or {}).get("lastAttemptedRevision", "none")
    return f"lastAttemptedRevision {attempted}; " + ("; ".join(parts) or "no conditions")


def make_client(kubeconfig: SecretValue | None, context: str | None = None) -> Client:
    """A :class:`kube_api.KubeApi` from a kubeconfig secret (its YAML text), else in-cluster / ``$KUBECONFIG``.

    The connection (server, TLS, credentials, exec plugin) is lightkube's
    (``lightkube.config``); the requests are :mod:`faas_deployment.flux.kube_api`'s.

    Raises:
        UserError: the kubeconfig is not valid YAML or lacks the context (its text is never shown).
    """
    from lightkube import KubeConfig
    from lightkube.config.client_adapter import Client as adapter
    from lightkube.config.client_adapter import ConnectionParams

    try:
        if kubeconfig is None:
            config = KubeConfig.from_env()
        else:
            data = yaml.safe_load(kubeconfig.reveal())
            if not isinstance(data, dict):
                raise UserError(f"--kubeconfig {kubeconfig.source}: expected a kubeconfig YAML mapping")
            _hold_credentials(data, kubeconfig.source)
            config = KubeConfig.from_dict(data)
        single = config.get(context_name=context)
        assert single is not None  # without a default, lightkube raises ConfigError rather than return None
        return KubeApi(adapter(single, ConnectionParams()))
    except UserError:
        raise
    except Exception as exc:  # lightkube raises several kinds here; the text never holds the file
        where = kubeconfig.source if kubeconfig else "in-cluster or $KUBECONFIG"
        raise UserError(f"--kubeconfig {where}: cannot build a Kubernetes client ({type(exc).__name__})") from None


def _hold_credentials(data: dict[str, Any], source: str) -> None:
    """Hold each user's token, password and client key as a secret (:class:`SecretValue`), so messages
    from the cluster are redacted of them too (:func:`shown`)."""
    users = data.get("users")
    for entry in users if isinstance(users, list) else []:
        user = entry.get("user") if isinstance(entry, dict) else None
        for key in ("token", "password", "client-key-data"):
            value = user.get(key) if isinstance(user, dict) else None
            if isinstance(value, str) and value:
                SecretValue(value, f"{source} {key}")


def get_release(client: Client, namespace: str, name: str, *, timeout: float = GET_TIMEOUT) -> dict[str, Any]:
    """GET HelmRelease ``namespace/name`` within ``timeout`` seconds: the object, its fields checked.

    Raises:
        KubeError: the API refuses (401/403/404), cannot be reached, does not answer in
            time, or answers with something that is not a well-typed HelmRelease.
    """
    obj = client.get(HelmRelease, namespace, name, deadline=time.monotonic() + timeout)
    return check_object(obj, HelmRelease.kind, namespace, name)


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
            data = client.get(OCIRepository, namespace, name, deadline=deadline)
        except Refused as exc:
            if exc.code == 404:
                return False
            raise
        check_object(data, OCIRepository.kind, namespace, name)
        artifact = (data.get("status") or {}).get("artifact") or {}
        return artifact.get("revision") == expected.source_revision

    def outcome(state: str, message: str, release: dict[str, Any] | None) -> Outcome:
        return Outcome(component, namespace, name, expected, state, shown(message, secrets),
                       time.monotonic() - started, _shown_conditions(release, secrets))

    release: dict[str, Any] | None = None
    try:
        source_ours = source()
        next_source = time.monotonic() + SOURCE_POLL_SECONDS
        _start_watch(client, HelmRelease, namespace, name, events, stop)
        while True:
            now = time.monotonic()
            if now >= deadline:
                return outcome(TIMEOUT, _summary(release), release)
            try:
                kind, item = events.get(timeout=max(0.01, min(deadline, next_source) - now))
            except queue.Empty:
                kind, item = "tick", None
            if kind == "error":
                raise item
            if kind == "release":
                release = item
            if time.monotonic() >= next_source or (release is not None and not source_ours
                                                   and _candidate(release, expected)):
                source_ours = source()
                next_source = time.monotonic() + SOURCE_POLL_SECONDS
            if release is not None:
                verdict = evaluate(release, expected, source_ours=source_ours, token=token)
                if verdict:
                    return outcome(verdict[0], verdict[1], release)
    except Timeout as exc:
        return outcome(TIMEOUT, f"{exc}; {_summary(release)}", release)
    finally:
        stop.set()


def _shown_conditions(obj: dict[str, Any] | None, secrets: tuple[Any, ...]) -> list[dict[str, Any]]:
    """The object's conditions for a report: string fields passed through :func:`shown`."""
    return [{k: shown(v, secrets) if isinstance(v, str) else v for k, v in c.items()}
            for c in _conditions(obj or {}).values()]


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
        return Outcome(component, namespace, name, expected, state, shown(message, secrets),
                       time.monotonic() - started, _shown_conditions(obj, secrets), kind="Kustomization")
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
                raise item
            obj = item
            verdict = evaluate_kustomization(obj, expected.digest)
            if verdict:
                return outcome(*verdict)
    finally:
        stop.set()


def _start_watch(client: Client, kind: Kind, namespace: str, name: str,
                 events: queue.Queue[tuple[str, Any]], stop: threading.Event) -> None:
    """Watch one object on a daemon thread until ``stop`` is set: ``("release", dict)`` per
    ADDED/MODIFIED event (its fields checked, :func:`check_object`), ``("error", exc)`` once.

    ``fieldSelector=metadata.name=<name>``, server-side ``timeoutSeconds``
    :data:`WATCH_SECONDS`, re-opened from the last ``resourceVersion``. A stream that
    ends (or breaks) without an event is re-opened after a backoff
    (:data:`WATCH_BACKOFF_INITIAL` doubling to :data:`WATCH_BACKOFF_CAP`, with
    jitter); an ``ERROR`` event 410 (resourceVersion too old) re-reads the object and
    resumes from its resourceVersion; any other refusal or a malformed answer ends
    the watch with that error.
    """
    def put(obj: dict[str, Any]) -> str | None:
        check_object(obj, kind.kind, namespace, name)
        events.put(("release", obj))
        return (obj.get("metadata") or {}).get("resourceVersion")

    def watcher() -> None:
        version: str | None = None
        delay = 0.0
        while not stop.is_set():
            opened, seen = time.monotonic(), False
            try:
                for event, obj in client.watch(kind, namespace, name, resource_version=version,
                                               server_timeout=WATCH_SECONDS, stop=stop):
                    if event in ("ADDED", "MODIFIED"):
                        version, seen = put(obj) or version, True
                    elif event == "BOOKMARK":
                        rv = (obj.get("metadata") or {}).get("resourceVersion")
                        version = rv if isinstance(rv, str) else version
                    if stop.is_set():
                        return
            except Refused as exc:
                if exc.code != 410:
                    events.put(("error", exc))
                    return
                try:  # resourceVersion too old: list again (one object: GET), watch from there
                    version, seen = put(client.get(kind, namespace, name,
                                                   deadline=time.monotonic() + REQUEST_TIMEOUT_CAP)), True
                except Exception as error:  # handed to the waiting thread
                    events.put(("error", error))
                    return
            except (Timeout, Unreachable):
                pass  # a broken stream: re-opened after the backoff below
            except Exception as exc:  # handed to the waiting thread
                events.put(("error", exc))
                return
            if seen or time.monotonic() - opened >= WATCH_SECONDS / 2:
                delay = 0.0
            else:
                delay = min(WATCH_BACKOFF_CAP, max(WATCH_BACKOFF_INITIAL, delay * 2))
            if delay:
                stop.wait(delay + random.uniform(0, delay))
    threading.Thread(target=watcher, daemon=True, name=f"watch-{name}").start()


def _candidate(release: dict[str, Any], expected: Expected) -> bool:
    """The release claims our revision: worth one GET of the source before the verdict."""
    status = release.get("status") or {}
    head = (status.get("history") or [{}])[0]
    return status.get("lastAttemptedRevision") == expected.revision or (
        isinstance(head, dict) and head.get("chartVersion") == expected.revision)


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
