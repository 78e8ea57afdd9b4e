"""Transient registry failures: a fault-injecting HTTP proxy on 127.0.0.1 in front of the real registry."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from faas_deployment import oci
from faas_deployment.cli import main
from repo_tree import copy_repo

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}


@dataclass
class Faults:
    """What the proxy does to the next requests: a list of "503" or "reset", then forward."""

    plan: list[str] = field(default_factory=list)
    always: str | None = None
    injected: int = 0
    forwarded: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self) -> str | None:
        with self.lock:
            if self.always:
                self.injected += 1
                return self.always
            if self.plan:
                self.injected += 1
                return self.plan.pop(0)
            self.forwarded += 1
            return None


@pytest.fixture
def faulty_proxy(registry) -> Iterator[tuple[str, Faults]]:
    faults = Faults()
    upstream = httpx.Client(base_url=registry.url, timeout=30)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _handle(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            fault = faults.next()
            if fault == "reset":
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if fault == "503":
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            answer = upstream.request(self.command, self.path, headers=headers, content=body)
            self.send_response(answer.status_code)
            for key, value in answer.headers.items():
                if key.lower() not in HOP_BY_HOP | {"content-encoding"}:
                    self.send_header(key, value)
            payload = b"" if self.command == "HEAD" else answer.content
            self.send_header("Content-Length", str(len(payload) if self.command != "HEAD" else answer.headers.get("content-length", 0)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", faults
    finally:
        server.shutdown()
        server.server_close()
        upstream.close()


@pytest.fixture
def fast_retries(monkeypatch):
    """Shorter waits for the test; the policy (what is retried, how often) stays the same."""
    import tenacity

    monkeypatch.setattr(oci._Registry.do_request.retry, "wait", tenacity.wait_exponential_jitter(multiplier=0.05, max=0.2))
    monkeypatch.setattr(oci._GuardedSession.ping.retry, "wait", tenacity.wait_exponential_jitter(multiplier=0.05, max=0.2))


def release(tmp_path: Path, host: str, registry, capsys) -> tuple[int, str, str]:
    source = tmp_path / "src"
    if not source.exists():
        copy_repo(source)
    code = main([
        "--source", str(source), "release", "--env", "prod",
        "--registry", f"oci://{host}/charts", "--username", registry.username,
        "--password", "env:TEST_REGISTRY_PASSWORD", "--plain-http",
    ])
    out, err = capsys.readouterr()
    return code, out, err


def test_503s_and_a_reset_connection_are_retried(registry, faulty_proxy, fast_retries, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", registry.password)
    host, faults = faulty_proxy
    faults.plan = ["503", "503", "reset", "503"]
    code, out, err = release(tmp_path, host, registry, capsys)
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()] == ["pushed", "pushed"]
    assert faults.injected == 4
    # What was pushed through the faults is intact: a second run finds the same digests.
    code, out2, err = release(tmp_path, host, registry, capsys)
    assert code == 0 and [line.split()[0] for line in out2.splitlines()] == ["unchanged", "unchanged"]
    assert [line.split()[1] for line in out2.splitlines()] == [line.split()[1] for line in out.splitlines()]


def test_a_registry_that_stays_down_fails_after_the_bounded_attempts(registry, faulty_proxy, fast_retries, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", registry.password)
    host, faults = faulty_proxy
    faults.always = "503"
    code, out, err = release(tmp_path, host, registry, capsys)
    assert code == 1 and out == ""
    assert "503" in err and "Traceback" not in err and registry.password not in err
    # Each chart's publish pings the registry on its own client, retried, then given up.
    assert faults.injected == 2 * oci.RETRY_ATTEMPTS
    assert faults.forwarded == 0
