"""The Dagger object ``Component``: one component of one environment (``env --name E component --name C``).

Its functions translate Dagger arguments into one door call each (:mod:`.dagger_runtime`); the engine rules
they follow are in :mod:`.main`'s docstring.
"""

from __future__ import annotations

from typing import Annotated

import dagger
from dagger import DefaultPath, Doc, Ignore, dag, function, object_type

from ._dagger_errors import user_errors
from .dagger_args import (
    REPOSITORY_IGNORE,
    AdminTokenArg,
    ArtifactRepositoryArg,
    DeployAdminUrlArg,
    ImmutableTagsArg,
    JobIdArg,
    KubeconfigArg,
    KubeContextArg,
    PipelineIdArg,
    PrereleaseArg,
    ReceiverTokenArg,
    ReceiverUrlArg,
    RegistryOverrideArg,
    TriggerApiArg,
    WaitTimeoutArg,
)
from .dagger_runtime import (
    deploy_charts,
    merge_request_options,
    objects_path,
    registry_flags,
    result_dir,
    result_file,
    run,
    scratch,
    secret_value,
    text_or_error,
    workspace,
)
from .door import artifacts, charts, defaults, deploy, images, promotion
from .images import images_dagger


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
        """The validated, resolved values as YAML (``default_context: {...}``).

        Fails with every problem found (file, key, what was expected) when the config is invalid.
        """
        ws = await workspace(self.source, self.template, self.source_date_epoch)
        return (await run(lambda: charts.config(ws, self.env, self.name))).text

    @function
    async def objects(self) -> str:
        """The chart's Kubernetes objects as ``helm template`` renders them (release chart_name, namespace default).

        One YAML stream, each document preceded by ``# Source: <template path>``.
        """
        ws = await workspace(self.source, self.template, self.source_date_epoch)
        return (await run(lambda: charts.rendered_objects(ws, self.env, self.name))).text

    @function
    async def chart(self) -> dagger.Directory:
        """The rendered chart directory (validated, rendered by cookiecutter, linted by Helm)."""
        ws = await workspace(self.source, self.template, self.source_date_epoch)
        out = scratch()
        result = await run(lambda: charts.chart(ws, self.env, self.name, out))
        return result_dir(result.path)

    @function
    async def package(self) -> dagger.File:
        """The reproducible chart package ``<chart_name>-<chart_version>.tgz``."""
        ws = await workspace(self.source, self.template, self.source_date_epoch)
        out = scratch()
        result = await run(lambda: charts.package(ws, self.env, self.name, out))
        return result_file(result.path)

    @function(cache="never")  # type: ignore[call-overload]
    async def publish(
        self,
        registry: Annotated[str, Doc("OCI repository root, oci://HOST[:PORT]/PATH")],
        immutable_tags: ImmutableTagsArg = False,
        prerelease: PrereleaseArg = "",
        timeout: Annotated[float, Doc("overall deadline of the registry work, in seconds")] = defaults.REGISTRY_TIMEOUT,
    ) -> str:
        """Publish this chart: one line, ``pushed <ref>@<digest>`` or ``unchanged <ref>@<digest>``.

        Rules (docs/design.md): an absent version is pushed; the same digest is
        ``unchanged``; other content under a published version, or a version lower
        than the highest published, is refused (bump chart_version).
        """
        ws = await workspace(self.source, self.template, self.source_date_epoch)
        registry_args = await registry_flags(self, registry, timeout, immutable_tags)
        return (await run(lambda: charts.publish(ws, self.env, self.name, registry_args, prerelease=prerelease))).text

    @function
    def build_image(
        self,
        context: Annotated[dagger.Directory, Doc("the component's source directory (a path or a git URL)")],
        dockerfile: Annotated[str, Doc("Dockerfile path inside the context")] = defaults.DOCKERFILE,
        # An immutable default; Dagger passes a list (mypy: a tuple is not a list).
        build_args: Annotated[list[str], Doc("build arguments NAME=VALUE (not for secrets)")] = (),  # type: ignore[assignment]
        target: Annotated[str, Doc("build stage to stop at (default: the last)")] = "",
        platform: Annotated[str, Doc("target platform os/arch (default: linux/amd64, what the clusters run)")] = (
            defaults.DEFAULT_PLATFORM
        ),
        revision: Annotated[str, Doc("org.opencontainers.image.revision label, e.g. the commit SHA")] = "",
        source_url: Annotated[str, Doc("org.opencontainers.image.source label, the code's URL")] = "",
    ) -> dagger.Container:
        """The component's image built from ``context`` with its Dockerfile (lazy: nothing runs until used).

        Carries the OCI labels ``org.opencontainers.image.revision`` and ``.source`` when given.
        """
        with user_errors():
            image = images.image_recipe(dockerfile=dockerfile, build_args=build_args, target=target,
                                        platform=platform, revision=revision, source_url=source_url)
            return images_dagger.dagger_build(context, image.options, labels=image.labels)

    @function(cache="never")  # type: ignore[call-overload]
    async def publish_image(
        self,
        context: Annotated[dagger.Directory, Doc("the component's source directory (a path or a git URL)")],
        tag: Annotated[str, Doc("image tag, typically the commit SHA")],
        dockerfile: Annotated[str, Doc("Dockerfile path inside the context")] = defaults.DOCKERFILE,
        # An immutable default; Dagger passes a list (mypy: a tuple is not a list).
        build_args: Annotated[list[str], Doc("build arguments NAME=VALUE (not for secrets)")] = (),  # type: ignore[assignment]
        target: Annotated[str, Doc("build stage to stop at (default: the last)")] = "",
        platform: Annotated[str, Doc("target platform os/arch (default: linux/amd64, what the clusters run)")] = (
            defaults.DEFAULT_PLATFORM
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
        ws = await workspace(self.source, self.template, self.source_date_epoch)
        image = await run(lambda: images.image_build(ws, self.env, self.name, tag=tag, dockerfile=dockerfile,
                                                     build_args=build_args, target=target, platform=platform,
                                                     revision=revision, source_url=source_url))
        with user_errors():
            container, address = images_dagger.dagger_publish_chain(
                images_dagger.dagger_build(context, image.options, labels=image.labels),
                repository=image.repository, tag=tag, username=self.registry_username,
                password=self.registry_password, host=self.registry_address or None,
            )
        secret = await secret_value(self.registry_password, "password")
        with user_errors():
            return await images_dagger.publish(container, address, username=self.registry_username, password=secret,
                                               host=self.registry_address or None)

    @function
    async def bump(
        self,
        image_tag: Annotated[str, Doc("the new image tag, typically the commit SHA")],
        part: Annotated[str, Doc("semver part of chart_version to raise: patch, minor or major")] = defaults.BUMP_PART,
    ) -> dagger.File:
        """The component's ``cookiecutter-config.yaml`` with ``image_tag`` set and ``chart_version`` raised.

        Only those two values change (comments, order and quoting kept); the result
        is validated. Export it over the original, commit, and the next release
        publishes one new chart version.
        """
        ws = await workspace(self.source, self.template, self.source_date_epoch)
        result = await run(lambda: promotion.bump(ws, self.env, self.name, image_tag=image_tag, part=part))
        return dag.file("cookiecutter-config.yaml", result.data["text"])

    @function(cache="never")  # type: ignore[call-overload]
    async def bump_merge_request(
        self,
        image_tag: Annotated[str, Doc("the new image tag, typically the commit SHA")],
        gitlab_url: Annotated[str, Doc("GitLab base URL, e.g. $CI_SERVER_URL")],
        gitlab_project: Annotated[str, Doc("project id or group/name path, e.g. $CI_PROJECT_ID")],
        gitlab_token: Annotated[dagger.Secret, Doc("GitLab token (api and write_repository scopes)")],
        checkout: Annotated[
            dagger.Directory,
            DefaultPath("/"),
            Ignore(REPOSITORY_IGNORE),
            Doc("the git checkout (env/ and .git; default: this repository) the change is committed in"),
        ],
        part: Annotated[str, Doc("semver part of chart_version to raise: patch, minor or major")] = defaults.BUMP_PART,
        target_branch: Annotated[str, Doc("the merge request's target branch")] = defaults.DEFAULT_BRANCH,
        remote: Annotated[str, Doc("git remote name or URL to push to")] = defaults.REMOTE,
        # An immutable default; Dagger passes a list (mypy: a tuple is not a list).
        labels: Annotated[list[str], Doc("merge request labels")] = defaults.BUMP_LABELS,  # type: ignore[assignment]
        author: Annotated[str, Doc("commit author 'Name <email>'")] = defaults.COMMIT_AUTHOR,
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
        ws = await workspace(checkout, self.template, self.source_date_epoch)
        options = await merge_request_options(True, gitlab_url, gitlab_project, gitlab_token, target_branch, remote,
                                              labels, author, pipeline_url)
        return (await run(lambda: promotion.bump(ws, self.env, self.name, image_tag=image_tag, part=part,
                                                 merge_request=options, timeout=timeout or None))).text

    @function(cache="never")  # type: ignore[call-overload]
    async def publish_artifact(
        self,
        repository: ArtifactRepositoryArg = "",
        objects: Annotated[dagger.Directory | None, Doc(
            "a directory of Kubernetes objects (YAML or JSON) to push instead of the rendered chart")] = None,
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
        ws = await workspace(self.source, self.template, self.source_date_epoch)
        registry_args = await registry_flags(self, repository)
        local = await objects_path(objects)
        return (await run(lambda: artifacts.publish_artifact(ws, self.env, registry_args, self.name,
                                                             objects_dir=local,
                                                             revision=revision, source_url=source_url))).text

    @function(cache="never")  # type: ignore[call-overload]
    async def retire_artifact(
        self,
        repository: Annotated[
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
        ws = await workspace(self.source, self.template, self.source_date_epoch)
        registry_args = await registry_flags(self, repository)
        return (await run(lambda: artifacts.retire_artifact(ws, self.env, self.name, registry_args))).text

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
        admin_token: AdminTokenArg = None,
        admin_url: DeployAdminUrlArg = "",
        prerelease: PrereleaseArg = "",
        pipeline_id: PipelineIdArg = "",
        job_id: JobIdArg = "",
    ) -> str:
        """Publish this chart, notify Flux's Receiver, wait until the HelmRelease runs the pushed version.

        Returns the lines (publish, notify, ``deployed <chart>@<version> to <ns>/<name> in N s``);
        fails with the controller's message when the rollout failed, was superseded or timed out.
        """
        return await deploy_charts(self, self.source, self.template, self.env, self.name, receiver_token, trigger_api,
                                   kubeconfig, kube_context, registry, timeout, admin_token, prerelease,
                                   immutable_tags=immutable_tags, source_date_epoch=self.source_date_epoch,
                                   pipeline_id=pipeline_id, job_id=job_id, receiver_url=receiver_url,
                                   admin_url=admin_url)

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
        ws = await workspace(self.source, self.template, self.source_date_epoch)
        config = await secret_value(kubeconfig, "kubeconfig")
        result = await run(lambda: deploy.wait(ws, self.env, component=self.name, kubeconfig=config,
                                               kube_context=kube_context,
                                               timeout=timeout or None))
        with user_errors():
            return text_or_error(result)

    @function(cache="never")  # type: ignore[call-overload]
    async def wait_artifact(
        self,
        digest: Annotated[str, Doc("the Flux OCI artifact's manifest digest publish-artifact pushed, sha256:<hex>")],
        kubeconfig: KubeconfigArg,
        namespace: Annotated[str, Doc("namespace of the Kustomization app-<component>")] = defaults.FLUX_NAMESPACE,
        kube_context: KubeContextArg = "",
        timeout: WaitTimeoutArg = 0,
    ) -> str:
        """Wait until Kustomization ``app-<component>`` is Ready with ``lastAppliedRevision`` carrying ``digest``.

        Returns ``deployed app-<c>@<digest> to <ns>/app-<c> in N s``; fails on a failed
        or timed-out reconciliation with the controller's message.
        """
        ws = await workspace(self.source, self.template, self.source_date_epoch)
        config = await secret_value(kubeconfig, "kubeconfig")
        result = await run(lambda: deploy.wait(ws, self.env, component=self.name, kubeconfig=config,
                                               kube_context=kube_context,
                                               timeout=timeout or None, artifact=digest, artifact_namespace=namespace))
        with user_errors():
            return text_or_error(result)
