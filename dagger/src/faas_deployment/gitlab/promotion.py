"""Promotion: carry what is verified running in one environment to the next, by merge request.

``promote --from dev --to prod --component C`` (:func:`promote`) reads what runs in
the source environment (a :class:`~faas_deployment.gitlab.source_state.SourceState`
from a provider, :mod:`.source_state`), computes the target config's change
(:func:`~faas_deployment.gitlab.promoted_change.plan`: the promoted values copied
as written, ``chart_version`` raised, everything else byte for byte; the refusals,
:mod:`.promoted_change`), then writes it in the working tree, shows it as a diff,
or proposes it as a merge request. :func:`bump_proposal` is ``bump`` as a merge
request. Any refusal fails the whole run before anything is written or pushed;
nothing to promote gives an ``up to date`` line and exit code 0.

With a GitLab project (:class:`~faas_deployment.gitlab.proposal.Proposal`) the
change is not written into the working tree. The target branch is read from the
remote first (:func:`~faas_deployment.gitlab.proposal.remote_base`), and the change
is computed on the remote's target config, not on the local checkout's: a target
that moved on (another promotion merged, prod already at a higher
``chart_version``) is seen and said, and the change is rebased onto it (or
refused, or up to date). The commit (deterministic) goes on
``promote/<to>/<C>-<version>``, and a merge request is opened or updated; older
``promote/<to>/<C>-*`` merge requests are closed; a branch with someone else's
commits is never overwritten (:mod:`.proposal`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ruamel.yaml.error import YAMLError

from ..charts import bump
from ..core import layout, repofiles
from ..core.errors import UserError
from .promoted_change import Promotion, PromotionRefused, UpToDate, changelog, describe, plan
from .proposal import Proposal, propose, remote_base
from .source_state import ConfigState, SourceStateProvider, config_values

#: The names the door reads from here (the verbs' defaults and state providers).
__all__ = ["bump_proposal", "promote"]


def promote(source: Path, from_env: str, to_env: str, components: list[str] | None, *,
            state: SourceStateProvider | None = None, template: Path | None = None,
            proposal: Proposal | None = None, write: bool = True, allow_prerelease: bool = False,
            log: Callable[[str], None] | None = None, outcomes: list[dict[str, Any]] | None = None) -> list[str]:
    """Promote ``components`` (None: every component of ``to_env`` that ``from_env`` has).

    Without ``proposal`` the target configs are written in place (``write=False``:
    nothing is written, each line is followed by the unified diff); with one, each
    becomes a merge request (see :func:`propose`), computed on the remote target
    branch's config (:func:`remote_base`). A component with nothing to promote gives
    an ``up to date`` line; any refusal fails the whole run before anything is
    written or pushed.

    Returns:
        A line per component; ``outcomes`` (when given) gets a record per component
        (:func:`_outcome`: ``--output json``).

    Raises:
        PromotionRefused, UserError, ValidationError: see :func:`plan`, :func:`propose`.
    """
    source = Path(source)
    state = state or ConfigState(source)
    outcomes = [] if outcomes is None else outcomes
    if components is None:
        have = set(_components(source, from_env))
        components = [c for c in _components(source, to_env) if c in have]
    lines: list[str] = []
    if proposal is None:
        plans = []
        for component in components:
            try:
                plans.append(plan(source, from_env, to_env, component, state(from_env, component), template,
                                  allow_prerelease=allow_prerelease))
            except UpToDate as exc:
                lines.append(str(exc))
                outcomes.append(_outcome(from_env, to_env, component, "up to date", lines[-1]))
        for p in plans:
            if write:
                bump.write_validated(source / p.path, p.new_text, template=template, shown=p.path)
                lines.append(p.line)
                outcomes.append(_outcome(from_env, to_env, p.component, "promoted", p.line, p))
            else:
                diff = "".join(difflib.unified_diff(p.old_text.splitlines(True), p.new_text.splitlines(True),
                                                    f"a/{p.path}", f"b/{p.path}")).rstrip("\n")
                lines.append(p.line.replace("promoted ", "would promote ", 1) + "\n" + diff)
                outcomes.append(
                    {**_outcome(from_env, to_env, p.component, "would promote", lines[-1], p), "diff": diff}
                )
    else:
        lines = _promote_by_merge_request(source, from_env, to_env, components, state, template, proposal,
                                          allow_prerelease, outcomes)
    if log:
        for line in lines:
            log(line)
    return lines


def _outcome(from_env: str, to_env: str, component: str, outcome: str, line: str,
             p: Promotion | None = None, **more: Any) -> dict[str, Any]:
    """One component's result as data: ``from``, ``to``, ``component``, ``outcome`` (``promoted``,
    ``would promote``, ``up to date``, ``proposed``), the config ``path`` and versions and the changed
    values (when something changed), and ``line``; ``more``: the branch and merge request of a proposal."""
    record: dict[str, Any] = {"from": from_env, "to": to_env, "component": component, "outcome": outcome}
    if p is not None:
        record.update(path=p.path, old_version=p.old_version, new_version=p.new_version,
                      changes={k: {"old": o, "new": n} for k, (o, n) in p.changes.items()})
    return {**record, **more, "line": line}


def _promote_by_merge_request(source: Path, from_env: str, to_env: str, components: list[str],
                              state: SourceStateProvider, template: Path | None, proposal: Proposal,
                              allow_prerelease: bool, outcomes: list[dict[str, Any]]) -> list[str]:
    """Every component planned on the remote target branch's configs first (any refusal: nothing pushed), then
    proposed."""
    at = remote_base(source, proposal, f"promote/{to_env}/")
    try:
        plans, lines = [], []
        for component in components:
            shown = layout.config_path(source, to_env, component).relative_to(source).as_posix()
            remote_text = at.text(shown)
            if remote_text is None:
                raise PromotionRefused(f"{from_env} -> {to_env} {component}: {shown} is not on "
                                       f"{proposal.target_branch} of {at.remote.url}; merge its addition first")
            try:
                p = plan(source, from_env, to_env, component, state(from_env, component), template,
                         target_text=remote_text, allow_prerelease=allow_prerelease)
            except UpToDate as exc:
                lines.append(f"{exc}{_moved_on(source, shown, remote_text, proposal)}")
                outcomes.append(_outcome(from_env, to_env, component, "up to date", lines[-1]))
                continue
            plans.append((p, _moved_on(source, shown, remote_text, proposal)))
        for p, moved in plans:
            title, description = describe(p, changelog(source, p), proposal.pipeline_url)
            pushed, result = propose(at, {p.path: p.new_text}, branch=p.branch, title=title, description=description,
                                     proposal=proposal, supersede_prefix=f"promote/{p.to_env}/{p.component}-",
                                     message=p.line)
            lines.append(f"{p.line}{moved}; {pushed}; {result.line}")
            outcomes.append(_outcome(from_env, to_env, p.component, "proposed", lines[-1], p, branch=p.branch,
                                     merge_request={"iid": result.iid, "web_url": result.web_url,
                                                    "action": result.action, "closed": result.closed}))
        return lines
    finally:
        at.close()


def _moved_on(source: Path, shown: str, remote_text: str, proposal: Proposal) -> str:
    """``""``, or a note that the remote target branch's config is not the working tree's (the target moved on)."""
    try:
        local = repofiles.read_text(source, shown)
    except UserError:
        local = None
    if local == remote_text:
        return ""
    def version(text: str | None) -> str:
        try:
            return str(config_values(text or "", shown).get(bump.VERSION_KEY))
        except (UserError, YAMLError):  # a note only: the plan has validated the remote text
            return "?"

    return (f" (the target moved on: {shown} on {proposal.target_branch} has {bump.VERSION_KEY} "
            f"{version(remote_text)}, the working tree {version(local)}; promoted onto {proposal.target_branch})")


def _components(source: Path, env: str) -> list[str]:
    return layout.components(source, env)


def bump_proposal(source: Path, env: str, component: str, *, image_tag: str, part: str = "patch",
                  template: Path | None = None, proposal: Proposal,
                  outcomes: list[dict[str, Any]] | None = None) -> str:
    """``bump`` as a merge request: the bumped config committed on ``bump/<env>/<component>-<version>``.

    The bump is computed on the config as the remote target branch has it
    (:func:`remote_base`), so a re-run after the merge request was merged is ``up
    to date`` and never raises ``chart_version`` again. The working tree is left
    unchanged. Older ``bump/<env>/<component>-*`` merge requests are closed.
    Returns the bump line, the branch's fate and the merge request line; ``outcomes``
    (when given) gets the same as data (the bump's values, ``branch``, ``merge_request``).

    Raises:
        UserError / ValidationError: see :func:`bump.bump_text`, :func:`propose`.
    """
    path = layout.config_path(source, env, component)
    shown = path.relative_to(source).as_posix()
    at = remote_base(source, proposal, f"bump/{env}/{component}-")
    try:
        text = at.text(shown)
        if text is None:
            raise UserError(f"{shown}: not on {proposal.target_branch} of {at.remote.url}; merge its addition first")
        result = bump.bump_text(text, image_tag=image_tag, part=part, shown=shown)
        record = {k: v for k, v in vars(result).items() if k != "text"}
        if result.unchanged:
            line = f"{result.line} (on {proposal.target_branch})"
            if outcomes is not None:
                outcomes.append({**record, "outcome": "up to date", "line": line})
            return line
        bump.write_validated(path, result.text, template=template, shown=shown, replace=False)
        title = (f"Bump {component} in {env}: image {result.old_tag} -> {result.new_tag}, "
                 f"chart {result.old_version} -> {result.new_version}")
        description = "\n".join([
            f"Sets `{bump.TAG_KEY}` and raises `{bump.VERSION_KEY}` in `{shown}` after the image was published.", "",
            "| key | before | after |", "|---|---|---|",
            f"| `{bump.VERSION_KEY}` | `{result.old_version}` | `{result.new_version}` |",
            f"| `{bump.TAG_KEY}` | `{result.old_tag}` | `{result.new_tag}` |", "",
            *([f"Pipeline: {proposal.pipeline_url}", ""] if proposal.pipeline_url else []),
        ])
        pushed, mr = propose(at, {shown: result.text}, branch=f"bump/{env}/{component}-{result.new_version}",
                             title=title, description=description, proposal=proposal,
                             supersede_prefix=f"bump/{env}/{component}-", message=result.line)
    finally:
        at.close()
    line = f"{result.line}; {pushed}; {mr.line}"
    if outcomes is not None:
        outcomes.append({**record, "outcome": "proposed", "branch": f"bump/{env}/{component}-{result.new_version}",
                         "merge_request": {"iid": mr.iid, "web_url": mr.web_url, "action": mr.action,
                                           "closed": mr.closed}, "line": line})
    return line
