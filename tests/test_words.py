"""The front ends speak the glossary's words (docs/glossary.md): the bundle, the admin API token, objects, and
``--repository`` for an OCI repository; the CLI's older spellings still run, as hidden aliases.

The CLI is read from its parser (``cli.build_parser``), the Dagger module as the engine registers it
(``support.daggermod``); the ``dagger call`` lines from the files the engine harness executes.
"""

from __future__ import annotations

import argparse
import inspect
import re
from pathlib import Path

import pytest

from faas_deployment import cli, door
from faas_deployment.gitlab import child_pipeline
from support import daggermod

REPO = Path(__file__).resolve().parent.parent


def _verbs() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _option(verb: str, flag: str) -> argparse.Action:
    [action] = [a for a in _verbs()[verb]._actions if flag in a.option_strings]
    return action


@pytest.fixture(scope="module")
def functions() -> dict[tuple[str, str], set[str]]:
    return {(obj, fn): set(f.params) for obj, fns in daggermod.objects().items() for fn, f in fns.items() if fn}


# --------------------------------------------------------------------------- the bundle


def test_the_bundle_verbs_are_named_bundle_in_both_front_ends(functions):
    assert {"bundle", "upload-bundle"} <= set(cli.VERBS)
    assert not {"manifests", "upload-manifests"} & set(cli.VERBS)
    assert {("Environment", "bundle"), ("Environment", "upload_bundle")} <= set(functions)
    assert not {("Environment", "manifests"), ("Environment", "upload_manifests")} & set(functions)
    assert hasattr(door.bundle, "upload_bundle") and not hasattr(door.bundle, "upload_manifests")


def test_the_old_verb_names_run_the_new_verbs_and_are_not_listed():
    verbs = _verbs()
    assert cli.ALIASES == {"manifests": "bundle", "upload-manifests": "upload-bundle"}
    for old, new in cli.ALIASES.items():
        extra = ["--admin-token", "env:T"] if new == "upload-bundle" else ["--out", "b.zip"]
        args = cli.build_parser([old]).parse_args([old, "--env", "dev", *extra])
        assert args.verb_spec is cli.VERBS[new]
        assert f"older name of {new}" in verbs[old].description
    listing = cli.build_parser().format_help()
    assert re.search(r"^\s+bundle\s", listing, re.M) and re.search(r"^\s+upload-bundle\s", listing, re.M)
    assert "manifests" not in listing


def test_the_old_verb_name_writes_the_same_bundle(tmp_path, capsys):
    new, old = tmp_path / "new.zip", tmp_path / "old.zip"
    assert cli.main(["--source", str(REPO), "bundle", "--env", "dev", "--out", str(new)]) == 0
    assert cli.main(["--source", str(REPO), "manifests", "--env", "dev", "--out", str(old)]) == 0
    assert new.read_bytes() == old.read_bytes()


def _without_paths(text: str) -> str:
    """``text`` without the paths that keep their name (``dist/manifests/``, the admin API's ``/admin/manifests``)."""
    return re.sub(r"\S*/manifests\S*", "PATH", text)


def test_no_help_text_calls_the_bundle_or_the_dynamic_templates_manifests(functions):
    for name, verb in cli.VERBS.items():
        assert "manifests" not in _without_paths(verb.help), name
    for name, parser in _verbs().items():
        if name in cli.ALIASES:
            continue
        for action in parser._actions:
            if action.help and action.help is not argparse.SUPPRESS:
                words = _without_paths(re.sub(r"older name: --[a-z-]+", "", action.help))
                assert "manifests" not in words, (name, action.option_strings, action.help)
    for obj, fns in daggermod.objects().items():
        for fn_name, fn in fns.items():
            texts = [fn.doc or "", *(p.doc or "" for p in fn.params.values())]
            assert all("manifests" not in _without_paths(t) for t in texts), (obj, fn_name, texts)


def _dagger_call_lines() -> list[tuple[str, str]]:
    files = [REPO / "README.md", REPO / ".gitlab-ci.yml", *sorted((REPO / "docs").glob("*.md"))]
    return [(path.name, line) for path in files for line in path.read_text(encoding="utf-8").splitlines()
            if "dagger call" in line]


def test_no_dagger_call_line_says_manifests():
    lines = _dagger_call_lines()
    assert any("upload-bundle" in line for _, line in lines)
    assert [(name, line) for name, line in lines if "manifests" in _without_paths(line)] == []


def test_the_child_pipeline_uploads_the_bundle_in_a_job_named_for_it():
    source = inspect.getsource(child_pipeline)
    assert child_pipeline.JOB_ACTIONS["upload"] == "upload_bundle"
    assert '"upload-bundle"' in source and "upload-manifests" not in source and "upload_manifests" not in source


# --------------------------------------------------------------------------- the admin API token


def test_the_admin_api_token_is_admin_token_with_the_old_flags_as_aliases(functions):
    upload = _option("upload-bundle", "--admin-token")
    assert upload.option_strings == ["--admin-token", "--token"] and "older name: --token" in upload.help
    deploy = _option("deploy", "--admin-token")
    assert deploy.option_strings == ["--admin-token", "--upload-manifests"]
    assert "older name: --upload-manifests" in deploy.help
    assert upload.dest == deploy.dest == "admin_token"
    for flag in ("--admin-token", "--token"):
        assert cli.build_parser(["upload-bundle"]).parse_args(
            ["upload-bundle", "--env", "dev", flag, "env:T"]).admin_token == "env:T"
    for flag in ("--admin-token", "--upload-manifests"):
        assert cli.build_parser(["deploy"]).parse_args(["deploy", "--env", "dev", flag, "env:T"]).admin_token == "env:T"
    for key in (("Environment", "upload_bundle"), ("Environment", "deploy"), ("Component", "deploy")):
        assert "admin_token" in functions[key] and not {"token", "upload_manifests"} & functions[key], key


def test_no_message_names_the_old_token_flags():
    src = REPO / "dagger" / "src" / "faas_deployment"
    found = [(path.relative_to(src).as_posix(), n) for path in sorted(src.rglob("*.py"))
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if re.search(r"--upload-manifests|--token\b", line) and "older name" not in line
             and path.name != "cli_flags.py"]
    assert found == []


def test_the_old_token_flag_runs_the_upload_and_is_refused_inside_another_flag(tmp_path, monkeypatch, capsys):
    """``--token``, the older name, is the same flag: its value is refused inside ``--admin-url`` by the new name."""
    monkeypatch.setenv("ADMIN_TOKEN_WORDS", "s3cr3t-value")
    code = cli.main(["--source", str(REPO), "upload-manifests", "--env", "dev", "--token", "env:ADMIN_TOKEN_WORDS",
                     "--admin-url", "http://127.0.0.1:9/s3cr3t-value", "--timeout", "1",
                     "--out", str(tmp_path / "b.zip")])
    err = capsys.readouterr().err
    assert code == 1 and "--admin-token" in err and "s3cr3t-value" not in err


# --------------------------------------------------------------------------- objects and repository


def test_publish_artifact_takes_objects_with_manifests_as_alias(functions):
    action = _option("publish-artifact", "--objects")
    assert action.option_strings == ["--objects", "--manifests"] and "older name: --manifests" in action.help
    for flag in ("--objects", "--manifests"):
        assert cli.build_parser(["publish-artifact"]).parse_args(
            ["publish-artifact", "--env", "dev", flag, "d"]).objects == "d"
    assert "objects" in functions["Component", "publish_artifact"]
    assert "manifests" not in functions["Component", "publish_artifact"]
    assert "objects_dir" in inspect.signature(door.artifacts.publish_artifact).parameters
    assert "manifests_dir" not in inspect.signature(door.artifacts.publish_artifact).parameters


@pytest.mark.parametrize("verb", ["publish-artifact", "retire-artifact"])
def test_the_artifact_verbs_call_their_oci_repository_repository(verb, functions):
    action = _option(verb, "--repository")
    assert action.option_strings == ["--repository", "--registry"] and "older name: --registry" in action.help
    extra = ["--component", "c"] if verb == "retire-artifact" else []
    for flag in ("--repository", "--registry"):
        assert cli.build_parser([verb]).parse_args(
            [verb, "--env", "dev", *extra, flag, "oci://h/p"]).repository == "oci://h/p"
    for key in (("Environment", "publish_artifacts"), ("Component", "publish_artifact"),
                ("Component", "retire_artifact")):
        assert "repository" in functions[key] and "registry" not in functions[key], key


def test_the_repository_root_keeps_registry():
    for verb in ("publish", "release", "check", "deploy"):
        assert _option(verb, "--registry").option_strings == ["--registry"]


def test_the_git_checkout_argument_is_checkout(functions):
    for key in (("FaasDeployment", "check"), ("FaasDeployment", "plan"), ("FaasDeployment", "child_pipeline"),
                ("FaasDeployment", "promote"), ("Component", "bump_merge_request")):
        assert "checkout" in functions[key] and "repository" not in functions[key], key


# --------------------------------------------------------------------------- the child pipeline


def test_what_writes_the_child_pipeline_is_named_for_it(functions):
    assert ("FaasDeployment", "child_pipeline") in functions and ("FaasDeployment", "pipeline") not in functions
    action = _option("plan", "--child-pipeline")
    assert action.option_strings == ["--child-pipeline", "--pipeline"] and "older name: --pipeline" in action.help
    for flag in ("--child-pipeline", "--pipeline"):
        assert cli.build_parser(["plan"]).parse_args(["plan", flag, "c.yml"]).child_pipeline_file == "c.yml"
    lines = [line for _, line in _dagger_call_lines()]
    assert any("dagger call child-pipeline " in line for line in lines)
    calls = [line.split("dagger call", 1)[1].split("`")[0].split() for line in lines]
    assert not any("pipeline" in words for words in calls)


def test_the_old_child_pipeline_flag_writes_the_same_file(tmp_path, capsys):
    new, old = tmp_path / "new.yml", tmp_path / "old.yml"
    common = ["--source", str(REPO), "plan", "--base", "HEAD", "--ref", "main", "--default-branch", "main"]
    assert cli.main([*common, "--child-pipeline", str(new)]) == 0
    assert cli.main([*common, "--pipeline", str(old)]) == 0
    assert new.read_bytes() == old.read_bytes() and new.stat().st_size > 0
