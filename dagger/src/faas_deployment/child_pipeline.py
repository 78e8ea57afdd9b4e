"""The GitLab child pipeline generated from a plan: one job per planned action.

The parent ``.gitlab-ci.yml`` names no environment or component: its ``plan`` job
writes this file and a ``trigger: include: artifact`` job runs it (GitLab docs,
"Dynamic child pipelines"). Each job is one ``dagger call`` line (:func:`command`, the
one place mapping an action to a command), with ``environment:`` and
``resource_group`` per target (:func:`job_environment`, the Kubernetes dashboard
fields from ``env/<env>/environment.yaml``), extending a copy of the parent's
``.dagger`` job template (so both run the same pinned engine).

Jobs (docs/plan.md, "The child pipeline"):

- install/upgrade: ``deploy`` (publish to the environment's ``chart_registry``,
  notify its Receiver, wait until the HelmRelease runs the pushed version);
- upload: ``upload-manifests``; when the same plan deploys the operator of that
  environment, the job ``needs:`` that deploy job, which ends only once the new
  operator runs (so the bundle reaches the new operator);
- retire: ``flux`` exported as the job's artifact ``flux/<env>/``: the environment's
  Flux objects regenerated without the retired component (stopping its GitLab
  environment), to replace the set the cluster applies; published charts stay.

Who deploys where (docs/plan.md, "Versions"):

- default branch: every environment, release versions as configured;
- merge request pipelines: only the branch environments (``dev`` by default), each
  chart published as the pre-release ``<chart_version>-mr.<iid>.<pipeline iid>`` so
  no release number is consumed;
- other branch pipelines: no deploy job (plan and check only).

An empty plan gives a valid pipeline with one no-op job (GitLab refuses a pipeline
without jobs).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import settings as settings_mod
from . import versions
from .errors import UserError
from .plan import Item, Plan

STAGES = ["deploy", "upload", "retire"]
#: Environments that merge request pipelines may deploy to (pre-release versions).
BRANCH_ENVIRONMENTS = ("dev",)
NOOP_JOB = "nothing-to-deploy"


@dataclass(frozen=True)
class Context:
    """The pipeline the child runs in.

    Attributes:
        ref: the branch (``CI_COMMIT_REF_NAME``).
        default_branch: ``CI_DEFAULT_BRANCH``.
        merge_request: the merge request IID (``CI_MERGE_REQUEST_IID``), ``""`` outside one.
        pipeline_iid: the parent pipeline's IID (``CI_PIPELINE_IID``), for pre-release numbers.
        branch_envs: environments merge request pipelines deploy to.
    """

    ref: str
    default_branch: str
    merge_request: str = ""
    pipeline_iid: str = ""
    branch_envs: tuple[str, ...] = BRANCH_ENVIRONMENTS

    @property
    def on_default_branch(self) -> bool:
        return bool(self.ref) and self.ref == self.default_branch and not self.merge_request

    def prerelease(self) -> str:
        """``mr.<iid>.<pipeline iid>`` in a merge request pipeline, else ``""``.

        Raises:
            UserError: a merge request pipeline without a numeric IID or pipeline IID.
        """
        if not self.merge_request:
            return ""
        prerelease = versions.merge_request_prerelease(self.merge_request, self.pipeline_iid)
        if prerelease is None:
            raise UserError(f"--merge-request {self.merge_request!r} --pipeline-iid {self.pipeline_iid!r}: "
                            "expected two numbers (CI_MERGE_REQUEST_IID, CI_PIPELINE_IID)")
        return prerelease

    def deploys(self, env: str) -> bool:
        """Whether this pipeline deploys to ``env`` (module doc)."""
        if self.on_default_branch:
            return True
        return bool(self.merge_request) and env in self.branch_envs


def variable_suffix(env: str) -> str:
    """``dev`` -> ``DEV``, ``eu-west`` -> ``EU_WEST``: the CI/CD variable suffix of an environment."""
    return re.sub(r"[^A-Za-z0-9]", "_", env).upper()


def command(item: Item, context: Context) -> str | None:
    """The ``dagger call`` line for ``item``, or ``None`` when no job acts on it (refused, unchanged).

    The one mapping from a planned action to a command. Secrets come from CI/CD
    variables named after the environment (:func:`variable_suffix`): the Receiver
    token as ``env:`` (a variable's value), the kubeconfig as ``file:`` (a GitLab
    *file* variable holds the path of a file with the value; the Dagger CLI's
    ``file:PATH`` reads that file on the caller's side).
    """
    env, component, suffix = item.env, item.component, variable_suffix(item.env)
    if item.action in ("install", "upgrade"):
        line = (f'dagger call env --name {env} component --name {component} deploy '
                f'--kubeconfig "file:$KUBECONFIG_{suffix}" --receiver-token env:FLUX_RECEIVER_TOKEN_{suffix} '
                f'--username "$CHART_REGISTRY_USER_{suffix}" --password env:CHART_REGISTRY_PASSWORD_{suffix}')
        prerelease = context.prerelease()
        return f"{line} --prerelease {prerelease}" if prerelease else line
    if item.action == "upload":
        return (f'dagger call env --name {env} upload-manifests --admin-url "$OPERATOR_ADMIN_URL_{suffix}" '
                f'--token env:OPERATOR_ADMIN_TOKEN_{suffix}')
    if item.action == "retire":
        return f"dagger call env --name {env} flux export --path {retired_objects(env)}"
    return None


def retired_objects(env: str) -> str:
    """Where a retire job exports ``env``'s regenerated Flux objects: ``flux/<env>`` (its artifact)."""
    return f"flux/{env}"


def job_environment(item: Item, settings: settings_mod.Settings) -> dict[str, Any]:
    """The job's ``environment`` and ``resource_group`` keys for ``item``'s target.

    A deploy or upload job starts the GitLab environment ``<env>/<component>`` with
    its Kubernetes dashboard fields (:func:`settings.gitlab_environment`); a retire
    job stops it (``action: stop``).
    """
    if item.action == "retire":
        return {"environment": {"name": item.target, "action": "stop"}, "resource_group": item.target}
    return {"environment": settings_mod.gitlab_environment(settings, item.component), "resource_group": item.target}


def job_name(item: Item) -> str:
    return f"{item.action} {item.target}"


def dagger_template(source: Path) -> dict[str, Any]:
    """The parent's ``.dagger`` job template, read from ``<source>/.gitlab-ci.yml``.

    Raises:
        UserError: the file or its ``.dagger`` mapping is missing.
    """
    path = Path(source) / ".gitlab-ci.yml"
    try:
        template = (yaml.safe_load(path.read_text()) or {}).get(".dagger")
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"{path}: cannot read the .dagger job template: {exc}") from None
    if not isinstance(template, dict):
        raise UserError(f"{path}: no .dagger job template (the child pipeline's jobs extend it)")
    return template


def _stage(item: Item) -> str:
    return item.action if item.action in ("upload", "retire") else "deploy"


def generate(plan: Plan, context: Context, template: dict[str, Any],
             settings_of: Callable[[str], settings_mod.Settings]) -> dict[str, Any]:
    """The child pipeline as a mapping (see module doc).

    ``settings_of(env)``: the environment's settings (:func:`settings.load`), read
    for the environments that get a job. A retired component of a deleted
    environment gets no job (there is no environment left to regenerate).

    Raises:
        ValidationError / UserError: from ``settings_of``.
    """
    jobs: dict[str, Any] = {}
    items = [i for i in plan.items if context.deploys(i.env) and command(i, context) is not None]
    deployed = {job_name(i) for i in items if i.action in ("install", "upgrade")}
    remaining = {i.env for i in plan.items if i.action != "retire"}  # environments still at head
    for item in items:
        if item.action == "retire" and item.env not in remaining:
            continue
        job: dict[str, Any] = {"extends": ".dagger", "stage": _stage(item),
                               **job_environment(item, settings_of(item.env)),
                               "script": [command(item, context)]}
        operator_deploy = {f"{action} {item.target}" for action in ("install", "upgrade")} & deployed
        if item.action == "upload" and operator_deploy:
            job["needs"] = sorted(operator_deploy)
        if item.action == "retire":
            job["artifacts"] = {"name": f"flux-{item.env}", "paths": [retired_objects(item.env)]}
        jobs[job_name(item)] = job
    if not jobs:
        jobs[NOOP_JOB] = {
            "stage": "deploy",
            "image": "busybox:1.36",
            "variables": {"GIT_STRATEGY": "none"},
            "script": ["true"],
        }
    return {"stages": STAGES, ".dagger": template, **jobs}


def write(plan: Plan, context: Context, source: Path, out: Path) -> Path:
    """Write the child pipeline YAML for ``plan`` to ``out``; returns ``out``."""
    document = generate(plan, context, dagger_template(source),
                        functools.cache(lambda env: settings_mod.load(Path(source), env)))
    text = "# Generated by faas-deploy plan: one job per planned action. Do not edit.\n"
    text += yaml.safe_dump(document, sort_keys=False, width=1000)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return out
