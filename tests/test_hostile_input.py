"""One reproducer per class of hostile input: a clean exit 1 naming the file, fast, no traceback."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

from support.fuzzing import CONFIG, DYNAMIC, run


def _refused(repo_copy: Path, *args: str, names: str = CONFIG) -> str:
    outcome = run("--source", str(repo_copy), *args)
    assert outcome.code == 1, outcome
    assert "Traceback" not in outcome.err and names in outcome.err
    return outcome.err


def _config(repo_copy: Path, text: str) -> None:
    (repo_copy / CONFIG).write_text(text, encoding="utf-8")


def _set(repo_copy: Path, **values: object) -> None:
    data = yaml.safe_load((repo_copy / CONFIG).read_text())
    data["default_context"].update(values)
    (repo_copy / CONFIG).write_text(yaml.safe_dump(data, allow_unicode=True))


VERB = ("config", "--env", "dev", "--component", "operator")
BUMP = ("bump", "--env", "dev", "--component", "operator", "--image-tag", "abc")

# -- configs ----------------------------------------------------------------------


@pytest.mark.parametrize("char", ["\x07", "\x1b", "\x00", "\x7f", "\ufffe", "\x85"[:0] + "\x08"])
def test_a_control_character_even_in_a_comment(repo_copy: Path, char: str) -> None:
    _config(repo_copy, (repo_copy / CONFIG).read_text() + f"# comment {char} here\n")
    assert "YAML error" in _refused(repo_copy, *VERB)
    assert "YAML error" in _refused(repo_copy, *BUMP)


def test_600_levels_of_nesting(repo_copy: Path) -> None:
    _config(repo_copy, "default_context:\n  chart_description: " + "[" * 600 + "]" * 600 + "\n")
    assert "nested more than" in _refused(repo_copy, *VERB)


def test_billion_laughs_is_fast_and_small(repo_copy: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"{c}: &{c} [" + ",".join([f"*{p}"] * 9) + "]" for p, c in zip("abcdefghi", "bcdefghij", strict=True)]
    _config(repo_copy, "default_context:\n" + "".join(f"  {line}\n" for line in lines) + "  chart_name: *j\n")
    started = time.monotonic()
    assert "aliases" in _refused(repo_copy, *VERB)
    assert time.monotonic() - started < 2


def test_a_wide_alias_value_is_shown_short(repo_copy: Path) -> None:
    # within the alias bound but still large: the problem shows a bounded excerpt
    _config(repo_copy, "default_context:\n  a: &a [" + ",".join(["lol"] * 300) + "]\n  chart_name: [*a, *a, *a]\n")
    err = _refused(repo_copy, *VERB)
    assert "..." in err and len(err) < 5000


_IDENTITY = '  chart_version: "1.0.0"\n  image_repository: "registry.example.org/a"\n  image_tag: "1"\n'


@pytest.mark.parametrize("text", ["default_context:\n  chart_name: a\n  chart_name: b\n" + _IDENTITY,
                                  "default_context:\n  chart_name: !custom a\n" + _IDENTITY])
def test_bump_refuses_what_check_refuses_with_the_same_message(repo_copy: Path, text: str) -> None:
    _config(repo_copy, text)
    from_check = _refused(repo_copy, *VERB)
    from_bump = _refused(repo_copy, *BUMP)
    problems = [line for line in from_check.splitlines() if line.startswith("  - ")]
    assert problems and problems == [line for line in from_bump.splitlines() if line.startswith("  - ")]
    assert (repo_copy / CONFIG).read_text() == text


# -- dynamic/ -----------------------------------------------------------------------

MANIFESTS = ("manifests", "--env", "dev", "--out")


def _manifests_refused(repo_copy: Path, tmp_path: Path, *, names: str = DYNAMIC) -> str:
    out = tmp_path / "dev.zip"
    err = _refused(repo_copy, *MANIFESTS, str(out), names=names)
    assert not out.exists()
    return err


def test_a_symlink_loop(repo_copy: Path, tmp_path: Path) -> None:
    (repo_copy / DYNAMIC / "loop").symlink_to("loop")
    assert "symbolic link" in _manifests_refused(repo_copy, tmp_path)


def test_30000_levels_of_nesting_in_a_manifest(repo_copy: Path, tmp_path: Path) -> None:
    (repo_copy / DYNAMIC / "deep.yaml").write_text("apiVersion: v1\nkind: X\ndata: " + "[" * 30000 + "]" * 30000)
    assert "nested more than" in _manifests_refused(repo_copy, tmp_path)


def test_990_nested_directories(repo_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    top = repo_copy / DYNAMIC
    monkeypatch.chdir(top)
    for _ in range(990):  # relative steps: the whole path is longer than PATH_MAX
        os.mkdir("d")
        os.chdir("d")
    Path("m.yaml").write_text("apiVersion: v1\nkind: ConfigMap\n")
    try:
        monkeypatch.chdir(tmp_path)
        assert "directories deep" in _manifests_refused(repo_copy, tmp_path)
    finally:  # removed bottom-up here: a recursive rmtree would exceed Python's recursion limit
        os.chdir(top)
        for _ in range(990):
            os.chdir("d")
        os.unlink("m.yaml")
        for _ in range(990):
            os.chdir("..")
            os.rmdir("d")
        monkeypatch.chdir(tmp_path)


def test_an_unreadable_file(repo_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # root reads any file, so the refusal of the kernel is simulated at the one call that opens it
    real = os.open

    def refuse(path: str | Path, flags: int, *args: int, **kwargs: int) -> int:
        if Path(path).name == "service.yaml":
            raise PermissionError(13, "Permission denied")
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    assert "cannot be read: Permission denied" in _manifests_refused(repo_copy, tmp_path)


@pytest.mark.parametrize("linked", ["env/dev/operator/dynamic", "env/dev/operator"])
def test_a_link_to_outside_the_repository_is_refused(repo_copy: Path, tmp_path: Path, linked: str) -> None:
    outside = tmp_path / "outside"
    (repo_copy / linked).rename(outside)
    (repo_copy / linked).symlink_to(outside)
    err = _manifests_refused(repo_copy, tmp_path, names=linked)
    assert "symbolic link" in err


def test_duplicate_keys_in_a_manifest(repo_copy: Path, tmp_path: Path) -> None:
    (repo_copy / DYNAMIC / "dup.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n")
    assert "duplicate key 'name'" in _manifests_refused(repo_copy, tmp_path)


# -- output ---------------------------------------------------------------------------


def test_an_unknown_key_with_a_terminal_escape_is_escaped(repo_copy: Path) -> None:
    _set(repo_copy, **{"\x1b[31mred\x1b[0m": "x", "chart_description": "ok"})
    err = _refused(repo_copy, *VERB)
    assert "\x1b" not in err and "\\x1b[31mred" in err


@pytest.mark.parametrize("description,expected", [("ship it \U0001f680", "Basic Multilingual Plane"),
                                                  ("x" * (5 * 1024 * 1024), "at most 1024 characters"),
                                                  (42, "as a string"), (["a"], "as a string"),
                                                  ("two\nlines", "printable text on one line")])
def test_chart_description_is_refused_clearly(
    repo_copy: Path, tmp_path: Path, description: object, expected: str
) -> None:
    _set(repo_copy, chart_description=description)
    err = _refused(repo_copy, "package", "--env", "dev", "--component", "operator", "--out", str(tmp_path / "o"))
    assert expected in err and "default_context.chart_description" in err
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


def test_image_repository_length_limit(repo_copy: Path) -> None:
    _set(repo_copy, image_repository="registry.example.org/" + "a" * 240)
    assert "default_context.image_repository" in _refused(repo_copy, *VERB)
    _set(repo_copy, image_repository="registry.example.org/" + "a" * 200)
    assert run("--source", str(repo_copy), *VERB).code == 0


def test_non_utf8_config(repo_copy: Path) -> None:
    (repo_copy / CONFIG).write_bytes(b"default_context:\n  chart_name: \xff\xfe\n")
    assert "UTF-8" in _refused(repo_copy, *VERB)
    assert os.path.exists(repo_copy / CONFIG)
