"""Config values are data: planted Jinja payloads run nothing and copy nothing.

Cookiecutter renders every string of its context as Jinja; a value from a
component config must never reach that step (``faas_deployment.charts.defaults``).
Only the template's own ``cookiecutter.json`` defaults render, in a sandbox.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import yaml

from faas_deployment import cli
from faas_deployment.charts import chart, config, defaults
from faas_deployment.core.errors import UserError, ValidationError
from support.repo_tree import config_file, copy_repo

SHELL = "{{ cycler.__init__.__globals__.os.popen('touch %s').read() }}"
ENVIRON = "{{ cycler.__init__.__globals__.os.environ.FAAS_TEST_SECRET }}"
MEMORY = "{{ range(10**8)|list }}"


def _plant(source: Path, key: str, payload: str) -> Path:
    path = config_file(source, "dev", "operator")
    data = yaml.safe_load(path.read_text())
    data["default_context"][key] = payload
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_shell_payload_in_a_config_runs_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = copy_repo(tmp_path / "src")
    pwned = tmp_path / "pwned.txt"
    payload = SHELL % pwned
    _plant(source, "chart_description", payload)
    out = tmp_path / "build"
    assert (
        cli.main(["--source", str(source), "chart", "--env", "dev", "--component", "operator", "--out", str(out)]) == 0
    )
    assert not pwned.exists()
    chart_yaml = yaml.safe_load(next(out.rglob("Chart.yaml")).read_text())
    assert chart_yaml["description"] == payload  # the text itself, verbatim
    assert cli.main(["--source", str(source), "check", "--env", "dev"]) == 0
    assert not pwned.exists()


def test_environ_payload_copies_no_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAAS_TEST_SECRET", "s3cr3t-value-42")
    source = copy_repo(tmp_path / "src")
    _plant(source, "chart_description", ENVIRON)
    context = config.load_context(source, "dev", "operator")
    assert context["chart_description"] == ENVIRON
    chart_dir = chart.render_chart(context, config.EMBEDDED_TEMPLATE, tmp_path / "out")
    for path in chart_dir.rglob("*"):
        if path.is_file():
            assert "s3cr3t-value-42" not in path.read_text()
    assert yaml.safe_load((chart_dir / "Chart.yaml").read_text())["description"] == ENVIRON  # the text, as data


def test_payload_in_a_dict_value_is_data(tmp_path: Path) -> None:
    pwned = tmp_path / "pwned-env.txt"
    source = copy_repo(tmp_path / "src")
    path = config_file(source, "dev", "operator")
    data = yaml.safe_load(path.read_text())
    data["default_context"]["environment_variables"] = {"X": SHELL % pwned}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    context = config.load_context(source, "dev", "operator")
    chart_dir = chart.render_chart(context, config.EMBEDDED_TEMPLATE, tmp_path / "out")
    assert not pwned.exists()
    assert (SHELL % pwned) in (chart_dir / "values.yaml").read_text().replace("\\u0027", "'")


def test_memory_payload_is_plain_text(tmp_path: Path) -> None:
    source = copy_repo(tmp_path / "src")
    _plant(source, "chart_description", MEMORY)
    started = time.monotonic()
    assert config.load_context(source, "dev", "operator")["chart_description"] == MEMORY
    assert time.monotonic() - started < 5


def _template_with_default(tmp_path: Path, default: str) -> Path:
    template = tmp_path / "template"
    shutil.copytree(config.EMBEDDED_TEMPLATE, template)
    variables = json.loads((template / "cookiecutter.json").read_text())
    variables["chart_description"] = default
    (template / "cookiecutter.json").write_text(json.dumps(variables))
    return template


def test_template_defaults_render_in_a_sandbox(tmp_path: Path) -> None:
    pwned = tmp_path / "pwned-default.txt"
    source = copy_repo(tmp_path / "src")
    path = config_file(source, "dev", "operator")
    data = yaml.safe_load(path.read_text())
    del data["default_context"]["chart_description"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    # a default may use other variables
    template = _template_with_default(tmp_path / "a", "chart {{ cookiecutter.chart_name | upper }}")
    assert config.load_context(source, "dev", "operator", template)["chart_description"] == "chart FAAS-OPERATOR"
    # but not Python internals, nor unbounded memory
    for i, default in enumerate(
        [SHELL % pwned, MEMORY, "{{ 'x' * 10**9 }}", "{{ 2**100000 }}", "{{ (10**60)**60**60**60 }}"]
    ):
        template = _template_with_default(tmp_path / f"b{i}", default)
        started = time.monotonic()
        with pytest.raises(ValidationError, match="cannot be resolved") as caught:
            config.load_context(source, "dev", "operator", template)
        assert time.monotonic() - started < 5
        assert caught.value.problems[0].path == "env/dev/operator/cookiecutter-config.yaml"
    assert not pwned.exists()


def test_sandbox_bounds_directly() -> None:
    assert defaults.resolve({"a": "x", "b": "{{ cookiecutter.a * 3 }}", "n": 2}, {}) == {"a": "x", "b": "xxx", "n": 2}
    with pytest.raises(defaults.DefaultError):
        defaults.resolve({"b": "{{ ''.__class__ }}"}, {})



def test_render_chart_fills_missing_values_through_the_sandbox(tmp_path: Path) -> None:
    template = _template_with_default(tmp_path, MEMORY)
    with pytest.raises(UserError, match="cannot be rendered"):
        chart.render_chart({}, template, tmp_path / "out")
