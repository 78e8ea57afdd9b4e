"""A checkout as a CI job sees it: a git clone of the project whose ``origin`` is a bare repository."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from support.repo_tree import REPO_ROOT


def git(checkout: Path, *args: str, cwd: Path | None = None) -> str:
    """``git *args`` in ``cwd`` (default ``checkout``) as user ``t``; its standard output, stripped."""
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=cwd or checkout,
                          check=True, capture_output=True, text=True).stdout.strip()


def clone_with_origin(checkout: Path, extra: tuple[str, ...] = ()) -> tuple[Path, str]:
    """Make ``checkout`` what a CI job has: a git clone of the project (``origin`` a bare repository).

    Two commits on ``main``: the project (``env/``, ``dagger.json``, ``.gitlab-ci.yml``
    and the ``extra`` paths), then a change (dev's operator bumped, a dev ``dynamic/``
    file edited). Returns the bare origin and the first commit (the push's "before" SHA).
    """
    shutil.rmtree(checkout / ".git", ignore_errors=True)  # the clutter the default-source test plants
    shutil.copy(REPO_ROOT / ".gitlab-ci.yml", checkout / ".gitlab-ci.yml")
    git(checkout, "init", "-q", "-b", "main")
    git(checkout, "add", "env", "dagger.json", ".gitlab-ci.yml", *extra)
    git(checkout, "commit", "-qm", "project")
    before = git(checkout, "rev-parse", "HEAD")
    config = checkout / "env" / "dev" / "operator" / "cookiecutter-config.yaml"
    config.write_text(config.read_text().replace('chart_version: "1.0.3"', 'chart_version: "1.0.4"'))
    with (checkout / "env" / "dev" / "operator" / "dynamic" / "configmap.yaml").open("a") as fh:
        fh.write("# tuned\n")
    git(checkout, "commit", "-qam", "dev operator 1.0.4, dev manifests")
    origin = checkout.parent / "origin.git"
    git(checkout, "clone", "-q", "--bare", str(checkout), str(origin), cwd=checkout.parent)
    git(checkout, "remote", "add", "origin", str(origin))
    git(checkout, "fetch", "-q", "origin")
    return origin, before
