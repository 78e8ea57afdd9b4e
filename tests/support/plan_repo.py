"""Throwaway git repositories for ``plan``: the project's files on ``main``, pushed to a bare ``origin``.

A :class:`PlanRepo` holds ``env/``, ``.gitlab-ci.yml``, ``README.md`` and the embedded
chart template at its repository path (so a template change is a change in the
repository, as in the project), committed on ``main`` and pushed to a real bare
``origin`` whose ``HEAD`` is set. Tests then branch, edit and commit as a developer
would, and plan between commits.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from faas_deployment.charts import config
from faas_deployment.gitlab.plan import TEMPLATE_IN_REPOSITORY

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BRANCH = "main"


def git_env(home: Path) -> dict[str, str]:
    return {
        **os.environ, "HOME": str(home), "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "plan test", "GIT_AUTHOR_EMAIL": "plan@example.org",
        "GIT_COMMITTER_NAME": "plan test", "GIT_COMMITTER_EMAIL": "plan@example.org",
    }


class PlanRepo:
    """A work tree ``work`` with a bare ``origin``; ``git()`` runs git in the work tree."""

    def __init__(self, root: Path, envs: list[str] | None = None):
        self.root = root
        home = root / "home"
        home.mkdir(parents=True)
        self.env = git_env(home)
        self.origin, self.work = root / "origin.git", root / "work"
        subprocess.run(["git", "init", "-q", "--bare", "-b", DEFAULT_BRANCH, str(self.origin)], env=self.env,
                       check=True)
        self.work.mkdir()
        shutil.copytree(REPO / "env", self.work / "env")
        for name in (".gitlab-ci.yml", "README.md", "dagger.json"):
            shutil.copy2(REPO / name, self.work / name)
        shutil.copytree(config.EMBEDDED_TEMPLATE, self.work / TEMPLATE_IN_REPOSITORY)
        self.git("init", "-q", "-b", DEFAULT_BRANCH)
        self.commit("baseline")
        self.git("remote", "add", "origin", str(self.origin))
        self.git("push", "-q", "origin", DEFAULT_BRANCH)
        self.git("remote", "set-head", "origin", DEFAULT_BRANCH)

    def git(self, *args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=self.work, env=self.env, capture_output=True, text=True)
        assert proc.returncode == 0, f"git {args}: {proc.stderr}"
        return proc.stdout.strip()

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")

    def path(self, relative: str) -> Path:
        return self.work / relative

    def edit(self, relative: str, old: str, new: str) -> None:
        path = self.path(relative)
        text = path.read_text()
        assert old in text, f"{old!r} not in {relative}"
        path.write_text(text.replace(old, new, 1))

    def append(self, relative: str, line: str) -> None:
        path = self.path(relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fh.write(line + "\n")
