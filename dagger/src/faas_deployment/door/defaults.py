"""The defaults of the verbs, in one place: the front ends show them in their help and pass nothing else.

The constants are the door's own; :data:`DEFAULTS` names those that live with their
rule in a domain module, read lazily through this module's ``__getattr__``
(``defaults.DEFAULT_PLATFORM`` imports :mod:`faas_deployment.images.images` on first
use), so that ``faas-deploy --help`` loads no verb's dependencies.
"""

from __future__ import annotations

import importlib
from typing import Any

#: The tag ``build-image`` gives an image when none is asked for.
BUILD_TAG = "latest"
#: The Dockerfile of a build context, relative to it.
DOCKERFILE = "Dockerfile"
#: The semver part ``bump`` raises unless told.
BUMP_PART = "patch"
#: The default branch (merge requests' target, the plan's base when none is known).
DEFAULT_BRANCH = "main"
#: The git remote merge request branches are pushed to.
REMOTE = "origin"
#: Labels a ``bump`` merge request gets unless others are given.
BUMP_LABELS = ("bump",)
#: Namespace of the Flux objects ``artifact-objects`` writes, and of the Kustomizations ``wait`` watches.
FLUX_NAMESPACE = "flux-system"
#: Namespace charts are rendered in for ``template`` and the Flux artifacts (as ``helm template`` does); the
#: artifacts' Kustomization applies them in the environment's ``namespace`` (``targetNamespace``).
RENDER_NAMESPACE = "default"
#: Secret holding the Receiver token of the artifact objects.
RECEIVER_SECRET = "faas-receiver-token"

#: The domain modules' defaults that front ends show in their help, by name: ``(module, attribute)``,
#: the module relative to the package.
DEFAULTS: dict[str, tuple[str, str]] = {
    "REGISTRY_TIMEOUT": ("core.deadline", "DEFAULT_TIMEOUT"),
    "DEFAULT_PLATFORM": ("images.images", "DEFAULT_PLATFORM"),
    "READY_PATH": ("bundle.admin_api", "DEFAULT_READY_PATH"),
    "UPLOAD_PATH": ("bundle.admin_api", "DEFAULT_UPLOAD_PATH"),
    "UPLOAD_TIMEOUT": ("bundle.admin_api", "DEFAULT_TIMEOUT"),
    "PROMOTION_LABELS": ("gitlab.proposal", "DEFAULT_LABELS"),
    "COMMIT_AUTHOR": ("gitlab.proposal", "DEFAULT_AUTHOR"),
    "BRANCH_ENVIRONMENTS": ("gitlab.child_pipeline", "BRANCH_ENVIRONMENTS"),
    "TEMPLATE_IN_REPOSITORY": ("gitlab.plan", "TEMPLATE_IN_REPOSITORY"),
    "REPOSITORY_SETTINGS": ("charts.repository_settings", "FILE_NAME"),
    "TEMPLATES_DIR": ("charts.repository_settings", "TEMPLATES_DIR"),
    "BUMP_PARTS": ("charts.bump", "PARTS"),
}


def __getattr__(name: str) -> Any:
    if name in DEFAULTS:
        module, attribute = DEFAULTS[name]
        return getattr(importlib.import_module(f"{__package__.rpartition('.')[0]}.{module}"), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
