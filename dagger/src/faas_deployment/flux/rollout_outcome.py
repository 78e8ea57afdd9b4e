"""The rollout outcome: what a HelmRelease's or a Kustomization's status says about the pushed chart or artifact.

Pure functions of the objects read; the watch that feeds them is :mod:`.rollout`.

HelmRelease rules (helm-controller ``api/v2`` ``helmrelease_types.go`` and
``condition_types.go``, ``internal/controller/helmrelease_controller.go``), ours
the revision ``<version>+<digest12>`` (:attr:`Expected.revision`, as
:func:`flux.release_revision`), in :func:`evaluate`:

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
- **timeout**: none of these before the deadline (decided by the watch).

A Flux OCI artifact's Kustomization: :func:`evaluate_kustomization`.

Every object read is checked against :data:`FIELDS` (:func:`check_object`: a
status field of the wrong JSON type is an error naming the object and the field).
Messages from the cluster (condition messages) are printed and reported with
every known secret redacted and control characters escaped (:func:`shown`).
Each outcome has an exit code (:data:`EXIT_CODES`); :func:`exit_code` and
:func:`report_json` sum up several.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..core import versions
from ..core.errors import printable
from ..core.secrets import redact_known
from .kube_api import Malformed

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


def summary(release: dict[str, Any] | None) -> str:
    if not release:
        return "no HelmRelease seen"
    conds = _conditions(release)
    parts = [f"{k}={c.get('status')} {c.get('reason', '')}: {c.get('message', '')}" for k, c in conds.items()]
    attempted = (release.get("status") or {}).get("lastAttemptedRevision", "none")
    return f"lastAttemptedRevision {attempted}; " + ("; ".join(parts) or "no conditions")


def shown_conditions(obj: dict[str, Any] | None, secrets: tuple[Any, ...]) -> list[dict[str, Any]]:
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


def candidate(release: dict[str, Any], expected: Expected) -> bool:
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
