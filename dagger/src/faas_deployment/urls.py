"""Rules for URLs given on the command line (registry roots, admin API URLs).

Credentials travel in their own flags (``--username``/``--password``,
``--token``) as ``env:NAME`` or ``file:PATH``, never inside a URL: a URL is
printed in progress lines, errors and CI logs. And credentials sent in clear
(plain HTTP) to another machine can be read on the way, so that gets a loud
warning.
"""

from __future__ import annotations

import ipaddress
import urllib.parse

from .errors import UserError
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
    """``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    host = host.strip("[]").lower()
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
    what = "credentials are sent in clear text and can be read on the way" if credentials else "answers can be altered on the way"
    note(f"WARNING: {flag}: plain HTTP to {host}, which is not a loopback address: {what}; "
         f"use HTTPS for any registry that is not on this machine")
