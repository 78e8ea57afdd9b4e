"""A throwaway copy of the repository's env/ tree, for tests that edit configs."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def copy_repo(dest: Path) -> Path:
    """Copy ``env/`` into ``dest`` (the source root of a workspace); returns ``dest``."""
    shutil.copytree(REPO_ROOT / "env", dest / "env")
    return dest


def config_file(source: Path, env: str, component: str) -> Path:
    return source / "env" / env / component / "cookiecutter-config.yaml"


def set_scalar(path: Path, key: str, value: str) -> None:
    """Set ``key: "value"`` in a config file by editing its text (as a developer would)."""
    text = path.read_text()
    new, count = re.subn(rf'(?m)^(\s+{re.escape(key)}:\s*).*$', lambda m: f'{m.group(1)}"{value}"', text, count=1)
    assert count == 1, f"{key} not found in {path}"
    path.write_text(new)


def get_scalar(path: Path, key: str) -> str:
    match = re.search(rf'(?m)^\s+{re.escape(key)}:\s*"?([^"\n#]*)"?', path.read_text())
    assert match, f"{key} not found in {path}"
    return match.group(1).strip()
