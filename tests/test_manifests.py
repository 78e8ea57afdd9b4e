"""Validation and reproducible bundling of ``env/<env>/operator/dynamic/`` (``bundle/templates.py``,
``bundle/walk.py``, ``bundle/archive.py``, ``docs/admin-api.md``)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from faas_deployment import cli
from faas_deployment.bundle import archive, templates, walk
from faas_deployment.core.errors import UserError, ValidationError

REPO = Path(__file__).resolve().parent.parent

CONFIGMAP = """apiVersion: v1
kind: ConfigMap
metadata:
  name: fn-{{ .FunctionName }}
data:
  PORT: "{{ .Port }}"
"""

DEPLOYMENT = """# a Go template with control lines
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .FunctionName }}-fn
  labels: {app: "{{ .FunctionName }}"}
spec:
  replicas: {{ .Replicas }}
  template:
    spec:
      containers:
        - name: fn
          env:
            {{- range $k, $v := .Env }}
            - name: {{ $k }}
              value: "{{ $v | printf "%s" }}"
            {{- end }}
            {{/* a template comment */}}
"""


def tree(root: Path, files: dict[str, bytes | str]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def problems_by_path(exc: ValidationError) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for problem in exc.problems:
        found.setdefault(problem.path, []).append(str(problem))
    return found


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_repository_templates_are_valid(env):
    files = templates.validate_dynamic(REPO / "env" / env / "operator" / "dynamic", log=None)
    names = [str(f) for f in files]
    assert names == sorted(names)
    assert {"deployment.yaml", "service.yaml", "hpa.yaml", "configmap.yaml"} <= set(names)


def test_go_template_actions_are_neutralised_keeping_line_numbers(tmp_path):
    d = tree(tmp_path / "dynamic", {"configmap.yaml": CONFIGMAP, "deployment.yaml": DEPLOYMENT})
    assert [str(f) for f in templates.validate_dynamic(d, log=None)] == ["configmap.yaml", "deployment.yaml"]
    text, unbalanced = templates.neutralise_placeholders(DEPLOYMENT)
    assert not unbalanced
    assert text.count("\n") == DEPLOYMENT.count("\n")
    assert "{{" not in text and "replicas: PLACEHOLDER" in text

    # an error after control lines is reported at the file's own line number
    broken = DEPLOYMENT.replace("  template:\n", "  template:\n   bad: [\n", 1)
    tree(d, {"deployment.yaml": broken})
    with pytest.raises(ValidationError) as caught:
        templates.validate_dynamic(d, log=None)
    [problem] = caught.value.problems
    assert problem.path == f"{d}/deployment.yaml"
    assert problem.key.startswith("line 1") and "invalid YAML" in problem.message


def test_every_problem_is_named_by_path_and_hidden_files_are_left_out(tmp_path):
    d = tree(
        tmp_path / "dynamic",
        {
            "ok.yaml": CONFIGMAP,
            "notes.txt": "not a manifest",
            "binary.yaml": b"apiVersion: v1\x00\x01",
            "latin1.yml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: caf\xe9}\n".encode("latin-1"),
            "bad-syntax.yaml": "apiVersion: v1\nkind: [ConfigMap\n",
            "no-kind.yaml": "apiVersion: v1\nmetadata: {name: x}\n",
            "list.json": '["not", "an", "object"]',
            "empty.yaml": "---\n",
            "unclosed.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .FunctionName\n",
            "sub/nested-bad.yaml": "kind: Service\n",
            ".hidden.yaml": "whatever: [",
            ".git/config": "[core]",
            "deployment.yaml~": "backup",
            "#service.yaml#": "autosave",
            "hpa.yaml.swp": b"\x00swap",
            "configmap.yaml.orig": "x",
        },
    )
    (d / "outside-link.yaml").symlink_to(tmp_path / "elsewhere.yaml")
    (tmp_path / "elsewhere.yaml").write_text(CONFIGMAP)
    (d / "inside-link.yaml").symlink_to(d / "ok.yaml")
    (d / "linked-dir").symlink_to(tmp_path, target_is_directory=True)
    tree(d, {"back\\slash.yaml": CONFIGMAP})
    notes: list[str] = []
    out = tmp_path / "out" / "bundle.zip"

    with pytest.raises(ValidationError) as caught:
        archive.write_bundle(d, out, log=notes.append)

    found = problems_by_path(caught.value)
    expected = {
        "notes.txt": "not a manifest",
        "binary.yaml": "binary file",
        "latin1.yml": "not UTF-8",
        "bad-syntax.yaml": "invalid YAML",
        "no-kind.yaml": "missing kind",
        "list.json": "got a list",
        "empty.yaml": "holds no YAML document",
        "unclosed.yaml": "not closed",
        "sub/nested-bad.yaml": "missing apiVersion",
        "outside-link.yaml": "outside dynamic/",
        "inside-link.yaml": "symbolic link",
        "linked-dir": "symbolic link",
        "back\\slash.yaml": "backslash",
    }
    for name, fragment in expected.items():
        messages = found.get(f"{d}/{name}")
        assert messages, f"no problem reported for {name}: {found}"
        assert any(fragment in m for m in messages), (name, messages)
    assert set(found) == {f"{d}/{name}" for name in expected}  # ok.yaml and left-out files are not problems
    assert "line 3, column 1" in found[f"{d}/bad-syntax.yaml"][0]
    assert "line 1" in found[f"{d}/latin1.yml"][0] or "line 3" in found[f"{d}/latin1.yml"][0]
    left_out = "\n".join(notes)
    for name in (".hidden.yaml", ".git", "deployment.yaml~", "#service.yaml#", "hpa.yaml.swp", "configmap.yaml.orig"):
        assert f"{d}/{name}: left out" in left_out
    assert not out.exists() and not out.parent.exists() or not any(out.parent.iterdir())
    assert "13 problems found" in str(caught.value)


def test_missing_and_empty_directories(tmp_path):
    with pytest.raises(ValidationError, match="directory not found"):
        templates.validate_dynamic(tmp_path / "nope", log=None)
    d = tree(tmp_path / "dynamic", {".only-hidden.yaml": CONFIGMAP, "sub/.keep": ""})
    with pytest.raises(ValidationError) as caught:
        templates.validate_dynamic(d, log=None)
    [problem] = caught.value.problems
    assert problem.path == str(d) and "holds no manifest" in problem.message


def write_same_tree_differently(root: Path, reverse: bool, mode: int, mtime: int) -> Path:
    files = {
        "service.yaml": CONFIGMAP.replace("ConfigMap", "Service"),
        "a/deployment.yaml": DEPLOYMENT,
        "a/b/configmap.yml": CONFIGMAP,
        "hpa.json": '{"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "spec": {"minReplicas": '
        "{{ .MinReplicas }}}}",
        "Z-upper.yaml": CONFIGMAP,
    }
    for name in sorted(files, reverse=reverse):
        tree(root, {name: files[name]})
    for path in root.rglob("*"):
        if path.is_file():
            os.chmod(path, mode)
            os.utime(path, (mtime, mtime))
    return root


def test_bundle_is_reproducible_and_well_formed(tmp_path):
    one = write_same_tree_differently(tmp_path / "one" / "dynamic", reverse=False, mode=0o600, mtime=1_000_000_000)
    two = write_same_tree_differently(tmp_path / "two" / "dynamic", reverse=True, mode=0o755, mtime=1_700_000_000)
    tree(two, {".DS_Store": b"\x00junk", "service.yaml~": "old"})  # left out, so no change to the bytes

    first = archive.write_bundle(one, tmp_path / "first.zip", log=None)
    second = archive.write_bundle(two, tmp_path / "second.zip", log=None)

    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.sha256 == second.sha256 == hashlib.sha256(first.path.read_bytes()).hexdigest()
    assert first.size == first.path.stat().st_size and first.entries == 5
    assert second.left_out and all("left out" in m for m in second.left_out)

    with zipfile.ZipFile(first.path) as zipped:
        assert zipped.testzip() is None
        infos = zipped.infolist()
        names = [i.filename for i in infos]
        assert names == ["Z-upper.yaml", "a/b/configmap.yml", "a/deployment.yaml", "hpa.json", "service.yaml"]
        for info in infos:
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.external_attr >> 16 == 0o100644
            assert info.create_system == 3
            assert info.compress_type == zipfile.ZIP_DEFLATED
            assert zipped.read(info) == (one / info.filename).read_bytes()
        assert zipped.comment == b""

    # the standard tool reads it back, with the fixed permissions
    listing = subprocess.run(["unzip", "-Z", str(first.path)], capture_output=True, text=True)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    assert listing.stdout.count("-rw-r--r--") == 5

    # one changed byte: another digest
    (two / "service.yaml").write_text(CONFIGMAP.replace("ConfigMap", "Service") + "# changed\n")
    third = archive.write_bundle(two, tmp_path / "second.zip", log=None)
    assert third.sha256 != first.sha256


def test_bundle_streams_large_files_and_is_replaced_atomically(tmp_path):
    big = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n  blob: " + "x" * (6 * 1024 * 1024) + "\n"
    d = tree(tmp_path / "dynamic", {"big.yaml": big, "small.yaml": CONFIGMAP})
    out = tmp_path / "bundle.zip"
    out.write_bytes(b"previous")
    bundle = archive.write_bundle(d, out, log=None)
    with zipfile.ZipFile(out) as zipped:
        assert zipped.read("big.yaml") == big.encode()
    assert bundle.size < 100_000  # deflated
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle.zip", "dynamic"]  # no temporary left behind

    tree(d, {"huge.yaml": "a: " + "y" * walk.MAX_FILE_BYTES})
    with pytest.raises(ValidationError, match="huge.yaml: file is .* bytes, more than"):
        archive.write_bundle(d, out, log=None)
    assert out.read_bytes() == bundle.path.read_bytes()  # the previous bundle is untouched


def test_bundle_may_not_be_written_inside_the_directory(tmp_path):
    d = tree(tmp_path / "dynamic", {"configmap.yaml": CONFIGMAP})
    with pytest.raises(UserError, match="cannot be written inside"):
        archive.write_bundle(d, d / "sub" / "bundle.zip", log=None)
    assert not (d / "sub").exists()


def test_check_env_reports_dynamic_problems_and_skips_envs_without_operator(tmp_path):
    source = tmp_path / "repo"
    tree(source, {"env/dev/operator/dynamic/ok.yaml": CONFIGMAP, "env/dev/operator/dynamic/x.txt": "x"})
    tree(source, {"env/qa/controller/cookiecutter-config.yaml": "default_context: {}\n"})
    (source / "env/prod/operator").mkdir(parents=True)
    [problem] = templates.check_env(source, "dev", log=None)
    assert problem.path.endswith("env/dev/operator/dynamic/x.txt")
    assert templates.check_env(source, "qa", log=None) == []
    [missing] = templates.check_env(source, "prod", log=None)
    assert "directory not found" in missing.message and missing.path.endswith("env/prod/operator/dynamic")


def test_cli_manifests_writes_the_bundle_and_reports_its_digest(tmp_path, capsys):
    out = tmp_path / "dev.zip"
    assert cli.main(["--source", str(REPO), "bundle", "--env", "dev", "--out", str(out)]) == 0
    line = capsys.readouterr().out.strip()
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert line == f"bundle {out} sha256:{digest} ({out.stat().st_size} bytes, 4 files)"

    # the same files elsewhere give the same digest
    copy = tmp_path / "copy"
    shutil.copytree(REPO / "env", copy / "env")
    again = tmp_path / "again.zip"
    assert cli.main(["--source", str(copy), "bundle", "--env", "dev", "--out", str(again)]) == 0
    assert f"sha256:{digest}" in capsys.readouterr().out

    # an invalid tree: exit 1, problems by path, no traceback, no bundle
    tree(copy / "env/dev/operator/dynamic", {"broken.yaml": "kind: [", "README.md": "docs"})
    bad = tmp_path / "bad.zip"
    assert cli.main(["--source", str(copy), "bundle", "--env", "dev", "--out", str(bad)]) == 1
    captured = capsys.readouterr()
    assert "broken.yaml: line " in captured.err and "README.md: not a manifest" in captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert not bad.exists()


def test_dagger_front_end_declares_the_bundle_functions():
    from support import daggermod

    env = daggermod.objects()["Environment"]
    assert env["bundle"].return_type == "dagger.File" and env["bundle"].params == {}
    upload = env["upload_bundle"]
    assert upload.return_type == "str"
    params = upload.params
    assert list(params) == ["admin_token", "admin_url", "ready_path", "upload_path", "timeout"]
    assert params["admin_url"].optional  # default: admin_url of env/<env>/environment.yaml
    assert params["admin_token"].type == "dagger.Secret" and not params["admin_token"].optional
    assert (params["ready_path"].default, params["upload_path"].default) == ("/healthz", "/admin/manifests")
    assert params["timeout"].type == "float" and params["timeout"].default == 300.0
    assert "seconds" in params["timeout"].doc


def hostile_tree(root: Path) -> Path:
    """Valid templates plus one of each content problem the YAML checks find."""
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(6))
    files = {f"ok-{i:03d}.yaml": CONFIGMAP.replace("fn-", f"fn-{i}-") for i in range(40)}
    files |= {
        "dup.yaml": "apiVersion: v1\nkind: ConfigMap\ndata:\n  A: '1'\n  B: '2'\n  A: '3'\n",
        "dup-in-a-long-file.yaml": "apiVersion: v1\nkind: ConfigMap\ndata:\n"
        + "".join(f"  k{i}: v\n" for i in range(2100)) + "  k7: again\n",
        "deep.yaml": "apiVersion: v1\nkind: ConfigMap\ndata: " + "[" * 70 + "]" * 70 + "\n",
        "bomb.yaml": "apiVersion: v1\nkind: ConfigMap\n" + bomb,
        "merge-is-not-a-duplicate.yaml": "apiVersion: v1\nkind: ConfigMap\nx: &x {a: 1}\ny: {<<: *x, <<: *x}\n",
    }
    return tree(root, files)


def test_yaml_checks_find_duplicates_depth_and_alias_bombs(tmp_path):
    d = hostile_tree(tmp_path / "dynamic")
    with pytest.raises(ValidationError) as caught:
        templates.validate_dynamic(d, log=None)
    found = problems_by_path(caught.value)
    assert found.pop(f"{d}/dup.yaml") == [f"{d}/dup.yaml: line 6, column 3: duplicate key 'A' "
                                          "(keep one: YAML readers silently use the last one)"]
    [long_dup] = found.pop(f"{d}/dup-in-a-long-file.yaml")
    assert "line 2104, column 3: duplicate key 'k7'" in long_dup
    [deep] = found.pop(f"{d}/deep.yaml")
    assert "nested more than 64 levels deep (at line 3)" in deep
    [bomb] = found.pop(f"{d}/bomb.yaml")
    assert "stands for more than 1000000 values" in bomb
    assert found == {}


def test_large_trees_are_checked_in_worker_processes_with_the_same_outcome(tmp_path, monkeypatch):
    d = hostile_tree(tmp_path / "dynamic")
    tree(d, {"gone.yaml": CONFIGMAP})
    real_scan = walk.scan_tree

    def scan_then_swap(directory: Path, *words):
        found = real_scan(directory, *words)
        (d / "gone.yaml").unlink()  # replaced by a link after the scan: the read must not follow it
        (d / "gone.yaml").symlink_to(tmp_path / "elsewhere.yaml")
        return found

    (tmp_path / "elsewhere.yaml").write_text(CONFIGMAP)
    monkeypatch.setattr(walk, "scan_tree", scan_then_swap)
    with pytest.raises(ValidationError) as here:
        templates.validate_dynamic(d, log=None)
    (d / "gone.yaml").unlink()
    tree(d, {"gone.yaml": CONFIGMAP})
    monkeypatch.setattr(templates, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(templates, "BATCH_BYTES", 2000)  # many batches, in flight together
    with pytest.raises(ValidationError) as workers:
        templates.validate_dynamic(d, log=None)
    assert [str(p) for p in workers.value.problems] == [str(p) for p in here.value.problems]
    assert any(p.path == f"{d}/gone.yaml" and "symbolic link" in p.message for p in here.value.problems)

    monkeypatch.setattr(walk, "scan_tree", real_scan)
    valid = tree(tmp_path / "valid", {f"ok-{i:03d}.yaml": CONFIGMAP.replace("fn-", f"fn-{i}-") for i in range(60)})
    parallel = archive.write_bundle(valid, tmp_path / "parallel.zip", log=None)
    monkeypatch.setattr(templates, "PARALLEL_MIN_BYTES", 1 << 40)
    serial = archive.write_bundle(valid, tmp_path / "serial.zip", log=None)
    assert parallel.sha256 == serial.sha256 and parallel.entries == 60


def test_a_failed_bundle_leaves_no_directory_behind(tmp_path):
    d = tree(tmp_path / "dynamic", {"bad.yaml": "kind: ["})
    with pytest.raises(ValidationError):
        archive.write_bundle(d, tmp_path / "new" / "dir" / "bundle.zip", log=None)
    assert not (tmp_path / "new").exists()
