"""Container images of the components: build from a source directory, publish, label.

Two engines, one set of rules:

* **CLI path** (:func:`build_image`, :func:`publish_image`): Debian's ``buildah``,
  daemonless, so it runs on a machine without a Docker engine. Every run uses a
  private, temporary image store (``--root``/``--runroot`` under a temp dir, the
  ``vfs`` storage driver, ``--isolation chroot``) that is removed afterwards, so a
  build leaves nothing behind on the machine.
* **Dagger path** (``images_dagger.dagger_build``, ``images_dagger.dagger_publish_chain``):
  the same build expressed as a lazy Dagger chain (``Directory.docker_build`` plus
  labels, ``Container.with_registry_auth``); the front end awaits ``publish(address)``.
  It lives in its own module so that the CLI never imports the Dagger SDK.

Both add the OCI annotation keys of the image-spec (``annotations.md``) as labels:
``org.opencontainers.image.revision`` (the commit built), ``.source`` (where its
code lives) and ``.version`` (the image tag). No build timestamp goes into the
image: the CLI path sets ``--timestamp`` to ``SOURCE_DATE_EPOCH``, else the commit
time of the context's git ``HEAD``, else 0, so the same commit builds the same
image ID.

Registry credentials go to buildah through a temporary ``auth.json`` (mode 0600,
deleted after the push) and to Dagger through ``with_registry_auth``: never on a
command line (visible in ``ps``) and never in a URL.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from . import config, urls
from .credentials import RegistryCredentials, check_ca_file
from .deadline import DEFAULT_TIMEOUT, Deadline
from .errors import UserError
from .progress import step
from .secrets import SecretValue, redact

# Grammar of the OCI distribution spec (spec.md, "Pulling manifests"):
# <reference> as a tag is at most 128 characters of [a-zA-Z0-9_.-], not starting
# with '.' or '-' (config.IMAGE_TAG); <name> is path components of lower-case alphanumerics joined by
# '.', '_', '__' or runs of '-'. The registry host (optional port) comes first.
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?"
REPOSITORY_PATTERN = re.compile(rf"(?P<host>{_HOST})/(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)")

LABEL_REVISION = "org.opencontainers.image.revision"
LABEL_SOURCE = "org.opencontainers.image.source"
LABEL_VERSION = "org.opencontainers.image.version"

_BUILD_ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# --------------------------------------------------------------------------- rules


def check_image_tag(tag: str, *, where: str = "--tag") -> str:
    """Return ``tag`` if it is a valid image tag, else raise.

    Rule: OCI distribution spec, ``[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}``.
    ``where`` names the flag or ``file: key`` in the message.

    Raises:
        UserError: empty, too long, or a character outside the set.
    """
    if not isinstance(tag, str) or not config.IMAGE_TAG.fullmatch(tag):
        shown = tag if isinstance(tag, str) and len(tag) <= 140 else f"{str(tag)[:40]}... ({len(str(tag))} characters)"
        raise UserError(
            f"{where}: {shown!r} is not a valid image tag: expected 1 to 128 characters of "
            f"letters, digits, '_', '.' and '-', not starting with '.' or '-' "
            f"(a commit SHA such as 3f2c9e1 or a version such as 1.4.2 works)"
        )
    return tag


def check_image_repository(repository: str, *, where: str = "image_repository") -> str:
    """Return ``repository`` if it is ``host[:port]/path`` without tag or digest.

    Rule: OCI distribution spec repository names (lower-case path components),
    preceded by the registry host (a name with a '.', a ':' port, or localhost,
    as Docker tells them apart) so the push goes where the config says.

    Raises:
        UserError: a scheme, a tag, a digest, upper case, or no host.
    """
    match = REPOSITORY_PATTERN.fullmatch(repository) if isinstance(repository, str) else None
    # Docker's rule for telling a registry from a first path component: it has a
    # '.' or a ':' (port), or is "localhost".
    host = match.group("host") if match else ""
    if not match or not ("." in host or ":" in host or host == "localhost"):
        raise UserError(
            f"{where}: {repository!r} is not an image repository: expected host[:port]/path "
            f"with lower-case path components and no scheme, tag or digest "
            f"(e.g. registry.example.org/eo4eu-faas/faas-controller)"
        )
    return repository


def registry_host(repository: str) -> str:
    """The registry part (``host[:port]``) of an image repository."""
    return check_image_repository(repository).split("/", 1)[0]


def parse_build_args(items: Sequence[str], *, flag: str = "--build-arg") -> dict[str, str]:
    """Turn ``["K=V", ...]`` into ``{"K": "V"}`` (later items win).

    Build arguments end up in the image history: they are not for secrets.

    Raises:
        UserError: an item without ``=`` or with an invalid name.
    """
    result: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not _BUILD_ARG_NAME.fullmatch(name):
            raise UserError(
                f"{flag}: expected NAME=VALUE with NAME of letters, digits and '_', got {name!r}"
                f"{'' if sep else ' without ='}"
            )
        result[name] = value
    return result


def strip_userinfo(url: str) -> str:
    """Drop ``user:password@`` from a URL so a label or message never carries it."""
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return url


def oci_labels(tag: str, *, revision: str = "", source_url: str = "") -> dict[str, str]:
    """The OCI labels of a component image.

    ``revision`` defaults to the tag (the tag is typically the commit SHA); a
    label whose value is unknown (empty) is left out; credentials are stripped
    from ``source_url``.
    """
    labels = {LABEL_REVISION: revision or tag, LABEL_VERSION: tag}
    labels = {k: v for k, v in labels.items() if v}
    if source_url:
        labels[LABEL_SOURCE] = strip_userinfo(source_url)
    return dict(sorted(labels.items()))


@dataclass(frozen=True)
class GitFacts:
    """What git knows about a build context: ``HEAD`` commit, origin URL, commit time (s since epoch)."""

    revision: str
    source_url: str
    commit_time: int


def git_facts(context: Path) -> GitFacts | None:
    """``HEAD`` facts of the git work tree holding ``context``, or None outside git."""
    if not shutil.which("git"):
        return None

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(context), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "--verify", "HEAD")
    if not head:
        return None
    time_text = git("log", "-1", "--format=%ct", "HEAD")
    return GitFacts(head, strip_userinfo(git("config", "--get", "remote.origin.url")), int(time_text or 0))


# --------------------------------------------------------------------------- build options


#: The platform images are built for unless told otherwise: what the clusters run.
#: Without it an image built on an arm64 laptop (Apple Silicon) would be arm64-only
#: and fail to start on amd64 nodes ("exec format error").
DEFAULT_PLATFORM = "linux/amd64"


@dataclass(frozen=True)
class BuildOptions:
    """How to build: the Dockerfile (path inside the context), ``NAME=VALUE`` build
    arguments, target stage (``""``: the last) and platform ``os/arch[/variant]``
    (default :data:`DEFAULT_PLATFORM`)."""

    dockerfile: str = "Dockerfile"
    build_args: tuple[str, ...] = ()
    target: str = ""
    platform: str = DEFAULT_PLATFORM

    def checked(self) -> BuildOptions:
        """Validate the fields that need no file system; return self.

        Raises:
            UserError: an absolute or escaping Dockerfile path, a malformed build
                argument or platform.
        """
        path = Path(self.dockerfile)
        if not self.dockerfile or path.is_absolute() or ".." in path.parts:
            raise UserError(
                f"--dockerfile: {self.dockerfile!r} must be a relative path inside the build context "
                f"(e.g. Dockerfile or docker/Dockerfile.prod)"
            )
        parse_build_args(self.build_args)
        if not re.fullmatch(r"[a-z0-9]+/[a-z0-9_]+(?:/[a-z0-9]+)?", self.platform):
            raise UserError(f"--platform: expected os/arch[/variant] such as linux/amd64, got {self.platform!r}")
        return self


# --------------------------------------------------------------------------- buildah (CLI path)


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
    env_value = os.environ.get("SOURCE_DATE_EPOCH")
    if env_value is not None:
        if not env_value.isdigit():
            raise UserError(f"SOURCE_DATE_EPOCH: expected seconds since the epoch, got {env_value!r}")
        return int(env_value)
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
        limit = self.deadline.remaining() if self.deadline is not None else None
        if limit is not None and limit <= 0:
            raise self.deadline.expired_error(what)
        try:
            done = subprocess.run(command, capture_output=True, text=True, env=env, check=False,
                                  stdin=subprocess.DEVNULL, timeout=limit)
        except subprocess.TimeoutExpired:
            raise self.deadline.expired_error(what) from None
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


# --------------------------------------------------------------------------- CLI-facing operations


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
    """A pushed image: ``reference`` is ``host/path:tag``, ``digest`` the manifest's ``sha256:...``.

    ``str()`` is ``reference@digest``, what Dagger's ``Container.publish`` returns.
    """

    reference: str
    digest: str
    image_id: str
    labels: dict[str, str]

    def __str__(self) -> str:
        return f"{self.reference}@{self.digest}"


def component_repository(source: Path, env: str, component: str, template: Path | None = None) -> str:
    """``image_repository`` of ``env/<env>/<component>/cookiecutter-config.yaml``, checked.

    Raises:
        UserError: unknown env or component; the value is not ``host[:port]/path``.
        ValidationError: the config does not validate.
    """
    context = config.load_context(Path(source), env, component, template)
    shown = config.config_path(Path(source), env, component).relative_to(source).as_posix()
    return check_image_repository(context.get("image_repository", ""), where=f"{shown}: default_context.image_repository")


def resolve_labels(context: Path, tag: str, *, revision: str = "", source_url: str = "") -> dict[str, str]:
    """OCI labels for a CLI build: explicit values, else the context's git facts, else the tag."""
    facts = git_facts(context) if (not revision or not source_url) and Path(context).is_dir() else None
    return oci_labels(
        tag,
        revision=revision or (facts.revision if facts else ""),
        source_url=source_url or (facts.source_url if facts else ""),
    )


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
    labels = resolve_labels(context, tag, revision=revision, source_url=source_url)
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

    Raises:
        UserError: invalid tag or repository, buildah missing, build or push failure,
            ``plain_http`` towards a TLS registry, the deadline passed.
    """
    check_image_tag(tag)
    check_image_repository(repository)
    ca = check_ca_file(ca_file)
    limit = Deadline(timeout)
    reference = f"{repository}:{tag}"
    if plain_http:
        require_plain_http(repository.split("/", 1)[0], limit)
        urls.warn_plain_http("--plain-http", urls.host_of(repository.split("/", 1)[0]), credentials=credentials is not None)
    labels = resolve_labels(context, tag, revision=revision, source_url=source_url)
    with BuildahStore() as store:
        store.deadline = limit
        with step(f"build image from {context}"):
            image_id = store.build(Path(context), options, labels)
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
        with socket.create_connection((name.strip("[]"), int(port)), timeout=min(5.0, max(0.1, limit.remaining()))) as raw:
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
