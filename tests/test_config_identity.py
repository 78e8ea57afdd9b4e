"""What a config must say itself (identity keys), what it may leave to the template, and values kept as written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from faas_deployment import door
from faas_deployment.charts import bump, chart, config, cookiecutter_json
from faas_deployment.core.errors import UserError, ValidationError
from faas_deployment.door import Workspace
from support.example_config import example_context, make_user_template, problems_of, write_config

IDENTITY = ("chart_name", "chart_version", "image_repository", "image_tag")


# ------------------------------------------------------------------ identity keys


@pytest.mark.parametrize("key", IDENTITY)
def test_an_identity_key_left_to_the_template_is_refused(tmp_path: Path, key: str) -> None:
    context = example_context()
    del context[key]
    write_config(tmp_path, {"default_context": context}, env="prod")
    problems = problems_of(tmp_path, env="prod")
    assert [(p.path, p.key) for p in problems] == [
        ("env/prod/operator/cookiecutter-config.yaml", f"default_context.{key}")]
    assert "missing; it identifies what is deployed" in problems[0].message
    assert problems[0].hint == f"set {key} in this file"


def test_presentational_keys_may_default(tmp_path: Path) -> None:
    context = {k: v for k, v in example_context().items() if k not in ("chart_description", "service_port",
                                                                    "image_pull_policy", "health_path")}
    write_config(tmp_path, {"default_context": context}, env="prod")
    resolved = config.load_context(tmp_path, "prod", "operator")
    assert resolved["service_port"] == 80 and resolved["image_pull_policy"] == "IfNotPresent"
    assert resolved["chart_description"].endswith("faas-operator component of the FaaS platform")


def test_the_embedded_template_declares_its_identity_keys() -> None:
    variables = cookiecutter_json.template_variables(cookiecutter_json.EMBEDDED_TEMPLATE)
    assert variables[cookiecutter_json.IDENTITY_SETTING] == list(IDENTITY)
    assert cookiecutter_json.identity_keys(variables) == IDENTITY


def test_a_user_template_declares_its_own_identity_keys(tmp_path: Path) -> None:
    template = make_user_template(tmp_path, with_hook=False)
    variables = json.loads((template / "cookiecutter.json").read_text())
    variables[cookiecutter_json.IDENTITY_SETTING] = ["chart_name", "team"]
    (template / "cookiecutter.json").write_text(json.dumps(variables))
    write_config(tmp_path, {"default_context": {"tier": "frontend"}})
    problems = problems_of(tmp_path, template=template)
    # Its own list, plus the pipeline's chart_version whatever the list says.
    assert {p.key for p in problems} == {f"default_context.{k}" for k in ("chart_name", "team", "chart_version")}
    assert "(an identity key of the template)" in {p.key: p.message for p in problems}["default_context.team"]

    # Without the setting, the pipeline's identity keys that the template declares are required.
    del variables[cookiecutter_json.IDENTITY_SETTING]
    (template / "cookiecutter.json").write_text(json.dumps(variables))
    assert {p.key for p in problems_of(tmp_path, template=template)} == {
        "default_context.chart_name", "default_context.chart_version"}

    variables[cookiecutter_json.IDENTITY_SETTING] = ["nope"]
    (template / "cookiecutter.json").write_text(json.dumps(variables))
    with pytest.raises(UserError, match=r"cookiecutter.json: _identity_keys: nope is not a public variable"):
        config.load_context(tmp_path, "dev", "operator", template)


def test_check_refuses_a_config_without_identity_keys(tmp_path: Path) -> None:
    context = example_context()
    del context["chart_name"], context["image_tag"]
    write_config(tmp_path, {"default_context": context}, env="prod")
    with pytest.raises(ValidationError) as caught:
        door.check.check(Workspace(tmp_path), "prod")
    assert {p.key for p in caught.value.problems} >= {"default_context.chart_name", "default_context.image_tag"}
    assert not (tmp_path / "dist").exists()


# ------------------------------------------------------------------ values kept as written


@pytest.mark.parametrize(
    ("written", "message", "hint"),
    [
        ("yes", "as the boolean true; the container would get 'True'", 'quote the value, e.g. "yes"'),
        ("off", "as the boolean false; the container would get 'False'", "quote the value"),
        ("0.10", "YAML reads 0.10 as the number 0.1, which becomes the string '0.1'", 'quote it: "0.10"'),
        ("0755", "YAML reads 0755 as the number 493, which becomes the string '493'", 'quote it: "0755"'),
        ("0x1F", "YAML reads 0x1F as the number 31", 'quote it: "0x1F"'),
        ("+12", "YAML reads +12 as the number 12", 'quote it: "+12"'),
    ],
)
def test_an_environment_value_yaml_would_change_is_refused(tmp_path: Path, written: str, message: str,
                                                           hint: str) -> None:
    text = yaml.safe_dump({"default_context": example_context()}, sort_keys=False)
    text = text.replace("  environment_variables:\n", f"  environment_variables:\n    VALUE: {written}\n")
    write_config(tmp_path, text, env="prod")
    problems = problems_of(tmp_path, env="prod")
    assert [p.key for p in problems] == ["default_context.environment_variables.VALUE"]
    assert message in problems[0].message
    assert hint in problems[0].hint


def test_what_the_user_wrote_is_what_the_container_gets(tmp_path: Path) -> None:
    text = yaml.safe_dump({"default_context": example_context()}, sort_keys=False)
    written = {"DEBUG": '"yes"', "RATIO": '"0.10"', "OCTAL": '"0755"', "PORT": "8080", "SCALE": "1.5",
               "NEGATIVE": "-3"}
    lines = "".join(f"    {name}: {value}\n" for name, value in written.items())
    text = text.replace("  environment_variables:\n", "  environment_variables:\n" + lines)
    write_config(tmp_path, text, env="prod")
    expected = {name: value.strip('"') for name, value in written.items()}

    ws = Workspace(tmp_path)
    shown = yaml.safe_load(door.charts.config(ws, "prod", "operator").text)["default_context"]["environment_variables"]
    assert {k: shown[k] for k in expected} == expected  # `config` shows the form the chart gets

    chart_dir = door.charts.render_chart(ws, "prod", "operator", tmp_path / "out")
    manifests = chart.render_objects(chart_dir, "faas-operator", "ns")
    deployment = next(yaml.safe_load(t) for t in manifests.values() if "kind: Deployment" in t)
    env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert {k: env[k] for k in expected} == expected


def test_numbers_of_a_user_templates_dict_variable_are_kept_as_written(tmp_path: Path) -> None:
    template = make_user_template(tmp_path, with_hook=False)
    variables = json.loads((template / "cookiecutter.json").read_text())
    variables["limits"] = {"cpu": "1"}
    (template / "cookiecutter.json").write_text(json.dumps(variables))
    write_config(tmp_path, 'default_context:\n  chart_name: "a"\n  chart_version: "1.0.0"\n'
                           '  limits: {cpu: 0.50, memory: "512Mi"}\n  replica_count: 0x2\n')
    problems = problems_of(tmp_path, template=template)
    assert [p.key for p in problems] == ["default_context.limits.cpu"]
    # A top-level number stays a number: 0x2 is the replica count 2, and dumps as one.
    write_config(tmp_path, 'default_context:\n  chart_name: "a"\n  chart_version: "1.0.0"\n  replica_count: 0x2\n')
    context = config.load_context(tmp_path, "dev", "operator", template)
    assert context["replica_count"] == 2 and type(context["replica_count"]) is int
    yaml.safe_dump(context)


# ------------------------------------------------------------------ the pipeline's own keys


def third_party_template(root: Path) -> Path:
    """A template without chart_version: its Chart.yaml carries a fixed version of its own."""
    template = make_user_template(root, with_hook=False)
    variables = json.loads((template / "cookiecutter.json").read_text())
    del variables["chart_version"]
    variables["image_tag"] = "latest"
    (template / "cookiecutter.json").write_text(json.dumps(variables))
    chart_yaml = template / "{{cookiecutter.chart_name}}" / "Chart.yaml"
    chart_yaml.write_text(chart_yaml.read_text().replace("{{ cookiecutter.chart_version }}", "0.0.1"))
    return template


def test_chart_version_is_accepted_whatever_the_template_declares(tmp_path: Path) -> None:
    template = third_party_template(tmp_path)
    write_config(tmp_path, 'default_context:\n  chart_name: "team-chart"\n  chart_version: "2.3.0"\n'
                           '  image_tag: "1.0.0"\n')
    context = config.load_context(tmp_path, "dev", "operator", template)
    assert context["chart_version"] == "2.3.0"
    ws = Workspace(tmp_path, template)
    package = door.charts.package_chart(ws, "dev", "operator", tmp_path / "dist")
    assert (package.name, package.version) == ("team-chart", "2.3.0")  # the version published is the config's

    # The typed rule applies to it as to any template's.
    write_config(tmp_path, 'default_context:\n  chart_name: "team-chart"\n  chart_version: "2.3"\n'
                           '  image_tag: "1.0.0"\n')
    assert "semantic version" in problems_of(tmp_path, template=template)[0].message


def test_bump_works_with_a_template_without_chart_version(tmp_path: Path) -> None:
    template = third_party_template(tmp_path)
    write_config(tmp_path, 'default_context:\n  chart_name: "team-chart"\n  chart_version: "2.3.0"\n'
                           '  image_tag: "1.0.0"\n')
    result = bump.bump_config(tmp_path, "dev", "operator", image_tag="1.1.0", template=template)
    assert (result.old_version, result.new_version) == ("2.3.0", "2.3.1")
    package = door.charts.package_chart(Workspace(tmp_path, template), "dev", "operator", tmp_path / "dist")
    assert package.version == "2.3.1"


def test_chart_yaml_without_a_version_line_gets_one(tmp_path: Path) -> None:
    chart_yaml = tmp_path / "Chart.yaml"
    chart_yaml.write_text("apiVersion: v2\nname: x\n")
    chart.set_chart_identity(chart_yaml, version="1.2.3")
    assert yaml.safe_load(chart_yaml.read_text()) == {"apiVersion": "v2", "name": "x", "version": "1.2.3"}


def test_a_user_templates_text_variable_gets_what_was_written(tmp_path: Path) -> None:
    template = make_user_template(tmp_path, with_hook=False)
    write_config(tmp_path, 'default_context:\n  chart_name: "a"\n  chart_version: "1.0.0"\n  team: yes\n')
    problems = problems_of(tmp_path, template=template)
    assert [p.key for p in problems] == ["default_context.team"]
    assert "the boolean true; the template would get 'True'" in problems[0].message
    write_config(tmp_path, 'default_context:\n  chart_name: "a"\n  chart_version: "1.0.0"\n  team: 0755\n')
    assert "YAML reads 0755 as the number 493" in problems_of(tmp_path, template=template)[0].message
    write_config(tmp_path, 'default_context:\n  chart_name: "a"\n  chart_version: "1.0.0"\n  team: 42\n')
    assert config.load_context(tmp_path, "dev", "operator", template)["team"] == 42  # written as read
