"""Promotion dev -> prod: the exact file change, refusals, and the merge request against a real git
remote (a bare repository on disk) and a loopback double of GitLab's merge request API."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faas_deployment import cli, door
from faas_deployment.core.errors import UserError
from faas_deployment.core.secrets import SecretValue
from faas_deployment.gitlab import promoted_change, promotion, source_state
from faas_deployment.gitlab.merge_request import GitLabProject
from faas_deployment.gitlab.promoted_change import PromotionRefused
from faas_deployment.gitlab.proposal import Proposal
from support.gitlab_api_server import GitLabApi

REPO = Path(__file__).resolve().parents[1]
TOKEN = "glpat-Secret-Token-0123456789"
PROD = "env/prod/controller/cookiecutter-config.yaml"
DEV = "env/dev/controller/cookiecutter-config.yaml"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture()
def checkout(tmp_path: Path) -> Path:
    """A clone of a repository holding env/, with ``origin`` a bare repository on disk."""
    return make_checkout(tmp_path)


def make_checkout(tmp_path: Path) -> Path:
    """:func:`checkout`'s repository under ``tmp_path``: ``work`` cloned from ``origin.git``."""
    origin = tmp_path / "origin.git"
    initial = tmp_path / "initial"
    shutil.copytree(REPO / "env", initial / "env")
    dev = initial / DEV  # a released image: promoting a pre-release needs --allow-prerelease
    dev.write_text(dev.read_text().replace('image_tag: "0.10.0-rc.1"', 'image_tag: "0.10.0"'))
    git(tmp_path, "init", "-q", "-b", "main", str(initial))
    git(initial, "-c", "user.name=t", "-c", "user.email=t@example.org", "add", "-A")
    git(initial, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "env")
    # Two image updates of dev's controller, so the changelog has something to list.
    text = (initial / DEV).read_text()
    (initial / DEV).write_text(text.replace('image_tag: "0.10.0"', 'image_tag: "0.9.9"'))
    git(initial, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qam", "dev: controller 0.9.9")
    (initial / DEV).write_text(text)
    git(initial, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qam", "dev: controller 0.10.0")
    git(tmp_path, "clone", "-q", "--bare", str(initial), str(origin))
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(origin), str(work))
    return work


def proposal(api: GitLabApi, **kw) -> Proposal:
    return Proposal(GitLabProject(api.url, api.project, SecretValue(kw.pop("token", TOKEN), "env:GITLAB_TOKEN")),
                    labels=("promotion", "prod"), pipeline_url="https://gitlab.example.org/p/-/pipelines/77", **kw)


def status_doc(version="0.4.1", ready="True", history_status="deployed", generation=3, observed=3) -> dict:
    """A HelmRelease as helm-controller v2 writes its status (api/v2 helmrelease_types.go)."""
    return {
        "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
        "metadata": {"name": "faas-controller", "namespace": "faas", "generation": generation},
        "status": {
            "observedGeneration": observed,
            "history": [{"chartName": "faas-controller", "chartVersion": f"{version}+3f2a9c1b7d4e",
                         "status": history_status, "ociDigest": "sha256:" + "ab" * 32, "version": 4}],
            "conditions": [{"type": "Ready", "status": ready, "reason": "UpgradeSucceeded" if ready == "True"
                            else "UpgradeFailed", "message": "Helm upgrade succeeded"}],
        },
    }


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    a, b = before.splitlines(), after.splitlines()
    assert len(a) == len(b)
    return [(x, y) for x, y in zip(a, b, strict=True) if x != y]


# --------------------------------------------------------------------------- the file change


def test_promotion_changes_only_the_promoted_values_and_chart_version(checkout):
    before = (checkout / PROD).read_text()
    [line] = promotion.promote(checkout, "dev", "prod", ["controller"])
    after = (checkout / PROD).read_text()
    assert changed_lines(before, after) == [
        ('  chart_version: "0.4.0"', '  chart_version: "0.4.1"'),
        ('  image_tag: "0.9.2"', '  image_tag: "0.10.0"'),
    ]
    assert line.endswith("chart_version 0.4.0 -> 0.4.1, image_tag 0.9.2 -> 0.10.0")
    assert git(checkout, "status", "--porcelain").split() == ["M", PROD]


def test_keys_that_never_travel_stay_and_promoted_ones_keep_source_spelling(checkout):
    dev = checkout / DEV
    dev.write_text(dev.read_text().replace("container_port: 8080", "container_port: 9090")
                   .replace("replica_count: 1", "replica_count: 7"))
    before = (checkout / PROD).read_text()
    promotion.promote(checkout, "dev", "prod", ["controller"])
    diff = changed_lines(before, (checkout / PROD).read_text())
    assert ("  container_port: 8080", "  container_port: 9090") in diff
    assert len(diff) == 3 and "replica_count: 3" in (checkout / PROD).read_text()
    travels, stays = _documented_keys()
    assert travels == set(promoted_change.PROMOTED_KEYS) and not travels & stays and "replica_count" in stays


def _documented_keys() -> tuple[set[str], set[str]]:
    """The keys of docs/promotion.md's table: (travels from the source, never travels)."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "promotion.md").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| `image_repository`"))
    travels, stays = row.strip("|").split("|")
    return set(re.findall(r"`([a-z_*]+)`", travels)), set(re.findall(r"`([a-z_*]+)`", stays))


def test_the_target_follows_the_source_version_line():
    assert promoted_change.promoted_version("0.4.0", "0.4.1", shown="x") == "0.4.1"
    assert promoted_change.promoted_version("0.4.0", "0.6.0+abc", shown="x") == "0.6.0"
    assert promoted_change.promoted_version("0.4.1", "0.4.1", shown="x") == "0.4.2"


def test_all_promotes_each_component_and_reports_the_ones_with_nothing_to_promote(checkout):
    promotion.promote(checkout, "dev", "prod", ["controller"])
    lines = promotion.promote(checkout, "dev", "prod", None, allow_prerelease=True)
    assert any("controller: up to date" in line for line in lines)
    assert any(line.startswith("promoted dev -> prod operator") for line in lines)


# --------------------------------------------------------------------------- refusals


def test_an_unhealthy_source_refuses_and_writes_nothing(checkout, tmp_path):
    before = (checkout / PROD).read_text()
    for doc in (status_doc(ready="False"), status_doc(history_status="failed"), status_doc(observed=2)):
        status = tmp_path / "status.json"
        status.write_text(json.dumps(doc))
        with pytest.raises(PromotionRefused, match="not healthy"):
            promotion.promote(checkout, "dev", "prod", ["controller"], state=source_state.HelmReleaseStatusFile(status))
    assert (checkout / PROD).read_text() == before


def test_a_source_running_another_version_than_its_config_refuses(checkout, tmp_path):
    status = tmp_path / "status.json"
    status.write_text(json.dumps(status_doc(version="0.4.0")))
    with pytest.raises(PromotionRefused, match="runs chart 0.4.0 but .* says 0.4.1"):
        promotion.promote(checkout, "dev", "prod", ["controller"], state=source_state.HelmReleaseStatusFile(status))


def test_a_healthy_status_is_the_evidence(checkout, tmp_path):
    status = tmp_path / "status.json"
    status.write_text(json.dumps(status_doc()))
    state = source_state.HelmReleaseStatusFile(status)("dev", "controller")
    assert state.healthy and state.chart_version == "0.4.1" and state.digest == "sha256:" + "ab" * 32
    assert "HelmRelease faas/faas-controller" in state.evidence and "Ready=True" in state.evidence
    [line] = promotion.promote(checkout, "dev", "prod", ["controller"],
                               state=source_state.HelmReleaseStatusFile(status))
    assert line.startswith("promoted dev -> prod controller") and "0.4.0 -> 0.4.1" in line, line


@pytest.mark.parametrize("content, message", [
    ("{", "not JSON"), ('{"kind": "Deployment"}', "expected a HelmRelease"),
    ('{"kind": "HelmRelease", "status": {"history": []}}', "never been released"), ("[1]", "expected a HelmRelease"),
])
def test_a_bad_status_file_is_a_clear_error(checkout, tmp_path, content, message):
    status = tmp_path / "status.json"
    status.write_text(content)
    with pytest.raises(UserError, match=message):
        promotion.promote(checkout, "dev", "prod", ["controller"], state=source_state.HelmReleaseStatusFile(status))


def test_nothing_to_promote_is_up_to_date_and_exits_0(checkout, run_cli):
    promotion.promote(checkout, "dev", "prod", ["controller"])
    before = (checkout / PROD).read_text()
    code, out, err = run_cli("--source", str(checkout), "promote", "--from", "dev", "--to", "prod",
                             "--component", "controller")
    assert code == 0, err
    assert out.strip() == ("dev -> prod controller: up to date: image_repository, image_tag, container_port, "
                           "health_path already equal in env/prod/controller/cookiecutter-config.yaml")
    assert (checkout / PROD).read_text() == before


@pytest.mark.parametrize("old, new, what", [
    ('chart_version: "0.4.0"', 'chart_version: "0.5.0"', "chart_version 0.5.0 > "),
    ('image_tag: "0.9.2"', 'image_tag: "0.11.0"', "image_tag 0.11.0 > 0.10.0"),
])
def test_a_target_ahead_refuses(checkout, old, new, what):
    prod = checkout / PROD
    prod.write_text(prod.read_text().replace(old, new))
    before = prod.read_text()
    with pytest.raises(PromotionRefused, match=f"target is ahead: .*{what}"):
        promotion.promote(checkout, "dev", "prod", ["controller"])
    assert prod.read_text() == before


def test_cli_refusal_exits_1_without_traceback(checkout, tmp_path, capsys):
    status = tmp_path / "status.json"
    status.write_text(json.dumps(status_doc(ready="False")))
    code = cli.main(["--source", str(checkout), "promote", "--from", "dev", "--to", "prod", "--component",
                     "controller", "--source-status", str(status)])
    err = capsys.readouterr().err
    assert code == 1 and "not healthy" in err and "Traceback" not in err
    assert cli.main(["--source", str(checkout), "promote", "--from", "dev", "--to", "prod"]) == 1
    assert "give --component C or --all" in capsys.readouterr().err


# --------------------------------------------------------------------------- merge requests


def run_cli(checkout: Path, api: GitLabApi, monkeypatch, *extra: str) -> str:
    monkeypatch.setenv("GITLAB_TOKEN", TOKEN)
    out = []
    monkeypatch.setattr("builtins.print", lambda *a, **k: out.append(" ".join(map(str, a))))
    code = cli.main(["--source", str(checkout), "promote", "--from", "dev", "--to", "prod", "--component", "controller",
                     "--merge-request", "--gitlab-url", api.url, "--gitlab-project", api.project,
                     "--gitlab-token", "env:GITLAB_TOKEN", "--label", "promotion", *extra])
    assert code == 0, out
    return "\n".join(out)


def test_promote_twice_leaves_one_merge_request_updated_with_only_the_promoted_diff(checkout, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    origin = checkout.parent / "origin.git"
    with GitLabApi(TOKEN, remote=origin) as api:
        first = run_cli(checkout, api, monkeypatch)
        head = git(origin, "rev-parse", "refs/heads/promote/prod/controller-0.4.1").strip()
        second = run_cli(checkout, api, monkeypatch, "--pipeline-url", "https://gitlab.example.org/p/-/pipelines/78")
        assert git(origin, "rev-parse", "refs/heads/promote/prod/controller-0.4.1").strip() == head  # deterministic
    assert "merge request !1 opened" in first and "merge request !1 updated" in second
    [mr] = api.merge_requests.values()
    assert mr["state"] == "opened" and mr["target_branch"] == "main" and mr["labels"] == ["promotion"]
    assert mr["title"] == "Promote controller dev -> prod: chart 0.4.0 -> 0.4.1"
    assert "pipelines/78" in mr["description"] and "`0.9.2` | `0.10.0`" in mr["description"]
    assert "dev: controller 0.10.0 (image_tag 0.10.0)" in mr["description"]
    assert "dev: controller 0.9.9 (image_tag 0.9.9)" in mr["description"]
    assert "source config env/dev/controller/cookiecutter-config.yaml" in mr["description"]
    methods = [(r["method"], r["path"].rsplit("/", 1)[-1]) for r in api.requests]
    assert methods.count(("POST", "merge_requests")) == 1 and ("PUT", "1") in methods
    # The branch's diff against main: the two values, nothing else; the working tree untouched.
    diff = git(origin, "diff", "main", "promote/prod/controller-0.4.1")
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert changed == ['-  chart_version: "0.4.0"', '-  image_tag: "0.9.2"',
                       '+  chart_version: "0.4.1"', '+  image_tag: "0.10.0"'] or sorted(changed) == sorted(
        ['-  chart_version: "0.4.0"', '+  chart_version: "0.4.1"', '-  image_tag: "0.9.2"', '+  image_tag: "0.10.0"'])
    assert git(origin, "diff", "--stat", "main", "promote/prod/controller-0.4.1").count("|") == 1
    assert git(checkout, "status", "--porcelain") == ""
    # The token: only in the PRIVATE-TOKEN header, nowhere else.
    for request in api.requests:
        assert request["headers"]["PRIVATE-TOKEN"] == TOKEN
        assert TOKEN not in json.dumps({k: v for k, v in request.items() if k != "headers"})
    assert TOKEN not in first + second + caplog.text
    assert TOKEN not in git(checkout, "config", "--list") + git(origin, "log", "--all", "--format=%B")


def test_a_409_adopts_the_existing_merge_request_and_older_promotions_are_closed(checkout):
    origin = checkout.parent / "origin.git"
    with GitLabApi(TOKEN, remote=origin) as api:
        api.merge_requests[1] = {"iid": 1, "state": "opened", "source_branch": "promote/prod/controller-0.4.1",
                                 "target_branch": "release", "title": "old", "description": "", "labels": [],
                                 "web_url": "https://gitlab.example.org/x/-/merge_requests/1"}
        api.merge_requests[2] = {"iid": 2, "state": "opened", "source_branch": "promote/prod/controller-0.3.9",
                                 "target_branch": "main", "title": "older", "description": "", "labels": [],
                                 "web_url": "https://gitlab.example.org/x/-/merge_requests/2"}
        api.merge_requests[3] = {"iid": 3, "state": "opened", "source_branch": "promote/prod/operator-1.0.3",
                                 "target_branch": "main", "title": "other", "description": "", "labels": [],
                                 "web_url": "https://gitlab.example.org/x/-/merge_requests/3"}
        [line] = promotion.promote(checkout, "dev", "prod", ["controller"], proposal=proposal(api))
    assert "merge request !1 adopted" in line and "closed superseded !2" in line
    assert [r["method"] for r in api.requests if r["method"] == "POST"] == ["POST"]
    assert api.merge_requests[1]["title"].startswith("Promote controller")
    assert api.merge_requests[1]["target_branch"] == "main"
    assert api.merge_requests[2]["state"] == "closed" and api.merge_requests[3]["state"] == "opened"


def test_a_refused_token_is_a_clear_error_without_the_token(checkout):
    with GitLabApi("the-right-one") as api, pytest.raises(UserError) as caught:
        promotion.promote(checkout, "dev", "prod", ["controller"], proposal=proposal(api))
    assert "token was refused (HTTP 401)" in str(caught.value) and TOKEN not in str(caught.value)
    assert TOKEN not in repr(caught.value.__cause__) and caught.value.__suppress_context__


def test_transient_5xx_is_retried_and_a_persistent_one_fails_clearly(checkout):
    with GitLabApi(TOKEN) as api:
        api.fail_next = [503]
        [line] = promotion.promote(checkout, "dev", "prod", ["controller"], proposal=proposal(api))
        assert "!1 opened" in line and len(api.requests) >= 3
    with GitLabApi(TOKEN) as api:
        api.fail_next = [500] * 10
        with pytest.raises(UserError, match="HTTP 500") as caught:
            promotion.promote(checkout, "dev", "prod", ["controller"], proposal=proposal(api))
        assert TOKEN not in str(caught.value)


def test_an_unhealthy_source_pushes_nothing_and_calls_no_api(checkout, tmp_path):
    status = tmp_path / "status.json"
    status.write_text(json.dumps(status_doc(ready="False")))
    origin = checkout.parent / "origin.git"
    with GitLabApi(TOKEN) as api, pytest.raises(PromotionRefused):
        promotion.promote(checkout, "dev", "prod", ["controller"], state=source_state.HelmReleaseStatusFile(status),
                          proposal=proposal(api))
    assert api.requests == [] and "promote/" not in git(origin, "branch", "--list")


def test_credentials_in_the_remote_url_are_never_used_or_shown(checkout):
    from faas_deployment.gitlab import gitops

    repo = gitops.open_repository(checkout)
    git(checkout, "remote", "add", "ci", f"https://gitlab-ci-token:{TOKEN}@127.0.0.1:9/x/y.git")
    assert gitops.remote_url(repo, "ci") == "https://127.0.0.1:9/x/y.git"
    with GitLabApi(TOKEN) as api, pytest.raises(UserError) as caught:
        promotion.promote(checkout, "dev", "prod", ["controller"], proposal=proposal(api, remote="ci"))
    assert "git fetch https://127.0.0.1:9/x/y.git: cannot connect" in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_bump_merge_request_commits_the_bumped_dev_config(checkout, monkeypatch):
    origin = checkout.parent / "origin.git"
    monkeypatch.setenv("GITLAB_TOKEN", TOKEN)
    with GitLabApi(TOKEN, remote=origin) as api:
        for _ in range(2):
            assert cli.main(["--source", str(checkout), "bump", "--env", "dev", "--component", "controller",
                             "--image-tag", "0f3c2d1", "--merge-request", "--gitlab-url", api.url,
                             "--gitlab-project", str(api.project_id), "--gitlab-token", "env:GITLAB_TOKEN"]) == 0
    [mr] = api.merge_requests.values()
    assert mr["source_branch"] == "bump/dev/controller-0.4.2" and mr["labels"] == ["bump"]
    diff = git(origin, "diff", "main", "bump/dev/controller-0.4.2")
    assert '+  image_tag: "0f3c2d1"' in diff and '+  chart_version: "0.4.2"' in diff
    assert git(checkout, "status", "--porcelain") == ""


# --------------------------------------------------------------------------- fuzz


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
_helmrelease = st.fixed_dictionaries({"kind": st.just("HelmRelease")}, optional={
    "metadata": _json | st.fixed_dictionaries({}, optional={"generation": _json, "name": _json}),
    "status": _json | st.fixed_dictionaries({}, optional={
        "history": _json | st.lists(_json | st.fixed_dictionaries({}, optional={
            "chartVersion": _json, "status": _json, "ociDigest": _json}), max_size=2),
        "conditions": _json | st.lists(_json | st.fixed_dictionaries({}, optional={
            "type": _json, "status": _json, "reason": _json}), max_size=2),
        "observedGeneration": _json}),
})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=_json | _helmrelease)
def test_any_status_document_is_a_state_or_a_clear_error(document):
    try:
        state = source_state.state_from_helmrelease(document, shown="status.json")
    except UserError as exc:
        assert str(exc).startswith("status.json: ")
    else:
        assert isinstance(state.healthy, bool) and isinstance(state.evidence, str)
        assert state.healthy is False or document["status"]["history"][0]["status"] == "deployed"


def test_push_over_http_sends_the_token_as_the_basic_password_never_in_the_url(checkout, caplog):
    from support.git_http_server import GitHttpServer

    caplog.set_level(logging.DEBUG)
    root = checkout.parent
    with GitHttpServer(root, TOKEN) as git_server, GitLabApi(TOKEN) as api:
        url = f"{git_server.url}/origin.git"
        [line] = promotion.promote(checkout, "dev", "prod", ["controller"], proposal=proposal(api, remote=url))
        with pytest.raises(UserError, match="refused the credentials") as caught:
            promotion.promote(checkout, "dev", "prod", ["operator"], proposal=proposal(api, remote=url, token="wrong"))
    assert "!1 opened" in line
    assert git(root / "origin.git", "diff", "--stat", "main", "promote/prod/controller-0.4.1").count("|") == 1
    assert all(TOKEN not in r["path"] + r["query"] for r in git_server.requests)
    assert any(r["auth"] == "Basic " + __import__("base64").b64encode(f"oauth2:{TOKEN}".encode()).decode()
               for r in git_server.requests)
    assert TOKEN not in str(caught.value) + caplog.text and "wrong" not in str(caught.value)


# --------------------------------------------------------------------------- the live HelmRelease (cluster)


KUBE_TOKEN = "kube-token-" + "9" * 16


def _cluster_promote(checkout: Path, tmp_path: Path, doc: dict, capsys) -> tuple[int, str, list]:
    """``promote --kubeconfig file:...`` against the loopback Kubernetes API serving ``doc`` as dev's HelmRelease."""
    from support.flux_doubles import HR, KubeApi
    with KubeApi(KUBE_TOKEN) as api:
        if doc:
            api.put(HR, "faas-dev", "faas-controller", doc)
        (tmp_path / "kubeconfig").write_text(api.kubeconfig())
        code = cli.main(["--source", str(checkout), "promote", "--from", "dev", "--to", "prod", "--component",
                         "controller", "--kubeconfig", f"file:{tmp_path / 'kubeconfig'}"])
    out = capsys.readouterr()
    text = out.out + out.err
    assert KUBE_TOKEN not in text and str(tmp_path / "kubeconfig") not in text.replace("file:", "")
    return code, text, api.requests


def test_cluster_healthy_release_is_promoted(checkout, tmp_path, capsys):
    before = (checkout / PROD).read_text()
    code, text, requests = _cluster_promote(checkout, tmp_path, status_doc(), capsys)
    assert code == 0, text
    assert [(m, p) for m, p, _ in requests] == [
        ("GET", "/apis/helm.toolkit.fluxcd.io/v2/namespaces/faas-dev/helmreleases/faas-controller")]
    assert changed_lines(before, (checkout / PROD).read_text())
    assert "promoted" in text


@pytest.mark.parametrize("doc, message", [
    (status_doc(ready="False"), "not healthy"),
    (status_doc(history_status="failed"), "not healthy"),
    (status_doc(observed=2), "not healthy"),
    ({}, "HTTP 404"),
])
def test_cluster_unhealthy_or_missing_release_refuses(checkout, tmp_path, capsys, doc, message):
    before = (checkout / PROD).read_text()
    code, text, _ = _cluster_promote(checkout, tmp_path, doc, capsys)
    assert code == 1 and message in text and "Traceback" not in text
    assert (checkout / PROD).read_text() == before


def test_cluster_rolled_back_release_refuses(checkout, tmp_path, capsys):
    """helm-controller after a failed upgrade remediated by rollback: history[0] is the old version, Ready=False."""
    doc = status_doc()
    doc["status"]["history"].insert(0, {**doc["status"]["history"][0], "chartVersion": "0.4.0+0123456789ab",
                                        "version": 5})
    doc["status"]["conditions"] = [{"type": "Ready", "status": "False", "reason": "RollbackSucceeded",
                                    "message": "Helm rollback to previous release succeeded"},
                                   {"type": "Remediated", "status": "True", "reason": "RollbackSucceeded",
                                    "message": "Helm rollback to previous release succeeded"}]
    code, text, _ = _cluster_promote(checkout, tmp_path, doc, capsys)
    assert code == 1 and "not healthy" in text and "RollbackSucceeded" in text


def test_cluster_refused_credentials_are_a_clear_error_without_the_token(checkout, tmp_path, capsys):
    from support.flux_doubles import HR, KubeApi
    with KubeApi("another-token") as api:
        api.put(HR, "faas-dev", "faas-controller", status_doc())
        (tmp_path / "kubeconfig").write_text(api.kubeconfig().replace("another-token", KUBE_TOKEN))
        code = cli.main(["--source", str(checkout), "promote", "--from", "dev", "--to", "prod", "--component",
                         "controller", "--kubeconfig", f"file:{tmp_path / 'kubeconfig'}"])
    out = capsys.readouterr()
    assert code == 1 and "HTTP 401" in out.err and KUBE_TOKEN not in out.out + out.err


def test_source_status_and_kubeconfig_together_are_refused(checkout, tmp_path, capsys):
    status = tmp_path / "status.json"
    status.write_text(json.dumps(status_doc()))
    code = cli.main(["--source", str(checkout), "promote", "--from", "dev", "--to", "prod", "--component",
                     "controller", "--source-status", str(status), "--kubeconfig", "env:NOPE"])
    assert code == 1 and "not both" in capsys.readouterr().err


# --------------------------------------------------------------------------- reviewers' work and a moving target


def _clone(origin: Path, where: Path, branch: str = "main") -> Path:
    subprocess.run(["git", "clone", "-q", "-b", branch, str(origin), str(where)], check=True, capture_output=True)
    return where


def _commit_all(repo: Path, message: str) -> str:
    git(repo, "-c", "user.name=Rev Iewer", "-c", "user.email=reviewer@example.org", "commit", "-qam", message)
    return git(repo, "rev-parse", "HEAD").strip()


def _reviewer_adds_a_commit(origin: Path, branch: str) -> str:
    """A reviewer's commit on ``branch`` of ``origin`` (one more prod replica), pushed; its id."""
    reviewer = _clone(origin, origin.parent / "reviewer", branch)
    (reviewer / PROD).write_text((reviewer / PROD).read_text().replace("replica_count: 3", "replica_count: 4"))
    theirs = _commit_all(reviewer, "prod: one more replica")
    git(reviewer, "push", "-q", "origin", branch)
    return theirs


def _main_moves_on(origin: Path) -> str:
    """An unrelated commit pushed on ``origin``'s main; its id."""
    other = _clone(origin, origin.parent / "other")
    (other / "env" / "NOTES").write_text("unrelated\n")
    git(other, "add", "-A")
    main = _commit_all(other, "notes")
    git(other, "push", "-q", "origin", "main")
    return main


def test_a_rerun_keeps_a_reviewer_s_commit_on_the_promotion_branch(checkout, monkeypatch):
    origin = checkout.parent / "origin.git"
    branch = "promote/prod/controller-0.4.1"
    with GitLabApi(TOKEN, remote=origin) as api:
        run_cli(checkout, api, monkeypatch)
        theirs = _reviewer_adds_a_commit(origin, branch)
        second = run_cli(checkout, api, monkeypatch)
    assert git(origin, "rev-parse", f"refs/heads/{branch}").strip() == theirs  # not force-pushed over
    assert "kept as it is" in second and "merge request !1 updated" in second


def test_a_reviewer_s_commit_and_another_change_refuses_and_overwrites_nothing(checkout, monkeypatch):
    origin = checkout.parent / "origin.git"
    branch = "promote/prod/controller-0.4.1"
    with GitLabApi(TOKEN, remote=origin) as api:
        run_cli(checkout, api, monkeypatch)
        theirs = _reviewer_adds_a_commit(origin, branch)
        _main_moves_on(origin)  # this run's commit now differs from the one on the branch
        with pytest.raises(PromotionRefused) as caught:
            promotion.promote(checkout, "dev", "prod", ["controller"], proposal=proposal(api))
    err = str(caught.value)
    assert "commit(s) this pipeline did not write" in err and theirs[:12] in err, err
    assert "Rev Iewer <reviewer@example.org>" in err
    assert git(origin, "rev-parse", f"refs/heads/{branch}").strip() == theirs


def test_a_rerun_replaces_only_its_own_commit_when_the_target_moved(checkout, monkeypatch):
    origin = checkout.parent / "origin.git"
    branch = "promote/prod/controller-0.4.1"
    with GitLabApi(TOKEN, remote=origin) as api:
        run_cli(checkout, api, monkeypatch)
        first = git(origin, "rev-parse", f"refs/heads/{branch}").strip()
        main = _main_moves_on(origin)
        second = run_cli(checkout, api, monkeypatch)
    now = git(origin, "rev-parse", f"refs/heads/{branch}").strip()
    assert now != first and git(origin, "rev-parse", f"{now}^").strip() == main  # rebased onto the target
    assert "replaced (only commits of this pipeline were on it)" in second


def test_a_target_that_moved_on_is_seen_and_the_change_is_made_on_it(checkout, monkeypatch):
    """prod was raised to 0.4.1 on the remote (another change merged) while this checkout still says 0.4.0."""
    origin = checkout.parent / "origin.git"
    other = _clone(origin, checkout.parent / "other")
    (other / PROD).write_text((other / PROD).read_text().replace('chart_version: "0.4.0"', 'chart_version: "0.4.1"'))
    main = _commit_all(other, "prod: controller 0.4.1")
    git(other, "push", "-q", "origin", "main")
    with GitLabApi(TOKEN, remote=origin) as api:
        out = run_cli(checkout, api, monkeypatch)
    assert "the target moved on: env/prod/controller/cookiecutter-config.yaml on main has chart_version 0.4.1, " \
           "the working tree 0.4.0" in out
    assert "chart_version 0.4.1 -> 0.4.2" in out
    [mr] = api.merge_requests.values()
    assert mr["source_branch"] == "promote/prod/controller-0.4.2"
    tip = git(origin, "rev-parse", "refs/heads/promote/prod/controller-0.4.2").strip()
    assert git(origin, "rev-parse", f"{tip}^").strip() == main  # no conflict: made on the target's tip
    changed = [line for line in git(origin, "diff", "main", tip).splitlines()
               if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert sorted(changed) == sorted(['-  chart_version: "0.4.1"', '+  chart_version: "0.4.2"',
                                      '-  image_tag: "0.9.2"', '+  image_tag: "0.10.0"'])


def test_a_pre_release_image_is_promoted_only_when_asked(checkout, run_cli):
    dev = checkout / DEV
    dev.write_text(dev.read_text().replace('image_tag: "0.10.0"', 'image_tag: "0.11.0-rc.1"'))
    before = (checkout / PROD).read_text()
    code, out, err = run_cli("--source", str(checkout), "promote", "--from", "dev", "--to", "prod",
                             "--component", "controller")
    assert out == ""
    assert code == 1 and "image_tag 0.11.0-rc.1 is a pre-release (-rc.1)" in err and "--allow-prerelease" in err
    assert (checkout / PROD).read_text() == before
    code, _, err = run_cli("--source", str(checkout), "promote", "--from", "dev", "--to", "prod",
                           "--component", "controller", "--allow-prerelease")
    assert code == 0 and 'image_tag: "0.11.0-rc.1"' in (checkout / PROD).read_text()


def test_bump_again_with_the_same_image_tag_raises_nothing(checkout, run_cli, monkeypatch):
    argv = ["--source", str(checkout), "bump", "--env", "dev", "--component", "controller", "--image-tag", "0f3c2d1"]
    assert run_cli(*argv)[0] == 0
    after_first = (checkout / DEV).read_text()
    code, out, err = run_cli(*argv)
    assert code == 0 and (checkout / DEV).read_text() == after_first
    assert out.strip() == ("up to date env/dev/controller/cookiecutter-config.yaml: image_tag 0f3c2d1 already set, "
                           "chart_version 0.4.2")
    # As a merge request: once merged, a re-run opens nothing and raises nothing.
    origin = checkout.parent / "origin.git"
    git(checkout, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qam", "bump")
    git(checkout, "push", "-q", "origin", "main")
    monkeypatch.setenv("GITLAB_TOKEN", TOKEN)
    with GitLabApi(TOKEN, remote=origin) as api:
        code, out, err = run_cli(*argv, "--merge-request", "--gitlab-url", api.url, "--gitlab-project", api.project,
                                 "--gitlab-token", "env:GITLAB_TOKEN")
    assert code == 0 and "up to date" in out and api.requests == [], err


# --------------------------------------------------------------------------- the promotion order


def _stage(checkout: Path, name: str, promote_from: str | None) -> None:
    """A stage env/<name>/ copied from dev, with ``promote_from`` set (or removed)."""
    if not (checkout / "env" / name).exists():
        shutil.copytree(checkout / "env" / "dev", checkout / "env" / name)
    settings = checkout / "env" / name / "environment.yaml"
    lines = [line for line in settings.read_text().splitlines() if not line.startswith("promote_from:")]
    settings.write_text("\n".join(lines + ([f"promote_from: {promote_from}"] if promote_from else [])) + "\n")


def test_the_promotion_order_is_a_repository_setting(checkout, run_cli):
    from faas_deployment.door import Workspace
    from faas_deployment.flux import settings

    assert settings.promotion_order(checkout) == [("dev", "prod")]  # env/prod/environment.yaml: promote_from: dev
    code, out, err = run_cli("--source", str(checkout), "promote", "--to", "prod", "--component", "controller")
    assert code == 0 and out.startswith("promoted dev -> prod controller"), err
    # dev -> qa -> prod
    _stage(checkout, "qa", "dev")
    _stage(checkout, "prod", "qa")
    ws = Workspace.open(checkout)
    assert door.promotion.promotion_steps(ws) == [("dev", "qa"), ("qa", "prod")]
    assert door.promotion.promotion_steps(ws, to_env="prod") == [("qa", "prod")]
    assert door.promotion.promotion_steps(ws, from_env="dev") == [("dev", "qa")]
    code, out, err = run_cli("--source", str(checkout), "promote", "--from", "dev", "--to", "prod",
                             "--component", "operator")
    assert code == 1 and out == ""
    assert ("env/prod/environment.yaml: promote_from: prod receives promotions from qa, not dev "
            "(the repository's promotion order)") in err
    code, out, err = run_cli("--source", str(checkout), "promote", "--all", "--allow-prerelease")
    assert code == 0, err
    # qa is a copy of dev (up to date); prod's controller was promoted above; prod's operator lags qa's.
    assert [line.split(":")[0] for line in out.splitlines()] == [
        "dev -> qa controller", "dev -> qa operator", "qa -> prod controller", "promoted qa -> prod operator"], out


@pytest.mark.parametrize("stages, problem", [
    ({"prod": "prod"}, "env/prod/environment.yaml: promote_from: 'prod': the environment itself"),
    ({"prod": "staging"}, "env/prod/environment.yaml: promote_from: 'staging': no such environment"),
    ({"prod": "qa", "qa": "prod"}, "promote_from: the promotion order has a cycle"),
    ({"prod": "Dev"}, "env/prod/environment.yaml: promote_from: expected a DNS-1123 label"),
])
def test_a_wrong_promotion_order_names_the_file_and_key(checkout, run_cli, stages, problem):
    for name, source in stages.items():
        _stage(checkout, name, source)
    code, out, err = run_cli("--source", str(checkout), "promote", "--all")
    assert code == 1 and out == "" and problem in err and "Traceback" not in err, err


def test_the_parent_pipeline_names_no_environment():
    import yaml

    ci = yaml.safe_load((REPO / ".gitlab-ci.yml").read_text())
    envs = {p.name for p in (REPO / "env").iterdir() if p.is_dir()}
    words = set()
    for job in ci.values():
        if isinstance(job, dict):
            for key in ("script", "before_script", "variables", "rules"):
                words |= set(re.findall(r"[A-Za-z0-9_-]+", json.dumps(job.get(key, ""))))
    assert not envs & words, envs & words
    assert "--from" not in json.dumps(ci["promote"]) and "--to" not in json.dumps(ci["promote"])
    # Pre-release images are promoted only when the person running the job asks for it.
    assert ci["variables"]["PROMOTE_ALLOW_PRERELEASE"] == {
        "value": "false", "options": ["false", "true"],
        "description": ci["variables"]["PROMOTE_ALLOW_PRERELEASE"]["description"]}
    assert '--allow-prerelease="$PROMOTE_ALLOW_PRERELEASE"' in ci["promote"]["script"][0]
