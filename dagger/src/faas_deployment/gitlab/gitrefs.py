"""Git refs for ``plan``: pick the diff base and turn a ref into a tree on disk.

Plain ``git`` subprocess calls, not a binding library: the CLI runs where a checkout
exists, hence git; the three operations needed (``rev-parse``, ``merge-base``,
``archive``) are stable plumbing; GitPython would shell out to the same binary and
pygit2 adds a compiled dependency to the Dagger runtime for nothing (there, the engine
reads git itself: ``Directory.as_git()``).

Base rule (GitLab predefined variables, docs "Predefined CI/CD variables"):

1. ``CI_MERGE_REQUEST_DIFF_BASE_SHA`` (merge request pipelines);
2. else ``CI_COMMIT_BEFORE_SHA``, unless it is all zeros (a branch's first push, or
   a pipeline that is not a push), in which case the merge base with the default
   branch ``origin/<CI_DEFAULT_BRANCH>`` (or the local branch of that name);
3. else (outside CI) the previous commit ``HEAD~1``; a root commit has no base:
   everything is new.
"""

from __future__ import annotations

import io
import re
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..charts import repository_settings
from ..core import layout
from ..core.errors import UserError
from .plan import TEMPLATE_IN_REPOSITORY, Plan, make_plan, side

ZERO_SHA = re.compile(r"^0+$")
#: What of a tree ``plan`` reads (the rest of the repository is not exported).
PLANNED_PATHS = (f"{layout.ENV_ROOT}/", f"{TEMPLATE_IN_REPOSITORY.as_posix()}/",
                 f"{repository_settings.TEMPLATES_DIR}/", repository_settings.FILE_NAME)


def git(repo: Path, *args: str, input: bytes | None = None) -> bytes:
    """Run ``git -C repo args``; UserError with git's message when it fails."""
    try:
        proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, input=input, timeout=120)
    except FileNotFoundError:
        raise UserError("git is not installed: plan reads the change from git (install git)") from None
    if proc.returncode != 0:
        raise UserError(f"git {' '.join(args)} in {repo}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def rev(repo: Path, ref: str) -> str | None:
    """The commit SHA ``ref`` names in ``repo``, or ``None`` if it names none."""
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").decode().strip() or None
    except UserError:
        return None


def default_base(repo: Path, environ: Mapping[str, str]) -> str | None:
    """The base commit per the module doc's rule; ``None`` when there is none (root commit).

    Raises:
        UserError: a named base (a variable's SHA, the default branch) is not in the
            repository, e.g. a shallow clone: set ``GIT_DEPTH: 0`` on the job.
    """
    for name in ("CI_MERGE_REQUEST_DIFF_BASE_SHA", "CI_COMMIT_BEFORE_SHA"):
        sha = environ.get(name, "")
        if sha and not ZERO_SHA.match(sha):
            found = rev(repo, sha)
            if found is None:
                raise UserError(f"{name}={sha}: commit not in {repo} (a shallow clone? set GIT_DEPTH: 0)")
            return found
    if ZERO_SHA.match(environ.get("CI_COMMIT_BEFORE_SHA", "") or "x"):
        branch = environ.get("CI_DEFAULT_BRANCH") or "main"
        for ref in (f"refs/remotes/origin/{branch}", f"refs/heads/{branch}"):
            if rev(repo, ref):
                return git(repo, "merge-base", ref, "HEAD").decode().strip()
        raise UserError(f"CI_COMMIT_BEFORE_SHA is all zeros and the default branch {branch!r} is not in {repo} "
                        "(fetch it, or set GIT_DEPTH: 0)")
    return rev(repo, "HEAD~1")


def is_sha(ref: str) -> bool:
    """A full commit SHA (Dagger takes a ref as a commit only with 40 hex characters)."""
    return bool(re.fullmatch(r"[0-9a-f]{40}", ref))


def dagger_base_ref(base: str, default_branch: str) -> str:
    """The base for the Dagger ``plan``: ``base``, or ``refs/remotes/origin/<default_branch>`` when it is
    empty or all zeros (then :func:`dagger_base_is_merge_base`: the base is that ref's merge base with ``HEAD``).

    The Dagger runtime has no git binary and the engine resolves a full SHA, a full
    ref name or a local branch name, not ``HEAD~1``, so the previous-commit default
    of :func:`default_base` is not available there: CI passes
    ``${CI_MERGE_REQUEST_DIFF_BASE_SHA:-$CI_COMMIT_BEFORE_SHA}`` and fetches the
    default branch into ``refs/remotes/origin/`` for a branch's first push.
    """
    return f"refs/remotes/origin/{default_branch}" if dagger_base_is_merge_base(base) else base


def dagger_base_is_merge_base(base: str) -> bool:
    """Whether the Dagger ``plan`` compares with the merge base of ``HEAD`` and the default branch.

    True for an empty or all-zeros ``base`` (a branch's first push), as :func:`default_base`
    does for the CLI (``git merge-base``): the tip of a default branch that moved on since
    the branch forked would hold versions the branch never saw. The engine computes it
    with ``GitRef.commonAncestor`` (Dagger API, ``core/schema/git.go``).
    """
    return not base or bool(ZERO_SHA.match(base))


def export_tree(repo: Path, ref: str, dest: Path) -> Path:
    """Write the planned paths (:data:`PLANNED_PATHS`) of commit ``ref`` under ``dest``; returns ``dest``.

    Raises:
        UserError: ``ref`` names no commit of ``repo``.
    """
    sha = rev(repo, ref)
    if sha is None:
        raise UserError(f"--base/--head {ref!r}: no such commit in {repo}")
    dest.mkdir(parents=True, exist_ok=True)
    data = git(repo, "archive", "--format=tar", sha)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(PLANNED_PATHS)]
        tar.extractall(dest, members=members, filter="tar")
    return dest


def plan_repository(repo: Path, base: str | None, head: str | None, template: Path | None,
                    environ: Mapping[str, str], fetch: Callable[[Any], Path] | None = None) -> Plan:
    """The plan of ``repo`` between ``base`` and ``head``.

    Args:
        base: a ref or SHA; ``None``: :func:`default_base` from ``environ``.
        head: a ref or SHA; ``None``: the working tree of ``repo`` as it is.
        template: a user template (``--template``) for both sides; ``None``: each
            side's own (:func:`plan.side`: its ``faas-deployment.yaml``, else embedded).
        fetch: how a side's git template is fetched (:func:`plan.side`).

    Raises:
        UserError: a ref names no commit; git fails; head holds no config.
    """
    repo = Path(repo)
    base_sha = rev(repo, base) if base else default_base(repo, environ)
    if base and base_sha is None:
        raise UserError(f"--base {base!r}: no such commit in {repo}")
    with tempfile.TemporaryDirectory(prefix="faas-plan-trees-") as scratch:
        base_side = side(export_tree(repo, base_sha, Path(scratch) / "base"), template, fetch) if base_sha else None
        head_root = export_tree(repo, head, Path(scratch) / "head") if head else repo
        head_side = side(head_root, template, fetch)
        head_name = (rev(repo, head) or head) if head else "working tree"
        return make_plan(base_side, head_side, base_name=base_sha or "(none)", head_name=head_name)
