"""A real Kubernetes control plane and the real Flux controllers as plain processes on 127.0.0.1.

Built from Go modules by ``tests/cluster/build.py`` (``.ci/setup`` runs it) into
``~/.cache/faas-deployment/cluster/<key>/``: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, kwok (one fake node that makes Pods Running
and Ready without a kubelet), Flux's source-, helm-, notification- and
kustomize-controller, and the Flux Operator. Missing binaries fail the test loudly
(they are never a reason to skip).

Every process binds 127.0.0.1 on a port given explicitly on its command line, is
started in its own session and stopped by PID (:meth:`Cluster.stop`). Logs go to
``<root>/logs/<name>.log``. The API server serves TLS with a CA made here and
authenticates a static token (``--token-auth-file``) in ``system:masters``; every
component uses the same kubeconfig (``<root>/kubeconfig``), the Flux controllers
through ``KUBECONFIG`` (their ``--kubeconfig`` flag is not exposed), leader election off.
"""

from __future__ import annotations

import base64
import datetime
import importlib.util
import ipaddress
import json
import os
import random
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

BUILD_SCRIPT = Path(__file__).resolve().parent.parent / "cluster" / "build.py"
NODE = "kwok-node-0"
FLUX_NAMESPACE = "flux-system"
READY_SECONDS = 60.0


def _build_module() -> Any:
    spec = importlib.util.spec_from_file_location("faas_cluster_build", BUILD_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules.setdefault("faas_cluster_build", module)
    spec.loader.exec_module(module)
    return module


def binaries_dir() -> Path:
    """The built cache directory (``bin/``, ``crds/``); raises RuntimeError with the command to run if absent."""
    build = _build_module()
    out = build.cache_root() / build.cache_key()
    if not (out / "versions.json").is_file():
        raise RuntimeError(f"the cluster binaries are not built ({out} is missing): run `bash .ci/setup` "
                           "(or `python3 tests/cluster/build.py`); the cluster tests need Go >= 1.26")
    return out


_TAKEN: set[int] = set()


def free_port() -> int:
    """A free port on 127.0.0.1 *below* the kernel's ephemeral range (``ip_local_port_range``): the
    port must stay free between this check and the process binding it, and every ``bind(0)`` and
    outgoing connection of other processes on the machine draws from the ephemeral range."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    ceiling = max(low, 12000)
    for _ in range(1000):
        port = random.randrange(10000, ceiling)
        if port in _TAKEN:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _TAKEN.add(port)
        return port
    raise RuntimeError(f"no free port on 127.0.0.1 between 10000 and {ceiling}")


def _certificates(directory: Path) -> dict[str, Path]:
    """A CA, the API server's serving certificate (127.0.0.1, the service IP and names) and the
    service-account signing key, as PEM files under ``directory``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def pem_key(key: Any) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "faas-test-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
            x509.DNSName("localhost"), x509.DNSName("kubernetes"), x509.DNSName("kubernetes.default"),
            x509.DNSName("kubernetes.default.svc")]
    serving = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
               .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.SubjectAlternativeName(sans), critical=False)
               .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
               .sign(ca_key, hashes.SHA256()))
    sa_key = ec.generate_private_key(ec.SECP256R1())
    files = {"ca.crt": ca.public_bytes(serialization.Encoding.PEM), "ca.key": pem_key(ca_key),
             "apiserver.crt": serving.public_bytes(serialization.Encoding.PEM), "apiserver.key": pem_key(key),
             "sa.key": pem_key(sa_key),
             "sa.pub": sa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo)}
    paths = {}
    for name, data in files.items():
        path = directory / name
        path.write_bytes(data)
        path.chmod(0o600)
        paths[name] = path
    return paths


@dataclass
class Cluster:
    """The running cluster: API server URL, admin token and kubeconfig, ports, processes, logs."""

    root: Path
    home: Path  # the binaries' cache directory
    token: str = field(default_factory=lambda: "faas-admin-" + secrets.token_hex(16))
    ci_token: str = field(default_factory=lambda: "faas-ci-" + secrets.token_hex(16))
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    ready_seconds: float = 0.0

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    @property
    def receiver_url(self) -> str:
        """notification-controller's Receiver server (``--receiverAddr``)."""
        return f"http://127.0.0.1:{self.ports['receiver']}"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def kubeconfig_text(self, user: str = "faas-admin") -> str:
        """A kubeconfig for the admin (the controllers' identity) or ``faas-ci``, the pipeline's
        identity, whose every request the API server's audit log records (:meth:`ci_requests`)."""
        token = self.token if user == "faas-admin" else self.ci_token
        config = yaml.safe_load(self.kubeconfig.read_text())
        config["users"] = [{"name": "faas-admin", "user": {"token": token}}]
        return yaml.safe_dump(config)

    def ci_requests(self) -> list[dict[str, Any]]:
        """Every request ``faas-ci`` made, from the audit log (stage ``RequestReceived``): ``verb``,
        ``requestURI``, ``requestReceivedTimestamp``."""
        path = self.root / "audit.log"
        if not path.exists():
            return []
        events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [e for e in events if (e.get("user") or {}).get("username") == "faas-ci"]

    def http(self) -> httpx.Client:
        """An HTTP client for the API server (its CA, the admin token)."""
        return httpx.Client(
            base_url=self.api_url,
            verify=ssl.create_default_context(cafile=self.root / "pki" / "ca.crt"),
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )

    # ------------------------------------------------------------------ processes

    def _start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, cwd=self.root,
                                            env={**os.environ, **(env or {})})
        log.close()

    def _bin(self, name: str) -> str:
        return str(self.home / "bin" / name)

    def check(self) -> None:
        """Raise RuntimeError naming the first process that exited, with the end of its log."""
        self._check_alive()

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(
                    f"{name} exited with {proc.returncode}; its log ({self.logs / name}.log) ends:\n{tail}"
                )

    def _wait(self, what: str, probe: Any, deadline: float) -> None:
        while True:
            self._check_alive()
            try:
                if probe():
                    return
            except (httpx.TransportError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not ready within {READY_SECONDS:.0f} s (logs: {self.logs})")
            time.sleep(0.1)

    def start(self) -> Cluster:
        started = time.monotonic()
        deadline = started + READY_SECONDS
        self.logs.mkdir(parents=True, exist_ok=True)
        pki = self.root / "pki"
        pki.mkdir(exist_ok=True)
        certs = _certificates(pki)
        for name in ("etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler", "kwok",
                     "source-health", "source-storage", "helm-health", "notification-health", "events", "receiver",
                     "kustomize-health", "operator-health"):
            self.ports[name] = free_port()
        tokens = self.root / "tokens.csv"
        tokens.write_text(f'{self.token},faas-admin,faas-admin,"system:masters"\n'
                          f'{self.ci_token},faas-ci,faas-ci,"system:masters"\n')
        audit_policy = self.root / "audit-policy.yaml"
        audit_policy.write_text(yaml.safe_dump({
            "apiVersion": "audit.k8s.io/v1", "kind": "Policy",
            "omitStages": ["ResponseStarted", "ResponseComplete", "Panic"],
            "rules": [{"level": "Metadata", "users": ["faas-ci"]}, {"level": "None"}]}))
        tokens.chmod(0o600)
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "faas-test",
                    "clusters": [
                        {
                            "name": "faas-test",
                            "cluster": {
                                "server": self.api_url,
                                "certificate-authority-data": base64.b64encode(certs["ca.crt"].read_bytes()).decode(),
                            },
                        }
                    ],
                    "users": [{"name": "faas-admin", "user": {"token": self.token}}],
                    "contexts": [{"name": "faas-test", "context": {"cluster": "faas-test", "user": "faas-admin"}}],
                }
            )
        )
        self.kubeconfig.chmod(0o600)
        kubeconfig = str(self.kubeconfig)
        p = self.ports
        etcd_url = f"http://127.0.0.1:{p['etcd']}"
        self._start("etcd", [
            self._bin("etcd"), "--name", "faas-test", "--data-dir", str(self.root / "etcd"),
            "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
            "--listen-peer-urls", f"http://127.0.0.1:{p['etcd-peer']}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{p['etcd-peer']}",
            "--initial-cluster", f"faas-test=http://127.0.0.1:{p['etcd-peer']}",
            "--unsafe-no-fsync", "--log-level", "warn"])
        self._start("apiserver", [
            self._bin("kube-apiserver"), "--etcd-servers", etcd_url,
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", str(p["apiserver"]),
            "--tls-cert-file", str(certs["apiserver.crt"]), "--tls-private-key-file", str(certs["apiserver.key"]),
            "--client-ca-file", str(certs["ca.crt"]), "--token-auth-file", str(tokens),
            "--service-account-key-file", str(certs["sa.pub"]),
            "--service-account-signing-key-file", str(certs["sa.key"]),
            "--service-account-issuer", "https://kubernetes.default.svc",
            "--service-cluster-ip-range", "10.0.0.0/24", "--authorization-mode", "RBAC",
            "--audit-policy-file", str(audit_policy), "--audit-log-path", str(self.root / "audit.log"),
            "--audit-log-format", "json", "--audit-log-mode", "blocking",
            "--enable-priority-and-fairness=false", "--v", "1"])
        with self.http() as api:
            self._wait("kube-apiserver", lambda: api.get("/readyz").status_code == 200, deadline)
            self._start("controller-manager", [
                self._bin("kube-controller-manager"), "--kubeconfig", kubeconfig,
                "--authentication-kubeconfig", kubeconfig, "--authorization-kubeconfig", kubeconfig,
                "--bind-address", "127.0.0.1", "--secure-port", str(p["controller-manager"]),
                "--leader-elect=false", "--service-account-private-key-file", str(certs["sa.key"]),
                "--root-ca-file", str(certs["ca.crt"]), "--use-service-account-credentials=false",
                "--concurrent-deployment-syncs", "2", "--v", "1"])
            self._start("scheduler", [
                self._bin("kube-scheduler"), "--kubeconfig", kubeconfig,
                "--authentication-kubeconfig", kubeconfig, "--authorization-kubeconfig", kubeconfig,
                "--bind-address", "127.0.0.1", "--secure-port", str(p["scheduler"]), "--leader-elect=false",
                "--v", "1"])
            self._start("kwok", [
                self._bin("kwok"), "--kubeconfig", kubeconfig, "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector", "kwok.x-k8s.io/node=fake",
                "--server-address", f"127.0.0.1:{p['kwok']}", "--node-ip", "127.0.0.1",
                "--cidr", "10.244.0.0/16", "--node-lease-duration-seconds", "40",
                *(arg for stage in sorted((self.home / "kwok").glob("*.yaml")) for arg in ("--config", str(stage)))])
            apply(api, [_node()])
            apply(api, [yaml.safe_load(crd.read_text()) for crd in sorted((self.home / "crds").glob("*/*.yaml"))])
            apply(api, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": FLUX_NAMESPACE}}])
            self._wait("the Flux CRDs", lambda: _established(api), deadline)
            self._start_flux(kubeconfig)
            for name, port in (("source", "source-health"), ("helm", "helm-health"),
                               ("notification", "notification-health"), ("kustomize", "kustomize-health"),
                               ("flux-operator", "operator-health")):
                self._wait(f"{name} controller", lambda port=port: httpx.get(
                    f"http://127.0.0.1:{self.ports[port]}/readyz", timeout=2).status_code == 200, deadline)
            self._wait(f"node {NODE}", lambda: _node_ready(api), deadline)
            self._wait("the default ServiceAccount", lambda: api.get(
                "/api/v1/namespaces/default/serviceaccounts/default").status_code == 200, deadline)
        self.ready_seconds = time.monotonic() - started
        return self

    def _start_flux(self, kubeconfig: str) -> None:
        p = self.ports
        env = {"KUBECONFIG": kubeconfig, "RUNTIME_NAMESPACE": FLUX_NAMESPACE}
        common = ["--enable-leader-election=false", "--log-level", "info", "--log-encoding", "console"]
        storage = self.root / "source-storage"
        storage.mkdir(exist_ok=True)
        self._start("source-controller", [
            self._bin("source-controller"), *common,
            "--metrics-addr", "0", "--health-addr", f"127.0.0.1:{p['source-health']}",
            "--storage-path", str(storage), "--storage-addr", f"127.0.0.1:{p['source-storage']}",
            "--storage-adv-addr", f"127.0.0.1:{p['source-storage']}",
            "--events-addr", f"http://127.0.0.1:{p['events']}"], env)
        self._start("helm-controller", [
            self._bin("helm-controller"), *common,
            "--metrics-addr", "0", "--health-addr", f"127.0.0.1:{p['helm-health']}",
            "--events-addr", f"http://127.0.0.1:{p['events']}"], env)
        self._start("notification-controller", [
            self._bin("notification-controller"), *common,
            "--metrics-addr", "0",
            "--health-addr", f"127.0.0.1:{p['notification-health']}",
            "--events-addr", f"127.0.0.1:{p['events']}", "--receiverAddr", f"127.0.0.1:{p['receiver']}"], env)
        self._start("kustomize-controller", [
            self._bin("kustomize-controller"), *common,
            "--metrics-addr", "0", "--health-addr", f"127.0.0.1:{p['kustomize-health']}",
            "--events-addr", f"http://127.0.0.1:{p['events']}"], env)
        operator_storage = self.root / "operator-storage"
        operator_storage.mkdir(exist_ok=True)
        self._start("flux-operator", [
            self._bin("flux-operator"), *common,
            "--metrics-addr", "0", "--health-addr", f"127.0.0.1:{p['operator-health']}",
            "--storage-path", str(operator_storage), "--web-server-port", "0"], env)

    def stop(self) -> None:
        """SIGTERM every process group (reverse start order), SIGKILL what is left after 3 s (helm-controller
        would otherwise wait its graceful shutdown timeout for nothing: every test is over)."""
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        end = time.monotonic() + 3
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=5)


def _node() -> dict[str, Any]:
    """The fake node kwok manages (its annotation selector), schedulable, with room for any chart."""
    capacity = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE, "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                                       "kwok.x-k8s.io/node": "fake"},
                         "labels": {"kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux",
                                    "kubernetes.io/arch": "amd64", "type": "kwok"}},
            "status": {"capacity": capacity, "allocatable": capacity}}


def _established(api: httpx.Client) -> bool:
    crds = api.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions").json()["items"]
    return len(crds) >= 15 and all(
        any(
            c["type"] == "Established" and c["status"] == "True"
            for c in (crd.get("status") or {}).get("conditions") or []
        )
        for crd in crds
    )


def _node_ready(api: httpx.Client) -> bool:
    node = api.get(f"/api/v1/nodes/{NODE}").json()
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in (node.get("status") or {}).get("conditions") or []
    )


# ---------------------------------------------------------------------- server-side apply

_RESOURCES: dict[tuple[str, str], tuple[str, bool]] = {}


def resource_path(api: httpx.Client, api_version: str, kind: str, namespace: str | None, name: str = "") -> str:
    """The REST path of ``kind`` (discovered from the API server), optionally of one object ``name``."""
    if (api_version, kind) not in _RESOURCES:
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        answer = api.get(base)
        answer.raise_for_status()
        for resource in answer.json()["resources"]:
            if "/" not in resource["name"]:
                _RESOURCES[(api_version, resource["kind"])] = (resource["name"], resource["namespaced"])
    plural, namespaced = _RESOURCES[(api_version, kind)]
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{base}/namespaces/{namespace}/{plural}" if namespaced else f"{base}/{plural}"
    return f"{path}/{name}" if name else path


def apply(api: httpx.Client, docs: list[dict[str, Any]], namespace: str | None = None) -> None:
    """Server-side apply each document as it is (``PATCH application/apply-patch+yaml``, field manager
    ``faas-test``, forced); ``namespace`` fills in a namespaced object's missing ``metadata.namespace``."""
    for doc in docs:
        if not doc:
            continue
        meta = doc["metadata"]
        ns = meta.get("namespace") or namespace
        path = resource_path(api, doc["apiVersion"], doc["kind"], ns or "default", meta["name"])
        answer = api.patch(
            path,
            params={"fieldManager": "faas-test", "force": "true"},
            content=yaml.safe_dump(doc).encode(),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        if answer.status_code >= 300:
            raise RuntimeError(f"apply {doc['kind']} {meta['name']}: HTTP {answer.status_code} {answer.text[:500]}")


def get(api: httpx.Client, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
    """The object, or ``None`` when the API server answers 404."""
    answer = api.get(resource_path(api, api_version, kind, namespace, name))
    if answer.status_code == 404:
        return None
    answer.raise_for_status()
    return answer.json()
