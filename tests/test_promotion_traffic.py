"""promote and bump --merge-request against hostile GitLab and git servers on loopback.

Each case runs the real CLI in a process (``--timeout 3``) against a real server:
a redirect to another origin, an HTML login page, silence, one byte a second.
The classes checked per case: traceback, hang, secret-leak (the token at another
origin or in the output), deadline-overrun (past deadline + 2 s).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from test_promotion import TOKEN, make_checkout

from support.gitlab_api_server import GitLabApi
from support.loopback import LoopbackServer
from support.registry_proxy import recording_server, stalling_server

REPO = Path(__file__).resolve().parents[1]
DEADLINE = 3.0


@pytest.fixture()
def checkout(tmp_path: Path) -> Path:
    return make_checkout(tmp_path)

CLI = [sys.executable, "-c", "import sys; from faas_deployment.cli import main; sys.exit(main())"]


class Answering(LoopbackServer):
    """Answers every request with ``status``, ``headers`` and ``body``, recording the headers it got."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes = b""):
        self.seen: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _any(self):
                server.seen.append(dict(self.headers))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _any

        super().__init__(Handler)


LOGIN_PAGE = b"<!DOCTYPE html><html><head><title>Sign in - GitLab</title></head><body>login</body></html>"


def run(checkout: Path, verb: list[str], *, gitlab_url: str, remote: str | None = None) -> tuple[int, str, str, float]:
    argv = [*CLI, "--source", str(checkout), *verb, "--merge-request", "--gitlab-url", gitlab_url,
            "--gitlab-project", "eo4eu-faas/faas-deployment", "--gitlab-token", "env:GITLAB_TOKEN",
            "--timeout", str(DEADLINE)]
    if remote:
        argv += ["--remote", remote]
    env = {**os.environ, "GITLAB_TOKEN": TOKEN, "PYTHONPATH": str(REPO / "dagger" / "src")}
    started = time.monotonic()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=DEADLINE + 30, check=False)
    except subprocess.TimeoutExpired:
        return -1, "", "hang", time.monotonic() - started
    return done.returncode, done.stdout, done.stderr, time.monotonic() - started


PROMOTE = ["promote", "--from", "dev", "--to", "prod", "--component", "controller"]
BUMP = ["bump", "--env", "dev", "--component", "controller", "--image-tag", "0f3c2d1"]


def classify(code: int, out: str, err: str, elapsed: float, foreign_headers: list[dict[str, str]]) -> set[str]:
    """The failure classes of one run (empty: it failed cleanly, in time, leaking nothing)."""
    found = set()
    if code == -1:
        found.add("hang")
    if "Traceback" in err or "Error:" in err.split("faas-deploy: error:")[0]:
        found.add("traceback")
    if elapsed > DEADLINE + 2:
        found.add("deadline-overrun")
    if TOKEN in out + err or any(TOKEN in " ".join(h.values()) for h in foreign_headers):
        found.add("secret-leak")
    if code != 1:
        found.add(f"exit {code}")
    return found


@pytest.mark.parametrize("verb", [PROMOTE, BUMP], ids=["promote", "bump"])
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_gitlab_redirect_to_another_origin_never_gets_the_token(checkout, verb, status):
    with recording_server(200) as (foreign, recorder), \
            Answering(status, {"Location": f"http://{foreign}/api/v4/projects"}) as gitlab:
        code, out, err, elapsed = run(checkout, verb, gitlab_url=gitlab.url)
    assert classify(code, out, err, elapsed, [h for _, h in recorder.requests]) == set(), err
    assert recorder.requests == [] and f"a redirect to http://{foreign}" in err, err
    assert "PRIVATE-TOKEN" in gitlab.seen[0]  # the configured GitLab got it: the one place it belongs


def test_a_next_page_link_to_another_origin_is_not_followed(checkout):
    """python-gitlab follows a list's ``Link: <...>; rel="next"`` wherever it points."""
    origin = checkout.parent / "origin.git"
    with recording_server(200) as (foreign, recorder), GitLabApi(TOKEN, remote=origin) as api:
        page = Answering(200, {"Content-Type": "application/json",
                               "Link": f'<http://{foreign}/api/v4/projects/42/merge_requests?page=2>; rel="next"'},
                         b"[]")
        with page:
            # The double answers the merge request list through `page`'s Link header: route the list there.
            code, out, err, elapsed = run(checkout, PROMOTE, gitlab_url=page.url)
    assert recorder.requests == [] and TOKEN not in out + err
    assert code == 1 and "Traceback" not in err and elapsed < DEADLINE + 2, err
    assert api.requests == []


def test_a_gitlab_url_with_user_info_is_refused_without_being_echoed(checkout):
    with GitLabApi(TOKEN) as api:
        url = api.url.replace("http://", f"http://oauth2:{TOKEN}@")
        code, out, err, elapsed = run(checkout, PROMOTE, gitlab_url=url)
    assert code == 1 and "--gitlab-url: the URL holds credentials" in err and elapsed < DEADLINE + 2, err
    assert TOKEN not in out + err and "oauth2" not in err and api.requests == []


@pytest.mark.parametrize("mode", ["silent", "drip"])
@pytest.mark.parametrize("verb", [PROMOTE, BUMP], ids=["promote", "bump"])
def test_a_silent_or_dripping_gitlab_ends_within_the_deadline(checkout, verb, mode):
    with stalling_server(mode) as address:
        code, out, err, elapsed = run(checkout, verb, gitlab_url=f"http://{address}")
    assert classify(code, out, err, elapsed, []) == set(), (elapsed, err)
    assert "deadline of 3 s" in err, err


def test_an_html_login_page_from_gitlab_is_a_clear_error(checkout):
    with Answering(200, {"Content-Type": "text/html"}, LOGIN_PAGE) as gitlab:
        code, out, err, elapsed = run(checkout, PROMOTE, gitlab_url=gitlab.url)
    assert classify(code, out, err, elapsed, []) == set(), err
    assert "not GitLab's JSON" in err and "<html" not in err


# --------------------------------------------------------------------------- the git remote


@pytest.mark.parametrize("verb", [PROMOTE, BUMP], ids=["promote", "bump"])
@pytest.mark.parametrize("status", [301, 302, 307])
def test_a_git_remote_redirect_to_another_origin_is_not_followed(checkout, verb, status):
    with recording_server(200) as (foreign, recorder), GitLabApi(TOKEN) as api, \
            Answering(status, {"Location": f"http://{foreign}/x/y.git/info/refs?service=git-upload-pack"}) as remote:
        code, out, err, elapsed = run(checkout, verb, gitlab_url=api.url, remote=f"{remote.url}/x/y.git")
    assert classify(code, out, err, elapsed, [h for _, h in recorder.requests]) == set(), err
    assert recorder.requests == [] and f"HTTP {status} (a redirect), which is not followed" in err, err
    assert api.requests == []  # nothing reaches GitLab when the remote fails


@pytest.mark.parametrize(
    "page",
    [
        (200, "text/html", LOGIN_PAGE),
        (200, "application/x-git-upload-pack-advertisement", b"garbage\x00\xff"),
        (500, "text/html", LOGIN_PAGE),
    ],
    ids=["login-page", "garbage", "500"],
)
def test_a_git_remote_that_does_not_speak_git_is_one_clear_error(checkout, page):
    status, content_type, body = page
    with GitLabApi(TOKEN) as api, Answering(status, {"Content-Type": content_type}, body) as remote:
        code, out, err, elapsed = run(checkout, PROMOTE, gitlab_url=api.url, remote=f"{remote.url}/x/y.git")
    assert classify(code, out, err, elapsed, []) == set(), err
    assert err.count("faas-deploy: error: git fetch") == 1 and "<html" not in err, err


@pytest.mark.parametrize("mode", ["silent", "drip"])
@pytest.mark.parametrize("verb", [PROMOTE, BUMP], ids=["promote", "bump"])
def test_a_silent_or_dripping_git_remote_ends_within_the_deadline(checkout, verb, mode):
    with stalling_server(mode) as address, GitLabApi(TOKEN) as api:
        code, out, err, elapsed = run(checkout, verb, gitlab_url=api.url, remote=f"http://{address}/x/y.git")
    assert classify(code, out, err, elapsed, []) == set(), (elapsed, err)
    assert "deadline of 3 s" in err and api.requests == [], err
