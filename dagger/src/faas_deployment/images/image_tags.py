"""Image tags in their registry: immutable once published, and present before a release.

An image tag is treated like a chart version (docs/images.md): once
``<image_repository>:<tag>`` is published its content never changes, because a
chart that names the tag would otherwise deploy something else on its next pull.

- ``publish-image``: the tag absent -> push; present with the same manifest digest ->
  ``unchanged`` (nothing pushed); present with another digest -> refused
  (:func:`faas_deployment.core.versions.decide_image`). The Dagger engine gives an image's digest only by publishing
  it, so the Dagger path refuses any existing tag (:func:`refuse_existing`).
- ``release``: each chart's ``image_repository:image_tag`` must exist in its
  registry (:func:`check_images`); a registry that cannot be reached or that will not
  answer gives a warning line, a registry answering 404 fails the release before
  anything is pushed.

The registry is asked with ``HEAD /v2/<name>/manifests/<tag>`` (OCI distribution
spec, "Checking if content exists in the registry"), accepting the OCI and Docker
manifest and index media types, through the registry client of :mod:`.oci` (its
TLS rules, retry policy and auth challenges, anonymous or token): credentials go
only to the host they were given for (:meth:`RegistryAccess.for_host`).
"""

from __future__ import annotations

import functools
import socket
import urllib.parse
import urllib.request
from collections.abc import Mapping

from ..core import names
from ..core.deadline import Deadline, run_all
from ..core.errors import Problem, UserError
from ..core.progress import note
from ..registry.credentials import RegistryAccess
from ..registry.registry_client import RegistryClient

#: What an image tag may point at: an image manifest or an index, OCI or Docker
#: (OCI image-spec ``media-types.md``; Docker's ``manifest-v2-2.md``). A registry
#: answers 404 for a manifest whose type the request does not accept, so every one is listed.
IMAGE_MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
ACCEPT = ", ".join(IMAGE_MANIFEST_TYPES)

#: Longest wait, in seconds, for a TCP connection to an image registry during a release's check.
PROBE_TIMEOUT = 3.0
#: Overall bound, in seconds, of a release's image checks (they run concurrently).
CHECK_TIMEOUT = 30.0


def _client(repository: str, access: RegistryAccess, deadline: Deadline) -> tuple[RegistryClient, str]:
    """The registry client for ``repository``'s parent path and the repository's last component."""
    path = repository.split("/", 1)[1]
    parent, _, name = path.rpartition("/")
    root = str(names.OciUrl(names.registry_of(repository), parent))
    client = RegistryClient(root, credentials=access.credentials, plain_http=access.plain_http,
                           ca_file=access.ca_file, deadline=deadline)
    return client, name


def published_digest(repository: str, tag: str, access: RegistryAccess, deadline: Deadline) -> str | None:
    """Manifest digest of ``repository:tag`` in its registry, or ``None`` when the registry answers 404.

    ``HEAD`` first; when it names no valid ``Docker-Content-Digest`` (optional in the
    spec), ``GET`` and hash the bytes.

    Raises:
        UserError: unreachable, credentials refused (``transport.RegistryAuthError``),
            another status, or answers that disagree.
    """
    client, name = _client(repository, access.for_host(names.registry_of(repository)), deadline)
    head = client.manifest_head_response(name, tag, ACCEPT)
    if head.status_code == 404:
        return None
    if head.status_code != 200:
        raise UserError(f"registry {client.host}: resolving {repository}:{tag}: HTTP {head.status_code}")
    claimed = head.headers.get("Docker-Content-Digest", "")
    if names.is_digest(claimed):
        return claimed
    got = client.get_manifest(name, tag, ACCEPT)
    if got is None:
        raise client.refuse(f"resolving {repository}:{tag}", "HEAD answers 200 but GET answers 404")
    return got[0]


def refuse_existing(reference: str, published: str | None) -> None:
    """The Dagger path's rule: an existing tag is refused, since its content cannot be compared first.

    ``Container.publish`` is the only way the Dagger engine gives an image's manifest
    digest, and it overwrites the tag; so the tag is checked before, and a tag that
    exists is left as it is.

    Raises:
        UserError: ``published`` is not ``None``.
    """
    if published is not None:
        raise UserError(
            f"{reference} already exists ({published}); an image tag never changes once published, and the "
            f"Dagger engine tells an image's digest only by publishing it, so this one cannot be compared first "
            f"and is not overwritten: publish under a new tag (e.g. the commit SHA), or run faas-deploy "
            f"publish-image, which compares digests and reports an identical image as unchanged"
        )


def unreachable(access: RegistryAccess, deadline: Deadline) -> str:
    """``""`` when a TCP connection to ``access.host`` opens (or a proxy is configured for it), else why not.

    A quick look (at most :data:`PROBE_TIMEOUT` seconds) before the registry client,
    whose retries are meant for registries that answer. The port is the host's, else
    443 (80 with ``plain_http``).
    """
    parts = urllib.parse.urlparse(f"//{access.host}")
    name = parts.hostname or access.host
    if urllib.request.getproxies() and not urllib.request.proxy_bypass(name):
        return ""  # the proxy decides: let the client go through it
    try:
        with socket.create_connection((name, parts.port or (80 if access.plain_http else 443)),
                                      timeout=max(0.05, min(PROBE_TIMEOUT, deadline.remaining()))):
            return ""
    except OSError as exc:
        return f"cannot connect to {access.host} ({exc.strerror or type(exc).__name__})"


def _check_one(shown: str, reference: str, access: RegistryAccess, deadline: Deadline,
               unchecked: list[str] | None = None) -> Problem | None:
    repository, tag = reference.rsplit(":", 1)
    local = access.for_host(names.registry_of(repository))
    why = unreachable(local, deadline)
    if not why:
        try:
            digest = published_digest(repository, tag, local, deadline)
        except UserError as exc:
            why = str(exc)
        else:
            if digest is not None:
                note(f"image {reference}: present ({digest})")
                return None
            return Problem(
                shown, "default_context.image_tag",
                f"the image {reference} does not exist: its registry answers 404 to HEAD /v2/.../manifests/{tag}",
                "publish the image first (publish-image --tag TAG), or correct image_repository/image_tag; "
                "--skip-image-check skips this check where the registry cannot be reached",
            )
    note(f"WARNING: image {reference} not checked: {why}")
    if unchecked is not None:
        unchecked.append(reference)
    return None


def check_images(references: Mapping[str, str], access: RegistryAccess | None, deadline: Deadline,
                 unchecked: list[str] | None = None) -> list[Problem]:
    """Check that each image reference exists in its registry, all at once, within ``deadline``.

    Args:
        references: config file (as messages name it) -> ``repository:tag``; a config
            without both keys is left out by the caller.
        access: the credentials and plain-HTTP switch of the release's chart registry,
            used only for an image on that same host; ``None``: anonymous over TLS.

    Returns:
        One problem per image its registry answers 404 for. An unreachable registry,
        refused credentials or any other answer give a warning line
        (``[faas-deploy] WARNING: image ... not checked: ...``) and no problem; each such
        reference is appended to ``unchecked`` when given.
    """
    shown = list(references)
    calls = [functools.partial(_check_one, s, references[s], access or RegistryAccess(""), deadline, unchecked)
             for s in shown]
    problems: list[Problem] = []
    try:
        outcomes = run_all(calls, deadline, "checking images")
    except UserError as exc:
        note(f"WARNING: images not checked: {exc}")
        if unchecked is not None:
            unchecked.extend(references[s] for s in shown)
        return []
    for s, (problem, error) in zip(shown, outcomes, strict=True):
        if isinstance(error, UserError):
            note(f"WARNING: image {references[s]} not checked: {error}")
            if unchecked is not None:
                unchecked.append(references[s])
        elif error is not None:
            raise error  # a bug: keep its traceback
        elif problem is not None:
            problems.append(problem)
    return problems
