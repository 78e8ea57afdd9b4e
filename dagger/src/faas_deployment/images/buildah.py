"""buildah: the CLI's image builder and pusher, under the rules of :mod:`.images`.

Debian's ``buildah`` is daemonless, so it runs on a machine without a Docker
engine. Every run uses a private, temporary image store (``--root``/``--runroot``
under a temp dir, the ``vfs`` storage driver, ``--isolation chroot``) that is
removed afterwards, so a build leaves nothing behind on the machine.

No build timestamp goes into the image: ``--timestamp`` is ``SOURCE_DATE_EPOCH``
(:func:`.packaging.source_date_epoch`), else the commit time of the context's git
``HEAD``, else 0, so the same commit builds the same image ID.

Registry credentials go to buildah through a temporary ``auth.json`` (mode 0600,
deleted after the push): never on a command line (visible in ``ps``) and never in a URL.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..core import urls, versions
from ..core.deadline import DEFAULT_TIMEOUT, Deadline
from ..core.errors import UserError
from ..core.names import check_image_tag
from ..core.packaging import source_date_epoch
from ..core.progress import step
from ..core.secrets import SecretValue, redact
from ..registry.credentials import RegistryAccess, RegistryCredentials, check_ca_file
from . import image_tags
from .images import (
    BuildOptions,
    check_image_repository,
    git_facts,
    image_labels,
    parse_build_args,
    registry_host,
)


def find_buildah() -> str:
    """Path of the ``buildah`` executable.

    Raises:
        UserError: buildah is not installed.
    """
    found = shutil.which("buildah")
    if not found:
        raise UserError(
            "buildah not found on PATH: build-image and publish-image build images without a Docker "
            "engine through buildah; install it (Debian/Ubuntu: apt-get install buildah) or run the "
            "Dagger function instead (dagger call env --name E component --name C publish-image ...)"
        )
    return found


def build_timestamp(context: Path) -> int:
    """Seconds since the epoch recorded as the image's creation time.

    ``SOURCE_DATE_EPOCH`` (reproducible-builds.org) if set, else the commit time of
    the context's git ``HEAD``, else 0.

    Raises:
        UserError: ``SOURCE_DATE_EPOCH`` is not a non-negative integer.
    """
    epoch = source_date_epoch()
    if epoch is not None:
        return epoch
    facts = git_facts(context)
    return facts.commit_time if facts else 0


@dataclass
class BuildahStore:
    """A private buildah image store under a temporary directory.

    Use as a context manager; the directory (images, auth file) is removed on exit.
    ``storage_driver`` is ``vfs`` (works everywhere, no kernel overlay needed).
    """

    #: Bounds every buildah run (``--timeout`` of publish-image); ``None``: no bound.
    deadline: Deadline | None = None

    storage_driver: str = "vfs"
    isolation: str = "chroot"
    root: Path = field(init=False)
    _tmp: tempfile.TemporaryDirectory | None = field(default=None, init=False, repr=False)

    def __enter__(self) -> BuildahStore:
        self._buildah = find_buildah()
        self._tmp = tempfile.TemporaryDirectory(prefix="faas-deploy-buildah-")
        self.root = Path(self._tmp.name)
        (self.root / "tmp").mkdir()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _run(self, args: list[str], *, what: str, secrets: Sequence[SecretValue | None] = ()) -> str:
        command = [
            self._buildah,
            "--root", str(self.root / "storage"),
            "--runroot", str(self.root / "run"),
            "--storage-driver", self.storage_driver,
            *args,
        ]
        env = {**os.environ, "TMPDIR": str(self.root / "tmp"), "BUILDAH_ISOLATION": self.isolation}
        deadline = self.deadline
        limit = deadline.remaining() if deadline is not None else None
        if deadline is not None and limit is not None and limit <= 0:
            raise deadline.expired_error(what)
        try:
            done = subprocess.run(command, capture_output=True, text=True, env=env, check=False,
                                  stdin=subprocess.DEVNULL, timeout=limit)
        except subprocess.TimeoutExpired:
            assert deadline is not None  # only a deadline sets a timeout
            raise deadline.expired_error(what) from None
        output = redact(done.stdout + done.stderr, *secrets)
        if done.returncode != 0:
            tail = "\n".join(output.strip().splitlines()[-20:])
            raise UserError(f"{what} failed (buildah exit status {done.returncode}):\n{tail}")
        return output

    def build(self, context: Path, options: BuildOptions, labels: Mapping[str, str]) -> str:
        """Build ``context`` with ``options``; return the image ID (``sha256:...``).

        Raises:
            UserError: missing context or Dockerfile, bad options, build failure.
        """
        options.checked()
        context = Path(context)
        if not context.is_dir():
            raise UserError(f"--context: {context} is not a directory (pass the component's source directory)")
        dockerfile = context / options.dockerfile
        if not dockerfile.is_file():
            raise UserError(
                f"--dockerfile: {dockerfile} not found in the build context {context} "
                f"(name it relative to the context, e.g. --dockerfile docker/Dockerfile)"
            )
        iidfile = self.root / "iid"
        args = [
            "build",
            "--isolation", self.isolation,
            "--timestamp", str(build_timestamp(context)),
            "--identity-label=false",
            "--layers=false",
            "--iidfile", str(iidfile),
            "--file", str(dockerfile),
        ]
        for name, value in parse_build_args(options.build_args).items():
            args += ["--build-arg", f"{name}={value}"]
        for name, value in sorted(labels.items()):
            args += ["--label", f"{name}={value}"]
        if options.target:
            args += ["--target", options.target]
        if options.platform:
            args += ["--platform", options.platform]
        self._run([*args, str(context)], what=f"building {dockerfile}")
        image_id = iidfile.read_text().strip()
        return image_id if image_id.startswith("sha256:") else f"sha256:{image_id}"

    def export(self, image_id: str, out: Path) -> Path:
        """Write the image as an OCI archive (``oci-archive:`` transport) to ``out``."""
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            out.unlink()
        self._run(["push", "--quiet", "--format", "oci", image_id, f"oci-archive:{out}"], what=f"writing {out}")
        return out

    def manifest_digest(self, image_id: str) -> str:
        """The manifest digest a push of ``image_id`` gives (``sha256:...``), computed without a registry.

        The image is written as a local OCI layout in the store, with the push's own
        format and compression (``--format oci``, gzip), so the manifest is the one
        :meth:`push` then sends (the reproducible build makes the layers byte-identical).
        """
        digestfile = self.root / "local-digest"
        self._run(["push", "--quiet", "--format", "oci", "--digestfile", str(digestfile), image_id,
                   f"oci:{self.root / 'layout'}:local"], what="computing the image's manifest digest")
        return digestfile.read_text().strip()

    def push(
        self,
        image_id: str,
        reference: str,
        *,
        credentials: RegistryCredentials | None = None,
        plain_http: bool = False,
        ca_file: Path | None = None,
    ) -> str:
        """Push ``image_id`` to ``reference`` (``host/path:tag``); return the manifest digest.

        Credentials, when given, go in a temporary auth file (mode 0600, removed
        after the push); without them buildah's usual auth files apply.
        ``plain_http`` turns TLS off (a plain-HTTP test or in-cluster registry).
        ``ca_file`` (PEM) is trusted for the registry's TLS: buildah's ``--cert-dir``
        takes every ``*.crt`` file of a directory as a CA (containers-certs.d(5)).

        Raises:
            UserError: a refused or failed push.
        """
        digestfile = self.root / "digest"
        args = ["push", "--quiet", "--format", "oci", "--digestfile", str(digestfile), "--retry", "1"]
        if plain_http:
            args.append("--tls-verify=false")
        if ca_file is not None:
            cert_dir = self.root / "certs"
            cert_dir.mkdir(exist_ok=True)
            shutil.copyfile(ca_file, cert_dir / "ca.crt")
            args += ["--cert-dir", str(cert_dir)]
        authfile = self.root / "auth.json"
        password = credentials.password if credentials is not None else None
        try:
            if credentials is not None:
                token = credentials.basic()
                host = reference.split("/", 1)[0]
                fd = os.open(authfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as handle:
                    json.dump({"auths": {host: {"auth": token}}}, handle)
                args += ["--authfile", str(authfile)]
            self._run([*args, image_id, f"docker://{reference}"], what=f"pushing {reference}", secrets=[password])
        finally:
            authfile.unlink(missing_ok=True)
        return digestfile.read_text().strip()


@dataclass(frozen=True)
class BuiltImage:
    """A built image: its ID (config digest), labels, and the OCI archive if written."""

    image_id: str
    labels: dict[str, str]
    archive: Path | None = None

    def __str__(self) -> str:
        return f"built {self.image_id}" + (f" -> {self.archive}" if self.archive else "")


@dataclass(frozen=True)
class PublishedImage:
    """An image published or found unchanged: ``reference`` is ``host/path:tag``, ``digest`` the manifest's
    ``sha256:...``.

    ``str()`` is the outcome line, ``pushed <reference>@<digest>`` or ``unchanged <reference>@<digest>``.
    """

    reference: str
    digest: str
    image_id: str
    labels: dict[str, str]
    outcome: Literal["pushed", "unchanged"] = "pushed"

    def __str__(self) -> str:
        return f"{self.outcome} {self.reference}@{self.digest}"


def build_image(
    context: Path,
    options: BuildOptions = BuildOptions(),
    *,
    tag: str = "latest",
    revision: str = "",
    source_url: str = "",
    out: Path | None = None,
) -> BuiltImage:
    """Build the image of ``context`` with buildah in a throw-away store.

    ``out`` writes it as an OCI archive (load it with ``skopeo copy
    oci-archive:FILE ...``); without it the build only proves the Dockerfile builds.

    Raises:
        UserError: buildah missing, bad options, build failure.
    """
    check_image_tag(tag)
    labels = image_labels(tag, revision=revision, source_url=source_url, context=Path(context))
    with BuildahStore() as store:
        with step(f"build image from {context}"):
            image_id = store.build(Path(context), options, labels)
        archive = None
        if out is not None:
            with step(f"write {out}"):
                archive = store.export(image_id, Path(out))
    return BuiltImage(image_id, labels, archive)


def publish_image(
    context: Path,
    *,
    repository: str,
    tag: str,
    options: BuildOptions = BuildOptions(),
    credentials: RegistryCredentials | None = None,
    plain_http: bool = False,
    revision: str = "",
    source_url: str = "",
    timeout: float = DEFAULT_TIMEOUT,
    ca_file: str | Path | None = None,
) -> PublishedImage:
    """Build ``context`` and push it to ``repository:tag``, all within ``timeout`` seconds.

    ``repository`` comes from the component's ``image_repository``; ``tag`` is
    typically the commit SHA. ``plain_http`` is for registries that speak plain
    HTTP only (:func:`require_plain_http`): buildah's switch for it also turns off
    certificate checks, so it is refused for a registry that answers over TLS.

    The tag is immutable (:func:`.versions.decide_image`): after the build, the image's
    manifest digest is computed locally (:meth:`BuildahStore.manifest_digest`) and
    the registry's tag is read (``HEAD``); an absent tag is pushed, the same digest is
    ``unchanged`` (nothing pushed), another digest is refused.

    Raises:
        UserError: invalid tag or repository, buildah missing, build or push failure,
            ``plain_http`` towards a TLS registry, the tag published with other
            content, the deadline passed.
    """
    check_image_tag(tag)
    check_image_repository(repository)
    ca = check_ca_file(ca_file)
    limit = Deadline(timeout)
    reference = f"{repository}:{tag}"
    if plain_http:
        require_plain_http(registry_host(repository), limit)
        urls.warn_plain_http(
            "--plain-http", urls.host_of(registry_host(repository)), credentials=credentials is not None
        )
    labels = image_labels(tag, revision=revision, source_url=source_url, context=Path(context))
    access = RegistryAccess(registry_host(repository), credentials, plain_http, ca)
    with BuildahStore() as store:
        store.deadline = limit
        with step(f"build image from {context}"):
            image_id = store.build(Path(context), options, labels)
        with step(f"check {reference}"):
            digest = store.manifest_digest(image_id)
            action = versions.decide_image(
                reference, digest, image_tags.published_digest(repository, tag, access, limit)
            )
        if action == "unchanged":
            return PublishedImage(reference, digest, image_id, labels, "unchanged")
        with step(f"push {reference}"):
            digest = store.push(image_id, reference, credentials=credentials, plain_http=plain_http, ca_file=ca)
    return PublishedImage(reference, digest, image_id, labels)


def require_plain_http(host: str, limit: Deadline) -> None:
    """Refuse ``--plain-http`` unless ``host`` really speaks plain HTTP.

    buildah has one switch, ``--tls-verify=false``, for both "HTTP is fine" and "do
    not check certificates", so ``--plain-http`` towards a registry that answers over
    TLS would silently drop its certificate checks. A TLS handshake (with the
    system's certificate checks) is tried first: if it completes, or fails on the
    certificate, the registry speaks TLS and ``--plain-http`` is refused.

    Raises:
        UserError: the registry answers over TLS (valid certificate or not).
    """
    name, _, port = host.rpartition(":") if host.rsplit(":", 1)[-1].isdigit() else (host, "", "443")
    context = ssl.create_default_context()
    try:
        with socket.create_connection(
            (name.strip("[]"), int(port)), timeout=min(5.0, max(0.1, limit.remaining()))
        ) as raw:
            with context.wrap_socket(raw, server_hostname=name.strip("[]")):
                pass
    except ssl.SSLCertVerificationError as exc:
        raise UserError(
            f"--plain-http: {host} answers over TLS, with a certificate that does not verify "
            f"({exc.verify_message}); --plain-http never turns certificate checks off: trust the registry's CA "
            "in the system store or fix its certificate"
        ) from None
    except (ssl.SSLError, OSError):
        return  # no TLS there (plain HTTP, or nothing listening yet: the push says which)
    raise UserError(f"--plain-http: {host} answers over TLS; drop --plain-http (it would turn certificate checks off)")
