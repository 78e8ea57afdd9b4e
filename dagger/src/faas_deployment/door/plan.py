"""``plan`` and the child pipeline: what a git change does to every target, and the GitLab jobs
that do it (:mod:`faas_deployment.gitlab.plan`, :mod:`faas_deployment.gitlab.child_pipeline`).

The CLI reads the base tree with git (:mod:`faas_deployment.gitlab.gitrefs`); the
Dagger front end exports it through the engine (:func:`engine_base`) and hands the
tree over (:func:`plan_against`, :func:`pipeline_against`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.progress import note
from .defaults import DEFAULT_BRANCH
from .results import Result, make_result
from .workspace import Workspace

if TYPE_CHECKING:
    pass



@dataclass(frozen=True)
class EngineBase:
    """The plan's base as the Dagger engine reads it (:func:`engine_base`).

    Attributes:
        ref: what to look up.
        kind: ``commit`` (``GitRepository.commit``), ``ref`` (``.ref``) or ``branch`` (``.branch``).
        merge_base: take ``GitRef.commonAncestor`` of it and ``HEAD``.
        name: how the plan and the messages name the base.
    """

    ref: str
    kind: str
    merge_base: bool
    name: str


def plan(ws: Workspace, *, base: str | None = None, head: str | None = None, output: str = "table",
         environ: Mapping[str, str] | None = None, pipeline: Path | None = None,
         context: Any = None, ref: str = "", default_branch: str = "", merge_request: str = "",
         pipeline_iid: str = "", branch_envs: Sequence[str] = ()) -> Result:
    """``plan``: what the change from ``base`` to ``head`` (default: the working tree) does.

    With ``pipeline`` (``--child-pipeline``), also writes the GitLab child pipeline there unless a target is
    refused; its context: ``context``, else :func:`pipeline_context` of ``ref``,
    ``default_branch``, ``merge_request``, ``pipeline_iid``, ``branch_envs``.

    Raises:
        UserError: a target is refused (the plan in the message); bad refs.
    """
    from ..gitlab import gitrefs

    result = gitrefs.plan_repository(ws.source, base, head, ws.template,
                                     ws.job_environ if environ is None else environ, ws.fetch_template)
    if pipeline is not None and not result.refused:
        from ..gitlab import child_pipeline

        context = context or pipeline_context(ws, ref, default_branch, merge_request, pipeline_iid, branch_envs)
        child_pipeline.write(result, context, ws.source, Path(pipeline))
    if output == "json" and result.refused:  # the plan is still the answer: JSON on stdout, exit 1
        import json

        count = len(result.refused)
        note(f"plan refused {count} target{'s' if count != 1 else ''}: "
             + "; ".join(f"{i.target}: {i.reason}" for i in result.refused))
        text = result.render("json")
        return Result(tuple(text.splitlines()), json.loads(text), None, 1)
    return plan_result(result, output)


def plan_result(plan_: Any, output: str = "table") -> Result:
    """A plan as a result (UserError carrying the plan when a target is refused)."""
    import json

    from ..gitlab import plan

    text = plan.outcome(plan_, "json" if output == "json" else "table")
    return make_result(text, json.loads(plan_.render("json")))


def plan_trees(ws: Workspace, base_root: Path, base_name: str):
    """The plan between the tree at ``base_root`` (exported by the caller) and this workspace."""
    from ..gitlab import plan

    return plan.make_plan(plan.side(base_root, ws.template, ws.fetch_template),
                          plan.side(ws.source, ws.template, ws.fetch_template),
                          base_name=base_name, head_name="source")


def pipeline_context(ws: Workspace, ref: str = "",
    default_branch: str = "",
    merge_request: str = "",
    pipeline_iid: str = "",
    branch_envs: Sequence[str] = (),
):
    """The child pipeline's :class:`child_pipeline.Context`; an empty value is the job's
    (:meth:`Workspace.ci_default`), the default branch else :data:`DEFAULT_BRANCH`, the branch
    environments else ``dev``."""
    from ..gitlab import child_pipeline

    return child_pipeline.Context(
        ws.ci_default(ref, "ref"), ws.ci_default(default_branch, "default_branch") or DEFAULT_BRANCH,
        ws.ci_default(merge_request, "merge_request"), ws.ci_default(pipeline_iid, "pipeline_iid"),
        tuple(branch_envs) or tuple(child_pipeline.BRANCH_ENVIRONMENTS))


def child_pipeline(ws: Workspace, plan_: Any, context: Any, out: Path) -> Result:
    """``child-pipeline``: the GitLab child pipeline of ``plan_`` written to ``out`` (refused targets: UserError)."""
    from ..gitlab import child_pipeline, plan

    plan.outcome(plan_, "table")
    path = child_pipeline.write(plan_, context, ws.source, Path(out))
    return make_result([str(path)], {"path": path}, path=path)


def engine_base(base: str, default_branch: str = "") -> EngineBase:
    """How a front end whose git is the Dagger engine's reads the plan's base from ``.git``.

    ``base``: a full SHA (looked up as a commit: the engine takes a ref as a commit
    only with 40 hex characters), a ``refs/...`` name, else a branch name; empty or
    all zeros: the merge base of ``HEAD`` and ``refs/remotes/origin/<default_branch>``
    (:func:`gitrefs.dagger_base_ref`, :func:`gitrefs.dagger_base_is_merge_base`).
    """
    from ..gitlab import gitrefs

    ref = gitrefs.dagger_base_ref(base, default_branch or DEFAULT_BRANCH)
    kind = "commit" if gitrefs.is_sha(ref) else "ref" if ref.startswith("refs/") else "branch"
    merge_base = gitrefs.dagger_base_is_merge_base(base)
    return EngineBase(ref, kind, merge_base, f"merge base of HEAD and {ref}" if merge_base else ref)


def plan_against(ws: Workspace, base_root: Path, base_name: str, output: str = "table") -> Result:
    """Dagger ``plan``: the plan between the tree at ``base_root`` (exported by the caller,
    named ``base_name``) and this workspace, as :func:`plan_result`."""
    return plan_result(plan_trees(ws, base_root, base_name), output)


def pipeline_against(ws: Workspace, base_root: Path, base_name: str, out: Path, *, ref: str = "",
                     default_branch: str = "", merge_request: str = "", pipeline_iid: str = "",
                     branch_envs: Sequence[str] = ()) -> Result:
    """Dagger ``child-pipeline``: the child pipeline of the plan against ``base_root`` written to ``out``
    (context: :func:`pipeline_context`; a refused target: UserError)."""
    plan_ = plan_trees(ws, base_root, base_name)
    context = pipeline_context(ws, ref, default_branch, merge_request, pipeline_iid, branch_envs)
    return child_pipeline(ws, plan_, context, out)

