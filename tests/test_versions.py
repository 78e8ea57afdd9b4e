"""The version rules as tables (:mod:`faas_deployment.core.versions`): parsing, which tags are versions, the
pre-release scheme, the publishing decision."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faas_deployment.core import versions
from faas_deployment.core.errors import UserError

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


@pytest.mark.parametrize(("tag", "version"), [
    ("1.0.3", "1.0.3"),
    ("1.0.3-mr.42.3", "1.0.3-mr.42.3"),
    ("1.0.3_build.1", "1.0.3+build.1"),          # Helm writes + as _ in a tag
    ("1.0.3-mr.42.3.lease", None),               # the lease tag earlier runs wrote: semver, yet never a version
    ("1.0.3.lease", None),
    ("lease-1.0.3-mr.42.3", None),               # the lease tag
    ("lease-1.0.3", None),
    ("latest", None),
    ("sha256-" + "a" * 64 + ".sig", None),       # a signature
    ("app-operator", None),
    ("v1.0.3", None),                            # strict semver.org
    ("1.0", None),
    ("01.0.3", None),
    ("", None),
])
def test_which_tags_are_versions(tag, version):
    parsed = versions.version_of_tag(tag)
    assert (str(parsed) if parsed is not None else None) == version


def test_a_lease_tag_is_never_a_version_and_never_semver_for_helm_or_flux():
    for version in ("1.0.3", "1.0.3-mr.42.3", "1.0.3+build.7", "2.0.0-rc.1"):
        tag = versions.lease_tag(version)
        assert versions.is_lease_tag(tag)
        assert versions.version_of_tag(tag) is None
        assert versions.parse(tag) is None          # no parser reads it: it starts with a letter
        assert not tag.startswith("app-")           # outside the Flux Operator's ^app- filter
    assert versions.lease_tag("1.0.3+b") == "lease-1.0.3_b"
    with pytest.raises(UserError, match="128"):
        versions.lease_tag("1.0.0-" + "x" * 120)


@pytest.mark.parametrize(("tags", "highest"), [
    ([], None),
    (["latest", "lease-1.0.3"], None),
    (["1.0.3-mr.42.3", "1.0.3-mr.42.3.lease", "lease-1.0.3-mr.42.3"], "1.0.3-mr.42.3"),
    (["1.0.2", "1.0.3-mr.42.3", "1.0.3"], "1.0.3"),
    (["1.0.3-mr.42.3", "1.0.3-mr.42.10"], "1.0.3-mr.42.10"),  # numeric identifiers compare as numbers
])
def test_the_highest_version_ignores_tags_that_are_not_versions(tags, highest):
    found = versions.highest(tags)
    assert (str(found) if found is not None else None) == highest


@pytest.mark.parametrize(("version", "published_versions", "published_digest", "expected"), [
    ("1.0.3-mr.42.3", ["1.0.3-mr.42.3.lease"], None, "push"),          # a legacy lease tag is no version
    ("1.0.3-mr.42.3", ["lease-1.0.3-mr.42.3", "1.0.2"], None, "push"),
    ("1.0.3", ["1.0.3-mr.42.3", "1.0.3-mr.42.4", "lease-1.0.3"], None, "push"),  # a release after pre-releases
    ("1.0.3-mr.42.3", ["1.0.3-mr.42.3"], DIGEST_A, "unchanged"),
    ("1.0.3-mr.43.1", ["1.0.3"], None, "refused"),                     # lower than the release
    ("1.0.3-mr.42.3", ["1.0.3-mr.42.3"], DIGEST_B, "refused"),         # other content
    ("1.0.2", ["1.0.3", "latest"], None, "refused"),
])
def test_the_decision(version, published_versions, published_digest, expected):
    def run() -> str:
        return versions.decide(config="c.yaml", name="faas-x", version=version, digest=DIGEST_A,
                               published_versions=published_versions, published_digest=published_digest)
    if expected == "refused":
        with pytest.raises(UserError) as caught:
            run()
        assert "lease" not in str(caught.value)
    else:
        assert run() == expected


@pytest.mark.parametrize(("version", "problem"), [
    ("1.0.3", None),
    ("1.0.3+build.1", None),
    ("1.0.3-mr.42.3", "pre-release"),
    ("1.0.3-rc.1", "pre-release"),
    ("1.0.3_build", "not a semantic version"),
    ("v1.0.3", "not a semantic version"),
])
def test_the_scheme_of_a_config_version(version, problem):
    found = versions.scheme_problem(version, "c.yaml")
    assert (found is None) if problem is None else (problem in found)


@pytest.mark.parametrize(("iid", "pipeline", "expected"), [
    ("42", "3", "mr.42.3"),
    ("0", "1", "mr.0.1"),
    ("042", "3", None),        # a leading zero is no semver number
    ("4²", "3", None),         # Unicode digits are not ASCII digits
    ("42", "", None),
    ("", "3", None),
    ("42 ", "3", None),
])
def test_the_merge_request_prerelease(iid, pipeline, expected):
    assert versions.merge_request_prerelease(iid, pipeline) == expected


@pytest.mark.parametrize(("version", "prerelease", "expected"), [
    ("1.0.3", "mr.42.3", "1.0.3-mr.42.3"),
    ("1.0.3+build.1", "mr.42.3", "1.0.3-mr.42.3"),
    ("1.0.3", "mr..3", "--prerelease"),
    ("1.0.3", "mr.42+x", "--prerelease"),
    ("1.0.3", "mr.42_x", "--prerelease"),
    ("1.0.3-rc.1", "mr.42.3", "pre-release"),
])
def test_the_prerelease_version(version, prerelease, expected):
    if expected.startswith("1."):
        assert versions.prerelease_version("c.yaml", version, prerelease) == expected
        assert versions.parse(expected) < versions.parse(version.split("+")[0])  # the release sorts above it
    else:
        with pytest.raises(UserError, match=expected):
            versions.prerelease_version("c.yaml", version, prerelease)


@pytest.mark.parametrize(("published", "expected"), [
    (None, "push"), (DIGEST_A, "unchanged"), (DIGEST_B, "refused"),
])
def test_the_image_tag_decision(published, expected):
    if expected == "refused":
        with pytest.raises(UserError, match="already published with other content"):
            versions.decide_image("r.example.org/x:1", DIGEST_A, published)
    else:
        assert versions.decide_image("r.example.org/x:1", DIGEST_A, published) == expected


@pytest.mark.parametrize(("tag", "version"), [("v1.2.3", "1.2.3"), ("1.2.3", "1.2.3"), ("abc1234", None), (None, None)])
def test_image_tags_may_carry_a_v(tag, version):
    parsed = versions.parse_image_tag(tag)
    assert (str(parsed) if parsed is not None else None) == version


def test_newer_and_next():
    assert versions.newer("1.0.4+abcdef012345", "1.0.3+abcdef012345")
    assert not versions.newer("1.0.3-mr.1.1", "1.0.3")
    assert not versions.newer("garbage", "1.0.3")
    assert versions.next_version("1.0.3-rc.1", "patch") == "1.0.3"
    with pytest.raises(ValueError):
        versions.next_version("1.0.3", "build")


_VERSION = st.builds(
    lambda major, minor, patch, pre, build: f"{major}.{minor}.{patch}" + (f"-{pre}" if pre else "")
    + (f"+{build}" if build else ""),
    st.integers(0, 999), st.integers(0, 999), st.integers(0, 999),
    st.sampled_from(["", "rc.1", "mr.42.3", "alpha", "0.3.7", "x-y.1"]),
    st.sampled_from(["", "build.1", "sha.abcdef", "001"]),
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.text(max_size=20), st.text(max_size=20))
def test_any_text_is_a_version_or_not_never_a_crash(text, iid, pipeline):
    versions.version_of_tag(text)
    versions.parse_image_tag(text)
    versions.scheme_problem(text, "c.yaml")
    assert versions.merge_request_prerelease(iid, pipeline) in (None, f"mr.{iid}.{pipeline}")
    try:
        versions.prerelease_version("c.yaml", "1.0.0", text)
    except UserError:
        pass


@settings(max_examples=300, deadline=None)
@given(_VERSION)
def test_no_lease_tag_is_ever_a_version(version):
    tag = versions.lease_tag(version)
    assert versions.version_of_tag(tag) is None and versions.parse(tag) is None
    assert versions.version_of_tag(versions.tag(version)) == versions.parse(version)
    assert versions.highest([tag, versions.tag(version) + ".lease"]) is None
