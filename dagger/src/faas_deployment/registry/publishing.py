"""Publishing charts under the deploy-trigger rules, to an OCI registry or a local Helm repository.

Flux's helm-controller upgrades a release when a *new chart version* appears, so a
version, once published, must never change content, and re-running the pipeline
without a ``chart_version`` bump must change nothing. For chart ``<name>:<version>``:

- version absent                      -> push;
- present with the same digest        -> ``unchanged``, nothing uploaded;
- present with another digest         -> error: bump ``chart_version``;
- lower than the highest published    -> error (Flux would never pick it up).

Two targets follow these rules: :class:`OciTarget` (``oci://host/path``; the digest is
the OCI manifest digest) and :class:`LocalRepoTarget` (a classic Helm repository
directory with ``index.yaml``; the digest is the package's sha256, as the index records it).
The rules themselves live in :mod:`versions` (:func:`versions.decide`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..core import names, versions
from ..core.errors import UserError
from ..core.versions import decide
from . import helm_index

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..core.deadline import Deadline
    from ..core.packaging import ChartPackage
    from .credentials import RegistryAccess, RegistryCredentials
    from .registry_client import RegistryClient

Outcome = Literal["pushed", "unchanged", "would push"]


@dataclass(frozen=True)
class PublishResult:
    """What happened to one chart: ``line`` is ``pushed <ref>@<digest>`` or ``unchanged <ref>@<digest>``.

    ``would push`` is the dry-run answer (``check``) for a version that is not published yet.
    """

    outcome: Outcome
    reference: str
    digest: str

    @property
    def line(self) -> str:
        return f"{self.outcome} {self.reference}@{self.digest}"


class Target(Protocol):
    @property
    def deadline(self) -> Deadline | None:
        """The overall deadline of the target's network work; ``None`` for a local target."""

    @property
    def access(self) -> RegistryAccess | None:
        """The registry host and credentials, for checks that may reuse them there; ``None`` for a local target."""

    def publish(self, package: ChartPackage, *, config: str, dry_run: bool = False) -> PublishResult: ...


class OciTarget:
    """``oci://host/path``: chart ``<name>:<version>`` at ``host/path/<name>``.

    Publishing a new version follows a protocol (docs/publishing.md) so that of
    concurrent publishers of one version with different content at most one wins,
    and every other gets the truth: read the state (tag list, HEAD and GET by tag
    cross-checked), take the version's lease (:mod:`lease`), read the state again,
    push, read the version back, release the lease. A registry that refuses to
    overwrite a tag (tag immutability) is taken at its word: the version is read
    back and reported as ``unchanged`` or refused.

    ``immutable_tags=True`` declares that the registry itself refuses a manifest ``PUT``
    over an existing tag (Harbor's tag immutability rules, ECR's ``IMMUTABLE`` tag
    mutability, Artifact Registry's immutable tags). The registry then arbitrates
    concurrent publishers, so the lease and the read-back are left out: a ``PUT`` it
    accepts landed on a free tag and nothing can replace it; a refused one is read back
    and answered as above. A first push costs 8 requests instead of 15
    (docs/publishing.md, "Round trips"). Declared for a registry that does not enforce
    it, concurrent publishers of one version would overwrite each other.

    A version already published is settled by one ``HEAD``: the digest it names
    decides (``unchanged`` for ours, refused for another) without the tag list,
    which the rules need only for a version not yet published.

    One target makes one :class:`RegistryClient` (one session, one probe of
    the auth scheme) on first use; each ``publish`` works on a :meth:`RegistryClient.fork`
    of it (its own bearer token on a token-service registry, whose token scopes
    differ per chart).

    Raises:
        UserError: a malformed root or ``ca_file`` (checked here, before any packaging or network).
    """

    def __init__(
        self,
        root: str,
        *,
        credentials: RegistryCredentials | None = None,
        plain_http: bool = False,
        ca_file: str | Path | None = None,
        deadline: Deadline | None = None,
        immutable_tags: bool = False,
    ):
        # Imported here: a local repository (``check`` without --registry) needs no HTTP client.
        from ..core.deadline import DEFAULT_TIMEOUT, Deadline
        from .credentials import RegistryAccess, check_ca_file
        from .registry_client import check_root

        self.root = check_root(root)
        self.deadline = deadline or Deadline(DEFAULT_TIMEOUT)
        self.immutable_tags = immutable_tags
        self._options: dict[str, Any] = {"credentials": credentials, "plain_http": plain_http,
                                         "ca_file": check_ca_file(ca_file)}
        #: Who may read this registry's host: a release's image check reuses it there only (image_tags).
        self.access = RegistryAccess(names.parse_oci_url(self.root).host, **self._options)
        self._client: RegistryClient | None = None
        self._client_lock = threading.Lock()

    def _connect(self) -> RegistryClient:
        with self._client_lock:
            if self._client is None:
                from .registry_client import RegistryClient

                self._client = RegistryClient(self.root, deadline=self.deadline, **self._options)
            return self._client.fork()

    def _state(self, registry: RegistryClient, package: ChartPackage,
               head: tuple[int, str | None] | None = None) -> tuple[list[str], str | None]:
        tags = registry.tags(package.name)
        return tags or [], registry.manifest_digest(package.name, package.version, tags, head)

    def publish(self, package: ChartPackage, *, config: str, dry_run: bool = False) -> PublishResult:
        """Publish ``package`` under the rules (``dry_run``: only check them); :func:`decide` lists the errors."""
        from .oci_manifest import helm_artifact, oci_tag

        registry = self._connect()
        artifact = helm_artifact(package)
        reference = registry.reference(package.name, package.version)

        def rules(tags: list[str], published: str | None) -> str:
            return decide(config=config, name=package.name, version=package.version, digest=artifact.digest,
                          published_versions=tags, published_digest=published)

        head = registry.head_manifest(package.name, oci_tag(package.version))
        if head[0] == 200 and head[1]:
            # Published: its digest alone decides (decide needs no tag list for a present version).
            rules([], head[1])  # raises for other content
            if not self.immutable_tags and not dry_run:
                from . import lease

                lease.clear_settled(registry, package.name, package.version, head[1])
            return PublishResult("unchanged", reference, artifact.digest)
        if rules(*self._state(registry, package, head)) == "unchanged":
            return PublishResult("unchanged", reference, artifact.digest)
        if dry_run:
            return PublishResult("would push", reference, artifact.digest)
        registry.push_blobs(artifact)
        outcome = VersionPush(
            registry=registry, name=package.name, version=package.version, manifest=artifact.manifest,
            digest=artifact.digest, config=config, read=lambda: self._state(registry, package), rules=rules,
            content=lambda landed: landed[0] if landed else None, lease_config=json.loads(artifact.manifest)["config"],
        ).push(immutable_tags=self.immutable_tags)
        return PublishResult(outcome, reference, artifact.digest)


@dataclass(frozen=True)
class VersionPush:
    """One new version's manifest pushed under the protocol of docs/publishing.md (charts and Flux artifacts).

    Attributes:
        registry, name: the repository ``<root>/<name>``.
        version: the version the tag carries (``oci_tag(version)`` is the tag; the lease is
            :func:`versions.lease_tag` of it).
        manifest: the bytes put under the tag; the caller has uploaded its blobs.
        digest: our content's digest as the rules compare it (a chart's manifest digest, an
            artifact's layer digest).
        config: the cookiecutter-config.yaml named in errors.
        read: reads the target's state: ``(tags, content digest the version holds or None)``.
        rules: the publishing decision (:func:`versions.decide`) on ``(tags, published digest)``:
            ``"push"`` or ``"unchanged"``; raises UserError for a refusal.
        content: the content digest of a manifest read back (``(manifest digest, bytes)``), ``None`` for none.
        lease_config: the descriptor of a blob in the repository the lease manifest points at.
    """

    registry: RegistryClient
    name: str
    version: str
    manifest: bytes
    digest: str
    config: str
    read: Callable[[], tuple[list[str], str | None]]
    rules: Callable[[list[str], str | None], str]
    content: Callable[[tuple[str, bytes] | None], str | None]
    lease_config: dict | None = None

    def push(self, *, immutable_tags: bool = False) -> Literal["pushed", "unchanged"]:
        """Push the version: under the lease, or with ``immutable_tags`` under the registry's own arbitration.

        Under the lease (:mod:`lease`): take it, read the state again and apply the rules,
        push while the lease is fresh (else take it again), read the version back, release.
        With ``immutable_tags`` the registry refuses an overwrite, so an accepted ``PUT`` landed
        on a free tag for good, and a refused one is answered by what the tag holds.

        Raises:
            UserError: a rule refused, the registry refused, the tag list lacks the lease tag
                just written, or the version read back holds other content (a publisher
                bypassing the lease).
        """
        from . import lease  # only a push takes the lease
        from .oci_manifest import oci_tag

        registry, tag = self.registry, oci_tag(self.version)
        if immutable_tags:
            response = registry.put_manifest(self.name, tag, self.manifest)
            if response.status_code in (200, 201, 202):
                return "pushed"
            return self._refused(response.status_code, registry.get_manifest(self.name, tag))
        while True:
            held = lease.acquire(registry, self.name, self.version, self.digest, registry.deadline, self.lease_config)
            try:
                tags, published = self.read()
                if held is not None and held.tag not in tags:
                    raise registry.refuse(f"listing tags of {registry.reference(self.name)}",
                                          f"the tag list lacks the lease tag {held.tag} this run just wrote")
                if self.rules(tags, published) == "unchanged":
                    return "unchanged"
                if held is not None and not held.fresh():
                    continue  # too little of the lease's lifetime is left to push: released, taken again
                with lease.pushing(held):
                    response = registry.put_manifest(self.name, tag, self.manifest)
                    landed = registry.get_manifest(self.name, tag)
            finally:
                lease.release(registry, held)
            break
        if response.status_code not in (200, 201, 202):
            return self._refused(response.status_code, landed)
        found = self.content(landed)
        if found != self.digest:
            reference = registry.reference(self.name, self.version)
            raise UserError(
                f"{self.config}: chart_version: {reference} was pushed, but the registry now holds "
                f"{found or 'nothing'} under it, not {self.digest}: another publisher wrote this "
                f"version at the same time (bypassing the publish lease); a published version never changes: "
                f"find out which content is meant, and bump chart_version"
            )
        return "pushed"

    def _refused(self, status: int, landed: tuple[str, bytes] | None) -> Literal["unchanged"]:
        """The answer to a manifest ``PUT`` refused with HTTP ``status`` (an immutable tag): the version
        as read back after it (``landed``: ``(digest, manifest)`` or ``None``) decides, ``unchanged`` for ours.

        Raises:
            UserError: the version holds other content (the rules' error), or holds nothing.
        """
        found = self.content(landed)
        if found == self.digest:
            return "unchanged"
        if found is not None:
            self.rules([], found)  # raises: published with other content
        reference = self.registry.reference(self.name, self.version)
        raise UserError(f"registry {self.registry.host}: pushing the manifest of {reference}: HTTP {status} "
                        f"(the registry refused it; nothing was published)")


class LocalRepoTarget:
    """A classic Helm repository directory: ``<name>-<version>.tgz`` files and ``index.yaml``.

    ``index.yaml`` is the record of what is published: a ``.tgz`` it does not list
    (left by a killed run, or copied in by hand) is not published and never gets
    indexed. A version the index lists is published only if its package file is
    there with the digest the index records: a missing or altered file is written
    again when this run's package has exactly the recorded digest (``pushed``), and
    other content is refused as usual. Each publish holds an exclusive lock on
    ``.<directory>.faas-publish.lock`` beside the directory (outside it, so exports
    of the repository stay clean) (``fcntl.flock``: released by the kernel when a
    process dies, so a kill leaves no stale lock) from reading the index to writing
    it, so concurrent runs and processes publish one at a time. The package and the
    index are written under unique temporary names and renamed into place (atomic on
    POSIX), so a kill leaves either the old or the new file.

    The index is updated, not rebuilt (:mod:`helm_index`): this version's entry (the
    fields of Helm's ``repo.ChartVersion``: the Chart.yaml metadata, ``urls``,
    ``created``, ``digest``) joins its chart's list, newest first (Helm's
    ``SortEntries``); only that chart's lines are read and rewritten, no other
    package is read, and earlier entries keep their ``created`` times. A run that
    publishes nothing leaves the directory byte for byte as it was.
    """

    LOCK_NAME = ".faas-publish.lock"
    deadline: Deadline | None = None
    access: RegistryAccess | None = None  # no registry: images are checked anonymously

    def __init__(self, directory: Path):
        self.directory = directory
        self._lock = threading.Lock()  # flock is per open file: threads of one process also take this

    def publish(self, package: ChartPackage, *, config: str, dry_run: bool = False) -> PublishResult:
        """Publish ``package`` under the rules (``dry_run``: only check them); :func:`decide` lists the errors."""
        if dry_run:
            return self._publish(package, config=config, dry_run=True)
        self.directory.mkdir(parents=True, exist_ok=True)
        real = self.directory.resolve()  # one lock per real directory, whatever path (symlink) leads to it
        lock = real.parent / f".{real.name}{self.LOCK_NAME}"
        with self._lock, open(lock, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                return self._publish(package, config=config, dry_run=False, lock=lock)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _package_file(self, entry: dict, package: ChartPackage) -> Path:
        """The file an index entry points at: its first relative URL, else ``<name>-<version>.tgz``."""
        urls = entry.get("urls")
        first = urls[0] if isinstance(urls, list) and urls and isinstance(urls[0], str) else ""
        if first and "://" not in first and not first.startswith("/") and ".." not in Path(first).parts:
            return self.directory / first
        return self.directory / package.path.name

    def _publish(self, package: ChartPackage, *, config: str, dry_run: bool, lock: Path | None = None) -> PublishResult:
        index_path = self.directory / "index.yaml"
        index = helm_index.Index.load(index_path, helm_index.read_stamp(lock) if lock is not None else None)
        entries = index.versions(package.name)
        digests = {str(e.get("version")): f"sha256:{e.get('digest')}" for e in entries}
        target = self.directory / package.path.name
        reference = str(target)
        action = decide(
            config=config,
            name=package.name,
            version=package.version,
            digest=package.digest,
            published_versions=list(digests),
            published_digest=digests.get(package.version),
        )
        if action == "unchanged":
            entry = next(e for e in entries if str(e.get("version")) == package.version)
            stored = self._package_file(entry, package)
            if _file_digest(stored) == package.digest:
                return PublishResult("unchanged", reference, package.digest)
            # The index lists this version but its package file is gone or altered: this run's package has the
            # recorded digest, so writing it again restores exactly what was published.
            if dry_run:
                return PublishResult("would push", reference, package.digest)
            _replace_atomically(package.path.read_bytes(), stored)
            return PublishResult("pushed", reference, package.digest)
        if dry_run:
            return PublishResult("would push", reference, package.digest)
        _replace_atomically(package.path.read_bytes(), target)
        _replace_atomically(
            index.with_versions(package.name, _sorted_entries([_index_entry(package), *entries])), index_path
        )
        if lock is not None:
            helm_index.write_stamp(lock, index_path)
        return PublishResult("pushed", reference, package.digest)


def _index_entry(package: ChartPackage) -> dict:
    """Helm's ``repo.ChartVersion`` for ``package``: the Chart.yaml metadata (empty fields left out, as Helm's
    ``omitempty``), ``created``, ``digest`` (hex) and ``urls`` (the file name, relative to the index)."""
    entry = {key: value for key, value in package.metadata.items() if value not in (None, "", [], {})}
    entry.update(
        {"created": helm_index.now(), "digest": package.digest.removeprefix("sha256:"), "urls": [package.path.name]}
    )
    return entry


def _sorted_entries(entries: list[dict]) -> list[dict]:
    """Newest version first (Helm's ``IndexFile.SortEntries``); versions that are not semver last, in order."""
    def key(entry: dict) -> tuple[int, versions.Version | None]:
        version = versions.parse(str(entry.get("version")))
        return (0, version) if version is not None else (1, None)

    valid = [e for e in entries if key(e)[0] == 0]
    other = [e for e in entries if key(e)[0] == 1]
    return sorted(valid, key=lambda e: key(e)[1], reverse=True) + other  # type: ignore[arg-type,return-value]


def _file_digest(path: Path) -> str | None:
    """``sha256:<hex>`` of the file at ``path``, ``None`` when it is not a readable file."""
    try:
        with open(path, "rb") as handle:
            return "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


def _replace_atomically(data: bytes, path: Path) -> None:
    """Write ``data`` to a unique temporary file beside ``path``, flush it to disk, rename it over ``path``."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
