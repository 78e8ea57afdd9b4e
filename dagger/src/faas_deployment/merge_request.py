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
Transient errors (5xx, 429, connection resets) are retried by python-gitlab's
``retry_transient_errors`` policy (up to :data:`MAX_RETRIES` times, backoff).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import gitlab
import requests
from gitlab.exceptions import GitlabAuthenticationError, GitlabCreateError, GitlabError

from .errors import UserError
from .secrets import SecretValue, redact

MAX_RETRIES = 3
#: GitLab's 409 text when a source branch already has an open merge request.
_DUPLICATE = re.compile(r"Another open merge request already exists for this source branch: !(\d+)")


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


class _Gitlab(gitlab.Gitlab):
    """python-gitlab with our retry budget: ``max_retries`` is a per-request argument there
    (default 10, backoff ``0.1 * 2**n`` seconds: ~100 s); ours is :data:`MAX_RETRIES`."""

    def http_request(self, *args, **kwargs):
        kwargs.setdefault("max_retries", MAX_RETRIES)
        return super().http_request(*args, **kwargs)


def _client(where: GitLabProject) -> gitlab.Gitlab:
    if not re.match(r"^https?://[^/@\s]+", where.url):
        raise UserError(f"--gitlab-url: expected http(s)://HOST[:PORT] without credentials, got {where.url!r}")
    if not where.project:
        raise UserError("--gitlab-project: the project id or path is required (CI: $CI_PROJECT_ID)")
    return _Gitlab(where.url.rstrip("/"), private_token=where.token.reveal(), timeout=where.timeout,
                   retry_transient_errors=True)


def open_or_update(where: GitLabProject, spec: MergeRequestSpec) -> MergeRequestResult:
    """Create the merge request ``spec`` describes, or update the open one for its branches.

    Returns:
        The merge request's ``iid``, URL, what was done and the superseded ones closed.

    Raises:
        UserError: GitLab refused the token (401), the project is unknown (404),
            or answered an error after the retries; the message names the HTTP
            status and GitLab's text, never the token.
    """
    gl = _client(where)
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
    except GitlabError as exc:
        raise UserError(f"GitLab {where.url}: HTTP {exc.response_code}: "
                        f"{redact(str(exc.error_message), where.token)}") from None
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
