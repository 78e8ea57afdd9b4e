"""Component images as lazy Dagger chains (the Dagger front end's half of ``images``).

Building the chain needs no engine; ``main.py`` awaits ``publish(address)``. The
rules (tags, repositories, labels, build options) are those of :mod:`.images`; the
CLI's engine is :mod:`.buildah`. It lives in its own module so that the CLI never
imports the Dagger SDK.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import anyio
import dagger

from ..core.deadline import DEFAULT_TIMEOUT, Deadline
from ..core.names import check_image_tag
from ..core.progress import note
from ..core.secrets import SecretValue
from ..registry.credentials import RegistryAccess, RegistryCredentials, check_pair, same_host
from . import image_tags
from .images import BuildOptions, check_image_repository, parse_build_args, registry_host

#: A password as a front end holds it (a ``dagger.Secret`` before it is read, a ``SecretValue`` after).
S = TypeVar("S")


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


def for_repository(repository: str, host: str | None, username: str, password: S | None) -> tuple[str, S | None]:
    """The user name and password for ``repository``'s registry: as given when they were given for its host
    (``host``, Dagger's ``with-registry --address``; ``None``: for this repository), else none
    (:meth:`RegistryAccess.for_host`: credentials never leave their host)."""
    if host is None or same_host(host, registry_host(repository)):
        return username, password
    return "", None


def dagger_publish_chain(
    container: dagger.Container,
    *,
    repository: str,
    tag: str,
    username: str = "",
    password: dagger.Secret | None = None,
    host: str | None = None,
) -> tuple[dagger.Container, str]:
    """The container to publish and its address, ``repository:tag``.

    With credentials the container carries ``with_registry_auth(address,
    username, secret)``; the caller then awaits ``container.publish(address)``,
    which returns ``address@sha256:...``. ``host``: the registry the credentials
    were given for (:func:`for_repository`).

    Raises:
        UserError: invalid tag or repository, only one of username/password.
    """
    check_image_tag(tag)
    check_image_repository(repository)
    check_pair(username, password)
    username, password = for_repository(repository, host, username, password)
    address = f"{repository}:{tag}"
    if password is not None:
        container = container.with_registry_auth(address, username, password)
    return container, address


async def publish(
    container: dagger.Container,
    address: str,
    *,
    username: str = "",
    password: SecretValue | None = None,
    host: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> str:
    """Publish ``container`` at ``address`` (``repository:tag``) unless the tag exists; the outcome line.

    The registry's tag is read first (``HEAD``, :func:`.image_tags.published_digest`,
    off the event loop): the engine tells an image's digest only by publishing it, so
    an existing tag cannot be compared and is refused (:func:`.image_tags.refuse_existing`)
    rather than overwritten; so is a tag the registry will not answer for (credentials
    refused, TLS failure, another status). Only a registry this function cannot connect
    to at all is left to the engine, which pushes from its own network: a warning line
    says the tag was not checked. Between the check and the push another publisher
    could still write the tag (the registry has no conditional write).

    ``username``/``password`` are also the credentials of the tag check (sent to the
    repository's registry host only, and only when it is ``host``: :func:`for_repository`);
    ``timeout`` bounds that check, in seconds.

    Returns:
        ``pushed <repository>:<tag>@sha256:...``.

    Raises:
        UserError: the tag exists, or the registry's answer about it cannot be read.
    """
    repository, tag = address.rsplit(":", 1)
    username, password = for_repository(repository, host, username, password)
    access = RegistryAccess(registry_host(repository), RegistryCredentials.from_flags(username or None, password))
    deadline = Deadline(timeout)

    def check() -> None:
        why = image_tags.unreachable(access, deadline)
        if why:
            note(
                f"WARNING: {address} not checked before publishing: {why}; the engine publishes it from its own network"
            )
            return
        image_tags.refuse_existing(address, image_tags.published_digest(repository, tag, access, deadline))

    await anyio.to_thread.run_sync(check)
    return f"pushed {await container.publish(address)}"
