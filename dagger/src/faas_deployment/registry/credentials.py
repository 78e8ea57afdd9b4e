"""What a client presents to a registry and what it trusts: credentials and a private CA.

Credentials are a user name and a password (or token) that go together.

Every path that talks to a registry (chart publishing, OCI artifacts, image
publishing with buildah or Dagger) takes one :class:`RegistryCredentials`, built
from the front ends' ``--username`` and ``--password`` flags by
:meth:`RegistryCredentials.from_flags`, so the rule "both or neither" is written
once. Anonymous access is ``None``. A registry whose TLS certificate comes from a
private certificate authority is trusted through ``--ca-file`` (:func:`check_ca_file`),
in every path alike.
"""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import UserError
from ..core.names import is_registry_host
from ..core.secrets import SecretValue


def same_host(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` (``host[:port]``) name one registry: host names compare without case (RFC 4343);
    a port is part of the name (``example.org`` and ``example.org:5000`` are two registries)."""
    return a.lower() == b.lower()


def check_registry_address(address: str, *, flag: str = "--address") -> str:
    """A registry address as the credentials are given for it (Dagger's ``with-registry --address``):
    ``host[:port]``, no scheme and no path (the reference grammar's ``domainAndPort``, :func:`is_registry_host`);
    returned unchanged.

    Raises:
        UserError: anything else, e.g. ``oci://registry.example.org/charts`` or ``https://registry.example.org``.
    """
    if not is_registry_host(address):
        raise UserError(f"{flag} {address!r}: expected a registry HOST[:PORT] (e.g. registry.example.org or "
                        "127.0.0.1:5000), without a scheme or a repository path")
    return address


def check_pair(username: object, password: object) -> bool:
    """``True`` when both are given, ``False`` when neither is (an empty user name counts as absent).

    Raises:
        UserError: only one of them is given.
    """
    has_user, has_password = bool(username), password is not None
    if has_user and not has_password:
        raise UserError("--username and --password go together: --username given without --password; "
                        "pass both (--password env:NAME or file:PATH) or neither")
    if has_password and not has_user:
        raise UserError("--username and --password go together: --password given without --username; "
                        "pass both or neither")
    return has_user


@dataclass(frozen=True)
class RegistryCredentials:
    """A registry user name and its password or token (never printed: :class:`SecretValue`).

    Raises:
        UserError: an empty user name.
    """

    username: str
    password: SecretValue

    def __post_init__(self) -> None:
        check_pair(self.username, self.password)

    @classmethod
    def from_flags(cls, username: str | None, password: SecretValue | None) -> RegistryCredentials | None:
        """The credentials of ``--username``/``--password``; ``None`` when neither is given.

        Raises:
            UserError: only one of them is given.
        """
        return cls(str(username), password) if check_pair(username, password) else None  # type: ignore[arg-type]

    def basic(self) -> str:
        """``base64(user:password)``, the value of HTTP Basic authentication (RFC 7617) and of Docker auth files."""
        return base64.b64encode(f"{self.username}:{self.password.reveal()}".encode()).decode()


def check_ca_file(path: str | Path | None) -> Path | None:
    """``--ca-file PATH``: a readable PEM file of CA certificates, trusted for the registry's TLS; ``None`` if not
    given.

    Raises:
        UserError: the file is missing, unreadable or holds no PEM certificate.
    """
    if path is None or str(path) == "":
        return None
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--ca-file {path}: no such file (expected the PEM certificate of the registry's CA)")
    try:
        ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, OSError, ValueError):
        raise UserError(
            f"--ca-file {path}: not a readable PEM certificate (expected -----BEGIN CERTIFICATE-----)"
        ) from None
    return path


@dataclass(frozen=True)
class RegistryAccess:
    """How to talk to one registry host: credentials (both or neither) and plain HTTP.

    Attributes:
        host: ``host[:port]`` the credentials, ``plain_http`` and ``ca_file`` belong to.
        credentials: for that host only; ``None`` for anonymous access.
        plain_http: that host speaks HTTP instead of HTTPS.
        ca_file: PEM certificate of that host's private CA (``--ca-file``), or ``None``.
    """

    host: str
    credentials: RegistryCredentials | None = None
    plain_http: bool = False
    ca_file: Path | None = None

    def for_host(self, host: str) -> RegistryAccess:
        """This access when ``host`` is its host; else anonymous over TLS (credentials never leave their host)."""
        return self if same_host(host, self.host) else RegistryAccess(host)
