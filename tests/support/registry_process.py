"""A real Debian ``docker-registry`` (distribution 2.8) process on 127.0.0.1, for tests.

A plain module (not conftest) so test modules can import it: ``tests/`` holds more than
one ``conftest.py``, and ``import conftest`` would find whichever was loaded first.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml


@dataclass(frozen=True)
class Registry:
    """A running Debian ``docker-registry`` (distribution 2.8): htpasswd auth, or token auth against a token service."""

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

    def held_digest(self, repository: str, tag: str) -> str | None:
        """The digest ``repository:tag`` names now (the registry's own ``HEAD``, htpasswd auth), or ``None``."""
        answer = httpx.head(f"{self.url}/v2/{repository}/manifests/{tag}", auth=(self.username, self.password),
                            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}, timeout=30)
        return answer.headers.get("Docker-Content-Digest") if answer.status_code == 200 else None

    def tags(self, repository: str) -> list[str]:
        """The tags of ``repository`` as the registry lists them (``GET /v2/<name>/tags/list``); ``[]`` when absent."""
        answer = httpx.get(f"{self.url}/v2/{repository}/tags/list", auth=(self.username, self.password), timeout=30)
        if answer.status_code == 404:
            return []
        answer.raise_for_status()
        return sorted(answer.json().get("tags") or [])

    def blob_uploads(self) -> int:
        """Count of blob uploads the registry has started (``POST /v2/.../blobs/uploads/``)."""
        return len(re.findall(r'"POST /v2/[^ ]*/blobs/uploads/', self.log_text()))


def start_registry(
    root: Path, username: str, password: str, *, auth: dict | None = None, tls: tuple[Path, Path] | None = None
) -> tuple[subprocess.Popen, Registry]:
    """Start ``docker-registry serve`` on 127.0.0.1 with storage and log under ``root``.

    Args:
        auth: the config's ``auth`` section (distribution 2.8 configuration reference),
            e.g. ``{"token": {...}}``; ``None`` gives htpasswd auth for ``username``/``password``.
        tls: ``(certificate, key)`` PEM files: the registry speaks HTTPS (``http.tls``).

    Returns:
        The process (stop it with :func:`stop_registry`) and the running registry.
    """
    if not shutil.which("docker-registry"):
        pytest.fail("docker-registry is required: apt-get install docker-registry")
    if auth is None:
        if not shutil.which("htpasswd"):
            pytest.fail("htpasswd is required: apt-get install apache2-utils")
        htpasswd = root / "htpasswd"
        htpasswd.write_text(
            subprocess.run(["htpasswd", "-Bbn", username, password], check=True, capture_output=True, text=True).stdout
        )
        auth = {"htpasswd": {"realm": "faas-test", "path": str(htpasswd)}}
    config = root / "config.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "version": 0.1,
                "log": {"level": "info", "accesslog": {"disabled": False}},
                "storage": {
                    "filesystem": {"rootdirectory": str(root / "data")},
                    "delete": {"enabled": True},
                },
                "http": {"addr": "127.0.0.1:0", "secret": "test-only-http-secret",
                         **({"tls": {"certificate": str(tls[0]), "key": str(tls[1])}} if tls else {})},
                "auth": auth,
            },
            sort_keys=False,
        )
    )
    log = root / "registry.log"
    with log.open("w") as handle:  # the child keeps its own descriptor
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
            probe = (
                httpx.get(f"https://{host}/v2/", timeout=1, verify=ssl.create_default_context(cafile=tls[0]))
                if tls
                else httpx.get(f"http://{host}/v2/", timeout=1)
            )
            if probe.status_code in (200, 401):
                break
        except httpx.TransportError:
            time.sleep(0.05)
    return proc, Registry(host, username, password, root / "data", log)


def stop_registry(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
