"""Shared fixtures: real parts started on 127.0.0.1 and stopped by the test session."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Registry:
    """A running Debian ``docker-registry`` (distribution 2.8) with htpasswd auth."""

    host: str  # "127.0.0.1:PORT"
    username: str
    password: str
    storage: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def blob_uploads(self) -> int:
        """Count of blob uploads the registry has started (``POST /v2/.../blobs/uploads/``)."""
        return len(re.findall(r'"POST /v2/[^ ]*/blobs/uploads/', self.log_text()))


def _start_registry(root: Path, username: str, password: str) -> tuple[subprocess.Popen, Registry]:
    if not shutil.which("docker-registry") or not shutil.which("htpasswd"):
        pytest.fail("docker-registry and htpasswd are required: apt-get install docker-registry apache2-utils")
    htpasswd = root / "htpasswd"
    htpasswd.write_text(
        subprocess.run(["htpasswd", "-Bbn", username, password], check=True, capture_output=True, text=True).stdout
    )
    config = root / "config.yml"
    config.write_text(
        f"""version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {root / "data"}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:0
  secret: test-only-http-secret
auth:
  htpasswd:
    realm: faas-test
    path: {htpasswd}
"""
    )
    log = root / "registry.log"
    handle = log.open("w")
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(config)],
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 15
    host = None
    while time.monotonic() < deadline and host is None:
        match = re.search(r"listening on (127\.0\.0\.1:\d+)", log.read_text(errors="replace"))
        if match:
            host = match.group(1)
        elif proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()}")
        else:
            time.sleep(0.05)
    if host is None:
        proc.kill()
        raise RuntimeError("docker-registry did not start within 15 s")
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://{host}/v2/", timeout=1).status_code in (200, 401):
                break
        except httpx.TransportError:
            time.sleep(0.05)
    return proc, Registry(host, username, password, root / "data", log)


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A fresh registry per test (empty storage), user ``ci`` with a random password."""
    root = tmp_path_factory.mktemp("registry")
    password = "pw-" + os.urandom(9).hex()
    proc, reg = _start_registry(root, "ci", password)
    try:
        yield reg
    finally:
        _stop(proc)
