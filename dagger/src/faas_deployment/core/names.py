"""The name grammars of OCI and Kubernetes, each written once.

Every rule here is used by config validation, image publishing, registry flags and
the Flux settings; no other module writes its own copy.

Sources:
- OCI distribution spec (``spec.md``, "Pulling manifests") and the reference grammar of
  ``distribution/reference`` (``regexp.go``): repository path components, tags, digests;
  Docker's rule (``normalize.go``, ``splitDockerDomain``) for telling a registry host
  from a first path component.
- Kubernetes "Object Names and IDs": DNS-1123 labels (63 characters) and subdomains
  (253 characters); ``apimachinery/pkg/api/resource`` for quantities.
- Helm best practices, "Chart Names": lowercase letters, digits and dashes.
- Go's ``time.ParseDuration`` for durations.
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

from .errors import UserError

# --------------------------------------------------------------------------- OCI

#: One repository path component: lowercase alphanumerics joined by '.', '_', '__' or runs of '-'.
PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
#: A registry host: a DNS name or bracketed IPv6 address, with an optional ':port'.
REGISTRY_HOST = (
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:]+\])(?::[0-9]{1,5})?"
)
_REGISTRY_HOST = re.compile(REGISTRY_HOST)
_REPOSITORY_PATH = re.compile(rf"{PATH_COMPONENT}(?:/{PATH_COMPONENT})*")
_IMAGE_REPOSITORY = re.compile(rf"(?P<host>{REGISTRY_HOST})/(?P<path>{PATH_COMPONENT}(?:/{PATH_COMPONENT})*)")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")

#: Longest repository name (host and path) the reference grammar accepts, in characters.
REPOSITORY_MAX = 255

# --------------------------------------------------------------------------- Kubernetes

_DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")
_QUANTITY = re.compile(
    r"\+?(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?"
)
_DURATION = re.compile(r"0|(?:[0-9]+(?:\.[0-9]+)?(?:ns|us|µs|ms|s|m|h))+")

#: Longest DNS-1123 label and subdomain, in characters.
DNS_LABEL_MAX = 63
DNS_SUBDOMAIN_MAX = 253


def _full(pattern: re.Pattern[str], value: object, max_len: int | None = None) -> bool:
    return (isinstance(value, str) and (max_len is None or len(value) <= max_len)
            and pattern.fullmatch(value) is not None)


def is_registry_host(value: object) -> bool:
    """``host[:port]``: a DNS name or ``[IPv6]``, optionally with a port (reference grammar ``domainAndPort``)."""
    return _full(_REGISTRY_HOST, value)


def looks_like_registry_host(value: str) -> bool:
    """Docker's rule: a first path component names a registry if it has '.' or ':' or is ``localhost``."""
    return "." in value or ":" in value or value == "localhost"


def is_repository_path(value: object) -> bool:
    """A repository path (``eo4eu-faas/charts``): lowercase components joined by '/'."""
    return _full(_REPOSITORY_PATH, value, REPOSITORY_MAX)


def is_image_repository(value: object) -> bool:
    """``host[:port]/path`` with the host recognisable as one (Docker's rule) and no tag or digest."""
    if not isinstance(value, str) or len(value) > REPOSITORY_MAX:
        return False
    match = _IMAGE_REPOSITORY.fullmatch(value)
    return match is not None and looks_like_registry_host(match.group("host"))


def registry_of(repository: str) -> str:
    """The ``host[:port]`` part of an image repository (everything before the first '/')."""
    return repository.split("/", 1)[0]


def is_tag(value: object) -> bool:
    """An OCI tag: 1 to 128 of ``[A-Za-z0-9_.-]``, not starting with '.' or '-'."""
    return _full(_TAG, value)


def is_digest(value: object) -> bool:
    """A sha256 digest, ``sha256:`` and 64 lowercase hex digits."""
    return _full(_DIGEST, value)


def is_chart_name(value: object) -> bool:
    """A Helm chart name: lowercase letters, digits and '-', at most 63 characters (it ends up in labels)."""
    return _full(_DNS_LABEL, value, DNS_LABEL_MAX)


def is_dns_label(value: object) -> bool:
    """A DNS-1123 label: at most 63 of ``[a-z0-9-]``, alphanumeric at both ends."""
    return _full(_DNS_LABEL, value, DNS_LABEL_MAX)


def folded(name: str) -> str:
    """``name`` with case and ``-``/``_`` folded (``Eu_West`` -> ``eu-west``): equal folded names are one name
    to CI/CD variables (``KUBECONFIG_EU_WEST``) and case-insensitive path rules."""
    return name.lower().replace("_", "-")


def is_dns_subdomain(value: object) -> bool:
    """A DNS-1123 subdomain: labels joined by '.', at most 253 characters."""
    return _full(_DNS_SUBDOMAIN, value, DNS_SUBDOMAIN_MAX)


def is_quantity(value: object) -> bool:
    """A positive Kubernetes quantity (``500m``, ``1Gi``, ``1e3``)."""
    if not isinstance(value, str):
        return False
    match = _QUANTITY.fullmatch(value)
    return match is not None and float(match["number"]) > 0


def is_duration(value: object) -> bool:
    """A Go duration (``0``, ``90s``, ``1h30m``)."""
    return _full(_DURATION, value)


OCI_SCHEME = "oci://"


class OciUrl(NamedTuple):
    """A parsed ``oci://HOST[:PORT][/PATH]`` (Helm's and Flux's form): ``host`` and ``path`` (maybe empty)."""

    host: str
    path: str

    @property
    def reference(self) -> str:
        """``HOST[:PORT][/PATH]``: the URL without its scheme, as Helm and Flux print references."""
        return f"{self.host}/{self.path}" if self.path else self.host

    def __str__(self) -> str:
        """``oci://HOST[:PORT][/PATH]``, without a trailing '/'."""
        return OCI_SCHEME + self.reference


class OciUrlError(ValueError):
    """Why a value is no ``oci://HOST[:PORT][/PATH]``: ``part`` is ``"form"``, ``"host"`` or ``"path"``."""

    def __init__(self, part: str, value: str):
        super().__init__(f"{part}: {value!r}")
        self.part = part
        self.value = value


def parse_oci_url(value: object) -> OciUrl:
    """The one parser of ``oci://HOST[:PORT][/PATH]`` (Helm's form; Flux's OCIRepository ``url``).

    The host follows :func:`is_registry_host` (reference grammar ``domainAndPort``),
    the path (possibly empty) :func:`is_repository_path`; trailing '/'s are dropped.

    Raises:
        OciUrlError: ``part="form"`` when ``value`` is not a string, lacks the ``oci://``
            scheme or names nothing after it; ``"host"`` for a bad host (``value`` is
            then the host); ``"path"`` for a bad repository path (``value`` is the path).
    """
    if not isinstance(value, str) or not value.startswith(OCI_SCHEME) or not value[len(OCI_SCHEME):].strip("/"):
        raise OciUrlError("form", value if isinstance(value, str) else repr(value))
    host, _, path = value[len(OCI_SCHEME):].rstrip("/").partition("/")
    if not is_registry_host(host):
        raise OciUrlError("host", host)
    if path and not is_repository_path(path):
        raise OciUrlError("path", path)
    return OciUrl(host, path)


def is_oci_repository_url(value: object) -> bool:
    """``oci://HOST[:PORT]/PATH`` with a non-empty lowercase repository path (a chart or artifact repository)."""
    if not isinstance(value, str):
        return False
    try:
        return bool(parse_oci_url(value).path) and not value.endswith("/")
    except OciUrlError:
        return False


def check_image_tag(tag: str, *, where: str = "--tag") -> str:
    """Return ``tag`` if it is a valid image tag, else raise.

    Rule: :func:`is_tag` (OCI distribution spec, ``[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}``).
    ``where`` names the flag or ``file: key`` in the message.

    Raises:
        UserError: empty, too long, or a character outside the set.
    """
    if not is_tag(tag):
        shown = tag if isinstance(tag, str) and len(tag) <= 140 else f"{str(tag)[:40]}... ({len(str(tag))} characters)"
        raise UserError(
            f"{where}: {shown!r} is not a valid image tag: expected 1 to 128 characters of "
            f"letters, digits, '_', '.' and '-', not starting with '.' or '-' "
            f"(a commit SHA such as 3f2c9e1 or a version such as 1.4.2 works)"
        )
    return tag


def sha256_digest(data: bytes) -> str:
    """``sha256:<64 hex>`` of ``data``: the OCI digest of a blob or manifest (OCI image spec,
    ``descriptor.md``, "Digests"), the form :func:`is_digest` accepts."""
    return "sha256:" + hashlib.sha256(data).hexdigest()
