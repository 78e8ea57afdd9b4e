"""Builders of component configs and templates shared by the config, identity and chart tests.

The example configs are the repository's own ``env/<env>/<component>/cookiecutter-config.yaml``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from faas_deployment.charts import config
from faas_deployment.core import layout
from faas_deployment.core.errors import ValidationError
from support.repo_tree import REPO_ROOT

PROD_OPERATOR = REPO_ROOT / "env" / "prod" / "operator" / "cookiecutter-config.yaml"


def write_config(source: Path, data: Any, env: str = "dev", component: str = "operator") -> Path:
    """Write ``data`` (a mapping dumped as YAML, or text as is) as ``env/<env>/<component>``'s config."""
    path = source / "env" / env / component / layout.CONFIG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def example_context() -> dict[str, Any]:
    """The example prod operator config (PVC and secret enabled) as a fresh mutable ``default_context``."""
    return yaml.safe_load(PROD_OPERATOR.read_text(encoding="utf-8"))["default_context"]


def problems_of(source: Path, env: str = "dev", component: str = "operator", template: Path | None = None):
    """The ``Problem``s of the ``ValidationError`` that loading this config raises (fails if none is raised)."""
    with pytest.raises(ValidationError) as caught:
        config.load_context(source, env, component, template)
    return caught.value.problems


def make_user_template(root: Path, with_hook: bool = True) -> Path:
    """A small cookiecutter template with its own variables and a post-generation hook."""
    template = root / "user-template"
    project = template / "{{cookiecutter.chart_name}}"
    (project / "templates").mkdir(parents=True)
    (template / "cookiecutter.json").write_text(json.dumps({
        "chart_name": "demo",
        "chart_version": "0.1.0",
        "team": "platform",
        "tier": ["backend", "frontend"],
        "replica_count": 1,
        "_copy_without_render": ["templates/*"],
    }), encoding="utf-8")
    (project / "Chart.yaml").write_text(
        "apiVersion: v2\nname: {{ cookiecutter.chart_name }}\nversion: {{ cookiecutter.chart_version }}\n"
        "description: demo chart of team {{ cookiecutter.team }}\n", encoding="utf-8")
    (project / "values.yaml").write_text(
        "team: {{ cookiecutter.team | tojson }}\ntier: {{ cookiecutter.tier | tojson }}\n"
        "replicas: {{ cookiecutter.replica_count | int }}\n", encoding="utf-8")
    (project / "templates" / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-team\n"
        "data:\n  team: {{ .Values.team | quote }}\n  tier: {{ .Values.tier | quote }}\n", encoding="utf-8")
    if with_hook:
        (template / "hooks").mkdir()
        (template / "hooks" / "post_gen_project.py").write_text(
            "from pathlib import Path\n"
            "Path('templates/hooked.yaml').write_text(\n"
            "    'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: hooked\\n'\n"
            "    'data:\\n  made-by: post_gen_project\\n  team: {{ cookiecutter.team }}\\n')\n",
            encoding="utf-8")
    return template
