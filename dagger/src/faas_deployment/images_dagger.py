"""Component images as lazy Dagger chains (the Dagger front end's half of ``images``).

Building the chain needs no engine; ``main.py`` awaits ``publish(address)``. The
rules (tags, repositories, labels, build options) are those of :mod:`.images`.
"""

from __future__ import annotations

from collections.abc import Mapping

import dagger

from .credentials import check_pair
from .images import BuildOptions, check_image_repository, check_image_tag, parse_build_args


def dagger_build(
    context: dagger.Directory,
    options: BuildOptions = BuildOptions(),
    *,
    labels: Mapping[str, str] | None = None,
) -> dagger.Container:
    """The lazy Dagger chain that builds ``context`` (no engine needed to make it).

    ``Directory.docker_build`` with the Dockerfile, build arguments, target and
    platform, then one ``with_label`` per label, in sorted order.

    Raises:
        UserError: bad options (checked before anything runs).
    """
    options.checked()
    build_args = [dagger.BuildArg(name=k, value=v) for k, v in parse_build_args(options.build_args).items()]
    container = context.docker_build(
        dockerfile=options.dockerfile,
        build_args=build_args,
        target=options.target,
        platform=dagger.Platform(options.platform),
    )
    for name, value in sorted((labels or {}).items()):
        container = container.with_label(name, value)
    return container


def dagger_publish_chain(
    container: dagger.Container,
    *,
    repository: str,
    tag: str,
    username: str = "",
    password: dagger.Secret | None = None,
) -> tuple[dagger.Container, str]:
    """The container to publish and its address, ``repository:tag``.

    With credentials the container carries ``with_registry_auth(address,
    username, secret)``; the caller then awaits ``container.publish(address)``,
    which returns ``address@sha256:...``.

    Raises:
        UserError: invalid tag or repository, only one of username/password.
    """
    check_image_tag(tag)
    check_image_repository(repository)
    check_pair(username, password)
    address = f"{repository}:{tag}"
    if password is not None:
        container = container.with_registry_auth(address, username, password)
    return container, address

