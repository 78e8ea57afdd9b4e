"""One environment ``dev`` of a cluster test or bench, on the real cluster (``support.cluster``).

:class:`FluxEnv` copies the repository with ``env/dev/environment.yaml`` pointing at a
registry (the Debian ``docker-registry``), a namespace of its own and notification-
controller's Receiver server; :meth:`FluxEnv.install` applies the namespace, the
operator's volume, the registry and Receiver Secrets, and the objects ``faas-deploy
flux`` writes, as they are. The CLI runs in-process through ``run_cli(*argv) ->
(exit code, stdout, stderr)`` with the kubeconfig of ``faas-ci`` (audited).
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from faas_deployment import door
from faas_deployment.door import Workspace
from support.cluster import Cluster, apply, get
from support.registry_process import Registry
from support.repo_tree import copy_repo

RECEIVER_TOKEN = "receiver-" + "3" * 24
REGISTRY_SECRET = "faas-charts"
COMPONENTS = ("controller", "operator")
_counter = itertools.count(1)


class FluxEnv:
    """One test's environment ``dev``: a repository copy pointing at ``registry`` and namespace ``ns``."""

    def __init__(self, cluster: Cluster, registry: Registry, root: Path,
                 run_cli: Callable[..., tuple[int, str, str]]):
        self.cluster, self.registry, self.root, self.run_cli = cluster, registry, root, run_cli
        self.ns = f"faas-t{next(_counter)}-{int(time.time()) % 100000}"
        self.source = copy_repo(root / "repo")
        env_file = self.source / "env" / "dev" / "environment.yaml"
        text = env_file.read_text()
        text = text.replace("oci://registry.example.org/eo4eu-faas/charts/dev", f"oci://{registry.host}/charts/dev")
        text = text.replace("namespace: faas-dev", f"namespace: {self.ns}")
        text = text.replace("https://flux-webhook.dev.example.org", cluster.receiver_url)
        env_file.write_text(text)
        # the operator's claim names its volume: one per test, made here as the dev cluster's is
        self.volume = f"{self.ns}-operator"
        self.edit("operator", lambda t: re.sub(r'pvc_persistent_volume_name: "[^"]+"',
                                               f'pvc_persistent_volume_name: "{self.volume}"', t))
        self.kubeconfig = root / "kubeconfig"
        self.kubeconfig.write_text(cluster.kubeconfig_text("faas-ci"))
        os.environ["RX_TOKEN"] = RECEIVER_TOKEN
        os.environ["REG_PW"] = registry.password

    def fork(self, name: str) -> FluxEnv:
        """Another pipeline's checkout of the same environment, a copy of this one at ``<root>/<name>``."""
        other = copy.copy(self)
        other.source = self.root / name
        shutil.copytree(self.source, other.source)
        return other

    def config(self, component: str) -> Path:
        return self.source / "env" / "dev" / component / "cookiecutter-config.yaml"

    def edit(self, component: str, change: Any) -> None:
        path = self.config(component)
        path.write_text(change(path.read_text()))

    def bump(self, component: str) -> str:
        """Raise the patch of ``chart_version``; returns the new version."""
        text = self.config(component).read_text()
        old = re.search(r'chart_version: "(\d+)\.(\d+)\.(\d+)"', text)
        assert old
        new = f"{old.group(1)}.{old.group(2)}.{int(old.group(3)) + 1}"
        self.config(component).write_text(text.replace(old.group(0), f'chart_version: "{new}"'))
        return new

    def expected(self, component: str):
        return door.deploy.expected_for(Workspace(self.source), "dev", component)

    def cli(self, *argv: str) -> tuple[int, str, str]:
        return self.run_cli("--source", str(self.source), *argv)

    def install(self) -> list[dict[str, Any]]:
        """The namespace, the volume, the Secrets, and the objects of ``faas-deploy flux`` applied as they are."""
        self.cluster.check()  # a controller that died since the session began fails here, with its log
        auth = base64.b64encode(f"{self.registry.username}:{self.registry.password}".encode()).decode()
        docker = {"auths": {self.registry.host: {"username": self.registry.username,
                                                 "password": self.registry.password, "auth": auth}}}
        with self.cluster.http() as api:
            apply(api, [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.ns}},
                {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": self.volume},
                 "spec": {"capacity": {"storage": "2Gi"}, "accessModes": ["ReadWriteOnce"],
                          "storageClassName": "csi-cinder-sc-retain", "persistentVolumeReclaimPolicy": "Retain",
                          "hostPath": {"path": f"/tmp/{self.volume}"}}},
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": REGISTRY_SECRET, "namespace": self.ns},
                 "type": "kubernetes.io/dockerconfigjson",
                 "stringData": {".dockerconfigjson": json.dumps(docker)}},
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "faas-dev-token", "namespace": self.ns},
                 "stringData": {"token": RECEIVER_TOKEN}},
            ])
            out = self.root / "flux"
            code, stdout, stderr = self.cli("flux", "--env", "dev", "--out", str(out),
                                            "--registry-secret", REGISTRY_SECRET, "--plain-http")
            assert code == 0, stdout + stderr
            docs = [d for f in sorted(out.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
            apply(api, docs)
            # the Receiver serves its hook once notification-controller made it Ready
            deadline = time.monotonic() + 60
            while not ready(get(api, "notification.toolkit.fluxcd.io/v1", "Receiver", self.ns, "faas-dev")):
                assert time.monotonic() < deadline, "the Receiver did not become Ready"
                time.sleep(0.2)
        return docs

    def deploy(self, *extra: str, timeout: str = "240") -> tuple[int, str, str]:
        return self.cli("deploy", "--env", "dev", "--username", self.registry.username, "--password", "env:REG_PW",
                        "--plain-http", "--receiver-token", "env:RX_TOKEN", "--kubeconfig", f"file:{self.kubeconfig}",
                        "--timeout", timeout, *extra)

    def release(self, component: str) -> dict[str, Any]:
        with self.cluster.http() as api:
            found = get(api, "helm.toolkit.fluxcd.io/v2", "HelmRelease", self.ns, f"faas-{component}")
        assert found is not None
        return found

    def pods(self) -> list[dict[str, Any]]:
        with self.cluster.http() as api:
            return api.get(f"/api/v1/namespaces/{self.ns}/pods").json()["items"]


def ready(obj: dict[str, Any] | None) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in ((obj or {}).get("status") or {}).get("conditions") or [])


def release_versions(release: dict[str, Any]) -> list[tuple[int, str, str]]:
    """``(helm release version, chartVersion, status)`` of the HelmRelease's history, newest first."""
    return [(h["version"], h["chartVersion"], h["status"]) for h in release["status"].get("history") or []]
