"""The rules a config's values follow, key by key: what :mod:`.config` checks each value against.

Two sources of rules, both yielding :class:`Finding` items (a sub-key, what was
expected, what to do) that :mod:`.config` turns into problems naming the file and
the dotted key:

- :data:`RULES`, the typed rules of the keys the embedded template declares
  (names per :mod:`faas_deployment.core.names`: DNS-1123, Helm chart names, image
  repositories and tags, Kubernetes quantities and durations; semantic versions per
  :mod:`faas_deployment.core.versions`), and :data:`GROUPS`, the keys a yes/no flag
  requires;
- :func:`check_template_type`, what cookiecutter itself would reject or mangle,
  from the type of the variable's default in ``cookiecutter.json``.

:func:`shown` and :func:`did_you_mean` are how a bad value and an unknown key are
written in every problem message of the configs and ``environment.yaml``.
"""

from __future__ import annotations

import difflib
import re
import reprlib
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from ..core import names, versions
from .config_file import WrittenFloat, WrittenInt

#: The values a yes/no flag takes (the example configs' convention, quoted in YAML).
FLAG_VALUES = ("yes", "no")


class Finding(NamedTuple):
    """What a check found: ``sub`` is appended to the key (``""``, ``".x"``, ``"[0].y"``)."""

    sub: str
    message: str
    hint: str = ""


Check = Callable[[Any], Iterator[Finding]]

# Environment variable names: C identifiers (POSIX portable names).
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Secret data keys (Kubernetes: "consist of alphanumeric characters, '-', '_' or '.'").
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxdict, _REPR.maxlist = 3, 76, 76, 6, 6


def shown(value: Any) -> str:
    """A short ``repr`` of ``value`` (at most 80 characters), built without walking all of it."""
    text = _REPR.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def did_you_mean(key: str, known: Any) -> str:
    """`` (did you mean X?)`` for the closest of ``known`` to ``key`` (difflib ratio >= 0.6), else ``""``."""
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _string(value: Any, expected: str) -> Iterator[Finding]:
    """Nothing if ``value`` is a string; else a finding telling to quote it."""
    if not isinstance(value, str):
        yield Finding("", f"expected {expected} as a string, got {type(value).__name__} {shown(value)}",
                      "quote the value in YAML")


def _matching(rule: Callable[[str], object], expected: str) -> Check:
    """A check that ``rule`` (a grammar of :mod:`.core.names`, or a pattern's match) accepts the string."""
    def check(value: Any) -> Iterator[Finding]:
        problems = list(_string(value, expected))
        if problems:
            yield from problems
        elif not rule(value):
            yield Finding("", f"expected {expected}, got {shown(value)}")

    return check


def _chart_version(value: Any) -> Iterator[Finding]:
    hint = "use semantic versioning MAJOR.MINOR.PATCH, e.g. \"1.0.3\", quoted"
    if not isinstance(value, str):
        yield Finding("", f"expected a semantic version string, got {type(value).__name__} {shown(value)}", hint)
    elif not versions.is_valid(value):
        yield Finding("", f"expected a semantic version MAJOR.MINOR.PATCH[-pre][+build] (semver.org), "
                          f"got {shown(value)}", hint)


#: Longest chart description, in characters (a one-line summary in Chart.yaml).
MAX_DESCRIPTION = 1024


def _description(value: Any) -> Iterator[Finding]:
    """A Chart.yaml description: one line of printable text Helm's YAML reader takes."""
    problems = list(_string(value, "a one-line description"))
    if problems:
        yield from problems
    elif len(value) > MAX_DESCRIPTION:
        yield Finding("", f"expected at most {MAX_DESCRIPTION} characters, got {len(value)}", "shorten it")
    elif not value.isprintable():
        yield Finding("", f"expected printable text on one line, got {shown(value)}",
                      "remove line breaks and control characters")
    elif any(ord(ch) > 0xFFFF for ch in value):
        yield Finding("", "holds a character outside Unicode's Basic Multilingual Plane (an emoji?), "
                          "which the chart's JSON-escaped Chart.yaml cannot carry to Helm", "remove it")


def _one_of(*choices: str) -> Check:
    def check(value: Any) -> Iterator[Finding]:
        if value not in choices:
            yield Finding("", f"expected one of {', '.join(choices)}, got {shown(value)}")

    return check


def _flag(value: Any) -> Iterator[Finding]:
    if isinstance(value, bool):
        yield Finding("", f"expected \"yes\" or \"no\", got the YAML boolean {str(value).lower()}",
                      "write \"yes\" or \"no\" in quotes: unquoted yes/no/true/false are booleans in YAML")
    elif value not in FLAG_VALUES:
        yield Finding("", f"expected \"yes\" or \"no\", got {shown(value)}")


def _integer(low: int, high: int | None, expected: str) -> Check:
    def check(value: Any) -> Iterator[Finding]:
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and value.isdigit() and value.isascii():
            number = int(value)
        if number is None or number < low or (high is not None and number > high):
            yield Finding("", f"expected {expected}, got {shown(value)}")

    return check


def _optional(check: Check) -> Check:
    """``check``, except that the empty string (meaning "none") is accepted."""

    def optional(value: Any) -> Iterator[Finding]:
        if value != "":
            yield from check(value)

    return optional


def _absolute_path(value: Any) -> Iterator[Finding]:
    problems = list(_string(value, "an absolute path"))
    if problems:
        yield from problems
    elif not value.startswith("/") or ":" in value or ".." in value.split("/"):
        yield Finding("", f"expected an absolute path without ':' or '..', e.g. /mnt/storage, got {shown(value)}")


def _quantity(value: Any) -> Iterator[Finding]:
    expected = "a Kubernetes quantity such as 5Gi or 500Mi"
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return
    problems = list(_string(value, expected))
    if problems:
        yield from problems
    elif not names.is_quantity(value):
        yield Finding("", f"expected {expected} (a positive size), got {shown(value)}")


def as_written(value: Any, sub: str = "") -> Iterator[Finding]:
    """Numbers in ``value`` that YAML reads as something else than their text (``0755`` -> 493)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from as_written(item, f"{sub}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from as_written(item, f"{sub}[{index}]")
    elif isinstance(value, (WrittenInt, WrittenFloat)):
        yield Finding(sub, f"YAML reads {value.written} as the number {value!r}, which becomes the string "
                           f"{str(value)!r}, not what was written", f"quote it: \"{value.written}\"")


def _environment_variables(value: Any) -> Iterator[Finding]:
    if not isinstance(value, dict):
        yield Finding("", f"expected a mapping of NAME: value, got {type(value).__name__} {shown(value)}")
        return
    for name, item in value.items():
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            yield Finding(f".{name}", "expected an environment variable name of letters, digits and '_' "
                                      "not starting with a digit (e.g. LOG_LEVEL)")
        if item is None or isinstance(item, (dict, list)):
            yield Finding(f".{name}", f"expected a single value (string or number), got {shown(item)}",
                          "write \"\" for an empty value")
        elif isinstance(item, bool):
            yield Finding(f".{name}", f"YAML reads this unquoted value as the boolean {str(item).lower()}; the "
                                      f"container would get {str(item)!r}, not what was written",
                          "quote the value, e.g. \"yes\" or \"true\": unquoted yes/no/true/false/on/off are "
                          "booleans in YAML")


_SECRET_ITEM_KEYS = ("secret_key", "vault_secret_key", "vault_secret_property")


def _secret_data(value: Any) -> Iterator[Finding]:
    if not isinstance(value, dict):
        yield Finding("", f"expected a mapping with a \"data\" list, got {type(value).__name__} {shown(value)}")
        return
    for key in value:
        if key != "data":
            yield Finding(f".{key}", "unknown key; expected only \"data\"")
    items = value.get("data", [])
    if not isinstance(items, list):
        yield Finding(".data", f"expected a list of {{secret_key, vault_secret_key, vault_secret_property}}, "
                               f"got {type(items).__name__} {shown(items)}")
        return
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        where = f".data[{index}]"
        if not isinstance(item, dict):
            yield Finding(where, f"expected a mapping with {', '.join(_SECRET_ITEM_KEYS)}, got {shown(item)}")
            continue
        for key in item:
            if key not in _SECRET_ITEM_KEYS:
                yield Finding(f"{where}.{key}", "unknown key" + did_you_mean(str(key), _SECRET_ITEM_KEYS))
        for key in _SECRET_ITEM_KEYS:
            field = item.get(key)
            if not isinstance(field, str) or not field.strip():
                yield Finding(f"{where}.{key}", f"expected a non-empty string, got {shown(field)}")
        secret_key = item.get("secret_key")
        if isinstance(secret_key, str) and secret_key:
            if not _SECRET_KEY.match(secret_key) or len(secret_key) > 253:
                yield Finding(f"{where}.secret_key", "expected a Secret key of letters, digits, '-', '_' or '.', "
                                                     f"got {shown(secret_key)}")
            elif secret_key in seen:
                yield Finding(f"{where}.secret_key", f"duplicate secret_key {secret_key!r} "
                                                     f"(also in data[{seen[secret_key]}])")
            else:
                seen[secret_key] = index


_DNS_NAME = _matching(names.is_dns_subdomain, "a DNS-1123 name (lowercase letters, digits, '-' and '.', "
                                               f"at most {names.DNS_SUBDOMAIN_MAX} characters)")

#: Typed rules, key -> check. They apply to the keys a template declares and a
#: config sets (and to the keys a flag requires, see :data:`GROUPS`).
RULES: dict[str, Check] = {
    "chart_name": _matching(names.is_chart_name, "a Helm chart name (lowercase letters, digits and '-', "
                                                 f"at most {names.DNS_LABEL_MAX} characters)"),
    "chart_version": _chart_version,
    "image_repository": _matching(names.is_image_repository, "an image repository HOST/PATH such as "
                                  "registry.example.org/team/app (lowercase path, at most "
                                  f"{names.REPOSITORY_MAX} characters)"),
    "chart_description": _description,
    "image_tag": _matching(names.is_tag, "an image tag ([A-Za-z0-9_][A-Za-z0-9_.-], at most 128 characters)"),
    "image_pull_policy": _one_of("IfNotPresent", "Always", "Never"),
    "image_pull_secret": _optional(_DNS_NAME),
    "replica_count": _integer(0, None, "an integer >= 0"),
    "container_port": _integer(1, 65535, "a port number, an integer from 1 to 65535"),
    "service_type": _one_of("ClusterIP", "NodePort", "LoadBalancer"),
    "service_port": _integer(1, 65535, "a port number, an integer from 1 to 65535"),
    "health_path": _matching(re.compile(r"^/\S*$").match, "an HTTP path starting with '/', e.g. /healthz"),
    "environment_variables": _environment_variables,
    "include_persistent_volume_claim": _flag,
    "pvc_persistent_volume_claim_name": _DNS_NAME,
    "pvc_persistent_volume_claim_mount_path": _absolute_path,
    "pvc_persistent_volume_name": _DNS_NAME,
    "pvc_storage_class_name": _DNS_NAME,
    "pvc_storage": _quantity,
    "include_external_admin_secret": _flag,
    "external_secret_store_name": _DNS_NAME,
    "external_secret_store_kind": _one_of("ClusterSecretStore", "SecretStore"),
    "external_secret_refresh_interval": _matching(names.is_duration, "a duration such as 1h, 15m or 1h30m"),
    "external_admin_secret_data": _secret_data,
}


def filled(value: Any) -> bool:
    """Whether a key is set: not missing (``None``), not ``""``, not an empty mapping or list."""
    return value is not None and value != "" and value != {} and value != []


def _has_secrets(value: Any) -> bool:
    return not isinstance(value, dict) or filled(value.get("data"))


#: Flag -> the keys that must be set (non-empty) when the flag is "yes", each
#: with its "is it set" test.
GROUPS: dict[str, dict[str, Callable[[Any], bool]]] = {
    "include_persistent_volume_claim": {
        "pvc_persistent_volume_claim_name": filled,
        "pvc_persistent_volume_claim_mount_path": filled,
        "pvc_persistent_volume_name": filled,
        "pvc_storage_class_name": filled,
        "pvc_storage": filled,
    },
    "include_external_admin_secret": {
        "external_secret_store_name": filled,
        "external_admin_secret_data": _has_secrets,
    },
}
GROUP_MEMBERS = {key for members in GROUPS.values() for key in members}


def check_template_type(value: Any, default: Any) -> Iterator[Finding]:
    """What cookiecutter itself would reject or mangle, from the variable's default."""
    if isinstance(default, list):
        if isinstance(value, list):
            extra = [v for v in value if v not in default]
            if extra:
                yield Finding("", f"expected choices among {', '.join(map(str, default))}, got {shown(extra)}")
        elif value not in default:
            yield Finding("", f"expected one of {', '.join(map(str, default))}, got {shown(value)}")
    elif isinstance(default, dict):
        if not isinstance(value, dict):
            yield Finding("", f"expected a mapping, got {type(value).__name__} {shown(value)}")
    elif isinstance(default, bool):
        if not isinstance(value, (bool, str)):
            yield Finding("", f"expected a boolean or yes/no, got {shown(value)}")
    elif value is None:
        yield Finding("", "no value given", "write \"\" for an empty string")
    elif isinstance(value, (dict, list)):
        yield Finding("", f"expected a single value (string or number), got {type(value).__name__}")
    elif isinstance(default, str) and isinstance(value, bool):
        yield Finding("", f"YAML reads this unquoted value as the boolean {str(value).lower()}; the template "
                          f"would get {str(value)!r}, not what was written", "quote the value")
    elif isinstance(default, str):
        yield from as_written(value)
