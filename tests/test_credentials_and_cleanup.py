"""Credentials stay out of URLs and output; secrets files are read safely; interrupted runs leave no temporary
directories."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faas_deployment.cli import main
from faas_deployment.core import urls
from faas_deployment.core.errors import UserError
from faas_deployment.core.secrets import resolve_secret
from support.repo_tree import config_file, copy_repo, set_scalar


@pytest.mark.parametrize("verb", [
    ["publish", "--env", "dev", "--component", "operator"], ["release", "--env", "dev"], ["check", "--env", "dev"],
])
@pytest.mark.parametrize("password", ["e", "s3cr3t-Pa55"])
def test_userinfo_in_the_registry_flag_is_refused_without_echoing_it(tmp_path, capsys, verb, password):
    source = copy_repo(tmp_path / "src")
    code = main(
        ["--source", str(source), *verb, "--registry", f"oci://ci:{password}@127.0.0.1:9/charts", "--plain-http"]
    )
    out, err = capsys.readouterr()
    assert code == 1 and "holds credentials" in err
    assert f":{password}@" not in out + err and "ci:" not in out + err
    # a one-letter password does not garble the message (no find-and-replace redaction)
    assert "registry" in err and "***" not in err


@pytest.mark.parametrize("url", ["https://u:p@h/x", "http://u@h", "oci://@h/x", "u:p@h:5000/x"])
def test_refuse_userinfo_for_any_url_flag(url):
    with pytest.raises(UserError, match="--admin-url: the URL holds credentials"):
        urls.refuse_userinfo("--admin-url", url)
    urls.refuse_userinfo("--admin-url", "https://h:8443/path@v1")  # an @ in the path is no userinfo


@pytest.mark.parametrize(("host", "loopback"), [
    ("localhost", True), ("LOCALHOST", True), ("localhost.", True),
    ("api.localhost", True), ("a.b.localhost", True), ("api.localhost.", True),  # RFC 6761 section 6.3
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True),
    ("localhost.example.org", False), ("mylocalhost", False), ("localhostx", False), ("xlocalhost.org", False),
    ("128.0.0.1", False), ("192.0.2.1", False), ("::2", False), ("[::ffff:10.0.0.1]", False), ("", False),
    ("registry.example.org", False),
])
def test_one_loopback_rule(host, loopback):
    assert urls.is_loopback(host) is loopback


@pytest.mark.parametrize("url", ["http://api.localhost:8080", "http://localhost:8080", "http://[::1]:8080",
                                 "http://127.0.0.1:8080"])
def test_the_admin_api_asks_the_same_loopback_rule(url, capsys):
    from faas_deployment.bundle import admin_http

    admin_http.warn_plain_http(url)
    assert capsys.readouterr().err == ""
    urls.warn_plain_http("--plain-http", urls.host_of(url), credentials=True)
    assert capsys.readouterr().err == ""
    admin_http.warn_plain_http("http://api.localhost.example.org:8080")
    assert "WARNING" in capsys.readouterr().err


def test_plain_http_to_another_machine_warns_loudly(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PW", "x")
    source = copy_repo(tmp_path / "src")
    main(["--source", str(source), "publish", "--env", "dev", "--component", "operator", "--registry",
          "oci://192.0.2.1:5000/charts", "--username", "u", "--password", "env:PW", "--plain-http", "--timeout", "3"])
    err = capsys.readouterr().err
    assert "WARNING" in err and "clear text" in err and "192.0.2.1" in err
    main(["--source", str(source), "publish", "--env", "dev", "--component", "operator", "--registry",
          "oci://127.0.0.1:9/charts", "--plain-http", "--timeout", "3"])
    assert "WARNING" not in capsys.readouterr().err


def test_a_non_utf8_secret_file_is_a_clear_error(tmp_path):
    secret = tmp_path / "pw"
    secret.write_bytes(b"\xff\xfe-not-utf8")
    with pytest.raises(UserError, match="not UTF-8"):
        resolve_secret(f"file:{secret}", flag="--password")


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(reference=st.text(max_size=20), content=st.binary(max_size=20), env_value=st.text(max_size=10))
def test_fuzzed_secret_references_resolve_or_fail_clearly(tmp_path_factory, monkeypatch, reference, content, env_value):
    folder = tmp_path_factory.mktemp("secret")
    (folder / "f").write_bytes(content)
    if "\x00" not in env_value:
        monkeypatch.setenv("FUZZ_SECRET", env_value)
    for ref in (reference, f"file:{folder / 'f'}", "env:FUZZ_SECRET", f"file:{folder}"):
        try:
            value = resolve_secret(ref, flag="--password")
        except UserError as exc:
            assert str(exc).startswith("--password: ")
        else:
            assert value.reveal() and repr(value) == f"SecretValue({ref}, ***)" and f"{value}" == repr(value)


def test_an_interrupt_that_loses_a_temporary_directory_still_leaves_nothing(tmp_path, monkeypatch, capsys):
    """The window no ``with`` block covers: a directory made, its name not yet held, when the
    interrupt lands. The run's own temporary directory holds it, and goes at the end."""

    from faas_deployment.door import charts

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    made = []

    def interrupted(ws, env, component):
        made.append(Path(tempfile.mkdtemp(prefix="faas-lost-")))
        raise KeyboardInterrupt

    monkeypatch.setattr(charts, "config", interrupted)
    source = copy_repo(tmp_path / "src")
    assert main(["--source", str(source), "config", "--env", "dev", "--component", "operator"]) == 130
    assert made and made[0].parent.parent == scratch  # it was made under the run's directory
    assert list(scratch.iterdir()) == [] and tempfile.tempdir == str(scratch)
    assert "interrupted" in capsys.readouterr().err


def test_the_per_user_cache_directory_is_private_and_outlives_the_run(tmp_path, monkeypatch):
    """Caches that outlive a run go to ``<TMPDIR>/<name>-<uid>`` outside the run's directory, made
    0700; a link, a file or another user's directory planted under that name is refused, and then
    the template cache is off (each process compiles), never followed."""
    import stat

    from faas_deployment.charts import generate
    from faas_deployment.core import tempdirs

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.delenv("FAAS_DEPLOY_NO_TEMPLATE_CACHE", raising=False)
    with tempdirs.run_tempdir() as run:
        assert tempfile.gettempdir() == str(run)
        cache = tempdirs.user_cache_dir("_jinja2-cache")
        assert generate._bytecode_cache().directory == str(cache)
    assert cache == scratch / f"_jinja2-cache-{os.getuid()}" and cache.is_dir() and not run.exists()
    assert stat.S_IMODE(os.lstat(cache).st_mode) == 0o700
    cache.chmod(0o755)  # the user's own, widened: made private again
    assert tempdirs.user_cache_dir("_jinja2-cache") == cache and stat.S_IMODE(os.lstat(cache).st_mode) == 0o700
    cache.rmdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    cache.symlink_to(elsewhere)  # planted: entries read from there would run as compiled code
    with pytest.raises(RuntimeError, match="not a directory of this user's own"):
        tempdirs.user_cache_dir("_jinja2-cache")
    assert generate._bytecode_cache() is None
    cache.unlink()
    cache.write_text("")
    with pytest.raises(RuntimeError):
        tempdirs.user_cache_dir("_jinja2-cache")
    if os.getuid() == 0:  # only root can give a directory to another user
        cache.unlink()
        cache.mkdir(mode=0o700)
        os.chown(cache, 65534, -1)
        with pytest.raises(RuntimeError):
            tempdirs.user_cache_dir("_jinja2-cache")


def test_a_terminated_release_leaves_no_temporary_directory(tmp_path):
    source = copy_repo(tmp_path / "src")
    dev = source / "env" / "dev"
    for n in range(1, 30):  # enough charts that the release is still packaging when the signal lands
        shutil.copytree(dev / "operator", dev / f"operator{n}")
        set_scalar(config_file(source, "dev", f"operator{n}"), "chart_name", f"faas-operator{n}")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "faas_deployment.cli", "--source", str(source), "release", "--env", "dev"],
        env={**os.environ, "TMPDIR": str(scratch)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not list(scratch.glob("faas-run-*/faas-release-*")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert list(scratch.glob("faas-run-*/faas-release-*")), "the release never made its temporary directory"
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert list(scratch.glob("faas-*")) == []
