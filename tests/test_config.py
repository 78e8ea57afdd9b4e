"""Configuration loading and validation against the real configs and broken copies of them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from faas_deployment.charts import config, cookiecutter_json, value_rules
from faas_deployment.core import layout
from faas_deployment.core.errors import UserError, ValidationError
from support.example_config import example_context, make_user_template, problems_of, write_config

REPO_ROOT = Path(__file__).resolve().parent.parent
REL = "env/dev/operator/cookiecutter-config.yaml"


# ------------------------------------------------------------------ the real configs


def test_real_configs_are_discovered_and_validate() -> None:
    pairs = layout.discover(REPO_ROOT)
    assert {("dev", "operator"), ("dev", "controller"), ("prod", "operator"), ("prod", "controller")} <= set(pairs)
    assert pairs == sorted(pairs)
    assert layout.envs(REPO_ROOT) == sorted({env for env, _ in pairs})
    for env, component in pairs:
        context = config.load_context(REPO_ROOT, env, component)
        assert context["chart_name"] == f"faas-{component}"
        assert context["include_external_admin_secret"] == "yes"
        keys = [item["secret_key"] for item in context["external_admin_secret_data"]["data"]]
        assert keys == ["token", "hash"]
        paths = {item["vault_secret_key"] for item in context["external_admin_secret_data"]["data"]}
        assert paths == {f"eo4eu-cicd/mixed_credentials/eo4eu-faas/faas-deployment-{env}"}


def test_prod_operator_carries_its_volume() -> None:
    context = config.load_context(REPO_ROOT, "prod", "operator")
    assert {k: context[k] for k in context if k.startswith("pvc_")} == {
        "pvc_persistent_volume_claim_name": "operator-pvc",
        "pvc_persistent_volume_claim_mount_path": "/mnt/storage",
        "pvc_persistent_volume_name": "pvc-73b31b79-3c95-4eaf-b15d-3e1e0fe764ff",
        "pvc_storage_class_name": "csi-cinder-sc-retain",
        "pvc_storage": "5Gi",
    }
    assert context["include_persistent_volume_claim"] == "yes"


def test_dev_and_prod_differ_where_they_should() -> None:
    for component in ("operator", "controller"):
        dev = config.load_context(REPO_ROOT, "dev", component)
        prod = config.load_context(REPO_ROOT, "prod", component)
        assert dev["chart_version"] != prod["chart_version"]
        assert dev["image_tag"] != prod["image_tag"]
        assert dev["environment_variables"]["FAAS_ENVIRONMENT"] == "dev"
        assert prod["environment_variables"]["FAAS_ENVIRONMENT"] == "prod"


# ------------------------------------------------------------------ discovery


def test_discovery_follows_the_files_present(tmp_path: Path) -> None:
    base = {"default_context": {"chart_name": "faas-x", "chart_version": "1.0.0"}}
    for env, component in [("qa", "gateway"), ("dev", "operator"), ("qa", "operator")]:
        write_config(tmp_path, base, env, component)
    (tmp_path / "env" / "prod" / "stray").mkdir(parents=True)  # a directory without a config
    assert layout.discover(tmp_path) == [("dev", "operator"), ("qa", "gateway"), ("qa", "operator")]
    assert layout.envs(tmp_path) == ["dev", "qa"]
    assert layout.components(tmp_path, "qa") == ["gateway", "operator"]
    assert layout.config_path(tmp_path, "qa", "gateway") == tmp_path / "env/qa/gateway/cookiecutter-config.yaml"


def test_unknown_env_and_component_list_the_known_ones(tmp_path: Path) -> None:
    write_config(tmp_path, {"default_context": {}}, "dev", "operator")
    write_config(tmp_path, {"default_context": {}}, "prod", "operator")
    with pytest.raises(UserError, match=r"unknown environment: 'staging'; known: dev, prod"):
        layout.config_path(tmp_path, "staging", "operator")
    with pytest.raises(UserError, match=r"unknown component in environment 'dev': 'gateway'; known: operator"):
        config.load_context(tmp_path, "dev", "gateway")
    with pytest.raises(UserError, match=r"known: none"):
        layout.config_path(tmp_path / "nowhere", "dev", "operator")


# ------------------------------------------------------------------ resolution


def test_context_is_resolved_from_template_defaults(tmp_path: Path) -> None:
    write_config(tmp_path, {"default_context": {"chart_name": "faas-mini", "chart_version": "2.0.0-rc.1+build.7",
                                                "image_repository": "registry.example.org/team/faas-mini",
                                                "image_tag": "2.0.0", "replica_count": 2,
                                                "environment_variables": {"RETRIES": 3}}})
    context = config.load_context(tmp_path, "dev", "operator")
    template_keys = [k for k in json.loads((config.EMBEDDED_TEMPLATE / "cookiecutter.json").read_text())
                     if not k.startswith("_")]
    assert list(context) == template_keys  # every public variable, in cookiecutter.json order
    assert context["chart_version"] == "2.0.0-rc.1+build.7"
    assert context["image_pull_policy"] == "IfNotPresent"  # choice list -> first item
    assert context["service_type"] == "ClusterIP"
    assert context["include_persistent_volume_claim"] == "no"
    assert context["chart_description"].endswith("faas-mini component of the FaaS platform")  # Jinja default
    assert context["image_repository"] == "registry.example.org/team/faas-mini"
    assert context["replica_count"] == 2 and context["container_port"] == 8080  # numbers stay numbers
    assert context["environment_variables"] == {"RETRIES": "3"}  # nested scalars are text, as cookiecutter gives
    assert context["external_admin_secret_data"] == {"data": []}


def test_embedded_template_is_package_data() -> None:
    assert (config.EMBEDDED_TEMPLATE / "cookiecutter.json").is_file()
    assert (config.EMBEDDED_TEMPLATE / "{{cookiecutter.chart_name}}" / "templates" / "deployment.yaml").is_file()


# ------------------------------------------------------------------ typed rules, one broken key each


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda ctx: ctx.__setitem__(key, value)


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda ctx: ctx.pop(key)


def _secret(index: int, field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(ctx: dict[str, Any]) -> None:
        item = ctx["external_admin_secret_data"]["data"][index]
        if value is None:
            item.pop(field)
        else:
            item[field] = value

    return change


BROKEN: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    ("version-two-parts", _set("chart_version", "1.0"), "chart_version", "semantic version"),
    ("version-float", _set("chart_version", 1.5), "chart_version", "version string, got float 1.5"),
    ("version-v-prefix", _set("chart_version", "v1.0.3"), "chart_version", "semantic version"),
    ("chart-name", _set("chart_name", "FaaS_Operator"), "chart_name", "Helm chart name"),
    ("image-repository", _set("image_repository", "Registry.example.org/FaaS/op"), "image_repository",
     "image repository"),
    ("image-tag", _set("image_tag", "1.0 final"), "image_tag", "image tag"),
    ("image-tag-number", _set("image_tag", 1.3), "image_tag", "quote the value"),
    ("pull-policy", _set("image_pull_policy", "always"), "image_pull_policy", "IfNotPresent, Always, Never"),
    ("pull-secret", _set("image_pull_secret", "Registry Creds"), "image_pull_secret", "DNS-1123"),
    ("replicas-negative", _set("replica_count", -1), "replica_count", "integer >= 0"),
    ("replicas-word", _set("replica_count", "two"), "replica_count", "integer >= 0"),
    ("container-port", _set("container_port", 70000), "container_port", "1 to 65535"),
    ("service-port", _set("service_port", 0), "service_port", "1 to 65535"),
    ("service-type", _set("service_type", "Ingress"), "service_type", "ClusterIP, NodePort, LoadBalancer"),
    ("health-path", _set("health_path", "healthz"), "health_path", "starting with '/'"),
    ("pvc-flag-bool", _set("include_persistent_volume_claim", True), "include_persistent_volume_claim",
     "YAML boolean true"),
    ("secret-flag", _set("include_external_admin_secret", "maybe"), "include_external_admin_secret",
     "\"yes\" or \"no\""),
    ("pvc-name", _set("pvc_persistent_volume_claim_name", "Operator_PVC"), "pvc_persistent_volume_claim_name",
     "DNS-1123"),
    ("pvc-mount-relative", _set("pvc_persistent_volume_claim_mount_path", "mnt/storage"),
     "pvc_persistent_volume_claim_mount_path", "absolute path"),
    ("pvc-storage-unit", _set("pvc_storage", "5 GB"), "pvc_storage", "Kubernetes quantity"),
    ("pvc-storage-zero", _set("pvc_storage", "0Gi"), "pvc_storage", "positive size"),
    ("pvc-volume-missing", _drop("pvc_persistent_volume_name"), "pvc_persistent_volume_name",
     "required when include_persistent_volume_claim is \"yes\""),
    ("pvc-class-empty", _set("pvc_storage_class_name", ""), "pvc_storage_class_name",
     "required when include_persistent_volume_claim is \"yes\""),
    ("secret-data-empty", _set("external_admin_secret_data", {"data": []}), "external_admin_secret_data",
     "required when include_external_admin_secret is \"yes\""),
    ("secret-data-not-list", _set("external_admin_secret_data", {"data": "token"}),
     "external_admin_secret_data.data", "expected a list"),
    ("secret-property-missing", _secret(0, "vault_secret_property", None),
     "external_admin_secret_data.data[0].vault_secret_property", "non-empty string"),
    ("secret-key-invalid", _secret(1, "secret_key", "api token"), "external_admin_secret_data.data[1].secret_key",
     "Secret key"),
    ("secret-key-duplicate", _secret(1, "secret_key", "token"), "external_admin_secret_data.data[1].secret_key",
     "duplicate secret_key 'token'"),
    ("secret-item-typo", _secret(0, "vault_secret_propery", "x"),
     "external_admin_secret_data.data[0].vault_secret_propery", "did you mean vault_secret_property?"),
    ("store-kind", _set("external_secret_store_kind", "Vault"), "external_secret_store_kind", "ClusterSecretStore"),
    ("store-name-empty", _set("external_secret_store_name", ""), "external_secret_store_name",
     "required when include_external_admin_secret"),
    ("refresh-interval", _set("external_secret_refresh_interval", "hourly"), "external_secret_refresh_interval",
     "duration"),
    ("env-name", _set("environment_variables", {"LOG-LEVEL": "info"}), "environment_variables.LOG-LEVEL",
     "environment variable name"),
    ("env-value", _set("environment_variables", {"HOSTS": ["a", "b"]}), "environment_variables.HOSTS",
     "single value"),
    ("env-not-mapping", _set("environment_variables", ["LOG_LEVEL=info"]), "environment_variables",
     "mapping of NAME: value"),
    ("unknown-key", _set("chart_verison", "1.0.4"), "chart_verison", "unknown key (did you mean chart_version?)"),
    ("private-key", _set("_copy_without_render", []), "_copy_without_render", "private template setting"),
]


@pytest.mark.parametrize(("change", "key", "expected"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_each_rule_names_file_and_key(tmp_path: Path, change, key: str, expected: str) -> None:
    context = example_context()
    change(context)
    write_config(tmp_path, {"default_context": context})
    problems = problems_of(tmp_path)
    assert len(problems) == 1, [str(p) for p in problems]
    problem = problems[0]
    assert problem.path == REL
    assert problem.key == f"default_context.{key}"
    text = str(problem)
    assert text.startswith(f"{REL}: default_context.{key}: ")
    assert expected in text


def test_flags_off_need_no_group(tmp_path: Path) -> None:
    context = example_context()
    context.update(include_persistent_volume_claim="no", include_external_admin_secret="no",
                   pvc_persistent_volume_name="", pvc_storage="", external_admin_secret_data={"data": []})
    write_config(tmp_path, {"default_context": context})
    resolved = config.load_context(tmp_path, "dev", "operator")
    assert resolved["include_persistent_volume_claim"] == "no"
    assert resolved["pvc_storage"] == ""


def test_numeric_strings_and_integer_quantities_are_accepted(tmp_path: Path) -> None:
    context = example_context()
    context.update(container_port="9090", replica_count=0, pvc_storage=5368709120,
                   external_secret_refresh_interval="1h30m", image_tag="sha-4f2a9c1")
    write_config(tmp_path, {"default_context": context})
    resolved = config.load_context(tmp_path, "dev", "operator")
    assert resolved["container_port"] == "9090" and resolved["replica_count"] == 0


def test_every_problem_is_reported_in_one_run(tmp_path: Path) -> None:
    context = example_context()
    context.update(chart_version="1.0", image_tag="bad tag", container_port=0, chart_verison="1.0.4",
                   include_persistent_volume_claim="yes", pvc_storage="lots")
    del context["pvc_persistent_volume_claim_mount_path"]
    context["external_admin_secret_data"]["data"][1]["secret_key"] = "token"
    write_config(tmp_path, {"default_context": context})
    with pytest.raises(ValidationError) as caught:
        config.load_context(tmp_path, "dev", "operator")
    keys = {p.key for p in caught.value.problems}
    assert keys == {f"default_context.{k}" for k in (
        "chart_version", "image_tag", "container_port", "chart_verison", "pvc_storage",
        "pvc_persistent_volume_claim_mount_path", "external_admin_secret_data.data[1].secret_key")}
    message = str(caught.value)
    assert message.startswith("7 problems found:")
    assert all(REL in line for line in message.splitlines()[1:])


# ------------------------------------------------------------------ file structure


def test_yaml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    write_config(tmp_path, 'default_context:\n  chart_name: "faas-operator"\n  chart_version: "1.0.3\n')
    problems = problems_of(tmp_path)
    assert len(problems) == 1
    assert problems[0].path == REL
    assert "YAML syntax error at line 4, column 1" in problems[0].message
    write_config(tmp_path, "default_context:\n  chart_name: faas\n   chart_version: 1.0.0\n")
    assert "at line 3, column 17" in problems_of(tmp_path)[0].message


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("", "", "got an empty file"),
        ("- a\n- b\n", "", "got a list"),
        ("abbreviations: {}\n", "default_context", "missing"),
        ("default_context: faas\n", "default_context", "got a str"),
        ("default_context:\n", "default_context", "got nothing"),
    ],
    ids=["empty", "list", "no-default-context", "scalar-context", "null-context"],
)
def test_structure_problems(tmp_path: Path, text: str, key: str, expected: str) -> None:
    write_config(tmp_path, text)
    problems = problems_of(tmp_path)
    assert [(p.path, p.key) for p in problems] == [(REL, key)]
    assert expected in problems[0].message


def test_unknown_top_level_key_and_duplicates(tmp_path: Path) -> None:
    write_config(tmp_path, 'default_contxt: {}\ndefault_context:\n  chart_name: "a"\n  chart_name: "b"\n'
                           'abbreviations: {}\n')
    problems = problems_of(tmp_path)
    by_key = {p.key: str(p) for p in problems}
    assert set(by_key) == {"default_contxt", "chart_name", *(f"default_context.{k}" for k in
                                                             ("chart_version", "image_repository", "image_tag"))}
    assert "unknown top-level key (did you mean default_context?)" in by_key["default_contxt"]
    assert "duplicate key at line 4, column 3" in by_key["chart_name"]


# ------------------------------------------------------------------ templates


def test_user_template_validates_by_its_own_keys(tmp_path: Path) -> None:
    template = make_user_template(tmp_path)
    write_config(tmp_path, {"default_context": {"chart_name": "team-chart", "chart_version": "3.1.4",
                                                "team": "functions", "tier": "frontend"}})
    context = config.load_context(tmp_path, "dev", "operator", template)
    assert context == {"chart_name": "team-chart", "chart_version": "3.1.4", "team": "functions",
                       "tier": "frontend", "replica_count": 1}

    # The embedded template's keys mean nothing to this template; the typed rules
    # still apply to the keys it shares; its own choice list is enforced.
    write_config(tmp_path, {"default_context": {"chart_version": "3.1", "image_tag": "1.0.0", "tier": "middle",
                                                "replica_count": -2, "teem": "x"}})
    problems = {p.key: str(p) for p in problems_of(tmp_path, template=template)}
    assert set(problems) == {f"default_context.{k}" for k in ("chart_version", "image_tag", "tier",
                                                              "replica_count", "teem", "chart_name")}
    assert "semantic version" in problems["default_context.chart_version"]
    assert "unknown key (the template declares: chart_name, chart_version, team, tier, replica_count)" in \
        problems["default_context.image_tag"]
    assert "expected one of backend, frontend, got 'middle'" in problems["default_context.tier"]
    assert "did you mean team?" in problems["default_context.teem"]


def test_template_without_cookiecutter_json_is_named(tmp_path: Path) -> None:
    write_config(tmp_path, {"default_context": {}})
    template = tmp_path / "not-a-template"
    template.mkdir()
    with pytest.raises(UserError, match=rf"{template}/cookiecutter.json: not found"):
        config.load_context(tmp_path, "dev", "operator", template)
    (template / "cookiecutter.json").write_text('{\n  "chart_name": "x",\n}\n')
    with pytest.raises(UserError, match=r"cookiecutter.json: invalid JSON at line 3, column 1"):
        config.load_context(tmp_path, "dev", "operator", template)
    with pytest.raises(UserError, match=r"template directory not found"):
        config.load_context(tmp_path, "dev", "operator", tmp_path / "missing")


def test_rules_table_covers_the_embedded_template() -> None:
    variables = cookiecutter_json.template_variables(cookiecutter_json.EMBEDDED_TEMPLATE)
    declared = {k for k in variables if not k.startswith("_")}
    assert declared == set(value_rules.RULES)
    for flag, members in value_rules.GROUPS.items():
        assert flag in declared and set(members) <= declared
