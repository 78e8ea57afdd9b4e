"""Results are a contract: what every verb prints, how it ends, and what it refuses alike.

Run through the real CLI (in-process, or as a process behind a real pipe), against
a copy of the repository's env/ tree.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from faas_deployment import door
from faas_deployment.core import deadline

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "import sys; from faas_deployment.cli import main; sys.exit(main())"]

#: Every verb with a --timeout, and the flags it needs to get as far as reading it.
TIMEOUT_VERBS = {
    "check": ["--registry", "oci://127.0.0.1:9/charts"],
    "publish": ["--env", "dev", "--component", "operator", "--registry", "oci://127.0.0.1:9/charts"],
    "release": ["--env", "dev", "--registry", "oci://127.0.0.1:9/charts"],
    "upload-bundle": ["--env", "dev", "--admin-token", "env:FAAS_TEST_TOKEN", "--admin-url", "http://127.0.0.1:9"],
    "publish-image": ["--env", "dev", "--component", "operator", "--context", ".", "--tag", "x"],
    "deploy": ["--env", "dev", "--receiver-token", "env:FAAS_TEST_TOKEN"],
    "wait": ["--env", "dev"],
    "promote": ["--from", "dev", "--to", "prod", "--component", "controller"],
    "bump": ["--env", "dev", "--component", "operator", "--image-tag", "1.2.3"],
}


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "0", "-inf"])
@pytest.mark.parametrize("verb", sorted(TIMEOUT_VERBS))
def test_every_verb_refuses_a_timeout_that_is_not_a_finite_positive_number_alike(verb, value, repo_copy, run_cli,
                                                                               monkeypatch):
    monkeypatch.setenv("FAAS_TEST_TOKEN", "t0k3n-value")
    before = {p: p.read_bytes() for p in repo_copy.rglob("*") if p.is_file()}
    started = time.monotonic()
    code, out, err = run_cli("--source", str(repo_copy), verb, *TIMEOUT_VERBS[verb], f"--timeout={value}")
    assert time.monotonic() - started < 10
    assert code == 1 and out == "", err
    assert err.strip().splitlines()[-1] == (f"faas-deploy: error: --timeout: expected a finite number of seconds "
                                            f"above 0, got {float(value)!r}")
    assert {p: p.read_bytes() for p in repo_copy.rglob("*") if p.is_file()} == before  # nothing written


def test_the_one_deadline_rule_is_the_admin_api_s_too():
    from faas_deployment.bundle import admin_api

    assert admin_api.Deadline is deadline.Deadline
    for bad in (float("inf"), float("nan"), 0, -3, True, "x"):
        with pytest.raises(deadline.UserError, match="finite number of seconds above 0"):
            deadline.Deadline(bad)  # type: ignore[arg-type]
    assert deadline.Deadline(2.5).remaining() <= 2.5


def _env(source: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "dagger" / "src")}


@pytest.mark.parametrize("argv", [["config", "--env", "dev", "--component", "operator"],
                                  ["objects", "--env", "dev", "--component", "operator"],
                                  ["--output", "json", "config", "--env", "dev", "--component", "operator"]])
def test_a_reader_that_goes_away_ends_the_run_quietly(argv, repo_copy):
    """The reader of stdout closes the pipe before anything is written (as ``| head -1`` does once it has its line)."""
    proc = subprocess.Popen([*CLI, "--source", str(repo_copy), *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_env(repo_copy))
    proc.stdout.close()  # type: ignore[union-attr]
    err = proc.stderr.read().decode()  # type: ignore[union-attr]
    code = proc.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err, err
    assert code == 141


def test_head_1_through_a_shell_pipe_ends_quietly(repo_copy):
    command = " ".join(f"'{a}'" for a in [*CLI, "--source", str(repo_copy), "objects", "--env", "dev",
                                          "--component", "operator"])
    done = subprocess.run(["bash", "-c", f"set -o pipefail; {command} | head -1"], capture_output=True, text=True,
                          env=_env(repo_copy), timeout=60, check=False)
    assert done.stdout.count("\n") == 1
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr


def test_check_says_ok_for_dynamic_manifests_only_where_there_are_some(repo_copy, run_cli):
    import shutil

    shutil.rmtree(repo_copy / "env" / "prod" / "operator")
    code, out, err = run_cli("--source", str(repo_copy), "check")
    assert code == 0, err
    assert "ok dev: dynamic manifests" in out
    assert "ok prod: dynamic manifests" not in out and "prod: dynamic" not in out


def test_release_never_says_images_ok_when_none_was_checked(repo_copy, run_cli, capsys):
    # Every image names registry.example.org, which cannot be reached from here: none is checked.
    _, _, err = run_cli("--source", str(repo_copy), "release", "--env", "dev", "--timeout", "20")
    assert "check images of dev: ok" not in err, err
    assert re.search(r"check images of dev: incomplete, 2 not checked", err), err
    # Configs without image keys (a user template may have none): nothing to check, and it says so.
    from faas_deployment.door import Workspace

    ws = Workspace.open(repo_copy)
    target = door.charts.local_target(ws, "dev")
    assert door.charts.image_problems(ws, "dev", {"operator": {"chart_name": "x"}}, target) == []
    err = capsys.readouterr().err
    assert "check images of dev: ok" not in err
    assert "check images of dev: no config names image_repository and image_tag, nothing checked" in err, err


def test_publish_artifact_without_git_history_or_flags_is_an_error(repo_copy, run_cli):
    code, out, err = run_cli("--source", str(repo_copy), "publish-artifact", "--env", "dev",
                             "--repository", "oci://127.0.0.1:9/faas/manifests", "--plain-http")
    assert code == 1 and out == "" and "--revision: the source tree has no git commit" in err
    assert "flux push artifact requires" in err and "Traceback" not in err


def test_publish_artifact_refuses_a_local_path_as_the_source(repo_copy, run_cli, tmp_path):
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(repo_copy), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                       check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-qm", "env")
    git("remote", "add", "origin", str(tmp_path / "origin.git"))
    code, _, err = run_cli("--source", str(repo_copy), "publish-artifact", "--env", "dev",
                           "--repository", "oci://127.0.0.1:9/faas/manifests", "--plain-http")
    assert code == 1 and "not a local path" in err and "--source-url" in err
    code, _, err = run_cli("--source", str(repo_copy), "publish-artifact", "--env", "dev",
                           "--repository", "oci://127.0.0.1:9/faas/manifests", "--plain-http",
                           "--revision", "main@sha1:" + "a" * 40, "--source-url", "")
    assert code == 1 and "not a local path" in err
    from faas_deployment.flux import artifacts

    assert artifacts.annotations_of("main@sha1:" + "a" * 40, "https://u:p@git.example.org/x.git", where="t") == (
        "main@sha1:" + "a" * 40, "https://git.example.org/x.git")
    for revision, source in (("", "https://git.example.org/x"), ("main@sha1:" + "a" * 40, ""),
                             ("main@sha1:" + "a" * 40, "/srv/git/x.git"), ("main@sha1:" + "a" * 40, "file:///x"),
                             ("main@sha1:" + "a" * 40, "../x"), ("main sha1", "https://git.example.org/x")):
        with pytest.raises(artifacts.UserError):
            artifacts.annotations_of(revision, source, where="the source tree")


# ------------------------------------------------------------- --output json: one document per verb, its schema


SCHEMAS = REPO / "docs" / "schemas"


def _schema(name: str):
    import json

    from jsonschema import Draft202012Validator

    return Draft202012Validator(json.loads((SCHEMAS / f"{name}.json").read_text()))


def test_every_verb_has_a_documented_schema():
    import json

    from jsonschema import Draft202012Validator

    from faas_deployment.cli import VERBS

    assert {p.stem for p in SCHEMAS.glob("*.json")} == set(VERBS) | {"error"}
    for path in SCHEMAS.glob("*.json"):
        Draft202012Validator.check_schema(json.loads(path.read_text()))
    listed = (REPO / "docs" / "results.md").read_text()
    assert all(f"`{verb}`" in listed and f"schemas/{verb}.json" in listed for verb in [*VERBS, "error"])


def _json_run(run_cli, *argv: str, verb: str, code: int = 0):
    import json

    got, out, err = run_cli("--output", "json", *argv)
    assert got == code, err
    document = json.loads(out)  # one document, nothing else on stdout
    errors = sorted(_schema(verb).iter_errors(document), key=str)
    assert not errors, [e.message for e in errors]
    return document


def _git_repo(path: Path) -> None:
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "env"]):
        subprocess.run(["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                       check=True, capture_output=True)


def test_each_local_verb_answers_one_json_document_of_its_schema(repo_copy, run_cli, tmp_path):
    src = ["--source", str(repo_copy)]
    check = _json_run(run_cli, *src, "check", verb="check")
    assert {(c["env"], c["component"]) for c in check["charts"]} == {
        (e, c) for e in ("dev", "prod") for c in ("controller", "operator")}
    assert check["dynamic_manifests"] == ["dev", "prod"] and "lines" not in check
    assert _json_run(run_cli, *src, "config", "--env", "dev", "--component", "operator", verb="config")[
        "chart_name"] == "faas-operator"
    _json_run(run_cli, *src, "chart", "--env", "dev", "--component", "operator", "--out", str(tmp_path / "c"),
              verb="chart")
    _json_run(run_cli, *src, "objects", "--env", "dev", "--component", "operator", verb="objects")
    _json_run(run_cli, *src, "package", "--env", "dev", "--component", "operator", "--out", str(tmp_path / "p"),
              verb="package")
    assert len(_json_run(run_cli, *src, "release", "--env", "dev", "--skip-image-check", verb="release")) == 2
    _json_run(run_cli, *src, "publish", "--env", "prod", "--component", "operator", verb="publish")
    _json_run(run_cli, *src, "bundle", "--env", "dev", "--out", str(tmp_path / "m.zip"), verb="bundle")
    _json_run(run_cli, *src, "flux", "--env", "dev", "--out", str(tmp_path / "flux"), verb="flux")
    _json_run(run_cli, *src, "artifact-objects", "--env", "dev", "--repository", "oci://127.0.0.1:5000/x",
              "--out", str(tmp_path / "ao"), verb="artifact-objects")
    promoted = _json_run(run_cli, *src, "promote", "--to", "prod", "--component", "controller", "--allow-prerelease",
                         verb="promote")
    assert [p["outcome"] for p in promoted["promotions"]] == ["promoted"]
    again = _json_run(run_cli, *src, "promote", "--to", "prod", "--component", "controller", verb="promote")
    assert [p["outcome"] for p in again["promotions"]] == ["up to date"]
    bumped = _json_run(run_cli, *src, "bump", "--env", "dev", "--component", "operator", "--image-tag", "9.9.9",
                       verb="bump")
    assert bumped["new_tag"] == "9.9.9"


def test_plan_answers_json_also_when_refused(repo_copy, run_cli):
    _git_repo(repo_copy)
    src = ["--source", str(repo_copy)]
    plan = _json_run(run_cli, *src, "plan", "--base", "HEAD", verb="plan")
    assert {i["action"] for i in plan["items"]} == {"unchanged"}
    config = repo_copy / "env" / "dev" / "operator" / "cookiecutter-config.yaml"
    config.write_text(config.read_text().replace("replica_count: 1", "replica_count: 2"))  # no chart_version bump
    refused = _json_run(run_cli, *src, "plan", "--base", "HEAD", verb="plan", code=1)
    assert [(i["env"], i["component"]) for i in refused["items"] if i["action"] == "refused"] == [("dev", "operator")]


def test_errors_are_one_json_object_on_stderr(repo_copy, run_cli):
    import json

    config = repo_copy / "env" / "dev" / "operator" / "cookiecutter-config.yaml"
    config.write_text(config.read_text().replace('chart_version: "1.0.3"', 'chart_version: "one"'))
    code, out, err = run_cli("--source", str(repo_copy), "--output", "json", "check", "--env", "dev")
    assert code == 1 and out == ""
    error = json.loads(err.strip().splitlines()[-1])
    assert not list(_schema("error").iter_errors(error))
    assert error["file"] == "env/dev/operator/cookiecutter-config.yaml" and error["exit_code"] == 1
    assert error["key"] == "default_context.chart_version" and error["problems"]
    code, out, err = run_cli("--source", str(repo_copy), "--output", "json", "config", "--env", "nope",
                             "--component", "operator")
    error = json.loads(err.strip().splitlines()[-1])
    assert code == 1 and out == "" and not list(_schema("error").iter_errors(error))
    assert error["message"].startswith("unknown environment: 'nope'") and error["file"] is None


def test_registry_and_api_verbs_answer_json_of_their_schema(repo_copy, run_cli, registry, monkeypatch):
    from support.admin_api_server import AdminApiServer

    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", registry.password)
    creds = ["--username", registry.username, "--password", "env:TEST_REGISTRY_PASSWORD", "--plain-http"]
    src = ["--source", str(repo_copy)]
    _json_run(run_cli, *src, "publish", "--env", "dev", "--component", "operator", "--registry",
              f"oci://{registry.host}/charts", *creds, verb="publish")
    artifacts = ["--repository", f"oci://{registry.host}/faas/manifests", *creds]
    _json_run(run_cli, *src, "publish-artifact", "--env", "dev", *artifacts, "--revision", "main@sha1:" + "a" * 40,
              "--source-url", "https://git.example.org/faas.git", verb="publish-artifact")
    import shutil

    shutil.rmtree(repo_copy / "env" / "dev" / "controller")
    retired = _json_run(run_cli, *src, "retire-artifact", "--env", "dev", "--component", "controller", *artifacts,
                        verb="retire-artifact")
    assert retired["outcome"] == "retired"
    monkeypatch.setenv("FAAS_TEST_TOKEN", "tok-json-0123")
    with AdminApiServer("tok-json-0123") as api:
        _json_run(run_cli, *src, "upload-bundle", "--env", "dev", "--admin-token", "env:FAAS_TEST_TOKEN",
                  "--admin-url", api.url, verb="upload-bundle")
