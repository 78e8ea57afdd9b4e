"""Rules for URLs given on the command line (registry roots, admin API URLs).

Credentials travel in their own flags (``--username``/``--password``,
``--admin-token``) as ``env:NAME`` or ``file:PATH``, never inside a URL: a URL is
printed in progress lines, errors and CI logs. And credentials sent in clear
(plain HTTP) to another machine can be read on the way, so that gets a loud
warning.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse

from .errors import UserError, printable
from .progress import note


def refuse_userinfo(flag: str, url: str) -> None:
    """Refuse ``scheme://user[:password]@host...`` in ``flag``.

    The message names the flag and never repeats the URL (it may hold a secret).

    Raises:
        UserError: the URL's authority holds an ``@``.
    """
    rest = url.split("://", 1)[1] if "://" in url else url
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if "@" in authority:
        raise UserError(
            f"{flag}: the URL holds credentials (user:password@ before the host); the URL is not "
            f"repeated here. Give the host alone and pass credentials with their own flags "
            f"(--username, --password env:NAME or file:PATH)"
        )


def host_of(url: str) -> str:
    """The host name (without port or brackets) of ``scheme://host[:port]/...`` or ``host[:port]/...``."""
    if "://" not in url:
        url = "//" + url
    return (urllib.parse.urlsplit(url).hostname or "").lower()


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address, ``[IPv6]`` brackets allowed) is this machine.

    True for ``localhost`` and every name under it (``api.localhost``: RFC 6761
    section 6.3, such names resolve to loopback), with or without the root's
    trailing dot, in any case, and for a loopback address (127.0.0.0/8 and ``::1``,
    Python's :attr:`ipaddress.IPv4Address.is_loopback`). False for anything else,
    including ``localhost.example.org`` and names that merely contain "localhost".
    This is the one loopback rule: the plain-HTTP warnings of the registry and the
    admin API both ask it.
    """
    host = host.strip("[]").lower()
    if host.endswith("."):
        host = host[:-1]
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def warn_plain_http(flag: str, host: str, *, credentials: bool) -> None:
    """Warn on standard error when plain HTTP goes to a host that is not this machine."""
    if is_loopback(host):
        return
    what = (
        "credentials are sent in clear text and can be read on the way"
        if credentials
        else "answers can be altered on the way"
    )
    note(f"WARNING: {flag}: plain HTTP to {host}, which is not a loopback address: {what}; "
         f"use HTTPS for any registry that is not on this machine")


#: Query parameter names that carry a credential (OAuth ``access_token``, presigned URLs' signatures, API keys).
_CREDENTIAL_PARAMS = re.compile(
    r"^(x-amz-(signature|credential|security-token)|x-goog-(signature|credential)|.*token.*|.*secret.*|.*passw.*|"
    r"auth|authorization|api[-_]?key|key|sig|signature|code|private[-_]token)$", re.IGNORECASE)
_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def _host_problem(host: str) -> str | None:
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1] if host.endswith("]") else "")
            return None
        except ValueError:
            return "the host is not a valid [IPv6] address"
    if not host or len(host) > 253:
        return "the URL names no valid host"
    labels = host.rstrip(".").split(".")
    if all(label.isdigit() for label in labels):
        try:
            ipaddress.IPv4Address(host)
            return None
        except ValueError:
            return "the host is not a valid IPv4 address"
    if not all(_LABEL.match(label) for label in labels):
        return "the host is not a valid DNS name (labels of letters, digits and '-', at most 63 characters)"
    return None


def url_problems(value: object, schemes: tuple[str, ...] = ("http", "https"), *, query: bool = False) -> list[str]:
    """What is wrong with URL ``value`` (empty: nothing), checked as a setting or a flag value.

    Rules: a string of printable ASCII without blanks; scheme among ``schemes``; a valid
    host (a DNS name of labels of at most 63 letters, digits and ``-``, an IPv4 address or
    an ``[IPv6]`` address, RFC 3986 section 3.2.2); a port, when given, of 1-65535; no
    user information (``user:password@``), no query parameter that carries a credential
    (``token``, ``access_token``, ``X-Amz-Signature``, ``key``, ...), no fragment, and no
    query at all unless ``query``.

    A message never repeats a value that holds credentials or a credential parameter:
    it is a secret and its place is a secret flag (``env:NAME`` or ``file:PATH``).
    """
    if not isinstance(value, str):
        return [f"expected a URL string, got {type(value).__name__}"]
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port
    except ValueError:
        parts, port = None, -1
    rest = value.split("://", 1)[1] if "://" in value else value
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if "@" in authority:
        return [("the URL holds credentials (user:password@ before the host); the value is not repeated here: "
                 "give the host alone and pass credentials with their own secret flag or CI variable")]
    if parts is not None and parts.query:
        for name, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
            if _CREDENTIAL_PARAMS.match(name):
                return [(f"the URL carries a credential in its query ({printable(name)}=...); the value is not "
                         "repeated here: remove it and pass the credential with its own secret flag or CI variable")]
    if not value.isascii() or not value.isprintable() or any(ch.isspace() for ch in value):
        return ["the URL holds blanks, control or non-ASCII characters"]
    if parts is None or port == -1:
        return ["not a valid URL: expected SCHEME://HOST[:PORT][/PATH], with a port from 1 to 65535"]
    if parts.scheme not in schemes or not value.startswith(f"{parts.scheme}://"):
        return [f"expected a {'/'.join(s + '://' for s in schemes)} URL"]
    problems = []
    if authority.startswith("["):
        host = authority[: authority.index("]") + 1] if "]" in authority else authority
    else:
        host = authority.split(":", 1)[0]
    problem = _host_problem(host)
    if problem:
        problems.append(problem)
    if port is not None and not 1 <= port <= 65535:
        problems.append(f"the port {port} is outside 1-65535")
    if authority.endswith(":"):
        problems.append("the port is empty; give 1-65535 or leave out the ':'")
    if parts.fragment or "#" in value:
        problems.append("the URL holds a fragment (#...)")
    if parts.query and not query:
        problems.append("the URL holds a query (?...); give the base URL only")
    return problems
