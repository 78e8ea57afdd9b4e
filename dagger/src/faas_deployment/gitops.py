"""Commit a changed config on a branch and push it: the git side of a merge request.

Pure Python (dulwich), because the Dagger module runtime (``python:<v>-slim``)
has no ``git`` binary and GitPython drives that binary. Nothing touches the
working tree or the checked-out branch: the commit is built from the base
commit's tree with the changed files' blobs replaced, and pushed from a local
ref of the same name.

The commit is deterministic: author, committer and both dates come from the
arguments and the base commit (its committer date), so the same base and the
same change give the same commit id, and a second run pushes nothing new.

Credentials for an ``http(s)`` remote are passed to dulwich's HTTP client as user
name and password (GitLab accepts a token as the password of any user name,
conventionally ``oauth2``), never put into the URL; a URL that already carries
credentials (a GitLab CI checkout's ``origin``) has them stripped first.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from dulwich.client import HTTPUnauthorized, get_transport_and_path
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository
from dulwich.object_store import commit_tree_changes, tree_lookup_path
from dulwich.objects import Blob, Commit
from dulwich.repo import Repo

from .errors import UserError
from .secrets import SecretValue, redact

#: The user name sent with a token over HTTP(S) (GitLab: any non-empty name works).
TOKEN_USER = "oauth2"


@dataclass(frozen=True)
class Pushed:
    """A branch pushed: its name, the commit id, and whether the remote moved."""

    branch: str
    commit: str
    changed: bool


def open_repository(path: Path) -> Repo:
    """The git repository whose working tree is ``path``.

    Raises:
        UserError: ``path`` is not the root of a git working tree.
    """
    try:
        return Repo(str(path))
    except NotGitRepository:
        raise UserError(f"{path}: not a git repository (run from a clone of this repository, with its .git)") from None


def head_commit(repo: Repo) -> Commit:
    """The commit ``HEAD`` points to (the base of every change made here)."""
    try:
        return repo[repo.head()]
    except KeyError:
        raise UserError(f"{repo.path}: HEAD has no commit (commit something first)") from None


def file_at(repo: Repo, commit: Commit, path: str) -> bytes | None:
    """The bytes of ``path`` (``/``-separated) in ``commit``, or None when absent."""
    try:
        _, sha = tree_lookup_path(repo.object_store.__getitem__, commit.tree, path.encode())
    except KeyError:
        return None
    return repo[sha].data


def commit_files(repo: Repo, base: Commit, files: Mapping[str, str], *, message: str, author: str) -> Commit:
    """A commit on top of ``base`` whose tree is ``base``'s with ``files`` (path -> text) replaced.

    Deterministic (see module doc): ``author`` (``Name <email>``) is also the
    committer, both dates are ``base``'s committer date. The objects are stored in
    ``repo``; no ref is moved.
    """
    changes = []
    for path, text in sorted(files.items()):
        blob = Blob.from_string(text.encode("utf-8"))
        repo.object_store.add_object(blob)
        changes.append((path.encode(), stat.S_IFREG | 0o644, blob.id))
    commit = Commit()
    commit.tree = commit_tree_changes(repo.object_store, base.tree, changes)
    commit.parents = [base.id]
    commit.author = commit.committer = author.encode()
    commit.author_time = commit.commit_time = base.commit_time
    commit.author_timezone = commit.commit_timezone = base.commit_timezone
    commit.encoding = b"UTF-8"
    commit.message = message.encode()
    repo.object_store.add_object(commit)
    return commit


def remote_url(repo: Repo, remote: str) -> str:
    """``remote``'s URL from the repository config, or ``remote`` itself when it is a URL or path.

    Credentials in an ``http(s)`` URL's user-info are dropped (see module doc).

    Raises:
        UserError: ``remote`` is neither a configured remote nor a URL/path.
    """
    if re.match(r"^[a-z][a-z0-9+.-]*://|^/", remote):
        url = remote
    else:
        try:
            url = repo.get_config().get((b"remote", remote.encode()), b"url").decode()
        except KeyError:
            raise UserError(f"--remote {remote}: no such git remote in {repo.path} (and not a URL)") from None
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and "@" in parts.netloc:
        parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
        url = urlunsplit(parts)
    return url


def push_branch(repo: Repo, commit: Commit, branch: str, *, remote: str = "origin",
                token: SecretValue | None = None) -> Pushed:
    """Point local and remote ``refs/heads/<branch>`` at ``commit`` (forced: the branch is ours).

    Returns:
        The branch, the commit id, and ``changed=False`` when the remote already had it.

    Raises:
        UserError: the remote is unknown, unreachable, refuses the credentials or the
            update (e.g. a protected branch); the message names the remote URL without
            credentials and never carries the token.
    """
    ref = f"refs/heads/{branch}".encode()
    repo.refs[ref] = commit.id
    url = remote_url(repo, remote)
    credentials = {"username": TOKEN_USER, "password": token.reveal()} if token and url.startswith("http") else {}
    before: dict[bytes, bytes] = {}

    def update_refs(refs):
        before.update(refs)
        return {**refs, ref: commit.id}

    try:
        client, path = get_transport_and_path(url, **credentials)
        result = client.send_pack(path, update_refs, generate_pack_data=repo.generate_pack_data)
    except HTTPUnauthorized:
        raise UserError(f"git push to {url}: the remote refused the credentials (a token with write_repository scope "
                        f"is needed)") from None
    except (GitProtocolError, HangupException, OSError) as exc:
        raise UserError(f"git push to {url}: {redact(str(exc), token)}") from None
    status = (getattr(result, "ref_status", None) or {}).get(ref)
    if status:
        raise UserError(f"git push to {url}: {branch} refused: {redact(str(status), token)}")
    return Pushed(branch, commit.id.decode(), before.get(ref) != commit.id)


def log_of(repo: Repo, commit: Commit, path: str, *, limit: int = 50) -> list[tuple[Commit, bytes | None]]:
    """The commits from ``commit`` back that changed ``path``, newest first, with its content there.

    At most ``limit`` entries; stops at a shallow clone's boundary.
    """
    out: list[tuple[Commit, bytes | None]] = []
    for entry in repo.get_walker(include=[commit.id], paths=[path.encode()], max_entries=limit):
        out.append((entry.commit, file_at(repo, entry.commit, path)))
    return out
