"""The Dagger module's shared arguments: what a ``source`` uploads, and the argument types several
functions take (each an ``Annotated`` type with its ``Doc``, so one argument reads the same everywhere).

Used by the objects of :mod:`.main` (``FaasDeployment``), :mod:`.dagger_environment` and
:mod:`.dagger_component`; the engine rules they follow are in :mod:`.main`'s docstring.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import dagger
from dagger import DefaultPath, Doc, Ignore

from .door import defaults

#: What the default ``source`` uploads: ``env/`` (configs, ``dynamic/``), the repository
#: settings ``faas-deployment.yaml`` and ``templates/`` (where an in-repository chart
#: template lives), the trees the functions read. Everything else (``.git``, ``dist/``,
#: virtual environments, ``node_modules``, ...) stays on the caller's machine.
#: Dockerignore syntax: ``*`` drops every top-level entry, ``!env`` takes ``env/`` back.
SOURCE_IGNORE = ["*", "!env", f"!{defaults.REPOSITORY_SETTINGS}", f"!{defaults.TEMPLATES_DIR}", "env/**/__pycache__",
                 "env/**/.DS_Store"]
#: What ``promote`` and ``bump-merge-request`` upload: ``env/`` and the git
#: repository ``.git`` they commit in (and push from).
REPOSITORY_IGNORE = [*SOURCE_IGNORE, "!.git"]
_TEMPLATE_IN_REPOSITORY: Path = defaults.TEMPLATE_IN_REPOSITORY
#: What ``plan`` and ``child-pipeline`` upload: what ``source`` does, ``.git`` (the base tree is
#: read from it), ``.gitlab-ci.yml`` (the child pipeline copies its ``.dagger`` template)
#: and the embedded chart template (a change to it plans every chart).
PLAN_IGNORE = [*REPOSITORY_IGNORE, "!.gitlab-ci.yml", f"!{_TEMPLATE_IN_REPOSITORY.as_posix()}"]
#: Parameters shared by ``plan`` and ``child-pipeline``.
PlanCheckout = Annotated[
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
AdminTokenArg = Annotated[dagger.Secret | None, Doc(
    "admin API token: once the operator runs the new chart, upload the bundle of env/<env>/operator/dynamic/")]
DeployAdminUrlArg = Annotated[str, Doc("with admin-token: override admin_url of environment.yaml")]
PrereleaseArg = Annotated[str, Doc("publish chart_version as the pre-release <chart_version>-ID, e.g. mr.42.3")]
ImmutableTagsArg = Annotated[bool, Doc("the registry refuses to overwrite a tag (Harbor tag immutability, ECR "
                                      "IMMUTABLE): publish without the publish lease")]
