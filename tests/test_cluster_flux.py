"""The GitOps loop against a real Kubernetes API server and the real Flux controllers.

Real parts: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok's fake
node, source-, helm-, notification- and kustomize-controller and the Flux Operator
(fixture ``cluster``), the Debian registry (fixture ``registry``), the CLI in-process.
Each test has its own namespace (its copy of ``env/dev/environment.yaml`` says so) and
its own registry; the Flux objects are the CLI's, applied as they are
(``support.flux_env``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.cluster import Cluster, apply, get
from support.flux_env import (
    COMPONENTS,
    RECEIVER_TOKEN,
    FluxEnv,
    ready,
    release_versions,
)
from support.registry_process import Registry
from support.repo_tree import REPO_ROOT


@pytest.fixture
def flux_env(cluster: Cluster, registry: Registry, tmp_path: Path, run_cli: Any, monkeypatch: Any) -> FluxEnv:
    monkeypatch.setenv("RX_TOKEN", "")  # FluxEnv sets them; monkeypatch restores them after the test
    monkeypatch.setenv("REG_PW", "")
    env = FluxEnv(cluster, registry, tmp_path, run_cli)
    env.install()
    return env


def test_deploy_reports_deployed_once_the_real_release_runs_the_pushed_chart(flux_env):
    """``deploy`` publishes, calls the real Receiver (HMAC), and says ``deployed`` only when helm-controller's
    HelmRelease runs the pushed revision and the Deployments' Pods are Ready (kwok's node)."""
    expected = {c: flux_env.expected(c) for c in COMPONENTS}
    code, out, err = flux_env.deploy()
    assert code == 0, out + err
    assert out.count("pushed ") == 2 and "notified receiver" in out
    for component, exp in expected.items():
        assert f"deployed {exp.chart}@{exp.version} to {flux_env.ns}/faas-{component}" in out
        release = flux_env.release(component)
        assert ready(release)
        assert release_versions(release)[0] == (1, exp.revision, "deployed")
        # the Receiver annotated the sources (notification-controller's requestedAt)
        with flux_env.cluster.http() as api:
            source = get(api, "source.toolkit.fluxcd.io/v1", "OCIRepository", flux_env.ns, f"faas-{component}")
        assert "reconcile.fluxcd.io/requestedAt" in source["metadata"].get("annotations", {})
        assert source["status"]["artifact"]["revision"] == exp.source_revision
    pods = flux_env.pods()
    assert len(pods) == 2 and all(ready(p) for p in pods), [p["status"] for p in pods]
    for secret in (RECEIVER_TOKEN, flux_env.registry.password, flux_env.cluster.ci_token):
        assert secret not in out + err


def test_a_bump_deploys_exactly_that_component_and_a_rerun_nothing(flux_env):
    code, out, err = flux_env.deploy()
    assert code == 0, out + err
    before = {c: release_versions(flux_env.release(c)) for c in COMPONENTS}
    version = flux_env.bump("controller")
    expected = flux_env.expected("controller")
    code, out, err = flux_env.deploy()
    assert code == 0, out + err
    assert out.count("pushed ") == 1 and f"faas-controller:{version}@" in out and out.count("unchanged ") == 1
    controller = release_versions(flux_env.release("controller"))
    assert controller[0] == (2, expected.revision, "deployed") and controller[1][1] == before["controller"][0][1]
    assert release_versions(flux_env.release("operator")) == before["operator"]
    after = {c: release_versions(flux_env.release(c)) for c in COMPONENTS}
    code, out, err = flux_env.deploy()
    assert code == 0, out + err
    assert "pushed " not in out and out.count("unchanged ") == 2
    assert {c: release_versions(flux_env.release(c)) for c in COMPONENTS} == after


def test_a_newer_version_pushed_by_someone_else_supersedes_the_wait(flux_env, monkeypatch):
    """After our push, another pipeline publishes a higher ``chart_version`` of the same chart: the
    OCIRepository's semver range takes it, helm-controller attempts it, and ``deploy`` ends superseded."""
    from faas_deployment.flux import flux

    code, out, err = flux_env.deploy()
    assert code == 0, out + err
    ours = flux_env.bump("controller")
    other = flux_env.fork("other")
    newer = other.bump("controller")
    newer_expected = other.expected("controller")
    notify = flux.notify

    def someone_else_pushes_first(*args: Any, **kwargs: Any) -> str:
        code, out, err = other.cli("publish", "--env", "dev", "--component", "controller", "--registry",
                                   f"oci://{flux_env.registry.host}/charts/dev", "--username", "ci",
                                   "--password", "env:REG_PW", "--plain-http")
        assert code == 0 and f"faas-controller:{newer}@" in out, out + err
        return notify(*args, **kwargs)

    monkeypatch.setattr(flux, "notify", someone_else_pushes_first)
    code, out, err = flux_env.deploy("--component", "controller")
    assert code == 4, out + err
    assert f"superseded faas-controller@{ours} at {flux_env.ns}/faas-controller" in out
    assert f"the HelmRelease moved on to {newer_expected.revision}" in out


REJECTED_TAG = "9.9.9-rejected"


def test_an_upgrade_the_api_server_rejects_fails_with_the_reason_and_is_rolled_back(flux_env):
    """A ValidatingAdmissionPolicy refuses the new Deployment: helm-controller's upgrade fails, ``deploy``
    exits 3 with its reason, helm-controller rolls back (``upgrade.remediation.strategy: rollback``),
    and ``promote --kubeconfig`` refuses the release that is not Ready."""
    code, out, err = flux_env.deploy()
    assert code == 0, out + err
    policy = f"{flux_env.ns}-no-rejected-images"
    with flux_env.cluster.http() as api:
        apply(api, [
            {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
             "metadata": {"name": policy},
             "spec": {"failurePolicy": "Fail",
                      "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                                                              "operations": ["CREATE", "UPDATE"],
                                                              "resources": ["deployments"]}]},
                      "validations": [{"expression": "object.spec.template.spec.containers.all(c, "
                                                     f"!c.image.endsWith(':{REJECTED_TAG}'))",
                                       "message": "image tag rejected by policy"}]}},
            {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
             "metadata": {"name": policy},
             "spec": {"policyName": policy, "validationActions": ["Deny"],
                      "matchResources": {"namespaceSelector": {"matchLabels": {
                          "kubernetes.io/metadata.name": flux_env.ns}}}}},
        ])
    before = release_versions(flux_env.release("controller"))
    flux_env.edit("controller", lambda t: re.sub(r'image_tag: "[^"]+"', f'image_tag: "{REJECTED_TAG}"', t))
    version = flux_env.bump("controller")
    expected = flux_env.expected("controller")
    code, out, err = flux_env.deploy("--component", "controller", timeout="120")
    assert code == 3, out + err
    # the line the double's "failed" scenario gives too (tests/test_flux_deploy.py, CASES)
    assert f"failed faas-controller@{version} at {flux_env.ns}/faas-controller after " in out
    assert (f"Released=False UpgradeFailed: Helm upgrade failed for release {flux_env.ns}/faas-controller with chart "
            f"faas-controller@{expected.revision}: ") in out, out
    assert "image tag rejected by policy" in out
    # the remediation: helm-controller rolls back to the release that ran before
    deadline = time.monotonic() + 90
    while True:
        release = flux_env.release("controller")
        conditions = {c["type"]: c for c in release["status"].get("conditions", [])}
        if conditions.get("Remediated", {}).get("reason") == "RollbackSucceeded":
            break
        assert time.monotonic() < deadline, release["status"]
        time.sleep(0.5)
    history = release_versions(release)
    assert history[0][1] == before[0][1] and history[0][2] == "deployed"  # the old chart runs again
    assert any(status == "failed" for _, _, status in history)
    code, out, err = flux_env.cli("promote", "--from", "dev", "--to", "prod", "--component", "controller",
                                  "--kubeconfig", f"file:{flux_env.kubeconfig}", "--allow-prerelease")
    assert code == 1 and "not healthy" in out + err, out + err


def test_promote_reads_the_real_helmrelease(flux_env):
    """``promote --kubeconfig`` GETs the live HelmRelease: Ready and deployed, so prod's config is raised."""
    code, out, err = flux_env.deploy()
    assert code == 0, out + err
    prod = flux_env.source / "env" / "prod" / "controller" / "cookiecutter-config.yaml"
    before = prod.read_text()
    code, out, err = flux_env.cli("promote", "--from", "dev", "--to", "prod", "--component", "controller",
                                  "--kubeconfig", f"file:{flux_env.kubeconfig}", "--allow-prerelease")
    assert code == 0, out + err
    assert prod.read_text() != before and "promoted" in out + err
    gets = [r for r in flux_env.cluster.ci_requests() if r["verb"] == "get"
            and r["requestURI"].endswith(f"/namespaces/{flux_env.ns}/helmreleases/faas-controller")]
    assert gets, "promote did not read the HelmRelease from the API server"


def _wait_for(what: str, probe: Any, seconds: float = 120) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {seconds:.0f} s"
        time.sleep(0.5)


def test_flux_oci_artifacts_end_to_end_with_the_flux_operator(flux_env):
    """``publish-artifact`` pushes ``app-<component>``; every object of ``artifact-objects`` is applied as
    written: the Flux Operator's ResourceSetInputProvider (OCIArtifactTag) finds the tags and its
    ResourceSet makes an OCIRepository and a Kustomization each, which apply the manifests; ``wait
    --artifact`` reports the pushed digest applied. A second publish moves ``app-operator``; the real
    Receiver, called with the HMAC, annotates the set's OCIRepositories and the new digest is applied
    long before any interval (10 min). ``retire-artifact`` makes the component's objects go away."""
    import dataclasses

    from faas_deployment.core.secrets import SecretValue
    from faas_deployment.door import Workspace
    from faas_deployment.flux import flux

    env = flux_env
    repository = f"oci://{env.registry.host}/manifests/dev"
    registry_args = ("--registry", repository, "--username", "ci", "--password", "env:REG_PW", "--plain-http")
    publish_args = ("--source-url", "https://gitlab.example.org/eo4eu-faas/faas-deployment")
    code, out, err = env.cli("publish-artifact", "--env", "dev", *registry_args, "--revision",
                             "main@sha1:" + "c" * 40, *publish_args)
    assert code == 0, out + err
    digests = dict(re.findall(r"moved \S+:app-(\w+)@(sha256:[0-9a-f]{64})", out))
    assert set(digests) == set(COMPONENTS), out
    objects = env.root / "artifact-objects"
    # named apart from the Receiver of `faas-deploy flux`, which this test's namespace holds too
    name = "faas-dev-artifacts"
    code, out, err = env.cli("artifact-objects", "--env", "dev", "--repository", repository, "--out", str(objects),
                             "--name", name, "--namespace", env.ns, "--target-namespace", env.ns,
                             "--registry-secret", "faas-charts", "--receiver-secret", "faas-dev-token", "--plain-http")
    assert code == 0, out + err
    docs = [d for f in sorted(objects.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    assert sorted(d["kind"] for d in docs) == ["Receiver", "ResourceSet", "ResourceSetInputProvider"]
    with env.cluster.http() as api:
        apply(api, docs)  # all of them: the API server refused the Receiver while it named the provider (422)
        _wait_for("the artifacts' Receiver Ready", lambda: ready(
            get(api, "notification.toolkit.fluxcd.io/v1", "Receiver", env.ns, name)), 60)
    for component in COMPONENTS:
        code, out, err = env.cli("wait", "--env", "dev", "--component", component, "--artifact", digests[component],
                                 "--artifact-namespace", env.ns, "--kubeconfig", f"file:{env.kubeconfig}",
                                 "--timeout", "180")
        assert code == 0, out + err
        assert f"deployed app-{component}@{digests[component]} to {env.ns}/app-{component}" in out, out
    with env.cluster.http() as api:
        kustomization = get(api, "kustomize.toolkit.fluxcd.io/v1", "Kustomization", env.ns, "app-controller")
        # ref.tag: source-controller's revision <tag>@<digest>
        assert kustomization["status"]["lastAppliedRevision"] == f"app-controller@{digests['controller']}"
        source = get(api, "source.toolkit.fluxcd.io/v1", "OCIRepository", env.ns, "app-operator")
        assert source["metadata"]["labels"]["faas-deploy/artifact-set"] == name  # what the Receiver matches
        deployment = get(api, "apps/v1", "Deployment", env.ns, "faas-controller")
        assert deployment is not None

    # An existing component changes: the publish moves app-operator; the Receiver makes Flux fetch it now.
    env.bump("operator")  # a new chart_version: the rendered manifests change
    code, out, err = env.cli("publish-artifact", "--env", "dev", "--component", "operator", *registry_args,
                             "--revision", "main@sha1:" + "d" * 40, *publish_args)
    assert code == 0, out + err
    moved = dict(re.findall(r"moved \S+:app-(\w+)@(sha256:[0-9a-f]{64})", out))
    assert set(moved) == {"operator"} and moved["operator"] != digests["operator"], out
    settings = dataclasses.replace(Workspace(env.source).settings("dev"), receiver_name=name)
    started = time.monotonic()
    line = flux.notify(settings, SecretValue(RECEIVER_TOKEN, "test"), {"component": "operator"},
                       deadline=time.monotonic() + 30)
    assert line == f"notified receiver {env.ns}/{name} at {env.cluster.receiver_url}: HTTP 200", line
    code, out, err = env.cli("wait", "--env", "dev", "--component", "operator", "--artifact", moved["operator"],
                             "--artifact-namespace", env.ns, "--kubeconfig", f"file:{env.kubeconfig}",
                             "--timeout", "120")
    assert code == 0, out + err
    assert f"deployed app-operator@{moved['operator']} to {env.ns}/app-operator" in out, out
    assert time.monotonic() - started < 120  # far below the objects' 10 min intervals: the Receiver did it
    with env.cluster.http() as api:
        source = get(api, "source.toolkit.fluxcd.io/v1", "OCIRepository", env.ns, "app-operator")
        assert "reconcile.fluxcd.io/requestedAt" in source["metadata"]["annotations"]  # the Receiver's mark
        assert source["status"]["artifact"]["revision"] == f"app-operator@{moved['operator']}"

    shutil.rmtree(env.source / "env" / "dev" / "controller")  # the component is removed from the repository
    code, out, err = env.cli("retire-artifact", "--env", "dev", "--component", "controller", *registry_args)
    assert code == 0 and "retired " in out, out + err
    with env.cluster.http() as api:
        # A removed (or new) component is the provider's to find, on its own interval; the Receiver reaches
        # only the OCIRepositories. Ask the provider to scan now, as `flux reconcile` would.
        provider = get(api, "fluxcd.controlplane.io/v1", "ResourceSetInputProvider", env.ns, name)
        assert provider is not None
        api.patch(f"/apis/fluxcd.controlplane.io/v1/namespaces/{env.ns}/resourcesetinputproviders/{name}",
                  content=json.dumps({"metadata": {"annotations": {
                      "reconcile.fluxcd.io/requestedAt": str(time.time_ns())}}}).encode(),
                  headers={"Content-Type": "application/merge-patch+json"})
        _wait_for("the controller's Kustomization removed", lambda: get(
            api, "kustomize.toolkit.fluxcd.io/v1", "Kustomization", env.ns, "app-controller") is None)
        _wait_for("the controller's Deployment pruned", lambda: get(
            api, "apps/v1", "Deployment", env.ns, "faas-controller") is None)
        assert get(api, "kustomize.toolkit.fluxcd.io/v1", "Kustomization", env.ns, "app-operator") is not None


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def test_merge_request_flow_deploys_the_prerelease_through_the_generated_job(flux_env):
    """A merge request bumps the operator: ``plan --child-pipeline`` writes the child pipeline, whose deploy job
    (a ``dagger call`` line, run through the engine harness) publishes ``<v>-mr.<iid>.<pipeline>`` to a
    registry without ``--immutable-tags`` and waits until the real HelmRelease runs it."""
    from support.dagger_engine import Engine

    env = flux_env
    for name in (".gitlab-ci.yml", "dagger.json"):  # the parent pipeline's job template; the Dagger module
        shutil.copy(REPO_ROOT / name, env.source / name)
    _git(env.source, "init", "-q", "-b", "main")
    _git(env.source, "-c", "user.name=t", "-c", "user.email=t@example.org", "add", "-A")
    _git(env.source, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "base")
    base = _git(env.source, "rev-parse", "HEAD")
    version = env.bump("operator")
    _git(env.source, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-am", "bump")
    child = env.root / "child-pipeline.yml"
    code, out, err = env.cli("plan", "--base", base, "--head", "HEAD", "--child-pipeline", str(child),
                             "--ref", "feature", "--default-branch", "main", "--merge-request", "7",
                             "--pipeline-iid", "31")
    assert code == 0, out + err
    jobs = {name: job for name, job in yaml.safe_load(child.read_text()).items()
            if isinstance(job, dict) and "script" in job}
    deploys = [line for job in jobs.values() for line in job["script"] if " deploy " in line]
    assert len(deploys) == 1 and "component --name operator" in deploys[0], jobs
    assert deploys[0].endswith("--prerelease mr.7.31")
    (env.root / "kubeconfig-dev").write_text(env.kubeconfig.read_text())
    variables = {"KUBECONFIG_DEV": str(env.root / "kubeconfig-dev"), "FLUX_RECEIVER_TOKEN_DEV": RECEIVER_TOKEN,
                 "CHART_REGISTRY_USER_DEV": env.registry.username,
                 "CHART_REGISTRY_PASSWORD_DEV": env.registry.password}
    with Engine(env.source, env=variables) as engine:
        # the loopback registry speaks HTTP
        printed = engine.call(deploys[0].replace(" with-registry ", " with-registry --plain-http ", 1))
    prerelease = f"{version}-mr.7.31"
    expected = env.expected("operator")
    assert f"pushed {env.registry.host}/charts/dev/faas-operator:{prerelease}@" in printed, printed
    assert f"deployed faas-operator@{prerelease} to {env.ns}/faas-operator" in printed, printed
    history = release_versions(env.release("operator"))
    assert history[0][1].startswith(f"{prerelease}+") and history[0][2] == "deployed"
    assert expected.version == version  # the configs still say the release version: no number consumed
    for secret in (RECEIVER_TOKEN, env.registry.password, env.cluster.ci_token):
        assert secret not in printed


# --------------------------------------------------------------------------- fidelity of the doubles


@pytest.fixture(params=["double", "real"])
def receiver_under_test(request, tmp_path):
    """``(base URL, annotated())`` of a ``generic-hmac`` Receiver faas-dev/<ns> with RECEIVER_TOKEN: the
    loopback double (tests/support/flux_doubles.py) or the real notification-controller's."""
    if request.param == "double":
        from support.flux_doubles import Receiver
        hits = []
        with Receiver(RECEIVER_TOKEN, "faas-dev", "faas-dev", on_hook=lambda: hits.append(1)) as double:
            yield double.url, "faas-dev", lambda: bool(hits)
        return
    env = request.getfixturevalue("flux_env")

    def annotated() -> bool:
        with env.cluster.http() as api:
            source = get(api, "source.toolkit.fluxcd.io/v1", "OCIRepository", env.ns, "faas-operator")
        return "reconcile.fluxcd.io/requestedAt" in (source["metadata"].get("annotations") or {})
    yield env.cluster.receiver_url, env.ns, annotated


def test_the_receiver_double_answers_as_notification_controller(receiver_under_test):
    """The same calls, the same answers: 404 (unknown hook: another token), 400 (the right hook, a body
    signed with another key), then a signed call is 200 and the resources are annotated; bodies empty."""
    import httpx

    from faas_deployment.flux import flux

    url, namespace, annotated = receiver_under_test
    body = json.dumps({"env": "dev"}).encode()
    path = flux.hook_path(RECEIVER_TOKEN, "faas-dev", namespace)
    with httpx.Client(timeout=10) as http:
        other = http.post(url + flux.hook_path("other-token", "faas-dev", namespace), content=body,
                          headers={"X-Signature": flux.signature("other-token", body)})
        assert (other.status_code, other.text) == (404, "")
        forged = http.post(url + path, content=body, headers={"X-Signature": flux.signature("other-token", body)})
        assert (forged.status_code, forged.text) == (400, "")
        assert not annotated()
        signed = http.post(url + path, content=body, headers={"X-Signature": flux.signature(RECEIVER_TOKEN, body),
                                                              "Content-Type": "application/json"})
        assert (signed.status_code, signed.text) == (200, "")
    _wait_for("the Receiver's resources annotated", annotated, 10)
