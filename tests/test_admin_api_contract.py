"""The admin API contract of docs/admin-api.md: exactly-once upload, one deadline, safe URLs.

Against the loopback double (``support/admin_api_server.py``), which stores uploads and
then fails the ways a real server can (reset or 5xx after storing).
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import time

import httpx
import pytest

from faas_deployment.bundle import admin_api, admin_http, readiness
from faas_deployment.core.errors import UserError
from support.admin_api_client import FAAS_DEPLOY, FAST, FAST_POLL, TOKEN
from support.admin_api_server import AdminApiServer, Answer, Drip, Reset, StoreThen
from support.repo_tree import REPO_ROOT as REPO

UPLOAD = "/admin/manifests"


# -- exactly once ---------------------------------------------------------------

FAULTS = {
    "stored then reset": [StoreThen(0)],
    "stored then 500": [StoreThen(500)],
    "stored then 503": [StoreThen(503)],
    "stored then 500 twice": [StoreThen(500), StoreThen(500)],
    "reset before storing": [Reset(0.5)],
    "500 before storing": [500],
    "stored, reset, then the GET fails": [StoreThen(0)],
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_one_stored_bundle_under_every_fault(fault, bundle, secret):
    current_plan = [503] if "GET fails" in fault else []
    with AdminApiServer(TOKEN, upload_plan=list(FAULTS[fault]), current_plan=current_plan) as server:
        line = admin_api.upload_when_ready(
            server.url, bundle, secret, timeout=20, poll=FAST_POLL, backoff=FAST, quiet=True
        )
        assert len(server.accepted) == 1, [r.outcome for r in server.requests]
        assert server.accepted[0].data == bundle.path.read_bytes()
        assert line.startswith(f"uploaded {bundle.sha256} ")
        # a second run: nothing sent, says unchanged
        posts = len(server.attempts(UPLOAD, "POST"))
        again = admin_api.upload_when_ready(
            server.url, bundle, secret, timeout=20, poll=FAST_POLL, backoff=FAST, quiet=True
        )
        assert again.startswith(f"unchanged {bundle.sha256} ") and f"at {server.url}{UPLOAD}" in again
        assert len(server.attempts(UPLOAD, "POST")) == posts and len(server.accepted) == 1


def test_a_repeated_post_gets_the_same_answer_and_stores_nothing(admin_api_server, bundle):
    headers = {"Authorization": f"Bearer {TOKEN}", admin_api.SHA256_HEADER: bundle.sha256,
               admin_api.IDEMPOTENCY_HEADER: bundle.sha256}
    answers = []
    for _ in range(3):
        with bundle.path.open("rb") as handle:
            r = httpx.post(
                admin_api_server.url + UPLOAD, headers=headers, files={"file": ("dev.zip", handle, "application/zip")}
            )
        answers.append((r.status_code, r.text))
    current = httpx.get(admin_api_server.url + UPLOAD, headers={"Authorization": f"Bearer {TOKEN}"})
    assert len(admin_api_server.accepted) == 1
    assert answers[0][0] == 201 and answers == [answers[0]] * 3
    assert current.json() == {"sha256": bundle.sha256}


def test_the_client_sends_the_idempotency_key(admin_api_server, bundle, secret):
    admin_api.upload_bundle(admin_api_server.url, bundle, secret, timeout=10, backoff=FAST, quiet=True)
    assert admin_api_server.answers.keys() == {bundle.sha256}


def test_a_get_answer_outside_the_contract_is_refused(bundle, secret):
    with AdminApiServer(TOKEN, current_plan=[Answer(200, body="[1, 2]")]) as server:
        with pytest.raises(UserError, match=r'not \{"sha256"'):
            admin_api.upload_bundle(server.url, bundle, secret, timeout=10, backoff=FAST, quiet=True)
        assert not server.accepted


# -- one deadline ---------------------------------------------------------------


def test_cli_upload_manifests_ends_by_its_deadline_against_a_dripping_server(tmp_path):
    with AdminApiServer(TOKEN, health_plan=[Drip(1.0)] * 20) as server:
        started = time.monotonic()
        done = subprocess.run(
            [str(FAAS_DEPLOY), "--source", str(REPO), "upload-bundle", "--env", "dev", "--admin-url", server.url,
             "--admin-token", "env:ADMIN_TOKEN", "--timeout", "5", "--out", str(tmp_path / "dev.zip")],
            env={**os.environ, "ADMIN_TOKEN": TOKEN}, capture_output=True, text=True, timeout=60,
        )
        took = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert "not ready after" in done.stderr and "Traceback" not in done.stderr
    reported = re.search(r"not ready after ([0-9.]+) s", done.stderr)
    assert reported and float(reported.group(1)) < 5 + 2  # the deadline + 2 s, measured by the run itself
    assert took < 25  # and the whole process (start-up and bundling included) ends: no 40 s drip


def test_a_dripping_upload_answer_ends_by_the_deadline(bundle, secret):
    with AdminApiServer(TOKEN, upload_plan=[Drip(0.5)] * 20) as server:
        started = time.monotonic()
        with pytest.raises(UserError, match="not accepted after"):
            admin_api.upload_bundle(server.url, bundle, secret, timeout=2, request_timeout=60, backoff=FAST, quiet=True)
        assert time.monotonic() - started < 2 + 1


def test_retry_after_zero_or_past_keeps_the_backoff(bundle, secret):
    slow = admin_api.Backoff(initial=0.3, cap=0.3, jitter=0)
    plan = [Answer(503, {"Retry-After": "0"}), Answer(503, {"Retry-After": "Thu, 01 Jan 1970 00:00:00 GMT"}), 503]
    with AdminApiServer(TOKEN, upload_plan=plan) as server:
        admin_api.upload_bundle(server.url, bundle, secret, timeout=20, backoff=slow, quiet=True)
        posts = server.attempts(UPLOAD, "POST")
    assert [p.outcome for p in posts] == ["HTTP 503", "HTTP 503", "HTTP 503", "HTTP 201"]
    gaps = [b.at - a.at for a, b in itertools.pairwise(posts)]
    assert all(gap >= 0.28 for gap in gaps), gaps


# -- URLs -------------------------------------------------------------------------


def test_a_query_in_a_path_is_refused(bundle, secret):
    with pytest.raises(UserError, match="--upload-path: the path holds a query"):
        admin_api.upload_bundle("http://127.0.0.1:1", bundle, secret, upload_path="/admin/manifests?x=1", timeout=1)
    with pytest.raises(UserError, match="--ready-path: the path holds a query"):
        readiness.wait_until_ready("http://127.0.0.1:1", ready_path="/healthz#x", timeout=1)


def test_credentials_in_the_admin_url_are_refused_without_echoing_them(bundle, secret):
    with pytest.raises(UserError, match="holds credentials") as caught:
        admin_api.upload_bundle("https://ci:hunter2@admin.example.org", bundle, secret, timeout=1)
    assert "hunter2" not in str(caught.value)


def test_a_token_over_plain_http_to_another_host_is_warned_about(bundle, secret, capsys):
    with pytest.raises(UserError):
        admin_api.upload_bundle("http://10.255.255.1:9", bundle, secret, timeout=0.5, backoff=FAST, quiet=True)
    err = capsys.readouterr().err
    assert "WARNING" in err and "plain HTTP to 10.255.255.1" in err and TOKEN not in err
    admin_http.warn_plain_http("http://127.0.0.1:8080")
    admin_http.warn_plain_http("https://admin.example.org")
    assert capsys.readouterr().err == ""
