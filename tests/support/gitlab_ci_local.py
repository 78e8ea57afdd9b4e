"""Evaluate ``.gitlab-ci.yml`` rules with the pinned ``gitlab-ci-local`` on throwaway git repositories.

``gitlab-ci-local --list-json`` lists every job with its ``when`` after evaluating
``workflow:rules`` and job ``rules``, ``changes`` included: it diffs the working tree
against ``origin/HEAD``. So each scenario gets its own repository: the project's CI
file, ``dagger.json``, ``README.md`` and ``env/`` committed on ``main`` and pushed to a
bare ``origin`` (whose ``HEAD`` is set), then the scenario's branch checked out and
its files changed and committed. The jobs that run are those whose ``when`` is not
``never``. Install the tool with ``.ci/install-gitlab-ci-local.sh``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GITLAB_CI_LOCAL = REPO / ".ci" / "node" / "node_modules" / ".bin" / "gitlab-ci-local"
DEFAULT_BRANCH = "main"
#: Where the throwaway repository's origin claims to live (no network is used).
ORIGIN_URL = "https://gitlab.example.org/eo4eu-faas/faas-deployment.git"
COPIED = (".gitlab-ci.yml", "dagger.json", "README.md", "env")


@dataclass(frozen=True)
class Scenario:
    """A pipeline: the branch it runs on, files changed against ``origin/HEAD``, pipeline variables.

    ``changes`` maps a path (relative to the repository root) to a line appended to
    it (the file is created if missing). ``ci_text`` replaces the project's
    ``.gitlab-ci.yml`` (to show that a broken file is caught).
    """

    id: str
    branch: str
    changes: tuple[str, ...] = ()
    variables: Mapping[str, str] = field(default_factory=dict)
    ci_text: str | None = None
    validate_dependency_chain: bool = False


@dataclass(frozen=True)
class Outcome:
    returncode: int
    jobs: frozenset[str] | None  # jobs whose when is not "never"; None when the tool failed
    stages: Mapping[str, str]  # job -> stage
    output: str  # stderr (diagnostics) of gitlab-ci-local
    dependency_chain: str | None = None  # output of --validate-dependency-chain, if asked (None: passed or not run)


def _git_env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HOME": str(home),
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "ci test", "GIT_AUTHOR_EMAIL": "ci@example.org",
        "GIT_COMMITTER_NAME": "ci test", "GIT_COMMITTER_EMAIL": "ci@example.org",
    }


def _git(cwd: Path, env: Mapping[str, str], *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True)


def make_repository(root: Path, scenario: Scenario) -> tuple[Path, dict[str, str]]:
    """The scenario's repository under ``root``; returns its path and the environment to run in."""
    home = root / "home"
    home.mkdir(parents=True)
    env = _git_env(home)
    origin, work = root / "origin.git", root / "work"
    _git(root, env, "init", "-q", "--bare", "-b", DEFAULT_BRANCH, str(origin))
    work.mkdir()
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, work / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, work / name)
    if not (work / "README.md").exists():
        (work / "README.md").write_text("# faas-deployment\n")
    if scenario.ci_text is not None:
        (work / ".gitlab-ci.yml").write_text(scenario.ci_text)
    _git(work, env, "init", "-q", "-b", DEFAULT_BRANCH)
    _git(work, env, "config", "user.name", "ci test")  # gitlab-ci-local reads them
    _git(work, env, "config", "user.email", "ci@example.org")
    _git(work, env, "add", "-A")
    _git(work, env, "commit", "-q", "-m", "baseline")
    _git(work, env, "remote", "add", "origin", str(origin))
    _git(work, env, "push", "-q", "origin", DEFAULT_BRANCH)
    _git(work, env, "remote", "set-head", "origin", DEFAULT_BRANCH)
    _git(work, env, "remote", "set-url", "origin", ORIGIN_URL)
    if scenario.branch != DEFAULT_BRANCH:
        _git(work, env, "checkout", "-q", "-b", scenario.branch)
    for path in scenario.changes:
        target = work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a") as fh:
            fh.write(f"\n# changed in scenario {scenario.id}\n")
    if scenario.changes:
        _git(work, env, "add", "-A")
        _git(work, env, "commit", "-q", "-m", f"scenario {scenario.id}")
    return work, env


def run(scenario: Scenario, root: Path) -> Outcome:
    """Build the scenario's repository under ``root`` and list the jobs gitlab-ci-local would run."""
    work, env = make_repository(root, scenario)
    args = [str(GITLAB_CI_LOCAL), "--no-json-schema-validation", "--home", str(root / "home")]
    for name, value in scenario.variables.items():
        args += ["--variable", f"{name}={value}"]
    predefined = [name for name in scenario.variables if name.startswith("CI_")]
    if predefined:  # pipeline source etc.: set on purpose, without the tool's warning on stdout
        args += ["--ignore-predefined-vars", ",".join(predefined)]
    dependency_chain = None
    if scenario.validate_dependency_chain:
        chain = subprocess.run(
            [*args, "--validate-dependency-chain"], cwd=work, env=env, capture_output=True, text=True, timeout=120
        )
        if chain.returncode != 0:
            dependency_chain = chain.stdout + chain.stderr
    proc = subprocess.run([*args, "--list-json"], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        return Outcome(proc.returncode, None, {}, proc.stderr + proc.stdout, dependency_chain)
    try:
        listed = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise RuntimeError(
            f"{scenario.id}: gitlab-ci-local printed no job list: {exc}\n{proc.stdout[:2000]}\n{proc.stderr}"
        ) from None
    jobs = frozenset(job["name"] for job in listed if job["when"] != "never")
    stages = {job["name"]: job["stage"] for job in listed}
    return Outcome(proc.returncode, jobs, stages, proc.stderr, dependency_chain)


def run_all(scenarios: Iterable[Scenario], root: Path, workers: int | None = None) -> dict[str, Outcome]:
    """Run scenarios concurrently (each in ``root/<id>``); ``{id: Outcome}``."""
    scenarios = list(scenarios)
    workers = workers or max(2, os.cpu_count() or 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {s.id: pool.submit(run, s, root / s.id) for s in scenarios}
    outcomes = {}
    for sid, future in futures.items():
        try:
            outcomes[sid] = future.result()
        except (RuntimeError, subprocess.SubprocessError) as exc:  # reported per scenario, not for all
            outcomes[sid] = Outcome(-1, None, {}, str(exc))
    return outcomes
