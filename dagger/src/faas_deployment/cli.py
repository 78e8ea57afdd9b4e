"""``faas-deploy``: the pipeline's verbs for machines without a Dagger engine.

Same verbs and flags as the Dagger module (docs/design.md). Results go to standard
output, progress lines to standard error. Exit codes: 0 success, 1 a problem the
user can fix (printed without a traceback), 2 bad command line, 130 interrupted;
``deploy`` and ``wait`` add 3 a failed rollout, 4 superseded, 5 timeout
(``rollout.EXIT_CODES``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from . import (admin_api, artifacts, bump, child_pipeline, deadline, deploy, flux, gitrefs, images, manifests, plan,
               promotion, rollout, settings)
from .credentials import RegistryCredentials
from .errors import UserError
from .pipeline import Workspace, make_target
from .secrets import resolve_secret


def _workspace(args: argparse.Namespace) -> Workspace:
    source = Path(args.source).resolve()
    template = Path(args.template).resolve() if args.template else None
    if not (source / "env").is_dir():
        raise UserError(f"--source {source}: no env/ directory here (run from the repository root or pass --source)")
    if template is not None and not (template / "cookiecutter.json").is_file():
        raise UserError(f"--template {template}: no cookiecutter.json (expected a cookiecutter template directory)")
    return Workspace(source, template)


def _registry_flags(parser: argparse.ArgumentParser, *, timeout: bool = True) -> None:
    """The registry flags; ``timeout=False`` for a verb whose own ``--timeout`` bounds the registry work too."""
    parser.add_argument("--registry", help="oci://HOST[:PORT]/PATH; without it, the local Helm repository dist/charts/")
    parser.add_argument("--username", help="registry user name")
    parser.add_argument("--password", metavar="env:NAME|file:PATH", help="registry password or token")
    parser.add_argument("--plain-http", action="store_true", help="HTTP instead of HTTPS (local test registries only)")
    parser.add_argument("--ca-file", metavar="PATH", help="PEM certificate of a private CA to trust for the registry's TLS")
    if timeout:
        _timeout_flag(parser, "overall deadline of the registry work (connect, read and total), in seconds")


def _timeout_flag(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--timeout", type=float, default=deadline.DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"{help} (default: %(default)g)")


def _credentials(args: argparse.Namespace) -> RegistryCredentials | None:
    password = resolve_secret(args.password, flag="--password") if args.password else None
    return RegistryCredentials.from_flags(args.username, password)


def _target(args: argparse.Namespace, ws: Workspace):
    return make_target(ws, args.registry, _credentials(args), args.plain_http, args.timeout, args.ca_file)


def _check(args: argparse.Namespace) -> str:
    ws = _workspace(args)
    target = _target(args, ws) if args.registry else None
    return ws.check(args.env, target=target, base=args.base)


def _config(args: argparse.Namespace) -> str:
    return _workspace(args).config_yaml(args.env, args.component).rstrip("\n")


def _chart(args: argparse.Namespace) -> str:
    return str(_workspace(args).render(args.env, args.component, Path(args.out)))


def _package(args: argparse.Namespace) -> str:
    return str(_workspace(args).package(args.env, args.component, Path(args.out)).path)


def _publish(args: argparse.Namespace) -> str:
    ws = _workspace(args)
    ws.config_file(args.env, args.component)  # unknown env/component: say so before connecting
    [result] = ws.release(args.env, _target(args, ws), [args.component], prerelease=args.prerelease)
    return result.line


def _release(args: argparse.Namespace) -> str:
    ws = _workspace(args)
    ws.components(args.env)
    return "\n".join(r.line for r in ws.release(args.env, _target(args, ws), check_images=not args.skip_image_check))


def _bundle(args: argparse.Namespace) -> manifests.Bundle:
    ws = _workspace(args)
    out = Path(args.out) if args.out else ws.source / manifests.DEFAULT_BUNDLE_DIR / f"{args.env}.zip"
    return manifests.write_bundle(manifests.dynamic_dir(ws.source, args.env), out)


def _manifests(args: argparse.Namespace) -> str:
    return manifests.bundle_line(_bundle(args))


def _upload_manifests(args: argparse.Namespace) -> str:
    bundle = _bundle(args)  # first, and kept: a CI job keeps it as an artifact even if the upload fails
    print(f"[faas-deploy] {manifests.bundle_line(bundle)}", file=sys.stderr, flush=True)
    token = resolve_secret(args.token, flag="--token")
    admin_url = args.admin_url or settings.load(Path(args.source).resolve(), args.env).admin_url
    return admin_api.upload_manifests(
        admin_url, bundle, token, ready_path=args.ready_path, upload_path=args.upload_path, timeout=args.timeout
    )


class RolloutExit(Exception):
    """A rollout outcome other than deployed: the lines already printed, the exit code to return."""

    def __init__(self, code: int):
        self.code = code


def _finish(lines: list[str], outcomes: list[rollout.Outcome], report: str | None) -> str:
    if report:
        Path(report).write_text(rollout.report_json(outcomes) + "\n", encoding="utf-8")
    code = rollout.exit_code(outcomes)
    if code:
        print("\n".join(lines), flush=True)
        raise RolloutExit(code)
    return "\n".join(lines)


def _deploy(args: argparse.Namespace) -> str:
    ws = _workspace(args)
    env_settings = settings.load(ws.source, args.env)
    components = [args.component] if args.component else None
    if args.component:
        ws.config_file(args.env, args.component)
    if bool(args.receiver_token) == bool(args.trigger_api):
        raise UserError("deploy: give exactly one trigger, --receiver-token (Flux Receiver) or --trigger-api")
    receiver_token = resolve_secret(args.receiver_token, flag="--receiver-token") if args.receiver_token else None
    upload_token = resolve_secret(args.upload_manifests, flag="--upload-manifests") if args.upload_manifests else None
    kubeconfig = resolve_secret(args.kubeconfig, flag="--kubeconfig") if args.kubeconfig else None
    # One deadline for the whole deploy: the publishing work is bounded by it too.
    target = make_target(ws, args.registry if args.registry is not None else env_settings.chart_registry,
                         _credentials(args), args.plain_http, args.timeout or env_settings.deploy_timeout, args.ca_file)
    client = rollout.make_client(kubeconfig, args.kube_context)
    result = deploy.deploy(ws, args.env, env_settings, target=target, receiver_token=receiver_token, client=client,
                           components=components, timeout=args.timeout, receiver_url=args.receiver_url,
                           upload_token=upload_token, admin_url=args.admin_url, prerelease=args.prerelease,
                           request_token=rollout.request_token(dict(os.environ)) if args.trigger_api else None)
    return _finish(result.lines, result.outcomes, args.report)


def _wait(args: argparse.Namespace) -> str:
    ws = _workspace(args)
    if args.artifact:
        if not args.component:
            raise UserError("wait --artifact: give --component C (its Kustomization app-<C>)")
        kubeconfig = resolve_secret(args.kubeconfig, flag="--kubeconfig") if args.kubeconfig else None
        client = rollout.make_client(kubeconfig, args.kube_context)
        ws.components(args.env)
        outcome = deploy.wait_artifact(client, namespace=args.artifact_namespace, component=args.component,
                                       digest=args.artifact,
                                       timeout=args.timeout or settings.load(ws.source, args.env).deploy_timeout)
        return _finish([outcome.line], [outcome], args.report)
    env_settings = settings.load(ws.source, args.env)
    names = [args.component] if args.component else ws.components(args.env)
    expected = {n: deploy.expected_for(ws, args.env, n) for n in names}
    kubeconfig = resolve_secret(args.kubeconfig, flag="--kubeconfig") if args.kubeconfig else None
    client = rollout.make_client(kubeconfig, args.kube_context)
    outcomes = deploy.wait_all(client, env_settings, expected, timeout=args.timeout or env_settings.deploy_timeout)
    return _finish([o.line for o in outcomes], outcomes, args.report)


def _flux(args: argparse.Namespace) -> str:
    ws = _workspace(args)
    env_settings = settings.load(ws.source, args.env)
    return "\n".join(str(p) for p in flux.write_objects(env_settings, deploy.charts(ws, args.env), Path(args.out)))


def _rollout_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--component", help="only this component (default: every component of the environment)")
    parser.add_argument("--kubeconfig", metavar="env:NAME|file:PATH",
                        help="kubeconfig as a secret (default: in-cluster, else $KUBECONFIG)")
    parser.add_argument("--kube-context", help="kubeconfig context, e.g. the GitLab agent's <path>:<agent>")
    parser.add_argument("--timeout", type=float, help="seconds to wait (default: deploy_timeout of environment.yaml)")
    parser.add_argument("--report", metavar="FILE", help="also write the JSON report of every outcome to FILE")


def _build_options(args: argparse.Namespace) -> images.BuildOptions:
    return images.BuildOptions(args.dockerfile, tuple(args.build_arg), args.target, args.platform)


def _build_image(args: argparse.Namespace) -> str:
    ws = _workspace(args)
    ws.config_file(args.env, args.component)  # unknown env/component: say so before building
    out = Path(args.out) if args.out else None
    from . import buildah

    return str(buildah.build_image(Path(args.context), _build_options(args), tag=args.tag, revision=args.revision,
                                  source_url=args.source_url, out=out))


def _publish_image(args: argparse.Namespace) -> str:
    ws = _workspace(args)
    repository = images.component_repository(ws.source, args.env, args.component, ws.template)
    from . import buildah

    return str(buildah.publish_image(
        Path(args.context), repository=repository, tag=args.tag, options=_build_options(args),
        credentials=_credentials(args), plain_http=args.plain_http, timeout=args.timeout,
        revision=args.revision, source_url=args.source_url, ca_file=args.ca_file,
    ))


def _bump(args: argparse.Namespace) -> str:
    ws = _workspace(args)
    if args.merge_request:
        return promotion.bump_proposal(ws.source, args.env, args.component, image_tag=args.image_tag, part=args.part,
                                       template=ws.template, proposal=_proposal(args, ("bump",)))
    return bump.bump_config(ws.source, args.env, args.component, image_tag=args.image_tag, part=args.part,
                            template=ws.template).line


def _proposal(args: argparse.Namespace, default_labels: tuple[str, ...]) -> promotion.Proposal:
    from .merge_request import GitLabProject

    if not args.gitlab_token:
        raise UserError("--merge-request needs --gitlab-token env:NAME|file:PATH (a token with the api scope)")
    if not args.gitlab_url or not args.gitlab_project:
        raise UserError("--merge-request needs --gitlab-url and --gitlab-project (CI: $CI_SERVER_URL, $CI_PROJECT_ID)")
    token = resolve_secret(args.gitlab_token, flag="--gitlab-token")
    return promotion.Proposal(GitLabProject(args.gitlab_url, args.gitlab_project, token),
                              target_branch=args.target_branch, remote=args.remote,
                              labels=tuple(args.label) or default_labels, author=args.author,
                              pipeline_url=args.pipeline_url)


def _promote(args: argparse.Namespace) -> str:
    ws = _workspace(args)
    if bool(args.component) == bool(args.all):
        raise UserError("promote: give --component C or --all (one of them)")
    if args.source_status and args.kubeconfig:
        raise UserError("promote: give --source-status FILE or --kubeconfig (the live HelmRelease), not both")
    state = promotion.HelmReleaseStatusFile(Path(args.source_status)) if args.source_status else None
    if args.kubeconfig:
        kubeconfig = resolve_secret(args.kubeconfig, flag="--kubeconfig")
        state = promotion.ClusterState(ws.source, rollout.make_client(kubeconfig, args.kube_context))
    proposal = _proposal(args, promotion.DEFAULT_LABELS) if args.merge_request else None
    return "\n".join(promotion.promote(ws.source, args.from_env, args.to_env, None if args.all else [args.component],
                                       state=state, template=ws.template, proposal=proposal))


def _merge_request_flags(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--merge-request", action="store_true",
                        help="commit on a branch, push it and open or update a GitLab merge request "
                             "instead of editing the working tree")
    parser.add_argument("--gitlab-url", default=env("CI_SERVER_URL", ""), help="GitLab base URL (default: $CI_SERVER_URL)")
    parser.add_argument("--gitlab-project", default=env("CI_PROJECT_ID", ""),
                        help="project id or group/name path (default: $CI_PROJECT_ID)")
    parser.add_argument("--gitlab-token", metavar="env:NAME|file:PATH",
                        help="GitLab token with the api and write_repository scopes")
    parser.add_argument("--target-branch", default=env("CI_DEFAULT_BRANCH") or "main",
                        help="the merge request's target branch (default: $CI_DEFAULT_BRANCH, else main)")
    parser.add_argument("--remote", default="origin", help="git remote name or URL to push to (default: %(default)s)")
    parser.add_argument("--label", action="append", default=[], help="merge request label (repeatable)")
    parser.add_argument("--author", default=promotion.DEFAULT_AUTHOR, help="commit author 'Name <email>'")
    parser.add_argument("--pipeline-url", default=env("CI_PIPELINE_URL", ""),
                        help="pipeline URL quoted as evidence (default: $CI_PIPELINE_URL)")
def _artifact_repository(args: argparse.Namespace):
    """A factory of :class:`artifacts.ArtifactRepository` for the registry flags (the URL checked now)."""
    credentials = _credentials(args)
    registry = settings.artifact_repository(_workspace(args).source, args.env, args.registry)
    artifacts.check_root(registry)
    return lambda: artifacts.ArtifactRepository(
        registry, credentials=credentials, plain_http=args.plain_http, ca_file=args.ca_file)


def _publish_artifact(args: argparse.Namespace) -> str:
    ws = _workspace(args)
    components = [args.component] if args.component else ws.components(args.env)
    manifests_dir = Path(args.manifests).resolve() if args.manifests else None
    results = ws.publish_artifacts(args.env, _artifact_repository(args), components, manifests_dir=manifests_dir,
                                   revision=args.revision, source_url=args.source_url)
    return "\n".join(r.line for r in results)


def _retire_artifact(args: argparse.Namespace) -> str:
    artifacts.check_component_name(args.component)
    return artifacts.retire(_artifact_repository(args)(), args.component)


def _artifact_objects(args: argparse.Namespace) -> str:
    _workspace(args).components(args.env)
    settings = artifacts.FluxObjectSettings(
        url=args.repository, name=args.name or f"faas-{args.env}", namespace=args.namespace,
        target_namespace=args.target_namespace, registry_secret=args.registry_secret,
        receiver_secret=args.receiver_secret, insecure=args.plain_http,
    )
    return "\n".join(str(p) for p in artifacts.write_flux_objects(settings, Path(args.out)))


def _artifact_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", metavar="oci://HOST/PATH",
                        help="the OCI repository holding every component's app-<component> tags "
                             "(default: artifact_repository of env/<env>/environment.yaml)")
    parser.add_argument("--username", help="registry user name")
    parser.add_argument("--password", metavar="env:NAME|file:PATH", help="registry password or token")
    parser.add_argument("--plain-http", action="store_true", help="HTTP instead of HTTPS (local test registries only)")
    parser.add_argument("--ca-file", metavar="PATH", help="PEM certificate of a private CA to trust for the registry's TLS")


def _plan(args: argparse.Namespace) -> str:
    ws = _workspace(args)
    result = gitrefs.plan_repository(ws.source, args.base, args.head, ws.template, os.environ)
    if args.pipeline:
        context = child_pipeline.Context(
            ref=args.ref, default_branch=args.default_branch, merge_request=args.merge_request,
            pipeline_iid=args.pipeline_iid, branch_envs=tuple(args.branch_env or child_pipeline.BRANCH_ENVIRONMENTS),
        )
        if not result.refused:
            child_pipeline.write(result, context, ws.source, Path(args.pipeline))
    return plan.outcome(result, args.output)


def _image_flags(parser: argparse.ArgumentParser, *, tag_required: bool) -> None:
    parser.add_argument("--context", required=True, metavar="DIR", help="the component's source directory (build context)")
    parser.add_argument("--dockerfile", default="Dockerfile", help="Dockerfile path inside the context (default: %(default)s)")
    parser.add_argument("--build-arg", action="append", default=[], metavar="NAME=VALUE",
                        help="build argument (repeatable; not for secrets: it stays in the image history)")
    parser.add_argument("--target", default="", help="build stage to stop at (default: the last)")
    parser.add_argument("--platform", default=images.DEFAULT_PLATFORM, metavar="OS/ARCH",
                        help="target platform (default: %(default)s, what the clusters run)")
    parser.add_argument("--tag", required=tag_required, default=None if tag_required else "latest",
                        help="image tag, typically the commit SHA" + ("" if tag_required else " (default: %(default)s)"))
    parser.add_argument("--revision", default="", help="org.opencontainers.image.revision (default: the context's git HEAD, else the tag)")
    parser.add_argument("--source-url", default="", help="org.opencontainers.image.source (default: the context's git origin URL)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faas-deploy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default=".", help="repository root holding env/ (default: .)")
    parser.add_argument("--template", help="a cookiecutter template directory replacing the embedded chart template")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, run, help: str, *, env: bool = True, env_required: bool = True, component: bool = False):
        sub = verbs.add_parser(name, help=help, description=help)
        if env:
            sub.add_argument("--env", required=env_required, help="environment (env/<env>/)")
        if component:
            sub.add_argument("--component", required=True, help="component (env/<env>/<component>/)")
        sub.set_defaults(run=run)
        return sub

    check_verb = verb(
        "check",
        _check,
        "validate configs, lint and package every chart, check dynamic/ manifests; "
        "refuse a changed chart whose version was not bumped (against --registry, else the local repository)",
        env_required=False,
    )
    _registry_flags(check_verb)
    check_verb.add_argument("--base", help="also refuse a chart changed since this git ref without a higher chart_version")
    verb("config", _config, "print the validated, resolved context as YAML", component=True)
    verb("chart", _chart, "render the chart into --out", component=True).add_argument("--out", required=True)
    verb("package", _package, "package the chart reproducibly into --out", component=True).add_argument(
        "--out", required=True
    )
    publish = verb("publish", _publish, "publish one component's chart", component=True)
    _registry_flags(publish)
    publish.add_argument("--prerelease", default="", metavar="ID",
                         help="publish chart_version as the pre-release <chart_version>-ID, e.g. mr.42.3 (docs/plan.md)")
    _registry_flags(release := verb("release", _release, "publish every component's chart of an environment concurrently"))
    release.add_argument("--skip-image-check", action="store_true",
                         help="do not check that each chart's image_repository:image_tag exists (air-gapped registries)")
    verb("manifests", _manifests, "validate env/<env>/operator/dynamic/ and write its reproducible zip to --out").add_argument(
        "--out", required=True, metavar="FILE"
    )
    upload = verb(
        "upload-manifests",
        _upload_manifests,
        "bundle dynamic/ (kept at --out), wait for the operator admin API to be ready, upload the bundle once",
    )
    upload.add_argument("--admin-url", help="operator admin API base URL (default: admin_url of env/<env>/environment.yaml)")
    upload.add_argument("--token", required=True, metavar="env:NAME|file:PATH", help="admin API bearer token")
    upload.add_argument("--ready-path", default=admin_api.DEFAULT_READY_PATH, help="readiness path (default: %(default)s)")
    upload.add_argument("--upload-path", default=admin_api.DEFAULT_UPLOAD_PATH, help="upload path (default: %(default)s)")
    upload.add_argument(
        "--timeout",
        type=float,
        default=admin_api.DEFAULT_TIMEOUT,
        help="overall deadline for readiness plus upload, in seconds (default: %(default)g)",
    )
    upload.add_argument(
        "--out", metavar="FILE", help=f"where the bundle is written and kept (default: {manifests.DEFAULT_BUNDLE_DIR}/<env>.zip under --source)"
    )
    build = verb("build-image", _build_image, "build the component's image with buildah (no Docker engine needed)",
                 component=True)
    _image_flags(build, tag_required=False)
    build.add_argument("--out", metavar="FILE", help="also write the image as an OCI archive to FILE")
    publish_image = verb("publish-image", _publish_image,
                         "build the component's image with buildah, push it to its image_repository:--tag, print REF@DIGEST",
                         component=True)
    _image_flags(publish_image, tag_required=True)
    publish_image.add_argument("--username", help="registry user name")
    publish_image.add_argument("--password", metavar="env:NAME|file:PATH", help="registry password or token")
    publish_image.add_argument("--plain-http", action="store_true",
                               help="the registry speaks plain HTTP only (refused for a registry that answers over TLS)")
    publish_image.add_argument("--ca-file", metavar="PATH", help="PEM certificate of a private CA to trust for the registry's TLS")
    _timeout_flag(publish_image, "overall deadline of the build and the push, in seconds")
    bump_verb = verb("bump", _bump, "set image_tag and raise chart_version in the component's config, in place",
                     component=True)
    bump_verb.add_argument("--image-tag", required=True, help="the new image tag, typically the commit SHA")
    bump_verb.add_argument("--part", choices=bump.PARTS, default="patch", help="semver part to raise (default: %(default)s)")
    _merge_request_flags(bump_verb)
    promote = verb("promote", _promote, "carry what runs in --from to --to's config: promoted values, chart_version "
                   "raised; in place, or as a merge request", env=False)
    promote.add_argument("--from", dest="from_env", required=True, help="source environment, e.g. dev")
    promote.add_argument("--to", dest="to_env", required=True, help="target environment, e.g. prod")
    promote.add_argument("--component", help="the component to promote")
    promote.add_argument("--all", action="store_true", help="every component of --to that --from has")
    promote.add_argument("--source-status", metavar="FILE",
                         help="the source's HelmRelease as JSON (kubectl get helmrelease -o json): "
                              "refuse unless it is healthy and runs the source config's chart_version")
    promote.add_argument("--kubeconfig", metavar="env:NAME|file:PATH",
                         help="read the source's HelmRelease from the cluster (kubeconfig as a secret); "
                              "without it and --source-status: the source config")
    promote.add_argument("--kube-context", help="kubeconfig context (default: its current context)")
    _merge_request_flags(promote)
    publish_artifact = verb("publish-artifact", _publish_artifact,
                            "push each component's rendered manifests (or --manifests) as a Flux OCI artifact "
                            "tagged app-<component> and app-<component>-<chart_version>")
    publish_artifact.add_argument("--component", help="one component (default: every component of --env)")
    _artifact_flags(publish_artifact)
    publish_artifact.add_argument("--manifests", metavar="DIR",
                                  help="a directory of plain Kubernetes manifests to push instead of the rendered chart (needs --component)")
    publish_artifact.add_argument("--revision", default="",
                                  help="org.opencontainers.image.revision, <branch>@sha1:<sha> (default: from the source tree's git)")
    publish_artifact.add_argument("--source-url", default="",
                                  help="org.opencontainers.image.source (default: the source tree's git origin URL)")
    retire_artifact = verb("retire-artifact", _retire_artifact,
                           "delete app-<component> so Flux uninstalls a component removed from the repository")
    retire_artifact.add_argument("--component", required=True, help="the removed component")
    _artifact_flags(retire_artifact)
    objects = verb("artifact-objects", _artifact_objects,
                   "write the Flux Operator objects (ResourceSetInputProvider, ResourceSet, Receiver) into --out")
    objects.add_argument("--repository", required=True, metavar="oci://HOST/PATH",
                         help="the artifact repository the objects watch (publish-artifact's --registry)")
    objects.add_argument("--out", required=True, metavar="DIR")
    objects.add_argument("--name", default="", help="the objects' name (default: faas-<env>)")
    objects.add_argument("--namespace", default="flux-system", help="namespace of the Flux objects (default: %(default)s)")
    objects.add_argument("--target-namespace", default="default", help="namespace the manifests are applied in (default: %(default)s)")
    objects.add_argument("--registry-secret", default="", help="docker-config Secret for the registry (default: anonymous)")
    objects.add_argument("--receiver-secret", default="faas-receiver-token", help="Secret with the Receiver token (default: %(default)s)")
    objects.add_argument("--plain-http", action="store_true", help="insecure: true (a plain HTTP registry; tests only)")

    plan_verb = verb("plan", _plan, "what a change does to every environment x component (install, upgrade, "
                     "refused, retire, upload, unchanged); never writes to a registry", env=False)
    plan_verb.add_argument("--base", help="git ref or SHA to compare with (default: CI_MERGE_REQUEST_DIFF_BASE_SHA, "
                           "else CI_COMMIT_BEFORE_SHA, all zeros: the default branch; else HEAD~1)")
    plan_verb.add_argument("--head", help="git ref or SHA of the change (default: the working tree)")
    plan_verb.add_argument("--output", choices=("table", "json"), default="table", help="(default: %(default)s)")
    plan_verb.add_argument("--pipeline", metavar="FILE", help="also write the GitLab child pipeline to FILE")
    environ = os.environ
    plan_verb.add_argument("--ref", default=environ.get("CI_COMMIT_REF_NAME", ""),
                           help="branch of the pipeline (default: $CI_COMMIT_REF_NAME)")
    plan_verb.add_argument("--default-branch", default=environ.get("CI_DEFAULT_BRANCH", "main"),
                           help="default branch (default: $CI_DEFAULT_BRANCH or main)")
    plan_verb.add_argument("--merge-request", default=environ.get("CI_MERGE_REQUEST_IID", ""), metavar="IID",
                           help="merge request IID (default: $CI_MERGE_REQUEST_IID)")
    plan_verb.add_argument("--pipeline-iid", default=environ.get("CI_PIPELINE_IID", ""), metavar="IID",
                           help="pipeline IID, numbers merge request pre-releases (default: $CI_PIPELINE_IID)")
    plan_verb.add_argument("--branch-env", action="append", metavar="ENV",
                           help="environment merge request pipelines deploy to (repeatable; default: dev)")
    flux_verb = verb("flux", _flux, "write the environment's Flux objects (OCIRepository, HelmRelease, Receiver) into --out")
    flux_verb.add_argument("--out", required=True, metavar="DIR")
    deploy_verb = verb("deploy", _deploy, "publish, trigger Flux through the Receiver, wait until each HelmRelease "
                       "runs the pushed version (exit 3 failed, 4 superseded, 5 timeout)")
    _registry_flags(deploy_verb, timeout=False)
    _rollout_flags(deploy_verb)
    deploy_verb.add_argument("--receiver-token", metavar="env:NAME|file:PATH",
                             help="trigger through the Receiver: its token (key token of its Secret)")
    deploy_verb.add_argument("--trigger-api", action="store_true",
                             help="trigger through the Kubernetes API instead (merge-patch reconcile.fluxcd.io/requestedAt)")
    deploy_verb.add_argument("--receiver-url", help="override receiver_url of environment.yaml")
    deploy_verb.add_argument("--upload-manifests", metavar="env:NAME|file:PATH",
                             help="admin API token: after the operator is deployed, upload env/<env>/operator/dynamic/")
    deploy_verb.add_argument("--admin-url", help="override admin_url of environment.yaml")
    deploy_verb.add_argument("--prerelease", default="", metavar="ID",
                             help="publish chart_version as the pre-release <chart_version>-ID, e.g. mr.42.3")
    wait_verb = verb("wait", _wait, "wait until each HelmRelease runs the version the configs describe, or with "
                     "--artifact the Kustomization app-<component> applied that digest "
                     "(exit 3 failed, 4 superseded, 5 timeout)")
    _rollout_flags(wait_verb)
    wait_verb.add_argument("--artifact", metavar="sha256:DIGEST",
                           help="the Flux OCI artifact's manifest digest publish-artifact pushed: wait for the "
                                "Kustomization app-<component> instead of the HelmRelease")
    wait_verb.add_argument("--artifact-namespace", default=artifacts.FluxObjectSettings.namespace,
                           help="namespace of the Kustomization app-<component> (default: %(default)s, as artifact-objects)")
    return parser


def _interrupt_on_term(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds like Ctrl-C: temporary directories are removed on the way out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (see module doc).

    SIGTERM (a CI job cancelled, ``kill``) is handled like Ctrl-C: the run stops,
    its temporary directories are removed, and the exit code is 130.
    """
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt_on_term)
    try:
        output = args.run(args)
    except RolloutExit as exc:
        return exc.code
    except UserError as exc:
        print(f"faas-deploy: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if output:
        print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
