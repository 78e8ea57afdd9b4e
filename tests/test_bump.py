"""Bumping a component's config: image tag set, chart_version raised, nothing else touched."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest
import semver
import yaml

from faas_deployment.charts import bump, config
from faas_deployment.core import layout
from faas_deployment.core.errors import UserError, ValidationError

REPO_ROOT = Path(__file__).resolve().parent.parent


def real_configs() -> list[tuple[str, str]]:
    found = layout.discover(REPO_ROOT)
    assert found, "no env/*/*/cookiecutter-config.yaml in the repository"
    return found


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A copy of the repository's env/ tree."""
    shutil.copytree(REPO_ROOT / "env", tmp_path / "env")
    return tmp_path


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    """(old line, new line) pairs of a line diff; fails if lines were added or removed."""
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    pairs = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        assert op == "replace" and i2 - i1 == j2 - j1, (op, old[i1:i2], new[j1:j2])
        pairs += list(zip(old[i1:i2], new[j1:j2], strict=True))
    return pairs


@pytest.mark.parametrize(("env", "component"), real_configs())
def test_real_configs_round_trip_with_only_two_values_changed(source, env, component):
    path = layout.config_path(source, env, component)
    before = path.read_text()
    old = yaml.safe_load(before)["default_context"]
    result = bump.bump_config(source, env, component, image_tag="3f2c9e1ab", part="patch")
    after = path.read_text()
    assert result.text == after
    expected_version = str(semver.Version.parse(old["chart_version"]).next_version("patch"))
    assert result.new_version == expected_version and result.old_version == old["chart_version"]
    assert result.old_tag == old["image_tag"] and result.new_tag == "3f2c9e1ab"
    assert sorted(changed_lines(before, after)) == sorted([
        (f'  chart_version: "{old["chart_version"]}"\n', f'  chart_version: "{expected_version}"\n'),
        (f'  image_tag: "{old["image_tag"]}"\n', '  image_tag: "3f2c9e1ab"\n'),
    ])
    context = config.load_context(source, env, component)
    assert context["chart_version"] == expected_version and context["image_tag"] == "3f2c9e1ab"
    assert result.line == (
        f"bumped env/{env}/{component}/cookiecutter-config.yaml: chart_version {old['chart_version']} -> "
        f"{expected_version}, image_tag {old['image_tag']} -> 3f2c9e1ab"
    )
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".bump-")) == []


STYLED = """\
# A config written by hand: comments, mixed quoting, a flow mapping.
default_context:   # the values
  chart_name: faas-controller
  chart_version: 1.0.3    # bump me
  image_repository: 'registry.example.org/eo4eu-faas/faas-controller'
  image_tag: 'abc1234'  # set by CI
  environment_variables: {LOG_LEVEL: "debug",   B: 'x'}
  replica_count: 2
# trailing comment
"""


def test_comments_order_and_quoting_survive(tmp_path):
    result = bump.bump_text(STYLED, image_tag="def5678", part="minor", shown="x.yaml")
    assert changed_lines(STYLED, result.text) == [
        ("  chart_version: 1.0.3    # bump me\n", "  chart_version: 1.1.0    # bump me\n"),
        ("  image_tag: 'abc1234'  # set by CI\n", "  image_tag: 'def5678'  # set by CI\n"),
    ]


@pytest.mark.parametrize(
    ("tag", "written"),
    [("latest", "latest"), ("0123456", '"0123456"'), ("1234567", '"1234567"'), ("1e10", '"1e10"'),
     ("true", '"true"'), ("no", '"no"'), ("1.5", '"1.5"'), ("1_000", '"1_000"'), ("v1.2.3", "v1.2.3")],
)
def test_a_plain_tag_is_quoted_when_it_would_not_read_back_as_text(tag, written):
    text = "default_context:\n  chart_version: 1.0.0\n  image_tag: latest\n"
    result = bump.bump_text(text, image_tag=tag)
    assert f"  image_tag: {written}\n" in result.text
    assert yaml.safe_load(result.text)["default_context"]["image_tag"] == tag


def test_missing_image_tag_is_added_after_the_repository(source):
    path = layout.config_path(source, "dev", "controller")
    lines = path.read_text().splitlines(keepends=True)
    without = [line for line in lines if not line.startswith("  image_tag:")]
    assert len(without) == len(lines) - 1
    path.write_text("".join(without))
    result = bump.bump_config(source, "dev", "controller", image_tag="abc")
    assert result.old_tag is None and "image_tag (unset) -> abc" in result.line
    new_lines = path.read_text().splitlines()
    repo_at = next(i for i, line in enumerate(new_lines) if line.startswith("  image_repository:"))
    assert new_lines[repo_at + 1] == '  image_tag: "abc"'
    assert config.load_context(source, "dev", "controller")["image_tag"] == "abc"


@pytest.mark.parametrize(
    ("version", "part", "expected"),
    [
        ("1.0.3", "patch", "1.0.4"), ("1.0.3", "minor", "1.1.0"), ("1.0.3", "major", "2.0.0"),
        ("0.9.9", "major", "1.0.0"), ("0.0.0", "patch", "0.0.1"),
        ("1.2.3+build.7", "patch", "1.2.4"), ("1.2.3+build.7", "minor", "1.3.0"),
        # a pre-release's next version is its release when that is the next of the part
        ("1.0.3-rc.1", "patch", "1.0.3"), ("1.2.0-rc.1", "minor", "1.2.0"), ("1.2.0-rc.1", "patch", "1.2.0"),
        ("2.0.0-rc.1", "major", "2.0.0"), ("1.2.3-rc.1", "minor", "1.3.0"), ("1.2.0-rc.1", "major", "2.0.0"),
    ],
)
def test_part_rules(version, part, expected):
    assert bump.next_chart_version(version, part) == expected
    assert semver.Version.parse(expected) > semver.Version.parse(version)


@pytest.mark.parametrize("version", ["1.0", "v1.0.3", "01.0.3", "1.0.3.4", "", "latest"])
def test_invalid_versions_are_refused_naming_file_and_key(version):
    text = f'default_context:\n  chart_version: "{version}"\n  image_tag: x\n'
    with pytest.raises(UserError, match=r"^cfg\.yaml: default_context\.chart_version: .* is not a semantic version"):
        bump.bump_text(text, image_tag="abc", shown="cfg.yaml")


def test_a_number_as_version_is_refused():
    with pytest.raises(UserError, match=r"default_context\.chart_version: '1\.0' is not a semantic version"):
        bump.bump_text("default_context:\n  chart_version: 1.0\n", image_tag="abc", shown="cfg.yaml")


@pytest.mark.parametrize("tag", ["", "a:b", "-x", "has space", "x" * 129, "sha256:abc"])
def test_invalid_tags_are_refused_and_the_file_is_untouched(source, tag):
    path = layout.config_path(source, "prod", "operator")
    before = path.read_text()
    with pytest.raises(UserError, match=r"^--image-tag: .* is not a valid image tag"):
        bump.bump_config(source, "prod", "operator", image_tag=tag)
    assert path.read_text() == before


def test_invalid_part_is_refused():
    with pytest.raises(UserError, match=r"--part: expected one of patch, minor, major, got 'build'"):
        bump.bump_text("default_context:\n  chart_version: 1.0.0\n", image_tag="a", part="build")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("default_context:\n  chart_name: x\n", r"cfg\.yaml: default_context\.chart_version: missing"),
        ("chart_version: 1.0.0\n", r"cfg\.yaml: no top-level default_context: mapping"),
        ("default_context: [1]\n", r"cfg\.yaml: default_context: expected a mapping"),
        ("- 1\n", r"cfg\.yaml: expected a mapping"),
        ("default_context:\n  chart_version: [1\n", r"cfg\.yaml: invalid YAML at line \d+, column \d+"),
        (
            "default_context:\n  chart_version: |\n    1.0.0\n",
            r"default_context\.chart_version: expected a one-line scalar",
        ),
        (
            "default_context:\n  chart_version: 1.0.0\n  image_tag: {a: 1}\n",
            r"default_context\.image_tag: expected a one-line scalar",
        ),
    ],
)
def test_malformed_configs_are_explained(text, match):
    with pytest.raises(UserError, match=match):
        bump.bump_text(text, image_tag="abc", shown="cfg.yaml")


def test_a_result_that_does_not_validate_leaves_the_file_unchanged(source):
    path = layout.config_path(source, "dev", "operator")
    broken = path.read_text().replace("  replica_count: ", "  replica_cuont: ", 1)
    assert "replica_cuont" in broken
    path.write_text(broken)
    with pytest.raises(ValidationError) as caught:
        bump.bump_config(source, "dev", "operator", image_tag="abc")
    assert "env/dev/operator/cookiecutter-config.yaml: default_context.replica_cuont" in str(caught.value)
    assert path.read_text() == broken
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".bump-")] == []


def test_unknown_component_lists_the_known_ones(source):
    with pytest.raises(
        UserError, match=r"unknown component in environment 'dev': 'worker'; known: controller, operator"
    ):
        bump.bump_config(source, "dev", "worker", image_tag="abc")


def test_cli_bump_edits_in_place_and_reports_errors(source, capsys):
    from faas_deployment.cli import main

    path = layout.config_path(source, "prod", "controller")
    before = path.read_text()
    old = yaml.safe_load(before)["default_context"]
    assert main(["--source", str(source), "bump", "--env", "prod", "--component", "controller",
                 "--image-tag", "9f8e7d6", "--part", "major"]) == 0
    out, _ = capsys.readouterr()
    new_version = str(semver.Version.parse(old["chart_version"]).next_version("major"))
    assert out == (f"bumped env/prod/controller/cookiecutter-config.yaml: chart_version {old['chart_version']} -> "
                   f"{new_version}, image_tag {old['image_tag']} -> 9f8e7d6\n")
    assert len(changed_lines(before, path.read_text())) == 2

    assert (
        main(["--source", str(source), "bump", "--env", "prod", "--component", "controller", "--image-tag", "a b"]) == 1
    )
    _, err = capsys.readouterr()
    assert err.startswith("faas-deploy: error: --image-tag: 'a b' is not a valid image tag") and "Traceback" not in err
    with pytest.raises(SystemExit) as exited:
        main(["--source", str(source), "bump", "--env", "prod", "--component", "controller", "--image-tag", "x",
              "--part", "build"])
    assert exited.value.code == 2
    assert "invalid choice: 'build'" in capsys.readouterr().err


def test_dagger_bump_signature():
    from support import daggermod

    fn = daggermod.objects()["Component"]["bump"]
    assert fn.return_type == "dagger.File"
    assert {p: (v.type, v.optional, v.default) for p, v in fn.params.items()} == {
        "image_tag": ("str", False, None), "part": ("str", True, "patch"),
    }
    assert fn.doc and all(p.doc for p in fn.params.values())
