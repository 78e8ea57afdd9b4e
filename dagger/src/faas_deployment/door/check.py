"""``check``: everything a release would do, short of pushing: validate, render, lint, package, decide.

Per environment: each chart is packaged and checked against the publishing rules
without pushing (against ``--registry`` or the local repository), two components may
not share a ``chart_name``, the operator's ``dynamic/`` templates are validated, and
with ``--base`` every changed chart must raise ``chart_version`` over the base's (as
``ct lint --check-version-increment`` does). Every problem is listed at once.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ..core import layout
from ..core.errors import Problem, UserError, ValidationError
from ..core.progress import step
from . import charts
from .results import Result, jsonable, make_result
from .running import check_timeout, outcome_of, tempdir
from .workspace import Registry, Workspace

if TYPE_CHECKING:
    from ..core.packaging import ChartPackage
    from ..registry.publishing import PublishResult, Target


def check(ws: Workspace, env: str | None = None, registry: Registry | None = None, base: str | Path | None = None,
          base_name: str = "") -> Result:
    """``check``: validate, render, lint and package every component (of ``env`` or of all envs).

    Each environment's operator ``dynamic/`` manifests are validated too
    (:func:`faas_deployment.bundle.templates.check_env`). Each package is checked against the
    publishing rules without pushing, against ``registry`` (``oci://...``) or, without
    one, against the environment's local repository (:func:`charts.local_target`): a chart
    whose content changed without a ``chart_version`` bump, or whose version is
    lower than the highest published, is refused.

    ``base``: also compare with that tree, as ``ct lint --check-version-increment``
    does: a chart whose packaged digest differs from the base's without a higher
    ``chart_version`` is refused (decided as :func:`faas_deployment.gitlab.plan.make_plan`
    decides it; no registry needed). A string is a git ref of the source tree's
    repository (read with git); a path is the base tree already on disk, named
    ``base_name`` in messages (the ref it was read from).

    Returns:
        A line per checked item: ``ok <env>/<component>: <chart> <version>
        (<digest>)``, the publishing decision of each chart, ``ok <env>: dynamic
        manifests``, and with ``base`` ``ok <env>: chart versions increase over <base>``.

    Raises:
        ValidationError: every problem found, across all environments.
    """
    from ..bundle import templates
    from ..core import versions

    if registry is not None:
        check_timeout(registry.timeout)  # refused even when no registry is given, as by every verb
    envs = [env] if env else ws.envs()
    if not envs:
        raise UserError(f"{ws.source}: no {layout.CONFIG_GLOB} found")
    lines: list[str] = []
    problems: list[Problem] = []
    data: dict[str, Any] = {"charts": [], "publishing": [], "dynamic_manifests": [], "version_increase": None}
    with tempdir(prefix="faas-check-") as scratch:
        for name in envs:
            rules = charts.target(ws, name, registry) if registry is not None and registry.registry is not None \
                else charts.local_target(ws, name)
            packages: dict[str, ChartPackage] = {}
            for component in ws.components(name):
                package = charts.package_or_note(ws, name, component, Path(scratch) / name / component, problems)
                if package is None:
                    continue
                problem = versions.scheme_problem(package.version, ws.display(name, component))
                if problem:
                    problems.append(Problem(ws.display(name, component), "default_context.chart_version",
                                            problem.split(": ", 1)[1]))
                    continue
                packages[component] = package
                lines.append(f"ok {name}/{component}: {package.name} {package.version} ({package.digest})")
                data["charts"].append({"env": name, "component": component, "chart": package.name,
                                       "version": package.version, "digest": package.digest})
            problems.extend(charts.chart_name_problems(ws, name, {c: p.name for c, p in packages.items()}))
            for component, decision in _dry_run(ws, name, packages, rules, problems):
                lines.append(decision.line)
                data["publishing"].append({"env": name, "component": component, **jsonable(decision)})
            found = templates.check_env(ws.source, name)
            problems.extend(found)
            if not found and layout.dynamic_dir(ws.source, name).is_dir():
                lines.append(f"ok {name}: dynamic manifests")
                data["dynamic_manifests"].append(name)
    if base is not None:
        increased = _increment_lines(ws, base, base_name, envs, problems)
        lines.extend(increased)
        data["version_increase"] = {"base": base_name or str(base),
                                    "envs": [line.split(":")[0].removeprefix("ok ") for line in increased]}
    if problems:
        raise ValidationError(problems)
    return make_result(lines, data)


def _increment_lines(ws: Workspace, base: str | Path, base_name: str, envs: list[str],
                     problems: list[Problem]) -> list[str]:
    """``check --base``: refused plan items of ``envs`` become problems; a report line per clean env."""
    from ..core import versions  # only ``check --base`` reads git
    from ..gitlab import gitrefs
    from ..gitlab.plan import make_plan, side

    with tempdir(prefix="faas-check-base-") as scratch:
        if isinstance(base, str):
            root, name = gitrefs.export_tree(ws.source, base, Path(scratch) / "base"), base
        else:
            root, name = Path(base), base_name or str(base)
        with step(f"compare with {name}"):
            result = make_plan(
                side(root, ws.template, ws.fetch_template),
                side(ws.source, ws.template, ws.fetch_template),
                base_name=name,
                head_name="working tree",
            )
    failed: set[str] = set()
    for item in result.refused:
        shown = layout.config_file(item.env, item.component).as_posix()
        if item.env not in envs or versions.scheme_problem(item.version, shown):
            continue  # another environment, or a version the check above already refuses
        failed.add(item.env)
        problems.append(Problem(shown, "default_context.chart_version",
                                f"compared with {name}: {item.reason.removeprefix(shown + ': ')}",
                                "raise chart_version above the base's, as Flux deploys only a newer version"))
    return [f"ok {env}: chart versions increase over {name}" for env in envs if env not in failed]


def _dry_run(ws: Workspace, env: str, packages: dict[str, ChartPackage], target: Target,
             problems: list[Problem]) -> list[tuple[str, PublishResult]]:
    """Check each package against ``target``'s rules, within its deadline; ``(component, decision)``
    per package that passed, problems appended."""
    from ..core import deadline

    def dry(component: str) -> PublishResult:
        return target.publish(packages[component], config=ws.display(env, component), dry_run=True)

    calls = [functools.partial(dry, c) for c in packages]
    decided: list[tuple[str, PublishResult]] = []
    outcomes = (
        deadline.run_all(calls, target.deadline, f"check {env} against the registry")
        if target.deadline
        else [outcome_of(call) for call in calls]
    )
    for component, (result, error) in zip(packages, outcomes, strict=True):
        if isinstance(error, UserError):
            problems.append(Problem(ws.display(env, component), "", str(error)))
        elif error is not None:
            raise error  # a bug: keep its traceback
        else:
            decided.append((component, cast("PublishResult", result)))  # no error: the call's result
    return decided

