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
"""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import helm_python
import semver
import yaml

from . import lease
from .deadline import DEFAULT_TIMEOUT, Deadline
from .errors import UserError
from .image_tags import RegistryAccess
from .oci import ChartRegistry, check_root, helm_artifact, oci_tag
from .packaging import ChartPackage
from .secrets import SecretValue

Outcome = Literal["pushed", "unchanged", "new"]


@dataclass(frozen=True)
class PublishResult:
    """What happened to one chart: ``line`` is ``pushed <ref>@<digest>`` or ``unchanged <ref>@<digest>``.

    ``new`` is the dry-run answer for a version that would be pushed.
    """

    outcome: Outcome
    reference: str
    digest: str

    @property
    def line(self) -> str:
        return f"{self.outcome} {self.reference}@{self.digest}"


def _semver(text: str) -> semver.Version | None:
    try:
        return semver.Version.parse(text.replace("_", "+"))
    except ValueError:
        return None


def decide(
    *,
    config: str,
    name: str,
    version: str,
    digest: str,
    published_versions: list[str],
    published_digest: str | None,
) -> Outcome | Literal["push"]:
    """Apply the publishing rules (module doc) and say what to do.

    Args:
        config: the cookiecutter-config.yaml the version comes from (named in errors).
        published_versions: tags already in the target; non-semver tags are ignored.
        published_digest: digest of ``version`` in the target, ``None`` if absent.

    Returns:
        ``"unchanged"`` or ``"push"``.

    Raises:
        UserError: content changed without a bump, or a version lower than the highest.
    """
    if published_digest is not None:
        if published_digest == digest:
            return "unchanged"
        raise UserError(
            f"{config}: chart_version: {name} {version} is already published with other content "
            f"({published_digest}, now {digest}); a published version never changes: bump chart_version"
        )
    mine = semver.Version.parse(version)
    versions = [v for v in (_semver(t) for t in published_versions) if v is not None]
    if versions and mine < max(versions):
        raise UserError(
            f"{config}: chart_version: {name} {version} is lower than the highest published version "
            f"{max(versions)}; Flux deploys only a newer version: set chart_version above {max(versions)}"
        )
    return "push"


class Target(Protocol):
    #: The overall deadline of the target's network work; ``None`` for a local target.
    deadline: Deadline | None
    #: The registry host and credentials, for checks that may reuse them there; ``None`` for a local target.
    access: RegistryAccess | None

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

    Each ``publish`` opens its own :class:`ChartRegistry` client: oras-py holds one
    bearer token per client, so concurrent publishes of different charts (whose
    token scopes differ) must not share one.

    Raises:
        UserError: a malformed root (checked here, before any packaging or network).
    """

    def __init__(
        self,
        root: str,
        *,
        username: str | None = None,
        password: SecretValue | None = None,
        plain_http: bool = False,
        deadline: Deadline | None = None,
    ):
        self.root = check_root(root)
        self.deadline = deadline or Deadline(DEFAULT_TIMEOUT)
        #: Who may read this registry's host: a release's image check reuses it there only (image_tags).
        self.access = RegistryAccess(self.root[len("oci://"):].split("/", 1)[0], username, password, plain_http)
        self._connect = functools.partial(
            ChartRegistry, self.root, username=username, password=password, plain_http=plain_http, deadline=self.deadline
        )

    def _state(self, registry: ChartRegistry, package: ChartPackage) -> tuple[list[str], str | None]:
        tags = registry.tags(package.name)
        return tags or [], registry.manifest_digest(package.name, package.version, tags)

    def publish(self, package: ChartPackage, *, config: str, dry_run: bool = False) -> PublishResult:
        """Publish ``package`` under the rules (``dry_run``: only check them); :func:`decide` lists the errors."""
        registry = self._connect()
        artifact = helm_artifact(package)
        reference = registry.reference(package.name, package.version)

        def rules(state: tuple[list[str], str | None]) -> str:
            return decide(config=config, name=package.name, version=package.version, digest=artifact.digest,
                          published_versions=state[0], published_digest=state[1])

        if rules(self._state(registry, package)) == "unchanged":
            return PublishResult("unchanged", reference, artifact.digest)
        if dry_run:
            return PublishResult("new", reference, artifact.digest)
        registry.push_blobs(artifact)
        held = lease.acquire(registry, package.name, package.version, artifact.digest, self.deadline)
        try:
            tags, digest = self._state(registry, package)
            if held is not None and held.tag not in tags:
                raise registry.refuse(f"listing tags of {registry.reference(package.name)}",
                                       f"the tag list lacks the lease tag {held.tag} this run just wrote")
            if rules((tags, digest)) == "unchanged":
                return PublishResult("unchanged", reference, artifact.digest)
            response = registry.put_manifest(package.name, oci_tag(package.version), artifact.manifest)
            landed = registry.get_manifest(package.name, oci_tag(package.version))
        finally:
            lease.release(registry, held)
        if response.status_code not in (200, 201, 202):
            # A registry with immutable tags refuses the overwrite: its refusal is the answer.
            if landed is not None and landed[0] == artifact.digest:
                return PublishResult("unchanged", reference, artifact.digest)
            if landed is not None:
                rules(([], landed[0]))  # raises: published with other content
            raise UserError(f"registry {registry.host}: pushing the manifest of {reference}: HTTP {response.status_code} "
                            f"(the registry refused it; nothing was published)")
        if landed is None or landed[0] != artifact.digest:
            raise UserError(
                f"{config}: chart_version: {reference} was pushed, but the registry now holds "
                f"{landed[0] if landed else 'nothing'} under it, not {artifact.digest}: another publisher wrote this "
                f"version at the same time (bypassing the publish lease); a published version never changes: "
                f"find out which content is meant, and bump chart_version"
            )
        return PublishResult("pushed", reference, artifact.digest)


class LocalRepoTarget:
    """A classic Helm repository directory: ``<name>-<version>.tgz`` files and ``index.yaml``.

    ``index.yaml`` is the record of what is published: a ``.tgz`` it does not list
    (left by a killed run, or copied in by hand) is not published and never gets
    indexed. Each publish holds an exclusive lock on ``.<directory>.faas-publish.lock``
    beside the directory (outside it, so exports of the repository stay clean) (``fcntl.flock``: released by the kernel when a process dies, so a
    kill leaves no stale lock) from reading the index to writing it, so concurrent
    runs and processes publish one at a time. The package and the index are
    written under unique temporary names and renamed into place (atomic on POSIX),
    so a kill leaves either the old or the new file. The index entry is made by
    Helm's own indexer over a scratch directory holding only this package, merged
    into the old index (earlier entries keep their ``created`` times); a run that
    publishes nothing leaves the directory byte for byte as it was.
    """

    LOCK_NAME = ".faas-publish.lock"
    deadline: Deadline | None = None
    access: RegistryAccess | None = None  # no registry: images are checked anonymously

    def __init__(self, directory: Path):
        self.directory = directory
        self._lock = threading.Lock()  # flock is per open file: threads of one process also take this

    def _index(self) -> dict:
        """The index as a mapping; ``{}`` when absent.

        Raises:
            UserError: not UTF-8 YAML, or not ``{entries: {name: [{version, digest}, ...]}}`` (Helm's ``repo.IndexFile``).
        """
        index = self.directory / "index.yaml"
        if not index.exists():
            return {}
        problem = f"{index}: not a Helm repository index"
        hint = "(expected entries: {CHART: [{version, digest, ...}]}; fix or remove the file, then publish again)"
        try:
            data = yaml.safe_load(index.read_bytes().decode("utf-8")) or {}
        except UnicodeDecodeError:
            raise UserError(f"{problem}: not UTF-8 text {hint}") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise UserError(f"{problem}: not readable YAML{where} {hint}") from None
        entries = data.get("entries", {}) if isinstance(data, dict) else None
        if entries is None and isinstance(data, dict):
            entries = {}
        if not isinstance(entries, dict) or not all(
            isinstance(versions, list) and all(isinstance(e, dict) for e in versions) for versions in entries.values()
        ):
            raise UserError(f"{problem}: entries is not a mapping of chart names to lists of versions {hint}")
        return data

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
                return self._publish(package, config=config, dry_run=False)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _publish(self, package: ChartPackage, *, config: str, dry_run: bool) -> PublishResult:
        index_data = self._index()
        entries = (index_data.get("entries") or {}).get(package.name, [])
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
            return PublishResult("unchanged", reference, package.digest)
        if dry_run:
            return PublishResult("new", reference, package.digest)
        index = self.directory / "index.yaml"
        with tempfile.TemporaryDirectory(prefix=".faas-index-", dir=self.directory) as scratch:
            shutil.copyfile(package.path, Path(scratch) / package.path.name)
            try:
                helm_python.repo_index_generate(scratch, merge=index if index.exists() else None)
            except helm_python.HelmError as exc:
                raise UserError(f"{index}: Helm could not index the package: {exc}") from None
            _replace_atomically(package.path.read_bytes(), target)
            _replace_atomically((Path(scratch) / "index.yaml").read_bytes(), index)
        return PublishResult("pushed", reference, package.digest)


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
