"""Open or update a GitLab merge request, idempotently (python-gitlab).

One merge request per source branch: :func:`open_or_update` first lists the open
merge requests of the same source and target branch
(``GET /projects/:id/merge_requests?state=opened&source_branch=&target_branch=``)
and updates the first one (``PUT``); otherwise it creates one (``POST``), and
GitLab's answer ``409 Another open merge request already exists for this source
branch: !N`` (``app/services/merge_requests/create_service.rb`` /
``MergeRequests::BaseService`` in GitLab's source, the ``validate_branches``
error) adopts ``!N`` and updates it. Open merge requests whose source branch
starts with ``supersede_prefix`` (older promotions of the same component) are
closed (``PUT state_event=close``). API reference: GitLab's "Merge requests API"
(``doc/api/merge_requests.md``).

The token is sent in the ``PRIVATE-TOKEN`` header by python-gitlab; it is never
put into a URL, a message or an exception text here (errors are redacted).
requests strips only ``Authorization`` on a redirect to another host
(``Session.rebuild_auth``), not ``PRIVATE-TOKEN``, and python-gitlab follows the
``Link`` header's next page wherever it points; so the session here
(:class:`_SameOriginSession`) refuses every request, redirect or page that leaves
the origin of ``--gitlab-url``, before anything is sent. A ``--gitlab-url`` with
user info is refused without being repeated.

Transient errors (5xx, 429, connection resets) are retried by python-gitlab's
``retry_transient_errors`` policy (up to :data:`MAX_RETRIES` times, backoff), all
within one overall deadline (:mod:`deadline`): each request's connect and read
wait at most the time left, and the whole exchange is waited for in a daemon
thread, so a server that is silent or drips one byte a second ends in
:class:`deadline.DeadlineExceeded`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import gitlab
import requests
from gitlab.exceptions import (
    GitlabAuthenticationError,
    GitlabCreateError,
    GitlabError,
    GitlabParsingError,
)

from ..core.deadline import Deadline, run
from ..core.errors import UserError
from ..core.secrets import SecretValue, redact
from ..core.urls import refuse_userinfo

MAX_RETRIES = 3
#: GitLab's 409 text when a source branch already has an open merge request.
_DUPLICATE = re.compile(r"Another open merge request already exists for this source branch: !(\d+)")
#: ``--gitlab-url``: ``http(s)://HOST[:PORT][/PATH]`` (a GitLab under a path prefix), no user info, query or fragment.
_GITLAB_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$")


@dataclass(frozen=True)
class GitLabProject:
    """Where merge requests go: the GitLab base URL (``https://gitlab.example.org``),
    the project (numeric id or ``group/name`` path), and the API token."""

    url: str
    project: str
    token: SecretValue
    timeout: float = 30.0  # seconds, per request


@dataclass(frozen=True)
class MergeRequestSpec:
    """What the merge request says: branches, title, description (Markdown), labels."""

    source_branch: str
    target_branch: str
    title: str
    description: str
    labels: tuple[str, ...] = ()
    supersede_prefix: str = ""


@dataclass(frozen=True)
class MergeRequestResult:
    """``action`` is ``opened``, ``updated`` or ``adopted``; ``closed`` lists superseded ``!iid``s."""

    iid: int
    web_url: str
    action: str
    closed: list[int] = field(default_factory=list)

    @property
    def line(self) -> str:
        closed = f"; closed superseded {', '.join(f'!{i}' for i in self.closed)}" if self.closed else ""
        return f"merge request !{self.iid} {self.action}: {self.web_url}{closed}"


class LeftOrigin(requests.RequestException):
    """A request, redirect or next page that would leave the configured GitLab: not sent."""


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


class _SameOriginSession(requests.Session):
    """A requests session that sends nothing outside one origin (scheme, host, port).

    ``send`` is where requests hands over every request, the redirects it follows
    included (``Session.resolve_redirects``), so the check there covers them all.
    """

    def __init__(self, origin: str):
        super().__init__()
        self.origin = _origin(origin)

    def send(self, request, **kwargs):
        if _origin(request.url or "") != self.origin:
            scheme, host, port = _origin(request.url or "")
            raise LeftOrigin(f"a request would go to {scheme}://{host}:{port}, not to the configured GitLab "
                             f"(a redirect or a next-page link elsewhere): not sent, the token goes only to "
                             f"--gitlab-url; give the URL GitLab itself answers at")
        return super().send(request, **kwargs)

    def get_redirect_target(self, resp):
        target = super().get_redirect_target(resp)
        if target and _origin(requests.compat.urljoin(resp.url, target)) != self.origin:
            scheme, host, port = _origin(requests.compat.urljoin(resp.url, target))
            raise LeftOrigin(f"GitLab answered HTTP {resp.status_code}, a redirect to {scheme}://{host}:{port}: "
                             f"not followed, the token goes only to --gitlab-url; give the URL GitLab itself "
                             f"answers at")
        return target


class _Gitlab(gitlab.Gitlab):
    """python-gitlab with our retry budget and deadline: ``max_retries`` is a per-request argument
    there (default 10, backoff ``0.1 * 2**n`` seconds: ~100 s), ours is :data:`MAX_RETRIES`; each
    request's timeouts are the time left before ``deadline``, and none starts after it."""

    deadline: Deadline | None = None

    def http_request(self, *args, **kwargs):
        kwargs.setdefault("max_retries", MAX_RETRIES)
        if self.deadline is not None:
            self.deadline.check("GitLab API request")
            kwargs["timeout"] = self.deadline.request_timeout(self.timeout or 30.0)
        return super().http_request(*args, **kwargs)


def check_url(url: str) -> str:
    """``url`` if it is a GitLab base URL, ``http(s)://HOST[:PORT][/PATH]``, without a trailing ``/``.

    Raises:
        UserError: user info (``user:token@``), a query, a fragment, a bad port, or
            anything else; the URL is never repeated (it may hold a token).
    """
    refuse_userinfo("--gitlab-url", url)
    match = _GITLAB_URL.match(url)
    port = int(match.group(1)[1:]) if match and match.group(1) else 443
    if not match or not 1 <= port <= 65535:
        raise UserError("--gitlab-url: expected http(s)://HOST[:PORT][/PATH], e.g. $CI_SERVER_URL, without user "
                        "info, query or fragment (the value is not repeated here)")
    return url.rstrip("/")


def _client(where: GitLabProject, deadline: Deadline | None = None) -> gitlab.Gitlab:
    url = check_url(where.url)
    if not where.project:
        raise UserError("--gitlab-project: the project id or path is required (CI: $CI_PROJECT_ID)")
    client = _Gitlab(url, private_token=where.token.reveal(), timeout=where.timeout, retry_transient_errors=True,
                     session=_SameOriginSession(url))
    client.deadline = deadline
    return client


def open_or_update(
    where: GitLabProject, spec: MergeRequestSpec, deadline: Deadline | None = None
) -> MergeRequestResult:
    """Create the merge request ``spec`` describes, or update the open one for its branches.

    Returns:
        The merge request's ``iid``, URL, what was done and the superseded ones closed.

    Raises:
        UserError: GitLab refused the token (401), the project is unknown (404),
            or answered an error after the retries; the message names the HTTP
            status and GitLab's text, never the token.
        DeadlineExceeded: GitLab had not answered everything by ``deadline``.
    """
    gl = _client(where, deadline)
    if deadline is None:
        return _open_or_update(gl, where, spec)
    return run(lambda: _open_or_update(gl, where, spec), deadline, f"GitLab {where.url}", "GitLab")


def _open_or_update(gl: gitlab.Gitlab, where: GitLabProject, spec: MergeRequestSpec) -> MergeRequestResult:
    try:
        project = gl.projects.get(where.project, lazy=True)
        found = project.mergerequests.list(state="opened", source_branch=spec.source_branch,
                                           target_branch=spec.target_branch, get_all=True)
        if found:
            mr, action = project.mergerequests.get(found[0].iid), "updated"
        else:
            try:
                mr = project.mergerequests.create({
                    "source_branch": spec.source_branch, "target_branch": spec.target_branch,
                    "title": spec.title, "description": spec.description, "labels": ",".join(spec.labels),
                    "remove_source_branch": True,
                })
                action = "opened"
            except GitlabCreateError as exc:
                match = _DUPLICATE.search(str(exc.error_message))
                if exc.response_code != 409 or not match:
                    raise
                mr, action = project.mergerequests.get(int(match.group(1))), "adopted"
        if action != "opened":
            mr.title, mr.description, mr.labels = spec.title, spec.description, list(spec.labels)
            mr.target_branch = spec.target_branch  # an adopted one may target another branch
            mr.save()
        closed = _close_superseded(project, spec, keep=mr.iid)
        return MergeRequestResult(int(mr.iid), str(mr.web_url), action, closed)
    except GitlabAuthenticationError as exc:
        raise UserError(f"GitLab {where.url}: the token was refused (HTTP {exc.response_code}); "
                        f"a token with the api scope on project {where.project} is needed") from None
    except GitlabParsingError:
        raise UserError(f"GitLab {where.url}: the answer is not GitLab's JSON (a login page or a proxy's "
                        f"page?); check --gitlab-url") from None
    except GitlabError as exc:
        raise UserError(f"GitLab {where.url}: HTTP {exc.response_code}: "
                        f"{redact(str(exc.error_message), where.token)[:300]}") from None
    except LeftOrigin as exc:
        raise UserError(f"GitLab {where.url}: {exc}") from None
    except RecursionError:  # python-gitlab follows next-page links recursively
        raise UserError(f"GitLab {where.url}: the list of merge requests never ends (next-page links in a "
                        f"loop); check --gitlab-url") from None
    except requests.RequestException as exc:
        raise UserError(f"GitLab {where.url}: {type(exc).__name__}: "
                        f"{redact(str(exc), where.token)}") from None


def _close_superseded(project, spec: MergeRequestSpec, *, keep: int) -> list[int]:
    if not spec.supersede_prefix:
        return []
    closed = []
    for other in project.mergerequests.list(state="opened", target_branch=spec.target_branch, get_all=True):
        if other.iid != keep and other.source_branch.startswith(spec.supersede_prefix) \
                and other.source_branch != spec.source_branch:
            other.state_event = "close"
            other.save()
            closed.append(int(other.iid))
    return sorted(closed)
