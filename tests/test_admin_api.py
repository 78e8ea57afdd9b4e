"""Readiness and upload against a loopback admin API with injected faults (contract: ``docs/admin-api.md``)."""

from __future__ import annotations

import base64
import itertools
import logging
import os
import re
import subprocess
import time
from email.utils import formatdate
from pathlib import Path

import pytest

from faas_deployment.bundle import admin_api, archive, readiness
from faas_deployment.core.errors import UserError
from faas_deployment.core.secrets import SecretValue
from support.admin_api_client import FAAS_DEPLOY, FAST, FAST_POLL, TOKEN
from support.admin_api_server import AdminApiServer, Answer, EchoAuth, Reset, Slow

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture()
def big_bundle(tmp_path) -> archive.Bundle:
    """~3 MB that deflate cannot shrink, so a reset really lands mid-upload."""
    d = tmp_path / "dynamic"
    d.mkdir()
    blob = base64.b64encode(os.urandom(3 * 1024 * 1024)).decode()
    (d / "big.yaml").write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big}}\ndata:\n  blob: {blob}\n")
    return archive.write_bundle(d, tmp_path / "big.zip", log=None)


def assert_no_token(*texts: str) -> None:
    for text in texts:
        assert TOKEN not in text


# -- readiness ----------------------------------------------------------------


def test_ready_after_not_listening_then_503(capfd):
    # 1.5 s: room for the client's first connection attempt even on a loaded machine
    with AdminApiServer(TOKEN, listen_after=1.5, health_plan=[503, 503, 503]) as server:
        report = readiness.wait_until_ready(server.url, timeout=10, poll=FAST_POLL)
        gets = server.attempts("/healthz")
    assert report.status == 200
    assert report.seen["HTTP 503"] == 3 and report.seen["connection refused"] >= 1
    assert report.attempts == sum(report.seen.values()) + 1
    assert len(gets) == 4  # three 503s, then the 200 that ended the wait
    assert report.elapsed >= 1.0
    assert "connection refused" in capfd.readouterr().err


def test_slow_answers_count_as_timeouts():
    with AdminApiServer(TOKEN, health_plan=[Slow(1.0), Slow(1.0)]) as server:
        started = time.monotonic()
        report = readiness.wait_until_ready(server.url, timeout=10, probe_timeout=0.2, poll=FAST_POLL, quiet=True)
        assert time.monotonic() - started < 1.5  # did not wait for the slow answers
    assert report.seen == {"timeout": 2} and report.attempts == 3


def test_unauthorised_readiness_fails_at_once():
    with AdminApiServer(TOKEN, health_plan=[401]) as server:
        started = time.monotonic()
        with pytest.raises(UserError, match=r"HTTP 401.*--ready-path"):
            readiness.wait_until_ready(server.url, timeout=30, poll=FAST_POLL, quiet=True)
        assert time.monotonic() - started < 1
        assert len(server.attempts("/healthz")) == 1


def test_readiness_deadline_is_honoured_and_summarised():
    with AdminApiServer(TOKEN, unready_for=60, health_plan=[Slow(0.6, 503)]) as server:
        started = time.monotonic()
        with pytest.raises(UserError) as caught:
            readiness.wait_until_ready(server.url, timeout=1.5, probe_timeout=0.3, poll=FAST_POLL, quiet=True)
        took = time.monotonic() - started
        gets = len(server.attempts("/healthz"))
    assert 1.3 <= took < 1.8  # the last probe starts 0.1 s before the deadline
    text = str(caught.value)
    assert re.search(r"not ready after 1\.[3-7] s \(deadline 1\.5 s; ", text)
    assert "HTTP 503 x" in text and "timeout x1" in text
    assert f"{gets + 1} attempts" in text or f"{gets} attempts" in text  # the slow one may be recorded late


def test_deadline_clips_a_probe_that_would_outlast_it():
    with AdminApiServer(TOKEN, health_plan=[Slow(3.0)] * 3) as server:
        started = time.monotonic()
        with pytest.raises(UserError, match=r"timeout x1"):
            readiness.wait_until_ready(server.url, timeout=0.8, probe_timeout=5, poll=FAST_POLL, quiet=True)
        assert time.monotonic() - started < 1.1


def test_default_poll_probes_once_a_second_and_sees_readiness_within_one(capfd):
    # the API's own request log: probes at least 1 s apart (at most 60 a minute), and the
    # probe after readiness comes within the poll interval plus jitter, not after a backoff
    with AdminApiServer(TOKEN, unready_for=3.3) as server:
        report = readiness.wait_until_ready(server.url, timeout=30)
        probes = [r.at for r in server.attempts("/healthz")]
    gaps = [later - earlier for earlier, later in itertools.pairwise(probes)]
    assert report.status == 200 and len(probes) == 5  # at 0, ~1, ~2, ~3 s (503) and ~4 s (200)
    assert all(0.99 <= gap <= 1.3 for gap in gaps), gaps
    assert probes[-1] - server.ready_at < 1.1
    err = capfd.readouterr().err
    assert err.count("[faas-deploy] admin API not ready at") == 4  # one line per retry
    assert re.search(r"not ready at \S+/healthz: HTTP 503 \(\d+ s left\); attempt 2 in (0\.9|1\.0) s", err), err


def test_readiness_honours_retry_after_and_ends_when_it_is_past_the_deadline():
    plan = [Answer(503, {"Retry-After": "1"}), Answer(503, {"Retry-After": "60"})]
    with AdminApiServer(TOKEN, health_plan=plan) as server:
        started = time.monotonic()
        with pytest.raises(UserError, match=r"retry after 60 s, past the deadline"):
            readiness.wait_until_ready(server.url, timeout=10, poll=FAST_POLL, quiet=True)
        probes = [r.at for r in server.attempts("/healthz")]
        assert time.monotonic() - started < 2
    assert len(probes) == 2 and probes[1] - probes[0] >= 0.95  # waited the second asked for, not the 0.05 s poll


def test_poll_settings_are_checked():
    with pytest.raises(UserError, match="interval > 0"):
        readiness.Poll(interval=0)


# -- upload ---------------------------------------------------------------------


def test_upload_retries_500_then_accepts_exactly_once(bundle, secret, capfd):
    with AdminApiServer(TOKEN, upload_plan=[500]) as server:
        result = admin_api.upload_bundle(server.url, bundle, secret, timeout=10, backoff=FAST)
        posts = server.attempts("/admin/manifests", "POST")
        accepted = list(server.accepted)
    assert [p.outcome for p in posts] == ["HTTP 500", "HTTP 201"]
    assert len(accepted) == 1
    assert accepted[0].data == bundle.path.read_bytes()
    assert accepted[0].sha256_header == bundle.sha256
    assert accepted[0].content_type == "application/zip" and accepted[0].filename == "dev.zip"
    assert result.status == 201 and result.attempts == 2 and result.seen == {"HTTP 500": 1}
    assert '"files": 4' in result.answer
    out = capfd.readouterr()
    assert_no_token(out.out, out.err, repr(result))


def test_connection_reset_mid_upload_is_retried(big_bundle, secret):
    with AdminApiServer(TOKEN, upload_plan=[Reset(0.3)]) as server:
        result = admin_api.upload_bundle(server.url, big_bundle, secret, timeout=20, backoff=FAST, quiet=True)
        posts = server.attempts("/admin/manifests", "POST")
        accepted = list(server.accepted)
    assert big_bundle.size > 3_000_000
    assert [p.outcome for p in posts] == ["reset", "HTTP 201"]
    assert result.attempts == 2 and set(result.seen) <= {"connection reset", "connection closed"}
    assert len(accepted) == 1 and accepted[0].data == big_bundle.path.read_bytes()


def test_wrong_token_fails_at_once_without_showing_it(bundle):
    with AdminApiServer("the-right-one") as server:
        with pytest.raises(UserError) as caught:
            admin_api.upload_bundle(
                server.url, bundle, SecretValue(TOKEN, "env:X"), timeout=30, backoff=FAST, quiet=True
            )
        # refused at the GET of the current bundle, before any byte of the bundle is sent
        assert len(server.attempts("/admin/manifests")) == 1 and not server.accepted
    text = str(caught.value)
    assert "HTTP 401" in text and "refused the token" in text
    assert_no_token(text, repr(caught.value))


def test_too_large_fails_at_once_with_status_and_excerpt(bundle, secret):
    body = "bundle exceeds the 1 MiB limit " + "x" * 500
    with AdminApiServer(TOKEN, upload_plan=[Answer(413, body=body)]) as server:
        with pytest.raises(UserError) as caught:
            admin_api.upload_bundle(server.url, bundle, secret, timeout=30, backoff=FAST, quiet=True)
        assert len(server.attempts("/admin/manifests", "POST")) == 1 and not server.accepted
    text = str(caught.value)
    assert "HTTP 413" in text and "bundle exceeds the 1 MiB limit" in text
    assert f"({bundle.size} bytes)" in text
    assert "x" * 300 not in text  # a short excerpt, not the whole answer


def test_an_answer_echoing_the_token_is_redacted(bundle, secret):
    with AdminApiServer(TOKEN, upload_plan=[EchoAuth(400)]) as server:
        with pytest.raises(UserError) as caught:
            admin_api.upload_bundle(server.url, bundle, secret, timeout=30, backoff=FAST, quiet=True)
    text = str(caught.value)
    assert "Authorization: Bearer ***" in text
    assert_no_token(text)


def test_429_retry_after_is_honoured(bundle, secret):
    plan = [Answer(429, {"Retry-After": "1"}), Answer(503, {"Retry-After": formatdate(time.time() + 3, usegmt=True)})]
    with AdminApiServer(TOKEN, upload_plan=plan) as server:
        admin_api.upload_bundle(server.url, bundle, secret, timeout=20, backoff=FAST, quiet=True)
        posts = server.attempts("/admin/manifests", "POST")
    assert [p.outcome for p in posts] == ["HTTP 429", "HTTP 503", "HTTP 201"]
    assert posts[1].at - posts[0].at >= 0.95  # waited the second asked for, not the 0.05 s backoff
    assert posts[2].at - posts[1].at >= 0.9  # an HTTP date ~2 s ahead by then (whole seconds: at least 1 s)
    assert len(server.accepted) == 1


def test_retry_after_past_the_deadline_ends_at_once(bundle, secret):
    with AdminApiServer(TOKEN, upload_plan=[Answer(503, {"Retry-After": "120"})]) as server:
        started = time.monotonic()
        with pytest.raises(UserError, match=r"retry after 120 s, past the deadline.*kept at"):
            admin_api.upload_bundle(server.url, bundle, secret, timeout=5, backoff=FAST, quiet=True)
        assert time.monotonic() - started < 1
        assert len(server.attempts("/admin/manifests", "POST")) == 1


def test_upload_deadline_is_honoured_with_counts(bundle, secret):
    with AdminApiServer(TOKEN, upload_plan=[500] * 1000) as server:
        started = time.monotonic()
        with pytest.raises(UserError) as caught:
            admin_api.upload_bundle(server.url, bundle, secret, timeout=1.0, backoff=FAST, quiet=True)
        took = time.monotonic() - started
        posts = len(server.attempts("/admin/manifests", "POST"))
    assert 0.8 <= took < 1.2
    text = str(caught.value)
    assert f"{posts} attempts: HTTP 500 x{posts}" in text
    assert re.search(r"not accepted after (0\.[89]|1\.[01]) s \(deadline 1 s; ", text)
    assert str(bundle.path) in text and not server.accepted


def test_bad_admin_url_and_token_are_refused_before_any_request(bundle):
    with pytest.raises(UserError, match="holds credentials"):
        admin_api.upload_bundle("http://user:pw@127.0.0.1:1", bundle, TOKEN, timeout=1)
    with pytest.raises(UserError, match="expected http"):
        readiness.wait_until_ready("ftp://127.0.0.1:1", timeout=1)
    with pytest.raises(UserError) as caught:
        admin_api.upload_bundle("http://127.0.0.1:1", bundle, SecretValue(TOKEN + "\n", "file:/t"), timeout=1)
    assert "line breaks" in str(caught.value) and "file:/t" in str(caught.value)
    assert_no_token(str(caught.value))


def test_upload_manifests_waits_then_uploads_once_under_one_deadline(bundle, secret, capfd, caplog):
    caplog.set_level(logging.DEBUG)  # httpx/httpcore debug logs must not carry the token either
    plan = [500, Reset(0.5)]
    with AdminApiServer(TOKEN, listen_after=0.3, unready_for=0.8, upload_plan=plan) as server:
        line = admin_api.upload_when_ready(server.url, bundle, secret, timeout=15, poll=FAST_POLL, backoff=FAST)
        accepted = list(server.accepted)
        outcomes = [r.outcome for r in server.requests if r.method == "POST" or r.path == "/healthz"]
    assert line.startswith(f"uploaded {bundle.sha256} ({bundle.size} bytes, 4 files) to {server.url}/admin/manifests:")
    assert "HTTP 201" in line
    assert len(accepted) == 1 and accepted[0].data == bundle.path.read_bytes()
    assert outcomes[-3:] == ["HTTP 500", "reset", "HTTP 201"] and "HTTP 200" in outcomes
    out = capfd.readouterr()
    assert "admin API ready" in out.err
    assert "HTTP Request: POST" in caplog.text
    assert_no_token(out.out, out.err, line, caplog.text)


# -- the CLI, end to end --------------------------------------------------------


def run_installed_cli(*args: str, token: str = TOKEN) -> subprocess.CompletedProcess:
    env = {**os.environ, "ADMIN_TOKEN": token}
    return subprocess.run([str(FAAS_DEPLOY), "--source", str(REPO), *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_cli_upload_manifests_against_an_api_that_becomes_ready_later(tmp_path):
    out = tmp_path / "artifacts" / "dev.zip"
    with AdminApiServer(TOKEN, listen_after=1.0, unready_for=2.0, upload_plan=[503]) as server:
        started = time.monotonic()
        done = run_installed_cli(
            "upload-bundle",
            "--env",
            "dev",
            "--admin-url",
            server.url,
            "--admin-token",
            "env:ADMIN_TOKEN",
            "--timeout",
            "30",
            "--out",
            str(out),
        )
        took = time.monotonic() - started
        accepted = list(server.accepted)
        first_ok = min(r.at for r in server.attempts("/healthz") if r.outcome == "HTTP 200")
    assert done.returncode == 0, done.stderr
    assert len(accepted) == 1 and accepted[0].data == out.read_bytes()
    assert first_ok >= server.ready_at
    digest = accepted[0].sha256_header
    assert done.stdout.startswith(f"uploaded {digest} (") and "HTTP 201" in done.stdout
    assert f"sha256:{digest}" in done.stderr  # the bundle line comes first
    assert took < 20  # ready after 2 s; backoff capped at 4 s + 1 s jitter: not the 30 s deadline
    assert_no_token(done.stdout, done.stderr)


def test_cli_keeps_the_bundle_when_the_upload_is_refused(tmp_path):
    out = tmp_path / "dev.zip"
    with AdminApiServer("another-token") as server:
        done = run_installed_cli(
            "upload-bundle",
            "--env",
            "dev",
            "--admin-url",
            server.url,
            "--admin-token",
            "env:ADMIN_TOKEN",
            "--timeout",
            "10",
            "--out",
            str(out),
        )
        assert not server.accepted
    assert done.returncode == 1
    assert "HTTP 401" in done.stderr and "Traceback" not in done.stderr
    assert out.is_file() and f"bundle {out} sha256:" in done.stderr
    assert_no_token(done.stdout, done.stderr)
