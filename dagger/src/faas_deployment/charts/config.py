"""Component configuration: load and validate ``cookiecutter-config.yaml`` (rules and validation only).

Each deployable component has one file per environment,
``env/<env>/<component>/cookiecutter-config.yaml``. It is a cookiecutter *user
config*: a top-level ``default_context`` mapping holds the values of the chart
template's variables (``chart_name``, ``chart_version``, the image, the PVC and
the Vault secret settings, ...). Where the files are and which environments and
components exist is :mod:`faas_deployment.core.layout`'s concern; they are discovered from
the files present; nothing here names them.

Validation reports every problem of a file in one :class:`ValidationError`, each
naming the file (relative to the source directory) and the dotted key, e.g.
``env/dev/operator/cookiecutter-config.yaml: default_context.chart_version: ...``.
It follows the template's ``cookiecutter.json`` (the keys it declares, its choice
lists and dict variables) plus the typed rules of :data:`RULES` for the keys both
know, so a user template with its own variables is validated by its own keys.

The resolved context (the config's values as data, never rendered; the template's
other defaults rendered in a Jinja sandbox, see :mod:`faas_deployment.charts.defaults`) is what
:func:`faas_deployment.charts.chart.render_chart` passes to cookiecutter as ``extra_context``.
"""

from __future__ import annotations

import difflib
import json
import re
import reprlib
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import yaml

from ..core import names, versions
from ..core.errors import Problem, UserError, ValidationError
from ..core.layout import config_path
from ..core.yaml_limits import limit_problem
from . import defaults

#: The chart template shipped inside the package (a cookiecutter template whose
#: project directory is ``{{cookiecutter.chart_name}}/``).
EMBEDDED_TEMPLATE: Path = Path(str(resources.files(__package__).joinpath("template")))

#: Top-level keys of a cookiecutter user config. Only ``default_context`` is
#: used; the others are accepted (cookiecutter knows them) and ignored.
USER_CONFIG_KEYS = ("default_context", "abbreviations", "cookiecutters_dir", "replay_dir")

#: The values a yes/no flag takes (the example configs' convention, quoted in YAML).
FLAG_VALUES = ("yes", "no")

# --------------------------------------------------------------------------- template


def template_variables(template: Path) -> dict[str, Any]:
    """The variables declared by ``<template>/cookiecutter.json``, in file order.

    Raises:
        UserError: the template directory or its ``cookiecutter.json`` is missing,
            is not valid JSON (line and column given), or is not a JSON object.
    """
    template = Path(template)
    if not template.is_dir():
        raise UserError(f"{template}: template directory not found (expected a cookiecutter template directory)")
    context_file = template / "cookiecutter.json"
    from ..core import repofiles

    try:
        text = repofiles.read_text(template, "cookiecutter.json")
    except repofiles.NotReadable as err:
        if err.missing:
            raise UserError(f"{context_file}: not found; a cookiecutter template declares its variables in "
                            f"cookiecutter.json") from None
        raise UserError(f"{context_file}: {err.reason}") from None
    try:
        variables = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{context_file}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from err
    except RecursionError:
        raise UserError(f"{context_file}: JSON nested too deeply") from None
    if not isinstance(variables, dict):
        raise UserError(f"{context_file}: expected a JSON object of variables, got {type(variables).__name__}")
    return variables


# --------------------------------------------------------------------------- typed rules


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


def _shown(value: Any) -> str:
    """A short ``repr`` of ``value`` (at most 80 characters), built without walking all of it."""
    text = _REPR.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _string(value: Any, expected: str) -> Iterator[Finding]:
    """Nothing if ``value`` is a string; else a finding telling to quote it."""
    if not isinstance(value, str):
        yield Finding("", f"expected {expected} as a string, got {type(value).__name__} {_shown(value)}",
                      "quote the value in YAML")


def _matching(rule: Callable[[str], object], expected: str) -> Check:
    """A check that ``rule`` (a grammar of :mod:`.core.names`, or a pattern's match) accepts the string."""
    def check(value: Any) -> Iterator[Finding]:
        problems = list(_string(value, expected))
        if problems:
            yield from problems
        elif not rule(value):
            yield Finding("", f"expected {expected}, got {_shown(value)}")

    return check


def _chart_version(value: Any) -> Iterator[Finding]:
    hint = "use semantic versioning MAJOR.MINOR.PATCH, e.g. \"1.0.3\", quoted"
    if not isinstance(value, str):
        yield Finding("", f"expected a semantic version string, got {type(value).__name__} {_shown(value)}", hint)
    elif not versions.is_valid(value):
        yield Finding("", f"expected a semantic version MAJOR.MINOR.PATCH[-pre][+build] (semver.org), "
                          f"got {_shown(value)}", hint)


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
        yield Finding("", f"expected printable text on one line, got {_shown(value)}",
                      "remove line breaks and control characters")
    elif any(ord(ch) > 0xFFFF for ch in value):
        yield Finding("", "holds a character outside Unicode's Basic Multilingual Plane (an emoji?), "
                          "which the chart's JSON-escaped Chart.yaml cannot carry to Helm", "remove it")


def _one_of(*choices: str) -> Check:
    def check(value: Any) -> Iterator[Finding]:
        if value not in choices:
            yield Finding("", f"expected one of {', '.join(choices)}, got {_shown(value)}")

    return check


def _flag(value: Any) -> Iterator[Finding]:
    if isinstance(value, bool):
        yield Finding("", f"expected \"yes\" or \"no\", got the YAML boolean {str(value).lower()}",
                      "write \"yes\" or \"no\" in quotes: unquoted yes/no/true/false are booleans in YAML")
    elif value not in FLAG_VALUES:
        yield Finding("", f"expected \"yes\" or \"no\", got {_shown(value)}")


def _integer(low: int, high: int | None, expected: str) -> Check:
    def check(value: Any) -> Iterator[Finding]:
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and value.isdigit() and value.isascii():
            number = int(value)
        if number is None or number < low or (high is not None and number > high):
            yield Finding("", f"expected {expected}, got {_shown(value)}")

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
        yield Finding("", f"expected an absolute path without ':' or '..', e.g. /mnt/storage, got {_shown(value)}")


def _quantity(value: Any) -> Iterator[Finding]:
    expected = "a Kubernetes quantity such as 5Gi or 500Mi"
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return
    problems = list(_string(value, expected))
    if problems:
        yield from problems
    elif not names.is_quantity(value):
        yield Finding("", f"expected {expected} (a positive size), got {_shown(value)}")


def _as_written(value: Any, sub: str = "") -> Iterator[Finding]:
    """Numbers in ``value`` that YAML reads as something else than their text (``0755`` -> 493)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _as_written(item, f"{sub}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _as_written(item, f"{sub}[{index}]")
    elif isinstance(value, (WrittenInt, WrittenFloat)):
        yield Finding(sub, f"YAML reads {value.written} as the number {value!r}, which becomes the string "
                           f"{str(value)!r}, not what was written", f"quote it: \"{value.written}\"")


def _environment_variables(value: Any) -> Iterator[Finding]:
    if not isinstance(value, dict):
        yield Finding("", f"expected a mapping of NAME: value, got {type(value).__name__} {_shown(value)}")
        return
    for name, item in value.items():
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            yield Finding(f".{name}", "expected an environment variable name of letters, digits and '_' "
                                      "not starting with a digit (e.g. LOG_LEVEL)")
        if item is None or isinstance(item, (dict, list)):
            yield Finding(f".{name}", f"expected a single value (string or number), got {_shown(item)}",
                          "write \"\" for an empty value")
        elif isinstance(item, bool):
            yield Finding(f".{name}", f"YAML reads this unquoted value as the boolean {str(item).lower()}; the "
                                      f"container would get {str(item)!r}, not what was written",
                          "quote the value, e.g. \"yes\" or \"true\": unquoted yes/no/true/false/on/off are "
                          "booleans in YAML")


_SECRET_ITEM_KEYS = ("secret_key", "vault_secret_key", "vault_secret_property")


def _secret_data(value: Any) -> Iterator[Finding]:
    if not isinstance(value, dict):
        yield Finding("", f"expected a mapping with a \"data\" list, got {type(value).__name__} {_shown(value)}")
        return
    for key in value:
        if key != "data":
            yield Finding(f".{key}", "unknown key; expected only \"data\"")
    items = value.get("data", [])
    if not isinstance(items, list):
        yield Finding(".data", f"expected a list of {{secret_key, vault_secret_key, vault_secret_property}}, "
                               f"got {type(items).__name__} {_shown(items)}")
        return
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        where = f".data[{index}]"
        if not isinstance(item, dict):
            yield Finding(where, f"expected a mapping with {', '.join(_SECRET_ITEM_KEYS)}, got {_shown(item)}")
            continue
        for key in item:
            if key not in _SECRET_ITEM_KEYS:
                yield Finding(f"{where}.{key}", "unknown key" + _did_you_mean(str(key), _SECRET_ITEM_KEYS))
        for key in _SECRET_ITEM_KEYS:
            field = item.get(key)
            if not isinstance(field, str) or not field.strip():
                yield Finding(f"{where}.{key}", f"expected a non-empty string, got {_shown(field)}")
        secret_key = item.get("secret_key")
        if isinstance(secret_key, str) and secret_key:
            if not _SECRET_KEY.match(secret_key) or len(secret_key) > 253:
                yield Finding(f"{where}.secret_key", "expected a Secret key of letters, digits, '-', '_' or '.', "
                                                     f"got {_shown(secret_key)}")
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


def _filled(value: Any) -> bool:
    return value is not None and value != "" and value != {} and value != []


def _has_secrets(value: Any) -> bool:
    return not isinstance(value, dict) or _filled(value.get("data"))


#: Flag -> the keys that must be set (non-empty) when the flag is "yes", each
#: with its "is it set" test.
GROUPS: dict[str, dict[str, Callable[[Any], bool]]] = {
    "include_persistent_volume_claim": {
        "pvc_persistent_volume_claim_name": _filled,
        "pvc_persistent_volume_claim_mount_path": _filled,
        "pvc_persistent_volume_name": _filled,
        "pvc_storage_class_name": _filled,
        "pvc_storage": _filled,
    },
    "include_external_admin_secret": {
        "external_secret_store_name": _filled,
        "external_admin_secret_data": _has_secrets,
    },
}
_GROUP_MEMBERS = {key for members in GROUPS.values() for key in members}


# --------------------------------------------------------------------------- reading


class WrittenInt(int):
    """An integer YAML read from text that does not write it back (``0755`` is 493): ``written`` is that text."""

    written: str


class WrittenFloat(float):
    """A float YAML read from text that does not write it back (``0.10`` is 0.1): ``written`` is that text."""

    written: str


def _written(number: Any, text: str) -> Any:
    """``number``, or a :class:`WrittenInt`/:class:`WrittenFloat` remembering ``text`` when ``str(number)`` differs."""
    if str(number) == text or isinstance(number, bool):
        return number
    kept = (WrittenInt if isinstance(number, int) else WrittenFloat)(number)
    kept.written = text
    return kept


def _plain(value: Any) -> Any:
    """``value`` with :class:`WrittenInt`/:class:`WrittenFloat` turned back into ``int``/``float`` (for dumping)."""
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, WrittenInt):
        return int(value)
    if isinstance(value, WrittenFloat):
        return float(value)
    return value


if TYPE_CHECKING:  # the mixin is checked against the loader it is mixed into
    _LoaderBase = yaml.SafeLoader
    _FAST_PARSER = yaml.SafeLoader
else:
    _LoaderBase = object
    #: libyaml's safe loader when PyYAML was built with it, else the pure-Python one.
    _FAST_PARSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Noting(_LoaderBase):
    """What a config loader adds to PyYAML's safe loader: it notes duplicate keys and how numbers were written.

    A number whose text is not what ``str()`` gives back (``0755``, ``0.10``,
    ``+12``, ``0x1F``) is kept as :class:`WrittenInt`/:class:`WrittenFloat`, so a
    value that becomes a string (environment variables, nested values of dict
    variables) can be refused instead of silently changed.
    """

    def construct_yaml_int(self, node: yaml.ScalarNode) -> Any:
        return _written(super().construct_yaml_int(node), node.value)

    def construct_yaml_float(self, node: yaml.ScalarNode) -> Any:
        return _written(super().construct_yaml_float(node), node.value)

    def __init__(self, stream: str):
        super().__init__(stream)
        self.duplicates: list[tuple[Any, yaml.Mark]] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            try:
                key = self.construct_object(key_node, deep=True)
                hash(key)
            except (TypeError, yaml.YAMLError):
                continue
            if key in seen:
                self.duplicates.append((key, key_node.start_mark))
            seen.add(key)
        return super().construct_mapping(node, deep)


class _Loader(_Noting, yaml.SafeLoader):
    """PyYAML's pure-Python safe loader (as cookiecutter reads user configs), see :class:`_Noting`."""



class _FastLoader(_Noting, _FAST_PARSER):
    """The same on libyaml's parser when PyYAML has it (several times faster); errors are read again by
    :class:`_Loader`."""


for _class in (_Loader, _FastLoader):
    _class.add_constructor("tag:yaml.org,2002:int", _class.construct_yaml_int)
    _class.add_constructor("tag:yaml.org,2002:float", _class.construct_yaml_float)


def _load_fast(text: str) -> tuple[Any, list[tuple[Any, yaml.Mark]]] | None:
    """``text`` read by :class:`_FastLoader` with its duplicates; ``None`` when it fails (then read it again slowly)."""
    loader = _FastLoader(text)
    try:
        return loader.get_single_data(), loader.duplicates
    except (yaml.YAMLError, RecursionError):
        return None
    finally:
        loader.dispose()


def _read_yaml(path: Path, shown: str) -> tuple[Any, list[Problem]]:
    from ..core import repofiles

    try:
        text = repofiles.read_text(*repofiles.split(path, shown))
    except repofiles.NotReadable as err:
        return None, [Problem(shown, "", "file not found" if err.missing else err.reason)]
    too_big = limit_problem(text, _FAST_PARSER)
    if too_big:
        return None, [Problem(shown, "", too_big)]
    fast = _load_fast(text)
    if fast is not None:
        return fast[0], _duplicate_problems(shown, fast[1])
    loader = None
    try:
        loader = _Loader(text)
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        detail = "; ".join(str(part) for part in (err.context, err.problem) if part)
        return None, [Problem(shown, "", f"YAML syntax error{where}: {detail}", "fix the YAML syntax")]
    except yaml.YAMLError as err:  # e.g. a ReaderError: a character YAML does not allow
        return None, [Problem(shown, "", f"YAML error: {err}", "remove control characters from the file")]
    except RecursionError:
        return None, [Problem(shown, "", "nested too deeply to read; flatten it")]
    finally:
        if loader is not None:
            loader.dispose()
    return data, _duplicate_problems(shown, loader.duplicates)


def _duplicate_problems(shown: str, duplicates: list[tuple[Any, yaml.Mark]]) -> list[Problem]:
    return [
        Problem(shown, str(key), f"duplicate key at line {mark.line + 1}, column {mark.column + 1}",
                "keep one: YAML readers silently use the last one")
        for key, mark in duplicates
    ]


def _did_you_mean(key: str, known: Any) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


# --------------------------------------------------------------------------- validation


#: Keys the pipeline itself reads from every config (the name and version it
#: publishes, compares and points Flux at), accepted, required and checked whatever
#: the template declares. They are what the packaged chart's ``Chart.yaml`` says,
#: whatever the template writes there (:func:`faas_deployment.charts.chart.set_chart_identity`).
PIPELINE_KEYS = ("chart_name", "chart_version")

#: The keys that identify what is deployed, with what they identify. A config must
#: set each one itself: a template default never stands in for them.
IDENTITY_KEYS = {
    "chart_name": "the chart's name, under which it is published and deployed",
    "chart_version": "the chart version published and deployed",
    "image_repository": "the image the chart deploys",
    "image_tag": "the image the chart deploys",
}

#: The ``cookiecutter.json`` setting in which a template lists its own identity keys.
IDENTITY_SETTING = "_identity_keys"


def identity_keys(variables: dict[str, Any], where: str = "cookiecutter.json") -> tuple[str, ...]:
    """The keys every config of this template must set (see :data:`IDENTITY_KEYS`).

    A template lists them in ``cookiecutter.json`` as ``"_identity_keys": ["chart_name",
    ...]`` (a private variable: cookiecutter ignores it). Without that list, the keys of
    :data:`IDENTITY_KEYS` the template declares. :data:`PIPELINE_KEYS` are always
    included.

    Raises:
        UserError: ``_identity_keys`` is not a list of the template's variable names.
    """
    declared = variables.get(IDENTITY_SETTING)
    if declared is None:
        keys = [k for k in IDENTITY_KEYS if k in variables]
    elif not isinstance(declared, list) or not all(isinstance(k, str) for k in declared):
        raise UserError(f"{where}: {IDENTITY_SETTING}: expected a list of variable names, got {_shown(declared)}")
    else:
        unknown = [k for k in declared if k.startswith("_") or (k not in variables and k not in PIPELINE_KEYS)]
        if unknown:
            raise UserError(f"{where}: {IDENTITY_SETTING}: {', '.join(unknown)} is not a public variable of the "
                            "template; list the variables that identify what is deployed")
        keys = list(declared)
    return tuple(dict.fromkeys([*keys, *PIPELINE_KEYS]))


def _choice_default(default: Any) -> Any:
    return default[0] if isinstance(default, list) and default else default


def _check_context(shown: str, context: dict[Any, Any], variables: dict[str, Any],
                   required: tuple[str, ...] = ()) -> list[Problem]:
    """Problems of a ``default_context`` mapping against the template's variables.

    ``required``: the identity keys (:func:`identity_keys`) the mapping must set.
    """
    problems: list[Problem] = []
    public = [k for k in variables if not k.startswith("_")]
    accepted = [*public, *(k for k in PIPELINE_KEYS if k not in variables)]
    flagged: set[str] = set()

    def report(key: str, finding: Finding) -> None:
        flagged.add(key)
        problems.append(Problem(shown, f"default_context.{key}{finding.sub}", finding.message, finding.hint))

    for key, value in context.items():
        if not isinstance(key, str):
            report(str(key), Finding("", f"expected a variable name (a string), got {type(key).__name__}"))
            continue
        if key.startswith("_"):
            report(key, Finding("", "private template setting; it cannot be set from a config",
                                "remove it from default_context"))
            continue
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else f"the template declares: {', '.join(public)}"
            report(key, Finding("", "unknown key", hint))
            continue
        if key in _GROUP_MEMBERS and not _filled(value):
            continue  # left empty: only required when its flag is "yes" (checked below)
        findings = list(RULES[key](value)) if key in RULES else []
        if key in variables:
            findings = findings or list(_check_template_type(value, variables[key]))
            if isinstance(variables[key], dict):  # nested values become strings: they must read as written
                findings += list(_as_written(value))
        for finding in findings:
            report(key, finding)
    for key in required:
        if key not in context:
            what = IDENTITY_KEYS.get(key, "an identity key of the template")
            report(key, Finding("", f"missing; it identifies what is deployed ({what}), so the template's "
                                    "default is not used", f"set {key} in this file"))

    resolved = {k: context.get(k, _choice_default(variables[k])) for k in public}
    for flag, members in GROUPS.items():
        if flag not in variables or flag in flagged or resolved[flag] != "yes":
            continue
        for key, is_set in members.items():
            if key not in variables or key in flagged:
                continue
            value = resolved[key]
            if not is_set(value):
                what = "a non-empty \"data\" list of secrets" if key == "external_admin_secret_data" else "a value"
                report(key, Finding("", f"required when {flag} is \"yes\": expected {what}",
                                    f"set it, or set {flag}: \"no\""))
            elif key not in context and key in RULES:
                for finding in RULES[key](value):  # a template default in force
                    report(key, finding)
    return problems


def _check_template_type(value: Any, default: Any) -> Iterator[Finding]:
    """What cookiecutter itself would reject or mangle, from the variable's default."""
    if isinstance(default, list):
        if isinstance(value, list):
            extra = [v for v in value if v not in default]
            if extra:
                yield Finding("", f"expected choices among {', '.join(map(str, default))}, got {_shown(extra)}")
        elif value not in default:
            yield Finding("", f"expected one of {', '.join(map(str, default))}, got {_shown(value)}")
    elif isinstance(default, dict):
        if not isinstance(value, dict):
            yield Finding("", f"expected a mapping, got {type(value).__name__} {_shown(value)}")
    elif isinstance(default, bool):
        if not isinstance(value, (bool, str)):
            yield Finding("", f"expected a boolean or yes/no, got {_shown(value)}")
    elif value is None:
        yield Finding("", "no value given", "write \"\" for an empty string")
    elif isinstance(value, (dict, list)):
        yield Finding("", f"expected a single value (string or number), got {type(value).__name__}")
    elif isinstance(default, str) and isinstance(value, bool):
        yield Finding("", f"YAML reads this unquoted value as the boolean {str(value).lower()}; the template "
                          f"would get {str(value)!r}, not what was written", "quote the value")
    elif isinstance(default, str):
        yield from _as_written(value)


def _read_config(path: Path, shown: str) -> tuple[dict[Any, Any] | None, list[Problem]]:
    data, problems = _read_yaml(path, shown)
    if problems and data is None:
        return None, problems
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        return None, [*problems, Problem(shown, "", f"expected a mapping with a default_context key, got {got}")]
    for key in data:
        if key not in USER_CONFIG_KEYS:
            close = difflib.get_close_matches(str(key), USER_CONFIG_KEYS, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else "template values go under default_context"
            problems.append(Problem(shown, str(key), "unknown top-level key", hint))
    if "default_context" not in data:
        problems.append(Problem(shown, "default_context", "missing; expected a mapping of template values",
                                "put the chart's values under a top-level default_context: key"))
        return None, problems
    context = data["default_context"]
    if not isinstance(context, dict):
        got = "nothing" if context is None else f"a {type(context).__name__}"
        problems.append(Problem(shown, "default_context", f"expected a mapping of template values, got {got}"))
        return None, problems
    return context, problems


def read_problems(path: Path, shown: str | None = None) -> list[Problem]:
    """The problems of reading a config file as YAML and as a user config, before any rule.

    The first step of :func:`validate_config`, for a tool that edits the file
    (``bump``) and must refuse it exactly as ``check`` does: syntax, characters
    YAML does not allow, duplicate keys, nesting and alias bounds, unknown
    top-level keys, a missing ``default_context``.
    """
    return _read_config(Path(path), shown or str(path))[1]


def _resolve(shown: str, template: Path, variables: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """The config's values as data, the template's other defaults rendered in a sandbox (``defaults``)."""
    try:
        resolved = defaults.resolve(variables, context)
    except defaults.DefaultError as err:
        raise ValidationError([Problem(shown, "default_context",
                                       f"cannot be resolved with template {template}: {err}")]) from err
    resolved.update({k: context[k] for k in PIPELINE_KEYS if k in context and k not in variables})
    return resolved


def validate_config(path: Path, template: Path | None = None, *, shown: str | None = None) -> dict[str, Any]:
    """Validate one config file against ``template`` and return its resolved context.

    Args:
        path: a ``cookiecutter-config.yaml``.
        template: a cookiecutter template directory; ``None`` = :data:`EMBEDDED_TEMPLATE`.
        shown: how the file is named in problems (default: ``path`` as given).

    Returns:
        Every public variable of the template (keys not starting with ``_``), in
        ``cookiecutter.json`` order: the config's value or the template default,
        choice lists resolved to the chosen item, Jinja in the template's defaults
        rendered in a sandbox; config values are data and never rendered. Numbers
        stay numbers; nested values of dict variables are strings, as cookiecutter
        renders them. Ready to pass to cookiecutter as ``extra_context``.

    Raises:
        UserError: the template or its ``cookiecutter.json`` is missing or invalid.
        ValidationError: every problem of the file at once (YAML syntax with line
            and column, structure, unknown keys with the closest known one, typed
            rules of :data:`RULES`, keys required by the flags of :data:`GROUPS`).
    """
    template = Path(template) if template is not None else EMBEDDED_TEMPLATE
    shown = shown or str(path)
    variables = template_variables(template)
    required = identity_keys(variables, str(template / "cookiecutter.json"))
    context, problems = _read_config(Path(path), shown)
    if context is not None:
        problems += _check_context(shown, context, variables, required)
    if problems:
        raise ValidationError(problems)
    assert context is not None
    return _resolve(shown, template, variables, _plain(context))


def load_context(source: Path, env: str, component: str, template: Path | None = None) -> dict[str, Any]:
    """Load, validate and resolve ``env/<env>/<component>/cookiecutter-config.yaml``.

    Problems name the file relative to ``source``. See :func:`validate_config`
    for the returned shape and the errors raised; an unknown env or component
    raises :class:`UserError` listing the known ones.
    """
    path = config_path(source, env, component)
    return validate_config(path, template, shown=path.relative_to(source).as_posix())
