"""The packaged chart's name and version are the config's ``chart_name`` and ``chart_version``, whatever the template
says.

Three user cookiecutter templates each do one thing that once let a bump go unseen:
the first hard-codes ``version:`` in its Chart.yaml, the second derives ``name:`` from
a variable of its own, the third keys the version as ``version`` (and lists its own
identity keys in ``_identity_keys``). Each goes through the real CLI (``release``,
``publish --prerelease``, ``flux``) against the real registry fixture, and Helm's own
registry client reads back what was published.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import helm_python
import pytest
import yaml

from faas_deployment.charts import chart
from faas_deployment.core.errors import UserError
from support.repo_tree import copy_repo

CHART_YAML = {
    # Declares chart_version, but its Chart.yaml ignores it.
    "hard-coded-version": (
        {"chart_name": "app", "chart_version": "0.1.0", "team": "platform"},
        "apiVersion: v2\nname: {{ cookiecutter.chart_name }}\nversion: 0.1.0\ndescription: demo\n",
    ),
    # Names its chart after a variable of its own.
    "own-name": (
        {"chart_name": "app", "chart_version": "0.1.0", "project_slug": "app", "team": "platform"},
        ("apiVersion: v2\nname: {{ cookiecutter.project_slug }}\nversion: \"{{ cookiecutter.chart_version }}\"\n"
         "description: demo\n"),
    ),
    # Keys the version as version, the name as name, and says which keys identify a deployment.
    "version-key": (
        {"name": "app", "version": "0.1.0", "team": "platform", "_identity_keys": ["version"]},
        "apiVersion: v2\nname: {{ cookiecutter.name }}\nversion: {{ cookiecutter.version }}\ndescription: demo\n",
    ),
}

CONFIGS = {
    "hard-coded-version": {"chart_version": "1.0.0"},
    "own-name": {"chart_version": "1.0.0"},
    "version-key": {"chart_version": "1.0.0", "version": "0.1.0"},
}


def make_template(root: Path, kind: str) -> Path:
    variables, chart_yaml = CHART_YAML[kind]
    template = root / f"template-{kind}"
    project = template / "{{cookiecutter.team}}-chart"
    (project / "templates").mkdir(parents=True)
    (template / "cookiecutter.json").write_text(json.dumps({**variables, "_copy_without_render": ["templates/*"]}))
    (project / "Chart.yaml").write_text(chart_yaml)
    (project / "values.yaml").write_text("team: {{ cookiecutter.team | tojson }}\n")
    (project / "templates" / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-team\n"
        "data:\n  chart: {{ .Chart.Name }}-{{ .Chart.Version }}\n")
    return template


def write_configs(source: Path, kind: str, version: str) -> dict[str, str]:
    """Each dev component's config for the template ``kind``; returns component -> chart_name."""
    names = {}
    for component in ("operator", "controller"):
        names[component] = f"team-{component}"
        context = {"chart_name": names[component], **CONFIGS[kind], "chart_version": version}
        path = source / "env" / "dev" / component / "cookiecutter-config.yaml"
        path.write_text(yaml.safe_dump({"default_context": context}, sort_keys=False))
    return names


@pytest.fixture
def helm_client(registry, tmp_path):
    client = helm_python.RegistryClient(plain_http=True, credentials_file=str(tmp_path / "helm-credentials.json"))
    client.login(registry.host, registry.username, registry.password, plain_http=True)
    return client


@pytest.mark.parametrize("kind", sorted(CHART_YAML))
def test_a_bump_is_published_under_the_configs_name_and_version(kind, registry, helm_client, run_cli, monkeypatch,
                                                                  tmp_path):
    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", registry.password)
    source = copy_repo(tmp_path / "src")
    template = make_template(tmp_path, kind)
    root = f"oci://{registry.host}/charts/dev"
    flags = ["--registry", root, "--username", registry.username, "--password", "env:TEST_REGISTRY_PASSWORD",
             "--plain-http"]
    cli = ("--source", str(source), "--template", str(template))

    names = write_configs(source, kind, "1.0.0")
    code, out, err = run_cli(*cli, "release", "--env", "dev", *flags)
    assert code == 0, err
    for name in names.values():
        assert f"pushed {registry.host}/charts/dev/{name}:1.0.0@" in out
        assert helm_client.tags(f"{root}/{name}") == ["1.0.0"]

    # A bump: its merge-request pre-release carries the suffix in Chart.yaml and in the tag, ...
    write_configs(source, kind, "1.0.1")
    code, out, err = run_cli(*cli, "publish", "--env", "dev", "--component", "operator", *flags,
                             "--prerelease", "mr.7.1")
    assert code == 0, err
    assert f"pushed {registry.host}/charts/dev/team-operator:1.0.1-mr.7.1@" in out
    pulled = tmp_path / "pulled"
    pulled.mkdir()
    helm_client.pull(f"{root}/team-operator", version="1.0.1-mr.7.1", destination=str(pulled), plain_http=True)
    loaded = helm_python.Chart.load(str(pulled / "team-operator-1.0.1-mr.7.1.tgz"))
    rendered = loaded.render({}, name="r", namespace="n")
    assert "chart: team-operator-1.0.1-mr.7.1" in "".join(rendered.values())

    # ... and its release publishes the new version: never "unchanged".
    code, out, err = run_cli(*cli, "release", "--env", "dev", *flags)
    assert code == 0, err
    assert "unchanged" not in out
    for name in names.values():
        assert f"pushed {registry.host}/charts/dev/{name}:1.0.1@" in out
        assert helm_client.tags(f"{root}/{name}") == (["1.0.1", "1.0.1-mr.7.1", "1.0.0"] if name == "team-operator"
                                                       else ["1.0.1", "1.0.0"])

    # flux points each OCIRepository at a chart that was published.
    out_dir = tmp_path / "flux"
    code, out, err = run_cli(*cli, "flux", "--env", "dev", "--out", str(out_dir))
    assert code == 0, err
    for component, name in names.items():
        repository = next(yaml.safe_load_all((out_dir / f"{component}.yaml").read_text()))
        url = repository["spec"]["url"]
        assert url == f"oci://registry.example.org/eo4eu-faas/charts/dev/{name}"
        assert helm_client.tags(url.replace("oci://registry.example.org/eo4eu-faas", f"oci://{registry.host}"))[0] \
            == "1.0.1"


def test_a_config_without_chart_name_is_refused_by_every_verb(run_cli, tmp_path):
    """The template declares no chart_name: the pipeline's own key is still required (flux once hit a KeyError)."""
    source = copy_repo(tmp_path / "src")
    template = make_template(tmp_path, "version-key")
    write_configs(source, "version-key", "1.0.0")
    for component in ("operator", "controller"):
        path = source / "env" / "dev" / component / "cookiecutter-config.yaml"
        data = yaml.safe_load(path.read_text())
        del data["default_context"]["chart_name"]
        path.write_text(yaml.safe_dump(data))
    cli = ("--source", str(source), "--template", str(template))
    for verb in (("flux", "--out", str(tmp_path / "flux")), ("package", "--component", "operator", "--out",
                                                               str(tmp_path / "dist")), ("release",)):
        code, out, err = run_cli(*cli, verb[0], "--env", "dev", *verb[1:])
        assert code == 1, (verb, out)
        assert "Traceback" not in err and "KeyError" not in err
        assert re.search(r"env/dev/(operator|controller)/cookiecutter-config.yaml: default_context.chart_name: "
                         r"missing", err), err
        assert "set chart_name in this file" in err
    assert not (tmp_path / "flux").exists() and not (source / "dist").exists()


@pytest.mark.parametrize("text, field", [
    ("{apiVersion: v2, name: app, version: 0.1.0}\n", "name"),
    ("apiVersion: v2\nname: app\nversion: 0.1.0\nversion: 0.2.0\n", "version"),
    ("apiVersion: v2\nname: app\nname: other\nversion: 1.0.0\n", "name"),
])
def test_a_chart_yaml_the_pipeline_cannot_set_is_refused_with_the_field_named(tmp_path, text, field):
    chart_yaml = tmp_path / "Chart.yaml"
    chart_yaml.write_text(text)
    with pytest.raises(UserError, match=rf"generated Chart.yaml: {field}: the pipeline sets it to the config's "
                                        rf"chart_{field}") as caught:
        chart.set_chart_identity(chart_yaml, name="team-app", version="1.0.0", shown="T: generated Chart.yaml")
    assert "top-level" in str(caught.value)
    assert chart_yaml.read_text() == text  # nothing half-written


def test_a_chart_yaml_already_right_keeps_its_bytes(tmp_path):
    text = "# made by hand\napiVersion: v2\nname: team-app   # the name\nversion: 1.0.0\n"
    chart_yaml = tmp_path / "Chart.yaml"
    chart_yaml.write_text(text)
    chart.set_chart_identity(chart_yaml, name="team-app", version="1.0.0")
    assert chart_yaml.read_text() == text
    chart.set_chart_identity(chart_yaml, name="team-app", version="1.0.1-mr.1.2")
    assert chart_yaml.read_text() == text.replace("version: 1.0.0", 'version: "1.0.1-mr.1.2"')
