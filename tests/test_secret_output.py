"""Secrets stay out of output: server answers are summarized, never echoed raw; a secret rides only its own flag.

The admin API double (``support/admin_api_server.py``) is scripted to answer with
bodies that carry the token cut in the ways a careless server or proxy would (a
prefix, a suffix, halves, with control characters); every message must be free of
any 8-character run of the token. The CLI runs in-process with the token in an
environment variable, as in CI.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faas_deployment import door
from faas_deployment.bundle import admin_api, admin_http
from faas_deployment.core.errors import UserError
from faas_deployment.core.secrets import SHARED_CHARS, SecretValue, sanitize
from support.admin_api_client import FAST, TOKEN
from support.admin_api_server import AdminApiServer, Answer


def _leaks(text: str, value: str = TOKEN) -> list[str]:
    """Every run of SHARED_CHARS characters of ``value`` found in ``text``."""
    return [value[i:i + SHARED_CHARS] for i in range(len(value) - SHARED_CHARS + 1)
            if value[i:i + SHARED_CHARS] in text]


CUTS = {
    "minus-last-three": f"invalid token {TOKEN[:-3]}",
    "minus-first-three": f"invalid token '{TOKEN[3:]}'",
    "halves": f'{{"error": "bad bearer", "got": ["{TOKEN[:8]}", "{TOKEN[8:]}"]}}',
    "control": f"\x1b[31mdenied\x1b[0m for Bearer {TOKEN[:-1]}\r\n",
    "html": f"<html><body><p>token={TOKEN[:-2]}</p></body></html>",
}


@pytest.mark.parametrize("body", CUTS.values(), ids=CUTS.keys())
def test_an_upload_refusal_never_echoes_a_part_of_the_token(bundle, secret, body):
    with AdminApiServer(TOKEN, upload_plan=[Answer(400, body=body)]) as server, pytest.raises(UserError) as caught:
        admin_api.upload_bundle(server.url, bundle, secret, timeout=30, backoff=FAST, quiet=True)
    text = str(caught.value)
    assert "HTTP 400" in text and not _leaks(text), text
    assert "\x1b" not in text and "\r" not in text


@pytest.mark.parametrize("body", CUTS.values(), ids=CUTS.keys())
def test_an_accepted_answer_is_summarized_without_a_part_of_the_token(bundle, secret, body):
    with AdminApiServer(TOKEN, upload_plan=[Answer(201, body=body)]) as server:
        result = admin_api.upload_bundle(server.url, bundle, secret, timeout=30, backoff=FAST, quiet=True)
    assert result.status == 201 and not _leaks(result.answer), result.answer
    assert len(result.answer) <= admin_http.EXCERPT_CHARS


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(secret=st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="\"'`<>()[]{},;"),
                      min_size=SHARED_CHARS, max_size=40),
       start=st.integers(0, 40), length=st.integers(SHARED_CHARS, 40),
       before=st.text(max_size=30), after=st.text(max_size=30))
def test_sanitize_hides_every_long_enough_piece_of_a_secret(secret, start, length, before, after):
    piece = secret[start:start + length]
    text = sanitize(f"{before} {piece} {after}", SecretValue(secret, "env:FUZZ"))
    if len(piece) >= SHARED_CHARS:
        assert piece not in text
    assert secret not in text


@pytest.mark.parametrize(("flag", "value"), [
    ("--ready-path", "/healthz?token={token}"),
    ("--upload-path", "/admin/{token}/manifests"),
    ("--admin-url", "http://127.0.0.1:9/{token}"),
])
def test_a_secret_inside_another_flag_is_refused_before_any_request(run_cli, monkeypatch, flag, value):
    monkeypatch.setenv("ADMIN_TOKEN", TOKEN)
    with AdminApiServer(TOKEN) as server:
        args = ["upload-bundle", "--env", "dev", "--admin-token", "env:ADMIN_TOKEN", "--admin-url", server.url,
                "--timeout", "5", flag, value.format(token=TOKEN)]
        code, out, err = run_cli(*args)
        assert code == 1 and f"--admin-token: its secret value also appears inside {flag}" in err, err
        assert TOKEN not in out + err and "Traceback" not in err
        assert server.attempts("/healthz") == [] and not server.accepted


def test_a_registry_password_inside_the_registry_url_is_refused(run_cli, monkeypatch, tmp_path):
    monkeypatch.setenv("REGISTRY_PASSWORD", "pw-abcdef123456")
    code, out, err = run_cli("publish", "--env", "dev", "--component", "operator", "--registry",
                             "oci://127.0.0.1:9/charts/pw-abcdef123456", "--username", "ci", "--password",
                             "env:REGISTRY_PASSWORD", "--plain-http", "--timeout", "3")
    assert code == 1 and "--password: its secret value also appears inside --registry" in err, err
    assert "pw-abcdef123456" not in out + err


def test_the_door_refuses_a_secret_inside_another_argument_for_both_front_ends(tmp_path):
    """The Dagger front end hands the door resolved secrets: the door itself checks the other arguments."""
    from faas_deployment.door import Registry, Workspace
    from support.repo_tree import copy_repo

    password = SecretValue("pw-door-0123456789", "dagger secret password")
    with pytest.raises(UserError, match="--password: its secret value also appears inside --registry") as caught:
        Registry("oci://127.0.0.1:9/charts/pw-door-0123456789", "ci", password).credentials()
    assert "pw-door-0123456789" not in str(caught.value)
    ws = Workspace(copy_repo(tmp_path / "src"))
    token = SecretValue("rx-door-9876543210", "dagger secret receiver_token")
    with pytest.raises(UserError, match="--receiver-token: its secret value also appears inside --receiver-url"):
        door.deploy.deploy(ws, "dev", registry=Registry("oci://127.0.0.1:9/charts"), receiver_token=token,
                           kubeconfig=None, receiver_url="https://flux.example.org/rx-door-9876543210", timeout=3)
