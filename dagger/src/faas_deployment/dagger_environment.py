"""The Dagger object ``Environment``: one environment of the repository (``env --name E``), and the way to its
components (``component --name C``).

Its functions translate Dagger arguments into one door call each (:mod:`.dagger_runtime`); the engine rules
they follow are in :mod:`.main`'s docstring.
"""

from __future__ import annotations

from typing import Annotated

import dagger
from dagger import Doc, function, object_type

from ._dagger_errors import user_errors
from .dagger_args import (
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
from .dagger_component import Component
from .dagger_runtime import (
    carried,
    deploy_charts,
    registry_flags,
    result_dir,
    result_file,
    run,
    scratch,
    secret_value,
    text_or_error,
    workspace,
)
from .door import artifacts, charts, defaults, deploy
from .door import bundle as bundles


@object_type
class Environment:
    """One environment (dev, prod, ...): its components, charts and the operator's bundle.

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
            source_date_epoch=self.source_date_epoch, **carried(self))

    @function(cache="never")  # type: ignore[call-overload]
    async def release(
        self,
        registry: Annotated[str, Doc("OCI repository root, oci://HOST[:PORT]/PATH")],
        immutable_tags: ImmutableTagsArg = False,
        timeout: Annotated[float, Doc("overall deadline of the registry work, in seconds")] = defaults.REGISTRY_TIMEOUT,
        skip_image_check: Annotated[
            bool, Doc("do not check that each chart's image exists (air-gapped registries)")
        ] = False,
    ) -> str:
        """Publish every component's chart of this environment concurrently; a line per component.

        Every chart is validated and packaged first, and each chart's image must exist in its
        registry when that registry can be reached: if any fails, nothing is published.
        """
        ws = await workspace(self.source, self.template, self.source_date_epoch)
        registry_args = await registry_flags(self, registry, timeout, immutable_tags)
        return (await run(lambda: charts.release(ws, self.name, registry_args, check_images=not skip_image_check))).text

    @function
    async def local_repository(self) -> dagger.Directory:
        """This environment's classic Helm repository ``dist/charts/<env>/`` with its charts published into it.

        The embedded default of ``release`` without a registry (same rules; one
        repository per environment, so one environment's versions never constrain
        another's), built from the ``dist/charts/<env>/`` of ``source`` (empty with the
        default source, which uploads ``env/`` only); export it with
        ``export --path dist/charts/<env>``.
        """
        ws = await workspace(self.source, self.template, self.source_date_epoch)
        result = await run(lambda: charts.local_repository(ws, self.name))
        return result_dir(result.path)

    @function
    async def bundle(self) -> dagger.File:
        """The bundle: the reproducible zip of the ``dynamic/`` templates of ``env/<env>/operator/`` (``<env>.zip``).

        Entries sorted, fixed timestamps and permissions, paths relative to
        ``dynamic/``: the same files give the same bytes. Fails listing every problem
        found (a file that is no template, invalid YAML, symbolic link, ...), each by path.
        """
        ws = await workspace(self.source, self.template, self.source_date_epoch)
        out = scratch() / f"{self.name}.zip"
        result = await run(lambda: bundles.bundle(ws, self.name, out, quiet=True))
        return result_file(result.path)

    @function(cache="never")  # type: ignore[call-overload]
    async def upload_bundle(
        self,
        admin_token: Annotated[dagger.Secret, Doc("admin API bearer token")],
        admin_url: Annotated[str, Doc("operator admin API base URL (default: admin_url of environment.yaml)")] = "",
        ready_path: Annotated[str, Doc("readiness path: GET, any 2xx means ready")] = defaults.READY_PATH,
        upload_path: Annotated[str, Doc("upload path: POST multipart field file")] = defaults.UPLOAD_PATH,
        timeout: Annotated[float, Doc("overall deadline for readiness plus upload, in seconds")] = (
            defaults.UPLOAD_TIMEOUT
        ),
    ) -> str:
        """Bundle the ``dynamic/`` templates, wait for the operator admin API to be ready, upload the bundle once.

        Returns one line: ``uploaded <sha256> (<bytes> bytes, <n> files) to <url>: HTTP <status> <answer>``.
        Readiness polls with capped exponential backoff and jitter; 5xx, 429 and
        broken connections are retried until the deadline; 401/403 and other 4xx
        fail at once. Keep the bundle as an artifact with ``bundle``.
        """
        ws = await workspace(self.source, self.template, self.source_date_epoch)
        out = scratch() / f"{self.name}.zip"
        secret = await secret_value(admin_token, "admin_token")
        return (await run(lambda: bundles.upload_bundle(ws, self.name, secret, admin_url=admin_url or None,
                                                        ready_path=ready_path, upload_path=upload_path,
                                                        timeout=timeout, out=out))).text

    @function(cache="never")  # type: ignore[call-overload]
    async def publish_artifacts(
        self,
        repository: ArtifactRepositoryArg = "",
        revision: Annotated[
            str, Doc("org.opencontainers.image.revision, <branch>@sha1:<sha> (default: the source's git)")
        ] = "",
        source_url: Annotated[str, Doc("org.opencontainers.image.source (default: the source's git origin)")] = "",
    ) -> str:
        """Push every component's rendered objects as Flux OCI artifacts; a line per component.

        Every component is rendered first: if any fails, nothing is pushed.
        """
        ws = await workspace(self.source, self.template, self.source_date_epoch)
        registry_args = await registry_flags(self, repository)
        return (await run(lambda: artifacts.publish_artifact(ws, self.name, registry_args, revision=revision,
                                                             source_url=source_url))).text

    @function
    async def artifact_objects(
        self,
        repository: Annotated[str, Doc("the artifact repository the objects watch, oci://HOST[:PORT]/PATH")],
        name: Annotated[str, Doc("the objects' name (default: faas-<env>)")] = "",
        namespace: Annotated[str, Doc("namespace of the Flux objects")] = defaults.FLUX_NAMESPACE,
        target_namespace: Annotated[str, Doc("namespace the objects are applied in (default: namespace of "
                                             "env/<env>/environment.yaml)")] = "",
        registry_secret: Annotated[str, Doc("docker-config Secret for the registry (empty: anonymous)")] = "",
        receiver_secret: Annotated[str, Doc("Secret holding the Receiver token")] = defaults.RECEIVER_SECRET,
        plain_http: Annotated[bool, Doc("insecure: true (a plain HTTP registry; tests only)")] = False,
    ) -> dagger.Directory:
        """The Flux Operator objects watching the artifacts: ResourceSetInputProvider, ResourceSet, Receiver
        (YAML files)."""
        ws = await workspace(self.source, self.template, self.source_date_epoch)
        out = scratch()
        result = await run(lambda: artifacts.artifact_objects(
            ws, self.name, repository, out, name=name, namespace=namespace, target_namespace=target_namespace,
            registry_secret=registry_secret, receiver_secret=receiver_secret, plain_http=plain_http))
        return result_dir(result.path)

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
        ws = await workspace(self.source, self.template, self.source_date_epoch)
        out = scratch()
        result = await run(lambda: deploy.flux(ws, self.name, out, registry_secret=registry_secret,
                                               plain_http=plain_http))
        return result_dir(result.path)

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
        ws = await workspace(self.source, self.template, self.source_date_epoch)
        config = await secret_value(kubeconfig, "kubeconfig")
        result = await run(lambda: deploy.wait(ws, self.name, kubeconfig=config, kube_context=kube_context,
                                               timeout=timeout or None))
        with user_errors():
            return text_or_error(result)

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
        """Publish every chart of this environment, notify Flux's Receiver, wait for every HelmRelease concurrently.

        With ``admin_token`` the bundle goes to the operator only after its
        HelmRelease runs the pushed version and its admin API is ready. Fails with the
        controller's message when a rollout failed, was superseded or timed out.
        """
        return await deploy_charts(self, self.source, self.template, self.name, None, receiver_token, trigger_api,
                                   kubeconfig, kube_context, registry, timeout, admin_token, prerelease,
                                   immutable_tags=immutable_tags, source_date_epoch=self.source_date_epoch,
                                   pipeline_id=pipeline_id, job_id=job_id, receiver_url=receiver_url,
                                   admin_url=admin_url)
