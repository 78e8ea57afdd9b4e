"""The flags of ``faas-deploy``'s verbs: one builder per flag group, shared by the verbs that take it.

Each builder adds its flags to a verb's parser (:mod:`faas_deployment.cli` calls them
only for the verb on the command line). A default shown in the help is the door's
(:mod:`faas_deployment.door.defaults`), read when the parser is built, never at import:
``faas-deploy --help`` loads neither the door nor a verb's dependencies.
"""

from __future__ import annotations

import argparse

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up
if TYPE_CHECKING:
    from collections.abc import Callable


class _Defaults:
    """:mod:`faas_deployment.door.defaults`, imported on first use."""

    def __getattr__(self, name: str):
        from .door import defaults

        return getattr(defaults, name)


#: The door's defaults, as the help shows them.
DEFAULTS = _Defaults()


def registry_flags(parser: argparse.ArgumentParser, *, timeout: bool = True) -> None:
    """The registry flags; ``timeout=False`` for a verb whose own ``--timeout`` bounds the registry work too."""
    parser.add_argument("--registry", help="oci://HOST[:PORT]/PATH; without it, the environment's local Helm "
                                           "repository dist/charts/<env>/")
    credential_flags(parser)
    if timeout:
        timeout_flag(parser, "overall deadline of the registry work (connect, read and total), in seconds")


def credential_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--username", help="registry user name")
    parser.add_argument("--password", metavar="env:NAME|file:PATH", help="registry password or token")
    parser.add_argument("--plain-http", action="store_true", help="HTTP instead of HTTPS (local test registries only)")
    ca_file_flag(parser)


def ca_file_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ca-file", metavar="PATH", help="PEM certificate of a private CA to trust for the registry's TLS"
    )


def immutable_tags_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--immutable-tags", action="store_true",
                        help="the registry refuses to overwrite a tag (Harbor tag immutability, ECR IMMUTABLE): "
                             "publish without the publish lease, 8 requests per new chart (docs/publishing.md)")


def timeout_flag(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--timeout", type=float, default=DEFAULTS.REGISTRY_TIMEOUT, metavar="SECONDS",
                        help=f"{help} (default: %(default)g)")


def rollout_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--component", help="only this component (default: every component of the environment)")
    parser.add_argument("--kubeconfig", metavar="env:NAME|file:PATH",
                        help="kubeconfig as a secret (default: in-cluster, else $KUBECONFIG)")
    parser.add_argument("--kube-context", help="kubeconfig context, e.g. the GitLab agent's <path>:<agent>")
    parser.add_argument("--timeout", type=float, help="seconds to wait (default: deploy_timeout of environment.yaml)")
    parser.add_argument("--report", metavar="FILE", help="also write the JSON report of every outcome to FILE")


def merge_request_flags(parser: argparse.ArgumentParser) -> None:
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
        "--remote", default=DEFAULTS.REMOTE, help="git remote name or URL to push to (default: %(default)s)"
    )
    parser.add_argument("--label", action="append", default=[], help="merge request label (repeatable)")
    parser.add_argument("--author", default=DEFAULTS.COMMIT_AUTHOR, help="commit author 'Name <email>'")
    parser.add_argument("--pipeline-url", default="",
                        help="pipeline URL quoted as evidence (default: $CI_PIPELINE_URL)")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="overall deadline of every git and GitLab step, in seconds (default: 120)")


def image_flags(parser: argparse.ArgumentParser, *, tag_required: bool) -> None:
    parser.add_argument(
        "--context", required=True, metavar="DIR", help="the component's source directory (build context)"
    )
    parser.add_argument(
        "--dockerfile", default=DEFAULTS.DOCKERFILE,
        help="Dockerfile path inside the context (default: %(default)s)",
    )
    parser.add_argument("--build-arg", action="append", default=[], metavar="NAME=VALUE",
                        help="build argument (repeatable; not for secrets: it stays in the image history)")
    parser.add_argument("--target", default="", help="build stage to stop at (default: the last)")
    parser.add_argument("--platform", default=DEFAULTS.DEFAULT_PLATFORM, metavar="OS/ARCH",
                        help="target platform (default: %(default)s, what the clusters run)")
    parser.add_argument(
        "--tag",
        required=tag_required,
        default=None if tag_required else DEFAULTS.BUILD_TAG,
        help="image tag, typically the commit SHA" + ("" if tag_required else " (default: %(default)s)"),
    )
    parser.add_argument("--revision", default="",
                        help="org.opencontainers.image.revision (default: the context's git HEAD, else the tag)")
    parser.add_argument(
        "--source-url", default="", help="org.opencontainers.image.source (default: the context's git origin URL)"
    )


def artifact_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repository", "--registry", metavar="oci://HOST/PATH",
                        help="the OCI repository holding every component's app-<component> tags "
                             "(default: artifact_repository of env/<env>/environment.yaml; older name: --registry)")
    credential_flags(parser)


def check_flags(parser: argparse.ArgumentParser) -> None:
    registry_flags(parser)
    parser.add_argument("--base", help="also refuse a chart changed since this git ref without a higher chart_version")


def publish_flags(parser: argparse.ArgumentParser) -> None:
    registry_flags(parser)
    immutable_tags_flag(parser)
    parser.add_argument("--prerelease", default="", metavar="ID",
                        help="publish chart_version as the pre-release <chart_version>-ID, e.g. mr.42.3 (docs/plan.md)")


def release_flags(parser: argparse.ArgumentParser) -> None:
    registry_flags(parser)
    immutable_tags_flag(parser)
    parser.add_argument("--skip-image-check", action="store_true",
                        help="do not check that each chart's image_repository:image_tag exists (air-gapped registries)")


def upload_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--admin-url", help="operator admin API base URL (default: admin_url of env/<env>/environment.yaml)"
    )
    parser.add_argument("--admin-token", "--token", required=True, metavar="env:NAME|file:PATH",
                        help="admin API bearer token (older name: --token)")
    parser.add_argument("--ready-path", default=DEFAULTS.READY_PATH, help="readiness path (default: %(default)s)")
    parser.add_argument("--upload-path", default=DEFAULTS.UPLOAD_PATH, help="upload path (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=DEFAULTS.UPLOAD_TIMEOUT,
                        help="overall deadline for readiness plus upload, in seconds (default: %(default)g)")
    parser.add_argument("--out", metavar="FILE", help="where the bundle is written and kept (default: "
                                                      "dist/manifests/<env>.zip under --source)")


def build_flags(parser: argparse.ArgumentParser) -> None:
    image_flags(parser, tag_required=False)
    parser.add_argument("--out", metavar="FILE", help="also write the image as an OCI archive to FILE")


def publish_image_flags(parser: argparse.ArgumentParser) -> None:
    image_flags(parser, tag_required=True)
    parser.add_argument("--username", help="registry user name")
    parser.add_argument("--password", metavar="env:NAME|file:PATH", help="registry password or token")
    parser.add_argument("--plain-http", action="store_true",
                        help="the registry speaks plain HTTP only (refused for a registry that answers over TLS)")
    ca_file_flag(parser)
    timeout_flag(parser, "overall deadline of the build and the push, in seconds")


def bump_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image-tag", required=True, help="the new image tag, typically the commit SHA")
    parser.add_argument(
        "--part",
        choices=DEFAULTS.BUMP_PARTS,
        default=DEFAULTS.BUMP_PART,
        help="semver part to raise (default: %(default)s)",
    )
    merge_request_flags(parser)


def promote_flags(parser: argparse.ArgumentParser) -> None:
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
    merge_request_flags(parser)


def publish_artifact_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--component", help="one component (default: every component of --env)")
    artifact_flags(parser)
    parser.add_argument(
        "--objects", "--manifests",
        metavar="DIR",
        help="a directory of Kubernetes objects (YAML or JSON) to push instead of the rendered chart "
             "(needs --component; older name: --manifests)",
    )
    parser.add_argument(
        "--revision",
        default="",
        help="org.opencontainers.image.revision, <branch>@sha1:<sha> (default: from the source tree's git)",
    )
    parser.add_argument("--source-url", default="",
                        help="org.opencontainers.image.source (default: the source tree's git origin URL)")


def retire_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--component", required=True, help="the removed component")
    artifact_flags(parser)


def objects_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repository", required=True, metavar="oci://HOST/PATH",
                        help="the artifact repository the objects watch (publish-artifact's --repository)")
    parser.add_argument("--out", required=True, metavar="DIR")
    parser.add_argument("--name", default="", help="the objects' name (default: faas-<env>)")
    parser.add_argument(
        "--namespace", default=DEFAULTS.FLUX_NAMESPACE, help="namespace of the Flux objects (default: %(default)s)"
    )
    parser.add_argument(
        "--target-namespace",
        default="",
        help="namespace the objects are applied in (default: namespace of env/<env>/environment.yaml)",
    )
    parser.add_argument(
        "--registry-secret", default="", help="docker-config Secret for the registry (default: anonymous)"
    )
    parser.add_argument("--receiver-secret", default=DEFAULTS.RECEIVER_SECRET,
                        help="Secret with the Receiver token (default: %(default)s)")
    parser.add_argument("--plain-http", action="store_true", help="insecure: true (a plain HTTP registry; tests only)")


def flux_flags(parser: argparse.ArgumentParser) -> None:
    out_flag(metavar="DIR")(parser)
    parser.add_argument("--registry-secret", default="",
                        help="docker-config Secret the OCIRepositories pull with (default: anonymous)")
    parser.add_argument("--plain-http", action="store_true", help="insecure: true (a plain HTTP registry; tests only)")


def plan_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", help="git ref or SHA to compare with (default: CI_MERGE_REQUEST_DIFF_BASE_SHA, "
                        "else CI_COMMIT_BEFORE_SHA, all zeros: the default branch; else HEAD~1)")
    parser.add_argument("--head", help="git ref or SHA of the change (default: the working tree)")
    parser.add_argument("--child-pipeline", "--pipeline", dest="child_pipeline_file", metavar="FILE",
                        help="also write the GitLab child pipeline to FILE (older name: --pipeline)")
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


def deploy_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", help="override chart_registry of environment.yaml")
    credential_flags(parser)
    immutable_tags_flag(parser)
    rollout_flags(parser)
    parser.add_argument("--receiver-token", metavar="env:NAME|file:PATH",
                        help="trigger through the Receiver: its token (key token of its Secret)")
    parser.add_argument("--trigger-api", action="store_true",
                        help="trigger through the Kubernetes API instead (merge-patch reconcile.fluxcd.io/requestedAt)")
    parser.add_argument("--receiver-url", help="override receiver_url of environment.yaml")
    parser.add_argument("--admin-token", "--upload-manifests", metavar="env:NAME|file:PATH",
                        help="admin API token: after the operator is deployed, upload the bundle of "
                             "env/<env>/operator/dynamic/ (older name: --upload-manifests)")
    parser.add_argument("--admin-url", help="override admin_url of environment.yaml")
    parser.add_argument("--prerelease", default="", metavar="ID",
                        help="publish chart_version as the pre-release <chart_version>-ID, e.g. mr.42.3")


def wait_flags(parser: argparse.ArgumentParser) -> None:
    rollout_flags(parser)
    parser.add_argument("--artifact", metavar="sha256:DIGEST",
                        help="the Flux OCI artifact's manifest digest publish-artifact pushed: wait for the "
                             "Kustomization app-<component> instead of the HelmRelease")
    parser.add_argument(
        "--artifact-namespace",
        default=DEFAULTS.FLUX_NAMESPACE,
        help="namespace of the Kustomization app-<component> (default: %(default)s, as artifact-objects)",
    )


def out_flag(required: bool = True, metavar: str | None = None) -> Callable[[argparse.ArgumentParser], None]:
    def add(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--out", required=required, metavar=metavar)

    return add
