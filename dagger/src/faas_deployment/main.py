"""The Dagger module: ``dagger call`` over the same core as the ``faas-deploy`` CLI.

Chain: ``FaasDeployment`` (the repository) [-> ``with-registry --address HOST ...`` (the access
to one registry, for the rest of the chain)] -> ``env --name E`` (an
:class:`Environment`) -> ``component --name C`` (one chart). The functions are
thin: they export the source directory into the module runtime, run the core
(every verb through the one door, :class:`door.Workspace`) in a worker thread, and return strings, Files or
Directories. A problem the user can fix surfaces as a Dagger function error with
the core's message and no Python traceback.

This file is the entry point the engine loads (``[project.entry-points."dagger.mod"]``): the main
object ``FaasDeployment``. The other objects are :class:`Environment` (:mod:`.dagger_environment`) and
:class:`Component` (:mod:`.dagger_component`); their shared arguments are in :mod:`.dagger_args`, what
every function does around its door call in :mod:`.dagger_runtime`.

Engine rules these modules follow (Dagger v0.21 source; ``tests/support/dagger_engine.py``
enforces each of them offline):

- object type names must not be core type names (``core/module.go``: a module type
  is namespaced only when its name is unknown, so ``class Env`` collides with the
  core ``Env`` type and the module fails to install);
- ``dag.current_module().workdir(path)`` / ``workdir_file(path)`` take only paths
  local to the function's working directory (``core/schema/module.go``,
  ``filepath.IsLocal``): every file a function returns is written under
  :func:`.dagger_runtime.scratch` and handed over by its relative path;
- functions that talk to a registry, a cluster or an API are ``cache="never"``
  (``core/modfunc.go``: the default policy caches a result for up to 7 days);
- the default ``source`` is filtered by ``Ignore`` only (not by ``.gitignore``), so
  :data:`SOURCE_IGNORE` keeps only what the functions read;
- no argument is named like a persistent flag of ``dagger call`` (``--output``,
  ``--json``, ``--mod``, ``--debug``, ...: ``cmd/dagger/main.go`` ``installGlobalFlags``,
  ``cmd/dagger/module.go`` ``moduleAddFlags``, ``cmd/dagger/functions.go``): the CLI
  adds each argument as a flag beside them and fails with ``flag already exists``
  (``cmd/dagger/flags.go``), so ``plan`` takes ``--format``, not ``--output``;
- no field or function is named ``id`` (``core/module.go``); ``Ignore`` is set only on
  Directory arguments and ``DefaultPath`` only on Directory/File/git arguments without a
  default value (``core/schema/module.go``, ``functionWithArg``).

Two gaps in dagger-io's types (``dagger/mod/_module.py``), each silenced on its line by name in
these modules: the overloads of ``function`` omit its ``cache`` parameter (``[call-overload]``),
and mypy does not see the ``dataclass_transform`` of ``object_type`` through the module-level
alias (``[call-arg]``).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Annotated

import dagger
from dagger import DefaultPath, Doc, Ignore, function, object_type

from ._dagger_errors import user_errors
from .dagger_args import (
    REGISTRY_FIELDS,
    REPOSITORY_IGNORE,
    SOURCE_IGNORE,
    CaFileArg,
    DefaultBranch,
    KubeContextArg,
    PasswordArg,
    PlainHttpArg,
    PlanBase,
    PlanCheckout,
    RegistryAddressArg,
    UsernameArg,
)
from .dagger_component import Component
from .dagger_environment import Environment
from .dagger_runtime import (
    base_tree,
    carried,
    fetch_git_templates,
    merge_request_options,
    registry_flags,
    result_file,
    run,
    scratch,
    secret_value,
    workspace,
)
from .door import Registry, check, defaults, plan, promotion

__all__ = ["Component", "Environment", "FaasDeployment"]


@object_type
class FaasDeployment:
    """Deployment pipeline of the FaaS platform: chart releases, images and the operator's bundle."""

    source: Annotated[
        dagger.Directory,
        DefaultPath("/"),
        Ignore(SOURCE_IGNORE),
        Doc("repository root holding env/<env>/<component>/cookiecutter-config.yaml (default: this repository)"),
    ]
    template: Annotated[
        dagger.Directory | None,
        Doc("a cookiecutter template overriding the repository's (template of faas-deployment.yaml, else the "
            "embedded one)"),
    ] = None
    source_date_epoch: Annotated[str, Doc(
        "SOURCE_DATE_EPOCH of the job (seconds since the epoch): the mtime of every packaged file, as the CLI "
        "reads it from its environment (the runtime container never sees the job's); CI passes "
        "\"${SOURCE_DATE_EPOCH:-}\"; empty: 0")] = ""
    # The with-registry access (REGISTRY_FIELDS): private fields, outside the constructor (one way to give it).
    registry_address: Annotated[str, Doc("with-registry: the registry HOST[:PORT] the access is for")] = (
        dataclasses.field(default="", init=False))
    registry_username: Annotated[str, Doc("with-registry: registry user name")] = dataclasses.field(
        default="", init=False)
    registry_password: Annotated[dagger.Secret | None, Doc("with-registry: registry password or token")] = (
        dataclasses.field(default=None, init=False))
    registry_plain_http: Annotated[bool, Doc("with-registry: that registry speaks HTTP")] = dataclasses.field(
        default=False, init=False)
    registry_ca_file: Annotated[dagger.File | None, Doc("with-registry: PEM certificate of that registry's CA")] = (
        dataclasses.field(default=None, init=False))

    @function
    def env(self, name: Annotated[str, Doc("environment name, e.g. dev or prod")]) -> Environment:
        """One environment of the repository."""
        return Environment(  # type: ignore[call-arg]
            source=self.source, template=self.template, name=name, source_date_epoch=self.source_date_epoch,
            **carried(self))

    @function
    def with_registry(
        self,
        address: RegistryAddressArg,
        username: UsernameArg = "",
        password: PasswordArg = None,
        plain_http: PlainHttpArg = False,
        ca_file: CaFileArg = None,
    ) -> FaasDeployment:
        """This repository with the access to one registry, given once for the whole chain.

        Every function after it that talks to ``address`` (``check --registry``, ``publish``,
        ``release``, ``deploy``, ``publish-image``, ``publish-artifact(s)``, ``retire-artifact``)
        uses this user name, password, transport and CA; any other registry is reached
        anonymously over TLS (credentials never leave their host). A second ``with-registry``
        replaces the first. Fails when ``address`` is no ``HOST[:PORT]`` or only one of
        ``username`` and ``password`` is given.
        """
        with user_errors():
            Registry.check_access(address, username or None, password)
        chained = copy.copy(self)
        for name, value in zip(REGISTRY_FIELDS, (address, username, password, plain_http, ca_file), strict=True):
            setattr(chained, name, value)
        return chained

    @function(cache="never")  # type: ignore[call-overload]
    async def check(
        self,
        checkout: PlanCheckout,
        env: Annotated[str, Doc("only this environment (default: all)")] = "",
        registry: Annotated[str, Doc("also check the publishing rules against oci://HOST[:PORT]/PATH")] = "",
        timeout: Annotated[float, Doc("overall deadline of the registry work, in seconds")] = defaults.REGISTRY_TIMEOUT,
        base: Annotated[str, Doc("also refuse a chart changed since this commit SHA or branch without a higher "
                                 "chart_version (read from checkout's .git)")] = "",
    ) -> str:
        """Validate every config, render, lint and package every chart; a report line per item.

        With ``registry``, each chart is also checked against the publishing rules
        without pushing: a chart whose content changed without a chart_version bump,
        or whose version is lower than the highest published, fails the check.
        Fails listing every problem found (invalid config, lint error, manifest problem).
        """
        ws = await workspace(self.source, self.template, self.source_date_epoch)
        registry_args = await registry_flags(self, registry, timeout)
        base_root, base_ref = await base_tree(checkout, base, defaults.DEFAULT_BRANCH) if base else (None, "")
        return (await run(lambda: check.check(ws, env or None, registry_args, base=base_root, base_name=base_ref))).text

    @function(cache="never")  # type: ignore[call-overload]
    async def promote(
        self,
        checkout: Annotated[
            dagger.Directory,
            DefaultPath("/"),
            Ignore(REPOSITORY_IGNORE),
            Doc("the git checkout (env/ and .git; default: this repository) the change is committed in"),
        ],
        component: Annotated[str, Doc("the component to promote (or all)")] = "",
        all_: Annotated[bool, Doc("every component of the target that the source has")] = False,
        source_status: Annotated[
            dagger.File | None,
            Doc(
                "the source's HelmRelease as JSON (kubectl get helmrelease -o json): refuse unless healthy "
                "and running the source config's chart_version"
            ),
        ] = None,
        merge_request: Annotated[
            bool,
            Doc(
                "commit on promote/<to>/<component>-<version>, push, open or "
                "update a GitLab merge request (else: print the change only)"
            ),
        ] = False,
        gitlab_url: Annotated[str, Doc("GitLab base URL, e.g. $CI_SERVER_URL")] = "",
        gitlab_project: Annotated[str, Doc("project id or group/name path, e.g. $CI_PROJECT_ID")] = "",
        gitlab_token: Annotated[dagger.Secret | None, Doc("GitLab token (api and write_repository scopes)")] = None,
        target_branch: Annotated[str, Doc("the merge request's target branch")] = defaults.DEFAULT_BRANCH,
        remote: Annotated[str, Doc("git remote name or URL to push to")] = defaults.REMOTE,
        labels: Annotated[list[str], Doc("merge request labels")] = defaults.PROMOTION_LABELS,
        author: Annotated[str, Doc("commit author 'Name <email>'")] = defaults.COMMIT_AUTHOR,
        pipeline_url: Annotated[str, Doc("pipeline URL quoted as evidence, e.g. $CI_PIPELINE_URL")] = "",
        kubeconfig: Annotated[
            dagger.Secret | None,
            Doc("read the source's HelmRelease from the cluster (kubeconfig YAML); else source-status or the config"),
        ] = None,
        kube_context: KubeContextArg = "",
        from_: Annotated[
            str, Doc("source environment, e.g. dev (default: the promotion order, promote_from of environment.yaml)")
        ] = "",
        to: Annotated[
            str, Doc("target environment, e.g. prod (default: every step of the promotion order from --from)")
        ] = "",
        allow_prerelease: Annotated[
            bool, Doc("promote an image_tag that is a semver pre-release (e.g. 1.4.0-rc.1); refused otherwise")
        ] = False,
        timeout: Annotated[
            float, Doc("overall deadline of every git and GitLab step, in seconds (0: the default, 120)")
        ] = 0,
    ) -> str:
        """Carry what runs in ``from`` to ``to``'s config: promoted values, chart_version raised.

        Without ``from``/``to``, the repository's promotion order decides
        (``promote_from`` in ``env/<env>/environment.yaml``). Nothing new to promote
        is ``up to date``; a pre-release image is refused unless ``allow-prerelease``.

        With ``merge-request``: a line per component, ``promoted ...; merge request !N
        opened|updated|adopted: URL``, run twice it updates the same one. Without:
        the change each would make, as a unified diff (nothing written). Refuses an
        unhealthy source, nothing to promote, a target ahead.
        """
        ws = await workspace(checkout, self.template, self.source_date_epoch)
        status_path = None
        if source_status is not None:
            status_path = scratch() / "source-status.json"
            await source_status.export(str(status_path))
        cluster_config = await secret_value(kubeconfig, "kubeconfig")
        options = await merge_request_options(merge_request, gitlab_url, gitlab_project, gitlab_token, target_branch,
                                              remote, labels, author, pipeline_url)
        return (await run(lambda: promotion.promote(ws, from_ or None, to or None, component=component,
                                                    all_components=all_,
                                                    source_status=status_path, kubeconfig=cluster_config,
                                                    kube_context=kube_context, merge_request=options, write=False,
                                                    allow_prerelease=allow_prerelease, timeout=timeout or None))).text

    async def _plan(self, checkout: dagger.Directory, base: str, default_branch: str):
        """The workspace of ``checkout`` and the base tree the engine read from its ``.git``: (ws, root, name)."""
        ws = await workspace(checkout, self.template, self.source_date_epoch)
        base_root, ref = await base_tree(checkout, base, default_branch)
        if self.template is None:  # the base tree may name another git template
            fetched = await fetch_git_templates(base_root)
            ws = dataclasses.replace(ws, git_templates={**(ws.git_templates or {}), **fetched})
        return ws, base_root, ref

    @function
    async def plan(
        self,
        checkout: PlanCheckout,
        base: PlanBase = "",
        default_branch: DefaultBranch = defaults.DEFAULT_BRANCH,
        format: Annotated[str, Doc("table or json (the CLI's --output: dagger call owns --output)")] = "table",
    ) -> str:
        """What the change does to every environment x component: install, upgrade, refused, retire, upload, unchanged.

        The base tree is read by the engine from ``checkout``'s ``.git`` (the default
        ``--checkout`` includes it). Fails, with the plan in the message, when a
        target is refused. Never writes to a registry.
        """
        ws, base_root, ref = await self._plan(checkout, base, default_branch)
        return (await run(lambda: plan.plan_against(ws, base_root, ref, format))).text

    @function
    async def child_pipeline(
        self,
        checkout: PlanCheckout,
        base: PlanBase = "",
        default_branch: DefaultBranch = defaults.DEFAULT_BRANCH,
        ref: Annotated[str, Doc("the pipeline's branch (CI_COMMIT_REF_NAME)")] = "",
        merge_request: Annotated[str, Doc("merge request IID (CI_MERGE_REQUEST_IID), empty outside one")] = "",
        pipeline_iid: Annotated[str, Doc("pipeline IID (CI_PIPELINE_IID): numbers merge request pre-releases")] = "",
        branch_envs: Annotated[list[str], Doc("environments merge request pipelines deploy to")] = (
            defaults.BRANCH_ENVIRONMENTS
        ),
    ) -> dagger.File:
        """The GitLab child pipeline of the plan (``child-pipeline.yml``): one ``dagger call`` job per action.

        Environments not in ``branch_envs`` (prod) deploy only from the default branch;
        merge request pipelines publish pre-release versions. Fails when a target is refused.
        """
        ws, base_root, base_name = await self._plan(checkout, base, default_branch)
        out = scratch() / "child-pipeline.yml"
        return result_file((await run(lambda: plan.pipeline_against(
            ws, base_root, base_name, out, ref=ref, default_branch=default_branch, merge_request=merge_request,
            pipeline_iid=pipeline_iid, branch_envs=branch_envs))).path)
