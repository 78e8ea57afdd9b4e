"""``publish-artifact --manifests DIR``: only a bounded directory of rendered Kubernetes objects is pushed.

Table-driven through the real CLI against the real registry: every hostile
directory is refused with exit 1 and a message naming the file, nothing reaches
the registry (it holds no tag afterwards), the kubeconfig token a link points at
never shows (not on stdout or stderr, not in any blob the registry stores), and no
exception escapes. Then hypothesis on the reader itself: any bytes in a manifest
file are refused cleanly or give only real objects, and a secret in a file is never
echoed.
"""

from __future__ import annotations

import gzip
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faas_deployment.core.errors import UserError, ValidationError
from faas_deployment.flux import artifacts
from support.repo_tree import copy_repo

TOKEN = "kube-token-9f8e7d6c5b4a39281706f5e4d3c2b1a0"


def leaks(text: str) -> bool:
    """Whether ``text`` holds any 8 characters in a row of the token's secret part (a snippet may cut it)."""
    secret = TOKEN.removeprefix("kube-token-")
    return any(secret[i:i + 8] in text for i in range(len(secret) - 7))


KUBECONFIG = f"apiVersion: v1\nkind: Config\nmetadata:\n  name: prod\nusers:\n- name: ci\n  user:\n    token: {TOKEN}\n"
CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  a: b\n"
SECRET_YAML_ERROR = f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  token: {TOKEN}: x\n"


def _link(target: str) -> Callable[[Path, Path], None]:
    def make(d: Path, outside: Path) -> None:
        (d / "linked.yaml").symlink_to(target.format(outside=outside))
    return make


def _files(**files: str) -> Callable[[Path, Path], None]:
    def make(d: Path, outside: Path) -> None:
        for name, text in files.items():
            path = d / name.replace("__", "/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return make


def _deep(depth: int) -> str:
    return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\ndata: " + "[" * depth + "]" * depth + "\n"


BILLION_LAUGHS = (
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol}\na: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))
)

# name -> (what to add to a directory holding one valid ConfigMap, words the refusal must hold)
CASES: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "link to a kubeconfig outside": (_link("{outside}/kubeconfig.yaml"), "symbolic link"),
    "link to a broken file outside": (_link("{outside}/broken.yaml"), "symbolic link"),
    "link to a directory outside": (lambda d, o: (d / "sub").symlink_to(o), "symbolic link"),
    "dangling link": (_link("{outside}/gone.yaml"), "dangling"),
    "link inside the directory": (_link("cm.yaml"), "symbolic link"),
    "link to /dev/zero": (_link("/dev/zero"), "symbolic link"),
    "fifo": (lambda d, o: os.mkfifo(d / "pipe.yaml"), "not a regular file"),
    "yaml error holding a token": (_files(**{"bad.yaml": SECRET_YAML_ERROR}), "invalid YAML"),
    "yaml error in a quoted token": (_files(**{"bad.yaml": f'apiVersion: v1\nkind: Secret\ndata: "{TOKEN}\\q"\n'}),
                                     "invalid YAML"),
    "undefined alias named like a token": (_files(**{"bad.yaml": f"apiVersion: v1\nkind: Secret\ndata: *{TOKEN}\n"}),
                                           "invalid YAML"),
    "a list": (_files(**{"bad.yaml": "- just\n- a list\n"}), "expected a Kubernetes object"),
    "a scalar": (_files(**{"bad.yaml": "hello\n"}), "expected a Kubernetes object"),
    "no kind": (_files(**{"bad.yaml": "apiVersion: v1\nmetadata: {name: x}\n"}), "kind: expected"),
    "apiVersion a number": (_files(**{"bad.yaml": "apiVersion: 1\nkind: ConfigMap\nmetadata: {name: x}\n"}),
                            "apiVersion: expected a non-empty string"),
    "apiVersion a list": (_files(**{"bad.yaml": "apiVersion: [v1]\nkind: ConfigMap\nmetadata: {name: x}\n"}),
                          "apiVersion: expected"),
    "kind a mapping": (_files(**{"bad.yaml": "apiVersion: v1\nkind: {a: b}\nmetadata: {name: x}\n"}), "kind: expected"),
    "kind a boolean": (_files(**{"bad.yaml": "apiVersion: v1\nkind: yes\nmetadata: {name: x}\n"}), "kind: expected"),
    "no metadata": (_files(**{"bad.yaml": "apiVersion: v1\nkind: ConfigMap\n"}), "metadata.name: expected"),
    "metadata a list": (_files(**{"bad.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: [x]\n"}),
                        "metadata.name: expected"),
    "no metadata.name": (_files(**{"bad.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {labels: {}}\n"}),
                         "metadata.name: expected"),
    "metadata.name a number": (_files(**{"bad.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: 5}\n"}),
                               "metadata.name: expected"),
    "metadata.namespace a list": (_files(**{"bad.yaml": "apiVersion: v1\nkind: ConfigMap\n"
                                                        "metadata: {name: y, namespace: [a]}\n"}),
                                  "metadata.namespace"),
    "duplicate within a file": (_files(**{"two.yaml": CONFIGMAP.format(name="x") + "---\n"
                                                      + CONFIGMAP.format(name="x")}),
                                "duplicate object ConfigMap x"),
    "duplicate across files": (_files(**{"sub__again.yaml": CONFIGMAP.format(name="cm")}),
                               "duplicate object ConfigMap cm"),
    "duplicate across group versions": (_files(**{
        "a.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: n}\n",
        "b.json": '{"apiVersion": "apps/v1beta2", "kind": "Deployment", "metadata": {"name": "d", "namespace": "n"}}'}),
        "duplicate object Deployment.apps n/d"),
    "template placeholder": (_files(**{"bad.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                                                   "  name: {{ .Values.name }}\n"}), "unrendered template placeholder"),
    "template control line": (_files(**{"bad.yaml": "{{- if .Values.on }}\n" + CONFIGMAP.format(name="y")
                                                    + "{{- end }}\n"}), "unrendered template placeholder"),
    "100,000 levels deep": (_files(**{"deep.yaml": _deep(100_000)}), "nested more than 64 levels"),
    "65 levels deep": (_files(**{"deep.yaml": _deep(65)}), "nested more than 64 levels"),
    "billion laughs": (_files(**{"lol.yaml": BILLION_LAUGHS}), "once its aliases"),
    "duplicate key": (_files(**{"bad.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: y}\nkind: Secret\n"}),
                      "duplicate key"),
    "not UTF-8": (lambda d, o: (d / "bad.yaml").write_bytes(b"apiVersion: v1\nkind: \xff\n"), "not UTF-8"),
    "binary": (lambda d, o: (d / "bad.yaml").write_bytes(b"\x00\x01" * 10), "binary file"),
    "too large": (_files(**{"big.yaml": CONFIGMAP.format(name="big") + "#" * (8 * 1024 * 1024) + "\n"}),
                  "more than the 8388608 accepted"),
    "empty file": (_files(**{"empty.yaml": ""}), "holds no YAML document"),
    "not a manifest": (_files(**{"notes.txt": "hello"}), "not a manifest"),
}


@pytest.fixture
def published(registry, run_cli, monkeypatch, tmp_path):
    """``publish(dir) -> (code, out, err)``, run in a thread bounded to 60 s (a hang fails the test)."""
    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", registry.password)
    source = copy_repo(tmp_path / "src")

    def publish(directory: Path) -> tuple[int, str, str]:
        answer: list = []

        def run() -> None:
            try:
                answer.append(run_cli("--source", str(source), "publish-artifact", "--env", "dev", "--component",
                                      "operator", "--repository", f"oci://{registry.host}/faas/manifests",
                                      "--username", registry.username, "--password", "env:TEST_REGISTRY_PASSWORD",
                                      "--plain-http", "--revision", "main@sha1:" + "a" * 40,
                                      "--source-url", "https://git.example.org/faas.git", "--objects",
                                      str(directory)))
            except BaseException as exc:  # a traceback is what the test reports
                answer.append(exc)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(60)
        assert answer, "hang: publish-artifact did not return within 60 s"
        if isinstance(answer[0], BaseException):
            pytest.fail(f"traceback: {answer[0]!r}")
        return answer[0]

    return publish


def stored_text(registry) -> bytes:
    """Every blob the registry stores, gzip layers unpacked: where a pushed token would be."""
    found = b""
    for path in Path(registry.storage).rglob("data"):
        data = path.read_bytes()
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError):
            pass
        found += data
    return found


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_manifests_directory_is_refused_and_nothing_is_pushed(case, published, registry, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "kubeconfig.yaml").write_text(KUBECONFIG)
    (outside / "broken.yaml").write_text(SECRET_YAML_ERROR)
    directory = tmp_path / "manifests"
    directory.mkdir()
    (directory / "cm.yaml").write_text(CONFIGMAP.format(name="cm"))
    make, words = CASES[case]
    make(directory, outside)

    code, out, err = published(directory)
    assert not leaks(out + err), "secret-leak"
    assert not leaks(stored_text(registry).decode("latin-1")), "secret-leak into the registry"
    assert "Traceback" not in err
    assert registry.held_digest("faas/manifests", "app-operator") is None, "wrong-push"
    assert code == 1, f"wrong-accept: {out}"
    assert f"{directory}/" in err and words in err, err


def test_a_valid_directory_is_pushed_with_hidden_files_left_out(published, registry, tmp_path):
    directory = tmp_path / "manifests"
    (directory / "sub").mkdir(parents=True)
    (directory / "cm.yaml").write_text(CONFIGMAP.format(name="cm") + "---\n" + CONFIGMAP.format(name="other"))
    (directory / "sub" / "svc.json").write_text('{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "cm"}}')
    (directory / "sub" / "ns.yaml").write_text(
        CONFIGMAP.format(name="cm").replace("name: cm", "name: cm\n  namespace: x")
    )
    (directory / "quoted.yaml").write_text('apiVersion: "1"\nkind: "true"\nmetadata: {name: "5"}\n')
    (directory / ".hidden.yaml").write_text(": not yaml {{")
    (directory / "cm.yaml~").write_text("{{ back-up }}")
    code, _, err = published(directory)
    assert code == 0, err
    assert "left out of the artifact (hidden file)" in err and "left out of the artifact (editor back-up)" in err
    assert registry.held_digest("faas/manifests", "app-operator") is not None
    assert sorted(artifacts.directory_files(directory)) == ["cm.yaml", "quoted.yaml", "sub/ns.yaml", "sub/svc.json"]


def test_a_missing_or_empty_directory_is_refused(published, registry, tmp_path):
    code, _, err = published(tmp_path / "nowhere")
    assert code == 1 and "directory not found" in err
    (tmp_path / "empty").mkdir()
    code, _, err = published(tmp_path / "empty")
    assert code == 1 and "holds no manifest" in err
    assert registry.held_digest("faas/manifests", "app-operator") is None


# --------------------------------------------------------------------------- any bytes (hypothesis)

PIECES = ["apiVersion: v1\n", "kind: ConfigMap\n", "metadata:\n", "  name: x\n", "  namespace: n\n", "---\n",
          "apiVersion: 5\n", "kind: [a]\n", "metadata: {name: 1}\n", "&a ", "*a ", "<<: *a\n", "{{ .X }}", "[", "]",
          "{", "}", ": ", "- ", "\t", "\n", "'", '"', "!!int ", "!!str ", "~\n", TOKEN, "\x00", "\ufeff", "\x85"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(PIECES) | st.text(max_size=8), max_size=40), st.booleans())
def test_any_file_is_refused_cleanly_or_holds_only_real_objects(tmp_path, pieces, as_json):
    directory = tmp_path / "fuzz"
    directory.mkdir(exist_ok=True)
    for old in directory.iterdir():
        old.unlink()
    text = "".join(pieces)
    (directory / ("m.json" if as_json else "m.yaml")).write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        files = artifacts.directory_files(directory)
    except (ValidationError, UserError) as exc:
        assert not leaks(str(exc)), "secret-leak"
        return

    documents = [d for d in yaml.safe_load_all(files["m.json" if as_json else "m.yaml"]) if d is not None]
    assert documents and "{{" not in text
    keys = set()
    for doc in documents:
        assert isinstance(doc["apiVersion"], str) and isinstance(doc["kind"], str)
        assert isinstance(doc["metadata"]["name"], str) and doc["metadata"]["name"]
        key = (doc["apiVersion"].rpartition("/")[0], doc["kind"], doc["metadata"].get("namespace") or "",
               doc["metadata"]["name"])
        assert key not in keys
        keys.add(key)

