"""Secret references in Dagger's forms, ``env:NAME`` and ``file:PATH``.

The CLI takes secrets the way ``dagger call`` does, so one command line works in
both front ends. A resolved :class:`SecretValue` hides its value from ``repr``,
``str`` and f-strings; callers take it out with :meth:`SecretValue.reveal` only at
the point of use (an HTTP header, a registry login), never into a message or a URL.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import UserError

_FORMS = "env:NAME or file:PATH"
#: The largest secret file read (bytes). A kubeconfig with embedded certificates is
#: a few kilobytes; a larger file (or a device such as /dev/zero) is a wrong path.
MAX_FILE_BYTES = 1024 * 1024


#: Values of at least this many characters are redacted wherever text from elsewhere is shown
#: (:func:`redact_known`); a shorter one would mask ordinary words (GitLab masks 8 characters and more).
MIN_KNOWN_CHARS = 4
_KNOWN: set[str] = set()


class SecretValue:
    """A secret string that never prints itself."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str):
        self._value = value
        self.source = source  # the reference it came from, e.g. "env:REGISTRY_PASSWORD"
        if len(value) >= MIN_KNOWN_CHARS:
            _KNOWN.add(value)

    def reveal(self) -> str:
        """The plain value, for the one call that needs it."""
        return self._value

    def __repr__(self) -> str:
        return f"SecretValue({self.source}, ***)"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)


def resolve_secret(reference: str, *, flag: str) -> SecretValue:
    """Resolve ``env:NAME`` or ``file:PATH`` to a :class:`SecretValue`.

    A file's trailing line ends (``\\n``, ``\\r\\n``) are dropped (``echo secret > file``
    is the usual way to make one), and so is a leading UTF-8 byte order mark (some
    Windows editors write one); every other character, spaces included, is part of
    the secret. A value that is empty or only whitespace (spaces, tabs, line ends)
    is refused: no registry password or API token is blank, so such a value is a
    mistake (an unfilled variable, a truncated file), not a secret. ``flag`` names
    the option in error messages; no message holds the value.

    Raises:
        UserError: unknown form; variable unset, empty or blank; file missing,
            unreadable, a directory, larger than :data:`MAX_FILE_BYTES`, empty,
            blank or not UTF-8.
    """
    kind, sep, name = reference.partition(":")
    if not reference:
        raise UserError(f"{flag}: empty; expected {_FORMS} (or leave the flag out)")
    if sep and kind in ("env", "file") and not name:
        what = "variable" if kind == "env" else "file"
        raise UserError(f"{flag}: {kind}: names no {what} (expected {_FORMS})")
    if not sep or kind not in ("env", "file"):
        raise UserError(
            f"{flag}: expected {_FORMS}, got a value of another form "
            f"(pass the secret through an environment variable or a file, never inline)"
        )
    if kind == "env":
        value = os.environ.get(name)
        if not value or value.isspace():
            raise UserError(f"{flag}: environment variable {name} is not set, empty or only whitespace "
                            f"(export it with the secret, then retry)")
        return SecretValue(value, reference)
    path = Path(name)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise UserError(f"{flag}: cannot read secret file {path}: {exc.strerror or type(exc).__name__}") from None
    except ValueError:  # Python refuses a path holding a NUL byte before asking the system
        raise UserError(f"{flag}: cannot read secret file {name!r}: the path holds a NUL byte") from None
    if len(data) > MAX_FILE_BYTES:
        raise UserError(f"{flag}: secret file {path} holds more than {MAX_FILE_BYTES} bytes (is it the right file?)")
    try:
        value = data.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError:
        raise UserError(f"{flag}: secret file {path} is not UTF-8 text (write the secret as UTF-8 text)") from None
    if not value or value.isspace():
        raise UserError(f"{flag}: secret file {path} is empty or only whitespace (write the secret into it)")
    return SecretValue(value, reference)


def redact(text: str, *secrets: SecretValue | str | None) -> str:
    """Replace every occurrence of each secret in ``text`` with ``***``.

    A last line of defence for text that comes from elsewhere (a server's answer,
    a library's exception) before it is shown. Longer secrets are replaced first,
    so a secret that holds another one is not left half shown; ``None`` and empty
    strings are skipped.
    """
    values = {secret.reveal() if isinstance(secret, SecretValue) else secret for secret in secrets}
    for value in sorted(filter(None, values), key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def known() -> tuple[str, ...]:
    """Every secret value resolved in this process (each :class:`SecretValue` made), longest first."""
    return tuple(sorted(set(_KNOWN), key=len, reverse=True))


def redact_known(text: str, *secrets: SecretValue | str | None) -> str:
    """:func:`redact` with every value this process holds as a secret (:func:`known`) and ``secrets``.

    For output that does not come from us (a hook's, a server's message): it may
    echo any secret the verb was given, not only the one it was sent.
    """
    return redact(text, *known(), *secrets)


#: Characters shared in a row with a secret that make a word of server text count as (part of) it.
SHARED_CHARS = 8
_WORD = re.compile(r"[^\s\"'`<>()\[\]{},;]+")


def sanitize(text: str, *secrets: SecretValue | str | None) -> str:
    """``text`` with every secret (``secrets`` and :func:`known`) and every *part* of one replaced by ``***``.

    For text a server wrote back (an error page, a JSON message): a server that
    echoes a token minus its last characters, or cut in two, defeats :func:`redact`.
    So beyond exact values, every word (a run of characters without blanks, quotes
    or brackets) that shares :data:`SHARED_CHARS` characters in a row with a secret
    (or holds a whole secret shorter than that) is replaced too.
    """
    values = [v for v in {s.reveal() if isinstance(s, SecretValue) else s for s in (*known(), *secrets)} if v]
    text = redact(text, *values)
    grams: set[str] = set()
    short = [v for v in values if len(v) < SHARED_CHARS]
    for value in values:
        if len(value) >= SHARED_CHARS:
            grams.update(value[i:i + SHARED_CHARS] for i in range(min(len(value), 65536) - SHARED_CHARS + 1))

    def word(match: re.Match[str]) -> str:
        w = match.group(0)
        if any(w[i:i + SHARED_CHARS] in grams for i in range(len(w) - SHARED_CHARS + 1)):
            return "***"
        if any(v in w for v in short):
            return "***"
        return w

    return _WORD.sub(word, text)


def refuse_inside(secret: SecretValue | None, flag: str, others: Mapping[str, Any]) -> None:
    """Refuse a secret whose value also appears inside another flag's value (``others``: flag -> value).

    A secret goes only where its own flag sends it; inside ``--ready-path`` or a
    URL it would land in a request line, a log or a server's access log. Values that
    are strings, or lists of strings, are searched; the message names both flags
    and repeats neither value.

    Raises:
        UserError: ``secret`` (at least :data:`MIN_KNOWN_CHARS` characters) is inside one of ``others``.
    """
    if secret is None or len(secret.reveal()) < MIN_KNOWN_CHARS:
        return
    value = secret.reveal()
    for other, given in others.items():
        texts = given if isinstance(given, (list, tuple)) else [given]
        if any(isinstance(t, str) and value in t for t in texts):
            raise UserError(f"{flag}: its secret value also appears inside {other} (neither is repeated here); "
                            f"a secret travels only in its own flag: remove it from {other}")
