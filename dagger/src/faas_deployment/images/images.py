"""Container images of the components: the rules every engine follows.

Tags and repositories (grammar of :mod:`.names`), the OCI labels an image carries,
build options and the git facts of a build context. Two engines apply them:

* :mod:`.buildah`: the CLI's builder and pusher (Debian's ``buildah``, daemonless);
* :mod:`.images_dagger`: the same build as a lazy Dagger chain, for the Dagger front end.

Both add the OCI annotation keys of the image-spec (``annotations.md``) as labels,
chosen by :func:`image_labels` (the one place their defaults are decided):
``org.opencontainers.image.revision`` (the commit built), ``.source`` (where its
code lives) and ``.version`` (the image tag).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ..charts import config
from ..core import names
from ..core.errors import UserError

LABEL_REVISION = "org.opencontainers.image.revision"
LABEL_SOURCE = "org.opencontainers.image.source"
LABEL_VERSION = "org.opencontainers.image.version"

_BUILD_ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# --------------------------------------------------------------------------- rules


def check_image_repository(repository: str, *, where: str = "image_repository") -> str:
    """Return ``repository`` if it is ``host[:port]/path`` without tag or digest.

    Rule: :func:`.names.is_image_repository` (OCI distribution spec repository
    names, lower-case path components, preceded by the registry host: a name with
    a '.', a ':' port, or localhost, as Docker tells them apart) so the push goes
    where the config says.

    Raises:
        UserError: a scheme, a tag, a digest, upper case, or no host.
    """
    if not names.is_image_repository(repository):
        raise UserError(
            f"{where}: {repository!r} is not an image repository: expected host[:port]/path "
            f"with lower-case path components and no scheme, tag or digest "
            f"(e.g. registry.example.org/eo4eu-faas/faas-controller)"
        )
    return repository


def registry_host(repository: str) -> str:
    """The registry part (``host[:port]``) of an image repository."""
    return names.registry_of(check_image_repository(repository))


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


def image_labels(tag: str, *, revision: str = "", source_url: str = "", context: Path | None = None) -> dict[str, str]:
    """The OCI labels of a component image: the one rule for their defaults, whatever the engine.

    - ``org.opencontainers.image.revision``: ``revision``, else the commit of the git
      ``HEAD`` holding ``context``, else ``tag`` (the tag is typically the commit SHA);
    - ``org.opencontainers.image.source``: ``source_url``, else the ``origin`` URL of
      that git work tree; credentials are stripped from it (:func:`strip_userinfo`);
    - ``org.opencontainers.image.version``: ``tag``.

    ``context`` is the build context as a local directory, when the front end has
    one (the CLI); the Dagger front end builds from a ``Directory`` the engine holds
    and passes ``None``, so the git facts are read only where the files are.
    A label whose value is unknown (empty) is left out. Returns the labels sorted by key.
    """
    facts = (
        git_facts(context)
        if context is not None and (not revision or not source_url) and Path(context).is_dir()
        else None
    )
    labels = {
        LABEL_REVISION: revision or (facts.revision if facts else "") or tag,
        LABEL_VERSION: tag,
        LABEL_SOURCE: strip_userinfo(source_url or (facts.source_url if facts else "")),
    }
    return dict(sorted((k, v) for k, v in labels.items() if v))


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


def component_repository(source: Path, env: str, component: str, template: Path | None = None) -> str:
    """``image_repository`` of ``env/<env>/<component>/cookiecutter-config.yaml``, checked.

    Raises:
        UserError: unknown env or component; the value is not ``host[:port]/path``.
        ValidationError: the config does not validate.
    """
    context = config.load_context(Path(source), env, component, template)
    shown = config.config_path(Path(source), env, component).relative_to(source).as_posix()
    return check_image_repository(
        context.get("image_repository", ""), where=f"{shown}: default_context.image_repository"
    )
