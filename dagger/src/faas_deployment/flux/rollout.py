"""Wait until a HelmRelease runs exactly the chart that was pushed (Kubernetes API, :mod:`kube_api`).

The watch loop and the cluster client; what each object read means (deployed,
failed, superseded) is :mod:`.rollout_outcome`, the rules' home. The outcome is
``timeout`` when none is reached before the deadline; the last conditions are shown.

Transport: one watch of the HelmRelease (``fieldSelector=metadata.name=<name>``,
server-side ``timeoutSeconds`` :data:`WATCH_SECONDS`, re-opened from the last
``resourceVersion``) and a GET of the OCIRepository at most every
:data:`SOURCE_POLL_SECONDS`: about 10 requests a minute per release, and the verdict
within milliseconds of the event that makes it.

A Flux OCI artifact's Kustomization ``app-<component>`` is waited for with the same
watch (:func:`wait_kustomization`, rules in :func:`.rollout_outcome.evaluate_kustomization`).

Every request ends by the wait's deadline (:mod:`kube_api`): a server that drips
or never answers makes the outcome ``timeout`` at the deadline. Every object read
is checked (:func:`.rollout_outcome.check_object`). A watch ``ERROR`` 410 re-reads
and resumes; a watch that ends without an event is re-opened after a backoff.
:func:`request_reconcile` is the API trigger (``reconcile.fluxcd.io/requestedAt``);
:func:`make_client` the client from a kubeconfig.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from typing import Any

import yaml

from ..core.errors import UserError
from ..core.secrets import SecretValue
from .kube_api import REQUEST_TIMEOUT_CAP, Kind, KubeApi, Refused, Timeout, Unreachable
from .rollout_outcome import (
    TIMEOUT,
    Expected,
    Outcome,
    candidate,
    check_object,
    evaluate,
    evaluate_kustomization,
    shown,
    shown_conditions,
    summary,
)

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
                       time.monotonic() - started, shown_conditions(release, secrets))

    release: dict[str, Any] | None = None
    try:
        source_ours = source()
        next_source = time.monotonic() + SOURCE_POLL_SECONDS
        _start_watch(client, HelmRelease, namespace, name, events, stop)
        while True:
            now = time.monotonic()
            if now >= deadline:
                return outcome(TIMEOUT, summary(release), release)
            try:
                kind, item = events.get(timeout=max(0.01, min(deadline, next_source) - now))
            except queue.Empty:
                kind, item = "tick", None
            if kind == "error":
                raise item
            if kind == "release":
                release = item
            if time.monotonic() >= next_source or (release is not None and not source_ours
                                                   and candidate(release, expected)):
                source_ours = source()
                next_source = time.monotonic() + SOURCE_POLL_SECONDS
            if release is not None:
                verdict = evaluate(release, expected, source_ours=source_ours, token=token)
                if verdict:
                    return outcome(verdict[0], verdict[1], release)
    except Timeout as exc:
        return outcome(TIMEOUT, f"{exc}; {summary(release)}", release)
    finally:
        stop.set()


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
                       time.monotonic() - started, shown_conditions(obj, secrets), kind="Kustomization")
    try:
        _start_watch(client, Kustomization, namespace, name, events, stop)
        while True:
            now = time.monotonic()
            if now >= deadline:
                applied = ((obj or {}).get("status") or {}).get("lastAppliedRevision", "none")
                return outcome(TIMEOUT, f"lastAppliedRevision {applied}; {summary(obj)}" if obj
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


