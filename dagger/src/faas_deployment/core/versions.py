"""Every version rule of the pipeline: parsing, which tags are versions, the pre-release scheme, the decision.

Versions are Semantic Versioning 2.0.0 (semver.org), parsed by the ``semver``
library; precedence ignores build metadata (semver.org, item 10). A version lives
in an OCI tag with ``+`` written ``_``, as Helm pushes and reads chart tags (Helm
``pkg/registry/client.go``: ``strings.ReplaceAll(version, "+", "_")`` on push, the
reverse in ``Tags``).

**Which tags are versions.** A tag is a version when it parses as semver after
``_`` -> ``+`` and is not a lease tag. Every other tag (``latest``, a signature
``sha256-<hex>.sig``, the moving ``app-<component>`` tag of a Flux artifact) is
never a version, in any rule: publish, release, plan, promote, artifacts, images.

**Lease tags** (:func:`lease_tag`, :mod:`faas_deployment.registry.lease`) are
``lease-<tag>``: never semver for this module, for Helm (``Tags`` keeps only
``semver.StrictNewVersion`` tags), nor for Flux (``ref.semver`` of an
OCIRepository parses tags with ``semver.NewVersion``, which needs a leading digit
or ``v``), nor inside the Flux Operator's ``^app-`` tag filter. The
``<tag>.lease`` form of earlier runs *is* semver for a pre-release
(``1.0.3-mr.42.3.lease``, the pre-release ``mr.42.3.lease``): it is recognised
and never read as a version either.

**The pre-release scheme** (docs/plan.md, "Versions"): a config holds a release
version ``MAJOR.MINOR.PATCH`` (build metadata allowed); a merge request pipeline
publishes ``<version>-mr.<iid>.<pipeline iid>`` (:func:`merge_request_prerelease`,
:func:`prerelease_version`), which sorts below the release ``<version>`` that
follows it once merged.

**The publishing decision** (:func:`decide`, for charts and Flux artifacts;
:func:`decide_image` for image tags): absent -> push; present with the same
digest -> unchanged; present with another digest -> refused; lower than the
highest published version -> refused (Flux deploys only a newer version).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

import semver

from .errors import UserError

#: Prefix of a lease tag: ``lease-<version tag>``.
LEASE_PREFIX = "lease-"
#: Suffix of the lease tags earlier runs wrote (``<version tag>.lease``); never a version either.
LEGACY_LEASE_SUFFIX = ".lease"
#: Longest OCI tag (OCI distribution spec: ``[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}``).
MAX_TAG = 128
#: The pre-release identifier only merge request pipelines write (``1.4.0-mr.42.3``).
MERGE_REQUEST = "mr"
#: Parts :func:`next_version` raises.
PARTS = ("patch", "minor", "major")

Version = semver.Version
_NUMBER = re.compile(r"0|[1-9][0-9]*")


def parse(text: Any) -> Version | None:
    """The semver version ``text`` (a version, or an OCI tag with ``_`` for ``+``); ``None`` when it is not one.

    Strict semver.org syntax: no ``v`` prefix, no missing parts (image tags: :func:`parse_image_tag`).
    """
    if not isinstance(text, str):
        return None
    try:
        return Version.parse(text.replace("_", "+"))
    except ValueError:
        return None


def is_valid(text: Any) -> bool:
    """``text`` is a semver version string (semver.org)."""
    return isinstance(text, str) and Version.is_valid(text)


def parse_image_tag(value: Any) -> Version | None:
    """An image tag as a version, a leading ``v``/``V`` allowed (``v1.2.3``); ``None`` when it is not one."""
    text = str(value)
    return parse(text[1:] if text[:1] in ("v", "V") else text)


def tag(version: str) -> str:
    """The OCI tag of ``version``: ``+`` is not allowed in tags, so it becomes ``_`` (Helm's rule)."""
    return version.replace("+", "_")


def lease_tag(version: str) -> str:
    """``lease-<tag>``: the publish lease of ``version`` (a version or a version tag).

    Raises:
        UserError: the lease tag would pass the 128 characters of an OCI tag.
    """
    name = LEASE_PREFIX + tag(version)
    if len(name) > MAX_TAG:
        raise UserError(f"version {version!r}: its lease tag would have {len(name)} characters, more than an OCI "
                        f"tag's {MAX_TAG}: use a shorter version")
    return name


def is_lease_tag(name: str) -> bool:
    """``name`` is a lease tag, of this layout or of earlier runs (``<tag>.lease``)."""
    return name.startswith(LEASE_PREFIX) or name.endswith(LEGACY_LEASE_SUFFIX)


def version_of_tag(name: str) -> Version | None:
    """The version tag ``name`` carries; ``None`` for a lease tag or any tag that is not a version."""
    return None if is_lease_tag(name) else parse(name)


def versions_of(tags: Iterable[str]) -> list[Version]:
    """The versions among ``tags`` (:func:`version_of_tag`), in the given order."""
    return [v for v in (version_of_tag(t) for t in tags) if v is not None]


def highest(tags: Iterable[str]) -> Version | None:
    """The highest version among ``tags`` by semver precedence, ``None`` when none is one."""
    found = versions_of(tags)
    return max(found) if found else None


def newer(candidate: str, than: str) -> bool:
    """``candidate`` has higher precedence than ``than`` (both versions; ``False`` when either is not)."""
    a, b = parse(candidate), parse(than)
    return a is not None and b is not None and a > b


def next_version(version: str, part: str) -> str:
    """The next version after ``version`` for ``part`` (``semver.Version.next_version``): always greater.

    Raises:
        ValueError: ``version`` is not semver or ``part`` is not one of :data:`PARTS`.
    """
    if part not in PARTS:
        raise ValueError(part)
    return str(Version.parse(version).next_version(part))


# --------------------------------------------------------------------------- the pre-release scheme


def scheme_problem(version: str, shown: str) -> str | None:
    """Why the config version ``version`` (of file ``shown``) breaks the scheme (module doc), or ``None``."""
    parsed = parse(version) if isinstance(version, str) and "_" not in version else None
    if parsed is None:
        return f"{shown}: chart_version {version!r} is not a semantic version"
    if parsed.prerelease:
        return (f"{shown}: chart_version {version}: a config holds a release version MAJOR.MINOR.PATCH; "
                f"pre-release versions (-{parsed.prerelease}) are published only by merge request pipelines")
    return None


def merge_request_prerelease(merge_request: str, pipeline_iid: str) -> str | None:
    """``mr.<merge request iid>.<pipeline iid>``; ``None`` unless both are numbers (ASCII digits, no leading zero)."""
    if not (_NUMBER.fullmatch(merge_request) and _NUMBER.fullmatch(pipeline_iid)):
        return None
    return f"{MERGE_REQUEST}.{merge_request}.{pipeline_iid}"


def prerelease_version(shown: str, version: str, prerelease: str) -> str:
    """``<version>-<prerelease>`` (build metadata dropped), checked by semver rules (semver.org, item 9).

    Raises:
        UserError: ``version`` breaks the scheme (:func:`scheme_problem`), or ``prerelease``
            is not dot-separated ``[0-9A-Za-z-]`` identifiers (numeric ones without leading zeros).
    """
    problem = scheme_problem(version, shown)
    if problem:
        raise UserError(problem)
    combined = f"{version.split('+')[0]}-{prerelease}"
    if "+" in prerelease or "_" in prerelease or parse(combined) is None:
        raise UserError(f"--prerelease {prerelease!r}: expected dot-separated identifiers of [0-9A-Za-z-], "
                        "e.g. mr.42.3")
    return combined


# --------------------------------------------------------------------------- the publishing decision


def decide(
    *,
    config: str,
    name: str,
    version: str,
    digest: str,
    published_versions: Iterable[str],
    published_digest: str | None,
) -> Literal["push", "unchanged"]:
    """The publishing decision (module doc) for ``name`` ``version`` with content ``digest``.

    Args:
        config: the cookiecutter-config.yaml the version comes from (named in errors).
        name: the chart or artifact, as errors name it.
        published_versions: tags already in the target; tags that are not versions
            (:func:`version_of_tag`: lease tags, ``latest``, ...) are ignored.
        published_digest: the content digest ``version`` holds in the target, ``None`` if absent.

    Returns:
        ``"unchanged"`` or ``"push"``.

    Raises:
        UserError: content changed without a bump, a version lower than the highest,
            or ``version`` is not semver.
    """
    if published_digest is not None:
        if published_digest == digest:
            return "unchanged"
        raise UserError(
            f"{config}: chart_version: {name} {version} is already published with other content "
            f"({published_digest}, now {digest}); a published version never changes: bump chart_version"
        )
    mine = parse(version)
    if mine is None:
        raise UserError(f"{config}: chart_version: {version!r} is not a semantic version (semver.org)")
    top = highest(published_versions)
    if top is not None and mine < top:
        raise UserError(
            f"{config}: chart_version: {name} {version} is lower than the highest published version "
            f"{top}; Flux deploys only a newer version: set chart_version above {top}"
        )
    return "push"


def decide_image(reference: str, digest: str, published: str | None) -> Literal["push", "unchanged"]:
    """The rule of an image tag: absent -> ``push``; same digest -> ``unchanged``; else refused.

    Args:
        reference: ``repository:tag``; ``digest``: the manifest digest about to be pushed;
        published: the digest the registry holds under the tag (``None``: absent).

    Raises:
        UserError: the tag holds other content.
    """
    if published is None:
        return "push"
    if published == digest:
        return "unchanged"
    raise UserError(
        f"{reference} is already published with other content ({published}, now {digest}); an image tag "
        f"never changes once published (a chart naming it would deploy something else): publish under a new "
        f"tag, e.g. the commit SHA, then bump image_tag"
    )
