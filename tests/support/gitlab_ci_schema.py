"""GitLab CI files checked against GitLab's own JSON schema (check-jsonschema's ``vendor.gitlab-ci``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def check_schema(path: Path) -> subprocess.CompletedProcess[str]:
    """``check-jsonschema`` of this venv on ``path`` (a ``.gitlab-ci.yml``); exit 0 when it validates."""
    tool = Path(sys.executable).parent / "check-jsonschema"
    return subprocess.run(
        [str(tool), "--builtin-schema", "vendor.gitlab-ci", "--data-transform", "gitlab-ci", str(path)],
        capture_output=True, text=True, timeout=120,
    )
