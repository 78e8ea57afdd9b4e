"""What every Dagger function does around its one door call: the source exported into the runtime, secrets
and files read from Dagger, the core run in a worker thread, results handed back as Files and Directories.

Shared by the objects of :mod:`.main`, :mod:`.dagger_environment` and :mod:`.dagger_component`; the engine
rules these helpers follow (``workdir`` paths local to the working directory, ...) are in :mod:`.main`'s
docstring.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar, overload

import anyio
import dagger
from dagger import dag

from ._dagger_errors import user_errors
from .core.errors import UserError
from .core.secrets import SecretValue
from .dagger_args import REGISTRY_FIELDS
from .door import Registry, Result, Workspace, defaults, deploy, plan, promotion

T = TypeVar("T")


class RegistryAccess(Protocol):
    """An object carrying the chain's with-registry access (:data:`.dagger_args.REGISTRY_FIELDS`)."""

    registry_address: str
    registry_username: str
    registry_password: dagger.Secret | None
    registry_plain_http: bool
    registry_ca_file: dagger.File | None


async def run(fn: Callable[[], T]) -> T:
    """Run core code off the event loop; a UserError becomes a clean function error."""
    with user_errors():
        return await anyio.to_thread.run_sync(fn)


def scratch() -> Path:
    """A fresh directory under the function's working directory, as a relative path.

    Only paths local to that directory can be handed to ``workdir`` /
    ``workdir_file``; :func:`workdir_path` turns any path under it into one.
    """
    path = Path("faas-scratch") / uuid.uuid4().hex
    path.mkdir(parents=True)
    return path


def workdir_path(path: Path) -> str:
    """``path`` relative to the working directory, as ``workdir(path)`` accepts it.

    Raises:
        RuntimeError: ``path`` is outside the working directory (a bug: every
            output is written under :func:`scratch`).
    """
    relative = os.path.relpath(Path(path).resolve(), Path.cwd())
    if relative == ".." or relative.startswith(("../", "/")):
        raise RuntimeError(f"{path} is outside the function's working directory")
    return relative


def result_dir(path: Path | None) -> dagger.Directory:
    """The directory a verb wrote (its result's ``path``)."""
    assert path is not None, "the verb's result names no directory"
    return dag.current_module().workdir(workdir_path(path))


def result_file(path: Path | None) -> dagger.File:
    """The file a verb wrote (its result's ``path``)."""
    assert path is not None, "the verb's result names no file"
    return dag.current_module().workdir_file(workdir_path(path))


async def base_tree(repository: dagger.Directory, base: str, default_branch: str) -> tuple[Path, str]:
    """The base tree of ``plan`` and ``check --base``, read by the engine from ``repository``'s ``.git``; (root, ref).

    An empty or all-zeros ``base`` (a branch's first push) is the merge base of ``HEAD``
    and the default branch (``GitRef.commonAncestor``), as the CLI's ``git merge-base``.
    """
    chosen = plan.engine_base(base, default_branch)
    git = repository.as_git()
    found = {"commit": git.commit, "ref": git.ref, "branch": git.branch}[chosen.kind](chosen.ref)
    if chosen.merge_base:
        found = found.common_ancestor(git.head())
    ref = chosen.name
    base_root = scratch().resolve() / "base"
    try:
        await found.tree().export(str(base_root))
    except dagger.QueryError as exc:
        with user_errors():
            raise UserError(f"cannot read the base {ref!r} from the repository's .git "
                            f"(a shallow clone? set GIT_DEPTH: 0): {exc}") from None
    return base_root, ref


async def workspace(source: dagger.Directory, template: dagger.Directory | None,
                    source_date_epoch: str = "") -> Workspace:
    """The door over ``source`` exported into the runtime; ``source_date_epoch``: the job's, as passed (the
    runtime container never sees the job's environment).

    Without ``template``, the repository's ``faas-deployment.yaml`` names the template
    (the door reads it); a git template is fetched here, by the engine (the runtime has
    no git), and handed to the door.
    """
    root = scratch().resolve()
    await source.export(str(root / "source"))
    template_dir = None
    if template is not None:
        template_dir = root / "template"
        await template.export(str(template_dir))
    git_templates = {} if template is not None else await fetch_git_templates(root / "source")
    return Workspace(root / "source", template_dir, source_date_epoch=source_date_epoch or None,
                     git_templates=git_templates, environ={})  # CI defaults: the explicit argument, else none


async def fetch_git_templates(*trees: Path) -> dict[str, Path]:
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
        local = scratch().resolve() / "template"
        try:
            await directory.export(str(local))
        except dagger.QueryError as exc:
            with user_errors():
                raise UserError(
                    f"{defaults.REPOSITORY_SETTINGS}: template: cannot fetch {setting.identity}: {exc}"
                ) from None
        fetched[setting.identity] = local
    return fetched


@overload
async def secret_value(secret: dagger.Secret, name: str) -> SecretValue: ...


@overload
async def secret_value(secret: dagger.Secret | None, name: str) -> SecretValue | None: ...


async def secret_value(secret: dagger.Secret | None, name: str) -> SecretValue | None:
    return None if secret is None else SecretValue(await secret.plaintext(), f"dagger secret {name}")


def carried(obj: RegistryAccess) -> dict[str, Any]:
    """The with-registry access ``obj`` holds (:data:`REGISTRY_FIELDS`), for the object it hands on."""
    return {name: getattr(obj, name) for name in REGISTRY_FIELDS}


async def registry_flags(access: RegistryAccess, registry: str, timeout: float | None = None,
                         immutable_tags: bool = False) -> Registry:
    """A function's registry parameters with the chain's with-registry access, as the door takes them (the
    secret and the CA file read from Dagger); the door sends the access to its host only (``Registry.for_url``)."""
    return Registry(registry or None, access.registry_username or None,
                    await secret_value(access.registry_password, "password"), access.registry_plain_http, timeout,
                    await ca_path(access.registry_ca_file), immutable_tags, host=access.registry_address or None)


async def ca_path(ca_file: dagger.File | None) -> Path | None:
    """The ``ca_file`` exported under the working directory, or ``None``."""
    if ca_file is None:
        return None
    path = scratch() / "ca.crt"
    await ca_file.export(str(path))
    return path


async def merge_request_options(merge_request: bool, gitlab_url: str, gitlab_project: str, token: dagger.Secret | None,
                                target_branch: str, remote: str, labels: list[str], author: str,
                                pipeline_url: str) -> promotion.MergeRequestOptions | None:
    """The merge request parameters of ``promote`` / ``bump-merge-request``; None without ``merge_request``."""
    if not merge_request:
        return None
    return promotion.MergeRequestOptions(gitlab_url, gitlab_project, await secret_value(token, "gitlab-token"),
                                    target_branch=target_branch, remote=remote, labels=tuple(labels), author=author,
                                    pipeline_url=pipeline_url)


def text_or_error(result: Result) -> str:
    """The result's lines, or a function error carrying them when a rollout did not end deployed."""
    if result.exit_code:
        raise UserError(result.text)
    return result.text


async def objects_path(objects_dir: dagger.Directory | None) -> Path | None:
    """``publish-artifact --objects``: the Directory exported into the run's scratch directory; ``None``: not given."""
    if objects_dir is None:
        return None
    local = scratch().resolve() / "objects"
    await objects_dir.export(str(local))
    return local


async def deploy_charts(access, source, template, env, component, receiver_token, trigger_api, kubeconfig, kube_context,
                        registry, timeout, upload_token, prerelease="", immutable_tags=False, source_date_epoch="",
                        pipeline_id="", job_id="", receiver_url="", admin_url="") -> str:
    """``deploy`` for both Dagger objects: secrets read from Dagger, the door does the rest; ``access``: the
    object holding the chain's with-registry access.

    ``pipeline_id`` / ``job_id``: the job's ``CI_PIPELINE_ID`` / ``CI_JOB_ID`` as passed (the
    runtime never sees the job's environment), traced by ``--trigger-api`` as the CLI does.
    """
    ws = await workspace(source, template, source_date_epoch)
    registry_args = await registry_flags(access, registry, immutable_tags=immutable_tags)
    tokens = [await secret_value(receiver_token, "receiver_token"), await secret_value(kubeconfig, "kubeconfig"),
              await secret_value(upload_token, "admin_token")]
    result = await run(lambda: deploy.deploy(ws, env, component=component, registry=registry_args,
                                             receiver_token=tokens[0],
                                             trigger_api=trigger_api, kubeconfig=tokens[1], kube_context=kube_context,
                                             timeout=timeout or None, upload_token=tokens[2], prerelease=prerelease,
                                             receiver_url=receiver_url or None, admin_url=admin_url or None,
                                             environ={"CI_PIPELINE_ID": pipeline_id, "CI_JOB_ID": job_id}))
    with user_errors():
        return text_or_error(result)
