"""Shared fixtures: real parts started on 127.0.0.1 and stopped by the test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.registry_process import Registry, start_registry, stop_registry

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A fresh registry per test (empty storage), user ``ci`` with a random password."""
    root = tmp_path_factory.mktemp("registry")
    password = "pw-" + os.urandom(9).hex()
    proc, reg = start_registry(root, "ci", password)
    try:
        yield reg
    finally:
        stop_registry(proc)
