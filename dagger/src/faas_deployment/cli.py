"""``faas-deploy``: the pipeline's verbs for machines without a Dagger engine.

Same verbs and flags as the Dagger module (docs/design.md), each a call through
the one door, :class:`faas_deployment.pipeline.Workspace`; this module only
translates flags. Results go to standard output (``--output json``: as JSON),
progress lines to standard error. Exit codes: 0 success, 1 a problem the user can
fix (printed without a traceback), 2 bad command line, 130 interrupted (Ctrl-C or
SIGTERM), 141 the reader of standard output went away (``| head -1``); ``deploy``
and ``wait`` add 3 a failed rollout, 4 superseded, 5 timeout (``rollout_outcome.EXIT_CODES``).

Global flags (``--source``, ``--template``, ``--output``) are accepted before or
after the verb. Start-up stays light: a verb's flags, and the modules behind their
defaults, are loaded only when that verb is on the command line, so ``--help``
imports neither the Helm engine nor an HTTP client.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
import threading

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from pathlib import Path
    from typing import Any

    from . import pipeline

PROG = "faas-deploy"


class _Door:
    """The door module, imported on first use: ``faas-deploy --help`` needs none of it."""

    def __getattr__(self, name: str):
        from . import pipeline as door

        return getattr(door, name)


if not TYPE_CHECKING:  # type checkers see the module itself
    pipeline = _Door()


#: The command line's other flag values (flag -> value), set once parsed: a secret found inside one is refused.
_given: dict[str, object] = {}


def _resolve(value: str, flag: str):
    from .core.secrets import refuse_inside, resolve_secret

    secret = resolve_secret(value, flag=flag)
    refuse_inside(secret, flag, {k: v for k, v in _given.items() if k != flag and v != value})
    return secret


def _secret(value: str | None, flag: str):
    """``env:NAME``/``file:PATH``, read when the door needs the value (:func:`pipeline.reveal`).

    Once read, the value must not appear inside any other flag's value
    (:func:`secrets.refuse_inside`).
    """
    # An empty flag (``--password ""``) is given, not absent: resolve_secret refuses it by name.
    return functools.partial(_resolve, value, flag) if value is not None else None


def _registry(args: argparse.Namespace) -> pipeline.Registry:
    return pipeline.Registry(getattr(args, "registry", None), args.username or None,
                             _secret(args.password, "--password"), args.plain_http, getattr(args, "timeout", None),
                             args.ca_file, getattr(args, "immutable_tags", False))


def _merge_request(args: argparse.Namespace) -> pipeline.MergeRequestOptions | None:
    if not args.merge_request:
        return None
    return pipeline.MergeRequestOptions(
        args.gitlab_url,
        args.gitlab_project,
        _secret(args.gitlab_token, "--gitlab-token"),
        target_branch=args.target_branch,
        remote=args.remote,
        labels=tuple(args.label),
        author=args.author,
        pipeline_url=args.pipeline_url,
    )


def _path(value: str | None) -> Path | None:
    """``value`` as a path (``pathlib`` imported when a verb runs); ``None`` when not given."""
    from pathlib import Path

    return Path(value) if value else None


def _given_path(value: str, flag: str) -> Path:
    """A required path flag's ``value`` as a path; an empty one is refused."""
    from pathlib import Path

    from .core.errors import UserError

    if not value:
        raise UserError(f"{flag}: empty; give a path")
    return Path(value)


# --------------------------------------------------------------------------- flags shared by verbs


def _registry_flags(parser: argparse.ArgumentParser, *, timeout: bool = True) -> None:
    """The registry flags; ``timeout=False`` for a verb whose own ``--timeout`` bounds the registry work too."""
    parser.add_argument("--registry", help="oci://HOST[:PORT]/PATH; without it, the environment's local Helm "
                                           "repository dist/charts/<env>/")
    _credential_flags(parser)
    if timeout:
        _timeout_flag(parser, "overall deadline of the registry work (connect, read and total), in seconds")


def _credential_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--username", help="registry user name")
    parser.add_argument("--password", metavar="env:NAME|file:PATH", help="registry password or token")
    parser.add_argument("--plain-http", action="store_true", help="HTTP instead of HTTPS (local test registries only)")
    _ca_file_flag(parser)


def _ca_file_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ca-file", metavar="PATH", help="PEM certificate of a private CA to trust for the registry's TLS"
    )


def _immutable_tags_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--immutable-tags", action="store_true",
                        help="the registry refuses to overwrite a tag (Harbor tag immutability, ECR IMMUTABLE): "
                             "publish without the publish lease, 8 requests per new chart (docs/publishing.md)")


def _timeout_flag(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--timeout", type=float, default=pipeline.REGISTRY_TIMEOUT, metavar="SECONDS",
                        help=f"{help} (default: %(default)g)")


def _rollout_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--component", help="only this component (default: every component of the environment)")
    parser.add_argument("--kubeconfig", metavar="env:NAME|file:PATH",
                        help="kubeconfig as a secret (default: in-cluster, else $KUBECONFIG)")
    parser.add_argument("--kube-context", help="kubeconfig context, e.g. the GitLab agent's <path>:<agent>")
    parser.add_argument("--timeout", type=float, help="seconds to wait (default: deploy_timeout of environment.yaml)")
    parser.add_argument("--report", metavar="FILE", help="also write the JSON report of every outcome to FILE")


def _merge_request_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--merge-request", action="store_true",
                        help="commit on a branch, push it and open or update a GitLab merge request "
                             "instead of editing the working tree")
    parser.add_argument(
        "--gitlab-url", default="", help="GitLab base URL (default: $CI_SERVER_URL)"
    )
    parser.add_argument("--gitlab-project", default="",
                        help="project id or group/name path (default: $CI_PROJECT_ID)")
    parser.add_argument("--gitlab-token", metavar="env:NAME|file:PATH",
                        help="GitLab token with the api and write_repository scopes")
    parser.add_argument("--target-branch", default="",
                        help="the merge request's target branch (default: $CI_DEFAULT_BRANCH, else main)")
    parser.add_argument(
        "--remote", default=pipeline.REMOTE, help="git remote name or URL to push to (default: %(default)s)"
    )
    parser.add_argument("--label", action="append", default=[], help="merge request label (repeatable)")
    parser.add_argument("--author", default=pipeline.COMMIT_AUTHOR, help="commit author 'Name <email>'")
    parser.add_argument("--pipeline-url", default="",
                        help="pipeline URL quoted as evidence (default: $CI_PIPELINE_URL)")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="overall deadline of every git and GitLab step, in seconds (default: 120)")


def _image_flags(parser: argparse.ArgumentParser, *, tag_required: bool) -> None:
    parser.add_argument(
        "--context", required=True, metavar="DIR", help="the component's source directory (build context)"
    )
    parser.add_argument(
        "--dockerfile", default=pipeline.DOCKERFILE, help="Dockerfile path inside the context (default: %(default)s)"
    )
    parser.add_argument("--build-arg", action="append", default=[], metavar="NAME=VALUE",
                        help="build argument (repeatable; not for secrets: it stays in the image history)")
    parser.add_argument("--target", default="", help="build stage to stop at (default: the last)")
    parser.add_argument("--platform", default=pipeline.DEFAULT_PLATFORM, metavar="OS/ARCH",
                        help="target platform (default: %(default)s, what the clusters run)")
    parser.add_argument(
        "--tag",
        required=tag_required,
        default=None if tag_required else pipeline.BUILD_TAG,
        help="image tag, typically the commit SHA" + ("" if tag_required else " (default: %(default)s)"),
    )
    parser.add_argument("--revision", default="",
                        help="org.opencontainers.image.revision (default: the context's git HEAD, else the tag)")
    parser.add_argument(
        "--source-url", default="", help="org.opencontainers.image.source (default: the context's git origin URL)"
    )


def _artifact_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", metavar="oci://HOST/PATH",
                        help="the OCI repository holding every component's app-<component> tags "
                             "(default: artifact_repository of env/<env>/environment.yaml)")
    _credential_flags(parser)


def _options(ws: pipeline.Workspace, args: argparse.Namespace):
    return ws.build_options(args.dockerfile, args.build_arg, args.target, args.platform)


# --------------------------------------------------------------------------- the verbs


class Verb:
    """One verb: its help, its own flags, the door call; ``env``/``component``: the standard flags it takes."""

    __slots__ = ("help", "run", "flags", "env", "env_required", "component")

    def __init__(self, help: str, run: Callable[[pipeline.Workspace, argparse.Namespace], pipeline.Result],
                 flags: Callable[[argparse.ArgumentParser], None] = lambda parser: None, *, env: bool = True,
                 env_required: bool = True, component: bool = False):
        self.help, self.run, self.flags = help, run, flags
        self.env, self.env_required, self.component = env, env_required, component


def _check_flags(parser: argparse.ArgumentParser) -> None:
    _registry_flags(parser)
    parser.add_argument("--base", help="also refuse a chart changed since this git ref without a higher chart_version")


def _publish_flags(parser: argparse.ArgumentParser) -> None:
    _registry_flags(parser)
    _immutable_tags_flag(parser)
    parser.add_argument("--prerelease", default="", metavar="ID",
                        help="publish chart_version as the pre-release <chart_version>-ID, e.g. mr.42.3 (docs/plan.md)")


def _release_flags(parser: argparse.ArgumentParser) -> None:
    _registry_flags(parser)
    _immutable_tags_flag(parser)
    parser.add_argument("--skip-image-check", action="store_true",
                        help="do not check that each chart's image_repository:image_tag exists (air-gapped registries)")


def _upload_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--admin-url", help="operator admin API base URL (default: admin_url of env/<env>/environment.yaml)"
    )
    parser.add_argument("--token", required=True, metavar="env:NAME|file:PATH", help="admin API bearer token")
    parser.add_argument("--ready-path", default=pipeline.READY_PATH, help="readiness path (default: %(default)s)")
    parser.add_argument("--upload-path", default=pipeline.UPLOAD_PATH, help="upload path (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=pipeline.UPLOAD_TIMEOUT,
                        help="overall deadline for readiness plus upload, in seconds (default: %(default)g)")
    parser.add_argument("--out", metavar="FILE", help="where the bundle is written and kept (default: "
                                                      "dist/manifests/<env>.zip under --source)")


def _build_flags(parser: argparse.ArgumentParser) -> None:
    _image_flags(parser, tag_required=False)
    parser.add_argument("--out", metavar="FILE", help="also write the image as an OCI archive to FILE")


def _publish_image_flags(parser: argparse.ArgumentParser) -> None:
    _image_flags(parser, tag_required=True)
    parser.add_argument("--username", help="registry user name")
    parser.add_argument("--password", metavar="env:NAME|file:PATH", help="registry password or token")
    parser.add_argument("--plain-http", action="store_true",
                        help="the registry speaks plain HTTP only (refused for a registry that answers over TLS)")
    _ca_file_flag(parser)
    _timeout_flag(parser, "overall deadline of the build and the push, in seconds")


def _bump_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image-tag", required=True, help="the new image tag, typically the commit SHA")
    parser.add_argument(
        "--part",
        choices=pipeline.BUMP_PARTS,
        default=pipeline.BUMP_PART,
        help="semver part to raise (default: %(default)s)",
    )
    _merge_request_flags(parser)


def _promote_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="from_env", help="source environment, e.g. dev (default: from the promotion "
                                                        "order, promote_from of the environments' environment.yaml)")
    parser.add_argument("--to", dest="to_env", help="target environment, e.g. prod (default: every environment "
                                                    "the order promotes into from --from, or every step)")
    parser.add_argument("--component", help="the component to promote")
    parser.add_argument("--all", action="store_true", help="every component of --to that --from has")
    parser.add_argument("--source-status", metavar="FILE",
                        help="the source's HelmRelease as JSON (kubectl get helmrelease -o json): "
                             "refuse unless it is healthy and runs the source config's chart_version")
    parser.add_argument("--kubeconfig", metavar="env:NAME|file:PATH",
                        help="read the source's HelmRelease from the cluster (kubeconfig as a secret); "
                             "without it and --source-status: the source config")
    parser.add_argument("--kube-context", help="kubeconfig context (default: its current context)")
    parser.add_argument("--allow-prerelease", action="store_true",
                        help="promote an image_tag that is a semver pre-release (e.g. 1.4.0-rc.1); refused otherwise")
    _merge_request_flags(parser)


def _publish_artifact_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--component", help="one component (default: every component of --env)")
    _artifact_flags(parser)
    parser.add_argument(
        "--manifests",
        metavar="DIR",
        help="a directory of plain Kubernetes manifests to push instead of the rendered chart (needs --component)",
    )
    parser.add_argument(
        "--revision",
        default="",
        help="org.opencontainers.image.revision, <branch>@sha1:<sha> (default: from the source tree's git)",
    )
    parser.add_argument("--source-url", default="",
                        help="org.opencontainers.image.source (default: the source tree's git origin URL)")


def _retire_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--component", required=True, help="the removed component")
    _artifact_flags(parser)


def _objects_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repository", required=True, metavar="oci://HOST/PATH",
                        help="the artifact repository the objects watch (publish-artifact's --registry)")
    parser.add_argument("--out", required=True, metavar="DIR")
    parser.add_argument("--name", default="", help="the objects' name (default: faas-<env>)")
    parser.add_argument(
        "--namespace", default=pipeline.FLUX_NAMESPACE, help="namespace of the Flux objects (default: %(default)s)"
    )
    parser.add_argument(
        "--target-namespace",
        default="",
        help="namespace the manifests are applied in (default: namespace of env/<env>/environment.yaml)",
    )
    parser.add_argument(
        "--registry-secret", default="", help="docker-config Secret for the registry (default: anonymous)"
    )
    parser.add_argument("--receiver-secret", default=pipeline.RECEIVER_SECRET,
                        help="Secret with the Receiver token (default: %(default)s)")
    parser.add_argument("--plain-http", action="store_true", help="insecure: true (a plain HTTP registry; tests only)")


def _flux_flags(parser: argparse.ArgumentParser) -> None:
    _out_flag(metavar="DIR")(parser)
    parser.add_argument("--registry-secret", default="",
                        help="docker-config Secret the OCIRepositories pull with (default: anonymous)")
    parser.add_argument("--plain-http", action="store_true", help="insecure: true (a plain HTTP registry; tests only)")


def _plan_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", help="git ref or SHA to compare with (default: CI_MERGE_REQUEST_DIFF_BASE_SHA, "
                        "else CI_COMMIT_BEFORE_SHA, all zeros: the default branch; else HEAD~1)")
    parser.add_argument("--head", help="git ref or SHA of the change (default: the working tree)")
    parser.add_argument("--pipeline", metavar="FILE", help="also write the GitLab child pipeline to FILE")
    parser.add_argument("--ref", default="",
                        help="branch of the pipeline (default: $CI_COMMIT_REF_NAME)")
    parser.add_argument("--default-branch", default="",
                        help="default branch (default: $CI_DEFAULT_BRANCH or main)")
    parser.add_argument("--merge-request", default="", metavar="IID",
                        help="merge request IID (default: $CI_MERGE_REQUEST_IID)")
    parser.add_argument("--pipeline-iid", default="", metavar="IID",
                        help="pipeline IID, numbers merge request pre-releases (default: $CI_PIPELINE_IID)")
    parser.add_argument("--branch-env", action="append", metavar="ENV",
                        help="environment merge request pipelines deploy to (repeatable; default: dev)")


def _deploy_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", help="override chart_registry of environment.yaml")
    _credential_flags(parser)
    _immutable_tags_flag(parser)
    _rollout_flags(parser)
    parser.add_argument("--receiver-token", metavar="env:NAME|file:PATH",
                        help="trigger through the Receiver: its token (key token of its Secret)")
    parser.add_argument("--trigger-api", action="store_true",
                        help="trigger through the Kubernetes API instead (merge-patch reconcile.fluxcd.io/requestedAt)")
    parser.add_argument("--receiver-url", help="override receiver_url of environment.yaml")
    parser.add_argument("--upload-manifests", metavar="env:NAME|file:PATH",
                        help="admin API token: after the operator is deployed, upload env/<env>/operator/dynamic/")
    parser.add_argument("--admin-url", help="override admin_url of environment.yaml")
    parser.add_argument("--prerelease", default="", metavar="ID",
                        help="publish chart_version as the pre-release <chart_version>-ID, e.g. mr.42.3")


def _wait_flags(parser: argparse.ArgumentParser) -> None:
    _rollout_flags(parser)
    parser.add_argument("--artifact", metavar="sha256:DIGEST",
                        help="the Flux OCI artifact's manifest digest publish-artifact pushed: wait for the "
                             "Kustomization app-<component> instead of the HelmRelease")
    parser.add_argument(
        "--artifact-namespace",
        default=pipeline.FLUX_NAMESPACE,
        help="namespace of the Kustomization app-<component> (default: %(default)s, as artifact-objects)",
    )


def _out_flag(required: bool = True, metavar: str | None = None) -> Callable[[argparse.ArgumentParser], None]:
    def add(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--out", required=required, metavar=metavar)

    return add


def _deploy(ws: pipeline.Workspace, a: argparse.Namespace) -> pipeline.Result:
    return ws.deploy(
        a.env,
        component=a.component,
        registry=_registry(a),
        receiver_token=_secret(a.receiver_token, "--receiver-token"),
        trigger_api=a.trigger_api,
        kubeconfig=_secret(a.kubeconfig, "--kubeconfig"),
        kube_context=a.kube_context,
        timeout=a.timeout,
        receiver_url=a.receiver_url,
        upload_token=_secret(a.upload_manifests, "--upload-manifests"),
        admin_url=a.admin_url,
        prerelease=a.prerelease,
    )


def _plan(ws: pipeline.Workspace, a: argparse.Namespace) -> pipeline.Result:
    return ws.plan(base=a.base, head=a.head, output=a.output, pipeline=_path(a.pipeline), ref=a.ref,
                   default_branch=a.default_branch, merge_request=a.merge_request, pipeline_iid=a.pipeline_iid,
                   branch_envs=a.branch_env or ())


VERBS: dict[str, Verb] = {
    "check": Verb("validate configs, lint and package every chart, check dynamic/ manifests; "
                  "refuse a changed chart whose version was not bumped (against --registry, else the local repository)",
                  lambda ws, a: ws.check(a.env, _registry(a), base=a.base), _check_flags, env_required=False),
    "config": Verb("print the validated, resolved context as YAML", lambda ws, a: ws.config(a.env, a.component),
                   component=True),
    "chart": Verb("render the chart into --out",
                  lambda ws, a: ws.chart(a.env, a.component, _given_path(a.out, "--out")), _out_flag(),
                  component=True),
    "objects": Verb("print the chart's Kubernetes objects as helm template renders them",
                     lambda ws, a: ws.rendered_objects(a.env, a.component), component=True),
    "package": Verb("package the chart reproducibly into --out",
                    lambda ws, a: ws.package(a.env, a.component, _given_path(a.out, "--out")), _out_flag(),
                    component=True),
    "publish": Verb("publish one component's chart",
                    lambda ws, a: ws.publish(a.env, a.component, _registry(a), prerelease=a.prerelease),
                    _publish_flags, component=True),
    "release": Verb("publish every component's chart of an environment concurrently",
                    lambda ws, a: ws.release(a.env, _registry(a), check_images=not a.skip_image_check), _release_flags),
    "manifests": Verb("validate env/<env>/operator/dynamic/ and write its reproducible zip to --out",
                      lambda ws, a: ws.bundle(a.env, _path(a.out)), _out_flag(metavar="FILE")),
    "upload-manifests": Verb(
        "bundle dynamic/ (kept at --out), wait for the operator admin API to be ready, upload the bundle once",
        lambda ws, a: ws.upload_manifests(a.env, _secret(a.token, "--token"), admin_url=a.admin_url,
                                          ready_path=a.ready_path, upload_path=a.upload_path, timeout=a.timeout,
                                          out=_path(a.out)),
        _upload_flags),
    "build-image": Verb("build the component's image with buildah (no Docker engine needed)",
                        lambda ws, a: ws.build_image(a.env, a.component, _given_path(a.context, "--context"),
                                                     options=_options(ws, a), tag=a.tag, revision=a.revision,
                                                     source_url=a.source_url, out=_path(a.out)),
                        _build_flags, component=True),
    "publish-image": Verb(
        "build the component's image with buildah, push it to its image_repository:--tag, print REF@DIGEST",
        lambda ws, a: ws.publish_image(a.env, a.component, _given_path(a.context, "--context"), tag=a.tag,
                                       options=_options(ws, a),
                                       username=a.username, password=_secret(a.password, "--password"),
                                       plain_http=a.plain_http, timeout=a.timeout, revision=a.revision,
                                       source_url=a.source_url, ca_file=a.ca_file),
        _publish_image_flags, component=True),
    "bump": Verb("set image_tag and raise chart_version in the component's config, in place",
                 lambda ws, a: ws.bump(a.env, a.component, image_tag=a.image_tag, part=a.part,
                                       merge_request=_merge_request(a), timeout=a.timeout),
                 _bump_flags, component=True),
    "promote": Verb("carry what runs in --from to --to's config: promoted values, chart_version raised; in place, "
                    "or as a merge request",
                    lambda ws, a: ws.promote(a.from_env, a.to_env, component=a.component, all_components=a.all,
                                             source_status=_path(a.source_status),
                                             kubeconfig=_secret(a.kubeconfig, "--kubeconfig"),
                                             kube_context=a.kube_context, merge_request=_merge_request(a),
                                             allow_prerelease=a.allow_prerelease, timeout=a.timeout),
                    _promote_flags, env=False),
    "publish-artifact": Verb("push each component's rendered objects (or --manifests) as a Flux OCI artifact "
                             "tagged app-<component> and app-<component>-<chart_version>",
                             lambda ws, a: ws.publish_artifact(
                                 a.env, _registry(a), a.component,
                                 manifests_dir=p.resolve() if (p := _path(a.manifests)) else None,
                                 revision=a.revision, source_url=a.source_url),
                             _publish_artifact_flags),
    "retire-artifact": Verb("delete app-<component> so Flux uninstalls a component removed from the repository",
                            lambda ws, a: ws.retire_artifact(a.env, a.component, _registry(a)), _retire_flags),
    "artifact-objects": Verb(
        "write the Flux Operator objects (ResourceSetInputProvider, ResourceSet, Receiver) into --out",
        lambda ws, a: ws.artifact_objects(a.env, a.repository, _given_path(a.out, "--out"), name=a.name,
                                          namespace=a.namespace,
                                          target_namespace=a.target_namespace, registry_secret=a.registry_secret,
                                          receiver_secret=a.receiver_secret, plain_http=a.plain_http),
        _objects_flags),
    "plan": Verb("what a change does to every environment x component (install, upgrade, refused, retire, upload, "
                 "unchanged); never writes to a registry", _plan, _plan_flags, env=False),
    "flux": Verb("write the environment's Flux objects (OCIRepository, HelmRelease, Receiver) into --out",
                 lambda ws, a: ws.flux(a.env, _given_path(a.out, "--out"), registry_secret=a.registry_secret,
                                       plain_http=a.plain_http),
                 _flux_flags),
    "deploy": Verb("publish, trigger Flux through the Receiver, wait until each HelmRelease runs the pushed version "
                   "(exit 3 failed, 4 superseded, 5 timeout)", _deploy, _deploy_flags),
    "wait": Verb("wait until each HelmRelease runs the version the configs describe, or with --artifact the "
                 "Kustomization app-<component> applied that digest (exit 3 failed, 4 superseded, 5 timeout)",
                 lambda ws, a: ws.wait(a.env, component=a.component, kubeconfig=_secret(a.kubeconfig, "--kubeconfig"),
                                       kube_context=a.kube_context, timeout=a.timeout, artifact=a.artifact,
                                       artifact_namespace=a.artifact_namespace),
                 _wait_flags),
}


# --------------------------------------------------------------------------- parser


class _Version(argparse.Action):
    """``--version``: the installed package's version, read only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object):
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0,
                         help="print the version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        from importlib.metadata import version

        print(f"{PROG} {version('faas_deployment')}", flush=True)  # a result: standard output
        parser.exit()


def _global_flags(parser: argparse.ArgumentParser, *, after_verb: bool) -> None:
    """``--source``, ``--template``, ``--output``; after the verb they only override what was given before it."""
    keep: dict[str, Any] = {"default": argparse.SUPPRESS} if after_verb else {}
    parser.add_argument("--source", help="repository root holding env/ (default: .)", **(keep or {"default": "."}))
    parser.add_argument("--template", help="a cookiecutter template directory replacing the embedded chart template",
                        **(keep or {"default": None}))
    parser.add_argument("--output", "--format", dest="output", metavar="text|json",
                        help="results as text or as one JSON document (default: text); --format is the same flag, "
                             "the name the Dagger functions use (dagger call owns --output)",
                        **(keep or {"default": "text"}))


def build_parser(verbs: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The command line parser; only the verbs in ``verbs`` (default: all) get their own flags."""
    chosen = set(VERBS) if verbs is None else set(verbs)
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    parser.add_argument("--version", action=_Version)
    _global_flags(parser, after_verb=False)
    subparsers = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, verb in VERBS.items():
        sub = subparsers.add_parser(name, help=verb.help, description=verb.help)
        sub.set_defaults(verb_spec=verb)
        if name not in chosen:
            continue
        _global_flags(sub, after_verb=True)
        if verb.env:
            sub.add_argument("--env", required=verb.env_required, help="environment (env/<env>/)")
        if verb.component:
            sub.add_argument("--component", required=True, help="component (env/<env>/<component>/)")
        verb.flags(sub)
    return parser


def _interrupt_on_term(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds like Ctrl-C: temporary directories are removed on the way out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (see module doc).

    SIGTERM (a CI job cancelled, ``kill``) is handled like Ctrl-C: the run stops,
    the publish leases it holds are given back (:func:`pipeline.interrupted`), its
    temporary directories are removed, one line says so, and the exit code is 130.
    """
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        try:
            pipeline.interrupted()
        except KeyboardInterrupt:
            pass  # a second interrupt: leave what is left to the leases' lifetime
        print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
        _forget_unhandled_interrupt()
        return 130
    except BrokenPipeError:
        return _reader_gone()


def _forget_unhandled_interrupt() -> None:
    """Clear CPython's mark of an interrupt that left code run from a string, once it is handled.

    CPython marks a KeyboardInterrupt that leaves code run from a string (``exec``
    of a dataclass's generated methods during a lazy import, say) as unhandled, even
    when a caller handles it later (``Python/pythonrun.c``, ``run_eval_code_obj``);
    ``Py_RunMain`` then ends a ``python -m`` process by SIGINT (exit -2) instead of
    with 130. The same function clears the mark on entry: evaluating a constant
    string clears it.
    """
    eval("None")


def _reader_gone() -> int:
    """The reader of standard output went away (``| head -1``): end quietly, as ``head``'s writer should.

    Standard output is pointed at ``/dev/null`` so the interpreter's final flush
    finds no broken pipe (Python's ``signal`` documentation, "Note on SIGPIPE").
    The exit code is 141, 128 + SIGPIPE, what a shell reports for a writer the pipe ended.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141


def _main(argv: list[str]) -> int:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt_on_term)
    args = build_parser([token for token in argv if token in VERBS]).parse_args(argv)
    _given.clear()
    _given.update({"--" + k.replace("_", "-"): v for k, v in vars(args).items() if isinstance(v, (str, list))})
    from .core.errors import UserError

    try:
        pipeline.check_output(args.output)
        ws = pipeline.Workspace.open(args.source, args.template)
        with pipeline.run_tempdir():
            result = args.verb_spec.run(ws, args)
    except UserError as exc:
        if args.output == "json":  # one JSON object, the last line of standard error (docs/results.md)
            import json

            from .core.errors import error_document

            print(json.dumps(error_document(exc), sort_keys=False), file=sys.stderr, flush=True)
        else:
            print(f"{PROG}: error: {exc}", file=sys.stderr, flush=True)
        return 1
    if getattr(args, "report", None) and isinstance(result.data, dict) and "outcomes" in result.data:
        report = pipeline.Result(data=result.data).render("json") + "\n"
        _given_path(args.report, "--report").write_text(report, encoding="utf-8")
    output = result.render(args.output)
    if output:
        print(output, flush=True)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
