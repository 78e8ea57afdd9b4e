"""Files read from the repository (and a template directory): regular files inside it, and nothing else.

Real parts: the CLI as a subprocess (a hang is a hang: each run is killed at 60 s
and counted), real symbolic links, FIFOs and devices on disk, and a privilege drop
for the unreadable directory (the tests run as root, which reads any directory:
``setpriv`` removes CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH so the permission
bits apply to root too).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from faas_deployment.bundle import archive
from faas_deployment.charts import config
from faas_deployment.core import urls
from faas_deployment.core.errors import ValidationError
from faas_deployment.flux import settings
from support.repo_tree import copy_repo

OUTSIDE_TEXT = "outside-secret-4f1c9e: the content of a file outside the repository\n"
CONFIG = "env/dev/operator/cookiecutter-config.yaml"
SETTINGS = "env/dev/environment.yaml"
DYNAMIC = "env/dev/operator/dynamic/extra.yaml"
TEMPLATE_FILE = "{{cookiecutter.chart_name}}/values.yaml"


def _cli(*args: str, timeout: float = 60) -> tuple[int | None, str, float]:
    """Exit code (None: killed, a hang), standard output and error, seconds."""
    started = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "faas_deployment.cli", *args], capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None, "", time.monotonic() - started
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started


def _plant(path: Path, kind: str, outside: Path) -> None:
    if path.exists() or path.is_symlink():
        path.unlink()
    if kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "outside":
        path.symlink_to(outside)
    elif kind == "inside-link":
        shutil.copy(outside, path.with_name("copy-" + path.name))
        path.symlink_to("copy-" + path.name)


def _template(tmp_path: Path) -> Path:
    template = tmp_path / "template"
    shutil.copytree(config.EMBEDDED_TEMPLATE, template)
    return template


TARGETS = {
    "environment.yaml": (SETTINGS, lambda src, tmp: ["--source", str(src), "flux", "--env", "dev", "--out",
                                                     str(tmp / "flux")]),
    "config": (CONFIG, lambda src, tmp: ["--source", str(src), "config", "--env", "dev", "--component", "operator"]),
    "dynamic": (DYNAMIC, lambda src, tmp: ["--source", str(src), "bundle", "--env", "dev", "--out",
                                           str(tmp / "b.zip")]),
    "template-file": (TEMPLATE_FILE, lambda src, tmp: ["--source", str(src), "--template", str(tmp / "template"),
                                                       "chart", "--env", "dev", "--component", "operator",
                                                       "--out", str(tmp / "chart")]),
    "template-json": ("cookiecutter.json", lambda src, tmp: ["--source", str(src), "--template",
                                                             str(tmp / "template"), "config", "--env", "dev",
                                                             "--component", "operator"]),
}
KINDS = ["dev-zero", "fifo", "outside", "inside-link"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("target", list(TARGETS))
def test_only_regular_files_inside_the_repository_are_read(tmp_path, target, kind):
    source = copy_repo(tmp_path / "src")
    template = _template(tmp_path)
    outside = tmp_path / "outside.yaml"
    outside.write_text(OUTSIDE_TEXT if target not in ("config", "environment.yaml", "template-json")
                       else (source / (CONFIG if target == "config" else SETTINGS)).read_text()
                       if target != "template-json" else (template / "cookiecutter.json").read_text()
                       .replace("{", '{"note": "' + OUTSIDE_TEXT.strip() + '",', 1))
    relative, argv = TARGETS[target]
    root = template if target.startswith("template") else source
    _plant(root / relative, kind, outside)
    code, output, seconds = _cli(*argv(source, tmp_path))
    assert code is not None, f"{target}/{kind}: hung (killed at 60 s)"
    assert code == 1, f"{target}/{kind}: exit {code}: {output[-800:]}"
    assert "Traceback" not in output and "MemoryError" not in output
    assert Path(relative).name in output and any(
        w in output for w in ("symbolic link", "FIFO", "not a regular file")
    ), output[-800:]
    assert "outside-secret-4f1c9e" not in output
    assert seconds < 30


def test_a_linked_directory_on_the_way_is_refused(tmp_path):
    source = copy_repo(tmp_path / "src")
    elsewhere = tmp_path / "elsewhere"
    shutil.move(source / "env/dev/operator", elsewhere)
    (source / "env/dev/operator").symlink_to(elsewhere)
    code, output, _ = _cli("--source", str(source), "config", "--env", "dev", "--component", "operator")
    assert code == 1 and "env/dev/operator: a symbolic link" in output and "Traceback" not in output, output


def test_an_unreadable_directory_in_dynamic_is_a_clear_error_for_every_reader(tmp_path):
    """``setpriv`` drops the capabilities that let root read any directory; the permission bits then apply."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    source = copy_repo(tmp_path / "src")
    subprocess.run(["git", "init", "-q", str(source)], check=True)
    locked = source / "env/dev/operator/dynamic/locked"
    locked.mkdir()
    (locked / "cm.yaml").write_text((source / "env/dev/operator/dynamic/configmap.yaml").read_text())
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"}
    subprocess.run(["git", "-C", str(source), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(source), "commit", "-qm", "base"], check=True, env=env)
    locked.chmod(0)
    try:
        for verb in (["bundle", "--env", "dev", "--out", str(tmp_path / "b.zip")], ["plan", "--base", "HEAD"]):
            proc = subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-m",
                                   "faas_deployment.cli", "--source", str(source), *verb],
                                  capture_output=True, text=True, timeout=120, check=False, env=env)
            output = proc.stdout + proc.stderr
            assert proc.returncode == 1, f"{verb[0]}: exit {proc.returncode}: {output[-600:]}"
            assert "Traceback" not in output and f"{locked}: cannot list directory: Permission denied" in output
    finally:
        locked.chmod(0o755)


# --------------------------------------------------------------------------- URLs in settings

BAD_URLS = {
    "port-zero": ("receiver_url", "https://flux.example.org:0/hook", "outside 1-65535"),
    "port-too-big": ("admin_url", "https://admin.example.org:65536", "port from 1 to 65535"),
    "bad-host": ("admin_url", "https://-admin-.example.org", "not a valid DNS name"),
    "bad-ipv4": ("receiver_url", "http://300.1.2.3/", "not a valid IPv4"),
    "userinfo": ("admin_url", "https://ci:hunter2-secret@admin.example.org", "holds credentials"),
    "token-param": (
        "receiver_url",
        "https://flux.example.org/hook?access_token=hunter2-secret",
        "credential in its query",
    ),
    "oci-userinfo": ("chart_registry", "oci://ci:hunter2-secret@registry.example.org/charts", "holds credentials"),
    "oci-port": ("chart_registry", "oci://registry.example.org:99999/charts", "port from 1 to 65535"),
    "oci-token": (
        "artifact_repository",
        "oci://registry.example.org/x?token=hunter2-secret",
        "credential in its query",
    ),
}


@pytest.mark.parametrize("case", list(BAD_URLS))
def test_url_settings_are_validated_and_a_credential_is_never_echoed(tmp_path, case):
    key, value, said = BAD_URLS[case]
    source = copy_repo(tmp_path / "src")
    path = source / SETTINGS
    lines = [line for line in path.read_text().splitlines() if not line.startswith(f"{key}:")]
    path.write_text("\n".join([*lines, f"{key}: {value!r}".replace("'", '"')]) + "\n")
    with pytest.raises(ValidationError) as caught:
        settings.load(source, "dev")
    text = str(caught.value)
    assert f"{SETTINGS}: {key}: " in text and said in text, text
    assert "hunter2-secret" not in text


@hsettings(max_examples=400, deadline=None)
@given(scheme=st.sampled_from(["http", "https", "oci"]), user=st.text(min_size=1, max_size=12),
       secret=st.text(min_size=6, max_size=20), host=st.text(max_size=30), port=st.integers(-5, 70000),
       param=st.sampled_from(["token", "access_token", "X-Amz-Signature", "private_token", "api_key"]))
def test_url_problems_never_repeat_a_credential(scheme, user, secret, host, port, param):
    for value in (f"{scheme}://{user}:{secret}@{host}:{port}/p", f"{scheme}://{host}:{port}/p?{param}={secret}"):
        for problem in urls.url_problems(value, ("http", "https", "oci")):
            assert secret not in problem or secret in "the URL holds credentials or a query port DNS"


def test_good_urls_pass():
    for value in ("https://admin.example.org", "http://127.0.0.1:8080/api", "http://[::1]:9/x",
                  "oci://registry.example.org:5000/charts", "https://flux.example.org:443/"):
        assert urls.url_problems(value, ("http", "https", "oci")) == [], value


# --------------------------------------------------------------------------- bundle entry names

WINDOWS_FORBIDDEN = ["a:b.yaml", "a<b.yaml", "a>b.yaml", 'a"b.yaml', "a|b.yaml", "a?b.yaml", "a*b.yaml",
                     "a\\b.yaml", "a\x01b.yaml", "trailing-dot.yaml.", "trailing-space.yaml ", "dir:x/cm.yaml"]


@pytest.mark.parametrize("name", WINDOWS_FORBIDDEN)
def test_a_bundle_entry_name_unzip_tools_refuse_or_rewrite_is_refused(tmp_path, name):
    dynamic = tmp_path / "dynamic"
    shutil.copytree(Path(config.__file__).resolve().parents[4] / "env/dev/operator/dynamic", dynamic)
    target = dynamic / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text((dynamic / "configmap.yaml").read_text().replace("name: ", "name: x", 1))
    with pytest.raises(ValidationError) as caught:
        archive.write_bundle(dynamic, tmp_path / "b.zip", log=None)
    assert "cannot carry safely" in str(caught.value) and not (tmp_path / "b.zip").exists()
