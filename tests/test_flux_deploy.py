"""Flux deploy: settings, generated objects (Flux's schemas), Receiver trigger, rollout wait, deploy.

Real parts: the project's lightkube client over HTTP to the loopback Kubernetes API
double, the Receiver double verifying path and HMAC, the Debian registry, the CLI.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import yaml
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from faas_deployment import cli, door
from faas_deployment.core.errors import UserError, ValidationError
from faas_deployment.core.secrets import SecretValue
from faas_deployment.door import Registry, Workspace
from faas_deployment.flux import flux, rollout, rollout_outcome, settings
from support.flux_doubles import HR, OCI, KubeApi, Receiver, scenario
from support.flux_doubles import play as _play
from support.repo_tree import REPO_ROOT, copy_repo

NODE = REPO_ROOT / ".ci" / "node"
KUBE_TOKEN = "kube-token-" + "5" * 16
#: What ``wait --output json`` (and ``--report``) answers: docs/results.md.
WAIT_SCHEMA = Draft202012Validator(json.loads((REPO_ROOT / "docs" / "schemas" / "wait.json").read_text()))
DEPLOY_SCHEMA = Draft202012Validator(json.loads((REPO_ROOT / "docs" / "schemas" / "deploy.json").read_text()))
RECEIVER_TOKEN = "receiver-token-" + "7" * 16


# --------------------------------------------------------------------------- settings


def test_settings_load_dev_and_prod():
    for env in ("dev", "prod"):
        s = settings.load(REPO_ROOT, env)
        assert s.chart_registry.endswith(f"/{env}") and s.namespace == f"faas-{env}"
        assert s.object_name("operator") == "faas-operator"
        assert s.artifact_repository == f"oci://registry.example.org/eo4eu-faas/manifests/{env}"
        assert settings.artifact_repository(REPO_ROOT, env, "oci://other.example.org/x") == "oci://other.example.org/x"


def test_settings_report_every_problem_with_key_and_hint(tmp_path):
    (tmp_path / "env" / "dev").mkdir(parents=True)
    (tmp_path / "env" / "dev" / "environment.yaml").write_text(
        "chart_registry: https://x\nnamespace: Bad_NS\nreceiver_nme: x\ndeploy_timeout: true\n")
    with pytest.raises(ValidationError) as err:
        settings.load(tmp_path, "dev")
    keys = {p.key for p in err.value.problems}
    assert {"chart_registry", "namespace", "receiver_nme", "receiver_name", "receiver_url", "admin_url",
            "gitlab_agent", "deploy_timeout"} <= keys
    assert "did you mean receiver_name?" in str(err.value)
    assert all(p.path == "env/dev/environment.yaml" for p in err.value.problems)


@pytest.mark.parametrize("value", ["yes", "1", '"true"', "[]"])
def test_chart_registry_immutable_tags_is_true_or_false(tmp_path, value):
    source = copy_repo(tmp_path / "src")
    path = source / "env" / "dev" / "environment.yaml"
    path.write_text(path.read_text() + f"chart_registry_immutable_tags: {value}\n")
    if value == "yes":  # YAML 1.1 reads it as true, as Helm and Flux would
        assert settings.load(source, "dev").chart_registry_immutable_tags is True
        return
    with pytest.raises(ValidationError) as err:
        settings.load(source, "dev")
    assert [(p.key, p.message.split(",")[0]) for p in err.value.problems] == [
        ("chart_registry_immutable_tags", "expected true or false")]


def test_deploy_publishes_as_the_environment_declares_its_chart_registry(tmp_path):
    """``chart_registry_immutable_tags`` applies to the environment's own ``chart_registry``, not to
    a ``--registry`` given instead (another registry, whose tags it does not describe)."""
    source = copy_repo(tmp_path / "src")
    path = source / "env" / "dev" / "environment.yaml"
    path.write_text(path.read_text() + "chart_registry_immutable_tags: true\n")
    declared = settings.load(source, "dev")
    own = door.deploy.deploy_registry(declared, Registry())
    assert (own.registry, own.immutable_tags, own.timeout) == (declared.chart_registry, True, declared.deploy_timeout)
    other = door.deploy.deploy_registry(declared, Registry("oci://other.example.org/charts"), 30)
    assert (other.registry, other.immutable_tags, other.timeout) == ("oci://other.example.org/charts", False, 30)
    flagged = door.deploy.deploy_registry(declared, Registry("oci://other.example.org/charts", immutable_tags=True))
    assert flagged.immutable_tags is True
    assert door.deploy.deploy_registry(settings.load(REPO_ROOT, "dev"), Registry()).immutable_tags is False


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_settings_never_traceback_on_any_bytes(tmp_path, data):
    (tmp_path / "env" / "dev").mkdir(parents=True, exist_ok=True)
    (tmp_path / "env" / "dev" / "environment.yaml").write_bytes(data)
    try:
        settings.load(tmp_path, "dev")
    except UserError as exc:
        assert "env/dev/environment.yaml" in str(exc)


def test_gitlab_environment_fields():
    fields = settings.gitlab_environment(settings.load(REPO_ROOT, "prod"), "controller")
    assert fields == {"name": "prod/controller", "kubernetes": {
        "agent": "eo4eu-faas/faas-deployment:prod", "namespace": "faas-prod",
        "flux_resource_path": "helm.toolkit.fluxcd.io/v2/namespaces/faas-prod/helmreleases/faas-controller"}}


# --------------------------------------------------------------------------- generated objects


def _validate_with_flux_schemas(docs: list[dict]) -> subprocess.CompletedProcess:
    return subprocess.run(["node", "validate-flux.mjs"], cwd=NODE, input=json.dumps(docs), text=True,
                          capture_output=True, timeout=60)


def test_generated_objects_validate_against_flux_schemas(tmp_path):
    assert cli.main(["--source", str(REPO_ROOT), "flux", "--env", "dev", "--out", str(tmp_path)]) == 0
    docs = [d for f in sorted(tmp_path.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())]
    assert sorted(d["kind"] for d in docs) == ["HelmRelease", "HelmRelease", "OCIRepository", "OCIRepository",
                                               "Receiver"]
    run = _validate_with_flux_schemas(docs)
    assert run.returncode == 0, run.stdout + run.stderr
    source = next(d for d in docs if d["kind"] == "OCIRepository")
    helm_layer = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"  # Helm's chart layer, as Helm pushes it
    assert source["spec"]["layerSelector"] == {"mediaType": helm_layer, "operation": "copy"}
    receiver = next(d for d in docs if d["kind"] == "Receiver")
    assert receiver["spec"]["type"] == "generic-hmac" and len(receiver["spec"]["resources"]) == 4
    # the schema check bites: a wrong remediation strategy and a missing url are refused
    bad = json.loads(json.dumps(docs))
    bad[1]["spec"]["upgrade"]["remediation"]["strategy"] = "reinstall-please"
    del bad[0]["spec"]["url"]
    run = _validate_with_flux_schemas(bad)
    assert run.returncode == 1 and run.stdout.count("invalid ") == 2, run.stdout  # each broken object named


def test_flux_objects_take_the_registry_secret_and_plain_http(tmp_path, capsys):
    """A private or plain-HTTP chart registry: the OCIRepositories carry ``secretRef`` and ``insecure``
    (source-controller refuses plain HTTP and pulls anonymously otherwise); a bad Secret name is refused."""
    assert cli.main(["--source", str(REPO_ROOT), "flux", "--env", "dev", "--out", str(tmp_path / "a"),
                     "--registry-secret", "faas-charts", "--plain-http"]) == 0
    docs = [d for f in sorted((tmp_path / "a").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())]
    sources = [d for d in docs if d["kind"] == "OCIRepository"]
    assert len(sources) == 2 and all(d["spec"]["secretRef"] == {"name": "faas-charts"} and d["spec"]["insecure"] is True
                                     for d in sources)
    run = _validate_with_flux_schemas(docs)
    assert run.returncode == 0, run.stdout + run.stderr
    assert cli.main(["--source", str(REPO_ROOT), "flux", "--env", "dev", "--out", str(tmp_path / "b")]) == 0
    plain = [d for f in sorted((tmp_path / "b").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())]
    assert not any({"secretRef", "insecure"} & set(d["spec"]) for d in plain if d["kind"] == "OCIRepository")
    capsys.readouterr()
    assert cli.main(["--source", str(REPO_ROOT), "flux", "--env", "dev", "--out", str(tmp_path / "c"),
                     "--registry-secret", "Bad_Name"]) == 1
    assert "--registry-secret 'Bad_Name': expected a Secret name" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


# --------------------------------------------------------------------------- Receiver


def _settings(receiver_url: str = "http://127.0.0.1:9") -> settings.Settings:
    return settings.Settings(env="dev", chart_registry="oci://127.0.0.1:5000/charts/dev", namespace="faas-dev",
                             flux_name_prefix="faas-", chart_semver=">=0.0.0-0", receiver_name="faas-dev",
                             receiver_url=receiver_url, admin_url="http://127.0.0.1:9", deploy_timeout=5,
                             upload_timeout=5, gitlab_agent="g/p:dev")


def test_receiver_accepts_signed_call_and_refuses_wrong_token():
    with Receiver(RECEIVER_TOKEN, "faas-dev", "faas-dev") as rx:
        s = _settings(rx.url)
        line = flux.notify(s, SecretValue(RECEIVER_TOKEN, "env:T"), {"a": 1}, deadline=time.monotonic() + 5)
        assert line.startswith("notified receiver faas-dev/faas-dev") and rx.hits == 1
        assert rx.path not in line and RECEIVER_TOKEN not in line
        # a wrong token gives another hook path: 404 until the deadline (retried, then a clear error)
        with pytest.raises(UserError, match="no HTTP 200") as err:
            flux.notify(s, SecretValue("other", "env:T"), {}, deadline=time.monotonic() + 1, backoff=(0.1, 0.2))
        assert "other" not in str(err.value)
        assert rx.hits == 1


def test_receiver_bad_signature_fails_at_once_and_503_is_retried(capsys):
    with Receiver(RECEIVER_TOKEN, "faas-dev", "faas-dev", answers=[503, 503]) as rx:
        s = _settings(rx.url)
        assert "HTTP 200" in flux.notify(s, SecretValue(RECEIVER_TOKEN, "env:T"), {}, deadline=time.monotonic() + 5,
                                         backoff=(0.05, 0.1))
        # each retry is announced: what failed and when the next attempt comes
        retries = [line for line in capsys.readouterr().err.splitlines() if "attempt" in line]
        assert retries == [f"[faas-deploy] receiver faas-dev/faas-dev at {rx.url}: HTTP 503; attempt 2 in 0.1 s",
                           f"[faas-deploy] receiver faas-dev/faas-dev at {rx.url}: HTTP 503; attempt 3 in 0.1 s"]
        # the right path but a body signed with another key: 400, at once
        original = flux.signature
        try:
            flux.signature = lambda token, body: original("wrong", body)
            started = time.monotonic()
            with pytest.raises(UserError, match="HTTP 400, the signature was refused"):
                flux.notify(s, SecretValue(RECEIVER_TOKEN, "env:T"), {}, deadline=time.monotonic() + 5)
            assert time.monotonic() - started < 1
        finally:
            flux.signature = original


# --------------------------------------------------------------------------- wait


@pytest.fixture(scope="module")
def expected_operator() -> rollout_outcome.Expected:
    return door.deploy.expected_for(Workspace(REPO_ROOT), "dev", "operator")


def _store_release(api: KubeApi, expected: rollout_outcome.Expected, *, source_ready: bool = True) -> tuple[str, str]:
    ns, name = "faas-dev", "faas-operator"
    old = f"0.0.1+{'a' * 12}"
    api.put(HR, ns, name, {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                           "metadata": {"generation": 1}, "spec": {"chartRef": {"kind": "OCIRepository", "name": name}},
                           "status": scenario("superseded", chart=expected.chart, ns=ns, name=name, old=old,
                                              new=expected.revision, newer=old)[0][1]})
    revision = expected.source_revision if source_ready else f"0.0.1@sha256:{'a' * 64}"
    api.put(OCI, ns, name, {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
                            "metadata": {"generation": 1},
                            "status": {"artifact": {"revision": revision, "digest": "sha256:" + "e" * 64}}})
    return ns, name


CASES = {
    "success": (0, "deployed"),
    "failed": (3, "Released=False UpgradeFailed: Helm upgrade failed for release faas-dev/faas-operator"),
    "stalled": (3, "Stalled=True RetriesExceeded: Failed to upgrade after 4 attempt(s)"),
    "rollback": (3, "Remediated=True RollbackSucceeded: Helm rollback to previous release"),
    "install-failed": (3, "Released=False InstallFailed: Helm install failed for release faas-dev/faas-operator"),
    "superseded": (4, "superseded"),
    "source-not-ready": (0, "deployed"),
    "never": (5, "timeout"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_wait_outcomes(case, expected_operator, tmp_path, monkeypatch, capsys):
    code, text = CASES[case]
    with KubeApi(KUBE_TOKEN) as api:
        ns, name = _store_release(api, expected_operator, source_ready=case != "source-not-ready")
        (tmp_path / "kubeconfig").write_text(api.kubeconfig())
        steps = scenario(case, chart=expected_operator.chart, ns=ns, name=name, old=f"0.0.1+{'a' * 12}",
                         new=expected_operator.revision, newer=f"99.0.0+{'b' * 12}")
        player = _play(api, steps, expected_operator, ns, name)
        report = tmp_path / "report.json"
        got = cli.main(["--source", str(REPO_ROOT), "wait", "--env", "dev", "--component", "operator",
                        "--kubeconfig", f"file:{tmp_path / 'kubeconfig'}", "--timeout", "4",
                        "--report", str(report)])
        returned = time.monotonic()
        player.join()
        out = capsys.readouterr()
        assert got == code, out
        assert text in out.out
        data = json.loads(report.read_text())
        assert data["exit_code"] == code and data["outcomes"][0]["revision"] == expected_operator.revision
        assert not [e.message for e in WAIT_SCHEMA.iter_errors(data)]  # --report is the --output json document
        assert KUBE_TOKEN not in out.out + out.err + report.read_text()
        if case == "success":
            assert out.out.startswith(f"deployed {expected_operator.chart}@{expected_operator.version} "
                                      f"to faas-dev/faas-operator in ")
            assert returned - api.ready_at < 1.0, f"reported {returned - api.ready_at:.3f} s after Ready"
        # request budget (<= 60 a minute per release): one watch and a source GET at most every 10 s, so the
        # 4 s a release that never moves is watched take 2 requests (a 1 s poll would take 4 or more)
        if case == "never":
            assert len(api.requests) <= 3, api.requests
        assert all(method == "GET" for method, _, _ in api.requests)


def test_wait_wrong_kube_token_is_a_clear_error(expected_operator, tmp_path, capsys):
    with KubeApi("another") as api:
        _store_release(api, expected_operator)
        (tmp_path / "kubeconfig").write_text(api.kubeconfig().replace("another", KUBE_TOKEN))
        got = cli.main(["--source", str(REPO_ROOT), "wait", "--env", "dev", "--component", "operator",
                        "--kubeconfig", f"file:{tmp_path / 'kubeconfig'}", "--timeout", "3"])
    out = capsys.readouterr()
    assert got == 1 and "HTTP 401" in out.err and KUBE_TOKEN not in out.err + out.out


# --------------------------------------------------------------------------- deploy end to end


def test_deploy_env_publishes_triggers_and_waits(registry, tmp_path, monkeypatch, capsys):
    source = copy_repo(tmp_path / "repo")
    with KubeApi(KUBE_TOKEN) as api:
        ws = Workspace(source)
        expected = {c: door.deploy.expected_for(ws, "dev", c) for c in ws.components("dev")}
        names = {}
        for component in expected:
            ns, name = "faas-dev", f"faas-{component}"
            names[component] = name
            api.put(HR, ns, name, {"metadata": {"generation": 1}, "status": {"observedGeneration": 1}})
            api.put(OCI, ns, name, {"metadata": {"generation": 1}, "status": {}})

        def on_hook() -> None:  # Flux: the sources pull the new tags, then helm-controller upgrades
            for component, exp in expected.items():
                steps = [("source", {}), *scenario("success", chart=exp.chart, ns="faas-dev",
                                                   name=names[component], old=f"0.0.1+{'a' * 12}",
                                                   new=exp.revision)]
                _play(api, steps, exp, "faas-dev", names[component], gap=0.2)

        with Receiver(RECEIVER_TOKEN, "faas-dev", "faas-dev", on_hook=on_hook) as rx:
            env_file = source / "env" / "dev" / "environment.yaml"
            text = env_file.read_text()
            text = text.replace("https://flux-webhook.dev.example.org", rx.url)
            text = text.replace("oci://registry.example.org/eo4eu-faas/charts/dev", f"oci://{registry.host}/charts/dev")
            env_file.write_text(text)
            (tmp_path / "kc").write_text(api.kubeconfig())
            monkeypatch.setenv("RX_TOKEN", RECEIVER_TOKEN)
            monkeypatch.setenv("REG_PW", registry.password)
            got = cli.main(["--source", str(source), "deploy", "--env", "dev", "--username", registry.username,
                            "--password", "env:REG_PW", "--plain-http", "--receiver-token", "env:RX_TOKEN",
                            "--kubeconfig", f"file:{tmp_path / 'kc'}", "--timeout", "20",
                            "--report", str(tmp_path / "report.json")])
        out = capsys.readouterr()
        assert got == 0, out
        report = json.loads((tmp_path / "report.json").read_text())  # the --output json document
        assert not [e.message for e in DEPLOY_SCHEMA.iter_errors(report)]
        assert out.out.count("pushed ") == 2 and rx.hits == 1
        for exp in expected.values():
            assert f"deployed {exp.chart}@{exp.version} to faas-dev/" in out.out
        for secret in (RECEIVER_TOKEN, KUBE_TOKEN, registry.password):
            assert secret not in out.out + out.err


def test_deploy_api_trigger_then_upload_reaches_the_new_operator(registry, tmp_path, monkeypatch, capsys):
    from support.admin_api_server import AdminApiServer

    source = copy_repo(tmp_path / "repo")
    ws = Workspace(source)
    expected = {c: door.deploy.expected_for(ws, "dev", c) for c in ws.components("dev")}
    patches: list[tuple[str, str, str]] = []

    def on_patch(plural: str, name: str, body: dict) -> None:
        token = body["metadata"]["annotations"][rollout.REQUESTED_AT]
        patches.append((plural, name, token))
        if plural != "helmreleases":
            return
        component = name.removeprefix("faas-")
        exp = expected[component]
        steps = [("source", {})] + [
            ("hr", {**status, "lastHandledReconcileAt": token})
            for _, status in scenario("success", chart=exp.chart, ns="faas-dev", name=name,
                                      old=f"0.0.1+{'a' * 12}", new=exp.revision)]
        gap = 0.8 if component == "operator" else 0.1  # the operator rolls out last
        _play(api, steps, exp, "faas-dev", name, gap=gap)

    with KubeApi(KUBE_TOKEN, on_patch=on_patch) as api, AdminApiServer("admin-" + "9" * 16) as admin:
        for component in expected:
            api.put(HR, "faas-dev", f"faas-{component}", {"metadata": {"generation": 1},
                                                         "status": {"observedGeneration": 1}})
            api.put(OCI, "faas-dev", f"faas-{component}", {"metadata": {"generation": 1}, "status": {}})
        env_file = source / "env" / "dev" / "environment.yaml"
        env_file.write_text(env_file.read_text()
                            .replace("oci://registry.example.org/eo4eu-faas/charts/dev", f"oci://{registry.host}/charts/dev")
                            .replace("https://faas-operator.dev.example.org", admin.url))
        (tmp_path / "kc").write_text(api.kubeconfig())
        monkeypatch.setenv("REG_PW", registry.password)
        monkeypatch.setenv("ADMIN_TOKEN", admin.token)
        monkeypatch.setenv("CI_PIPELINE_ID", "4711")
        monkeypatch.setenv("CI_JOB_ID", "42")
        got = cli.main(["--source", str(source), "deploy", "--env", "dev", "--username", registry.username,
                        "--password", "env:REG_PW", "--plain-http", "--trigger-api",
                        "--kubeconfig", f"file:{tmp_path / 'kc'}", "--timeout", "20",
                        "--admin-token", "env:ADMIN_TOKEN"])
        out = capsys.readouterr()
        assert got == 0, out
        # source first, then the HelmRelease, with one traceable token (flux reconcile --with-source order)
        assert [p[0] for p in patches if p[1] == "faas-operator"] == ["ocirepositories", "helmreleases"]
        assert len({p[2] for p in patches}) == 1 and patches[0][2].startswith("faas-deploy/4711/42/")
        assert len(admin.accepted) == 1 and "uploaded " in out.out
        assert admin.accepted[0].at > api.ready_times["faas-operator"]  # the new operator got the bundle
        for secret in (KUBE_TOKEN, admin.token, registry.password):
            assert secret not in out.out + out.err


def test_dagger_flux_functions_are_declared_and_uncached():
    from support import daggermod

    fns = daggermod.objects()
    assert fns["Environment"]["flux"].return_type.endswith("Directory")
    for obj, name in (("Environment", "deploy"), ("Component", "deploy")):
        assert {"kubeconfig", "receiver_token", "trigger_api", "kube_context", "timeout"} <= set(fns[obj][name].params)
    assert {"kubeconfig", "kube_context", "timeout"} == set(fns["Component"]["wait"].params)
    assert fns["Environment"]["upload_bundle"].params["admin_url"].optional
    _, module = daggermod.load()
    for obj, name in (("Environment", "deploy"), ("Component", "deploy"), ("Component", "wait")):
        assert module._objects[obj].functions[name].cache_policy == "never"  # touches registry, cluster, API


def test_deploy_cli_flags_timeout_is_the_wait_and_prerelease_is_accepted():
    args = cli.build_parser().parse_args(["deploy", "--env", "dev", "--prerelease", "mr.7.31", "--trigger-api"])
    assert args.prerelease == "mr.7.31" and args.timeout is None  # None: deploy_timeout of environment.yaml
    assert cli.build_parser().parse_args(["deploy", "--env", "dev", "--timeout", "5"]).timeout == 5.0
