"""Promotion verbs: ``bump`` (a new image into a config) and ``promote`` (what runs in one
environment into the next one's config), in place or as a GitLab merge request.

The promotion order is the repository's (``promote_from`` in ``environment.yaml``);
the change, commit and merge request are :mod:`faas_deployment.gitlab.promotion`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core import layout
from ..core.errors import UserError
from .defaults import BUMP_LABELS, BUMP_PART, DEFAULT_BRANCH, REMOTE
from .results import Result, make_result, reveal
from .running import check_timeout
from .workspace import Workspace

if TYPE_CHECKING:
    from ..core.secrets import SecretValue



@dataclass(frozen=True)
class MergeRequestOptions:
    """The merge request settings of ``bump`` and ``promote`` as the user gave them (token already read).

    Empty fields take the CI job's defaults (:func:`proposal`, :data:`CI_DEFAULTS`).
    """

    gitlab_url: str
    gitlab_project: str
    token: SecretValue | None
    target_branch: str = ""
    remote: str = REMOTE
    labels: tuple[str, ...] = ()
    author: str = ""
    pipeline_url: str = ""


def bump(ws: Workspace, env: str, component: str, *, image_tag: str, part: str = BUMP_PART,
         merge_request: MergeRequestOptions | None = None, timeout: float | None = None) -> Result:
    """``bump``: set ``image_tag`` and raise ``chart_version`` (in place, or as a merge request).

    The same ``image_tag`` again changes nothing (``up to date``). ``timeout``
    bounds every git and GitLab step of a merge request (default
    :data:`proposal.DEFAULT_TIMEOUT`). The result's data holds the new file ``text``.
    """
    from ..charts import bump
    from ..gitlab import promotion

    timeout = check_timeout(timeout)
    ws.config_file(env, component)
    if merge_request is not None:
        outcomes: list[Any] = []
        line = promotion.bump_proposal(ws.source, env, component, image_tag=image_tag, part=part,
                                       template=ws.template_dir,
                                       proposal=proposal(ws, merge_request, BUMP_LABELS, timeout),
                                       outcomes=outcomes)
        return make_result(line, outcomes[0])
    result = bump.bump_config(
        ws.source, env, component, image_tag=image_tag, part=part, template=ws.template_dir
    )
    return make_result([result.line], result)


def proposal(ws: Workspace, options: MergeRequestOptions, default_labels: Sequence[str], timeout: float | None = None):
    """The :class:`proposal.Proposal` of a merge request verb; its deadline starts now (``timeout``
    seconds, default :data:`proposal.DEFAULT_TIMEOUT`). Empty GitLab URL, project, target
    branch and pipeline URL: the job's (:meth:`Workspace.ci_default`), the branch else :data:`DEFAULT_BRANCH`.

    Raises:
        UserError: no token, no GitLab URL or project, a GitLab URL with user info
            (:func:`merge_request.check_url`, the URL not repeated).
    """
    from ..core.deadline import Deadline
    from ..gitlab import proposal as merge
    from ..gitlab.merge_request import GitLabProject, check_url

    if options.token is None:
        raise UserError("--merge-request needs --gitlab-token env:NAME|file:PATH (a token with the api scope)")
    gitlab_url = ws.ci_default(options.gitlab_url, "gitlab_url")
    gitlab_project = ws.ci_default(options.gitlab_project, "gitlab_project")
    if not gitlab_url or not gitlab_project:
        raise UserError(
            "--merge-request needs --gitlab-url and --gitlab-project (CI: $CI_SERVER_URL, $CI_PROJECT_ID)"
        )
    check_url(gitlab_url)
    deadline = Deadline(merge.DEFAULT_TIMEOUT if timeout is None else timeout)
    return merge.Proposal(
        GitLabProject(gitlab_url, gitlab_project, reveal(options.token)),
        target_branch=ws.ci_default(options.target_branch, "default_branch") or DEFAULT_BRANCH,
        remote=options.remote or REMOTE,
        labels=tuple(options.labels) or tuple(default_labels),
        author=options.author or merge.DEFAULT_AUTHOR,
        pipeline_url=ws.ci_default(options.pipeline_url, "pipeline_url"),
        deadline=deadline,
    )


def promotion_steps(ws: Workspace, from_env: str | None = None, to_env: str | None = None) -> list[tuple[str, str]]:
    """The ``(from, to)`` steps a ``promote`` runs, from the flags and the promotion order.

    The order is the repository's (``promote_from`` in each ``environment.yaml``,
    :func:`settings.promotion_order`). Both given: that step, refused when ``to``
    declares another source. Only ``to``: its declared source. Only ``from``:
    every environment it feeds. Neither: every step of the order (what the CI
    job runs, naming no environment).

    Raises:
        UserError: a step the order does not hold, or no step at all (the file and key named).
        ValidationError: an invalid ``promote_from`` (unknown environment, a cycle).
    """
    from ..flux import settings

    for env in (from_env, to_env):
        if env:
            ws.components(env)  # an unknown environment: the one message of every verb
    order = settings.promotion_order(ws.source)
    declared = {to: frm for frm, to in order}
    if from_env and to_env:
        if to_env in declared and declared[to_env] != from_env:
            raise UserError(f"{layout.shown(ws.source, layout.settings_path(ws.source, to_env))}: "
                            f"promote_from: {to_env} receives promotions from {declared[to_env]}, not "
                            f"{from_env} (the repository's promotion order); promote {declared[to_env]} -> "
                            f"{to_env}, or change promote_from")
        return [(from_env, to_env)]
    if to_env:
        if to_env not in declared:
            raise UserError(f"{layout.shown(ws.source, layout.settings_path(ws.source, to_env))}: "
                            f"promote_from: not set, so {to_env} receives no promotion; give --from or set "
                            f"promote_from: <environment>")
        return [(declared[to_env], to_env)]
    steps = [step for step in order if not from_env or step[0] == from_env]
    if not steps:
        raise UserError(f"no environment.yaml sets promote_from{f': {from_env}' if from_env else ''}: the "
                        f"promotion order is a repository setting (e.g. promote_from: dev in "
                        f"env/prod/environment.yaml); or give --from and --to")
    return steps


def promote(ws: Workspace, from_env: str | None,
    to_env: str | None,
    *,
    component: str | None = None,
    all_components: bool = False,
    source_status: Path | None = None,
    kubeconfig: SecretValue | None = None,
    kube_context: str | None = None,
    merge_request: MergeRequestOptions | None = None,
    write: bool = True,
    allow_prerelease: bool = False,
    timeout: float | None = None,
) -> Result:
    """``promote``: carry what runs in ``from_env`` to ``to_env``'s config (see :func:`promotion.promote`);
    either or both may be left to the repository's promotion order (:func:`promotion_steps`).

    The source state: ``source_status`` (a HelmRelease as JSON), else the live
    HelmRelease read with ``kubeconfig``, else the source config.
    ``allow_prerelease``: promote a pre-release image (refused otherwise).
    ``timeout``: one deadline for every network step (git, GitLab), default
    :data:`proposal.DEFAULT_TIMEOUT`; it bounds the read of the live HelmRelease
    too (default there :attr:`source_state.ClusterState.timeout`).

    Raises:
        UserError: neither or both of ``component`` and ``all_components``; both
            ``source_status`` and ``kubeconfig``; see :func:`promotion.promote`.
    """
    from ..gitlab import promotion, source_state
    from ..gitlab.proposal import DEFAULT_LABELS

    timeout = check_timeout(timeout)
    if bool(component) == bool(all_components):
        raise UserError("promote: give --component C or --all (one of them)")
    if source_status is not None and kubeconfig is not None:
        raise UserError("promote: give --source-status FILE or --kubeconfig (the live HelmRelease), not both")
    state: source_state.HelmReleaseStatusFile | source_state.ClusterState | None = (
        source_state.HelmReleaseStatusFile(Path(source_status)) if source_status is not None else None)
    if kubeconfig is not None:
        from ..flux import rollout

        client = rollout.make_client(reveal(kubeconfig), kube_context or None)
        state = source_state.ClusterState(ws.source, client, **({} if timeout is None else {"timeout": timeout}))
    steps = promotion_steps(ws, from_env, to_env)
    merge = proposal(ws, merge_request, DEFAULT_LABELS, timeout) if merge_request is not None else None
    lines: list[str] = []
    outcomes: list[Any] = []
    for frm, to in steps:
        lines += promotion.promote(ws.source, frm, to, [component] if component else None, state=state,
                                   template=ws.template_dir, proposal=merge, write=write,
                                   allow_prerelease=allow_prerelease, outcomes=outcomes)
    return make_result(lines, {"promotions": outcomes})

