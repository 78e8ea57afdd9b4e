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

Every network step (:class:`Remote`: a fetch, a push) runs within one
overall deadline (:mod:`deadline`): each connect and read waits at most the time
left, and the step itself is waited for in a daemon thread, so a remote that
drips one byte a second ends in :class:`deadline.DeadlineExceeded`. A remote
that answers a redirect is not followed (the credentials go only to the URL the
user gave), and anything that is not git's protocol (an HTML login page, a
truncated answer, garbage) ends in one :class:`UserError` naming the remote,
never in a dulwich traceback.
"""

from __future__ import annotations

import re
import stat
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import dulwich.errors
import urllib3
from dulwich.client import (
    HTTPProxyUnauthorized,
    HTTPUnauthorized,
    default_urllib3_manager,
    get_transport_and_path,
)
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository
from dulwich.object_store import commit_tree_changes, tree_lookup_path
from dulwich.objects import Blob, Commit, ObjectID
from dulwich.repo import Repo

from ..core.deadline import Deadline, DeadlineExceeded, run
from ..core.errors import UserError
from ..core.secrets import SecretValue, redact

#: The user name sent with a token over HTTP(S) (GitLab: any non-empty name works).
TOKEN_USER = "oauth2"


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
        return cast(Commit, repo[repo.head()])
    except KeyError:
        raise UserError(f"{repo.path}: HEAD has no commit (commit something first)") from None


def file_at(repo: Repo, commit: Commit, path: str) -> bytes | None:
    """The bytes of ``path`` (``/``-separated) in ``commit``, or None when absent."""
    try:
        _, sha = tree_lookup_path(repo.object_store.__getitem__, commit.tree, path.encode())
    except KeyError:
        return None
    return cast(Blob, repo[sha]).data


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


#: What a remote that is not a git server, or breaks off, makes dulwich and urllib3 raise.
_REMOTE_FAULTS = (
    dulwich.errors.GitProtocolError, dulwich.errors.HangupException, dulwich.errors.ChecksumMismatch,
    dulwich.errors.ObjectFormatException, dulwich.errors.ApplyDeltaError, dulwich.errors.FileFormatException,
    OSError, EOFError, urllib3.exceptions.HTTPError, AssertionError, ValueError, KeyError, IndexError, TypeError,
    zlib.error,
)


# The urllib3 pool managers given to dulwich never follow a redirect: the answer comes back
# as it is. dulwich would follow one (urllib3's default) and rebase the remote's URL on the
# new location; here a redirect is an error naming where it pointed.
class _PoolManager(urllib3.PoolManager):
    def urlopen(  # type: ignore[override]  # urllib3's own PoolManager.urlopen signature
        self, method: str, url: str, redirect: bool = True, **kw: Any
    ) -> urllib3.BaseHTTPResponse:
        return super().urlopen(method, url, redirect=False, **kw)


class _ProxyManager(urllib3.ProxyManager):
    def urlopen(  # type: ignore[override]  # urllib3's own PoolManager.urlopen signature
        self, method: str, url: str, redirect: bool = True, **kw: Any
    ) -> urllib3.BaseHTTPResponse:
        return super().urlopen(method, url, redirect=False, **kw)


@dataclass
class Remote:
    """A git remote reached within ``deadline``: ``url`` (credentials stripped) and the dulwich client.

    Built by :func:`connect`. Each method is one network step; each raises
    UserError naming the remote URL (never the token), DeadlineExceeded when the
    deadline passes.
    """

    url: str
    client: object
    path: str
    token: SecretValue | None
    deadline: Deadline

    def _step(self, what: str, fn):
        try:
            return run(fn, self.deadline, f"git {what} {self.url}", "the git remote")
        except DeadlineExceeded:
            raise
        except HTTPUnauthorized:
            raise UserError(f"git {what} {self.url}: the remote refused the credentials (a token with "
                            f"write_repository scope is needed)") from None
        except HTTPProxyUnauthorized:
            raise UserError(f"git {what} {self.url}: the proxy refused the credentials") from None
        except NotGitRepository:
            raise UserError(f"git {what} {self.url}: no git repository there (HTTP 404 or not a repository); "
                            f"check --remote") from None
        except UserError:
            raise
        except _REMOTE_FAULTS as exc:  # what dulwich or the transport raise: one clear line, no traceback
            raise UserError(f"git {what} {self.url}: {_explain(exc, self.token)}") from None

    def fetch(self, repo: Repo, wanted: Callable[[bytes], bool]) -> dict[bytes, bytes]:
        """Fetch the objects of the refs ``wanted`` accepts into ``repo``'s object store (no local ref moves).

        Returns:
            Every remote ref (name -> commit id).
        """
        def determine_wants(refs, depth=None):
            return [sha for name, sha in refs.items()
                    if wanted(name) and not name.endswith(b"^{}") and sha not in repo.object_store]

        result = self._step("fetch", lambda: self.client.fetch(  # type: ignore[attr-defined]
            self.path, repo, determine_wants=determine_wants))
        return dict(getattr(result, "refs", None) or {})

    def push(self, repo: Repo, ref: bytes, new: bytes, *, expected: bytes | None) -> bool:
        """Point the remote's ``ref`` at ``new`` if it still holds ``expected`` (None: absent).

        Git's receive-pack applies the update only while the ref still holds the
        old value its advertisement showed (the ``<old> <new> <ref>`` command), so a
        commit pushed by someone else meanwhile is never overwritten: that is a
        UserError, and so is a refused update (e.g. a protected branch).

        Returns:
            False when the remote already held ``new`` (nothing sent).
        """
        seen: dict[bytes, bytes] = {}

        def update_refs(refs):
            seen.update(refs)
            if refs.get(ref) == new or refs.get(ref) != expected:
                return dict(refs)  # nothing to do, or the remote moved since it was read: send nothing
            return {**refs, ref: new}

        result = self._step("push to", lambda: self.client.send_pack(  # type: ignore[attr-defined]
            self.path, update_refs, generate_pack_data=repo.generate_pack_data))
        branch = ref.decode().removeprefix("refs/heads/")
        if seen.get(ref) == new:
            return False
        if seen.get(ref) != expected:
            raise UserError(f"git push to {self.url}: {branch} moved on the remote while this run read it "
                            f"(now {(seen.get(ref) or b'absent').decode()[:12]}); nothing was overwritten, run again")
        status = (getattr(result, "ref_status", None) or {}).get(ref)
        if status:
            raise UserError(f"git push to {self.url}: {branch} refused: {redact(str(status), self.token)}")
        return True


def _explain(exc: BaseException, token: SecretValue | None) -> str:
    """What went wrong with a remote, in words: a redirect, an answer that is not git's protocol, a transport error."""
    text = redact(str(exc), token)
    redirect = re.search(r"unexpected http resp (30[1278])", text)
    if redirect:
        return (f"the remote answered HTTP {redirect.group(1)} (a redirect), which is not followed: credentials "
                f"go only to the URL given; give the repository's own URL as --remote")
    if re.search(r"NewConnectionError|Failed to establish|Connection refused|Name or service not known", text):
        return "cannot connect (refused, unreachable or name not resolved)"
    if re.search(r"ConnectTimeout|ReadTimeout|timed out", text):
        return "no answer in time (the deadline's share of one wait passed)"
    status = re.search(r"unexpected http resp (\d{3})", text)
    if status:
        return f"the remote answered HTTP {status.group(1)}; expected git's smart HTTP protocol"
    if isinstance(exc, (GitProtocolError, HangupException, AssertionError, ValueError, KeyError, IndexError)):
        return (f"the answer is not git's protocol (an HTML login page, a proxy's page or a truncated answer?); "
                f"check --remote ({type(exc).__name__})")
    return f"{type(exc).__name__}: {text[:200]}"


def connect(repo: Repo, remote: str, *, token: SecretValue | None, deadline: Deadline) -> Remote:
    """The :class:`Remote` of ``remote`` (a remote name of ``repo`` or a URL/path), bounded by ``deadline``.

    Over ``http(s)`` the token is dulwich's password (user :data:`TOKEN_USER`),
    sent only to that origin; redirects are not followed; each connect and read
    waits at most the time left (capped at :data:`deadline.REQUEST_TIMEOUT_CAP`).

    Raises:
        UserError: ``remote`` is neither a configured remote nor a URL/path.
    """
    url = remote_url(repo, remote)
    kwargs: dict[str, object] = {}
    if url.startswith(("http://", "https://")):
        connect_s, read_s = deadline.request_timeout()
        manager = default_urllib3_manager(
            repo.get_config_stack(), pool_manager_cls=_PoolManager, proxy_manager_cls=_ProxyManager, base_url=url,
            timeout=None)
        manager.connection_pool_kw["timeout"] = urllib3.Timeout(connect=connect_s, read=read_s)
        manager.connection_pool_kw["retries"] = urllib3.Retry(total=0, redirect=0, raise_on_redirect=False)
        kwargs["pool_manager"] = manager
        if token is not None:
            kwargs.update(username=TOKEN_USER, password=token.reveal())
    try:
        client, path = get_transport_and_path(url, **kwargs)  # type: ignore[arg-type]
    except (ValueError, NotImplementedError, urllib3.exceptions.HTTPError) as exc:  # a URL dulwich cannot use
        raise UserError(f"--remote {url}: not a git remote dulwich can reach ({type(exc).__name__})") from None
    return Remote(url, client, path, token, deadline)


def foreign_commits(repo: Repo, tip: bytes, base: bytes, author: str) -> list[Commit]:
    """The commits reachable from ``tip`` and not from ``base`` whose committer is not ``author``.

    ``author`` (``Name <email>``) is the identity :func:`commit_files` writes as
    committer: a commit with another committer was written by someone else (a
    reviewer's fix on a merge request branch).
    """
    walker = repo.get_walker(include=[ObjectID(tip)], exclude=[ObjectID(base)])
    return [entry.commit for entry in walker if entry.commit.committer != author.encode()]


def contains(repo: Repo, tip: bytes, commit: bytes) -> bool:
    """``commit`` is ``tip`` or one of its ancestors (in ``repo``'s object store)."""
    return any(entry.commit.id == commit for entry in repo.get_walker(include=[ObjectID(tip)]))


def log_of(repo: Repo, commit: Commit, path: str, *, limit: int = 50) -> list[tuple[Commit, bytes | None]]:
    """The commits from ``commit`` back that changed ``path``, newest first, with its content there.

    At most ``limit`` entries; stops at a shallow clone's boundary.
    """
    out: list[tuple[Commit, bytes | None]] = []
    for entry in repo.get_walker(include=[commit.id], paths=[path.encode()], max_entries=limit):
        out.append((entry.commit, file_at(repo, entry.commit, path)))
    return out
