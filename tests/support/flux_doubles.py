"""Loopback doubles of the Kubernetes API (HelmRelease, OCIRepository, Kustomization) and a Flux Receiver.

:class:`KubeApi` serves, on 127.0.0.1, the paths kube-apiserver serves for custom
resources: ``GET /apis/<group>/<version>/namespaces/<ns>/<plural>/<name>``,
``PATCH`` of the same with ``application/merge-patch+json`` (RFC 7386), and the
watch ``GET /apis/<group>/<version>/namespaces/<ns>/<plural>?watch=true`` with
``fieldSelector=metadata.name=<name>``, ``resourceVersion`` and ``timeoutSeconds``:
one JSON event per line (``{"type": "ADDED"|"MODIFIED", "object": ...}``), a synthetic
``ADDED`` for the current object when no ``resourceVersion`` is given, 401 with a
``Status`` body without the right bearer token, 404 ``Status`` for an unknown object.

:class:`Receiver` verifies a ``generic-hmac`` hook as notification-controller does
(``internal/server/receiver_handlers.go``: the path ``/hook/`` + hex sha256(token +
name + namespace), else 404; ``X-Signature: <algo>=<hex HMAC(token, body)>`` with
sha1/sha256/sha512, else 400; every answer with an empty body), then "annotates": it
calls ``on_hook``.

Status sequences (:func:`scenario`) are shaped like helm-controller v2's status
(``api/v2/helmrelease_types.go`` ``HelmReleaseStatus``, ``Snapshot``;
``api/v2/condition_types.go`` reasons; ``internal/controller/helmrelease_controller.go``
``SourceNotReady``) and source-controller's OCIRepository ``status.artifact.revision``
``<tag>@sha256:<hex>``. Kustomization statuses (:func:`kustomization_status`) follow
kustomize-controller's ``api/v1/kustomization_types.go`` ``KustomizationStatus``
(``lastAppliedRevision`` "equals the Revision of the applied Artifact",
``lastAttemptedRevision``) and ``internal/controller/kustomization_controller.go``
(``Applied revision: <rev>`` with reason ``ReconciliationSucceeded``; ``HealthCheckFailed``).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

HR = ("helm.toolkit.fluxcd.io", "v2", "helmreleases")
OCI = ("source.toolkit.fluxcd.io", "v1", "ocirepositories")
KS = ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass


class KubeApi:
    """The Kubernetes API double; ``requests`` lists ``(method, path, monotonic time)``."""

    def __init__(self, token: str, on_patch: Callable[[str, str, dict[str, Any]], None] = lambda *a: None):
        self.token = token
        self.on_patch = on_patch  # (plural, name, patch) after a merge-PATCH was applied
        self.ready_times: dict[str, float] = {}
        self.objects: dict[tuple[str, str, str, str, str], dict[str, Any]] = {}
        self.version = 1
        self.changed = threading.Condition()
        self.requests: list[tuple[str, str, float]] = []
        self.ready_at: float | None = None
        #: Fault injectors (:func:`drip`, :func:`silent`, :func:`answer`, :func:`close_watch`,
        #: :func:`expire_watch`), asked in order before the normal answer; the first that returns True answered.
        self.faults: list[Callable[..., bool]] = []
        self.stopping = threading.Event()
        api = self

        class Handler(_Quiet):

            def _send(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code: int, reason: str, message: str) -> None:
                self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                                  "reason": reason, "code": code})

            def _route(self):
                url = urllib.parse.urlsplit(self.path)
                api.requests.append((self.command, url.path, time.monotonic()))
                parts, query = url.path.strip("/").split("/"), urllib.parse.parse_qs(url.query)
                if len(parts) >= 6:
                    name = parts[6] if len(parts) == 7 else None
                    if any(fault(self, self.command, parts[5], name, query) for fault in list(api.faults)):
                        return None
                if self.headers.get("Authorization") != f"Bearer {api.token}":
                    self._status(401, "Unauthorized", "Unauthorized")
                    return None
                parts = url.path.strip("/").split("/")
                if len(parts) < 6 or parts[0] != "apis" or parts[3] != "namespaces":
                    self._status(404, "NotFound", "the server could not find the requested resource")
                    return None
                return parts, urllib.parse.parse_qs(url.query)

            def do_GET(self) -> None:
                routed = self._route()
                if routed is None:
                    return
                parts, query = routed
                group, version, ns, plural = parts[1], parts[2], parts[4], parts[5]
                if len(parts) == 7:
                    obj = api.get(group, version, ns, plural, parts[6])
                    if obj is None:
                        self._status(404, "NotFound", f'{plural}.{group} "{parts[6]}" not found')
                    else:
                        self._send(200, obj)
                    return
                if query.get("watch") == ["true"]:
                    self._watch(group, version, ns, plural, query)
                    return
                self._status(405, "MethodNotAllowed", "list is not served by this double")

            def _watch(self, group: str, version: str, ns: str, plural: str, query: dict) -> None:
                selector = query.get("fieldSelector", [""])[0]
                name = selector.partition("metadata.name=")[2]
                since = int(query.get("resourceVersion", ["0"])[0] or 0)
                end = time.monotonic() + float(query.get("timeoutSeconds", ["30"])[0])
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                seen = since
                first = since == 0
                try:
                    while time.monotonic() < end:
                        with api.changed:
                            obj = api.get(group, version, ns, plural, name)
                            rv = int(obj["metadata"]["resourceVersion"]) if obj else 0
                            if obj is None or rv <= seen:
                                api.changed.wait(timeout=min(0.5, max(0.0, end - time.monotonic())))
                                continue
                        event = {"type": "ADDED" if first else "MODIFIED", "object": obj}
                        first, seen = False, rv
                        line = json.dumps(event).encode() + b"\n"
                        self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_PATCH(self) -> None:
                routed = self._route()
                if routed is None:
                    return
                parts, _ = routed
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.headers.get("Content-Type") != "application/merge-patch+json" or len(parts) != 7:
                    self._status(415, "UnsupportedMediaType", "expected application/merge-patch+json")
                    return
                obj = api.patch(parts[1], parts[2], parts[4], parts[5], parts[6], body)
                if obj is None:
                    self._status(404, "NotFound", f'{parts[5]}.{parts[1]} "{parts[6]}" not found')
                else:
                    self._send(200, obj)
                    api.on_patch(parts[5], parts[6], body)

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def get(self, group: str, version: str, ns: str, plural: str, name: str) -> dict[str, Any] | None:
        obj = self.objects.get((group, version, ns, plural, name))
        return copy.deepcopy(obj) if obj else None

    def put(self, kind: tuple[str, str, str], ns: str, name: str, obj: dict[str, Any]) -> None:
        """Store ``obj`` as the current object (a new resourceVersion); wakes watchers."""
        with self.changed:
            self.version += 1
            obj = copy.deepcopy(obj)
            obj.setdefault("metadata", {}).update(name=name, namespace=ns, resourceVersion=str(self.version))
            self.objects[(*kind[:2], ns, kind[2], name)] = obj
            self.changed.notify_all()

    def set_status(self, kind: tuple[str, str, str], ns: str, name: str, status: dict[str, Any]) -> None:
        obj = self.get(kind[0], kind[1], ns, kind[2], name) or {}
        obj["status"] = status
        if kind == HR and any(c.get("type") == "Ready" and c.get("status") == "True"
                              for c in status.get("conditions", [])):
            self.ready_at = self.ready_times[name] = time.monotonic()
        self.put(kind, ns, name, obj)

    def patch(self, group: str, version: str, ns: str, plural: str, name: str, body: Any) -> dict[str, Any] | None:
        obj = self.get(group, version, ns, plural, name)
        if obj is None:
            return None
        self.put((group, version, plural), ns, name, merge_patch(obj, body))
        return self.get(group, version, ns, plural, name)

    def __enter__(self) -> "KubeApi":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def watches(self, plural: str) -> list[float]:
        """When each watch request of ``plural`` arrived (monotonic seconds)."""
        return [t for method, path, t in self.requests if method == "GET" and path.endswith(f"/{plural}")]

    def kubeconfig(self) -> str:
        """A kubeconfig (YAML text) for this server with its bearer token."""
        return json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "double",
            "clusters": [{"name": "double", "cluster": {"server": self.url}}],
            "users": [{"name": "ci", "user": {"token": self.token}}],
            "contexts": [{"name": "double", "context": {"cluster": "double", "user": "ci"}}],
        })


class Receiver:
    """A ``generic-hmac`` Receiver ``namespace/name`` with ``token``; ``hits`` counts verified calls."""

    def __init__(self, token: str, name: str, namespace: str, on_hook: Callable[[], None] = lambda: None,
                 answers: list[int] | None = None):
        self.path = "/hook/" + hashlib.sha256((token + name + namespace).encode()).hexdigest()
        self.hits = 0
        self.answers = list(answers or [])
        receiver = self

        class Handler(_Quiet):

            def _answer(self, code: int, text: str = "") -> None:
                data = text.encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.answers:
                    self._answer(receiver.answers.pop(0))
                    return
                if self.path != receiver.path:
                    self._answer(404)
                    return
                algo, _, digest = (self.headers.get("X-Signature") or "").partition("=")
                hashes = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
                if algo not in hashes or not hmac.compare_digest(
                        hmac.new(token.encode(), body, hashes[algo]).hexdigest(), digest):
                    self._answer(400)
                    return
                receiver.hits += 1
                on_hook()
                self._answer(200)

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def _cond(kind: str, status: str, reason: str, message: str, generation: int = 1) -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": message,
            "observedGeneration": generation, "lastTransitionTime": "2026-01-01T00:00:00Z"}


def _snapshot(chart: str, chart_version: str, status: str, version: int, ns: str, name: str) -> dict[str, Any]:
    return {"name": name, "namespace": ns, "version": version, "status": status, "chartName": chart,
            "chartVersion": chart_version, "appVersion": chart_version.split("+")[0],
            "configDigest": "sha256:" + "c" * 64, "digest": "sha256:" + "d" * 64,
            "firstDeployed": "2026-01-01T00:00:00Z", "lastDeployed": "2026-01-01T00:00:00Z"}


def scenario(kind: str, *, chart: str, ns: str, name: str, old: str, new: str, newer: str = "",
             ) -> list[tuple[str, dict[str, Any]]]:
    """Steps ``(object, status)`` for ``kind``; ``old``/``new``/``newer`` are ``<version>+<digest12>``.

    ``object`` is ``"hr"`` or ``"source"``; the source's status uses ``new``'s
    ``<version>@<digest>`` set by the caller through :meth:`KubeApi.set_status`.
    """
    release = f"{ns}/{name}"
    base = {"observedGeneration": 1, "history": [_snapshot(chart, old, "deployed", 1, ns, name)],
            "lastAttemptedRevision": old, "lastAttemptedReleaseAction": "install"}
    progressing = {**base, "conditions": [_cond("Ready", "Unknown", "Progressing", "reconciliation in progress"),
                                          _cond("Reconciling", "True", "Progressing", "Running 'upgrade' action")],
                   "lastAttemptedRevision": new, "lastAttemptedReleaseAction": "upgrade"}
    # The sequences below are the real helm-controller v1.6's (seen through a watch against it, with
    # upgrade.remediation {retries: 3, strategy: rollback}): Ready=True comes one status *before*
    # history[0] names the new release, the replaced release becomes "superseded", a failed upgrade
    # is Released=False with Reconciling=True (no Stalled until the retries are spent), and after a
    # rollback Released=False stays beside Remediated=True.
    upgraded = f"Helm upgrade succeeded for release {release}.v2 with chart {chart}@{new}"
    success_conditions = [_cond("Reconciling", "True", "Progressing", "Running 'upgrade' action with timeout of 5m0s"),
                          _cond("Ready", "True", "UpgradeSucceeded", upgraded),
                          _cond("Released", "True", "UpgradeSucceeded", upgraded)]
    ready_before_history = {**base, "lastAttemptedRevision": new, "lastAttemptedReleaseAction": "upgrade",
                            "conditions": success_conditions}
    done = {**base, "lastAttemptedRevision": new, "lastAttemptedReleaseAction": "upgrade",
            "history": [_snapshot(chart, new, "deployed", 2, ns, name),
                        _snapshot(chart, old, "superseded", 1, ns, name)]}
    success = {**done, "conditions": success_conditions[1:]}
    failed_message = f"Helm upgrade failed for release {release} with chart {chart}@{new}: context deadline exceeded"
    failed_conditions = [_cond("Reconciling", "True", "Progressing", "Running 'upgrade' action with timeout of 5m0s"),
                         _cond("Ready", "False", "UpgradeFailed", failed_message),
                         _cond("Released", "False", "UpgradeFailed", failed_message)]
    failed = {**base, "lastAttemptedRevision": new, "lastAttemptedReleaseAction": "upgrade",
              "history": [_snapshot(chart, new, "failed", 2, ns, name), *base["history"]],
              "failures": 1, "upgradeFailures": 1, "conditions": failed_conditions}
    rollback_message = f"Helm rollback to previous release {release}.v1 with chart {chart}@{old} succeeded"
    rolled_back = {**base, "lastAttemptedRevision": new, "lastAttemptedReleaseAction": "upgrade",
                   "history": [_snapshot(chart, old, "deployed", 3, ns, name),
                               _snapshot(chart, new, "failed", 2, ns, name), *base["history"]],
                   "failures": 1, "upgradeFailures": 1, "conditions": [
                       _cond("Reconciling", "True", "ProgressingWithRetry", rollback_message),
                       _cond("Ready", "False", "RollbackSucceeded", rollback_message),
                       failed_conditions[2],
                       _cond("Remediated", "True", "RollbackSucceeded", rollback_message)]}
    # The retries spent (1 + 3 attempts): Stalled, the last rollback's conditions kept.
    stalled = {**rolled_back, "failures": 4, "upgradeFailures": 4, "conditions": [
        _cond("Stalled", "True", "RetriesExceeded", "Failed to upgrade after 4 attempt(s)"),
        *rolled_back["conditions"][1:]]}
    superseded = {**base, "lastAttemptedRevision": newer, "lastAttemptedReleaseAction": "upgrade",
                  "conditions": [_cond("Ready", "Unknown", "Progressing", "reconciliation in progress")]}
    # A first install that fails, as the real helm-controller v1.6 leaves it while its install
    # remediation retries: no status.observedGeneration yet (written only when a reconcile ends
    # without error), no history (the failed release is uninstalled), current conditions.
    install_message = (f"Helm install failed for release {release} with chart {chart}@{new}: unable to build "
                       f"kubernetes objects from release manifest: resource mapping not found")
    install_failed = {"lastAttemptedRevision": new, "lastAttemptedReleaseAction": "install",
                      "installFailures": 1, "failures": 1, "conditions": [
                          _cond("Reconciling", "True", "Progressing", "Running 'install' action with timeout of 5m0s"),
                          _cond("Ready", "False", "InstallFailed", install_message),
                          _cond("Released", "False", "InstallFailed", install_message)]}
    installing = {"lastAttemptedRevision": new, "lastAttemptedReleaseAction": "install", "conditions": [
        _cond("Reconciling", "True", "Progressing", "Running 'install' action with timeout of 5m0s"),
        _cond("Ready", "Unknown", "Progressing", "Running 'install' action with timeout of 5m0s")]}
    source_not_ready = {
        **base,
        "conditions": [
            _cond(
                "Ready",
                "False",
                "SourceNotReady",
                f"OCIRepository '{release}' is not ready: latest generation of object has not been reconciled",
            )
        ],
    }
    return {
        "success": [("hr", progressing), ("hr", ready_before_history), ("hr", success)],
        "stalled": [("hr", progressing), ("hr", stalled)],
        "failed": [("hr", progressing), ("hr", failed)],
        "rollback": [("hr", progressing), ("hr", rolled_back)],
        "install-failed": [("hr", installing), ("hr", install_failed)],
        "superseded": [("hr", superseded)],
        "source-not-ready": [("hr", source_not_ready), ("source", {}), ("hr", progressing), ("hr", success)],
        "never": [],
    }[kind]


def play(api: KubeApi, steps: list[tuple[str, dict[str, Any]]], expected: Any, ns: str, name: str,
         gap: float = 0.3) -> threading.Thread:
    """Replay ``steps`` (from :func:`scenario`) on HelmRelease/OCIRepository ``ns/name``, ``gap`` seconds apart.

    A ``"source"`` step sets the OCIRepository's ``status.artifact.revision`` to
    ``expected.source_revision`` (what source-controller reports after pulling the push).
    """
    def run() -> None:
        for kind, status in steps:
            time.sleep(gap)
            if kind == "hr":
                api.set_status(HR, ns, name, status)
            else:
                api.set_status(OCI, ns, name, {"artifact": {"revision": expected.source_revision}})
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def deploy_succeeds(api: KubeApi, expected: dict[str, Any], component: str = "operator", *, ns: str = "faas-dev",
                    name: str = "faas-operator", old: str = f"1.0.3+{'a' * 12}") -> Callable[[], None]:
    """A Receiver's ``on_hook`` for a deploy that succeeds: source-controller pulls the push, then
    helm-controller upgrades ``ns/name`` from ``old`` to what ``expected[component]`` names (read when
    the hook fires: the test fills ``expected`` once it knows the digest)."""
    def on_hook() -> None:
        exp = expected[component]
        play(api, [("source", {}), *scenario("success", chart=exp.chart, ns=ns, name=name, old=old, new=exp.revision)],
             exp, ns, name, gap=0.2)

    return on_hook


def kustomization_status(kind: str, *, applied: str, attempted: str, generation: int = 1) -> dict[str, Any]:
    """A Kustomization ``status`` as kustomize-controller writes it: ``kind`` is
    ``progressing``, ``ready``, ``health-failed`` or ``stalled``; revisions ``<tag>@sha256:<hex>``."""
    base = {"observedGeneration": generation, "lastAppliedRevision": applied, "lastAttemptedRevision": attempted,
            "lastAppliedOriginRevision": "main@sha1:" + "a" * 40}
    conditions = {
        "progressing": [
            _cond(
                "Ready",
                "Unknown",
                "Progressing",
                f"Building manifests for revision {attempted} with a timeout of 5m0s",
                generation,
            ),
            _cond("Reconciling", "True", "Progressing", "Detecting drift", generation),
        ],
        "ready": [_cond("Ready", "True", "ReconciliationSucceeded", f"Applied revision: {applied}", generation)],
        "health-failed": [
            _cond(
                "Ready",
                "False",
                "HealthCheckFailed",
                "health check failed after 5m0s: timeout waiting for: [Deployment/default/operator "
                "status: 'InProgress']",
                generation,
            ),
            _cond("Healthy", "False", "HealthCheckFailed", "timeout waiting for Deployment", generation),
        ],
        "stalled": [
            _cond("Ready", "False", "BuildFailed", "kustomize build failed: accumulating resources", generation),
            _cond("Stalled", "True", "BuildFailed", "kustomize build failed: accumulating resources", generation),
        ],
    }[kind]
    return {**base, "conditions": conditions}


# --------------------------------------------------------------------------- faults of the Kubernetes API
#
# Each returns an injector for ``KubeApi.faults``: ``(handler, method, plural, name, query) -> bool``
# (``name`` is None for a collection, i.e. a watch). Shapes follow kube-apiserver: a refusal is a
# ``Status`` object (apimachinery ``pkg/apis/meta/v1/types.go``), a watch answers 200 with chunked
# JSON lines ``{"type", "object"}`` (``pkg/apis/meta/v1/watch.go``; apiserver
# ``pkg/endpoints/handlers/watch.go``), and a watch from a resourceVersion the watch cache no longer
# holds gets one ``ERROR`` event carrying ``Status`` 410 reason ``Expired`` "too old resource version"
# (apiserver ``pkg/storage/cacher``; ``errors.NewResourceExpired`` in apimachinery ``pkg/api/errors``).


def _matches(plural: str, watch: bool, method: str, got_plural: str, name: str | None) -> bool:
    return method in ("GET", "PATCH") and got_plural == plural and (name is None) == watch


def _chunk(handler: Any, data: bytes) -> None:
    handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    handler.wfile.flush()


def _head(handler: Any, status: int = 200, content_type: str = "application/json", chunked: bool = True) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    if chunked:
        handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()


def drip(api: KubeApi, plural: str, *, watch: bool = False, interval: float = 1.0) -> Callable[..., bool]:
    """Answer 200 and then one blank (valid JSON whitespace) every ``interval`` seconds, never ending."""
    def fault(handler: Any, method: str, got: str, name: str | None, query: dict) -> bool:
        if not _matches(plural, watch, method, got, name):
            return False
        _drain(handler)
        try:
            _head(handler)
            while not api.stopping.wait(interval):
                _chunk(handler, b" ")
        except OSError:
            pass
        handler.close_connection = True
        return True
    return fault


def silent(api: KubeApi, plural: str, *, watch: bool = False) -> Callable[..., bool]:
    """Read the request and never answer (a server that hangs)."""
    def fault(handler: Any, method: str, got: str, name: str | None, query: dict) -> bool:
        if not _matches(plural, watch, method, got, name):
            return False
        _drain(handler)
        api.stopping.wait()
        handler.close_connection = True
        return True
    return fault


def answer(plural: str, body: bytes, *, status: int = 200, content_type: str = "application/json",
           watch: bool = False, times: int | None = None) -> Callable[..., bool]:
    """Answer ``body`` as is (garbage, oversized, deeply nested, a wrongly typed object), ``times`` times."""
    left = [times]

    def fault(handler: Any, method: str, got: str, name: str | None, query: dict) -> bool:
        if not _matches(plural, watch, method, got, name) or left[0] == 0:
            return False
        if left[0] is not None:
            left[0] -= 1
        _drain(handler)
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except OSError:
            pass
        return True
    return fault


def close_watch(plural: str) -> Callable[..., bool]:
    """Every watch of ``plural`` answers 200 and ends at once, without an event (a proxy cutting streams)."""
    def fault(handler: Any, method: str, got: str, name: str | None, query: dict) -> bool:
        if not _matches(plural, True, method, got, name):
            return False
        _head(handler)
        handler.wfile.write(b"0\r\n\r\n")
        return True
    return fault


def expire_watch(api: KubeApi, kind: tuple[str, str, str], ns: str, times: int = 1) -> Callable[..., bool]:
    """The first watch (no resourceVersion) gets the object's ADDED event and ends; the next ``times``
    watches from a resourceVersion get an ``ERROR`` event with ``Status`` 410 ``Expired``, as the
    apiserver's watch cache answers a resourceVersion it no longer holds."""
    state = {"first": True, "left": times}

    def fault(handler: Any, method: str, got: str, name: str | None, query: dict) -> bool:
        if not _matches(kind[2], True, method, got, name):
            return False
        selector = query.get("fieldSelector", [""])[0].partition("metadata.name=")[2]
        since = query.get("resourceVersion", [""])[0]
        if state["first"] and not since:
            state["first"] = False
            obj = api.get(kind[0], kind[1], ns, kind[2], selector)
            _head(handler)
            _chunk(handler, json.dumps({"type": "ADDED", "object": obj}).encode() + b"\n")
            handler.wfile.write(b"0\r\n\r\n")
            return True
        if since and state["left"] > 0:
            state["left"] -= 1
            status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": f"too old resource version: {since} ({api.version})", "reason": "Expired",
                      "code": 410}
            _head(handler)
            _chunk(handler, json.dumps({"type": "ERROR", "object": status}).encode() + b"\n")
            handler.wfile.write(b"0\r\n\r\n")
            return True
        return False
    return fault


def _drain(handler: Any) -> None:
    length = int(handler.headers.get("Content-Length") or 0)
    if length:
        handler.rfile.read(length)
