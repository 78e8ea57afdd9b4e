"""``check``: its success report, the publishing rules against the local repository, ``--base`` (version increments)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from faas_deployment import door
from faas_deployment.core.errors import ValidationError
from faas_deployment.door import Workspace
from support.plan_repo import PlanRepo
from support.repo_tree import REPO_ROOT, config_file, get_scalar, set_scalar

DIGEST = r"sha256:[0-9a-f]{64}"


def test_the_success_report_names_every_chart_rule_and_manifest_set(repo_copy: Path) -> None:
    report = door.check.check(Workspace(repo_copy)).text.splitlines()
    versions = {(e, c): get_scalar(config_file(repo_copy, e, c), "chart_version")
                for e in ("dev", "prod") for c in ("controller", "operator")}
    expected = []
    for env in ("dev", "prod"):
        expected += [rf"ok {env}/{c}: faas-{c} {re.escape(versions[env, c])} \({DIGEST}\)" for c in
                     ("controller", "operator")]
        # The publishing decision against the (empty) local repository: nothing there yet.
        expected += [rf"would push \S*faas-{c}-{re.escape(versions[env, c])}\.tgz@{DIGEST}" for c in
                     ("controller", "operator")]
        expected += [rf"ok {env}: dynamic manifests"]
    assert len(report) == len(expected), report
    for line, pattern in zip(report, expected, strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)
    assert not (repo_copy / "dist").exists()  # a check writes nothing


def test_check_applies_the_publishing_rules_to_the_local_repository(repo_copy: Path, run_cli) -> None:
    code, out, err = run_cli("--source", str(repo_copy), "release", "--env", "dev")
    assert code == 0, err
    code, out, err = run_cli("--source", str(repo_copy), "check", "--env", "dev")
    assert code == 0, err
    assert re.search(r"^unchanged \S*faas-operator-", out, re.MULTILINE), out

    # The chart changes, its version does not: refused without any registry.
    set_scalar(config_file(repo_copy, "dev", "operator"), "replica_count", "2")
    code, out, err = run_cli("--source", str(repo_copy), "check", "--env", "dev")
    assert code == 1
    assert "env/dev/operator/cookiecutter-config.yaml" in err and "chart_version" in err, err
    assert "Traceback" not in err


@pytest.fixture
def repo(tmp_path: Path) -> PlanRepo:
    return PlanRepo(tmp_path / "repo")


def test_base_refuses_a_changed_chart_without_a_higher_version(repo: PlanRepo, run_cli) -> None:
    base = repo.git("rev-parse", "HEAD")
    operator = config_file(repo.work, "dev", "operator")
    set_scalar(operator, "replica_count", "2")
    code, out, err = run_cli("--source", str(repo.work), "check", "--env", "dev", "--base", base)
    assert code == 1
    assert ("env/dev/operator/cookiecutter-config.yaml: default_context.chart_version: compared with "
            f"{base}: ") in err
    assert "without a chart_version bump" in err and "raise chart_version above the base's" in err
    problems = [line for line in err.splitlines() if line.startswith("  - ")]
    assert len(problems) == 1 and "env/dev/operator/" in problems[0]  # the untouched controller is not refused

    # A version lower than the base's is refused too.
    old = get_scalar(operator, "chart_version")
    major, minor, patch = map(int, old.split("."))
    set_scalar(operator, "chart_version", f"{major}.{minor}.{patch - 1}" if patch else f"{major}.{minor - 1}.0")
    with pytest.raises(ValidationError, match="lower than"):
        door.check.check(Workspace(repo.work), "dev", base=base)

    # Bumped: the check passes and says against what.
    set_scalar(operator, "chart_version", f"{major}.{minor}.{patch + 1}")
    code, out, err = run_cli("--source", str(repo.work), "check", "--env", "dev", "--base", base)
    assert code == 0, err
    assert out.splitlines()[-1] == f"ok dev: chart versions increase over {base}"


def test_base_accepts_a_change_that_does_not_reach_the_chart(repo: PlanRepo) -> None:
    operator = config_file(repo.work, "dev", "operator")
    operator.write_text(operator.read_text() + "# a comment changes no chart\n")
    report = door.check.check(Workspace(repo.work), "dev", base="HEAD").text
    assert report.splitlines()[-1] == "ok dev: chart versions increase over HEAD"


def test_base_that_names_no_commit_is_a_clear_error(repo: PlanRepo, run_cli) -> None:
    code, out, err = run_cli("--source", str(repo.work), "check", "--base", "no-such-ref")
    assert code == 1
    assert "'no-such-ref': no such commit" in err and "Traceback" not in err


def test_a_problem_names_its_file_once(repo_copy: Path) -> None:
    set_scalar(config_file(repo_copy, "dev", "operator"), "chart_version", "1.0.3-rc.1")
    ws = Workspace(repo_copy)
    with pytest.raises(ValidationError) as caught:
        door.charts.publish_charts(ws, "dev", door.charts.local_target(ws, "dev"), prerelease="mr.4.2")
    shown = "env/dev/operator/cookiecutter-config.yaml"
    lines = [line for line in str(caught.value).splitlines() if shown in line]
    assert len(lines) == 1 and lines[0].count(shown) == 1, lines
    assert "pre-release versions (-rc.1) are published only by merge request pipelines" in lines[0]


def test_dagger_check_base_reads_the_base_from_the_repository(tmp_path: Path) -> None:
    """The Dagger front end: the engine exports the base tree from the repository's .git (no git binary there)."""
    from support.ci_checkout import clone_with_origin, git
    from support.dagger_engine import Engine, EngineRefusal

    work = tmp_path / "checkout"
    shutil.copytree(Path(__file__).resolve().parent.parent / "env", work / "env")
    shutil.copy(Path(__file__).resolve().parent.parent / "dagger.json", work / "dagger.json")
    (work / ".git").mkdir()
    _, before = clone_with_origin(work)  # the second commit bumps dev's operator over `before`
    with Engine(work) as engine:
        out = engine.call(f"dagger call check --env dev --base {before}")
        assert out.splitlines()[-1] == f"ok dev: chart versions increase over {before}"
        head = git(work, "rev-parse", "HEAD")
        set_scalar(config_file(work, "dev", "controller"), "replica_count", "3")
        with pytest.raises(EngineRefusal, match=rf"env/dev/controller/cookiecutter-config.yaml: "
                                                rf"default_context.chart_version: compared with {head}: "):
            engine.call(f"dagger call check --env dev --base {head}")


def test_check_over_many_environments_discovers_them_once(tmp_path: Path, run_cli,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A run walks ``env/`` once, however many environments it checks: each verb discovers the
    environments and components once (the workspace keeps them), not once per environment."""
    example = REPO_ROOT / "env" / "prod" / "operator"
    envs = [f"e{n:02d}" for n in range(12)]
    for env in envs:
        shutil.copytree(example, tmp_path / "env" / env / "api", ignore=shutil.ignore_patterns("dynamic"))
    env_dir = str(tmp_path / "env")
    walks: list[str] = []
    real = os.scandir

    def counting(path=".", *args, **kwargs):
        if not isinstance(path, int) and os.fspath(path) == env_dir:
            walks.append(env_dir)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", counting)
    code, out, err = run_cli("--source", str(tmp_path), "check")
    assert code == 0, err
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith("ok ")] == \
        [f"ok {env}/api" for env in envs]
    assert len(walks) == 1, f"{len(walks)} walks of env/ for one check over {len(envs)} environments"
