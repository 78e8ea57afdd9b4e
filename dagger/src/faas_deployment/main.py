"""The Dagger module: ``dagger call`` over the same core as the ``faas-deploy`` CLI.

Chain: ``FaasDeployment`` (the repository) [-> ``with-registry --address HOST ...`` (the access
to one registry, for the rest of the chain)] -> ``env --name E`` (an
:class:`Environment`) -> ``component --name C`` (one chart). The functions are
thin: they export the source directory into the module runtime, run the core
(every verb through the one door, :class:`pipeline.Workspace`) in a worker thread, and return strings, Files or
Directories. A problem the user can fix surfaces as a Dagger function error with
the core's message and no Python traceback.

Engine rules this file follows (Dagger v0.21 source; ``tests/support/dagger_engine.py``
enforces each of them offline):

- object type names must not be core type names (``core/module.go``: a module type
  is namespaced only when its name is unknown, so ``class Env`` collides with the
  core ``Env`` type and the module fails to install);
- ``dag.current_module().workdir(path)`` / ``workdir_file(path)`` take only paths
  local to the function's working directory (``core/schema/module.go``,
  ``filepath.IsLocal``): every file a function returns is written under
  :func:`_scratch` and handed over by its relative path;
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
"""

from __future__ import annotations

import copy
import dataclasses
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar, overload

import anyio
import dagger
from dagger import DefaultPath, Doc, Ignore, dag, function, object_type

from . import pipeline as door
from ._dagger_errors import user_errors
from .core.errors import UserError
from .core.secrets import SecretValue
from .images import images_dagger
from .pipeline import Registry, Workspace

T = TypeVar("T")

#: What the default ``source`` uploads: ``env/`` (configs, ``dynamic/``), the repository
#: settings ``faas-deployment.yaml`` and ``templates/`` (where an in-repository chart
#: template lives), the trees the functions read. Everything else (``.git``, ``dist/``,
#: virtual environments, ``node_modules``, ...) stays on the caller's machine.
#: Dockerignore syntax: ``*`` drops every top-level entry, ``!env`` takes ``env/`` back.
SOURCE_IGNORE = ["*", "!env", f"!{door.REPOSITORY_SETTINGS}", f"!{door.TEMPLATES_DIR}", "env/**/__pycache__",
                 "env/**/.DS_Store"]
#: What ``promote`` and ``bump-merge-request`` upload: ``env/`` and the git
#: repository ``.git`` they commit in (and push from).
REPOSITORY_IGNORE = [*SOURCE_IGNORE, "!.git"]
#: What ``plan`` and ``pipeline`` upload: what ``source`` does, ``.git`` (the base tree is
#: read from it), ``.gitlab-ci.yml`` (the child pipeline copies its ``.dagger`` template)
#: and the embedded chart template (a change to it plans every chart).
# Two gaps in dagger-io's types (dagger/mod/_module.py), each silenced on its line by name: the
# overloads of ``function`` omit its ``cache`` parameter ([call-overload]), and mypy does not see
# the ``dataclass_transform`` of ``object_type`` through the module-level alias ([call-arg]).

_TEMPLATE_IN_REPOSITORY: Path = door.TEMPLATE_IN_REPOSITORY
PLAN_IGNORE = [*REPOSITORY_IGNORE, "!.gitlab-ci.yml", f"!{_TEMPLATE_IN_REPOSITORY.as_posix()}"]
#: Parameters shared by ``plan`` and ``pipeline``.
PlanRepository = Annotated[
    dagger.Directory, DefaultPath("/"), Ignore(PLAN_IGNORE),
    Doc("the git checkout (env/, .git, .gitlab-ci.yml, faas-deployment.yaml, templates/, the embedded chart "
        "template; default: this repository)"),
]
PlanBase = Annotated[str, Doc("base commit SHA or branch; all zeros or empty: the default branch")]
DefaultBranch = Annotated[str, Doc("the default branch (CI_DEFAULT_BRANCH)")]

# Parameter types shared by the Flux functions (deploy, wait).
KubeconfigArg = Annotated[dagger.Secret, Doc("kubeconfig of the cluster (YAML)")]
ReceiverTokenArg = Annotated[
    dagger.Secret | None, Doc("trigger through the Flux Receiver: its token (key token of its Secret)")
]
TriggerApiArg = Annotated[
    bool, Doc("trigger through the Kubernetes API instead (merge-patch reconcile.fluxcd.io/requestedAt)")
]
KubeContextArg = Annotated[str, Doc("kubeconfig context (default: its current context)")]
WaitTimeoutArg = Annotated[float, Doc("seconds to wait (default: deploy_timeout of environment.yaml)")]
RegistryOverrideArg = Annotated[str, Doc("override chart_registry of environment.yaml")]
# The arguments of with-registry: the access to one registry, given once in the chain.
RegistryAddressArg = Annotated[str, Doc(
    "the registry HOST[:PORT] this access is for, e.g. registry.example.org (no scheme, no path): the only host "
    "it reaches")]
UsernameArg = Annotated[str, Doc("registry user name")]
PasswordArg = Annotated[dagger.Secret | None, Doc("registry password or token")]
PlainHttpArg = Annotated[bool, Doc("HTTP instead of HTTPS (local test registries only)")]
CaFileArg = Annotated[dagger.File | None, Doc("PEM certificate of a private CA to trust for the registry's TLS")]
#: The private fields every object carries the with-registry access in, from the main object down to a
#: component (Dagger keeps an object's fields, a Secret's or File's as its ID, between calls: core/object.go).
REGISTRY_FIELDS = ("registry_address", "registry_username", "registry_password", "registry_plain_http",
                   "registry_ca_file")
ArtifactRepositoryArg = Annotated[str, Doc(
    "the OCI repository holding every component's app-<component> tags, oci://HOST[:PORT]/PATH "
    "(default: artifact_repository of environment.yaml)")]
PipelineIdArg = Annotated[str, Doc("with trigger-api: the job's CI_PIPELINE_ID, traced in "
                                   "reconcile.fluxcd.io/requestedAt (the runtime never sees the job's environment)")]
JobIdArg = Annotated[str, Doc("with trigger-api: the job's CI_JOB_ID, traced in reconcile.fluxcd.io/requestedAt")]
ReceiverUrlArg = Annotated[str, Doc("override receiver_url of environment.yaml")]
UploadManifestsArg = Annotated[dagger.Secret | None, Doc(
    "admin API token: once the operator runs the new chart, upload env/<env>/operator/dynamic/")]
DeployAdminUrlArg = Annotated[str, Doc("with upload-manifests: override admin_url of environment.yaml")]
PrereleaseArg = Annotated[str, Doc("publish chart_version as the pre-release <chart_version>-ID, e.g. mr.42.3")]
ImmutableTagsArg = Annotated[bool, Doc("the registry refuses to overwrite a tag (Harbor tag immutability, ECR "
                                      "IMMUTABLE): publish without the publish lease")]


async def _run(fn: Callable[[], T]) -> T:
    """Run core code off the event loop; a UserError becomes a clean function error."""
    with user_errors():
        return await anyio.to_thread.run_sync(fn)


def _scratch() -> Path:
    """A fresh directory under the function's working directory, as a relative path.

    Only paths local to that directory can be handed to ``workdir`` /
    ``workdir_file``; :func:`_workdir_path` turns any path under it into one.
    """
    path = Path("faas-scratch") / uuid.uuid4().hex
    path.mkdir(parents=True)
    return path


def _workdir_path(path: Path) -> str:
    """``path`` relative to the working directory, as ``workdir(path)`` accepts it.

    Raises:
        RuntimeError: ``path`` is outside the working directory (a bug: every
            output is written under :func:`_scratch`).
    """
    relative = os.path.relpath(Path(path).resolve(), Path.cwd())
    if relative == ".." or relative.startswith(("../", "/")):
        raise RuntimeError(f"{path} is outside the function's working directory")
    return relative


def _dir(path: Path | None) -> dagger.Directory:
    """The directory a verb wrote (its result's ``path``)."""
    assert path is not None, "the verb's result names no directory"
    return dag.current_module().workdir(_workdir_path(path))


def _file(path: Path | None) -> dagger.File:
    """The file a verb wrote (its result's ``path``)."""
    assert path is not None, "the verb's result names no file"
    return dag.current_module().workdir_file(_workdir_path(path))


async def _base_tree(repository: dagger.Directory, base: str, default_branch: str) -> tuple[Path, str]:
    """The base tree of ``plan`` and ``check --base``, read by the engine from ``repository``'s ``.git``; (root, ref).

    An empty or all-zeros ``base`` (a branch's first push) is the merge base of ``HEAD``
    and the default branch (``GitRef.commonAncestor``), as the CLI's ``git merge-base``.
    """
    chosen = Workspace.engine_base(base, default_branch)
    git = repository.as_git()
    found = {"commit": git.commit, "ref": git.ref, "branch": git.branch}[chosen.kind](chosen.ref)
    if chosen.merge_base:
        found = found.common_ancestor(git.head())
    ref = chosen.name
    base_root = _scratch().resolve() / "base"
    try:
        await found.tree().export(str(base_root))
    except dagger.QueryError as exc:
        with user_errors():
            raise UserError(f"cannot read the base {ref!r} from the repository's .git "
                            f"(a shallow clone? set GIT_DEPTH: 0): {exc}") from None
    return base_root, ref


async def _workspace(source: dagger.Directory, template: dagger.Directory | None,
                     source_date_epoch: str = "") -> Workspace:
    """The door over ``source`` exported into the runtime; ``source_date_epoch``: the job's, as passed (the
    runtime container never sees the job's environment).

    Without ``template``, the repository's ``faas-deployment.yaml`` names the template
    (the door reads it); a git template is fetched here, by the engine (the runtime has
    no git), and handed to the door.
    """
    root = _scratch().resolve()
    await source.export(str(root / "source"))
    template_dir = None
    if template is not None:
        template_dir = root / "template"
        await template.export(str(template_dir))
    git_templates = {} if template is not None else await _git_templates(root / "source")
    return Workspace(root / "source", template_dir, source_date_epoch=source_date_epoch or None,
                     git_templates=git_templates, environ={})  # CI defaults: the explicit argument, else none


async def _git_templates(*trees: Path) -> dict[str, Path]:
    """The git templates the ``faas-deployment.yaml`` of ``trees`` name, fetched by the engine, by identity.

    ``dag.git(URL).commit(SHA).tree()`` (a full SHA: the engine takes it as a commit);
    credentials are the caller's git credentials, forwarded by the Dagger CLI.
    """
    fetched: dict[str, Path] = {}
    for tree in trees:
        with user_errors():
            setting = Workspace.git_template(tree)
        if setting is None or setting.identity in fetched:
            continue
        directory = dag.git(setting.url).commit(setting.commit).tree()
        if setting.directory:
            directory = directory.directory(setting.directory)
        local = _scratch().resolve() / "template"
        try:
            await directory.export(str(local))
        except dagger.QueryError as exc:
            with user_errors():
                raise UserError(
                    f"{door.REPOSITORY_SETTINGS}: template: cannot fetch {setting.identity}: {exc}"
                ) from None
        fetched[setting.identity] = local
    return fetched


@overload
async def _secret(secret: dagger.Secret, name: str) -> SecretValue: ...


@overload
async def _secret(secret: dagger.Secret | None, name: str) -> SecretValue | None: ...


async def _secret(secret: dagger.Secret | None, name: str) -> SecretValue | None:
    return None if secret is None else SecretValue(await secret.plaintext(), f"dagger secret {name}")


def _carried(obj: FaasDeployment | Environment | Component) -> dict[str, Any]:
    """The with-registry access ``obj`` holds (:data:`REGISTRY_FIELDS`), for the object it hands on."""
    return {name: getattr(obj, name) for name in REGISTRY_FIELDS}


async def _registry(access: FaasDeployment | Environment | Component, registry: str, timeout: float | None = None,
                    immutable_tags: bool = False) -> Registry:
    """A function's registry parameters with the chain's with-registry access, as the door takes them (the
    secret and the CA file read from Dagger); the door sends the access to its host only (``Registry.for_url``)."""
    return Registry(registry or None, access.registry_username or None,
                    await _secret(access.registry_password, "password"), access.registry_plain_http, timeout,
                    await _ca_path(access.registry_ca_file), immutable_tags, host=access.registry_address or None)


async def _ca_path(ca_file: dagger.File | None) -> Path | None:
    """The ``ca_file`` exported under the working directory, or ``None``."""
    if ca_file is None:
        return None
    path = _scratch() / "ca.crt"
    await ca_file.export(str(path))
    return path


async def _merge_request(merge_request: bool, gitlab_url: str, gitlab_project: str, token: dagger.Secret | None,
                         target_branch: str, remote: str, labels: list[str], author: str,
                         pipeline_url: str) -> door.MergeRequestOptions | None:
    """The merge request parameters of ``promote`` / ``bump-merge-request``; None without ``merge_request``."""
    if not merge_request:
        return None
    return door.MergeRequestOptions(gitlab_url, gitlab_project, await _secret(token, "gitlab-token"),
                                    target_branch=target_branch, remote=remote, labels=tuple(labels), author=author,
                                    pipeline_url=pipeline_url)


def _text(result: door.Result) -> str:
    """The result's lines, or a function error carrying them when a rollout did not end deployed."""
    if result.exit_code:
        raise UserError(result.text)
    return result.text


async def _manifests_dir(manifests_dir: dagger.Directory | None) -> Path | None:
    if manifests_dir is None:
        return None
    local = _scratch().resolve() / "manifests"
    await manifests_dir.export(str(local))
    return local


async def _deploy(access, source, template, env, component, receiver_token, trigger_api, kubeconfig, kube_context,
                  registry, timeout, upload_token, prerelease="", immutable_tags=False, source_date_epoch="",
                  pipeline_id="", job_id="", receiver_url="", admin_url="") -> str:
    """``deploy`` for both Dagger objects: secrets read from Dagger, the door does the rest; ``access``: the
    object holding the chain's with-registry access.

    ``pipeline_id`` / ``job_id``: the job's ``CI_PIPELINE_ID`` / ``CI_JOB_ID`` as passed (the
    runtime never sees the job's environment), traced by ``--trigger-api`` as the CLI does.
    """
    ws = await _workspace(source, template, source_date_epoch)
    registry_args = await _registry(access, registry, immutable_tags=immutable_tags)
    tokens = [await _secret(receiver_token, "receiver_token"), await _secret(kubeconfig, "kubeconfig"),
              await _secret(upload_token, "upload_manifests")]
    result = await _run(lambda: ws.deploy(env, component=component, registry=registry_args, receiver_token=tokens[0],
                                          trigger_api=trigger_api, kubeconfig=tokens[1], kube_context=kube_context,
                                          timeout=timeout or None, upload_token=tokens[2], prerelease=prerelease,
                                          receiver_url=receiver_url or None, admin_url=admin_url or None,
                                          environ={"CI_PIPELINE_ID": pipeline_id, "CI_JOB_ID": job_id}))
    with user_errors():
        return _text(result)


@object_type
class Component:
    """One component (operator, controller, ...) of one environment: its config and chart."""

    source: Annotated[dagger.Directory, Doc("repository root holding env/")]
    template: Annotated[dagger.Directory | None, Doc("cookiecutter template; None means the embedded one")]
    env: Annotated[str, Doc("environment name (env/<env>/)")]
    name: Annotated[str, Doc("component name (env/<env>/<component>/)")]
    source_date_epoch: Annotated[
        str, Doc("SOURCE_DATE_EPOCH of the job (seconds): the mtime of every packaged file; empty: 0")
    ] = ""
    registry_address: Annotated[str, Doc("with-registry: the registry HOST[:PORT] the access is for")] = ""
    registry_username: Annotated[str, Doc("with-registry: registry user name")] = ""
    registry_password: Annotated[dagger.Secret | None, Doc("with-registry: registry password or token")] = None
    registry_plain_http: Annotated[bool, Doc("with-registry: that registry speaks HTTP")] = False
    registry_ca_file: Annotated[dagger.File | None, Doc("with-registry: PEM certificate of that registry's CA")] = None

    @function
    async def config(self) -> str:
        """The validated, resolved cookiecutter context as YAML (``default_context: {...}``).

        Fails with every problem found (file, key, what was expected) when the config is invalid.
        """
        ws = await _workspace(self.source, self.template, self.source_date_epoch)
        return (await _run(lambda: ws.config(self.env, self.name))).text

    @function
    async def objects(self) -> str:
        """The chart's Kubernetes objects as ``helm template`` renders them (release chart_name, namespace default).

        One YAML stream, each document preceded by ``# Source: <template path>``.
        """
        ws = await _workspace(self.source, self.template, self.source_date_epoch)
        return (await _run(lambda: ws.rendered_objects(self.env, self.name))).text

    @function
    async def chart(self) -> dagger.Directory:
        """The rendered chart directory (validated, rendered by cookiecutter, linted by Helm)."""
        ws = await _workspace(self.source, self.template, self.source_date_epoch)
        out = _scratch()
        result = await _run(lambda: ws.chart(self.env, self.name, out))
        return _dir(result.path)

    @function
    async def package(self) -> dagger.File:
        """The reproducible chart package ``<chart_name>-<chart_version>.tgz``."""
        ws = await _workspace(self.source, self.template, self.source_date_epoch)
        out = _scratch()
        result = await _run(lambda: ws.package(self.env, self.name, out))
        return _file(result.path)

    @function(cache="never")  # type: ignore[call-overload]
    async def publish(
        self,
        registry: Annotated[str, Doc("OCI repository root, oci://HOST[:PORT]/PATH")],
        immutable_tags: ImmutableTagsArg = False,
        prerelease: PrereleaseArg = "",
        timeout: Annotated[float, Doc("overall deadline of the registry work, in seconds")] = door.REGISTRY_TIMEOUT,
    ) -> str:
        """Publish this chart: one line, ``pushed <ref>@<digest>`` or ``unchanged <ref>@<digest>``.

        Rules (docs/design.md): an absent version is pushed; the same digest is
        ``unchanged``; other content under a published version, or a version lower
        than the highest published, is refused (bump chart_version).
        """
        ws = await _workspace(self.source, self.template, self.source_date_epoch)
        registry_args = await _registry(self, registry, timeout, immutable_tags)
        return (await _run(lambda: ws.publish(self.env, self.name, registry_args, prerelease=prerelease))).text

    @function
    def build_image(
        self,
        context: Annotated[dagger.Directory, Doc("the component's source directory (a path or a git URL)")],
        dockerfile: Annotated[str, Doc("Dockerfile path inside the context")] = door.DOCKERFILE,
        # An immutable default; Dagger passes a list (mypy: a tuple is not a list).
        build_args: Annotated[list[str], Doc("build arguments NAME=VALUE (not for secrets)")] = (),  # type: ignore[assignment]
        target: Annotated[str, Doc("build stage to stop at (default: the last)")] = "",
        platform: Annotated[str, Doc("target platform os/arch (default: linux/amd64, what the clusters run)")] = (
            door.DEFAULT_PLATFORM
        ),
        revision: Annotated[str, Doc("org.opencontainers.image.revision label, e.g. the commit SHA")] = "",
        source_url: Annotated[str, Doc("org.opencontainers.image.source label, the code's URL")] = "",
    ) -> dagger.Container:
        """The component's image built from ``context`` with its Dockerfile (lazy: nothing runs until used).

        Carries the OCI labels ``org.opencontainers.image.revision`` and ``.source`` when given.
        """
        with user_errors():
            image = Workspace.image_recipe(dockerfile=dockerfile, build_args=build_args, target=target,
                                           platform=platform, revision=revision, source_url=source_url)
            return images_dagger.dagger_build(context, image.options, labels=image.labels)

    @function(cache="never")  # type: ignore[call-overload]
    async def publish_image(
        self,
        context: Annotated[dagger.Directory, Doc("the component's source directory (a path or a git URL)")],
        tag: Annotated[str, Doc("image tag, typically the commit SHA")],
        dockerfile: Annotated[str, Doc("Dockerfile path inside the context")] = door.DOCKERFILE,
        # An immutable default; Dagger passes a list (mypy: a tuple is not a list).
        build_args: Annotated[list[str], Doc("build arguments NAME=VALUE (not for secrets)")] = (),  # type: ignore[assignment]
        target: Annotated[str, Doc("build stage to stop at (default: the last)")] = "",
        platform: Annotated[str, Doc("target platform os/arch (default: linux/amd64, what the clusters run)")] = (
            door.DEFAULT_PLATFORM
        ),
        revision: Annotated[str, Doc("org.opencontainers.image.revision label (default: the tag)")] = "",
        source_url: Annotated[str, Doc("org.opencontainers.image.source label, the code's URL")] = "",
    ) -> str:
        """Build the image and push it to the config's ``image_repository`` as ``:tag``.

        Returns ``pushed <image_repository>:<tag>@sha256:<digest>``; a tag that already
        exists is refused, never overwritten (docs/images.md). Labels: ``images.image_labels``.
        Credentials: the chain's ``with-registry``, when given for the image_repository's host, through
        Dagger's registry auth, never a URL.
        """
        ws = await _workspace(self.source, self.template, self.source_date_epoch)
        image = await _run(lambda: ws.image_build(self.env, self.name, tag=tag, dockerfile=dockerfile,
                                                  build_args=build_args, target=target, platform=platform,
                                                  revision=revision, source_url=source_url))
        with user_errors():
            container, address = images_dagger.dagger_publish_chain(
                images_dagger.dagger_build(context, image.options, labels=image.labels),
                repository=image.repository, tag=tag, username=self.registry_username,
                password=self.registry_password, host=self.registry_address or None,
            )
        secret = await _secret(self.registry_password, "password")
        with user_errors():
            return await images_dagger.publish(container, address, username=self.registry_username, password=secret,
                                               host=self.registry_address or None)

    @function
    async def bump(
        self,
        image_tag: Annotated[str, Doc("the new image tag, typically the commit SHA")],
        part: Annotated[str, Doc("semver part of chart_version to raise: patch, minor or major")] = door.BUMP_PART,
    ) -> dagger.File:
        """The component's ``cookiecutter-config.yaml`` with ``image_tag`` set and ``chart_version`` raised.

        Only those two values change (comments, order and quoting kept); the result
        is validated. Export it over the original, commit, and the next release
        publishes one new chart version.
        """
        ws = await _workspace(self.source, self.template, self.source_date_epoch)
        result = await _run(lambda: ws.bump(self.env, self.name, image_tag=image_tag, part=part))
        return dag.file("cookiecutter-config.yaml", result.data["text"])

    @function(cache="never")  # type: ignore[call-overload]
    async def bump_merge_request(
        self,
        image_tag: Annotated[str, Doc("the new image tag, typically the commit SHA")],
        gitlab_url: Annotated[str, Doc("GitLab base URL, e.g. $CI_SERVER_URL")],
        gitlab_project: Annotated[str, Doc("project id or group/name path, e.g. $CI_PROJECT_ID")],
        gitlab_token: Annotated[dagger.Secret, Doc("GitLab token (api and write_repository scopes)")],
        repository: Annotated[
            dagger.Directory,
            DefaultPath("/"),
            Ignore(REPOSITORY_IGNORE),
            Doc("the git checkout (env/ and .git; default: this repository) the change is committed in"),
        ],
        part: Annotated[str, Doc("semver part of chart_version to raise: patch, minor or major")] = door.BUMP_PART,
        target_branch: Annotated[str, Doc("the merge request's target branch")] = door.DEFAULT_BRANCH,
        remote: Annotated[str, Doc("git remote name or URL to push to")] = door.REMOTE,
        # An immutable default; Dagger passes a list (mypy: a tuple is not a list).
        labels: Annotated[list[str], Doc("merge request labels")] = door.BUMP_LABELS,  # type: ignore[assignment]
        author: Annotated[str, Doc("commit author 'Name <email>'")] = door.COMMIT_AUTHOR,
        pipeline_url: Annotated[str, Doc("pipeline URL quoted in the description, e.g. $CI_PIPELINE_URL")] = "",
        timeout: Annotated[float, Doc("overall deadline of every git and GitLab step, in seconds "
                                      "(0: the default, 120)")] = 0,
    ) -> str:
        """``bump`` as a merge request: the bumped config committed on ``bump/<env>/<component>-<version>``.

        Made on the remote target branch's config; pushed, and a GitLab merge request
        opened or updated (older ``bump/<env>/<component>-*`` ones closed). Returns the
        bump line, the branch's fate and ``merge request !N opened|updated|adopted: URL``;
        the same image tag again is ``up to date``.
        """
        ws = await _workspace(repository, self.template, self.source_date_epoch)
        options = await _merge_request(True, gitlab_url, gitlab_project, gitlab_token, target_branch, remote, labels,
                                       author, pipeline_url)
        return (await _run(lambda: ws.bump(self.env, self.name, image_tag=image_tag, part=part,
                                           merge_request=options, timeout=timeout or None))).text

    @function(cache="never")  # type: ignore[call-overload]
    async def publish_artifact(
        self,
        registry: ArtifactRepositoryArg = "",
        manifests: Annotated[dagger.Directory | None, Doc(
            "plain Kubernetes manifests to push instead of the rendered chart")] = None,
        revision: Annotated[
            str, Doc("org.opencontainers.image.revision, <branch>@sha1:<sha> (default: the source's git)")
        ] = "",
        source_url: Annotated[str, Doc("org.opencontainers.image.source (default: the source's git origin)")] = "",
    ) -> str:
        """Push this component's rendered objects as a Flux OCI artifact; one line.

        Tags ``app-<component>-<chart_version>`` (immutable: same content unchanged,
        other content refused) and ``app-<component>`` (re-pointed only when the
        content changed). Line: ``pushed|unchanged <repo>:app-<c>-<v>; moved|unchanged <repo>:app-<c>@<digest>``.
        """
        ws = await _workspace(self.source, self.template, self.source_date_epoch)
        registry_args = await _registry(self, registry)
        local = await _manifests_dir(manifests)
        return (await _run(lambda: ws.publish_artifact(self.env, registry_args, self.name, manifests_dir=local,
                                                       revision=revision, source_url=source_url))).text

    @function(cache="never")  # type: ignore[call-overload]
    async def retire_artifact(
        self,
        registry: Annotated[
            str,
            Doc(
                "the OCI repository holding the app-<component> tags, oci://HOST[:PORT]/PATH "
                "(default: artifact_repository of environment.yaml)"
            ),
        ] = "",
    ) -> str:
        """Delete the tag ``app-<component>`` (the component was removed): Flux then uninstalls it.

        The immutable ``app-<component>-<version>`` tags are kept. One line:
        ``retired <repo>:app-<c>@<digest>`` or ``absent <repo>:app-<c>``.
        """
        ws = await _workspace(self.source, self.template, self.source_date_epoch)
        registry_args = await _registry(self, registry)
        return (await _run(lambda: ws.retire_artifact(self.env, self.name, registry_args))).text

    @function(cache="never")  # type: ignore[call-overload]
    async def deploy(
        self,
        kubeconfig: KubeconfigArg,
        receiver_token: ReceiverTokenArg = None,
        trigger_api: TriggerApiArg = False,
        kube_context: KubeContextArg = "",
        registry: RegistryOverrideArg = "",
        immutable_tags: ImmutableTagsArg = False,
        timeout: WaitTimeoutArg = 0,
        receiver_url: ReceiverUrlArg = "",
        upload_manifests: UploadManifestsArg = None,
        admin_url: DeployAdminUrlArg = "",
        prerelease: PrereleaseArg = "",
        pipeline_id: PipelineIdArg = "",
        job_id: JobIdArg = "",
    ) -> str:
        """Publish this chart, notify Flux's Receiver, wait until the HelmRelease runs the pushed version.

        Returns the lines (publish, notify, ``deployed <chart>@<version> to <ns>/<name> in N s``);
        fails with the controller's message when the rollout failed, was superseded or timed out.
        """
        return await _deploy(self, self.source, self.template, self.env, self.name, receiver_token, trigger_api,
                             kubeconfig, kube_context, registry, timeout, upload_manifests, prerelease,
                             immutable_tags=immutable_tags,
                             source_date_epoch=self.source_date_epoch, pipeline_id=pipeline_id, job_id=job_id,
                             receiver_url=receiver_url, admin_url=admin_url)

    @function(cache="never")  # type: ignore[call-overload]
    async def wait(
        self,
        kubeconfig: KubeconfigArg,
        kube_context: KubeContextArg = "",
        timeout: WaitTimeoutArg = 0,
    ) -> str:
        """Wait until this component's HelmRelease runs the chart its config describes (nothing published).

        Returns ``deployed <chart>@<version> to <ns>/<name> in N s``; fails on a failed,
        superseded or timed-out rollout with the controller's message.
        """
        ws = await _workspace(self.source, self.template, self.source_date_epoch)
        config = await _secret(kubeconfig, "kubeconfig")
        result = await _run(lambda: ws.wait(self.env, component=self.name, kubeconfig=config, kube_context=kube_context,
                                            timeout=timeout or None))
        with user_errors():
            return _text(result)

    @function(cache="never")  # type: ignore[call-overload]
    async def wait_artifact(
        self,
        digest: Annotated[str, Doc("the Flux OCI artifact's manifest digest publish-artifact pushed, sha256:<hex>")],
        kubeconfig: KubeconfigArg,
        namespace: Annotated[str, Doc("namespace of the Kustomization app-<component>")] = door.FLUX_NAMESPACE,
        kube_context: KubeContextArg = "",
        timeout: WaitTimeoutArg = 0,
    ) -> str:
        """Wait until Kustomization ``app-<component>`` is Ready with ``lastAppliedRevision`` carrying ``digest``.

        Returns ``deployed app-<c>@<digest> to <ns>/app-<c> in N s``; fails on a failed
        or timed-out reconciliation with the controller's message.
        """
        ws = await _workspace(self.source, self.template, self.source_date_epoch)
        config = await _secret(kubeconfig, "kubeconfig")
        result = await _run(lambda: ws.wait(self.env, component=self.name, kubeconfig=config, kube_context=kube_context,
                                            timeout=timeout or None, artifact=digest, artifact_namespace=namespace))
        with user_errors():
            return _text(result)


@object_type
class Environment:
    """One environment (dev, prod, ...): its components, charts and operator manifests.

    Named ``Environment``, not ``Env``: ``Env`` is a core Dagger type and the engine
    refuses a module that defines it again (``dagger call env --name E`` is the
    function that returns this object).
    """

    source: Annotated[dagger.Directory, Doc("repository root holding env/")]
    template: Annotated[dagger.Directory | None, Doc("cookiecutter template; None means the embedded one")]
    name: Annotated[str, Doc("environment name (env/<env>/)")]
    source_date_epoch: Annotated[
        str, Doc("SOURCE_DATE_EPOCH of the job (seconds): the mtime of every packaged file; empty: 0")
    ] = ""
    registry_address: Annotated[str, Doc("with-registry: the registry HOST[:PORT] the access is for")] = ""
    registry_username: Annotated[str, Doc("with-registry: registry user name")] = ""
    registry_password: Annotated[dagger.Secret | None, Doc("with-registry: registry password or token")] = None
    registry_plain_http: Annotated[bool, Doc("with-registry: that registry speaks HTTP")] = False
    registry_ca_file: Annotated[dagger.File | None, Doc("with-registry: PEM certificate of that registry's CA")] = None

    @function
    def component(self, name: Annotated[str, Doc("component name, e.g. operator or controller")]) -> Component:
        """One component of this environment."""
        return Component(  # type: ignore[call-arg]
            source=self.source, template=self.template, env=self.name, name=name,
            source_date_epoch=self.source_date_epoch, **_carried(self))

    @function(cache="never")  # type: ignore[call-overload]
    async def release(
        self,
        registry: Annotated[str, Doc("OCI repository root, oci://HOST[:PORT]/PATH")],
        immutable_tags: ImmutableTagsArg = False,
        timeout: Annotated[float, Doc("overall deadline of the registry work, in seconds")] = door.REGISTRY_TIMEOUT,
        skip_image_check: Annotated[
            bool, Doc("do not check that each chart's image exists (air-gapped registries)")
        ] = False,
    ) -> str:
        """Publish every component's chart of this environment concurrently; a line per component.

        Every chart is validated and packaged first, and each chart's image must exist in its
        registry when that registry can be reached: if any fails, nothing is published.
        """
        ws = await _workspace(self.source, self.template, self.source_date_epoch)
        registry_args = await _registry(self, registry, timeout, immutable_tags)
        return (await _run(lambda: ws.release(self.name, registry_args, check_images=not skip_image_check))).text

    @function
    async def local_repository(self) -> dagger.Directory:
        """This environment's classic Helm repository ``dist/charts/<env>/`` with its charts published into it.

        The embedded default of ``release`` without a registry (same rules; one
        repository per environment, so one environment's versions never constrain
        another's), built from the ``dist/charts/<env>/`` of ``source`` (empty with the
        default source, which uploads ``env/`` only); export it with
        ``export --path dist/charts/<env>``.
        """
        ws = await _workspace(self.source, self.template, self.source_date_epoch)
        result = await _run(lambda: ws.local_repository(self.name))
        return _dir(result.path)

    @function
    async def manifests(self) -> dagger.File:
        """The reproducible zip bundle of ``env/<env>/operator/dynamic/`` (``<env>.zip``).

        Entries sorted, fixed timestamps and permissions, paths relative to
        ``dynamic/``: the same files give the same bytes. Fails listing every problem
        found (non-manifest file, invalid YAML, symbolic link, ...), each by path.
        """
        ws = await _workspace(self.source, self.template, self.source_date_epoch)
        out = _scratch() / f"{self.name}.zip"
        result = await _run(lambda: ws.bundle(self.name, out, quiet=True))
        return _file(result.path)

    @function(cache="never")  # type: ignore[call-overload]
    async def upload_manifests(
        self,
        token: Annotated[dagger.Secret, Doc("admin API bearer token")],
        admin_url: Annotated[str, Doc("operator admin API base URL (default: admin_url of environment.yaml)")] = "",
        ready_path: Annotated[str, Doc("readiness path: GET, any 2xx means ready")] = door.READY_PATH,
        upload_path: Annotated[str, Doc("upload path: POST multipart field file")] = door.UPLOAD_PATH,
        timeout: Annotated[float, Doc("overall deadline for readiness plus upload, in seconds")] = (
            door.UPLOAD_TIMEOUT
        ),
    ) -> str:
        """Bundle ``dynamic/``, wait for the operator admin API to be ready, upload the bundle once.

        Returns one line: ``uploaded <sha256> (<bytes> bytes, <n> files) to <url>: HTTP <status> <answer>``.
        Readiness polls with capped exponential backoff and jitter; 5xx, 429 and
        broken connections are retried until the deadline; 401/403 and other 4xx
        fail at once. Keep the bundle as an artifact with ``manifests``.
        """
        ws = await _workspace(self.source, self.template, self.source_date_epoch)
        out = _scratch() / f"{self.name}.zip"
        secret = await _secret(token, "token")
        return (await _run(lambda: ws.upload_manifests(self.name, secret, admin_url=admin_url or None,
                                                       ready_path=ready_path, upload_path=upload_path,
                                                       timeout=timeout, out=out))).text

    @function(cache="never")  # type: ignore[call-overload]
    async def publish_artifacts(
        self,
        registry: ArtifactRepositoryArg = "",
        revision: Annotated[
            str, Doc("org.opencontainers.image.revision, <branch>@sha1:<sha> (default: the source's git)")
        ] = "",
        source_url: Annotated[str, Doc("org.opencontainers.image.source (default: the source's git origin)")] = "",
    ) -> str:
        """Push every component's rendered objects as Flux OCI artifacts; a line per component.

        Every component is rendered first: if any fails, nothing is pushed.
        """
        ws = await _workspace(self.source, self.template, self.source_date_epoch)
        registry_args = await _registry(self, registry)
        return (await _run(lambda: ws.publish_artifact(self.name, registry_args, revision=revision,
                                                       source_url=source_url))).text

    @function
    async def artifact_objects(
        self,
        repository: Annotated[str, Doc("the artifact repository the objects watch, oci://HOST[:PORT]/PATH")],
        name: Annotated[str, Doc("the objects' name (default: faas-<env>)")] = "",
        namespace: Annotated[str, Doc("namespace of the Flux objects")] = door.FLUX_NAMESPACE,
        target_namespace: Annotated[str, Doc("namespace the manifests are applied in (default: namespace of "
                                             "env/<env>/environment.yaml)")] = "",
        registry_secret: Annotated[str, Doc("docker-config Secret for the registry (empty: anonymous)")] = "",
        receiver_secret: Annotated[str, Doc("Secret holding the Receiver token")] = door.RECEIVER_SECRET,
        plain_http: Annotated[bool, Doc("insecure: true (a plain HTTP registry; tests only)")] = False,
    ) -> dagger.Directory:
        """The Flux Operator objects watching the artifacts: ResourceSetInputProvider, ResourceSet, Receiver
        (YAML files)."""
        ws = await _workspace(self.source, self.template, self.source_date_epoch)
        out = _scratch()
        result = await _run(lambda: ws.artifact_objects(
            self.name, repository, out, name=name, namespace=namespace, target_namespace=target_namespace,
            registry_secret=registry_secret, receiver_secret=receiver_secret, plain_http=plain_http))
        return _dir(result.path)

    @function
    async def flux(
        self,
        registry_secret: Annotated[
            str, Doc("docker-config Secret the OCIRepositories pull with (empty: anonymous)")
        ] = "",
        plain_http: Annotated[bool, Doc("insecure: true (a plain HTTP registry; tests only)")] = False,
    ) -> dagger.Directory:
        """The Flux objects of this environment: per component an OCIRepository and a HelmRelease, one Receiver.

        Names and places come from ``env/<env>/environment.yaml``; apply them to the cluster
        (``kubectl apply -f``) or commit them to the Flux repository.
        """
        ws = await _workspace(self.source, self.template, self.source_date_epoch)
        out = _scratch()
        result = await _run(lambda: ws.flux(self.name, out, registry_secret=registry_secret, plain_http=plain_http))
        return _dir(result.path)

    @function(cache="never")  # type: ignore[call-overload]
    async def wait(
        self,
        kubeconfig: KubeconfigArg,
        kube_context: KubeContextArg = "",
        timeout: WaitTimeoutArg = 0,
    ) -> str:
        """Wait until every component's HelmRelease runs the chart its config describes, concurrently.

        A line per component (``deployed <chart>@<version> to <ns>/<name> in N s``); fails
        on a failed, superseded or timed-out rollout with the controller's message.
        """
        ws = await _workspace(self.source, self.template, self.source_date_epoch)
        config = await _secret(kubeconfig, "kubeconfig")
        result = await _run(lambda: ws.wait(self.name, kubeconfig=config, kube_context=kube_context,
                                            timeout=timeout or None))
        with user_errors():
            return _text(result)

    @function(cache="never")  # type: ignore[call-overload]
    async def deploy(
        self,
        kubeconfig: KubeconfigArg,
        receiver_token: ReceiverTokenArg = None,
        trigger_api: TriggerApiArg = False,
        kube_context: KubeContextArg = "",
        registry: RegistryOverrideArg = "",
        immutable_tags: ImmutableTagsArg = False,
        timeout: WaitTimeoutArg = 0,
        receiver_url: ReceiverUrlArg = "",
        upload_manifests: UploadManifestsArg = None,
        admin_url: DeployAdminUrlArg = "",
        prerelease: PrereleaseArg = "",
        pipeline_id: PipelineIdArg = "",
        job_id: JobIdArg = "",
    ) -> str:
        """Publish every chart of this environment, notify Flux's Receiver, wait for every HelmRelease concurrently.

        With ``upload_manifests`` the bundle goes to the operator only after its
        HelmRelease runs the pushed version and its admin API is ready. Fails with the
        controller's message when a rollout failed, was superseded or timed out.
        """
        return await _deploy(self, self.source, self.template, self.name, None, receiver_token, trigger_api, kubeconfig,
                             kube_context, registry, timeout, upload_manifests, prerelease,
                             immutable_tags=immutable_tags,
                             source_date_epoch=self.source_date_epoch, pipeline_id=pipeline_id, job_id=job_id,
                             receiver_url=receiver_url, admin_url=admin_url)


@object_type
class FaasDeployment:
    """Deployment pipeline of the FaaS platform: chart releases, images and operator manifests."""

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
            **_carried(self))

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
        repository: PlanRepository,
        env: Annotated[str, Doc("only this environment (default: all)")] = "",
        registry: Annotated[str, Doc("also check the publishing rules against oci://HOST[:PORT]/PATH")] = "",
        timeout: Annotated[float, Doc("overall deadline of the registry work, in seconds")] = door.REGISTRY_TIMEOUT,
        base: Annotated[str, Doc("also refuse a chart changed since this commit SHA or branch without a higher "
                                 "chart_version (read from repository's .git)")] = "",
    ) -> str:
        """Validate every config, render, lint and package every chart; a report line per item.

        With ``registry``, each chart is also checked against the publishing rules
        without pushing: a chart whose content changed without a chart_version bump,
        or whose version is lower than the highest published, fails the check.
        Fails listing every problem found (invalid config, lint error, manifest problem).
        """
        ws = await _workspace(self.source, self.template, self.source_date_epoch)
        registry_args = await _registry(self, registry, timeout)
        base_root, base_ref = await _base_tree(repository, base, door.DEFAULT_BRANCH) if base else (None, "")
        return (await _run(lambda: ws.check(env or None, registry_args, base=base_root, base_name=base_ref))).text

    @function(cache="never")  # type: ignore[call-overload]
    async def promote(
        self,
        repository: Annotated[
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
        target_branch: Annotated[str, Doc("the merge request's target branch")] = door.DEFAULT_BRANCH,
        remote: Annotated[str, Doc("git remote name or URL to push to")] = door.REMOTE,
        labels: Annotated[list[str], Doc("merge request labels")] = door.PROMOTION_LABELS,
        author: Annotated[str, Doc("commit author 'Name <email>'")] = door.COMMIT_AUTHOR,
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
        ws = await _workspace(repository, self.template, self.source_date_epoch)
        status_path = None
        if source_status is not None:
            status_path = _scratch() / "source-status.json"
            await source_status.export(str(status_path))
        cluster_config = await _secret(kubeconfig, "kubeconfig")
        options = await _merge_request(merge_request, gitlab_url, gitlab_project, gitlab_token, target_branch, remote,
                                       labels, author, pipeline_url)
        return (await _run(lambda: ws.promote(from_ or None, to or None, component=component, all_components=all_,
                                              source_status=status_path, kubeconfig=cluster_config,
                                              kube_context=kube_context, merge_request=options, write=False,
                                              allow_prerelease=allow_prerelease, timeout=timeout or None))).text

    async def _plan(self, repository: dagger.Directory, base: str, default_branch: str):
        """The workspace of ``repository`` and the base tree the engine read from its ``.git``: (ws, root, name)."""
        ws = await _workspace(repository, self.template, self.source_date_epoch)
        base_root, ref = await _base_tree(repository, base, default_branch)
        if self.template is None:  # the base tree may name another git template
            ws = dataclasses.replace(ws, git_templates={**(ws.git_templates or {}), **await _git_templates(base_root)})
        return ws, base_root, ref

    @function
    async def plan(
        self,
        repository: PlanRepository,
        base: PlanBase = "",
        default_branch: DefaultBranch = door.DEFAULT_BRANCH,
        format: Annotated[str, Doc("table or json (the CLI's --output: dagger call owns --output)")] = "table",
    ) -> str:
        """What the change does to every environment x component: install, upgrade, refused, retire, upload, unchanged.

        The base tree is read by the engine from ``repository``'s ``.git`` (the default
        ``--repository`` includes it). Fails, with the plan in the message, when a
        target is refused. Never writes to a registry.
        """
        ws, base_root, ref = await self._plan(repository, base, default_branch)
        return (await _run(lambda: ws.plan_against(base_root, ref, format))).text

    @function
    async def pipeline(
        self,
        repository: PlanRepository,
        base: PlanBase = "",
        default_branch: DefaultBranch = door.DEFAULT_BRANCH,
        ref: Annotated[str, Doc("the pipeline's branch (CI_COMMIT_REF_NAME)")] = "",
        merge_request: Annotated[str, Doc("merge request IID (CI_MERGE_REQUEST_IID), empty outside one")] = "",
        pipeline_iid: Annotated[str, Doc("pipeline IID (CI_PIPELINE_IID): numbers merge request pre-releases")] = "",
        branch_envs: Annotated[list[str], Doc("environments merge request pipelines deploy to")] = (
            door.BRANCH_ENVIRONMENTS
        ),
    ) -> dagger.File:
        """The GitLab child pipeline of the plan (``child-pipeline.yml``): one ``dagger call`` job per action.

        Environments not in ``branch_envs`` (prod) deploy only from the default branch;
        merge request pipelines publish pre-release versions. Fails when a target is refused.
        """
        ws, base_root, base_name = await self._plan(repository, base, default_branch)
        out = _scratch() / "child-pipeline.yml"
        return _file((await _run(lambda: ws.pipeline_against(
            base_root, base_name, out, ref=ref, default_branch=default_branch, merge_request=merge_request,
            pipeline_iid=pipeline_iid, branch_envs=branch_envs))).path)
