"""The chart template as a repository setting (``faas-deployment.yaml``): read by every front end and job.

A user template (the embedded one plus a ConfigMap carrying a marker) is named once,
in the repository, as a directory under ``templates/`` or as a git URL pinned to a
commit served by git's own HTTP backend on loopback. The CLI, the Dagger module (the
engine harness), ``plan`` and the generated child pipeline's deploy job all render
with it, without a ``--template`` flag; ``--template`` still overrides. Invalid
settings are refused with the file and the key named, no traceback, no secret echoed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from test_dagger_engine import KUBE_TOKEN, RECEIVER_TOKEN, _dev_cluster, _run_job

from faas_deployment import door
from faas_deployment.charts import config, repository_settings
from faas_deployment.door import Workspace
from support import ci_calls
from support.ci_checkout import clone_with_origin
from support.dagger_engine import Engine
from support.flux_doubles import KubeApi, Receiver, deploy_succeeds
from support.git_http_server import GitHttpServer

REPO = Path(__file__).resolve().parent.parent
MARKER = "rendered-with-the-repository-template"
CHART_DIR = "{{cookiecutter.chart_name}}"


def _user_template(dest: Path, marker: str = MARKER) -> Path:
    """The embedded template plus a ConfigMap named after ``marker``."""
    shutil.copytree(config.EMBEDDED_TEMPLATE, dest)
    (dest / CHART_DIR / "templates" / "marker.yaml").write_text(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {marker}\ndata:\n  from: user-template\n")
    return dest


def _source(root: Path, setting: str | None = "template: templates/chart\n") -> Path:
    src = root / "src"
    shutil.copytree(REPO / "env", src / "env")
    _user_template(src / "templates" / "chart")
    if setting is not None:
        (src / repository_settings.FILE_NAME).write_text(setting)
    return src


def test_the_cli_renders_with_the_repository_template_and_template_overrides_it(tmp_path, run_cli):
    src = _source(tmp_path)
    code, out, err = run_cli("--source", str(src), "objects", "--env", "dev", "--component", "operator")
    assert code == 0, err
    assert f"name: {MARKER}" in out
    code, out, _ = run_cli("--source", str(src), "--template", str(config.EMBEDDED_TEMPLATE), "objects",
                           "--env", "dev", "--component", "operator")
    assert code == 0 and MARKER not in out


def test_the_dagger_module_renders_with_the_repository_template(tmp_path):
    src = _source(tmp_path)
    shutil.copy(REPO / "dagger.json", src / "dagger.json")
    with Engine(src) as engine:
        out = engine.call("dagger call env --name dev component --name operator objects")
    assert f"name: {MARKER}" in out


def _git_template_remote(root: Path) -> tuple[Path, str]:
    """A bare repository ``tpl.git`` under ``root`` whose commit holds the template under ``chart/``; (root, SHA)."""
    work = root / "tpl-work"
    _user_template(work / "chart", marker="from-a-pinned-git-template")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "GIT_CONFIG_GLOBAL": os.devnull}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "template"]):
        subprocess.run(["git", "-C", str(work), *args], check=True, env=env, capture_output=True)
    sha = subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], check=True, capture_output=True,
                         text=True).stdout.strip()
    served = root / "served"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(served / "tpl.git")], check=True, env=env)
    subprocess.run(
        ["git", "-C", str(served / "tpl.git"), "config", "uploadpack.allowAnySHA1InWant", "true"], check=True
    )
    return served, sha


def test_a_git_template_pinned_to_a_commit_renders_in_the_cli_and_the_module(tmp_path, run_cli):
    served, sha = _git_template_remote(tmp_path)
    with GitHttpServer(served, None) as remote:
        src = _source(tmp_path, f"template: {remote.url}/tpl.git#{sha}:chart\n")
        code, out, err = run_cli("--source", str(src), "objects", "--env", "dev", "--component", "operator")
        assert code == 0, err
        assert "name: from-a-pinned-git-template" in out
        shutil.copy(REPO / "dagger.json", src / "dagger.json")
        with Engine(src) as engine:
            out = engine.call("dagger call env --name dev component --name controller objects")
        assert "name: from-a-pinned-git-template" in out


SECRET = "tok-in-url-4242"
SHA = "0f3c2d1e5b7a9c4d6e8f0a1b2c3d4e5f6a7b8c9d"
#: Invalid settings: (id, faas-deployment.yaml text or a callable preparing the tree, what the error says).
INVALID = [
    ("parent", "template: ../outside\n", "not a directory under templates/"),
    ("absolute", "template: /etc\n", "not a directory under templates/"),
    ("not-under-templates", "template: env/dev\n", "not a directory under templates/"),
    ("dot-segments", "template: templates/./chart\n", "not a directory under templates/"),
    ("missing", "template: templates/nope\n", "no such directory"),
    ("unpinned-branch", "template: https://git.example.org/t.git#main\n", "not a full 40-character commit SHA"),
    ("short-sha", "template: https://git.example.org/t.git#0f3c2d1\n", "not a full 40-character commit SHA"),
    ("no-ref", "template: https://git.example.org/t.git\n", "not a full 40-character commit SHA"),
    ("credentials", f"template: https://ci:{SECRET}@git.example.org/t.git#{SHA}\n", "carries credentials"),
    ("query", f"template: https://git.example.org/t.git?private_token={SECRET}#{SHA}\n", "no query"),
    ("ssh", f"template: ssh://git@git.example.org/t.git#{SHA}\n", "expected https://"),
    ("bad-port", f"template: https://git.example.org:99999/t.git#{SHA}\n", "port 99999"),
    ("git-dir-escapes", f"template: https://git.example.org/t.git#{SHA}:../x\n", "relative path without '..'"),
    ("not-a-string", "template: 42\n", "expected a string"),
    ("unknown-key", "templat: templates/chart\n", "unknown key"),
    ("yaml", "template: [\n", "YAML syntax error"),
    ("not-a-mapping", "- template\n", "expected a mapping"),
]


def _symlink_out(src: Path, outside: Path) -> None:
    shutil.rmtree(src / "templates" / "chart")
    os.symlink(_user_template(outside / "tpl"), src / "templates" / "chart")


def _symlink_inside(src: Path, outside: Path) -> None:
    (outside / "kubeconfig").write_text(f"token: {SECRET}\n")
    os.symlink(outside / "kubeconfig", src / "templates" / "chart" / CHART_DIR / "templates" / "leak.yaml")


def _settings_link(src: Path, outside: Path) -> None:
    (outside / "s.yaml").write_text("template: templates/chart\n")
    (src / repository_settings.FILE_NAME).unlink()
    os.symlink(outside / "s.yaml", src / repository_settings.FILE_NAME)


PREPARED = [("template-is-a-link-out", _symlink_out, "a symbolic link"),
            ("link-inside-the-template", _symlink_inside, "leak.yaml is a symbolic link"),
            ("settings-file-is-a-link", _settings_link, "a symbolic link")]


@pytest.mark.parametrize(("text", "expected"), [(t, e) for _, t, e in INVALID], ids=[i for i, _, _ in INVALID])
def test_an_invalid_template_setting_is_refused_by_every_verb(tmp_path, run_cli, text, expected):
    src = _source(tmp_path, text)
    for argv in (["check"], ["config", "--env", "dev", "--component", "operator"], ["plan"]):
        code, out, err = run_cli("--source", str(src), *argv)
        assert code == 1 and "Traceback" not in err, (argv, err)
        assert expected in err and repository_settings.FILE_NAME in err, (argv, err)
        assert SECRET not in out + err


@pytest.mark.parametrize(("prepare", "expected"), [(p, e) for _, p, e in PREPARED], ids=[i for i, _, _ in PREPARED])
def test_links_out_of_the_repository_are_refused(tmp_path, run_cli, prepare, expected):
    src = _source(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    prepare(src, outside)
    code, out, err = run_cli("--source", str(src), "objects", "--env", "dev", "--component", "operator")
    assert code == 1 and "Traceback" not in err
    assert expected in err and SECRET not in out + err


def test_a_template_change_in_the_repository_plans_every_chart(tmp_path, run_cli):
    """Each side of the plan reads its own tree's setting: a new template in the change is a changed input."""
    from support.plan_repo import PlanRepo

    repo = PlanRepo(tmp_path / "repo")
    _user_template(repo.work / "templates" / "chart")
    (repo.work / repository_settings.FILE_NAME).write_text("template: templates/chart\n")
    code, _, err = run_cli("--source", str(repo.work), "plan", "--base", "HEAD")
    assert code == 1, err  # every chart changed without a version bump
    assert "plan refused 4 targets" in err
    for target in ("dev/operator", "dev/controller", "prod/operator", "prod/controller"):
        assert f"{target}: the chart template changed the packaged chart without a chart_version bump" in err, err


def test_the_generated_deploy_job_renders_with_the_repository_template(registry, tmp_path):
    """The parent's plan job writes the child pipeline; its deploy job, run through the engine, publishes the
    chart rendered with the repository's template (no --template anywhere in either)."""
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO / "env", checkout / "env")
    shutil.copy(REPO / "dagger.json", checkout / "dagger.json")
    _user_template(checkout / "templates" / "chart")
    (checkout / repository_settings.FILE_NAME).write_text("template: templates/chart\n")
    ci = ci_calls.load()
    expected = {}

    with KubeApi(KUBE_TOKEN) as api, \
            Receiver(RECEIVER_TOKEN, "faas-dev", "faas-dev", on_hook=deploy_succeeds(api, expected)) as receiver:
        _dev_cluster(checkout, registry, api, receiver)
        _, before = clone_with_origin(checkout, (repository_settings.FILE_NAME, "templates"))
        expected["operator"] = door.deploy.expected_for(Workspace.open(checkout), "dev", "operator")
        embedded = door.deploy.expected_for(Workspace.open(checkout, config.EMBEDDED_TEMPLATE), "dev", "operator")
        assert expected["operator"].digest != embedded.digest
        variables = {
            "CI_DEFAULT_BRANCH": "main",
            "CI_COMMIT_REF_NAME": "main",
            "CI_COMMIT_BEFORE_SHA": before,
            "CI_MERGE_REQUEST_DIFF_BASE_SHA": "",
            "CI_MERGE_REQUEST_IID": "",
            "CI_PIPELINE_IID": "9",
            "CHART_REGISTRY_USER_DEV": registry.username,
            "CHART_REGISTRY_PASSWORD_DEV": registry.password,
            "FLUX_RECEIVER_TOKEN_DEV": RECEIVER_TOKEN,
            "KUBECONFIG_DEV": str(checkout.parent / "kubeconfig-dev"),
        }
        outcomes: dict[str, str] = {}
        _run_job("plan", ci_calls.jobs(ci)["plan"], checkout, variables, outcomes)
        child = ci_calls.jobs(ci_calls.load(checkout / "child-pipeline.yml"))
        assert "operator_deploy_dev" in child
        assert not any("--template" in line for job in child.values() for line in job.get("script", []))
        _run_job("operator_deploy_dev", child["operator_deploy_dev"], checkout, variables, outcomes)
    exp = expected["operator"]
    assert f":{exp.version}@{exp.digest}" in outcomes["operator_deploy_dev"]
    assert receiver.hits == 1
