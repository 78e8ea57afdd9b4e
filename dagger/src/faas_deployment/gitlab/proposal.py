"""Committing a change and proposing it as a merge request: the branch, the push, the merge request.

A :class:`Proposal` says how a change becomes a merge request (the GitLab project,
the target branch, the git remote, labels, the commit author, the run's deadline).
:func:`remote_base` fetches the remote's target branch (:mod:`.gitops`, within the
deadline), so a change is computed on the remote's config, not the working tree's.
:func:`propose` commits the files over the target's tip (deterministic: same base
and change, same commit id), puts the commit on its branch and opens or updates the
merge request (:mod:`.merge_request`), closing older ones of the same prefix. The
branch is never forced over a commit this code did not write
(:func:`_publish_branch`): a branch that already holds the change (a reviewer's
commits on top included) is kept as it is; one with someone else's commits and
another change is refused (:class:`~faas_deployment.gitlab.promoted_change.PromotionRefused`),
saying which commits. Used by ``promote`` and ``bump --merge-request``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.deadline import Deadline
from ..core.errors import UserError
from .promoted_change import PromotionRefused

if TYPE_CHECKING:  # python-gitlab and dulwich are imported by the functions that use them (CLI start-up)
    from .merge_request import GitLabProject, MergeRequestResult

#: Labels of a merge request, unless the caller gives others.
DEFAULT_LABELS = ("promotion",)
DEFAULT_AUTHOR = "faas-deployment <faas-deployment@noreply.invalid>"
#: Default overall deadline of every git and GitLab step of ``promote``/``bump --merge-request``, seconds.
DEFAULT_TIMEOUT = 120.0


@dataclass(frozen=True)
class Proposal:
    """How a change becomes a merge request: the GitLab project, the branch it targets,
    the git remote to push to, labels, commit author (``Name <email>``, also the
    committer: how this code knows its own commits), the pipeline URL quoted as
    evidence, and the run's overall deadline."""

    gitlab: GitLabProject
    target_branch: str = "main"
    remote: str = "origin"
    labels: tuple[str, ...] = DEFAULT_LABELS
    author: str = DEFAULT_AUTHOR
    pipeline_url: str = ""
    deadline: Deadline | None = None  # every git and GitLab step of the run (None: DEFAULT_TIMEOUT from the first)

    def limit(self) -> Deadline:
        """The run's deadline (one for every step of every component)."""
        if self.deadline is None:
            object.__setattr__(self, "deadline", Deadline(DEFAULT_TIMEOUT))
        return self.deadline  # type: ignore[return-value]


@dataclass
class RemoteBase:
    """The remote's target branch, fetched: the repository, the remote, its refs and the target's tip commit."""

    repo: Any
    remote: Any
    refs: dict[bytes, bytes]
    base: Any

    def text(self, path: str) -> str | None:
        """``path`` as the target branch has it, or None when absent there."""
        from . import gitops

        data = gitops.file_at(self.repo, self.base, path)
        return None if data is None else data.decode("utf-8", "replace")

    def close(self) -> None:
        self.repo.close()


def remote_base(source: Path, proposal: Proposal, branch_prefix: str) -> RemoteBase:
    """Fetch ``proposal.target_branch`` and the branches starting with ``branch_prefix`` from the remote.

    Raises:
        UserError: not a git repository, the remote cannot be reached, answers
            something else than git, or has no such target branch.
        DeadlineExceeded: the remote had not answered by the deadline.
    """
    from . import gitops

    repo = gitops.open_repository(source)
    try:
        remote = gitops.connect(repo, proposal.remote, token=proposal.gitlab.token, deadline=proposal.limit())
        target = f"refs/heads/{proposal.target_branch}".encode()
        prefix = f"refs/heads/{branch_prefix}".encode()
        refs = remote.fetch(repo, lambda name: name == target or name.startswith(prefix))
        if target not in refs:
            raise UserError(f"--target-branch {proposal.target_branch}: no such branch on {remote.url}")
    except BaseException:
        repo.close()
        raise
    return RemoteBase(repo, remote, refs, repo[refs[target]])


def _publish_branch(at: RemoteBase, commit: Any, branch: str, author: str) -> str:
    """Put ``commit`` on the remote's ``branch`` without ever overwriting a commit another wrote.

    - the branch holds ``commit``: nothing sent (``unchanged``);
    - it holds ``commit`` under commits added on top (a reviewer's): nothing sent, they stay (``kept``);
    - absent, or every commit on it since the target's tip is this code's own
      (committer ``author``): pushed, a compare-and-swap on the value read
      (:meth:`gitops.Remote.push`);
    - otherwise: :class:`PromotionRefused` naming the other commits.

    Returns:
        What happened to the branch, for the result line.
    """
    from . import gitops

    ref = f"refs/heads/{branch}".encode()
    old = at.refs.get(ref)
    if old == commit.id:
        return f"branch {branch} unchanged"
    if old is not None and gitops.contains(at.repo, old, commit.id):
        return f"branch {branch} kept as it is (it holds this change, with commits added on it)"
    if old is not None:
        others = gitops.foreign_commits(at.repo, old, at.base.id, author)
        if others:
            listed = "; ".join(f"{c.id.decode()[:12]} {c.message.decode('utf-8', 'replace').splitlines()[0][:60]!r} "
                               f"by {c.committer.decode('utf-8', 'replace')}" for c in others[:5])
            raise PromotionRefused(
                f"{branch} on {at.remote.url} has {len(others)} commit(s) this pipeline did not write ({listed}), "
                f"and this run's change differs from it: they are not overwritten. Merge or close its merge "
                f"request, or rebase it by hand, then run again")
    at.repo.refs[ref] = commit.id
    at.remote.push(at.repo, ref, commit.id, expected=old)
    return f"branch {branch} {'pushed' if old is None else 'replaced (only commits of this pipeline were on it)'}"


def propose(at: RemoteBase, files: dict[str, str], *, branch: str, title: str, description: str,
            proposal: Proposal, supersede_prefix: str, message: str = "") -> tuple[str, MergeRequestResult]:
    """Commit ``files`` (path -> text) on ``branch`` over the remote target's tip, publish it, open or update its MR.

    The commit message is ``title`` and ``message`` (what changed), not the
    description: evidence such as a pipeline URL changes from run to run, the
    commit must not (same base and change, same commit id).

    Returns:
        What happened to the branch (:func:`_publish_branch`) and the merge request.

    Raises:
        PromotionRefused: the branch has commits this code did not write.
        UserError: push refused, GitLab refused (see :mod:`gitops`, :mod:`merge_request`);
            the token never appears in the message.
        DeadlineExceeded: a step had not finished by the deadline.
    """
    from . import gitops
    from .merge_request import MergeRequestSpec, open_or_update

    commit = gitops.commit_files(at.repo, at.base, files, message=f"{title}\n\n{message}\n".replace("\n\n\n", "\n"),
                                 author=proposal.author)
    pushed = _publish_branch(at, commit, branch, proposal.author)
    spec = MergeRequestSpec(branch, proposal.target_branch, title, description, proposal.labels, supersede_prefix)
    return pushed, open_or_update(proposal.gitlab, spec, proposal.limit())

