"""``check`` imports only what it uses: no HTTP client for the local repository, no cluster, git or GitLab client ever.

Each test runs ``faas-deploy check`` in a fresh Python process and reads
``sys.modules`` when it exits (an ``atexit`` hook), so what the verb loaded on its
way, at any depth, is seen; the check itself must succeed, so the whole path (the
Helm engine, the publishing rules, the dynamic manifests) really ran.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support.repo_tree import copy_repo

#: The clients ``check`` never needs: Kubernetes (lightkube), git (dulwich), GitLab, and httpx.
NEVER = ("httpx", "lightkube", "dulwich", "gitlab")
#: The OCI client and its HTTP stack: needed only with ``--registry``.
OCI_CLIENT = ("oras", "requests", "urllib3", "jsonschema", "tenacity", "faas_deployment.registry.registry_client")

PROBE = """
import atexit, sys
atexit.register(lambda: print("MODULES " + " ".join(sorted(sys.modules)), file=sys.stderr, flush=True))
from faas_deployment import cli
sys.exit(cli.main(sys.argv[1:]))
"""


def check_modules(source: Path, *flags: str, env: dict[str, str] | None = None) -> tuple[set[str], str]:
    """The modules loaded by a successful ``faas-deploy --source SOURCE check FLAGS`` process, and its stdout."""
    proc = subprocess.run([sys.executable, "-c", PROBE, "--source", str(source), "check", *flags],
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    line = [x for x in proc.stderr.splitlines() if x.startswith("MODULES ")][-1]
    return set(line.split()[1:]), proc.stdout


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    """The modules of ``modules`` that are, or are under, one of ``names``."""
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def test_check_against_the_local_repository_loads_no_network_client(tmp_path):
    source = copy_repo(tmp_path / "src")
    modules, out = check_modules(source)
    assert "would push " in out and "ok dev: dynamic manifests" in out  # the rules and the manifests were checked
    assert {"helm_python", "faas_deployment.registry.publishing", "faas_deployment.bundle.templates"} <= modules
    assert loaded(modules, NEVER + OCI_CLIENT) == []
    assert "faas_deployment.registry.lease" not in modules and "multiprocessing" not in modules


def test_check_against_a_registry_loads_only_the_oci_client(tmp_path, registry):
    source = copy_repo(tmp_path / "src")
    modules, out = check_modules(source, "--env", "dev", "--registry", f"oci://{registry.host}/charts",
                                 "--username", registry.username, "--password", "env:TEST_REGISTRY_PASSWORD",
                                 "--plain-http", env={"TEST_REGISTRY_PASSWORD": registry.password})
    assert f"would push {registry.host}/charts/" in out  # each chart was checked against the registry
    assert {"oras", "requests", "faas_deployment.registry.registry_client"} <= modules
    assert loaded(modules, NEVER) == []
    assert "faas_deployment.registry.lease" not in modules  # a dry run takes no lease


def test_image_and_artifact_modules_do_not_load_the_helm_engine():
    """Only chart work loads Helm's Go library (``chart``, ``packaging`` import it when they call it)."""
    probe = ("import sys; import faas_deployment.images.buildah, faas_deployment.flux.artifacts, "
             "faas_deployment.registry.registry_client, faas_deployment.core.packaging, faas_deployment.charts.chart; "
             "print('helm_python' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "False", proc.stderr
