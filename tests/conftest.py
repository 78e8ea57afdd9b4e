"""Shared fixtures and the test layer of every test file.

Fixtures (real parts started on 127.0.0.1 and stopped by the test):

- ``repo_copy``: a throwaway copy of the repository's ``env/`` tree (the ``--source`` of a workspace).
- ``run_cli``: ``run_cli(*argv) -> (exit code, stdout, stderr)``, ``faas_deployment.cli.main`` run
  in-process with ``argv``, its output captured.
- ``registry``: the real ``docker-registry`` with HTTP Basic auth (user ``ci``, random password).
- ``token_registry``: ``(registry, token service)``, the real registry delegating auth to a Docker
  token service (``Bearer`` challenges).
- ``secret``, ``bundle``: the token and the dev operator's manifest bundle for admin API uploads.
- ``admin_api_server``: the loopback double of the operator admin API (token ``support.admin_api_client.TOKEN``),
  healthy at once, storing every upload. (Not ``admin_api``: tests import the client module by that name.)
- ``cluster`` (session): a real Kubernetes control plane, kwok's fake node and the real Flux controllers
  and Flux Operator as processes on 127.0.0.1 (``support.cluster``), built by ``.ci/setup``; missing
  binaries fail the test. A failing test's report names the cluster's log directory.

Layers (``pytest -m unit`` / ``integration`` / ``e2e`` / ``cluster``; ``MARKERS`` says what each holds):
``LAYERS`` names the marker of every test file; a test file missing from it fails collection.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from faas_deployment.bundle import archive
from faas_deployment.cli import main
from faas_deployment.core import secrets as secrets_module
from faas_deployment.core.secrets import SecretValue
from support.admin_api_client import TOKEN
from support.admin_api_server import AdminApiServer
from support.cluster import Cluster, binaries_dir
from support.registry_process import Registry, start_registry, stop_registry
from support.repo_tree import copy_repo
from support.token_service import TokenService
from support.token_service import token_registry as start_token_registry

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent

MARKERS = {
    "unit": "fast, in-process, no external tool, server or Helm engine: configs, parsers, rules, the Dagger "
            "module introspected offline (our own CLI may run as a subprocess, as in fuzzing)",
    "integration": "real parts: the registry, the Helm engine, HTTP servers on loopback (doubles of the admin API, "
                   "Kubernetes, GitLab), git, buildah, skopeo, unzip, node tools",
    "e2e": "end-to-end stories through a front end: the Dagger engine harness, gitlab-ci-local",
    "cluster": "the GitOps loop against a real Kubernetes API server and the real Flux controllers (built from Go "
               "modules by .ci/setup), through the CLI and the engine harness",
}
LAYERS: dict[str, str] = {
    "test_admin_api.py": "integration",
    "test_admin_api_contract.py": "integration",
    "test_architecture.py": "unit",
    "test_artifact_manifests.py": "integration",
    "test_artifact_wait.py": "integration",
    "test_artifacts.py": "integration",
    "test_artifacts_dagger.py": "unit",
    "test_bump.py": "unit",
    "test_chart_identity.py": "integration",
    "test_chart_render.py": "integration",
    "test_check.py": "integration",
    "test_check_imports.py": "integration",
    "test_ci_dagger_parity.py": "e2e",
    "test_ci_is_data.py": "integration",
    "test_cluster_build.py": "integration",
    "test_cluster_flux.py": "cluster",
    "test_config.py": "unit",
    "test_config_identity.py": "integration",
    "test_config_is_data.py": "integration",
    "test_credentials_and_cleanup.py": "integration",
    "test_dagger_engine.py": "e2e",
    "test_dagger_module.py": "unit",
    "test_door.py": "integration",
    "test_flux_deploy.py": "integration",
    "test_fuzz_inputs.py": "unit",
    "test_gitlab_ci.py": "e2e",
    "test_helm_index.py": "unit",
    "test_hooks.py": "integration",
    "test_hostile_input.py": "unit",
    "test_image_tags.py": "integration",
    "test_interrupted_release.py": "integration",
    "test_images.py": "integration",
    "test_kube_api_faults.py": "integration",
    "test_local_repository.py": "integration",
    "test_manifests.py": "integration",
    "test_names.py": "unit",
    "test_plan.py": "integration",
    "test_promotion.py": "integration",
    "test_promotion_traffic.py": "integration",
    "test_results_contract.py": "integration",
    "test_publish.py": "integration",
    "test_publish_races.py": "integration",
    "test_publish_rules.py": "integration",
    "test_readme.py": "unit",
    "test_registry_access.py": "integration",
    "test_registry_deadlines.py": "integration",
    "test_registry_faults.py": "integration",
    "test_registry_lies.py": "integration",
    "test_registry_round_trips.py": "integration",
    "test_registry_token_auth.py": "integration",
    "test_repository_files.py": "integration",
    "test_repository_template.py": "e2e",
    "test_retire_and_flux_files.py": "integration",
    "test_secret_output.py": "integration",
    "test_secrets.py": "unit",
    "test_surfaces.py": "unit",
    "test_version_tags.py": "integration",
    "test_versions.py": "unit",
    "test_words.py": "integration",
}


@pytest.fixture(autouse=True)
def _secrets_of_this_test() -> Iterator[None]:
    """No secret outlives its test: ``secrets`` keeps every value resolved in the process and redacts
    it from server text (``sanitize``); a short fuzzed secret such as ``alse`` would otherwise mask
    ordinary words (``Released=False``) in the output a later test asserts on."""
    yield
    secrets_module._KNOWN.clear()


def pytest_configure(config: pytest.Config) -> None:
    """Register the layers here, not in an ini file: ``pytest tests`` from the repository root reads none."""
    for name, meaning in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {meaning}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with its file's layer; a test file not in ``LAYERS`` is a collection error."""
    missing = sorted({item.path.name for item in items if item.path.parent == TESTS} - set(LAYERS))
    if missing:
        raise pytest.UsageError(f"tests/conftest.py: LAYERS has no layer for {', '.join(missing)}: "
                                "add each as unit, integration, e2e or cluster")
    for item in items:
        layer = LAYERS.get(item.path.name) if item.path.parent == TESTS else None
        if layer:
            item.add_marker(getattr(pytest.mark, layer))


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A copy of the repository's ``env/`` tree under ``tmp_path / "src"``, to pass as ``--source``."""
    return copy_repo(tmp_path / "src")


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """``run_cli(*argv)``: ``faas-deploy argv`` in-process; returns (exit code, stdout, stderr) of that run."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A fresh registry per test (empty storage), user ``ci`` with a random password."""
    root = tmp_path_factory.mktemp("registry")
    password = "pw-" + os.urandom(9).hex()
    proc, reg = start_registry(root, "ci", password)
    try:
        yield reg
    finally:
        stop_registry(proc)


@pytest.fixture
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, TokenService]]:
    """A token service and a registry trusting it, both on 127.0.0.1; user ``ci``, random password."""
    with start_token_registry(tmp_path_factory.mktemp("token-registry")) as started:
        yield started


@pytest.fixture
def admin_api_server() -> Iterator[AdminApiServer]:
    """The admin API double on 127.0.0.1, healthy at once, storing every upload; stopped after the test."""
    with AdminApiServer(TOKEN) as server:
        yield server


@pytest.fixture
def secret() -> SecretValue:
    """The admin API double's token as the CLI would read it from ``env:ADMIN_TOKEN``."""
    return SecretValue(TOKEN, "env:ADMIN_TOKEN")


@pytest.fixture
def bundle(tmp_path: Path) -> archive.Bundle:
    """The bundle of ``env/dev/operator/dynamic``, written to ``tmp_path / "dev.zip"``."""
    return archive.write_bundle(
        REPO_ROOT / "env" / "dev" / "operator" / "dynamic", tmp_path / "dev.zip", log=None
    )


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The real control plane and Flux (``support.cluster``), ready in at most 60 s, stopped by PID at the end.

    Binaries missing: the test fails (``bash .ci/setup`` builds them), never skips. Logs stay under the
    session's temporary directory (pytest keeps the last three), named in a failing test's report.
    """
    try:
        home = binaries_dir()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    started = Cluster(tmp_path_factory.mktemp("cluster"), home)
    try:
        started.start()
    except RuntimeError as exc:  # a process exited or was not ready in time: its log is named
        started.stop()
        pytest.fail(f"the cluster did not start: {exc}\nlogs: {started.logs}")
    except BaseException:
        started.stop()
        raise
    print(f"\ncluster ready in {started.ready_seconds:.1f} s (logs: {started.logs})")
    try:
        yield started
    finally:
        started.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """A failing cluster test's report names the cluster's logs (kept after the run)."""
    report = yield
    if report.failed and "cluster" in getattr(item, "fixturenames", ()):
        running = item.funcargs.get("cluster") if hasattr(item, "funcargs") else None
        if isinstance(running, Cluster):
            report.sections.append(("cluster logs", f"{running.logs} (one file per process)"))
    return report
