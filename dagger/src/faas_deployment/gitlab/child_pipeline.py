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
- upload: ``upload-bundle``; when the same plan deploys the operator of that
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

Job names follow the platform's runbooks: ``<component>_<action>_<env>`` with the
action ``deploy`` (install and upgrade), ``upload_bundle`` or ``retire``
(:func:`job_name`), e.g. ``operator_upload_bundle_dev``.

Generated CI is data, never code (:func:`command`): every value written into a job
(environment and component names, the pre-release id, paths) is checked against a
strict grammar and quoted for the shell (``shlex.quote``); a CI/CD variable is
referenced only by a name of ``[A-Z0-9_]``. Names are DNS-1123 labels
(:func:`layout.check_names`, checked again here), merge request and pipeline IIDs
ASCII digits, and each job's name and GitLab environment follow GitLab's rules
(:func:`check_gitlab_names`). A value that breaks a rule refuses the whole pipeline.

An empty plan gives a valid pipeline with one no-op job (GitLab refuses a pipeline
without jobs).
"""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..core import layout, names, versions, yaml_out
from ..core.errors import UserError
from ..flux import settings as settings_mod
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


#: A CI/CD variable name this module writes as ``$NAME`` (GitLab: letters, digits and ``_``).
_VARIABLE = re.compile(r"[A-Z_][A-Z0-9_]*")
#: GitLab's ``environment:name``: letters, digits, spaces and ``- _ / $ { } .``, not starting or ending
#: with ``/``, at most 255 characters (GitLab docs, CI/CD YAML syntax reference, ``environment:name``).
_GITLAB_ENVIRONMENT = re.compile(r"(?!/)[A-Za-z0-9 _/${}.-]{1,255}(?<!/)")
#: What a deploy job hands the module of its environment (the runtime container never sees the job's
#: environment): ``SOURCE_DATE_EPOCH``, so the packages it publishes are the bytes the CLI makes in the job.
_EPOCH = "${SOURCE_DATE_EPOCH:-}"
#: Longest job name GitLab accepts (``Ci::Build`` validates ``name`` to 255 characters).
JOB_NAME_MAX = 255
#: The job-name action of each planned action (the platform's runbooks' names).
JOB_ACTIONS = {"install": "deploy", "upgrade": "deploy", "upload": "upload_bundle", "retire": "retire"}


def variable_suffix(env: str) -> str:
    """``dev`` -> ``DEV``, ``eu-west`` -> ``EU_WEST``: the CI/CD variable suffix of an environment."""
    return re.sub(r"[^A-Za-z0-9]", "_", env).upper()


def _variable(name: str) -> str:
    """``$NAME`` for the shell to expand, after checking the name is a plain variable name."""
    if not _VARIABLE.fullmatch(name):
        raise UserError(f"CI/CD variable name {name!r}: expected [A-Z0-9_] (an environment name outside the grammar?)")
    return f"${name}"


def _checked_names(item: Item) -> tuple[str, str]:
    """``item``'s environment and component, refused unless DNS-1123 labels (:func:`layout.check_names`)."""
    layout.check_names([(item.env, item.component)])
    return item.env, item.component


def command(item: Item, context: Context, chart_registry: str = "") -> str | None:
    """The ``dagger call`` line for ``item``, or ``None`` when no job acts on it (refused, unchanged).

    The one mapping from a planned action to a command. Every literal value is
    shell-quoted (``shlex.quote``) after its grammar check; secrets come from CI/CD
    variables named after the environment (:func:`variable_suffix`): the Receiver
    token as ``env:`` (a variable's value, read by Dagger itself), the kubeconfig as
    ``file:`` (a GitLab *file* variable holds the path of a file with the value; the
    Dagger CLI's ``file:PATH`` reads that file on the caller's side). A deploy job gives
    the chart registry's account once, ``with-registry --address HOST``, for the host of
    ``chart_registry`` (the environment's, ``oci://HOST[:PORT]/PATH``, where deploy publishes):
    it reaches that host only.

    Raises:
        ValidationError: a name is not a DNS-1123 label.
        UserError: a merge request or pipeline IID is not ASCII digits; a deploy without an
            ``oci://`` ``chart_registry``.
    """
    if item.action not in JOB_ACTIONS:
        return None
    env, component = _checked_names(item)
    suffix, q = variable_suffix(env), shlex.quote
    if item.action in ("install", "upgrade"):
        words = ["dagger", "call", "--source-date-epoch", f'"{_EPOCH}"',
                 "with-registry", "--address", q(_registry_host(env, chart_registry)),
                 "--username", f'"{_variable("CHART_REGISTRY_USER_" + suffix)}"',
                 "--password", f"env:{_variable('CHART_REGISTRY_PASSWORD_' + suffix)[1:]}",
                 "env", "--name", q(env), "component", "--name", q(component), "deploy",
                 "--kubeconfig", f'"file:{_variable("KUBECONFIG_" + suffix)}"',
                 "--receiver-token", f"env:{_variable('FLUX_RECEIVER_TOKEN_' + suffix)[1:]}"]
        prerelease = context.prerelease()
        if prerelease:
            words += ["--prerelease", q(prerelease)]
        return " ".join(words)
    if item.action == "upload":
        return " ".join(["dagger", "call", "env", "--name", q(env), "upload-bundle",
                         "--admin-url", f'"{_variable("OPERATOR_ADMIN_URL_" + suffix)}"',
                         "--admin-token", f"env:{_variable('OPERATOR_ADMIN_TOKEN_' + suffix)[1:]}"])
    return " ".join(["dagger", "call", "env", "--name", q(env), "flux", "export", "--path", q(retired_objects(env))])


def _registry_host(env: str, chart_registry: str) -> str:
    """The ``HOST[:PORT]`` of ``env``'s ``chart_registry`` (:func:`names.parse_oci_url`).

    Raises:
        UserError: ``chart_registry`` is no ``oci://HOST[:PORT]/PATH``.
    """
    try:
        return names.parse_oci_url(chart_registry).host
    except names.OciUrlError:
        raise UserError(f"{layout.settings_file(env).as_posix()}: chart_registry {chart_registry!r}: a deploy job "
                        "needs oci://HOST[:PORT]/PATH") from None


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
    """``<component>_<action>_<env>`` (:data:`JOB_ACTIONS`), e.g. ``operator_upload_bundle_dev``.

    Unambiguous: names are DNS-1123 labels, which hold no ``_``.
    """
    return _job_name(item.env, item.component, item.action)


def _job_name(env: str, component: str, action: str) -> str:
    return f"{component}_{JOB_ACTIONS[action]}_{env}"


def check_gitlab_names(name: str, job: dict[str, Any]) -> None:
    """Refuse a job whose name or GitLab environment breaks GitLab's rules (:data:`JOB_NAME_MAX`,
    :data:`_GITLAB_ENVIRONMENT`); the resource group follows the environment's rule.

    Raises:
        UserError: naming the job and the value.
    """
    if not 1 <= len(name) <= JOB_NAME_MAX:
        raise UserError(f"child pipeline job {name[:80]!r}...: a GitLab job name has at most {JOB_NAME_MAX} characters")
    environment = job.get("environment", {}).get("name", "")
    for key, value in (("environment:name", environment), ("resource_group", job.get("resource_group", ""))):
        if value and not _GITLAB_ENVIRONMENT.fullmatch(value):
            raise UserError(f"child pipeline job {name!r}: {key} {value!r} breaks GitLab's rule (letters, digits, "
                            "spaces and - _ / $ { } ., at most 255, no leading or trailing /)")


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
        ValidationError: a name is not a DNS-1123 label (:func:`layout.check_names`).
        UserError: a value breaks GitLab's rules (:func:`check_gitlab_names`); from ``settings_of``.
    """
    layout.check_names((i.env, i.component) for i in plan.items)
    jobs: dict[str, Any] = {}
    items = [i for i in plan.items if context.deploys(i.env) and i.action in JOB_ACTIONS]
    deployed = {job_name(i) for i in items if i.action in ("install", "upgrade")}
    remaining = {i.env for i in plan.items if i.action != "retire"}  # environments still at head
    for item in items:
        if item.action == "retire" and item.env not in remaining:
            continue
        job: dict[str, Any] = {"extends": ".dagger", "stage": _stage(item),
                               **job_environment(item, settings_of(item.env)),
                               "script": [command(item, context, settings_of(item.env).chart_registry)]}
        operator_deploy = {_job_name(item.env, item.component, "upgrade")} & deployed
        if item.action == "upload" and operator_deploy:
            job["needs"] = sorted(operator_deploy)
        if item.action == "retire":
            job["artifacts"] = {"name": f"flux-{item.env}", "paths": [retired_objects(item.env)]}
        check_gitlab_names(job_name(item), job)
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
    text += yaml_out.dump(document, width=1000)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return out
