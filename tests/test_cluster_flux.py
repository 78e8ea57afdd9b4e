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
import time
from pathlib import Path
from typing import Any

import pytest
from support.cluster import Cluster, apply, get
from support.flux_env import (
    COMPONENTS,
    RECEIVER_TOKEN,
    FluxEnv,
    ready,
    release_versions,
)
from support.registry_process import Registry


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
    from faas_deployment import flux

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
    code, out, err = flux_env.deploy("--component", "controller", timeout="120")
    assert code == 3, out + err
    assert f"failed faas-controller@{version} at {flux_env.ns}/faas-controller" in out
    assert "UpgradeFailed" in out and "image tag rejected by policy" in out
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
    from faas_deployment import flux

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
