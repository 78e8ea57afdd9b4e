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

import functools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import helm_python
import semver
import yaml

from .errors import UserError
from .oci import ChartRegistry, check_root, helm_artifact
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
    def publish(self, package: ChartPackage, *, config: str, dry_run: bool = False) -> PublishResult: ...


class OciTarget:
    """``oci://host/path``: chart ``<name>:<version>`` at ``host/path/<name>``.

    Each ``publish`` opens its own :class:`ChartRegistry` client: oras-py holds one
    bearer token per client, so concurrent publishes of different charts (whose
    token scopes differ) must not share one.

    Raises:
        UserError: a malformed root (checked here, before any packaging or network).
    """

    def __init__(self, root: str, *, username: str | None = None, password: SecretValue | None = None, plain_http: bool = False):
        self.root = check_root(root)
        self._connect = functools.partial(
            ChartRegistry, self.root, username=username, password=password, plain_http=plain_http
        )

    def publish(self, package: ChartPackage, *, config: str, dry_run: bool = False) -> PublishResult:
        """Publish ``package`` under the rules (``dry_run``: only check them); :func:`decide` lists the errors."""
        registry = self._connect()
        artifact = helm_artifact(package)
        reference = registry.reference(package.name, package.version)
        action = decide(
            config=config,
            name=package.name,
            version=package.version,
            digest=artifact.digest,
            published_versions=registry.tags(package.name),
            published_digest=registry.manifest_digest(package.name, package.version),
        )
        if action == "unchanged":
            return PublishResult("unchanged", reference, artifact.digest)
        if dry_run:
            return PublishResult("new", reference, artifact.digest)
        return PublishResult("pushed", reference, registry.push(artifact))


class LocalRepoTarget:
    """A classic Helm repository directory: ``<name>-<version>.tgz`` files and ``index.yaml``.

    ``index.yaml`` is rewritten (by Helm's own indexer, merging the old index so
    earlier entries keep their ``created`` times) only when a package is added, so
    a run that publishes nothing leaves the directory byte for byte as it was.
    """

    def __init__(self, directory: Path):
        self.directory = directory
        self._lock = threading.Lock()  # publishes into one directory share its index.yaml

    def _index(self) -> dict:
        index = self.directory / "index.yaml"
        if not index.exists():
            return {}
        try:
            return yaml.safe_load(index.read_text()) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"{index}: not a readable Helm repository index: {exc}") from None

    def publish(self, package: ChartPackage, *, config: str, dry_run: bool = False) -> PublishResult:
        """Publish ``package`` under the rules (``dry_run``: only check them); :func:`decide` lists the errors."""
        with self._lock:
            return self._publish(package, config=config, dry_run=dry_run)

    def _publish(self, package: ChartPackage, *, config: str, dry_run: bool) -> PublishResult:
        entries = self._index().get("entries", {}).get(package.name, [])
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
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        partial.write_bytes(package.path.read_bytes())
        partial.replace(target)
        index = self.directory / "index.yaml"
        try:
            helm_python.repo_index_generate(self.directory, merge=index if index.exists() else None)
        except helm_python.HelmError as exc:
            raise UserError(f"{index}: Helm could not index the repository: {exc}") from None
        return PublishResult("pushed", reference, package.digest)
