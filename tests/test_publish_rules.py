"""The publishing decision as a table (versions.decide), and the report of a release that fails half-way."""

from __future__ import annotations

import pytest
import semver

from faas_deployment.cli import main
from faas_deployment.core.errors import UserError
from faas_deployment.core.versions import decide
from support.repo_tree import config_file, copy_repo, get_scalar, set_scalar

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


@pytest.mark.parametrize(("version", "published_versions", "published_digest", "expected"), [
    # tag absent -> push
    ("1.0.0", [], None, "push"),
    ("1.0.0", ["0.9.0", "0.1.0"], None, "push"),
    ("1.0.0", ["0.9.0", "latest", "1.0.0.lease", "sha256-x"], None, "push"),  # non-semver tags ignored
    ("1.0.0-rc.1", ["0.9.0"], None, "push"),
    ("1.0.0+build.2", ["1.0.0+build.1"], None, "push"),  # build metadata: same precedence, not lower
    # same digest -> unchanged, whatever else is published
    ("1.0.0", ["1.0.0"], DIGEST_A, "unchanged"),
    ("1.0.0", ["1.0.0", "2.0.0"], DIGEST_A, "unchanged"),
])
def test_the_publishing_decision(version, published_versions, published_digest, expected):
    assert decide(config="c.yaml", name="faas-x", version=version, digest=DIGEST_A,
                  published_versions=published_versions, published_digest=published_digest) == expected


@pytest.mark.parametrize(
    ("version", "published_versions", "published_digest", "message"),
    [
        # other digest -> refused
        (
            "1.0.0",
            ["1.0.0"],
            DIGEST_B,
            "c.yaml: chart_version: faas-x 1.0.0 is already published with other content "
            f"({DIGEST_B}, now {DIGEST_A}); a published version never changes: bump chart_version",
        ),
        # lower than the highest published -> refused
        (
            "1.0.0",
            ["1.1.0"],
            None,
            "c.yaml: chart_version: faas-x 1.0.0 is lower than the highest published version "
            "1.1.0; Flux deploys only a newer version: set chart_version above 1.1.0",
        ),
        ("1.0.0", ["0.1.0", "1.0.1-rc.1"], None, "lower than the highest published version 1.0.1-rc.1"),
        ("1.0.0-rc.1", ["1.0.0"], None, "lower than the highest published version 1.0.0"),
    ],
)
def test_the_publishing_decision_refusals(version, published_versions, published_digest, message):
    with pytest.raises(UserError) as caught:
        decide(config="c.yaml", name="faas-x", version=version, digest=DIGEST_A,
               published_versions=published_versions, published_digest=published_digest)
    assert message in str(caught.value)


def test_a_release_failing_half_way_names_what_was_published_before_the_failure(tmp_path, capsys):
    source = copy_repo(tmp_path / "src")
    code = main(["--source", str(source), "release", "--env", "dev"])
    out, err = capsys.readouterr()
    assert code == 0, err
    # The controller changes without a bump (refused); the operator gets a new version (pushed).
    set_scalar(config_file(source, "dev", "controller"), "chart_description", "other content, same version")
    operator = config_file(source, "dev", "operator")
    set_scalar(operator, "chart_version", str(semver.Version.parse(get_scalar(operator, "chart_version")).bump_patch()))
    code = main(["--source", str(source), "release", "--env", "dev"])
    out, err = capsys.readouterr()
    assert code == 1 and out == "", out
    assert "Traceback" not in err, err
    message = err.split("faas-deploy: error: ", 1)[1]
    refused, published = message.split("\npublished before the failure:\n")
    assert "env/dev/controller/cookiecutter-config.yaml: chart_version:" in refused and "already published" in refused
    new_version = get_scalar(operator, "chart_version")
    package = source / "dist" / "charts" / "dev" / f"{get_scalar(operator, 'chart_name')}-{new_version}.tgz"
    assert published.splitlines() == [
        f"pushed {package}@{'sha256:' + __import__('hashlib').sha256(package.read_bytes()).hexdigest()}"
    ]
