"""Image verbs: ``build-image`` and ``publish-image`` with buildah, and what the Dagger front end
needs to build the same image with the engine (:func:`image_recipe`, :func:`image_build`).

The rules (tags, labels, build options) are :mod:`faas_deployment.images.images`';
an image tag, once published, is never overwritten (:mod:`faas_deployment.images.image_tags`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .defaults import BUILD_TAG, DOCKERFILE
from .results import Result, make_result
from .running import check_timeout
from .workspace import Registry, Workspace

if TYPE_CHECKING:
    from ..core.secrets import SecretValue



@dataclass(frozen=True)
class ImageBuild:
    """A component image as the Dagger engine builds it (:func:`image_build`): the
    :class:`images.BuildOptions`, the OCI labels, the ``image_repository`` (``""``: not asked)."""

    options: Any
    labels: Mapping[str, str]
    repository: str


def image_labels(
    tag: str, *, revision: str = "", source_url: str = "", context: Path | None = None
) -> dict[str, str]:
    """The OCI labels of a component image (the one rule: :func:`images.image_labels`)."""
    from ..images import images

    return images.image_labels(tag, revision=revision, source_url=source_url, context=context)


def image_repository(ws: Workspace, env: str, component: str) -> str:
    """The component's ``image_repository``, checked (:func:`images.component_repository`)."""
    from ..images import images

    ws.config_file(env, component)
    return images.component_repository(ws.source, env, component, ws.template_dir)


def image_recipe(*, tag: str = "", dockerfile: str = DOCKERFILE, build_args: Sequence[str] = (),
                 target: str = "", platform: str = "", revision: str = "", source_url: str = "") -> ImageBuild:
    """What a front end that builds with the engine needs: the build options
    (:func:`build_options`) and the OCI labels of ``tag`` (:func:`image_labels`); no repository.

    Raises:
        UserError: bad build options.
    """
    return ImageBuild(build_options(dockerfile, build_args, target, platform),
                      image_labels(tag, revision=revision, source_url=source_url), "")


def image_build(ws: Workspace, env: str, component: str, *, tag: str, dockerfile: str = DOCKERFILE,
                build_args: Sequence[str] = (), target: str = "", platform: str = "", revision: str = "",
                source_url: str = "") -> ImageBuild:
    """:func:`image_recipe` with the component's checked ``image_repository`` (:func:`image_repository`,
    asked first: an unknown environment or component is said before bad options).

    Raises:
        UserError: an unknown environment or component, a bad repository, bad build options.
    """
    repository = image_repository(ws, env, component)
    recipe = image_recipe(tag=tag, dockerfile=dockerfile, build_args=build_args, target=target,
                               platform=platform, revision=revision, source_url=source_url)
    return replace(recipe, repository=repository)


def build_options(dockerfile: str = DOCKERFILE, build_args: Sequence[str] = (), target: str = "",
                  platform: str = ""):
    """The build options of ``build-image``/``publish-image`` (platform default: what the clusters run)."""
    from ..images import images

    return images.BuildOptions(
        dockerfile or DOCKERFILE, tuple(build_args), target, platform or images.DEFAULT_PLATFORM
    )


def build_image(ws: Workspace, env: str, component: str, context: Path, *, options: Any, tag: str = BUILD_TAG,
                revision: str = "", source_url: str = "", out: Path | None = None) -> Result:
    """``build-image``: build ``context`` with buildah (optionally written as an OCI archive to ``out``)."""
    from ..images import buildah

    ws.config_file(env, component)  # unknown env/component: say so before building
    built = buildah.build_image(Path(context), options, tag=tag or BUILD_TAG, revision=revision,
                               source_url=source_url, out=Path(out) if out else None)
    return make_result([str(built)], built, path=built.archive)


def publish_image(ws: Workspace, env: str, component: str, context: Path, *, tag: str, options: Any,
                  username: str | None = None, password: SecretValue | None = None, plain_http: bool = False,
                  timeout: float | None = None, revision: str = "", source_url: str = "",
                  ca_file: str | Path | None = None) -> Result:
    """``publish-image``: build and push to the component's ``image_repository:tag`` (an existing tag
    is refused, never overwritten); ``pushed ref@digest``."""
    from ..core.deadline import DEFAULT_TIMEOUT
    from ..images import buildah

    timeout = check_timeout(timeout)
    repository = image_repository(ws, env, component)
    published = buildah.publish_image(
        Path(context),
        repository=repository,
        tag=tag,
        options=options,
        credentials=Registry(username=username, password=password).credentials(),
        plain_http=plain_http,
        timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
        revision=revision,
        source_url=source_url,
        ca_file=ca_file,
    )
    return make_result([str(published)], published)

