"""Charts rendered from the real configs: cookiecutter, strict Helm lint, Helm render, Kubernetes schemas."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from faas_deployment.charts import chart, config
from faas_deployment.core import layout
from faas_deployment.core.errors import UserError, ValidationError
from support.example_config import example_context, make_user_template, write_config
from support.repo_tree import copy_repo

REPO_ROOT = Path(__file__).resolve().parent.parent
KUBE_VERSION = "1.30.0"
PAIRS = layout.discover(REPO_ROOT)


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def documents(manifests: dict[str, str]) -> list[dict[str, Any]]:
    return [doc for text in manifests.values() for doc in yaml.safe_load_all(text) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], tuple[dict[str, Any], Path]]:
    """Every discovered env x component rendered with the embedded template."""
    out = tmp_path_factory.mktemp("charts")
    result = {}
    for env, component in PAIRS:
        context = config.load_context(REPO_ROOT, env, component)
        result[(env, component)] = (context, chart.render_chart(context, config.EMBEDDED_TEMPLATE, out / env))
    return result


def test_every_config_renders_a_chart(rendered) -> None:
    assert len(rendered) == len(PAIRS) >= 4
    for context, chart_dir in rendered.values():
        assert chart_dir.name == context["chart_name"]
        meta = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
        assert meta["name"] == context["chart_name"]
        assert meta["version"] == context["chart_version"]
        assert meta["appVersion"] == context["image_tag"]
        # Helm templates are copied verbatim, not rendered by Jinja.
        template_dir = config.EMBEDDED_TEMPLATE / "{{cookiecutter.chart_name}}" / "templates"
        assert tree(chart_dir / "templates") == tree(template_dir)
        assert (chart_dir / ".helmignore").is_file()


@pytest.mark.parametrize(("env", "component"), PAIRS)
def test_chart_is_strict_lint_clean(rendered, env: str, component: str) -> None:
    _, chart_dir = rendered[(env, component)]
    lines = chart.require_lint_clean(chart_dir, KUBE_VERSION)
    assert not [f for f in chart.lint_findings(chart_dir, KUBE_VERSION) if f.failing]
    assert lines == chart.lint_chart(chart_dir, KUBE_VERSION)


@pytest.mark.parametrize(("env", "component"), PAIRS)
def test_rendered_objects_match_the_config(rendered, env: str, component: str) -> None:
    context, chart_dir = rendered[(env, component)]
    release_name, namespace = context["chart_name"], f"faas-{env}"
    docs = documents(chart.render_objects(chart_dir, release_name, namespace))
    for doc in docs:
        if doc["apiVersion"].startswith("external-secrets.io/"):
            continue
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == context["chart_name"]
        assert labels["app.kubernetes.io/instance"] == release_name
        assert labels["app.kubernetes.io/version"] == context["image_tag"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm"

    (deployment,) = by_kind(docs, "Deployment")
    (service,) = by_kind(docs, "Service")
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert deployment["spec"]["replicas"] == int(context["replica_count"])
    assert container["image"] == f"{context['image_repository']}:{context['image_tag']}"
    assert container["imagePullPolicy"] == context["image_pull_policy"]
    assert spec["imagePullSecrets"] == [{"name": context["image_pull_secret"]}]
    assert container["ports"] == [{"name": "http", "containerPort": int(context["container_port"]),
                                   "protocol": "TCP"}]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": context["health_path"], "port": "http"}
    assert {e["name"]: e["value"] for e in container["env"]} == context["environment_variables"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert service["spec"]["type"] == context["service_type"]
    assert service["spec"]["ports"][0]["port"] == int(context["service_port"])
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]

    # The PersistentVolumeClaim, bound to the named volume and mounted.
    claims = by_kind(docs, "PersistentVolumeClaim")
    if context["include_persistent_volume_claim"] == "yes":
        (claim,) = claims
        assert claim["metadata"]["name"] == context["pvc_persistent_volume_claim_name"]
        assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert claim["spec"] == {
            "accessModes": ["ReadWriteOnce"],
            "volumeMode": "Filesystem",
            "storageClassName": context["pvc_storage_class_name"],
            "volumeName": context["pvc_persistent_volume_name"],
            "resources": {"requests": {"storage": context["pvc_storage"]}},
        }
        (mount,) = container["volumeMounts"]
        (volume,) = spec["volumes"]
        assert mount == {"name": volume["name"], "mountPath": context["pvc_persistent_volume_claim_mount_path"]}
        assert volume["persistentVolumeClaim"] == {"claimName": context["pvc_persistent_volume_claim_name"]}
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    else:
        assert claims == [] and "volumeMounts" not in container and "volumes" not in spec

    # The ExternalSecret (a custom resource: its shape is checked by hand) and the
    # Deployment reading its target Secret.
    external = [d for d in docs if d["kind"] == "ExternalSecret"]
    if context["include_external_admin_secret"] == "yes":
        (secret,) = external
        assert secret["apiVersion"] == "external-secrets.io/v1"
        assert secret["spec"]["secretStoreRef"] == {"name": context["external_secret_store_name"],
                                                    "kind": context["external_secret_store_kind"]}
        assert secret["spec"]["refreshInterval"] == context["external_secret_refresh_interval"]
        target = secret["spec"]["target"]["name"]
        assert container["envFrom"] == [{"secretRef": {"name": target}}]
        assert secret["spec"]["data"] == [
            {"secretKey": item["secret_key"],
             "remoteRef": {"key": item["vault_secret_key"], "property": item["vault_secret_property"]}}
            for item in context["external_admin_secret_data"]["data"]
        ]
    else:
        assert external == [] and "envFrom" not in container


def test_rendering_is_deterministic_and_replaces_old_output(tmp_path: Path) -> None:
    context = config.load_context(REPO_ROOT, "prod", "operator")
    first = chart.render_chart(context, config.EMBEDDED_TEMPLATE, tmp_path / "a")
    second = chart.render_chart(context, config.EMBEDDED_TEMPLATE, tmp_path / "b")
    assert tree(first) == tree(second)
    (first / "templates" / "stale.yaml").write_text("kind: Stale\n")
    again = chart.render_chart(context, config.EMBEDDED_TEMPLATE, tmp_path / "a")
    assert again == first and tree(again) == tree(second)
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["faas-operator"]  # no staging left behind


def test_flags_off_and_awkward_values(tmp_path: Path) -> None:
    context = example_context()
    awkward = "a: b # not a comment, 'single' \"double\" \\ back ünïcode <&>"
    context.update(include_persistent_volume_claim="no", include_external_admin_secret="no", image_pull_secret="",
                   service_type="NodePort", chart_description="yes: it's \"quoted\" # really",
                   environment_variables={"AWKWARD": awkward, "ENABLED": "yes", "EMPTY": "", "COUNT": 7})
    write_config(tmp_path, {"default_context": context})
    resolved = config.load_context(tmp_path, "dev", "operator")
    chart_dir = chart.render_chart(resolved, config.EMBEDDED_TEMPLATE, tmp_path / "out")
    chart.require_lint_clean(chart_dir, KUBE_VERSION)
    assert yaml.safe_load((chart_dir / "Chart.yaml").read_text())["description"] == context["chart_description"]
    docs = documents(chart.render_objects(chart_dir, "demo", "default"))
    assert sorted(d["kind"] for d in docs) == ["Deployment", "Service"]
    for doc in docs:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    spec = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]
    assert "imagePullSecrets" not in spec and "volumes" not in spec
    env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
    assert env == {"AWKWARD": awkward, "ENABLED": "yes", "EMPTY": "", "COUNT": "7"}


def test_nothing_is_written_to_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    context = config.load_context(REPO_ROOT, "dev", "controller")
    chart.render_chart(context, config.EMBEDDED_TEMPLATE, tmp_path / "out")
    assert list(home.iterdir()) == []


def test_compiled_templates_are_cached_by_their_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Jinja's bytecode cache spares a later process the compilation; a changed text compiles again,
    and the chart is byte for byte the one compiled without the cache."""
    import jinja2

    from faas_deployment.charts import generate

    template = tmp_path / "template"
    shutil.copytree(config.EMBEDDED_TEMPLATE, template)
    values = template / "{{cookiecutter.chart_name}}" / "values.yaml"
    values.write_text(values.read_text() + f"# run {tmp_path.name}\n")  # a text no earlier run compiled
    compiled: list[str] = []
    real = jinja2.Environment.compile

    def counting(self, source, *args, **kwargs):
        compiled.append(source)
        return real(self, source, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "compile", counting)
    context = config.load_context(REPO_ROOT, "dev", "operator", template)

    def render(out: str) -> dict[str, bytes]:
        generate._CACHE.clear()  # as a new process: only the on-disk cache is left
        return tree(chart.render_chart(context, template, tmp_path / out))

    first = render("first")
    assert any(f"# run {tmp_path.name}" in source for source in compiled)
    compiled.clear()
    assert render("second") == first and compiled == []  # every compiled template from the cache
    values.write_text(values.read_text() + "# changed\n")
    changed = render("changed")
    assert [source.endswith("# changed\n") for source in compiled] == [True]  # that text alone, again
    assert changed["values.yaml"].endswith(b"# changed\n")
    monkeypatch.setenv("FAAS_DEPLOY_NO_TEMPLATE_CACHE", "1")
    compiled.clear()
    assert render("uncached") == changed and compiled  # compiled anew, the same chart


COMPILE_PROBE = """
import atexit, sys, jinja2
compiled = []
real = jinja2.Environment.compile
def counting(self, source, *args, **kwargs):
    compiled.append(source)
    return real(self, source, *args, **kwargs)
jinja2.Environment.compile = counting
atexit.register(lambda: print(f"COMPILED {len(compiled)}", file=sys.stderr, flush=True))
from faas_deployment import cli
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_second_cli_process_compiles_no_template(tmp_path: Path) -> None:
    """The bytecode cache outlives the run: the CLI removes its per-run temporary directory
    (``<TMPDIR>/faas-run-*``) at the end, and the cache is not in it, so a second ``check``
    process loads every compiled template instead of compiling it again."""
    source = copy_repo(tmp_path / "src")
    scratch = tmp_path / "tmp"  # a TMPDIR of its own: no earlier run filled this cache
    scratch.mkdir()
    environ = {k: v for k, v in os.environ.items() if k != "FAAS_DEPLOY_NO_TEMPLATE_CACHE"}

    def compiled() -> int:
        proc = subprocess.run([sys.executable, "-c", COMPILE_PROBE, "--source", str(source), "check", "--env", "dev"],
                              capture_output=True, text=True, env={**environ, "TMPDIR": str(scratch)}, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert "ok dev/operator: faas-operator" in proc.stdout
        return int([x for x in proc.stderr.splitlines() if x.startswith("COMPILED ")][-1].split()[1])

    assert compiled() > 0  # the first process compiles the template's files
    assert compiled() == 0  # the second finds every one in the cache
    assert not list(scratch.glob("faas-run-*"))  # each run's temporary directory is gone all the same


def test_user_template_hook_runs(tmp_path: Path) -> None:
    template = make_user_template(tmp_path)
    write_config(tmp_path, {"default_context": {"chart_name": "team-chart", "chart_version": "3.1.4",
                                                "team": "functions"}})
    context = config.load_context(tmp_path, "dev", "operator", template)
    chart_dir = chart.render_chart(context, template, tmp_path / "out")
    assert chart_dir == tmp_path / "out" / "team-chart"
    assert (chart_dir / "templates" / "hooked.yaml").is_file()  # written by post_gen_project.py
    chart.require_lint_clean(chart_dir, KUBE_VERSION)
    docs = {d["metadata"]["name"]: d for d in documents(chart.render_objects(chart_dir, "rel", "ns"))}
    assert docs["hooked"]["data"] == {"made-by": "post_gen_project", "team": "functions"}
    assert docs["rel-team"]["data"] == {"team": "functions", "tier": "backend"}


def test_failing_hook_is_a_clear_error_naming_the_hook(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    template = make_user_template(tmp_path, with_hook=False)
    (template / "hooks").mkdir()
    (template / "hooks" / "pre_gen_project.py").write_text("import sys\nprint('checking', flush=True)\nsys.exit(3)\n")
    with pytest.raises(UserError) as caught:
        chart.render_chart({"chart_name": "x"}, template, tmp_path / "out")
    assert str(caught.value) == (f"{template}/hooks/pre_gen_project.py: the template hook pre_gen_project failed "
                                 "with exit status 3; nothing was generated")
    assert "Traceback" not in str(caught.value)
    assert [p.name for p in (tmp_path / "out").iterdir()] == []
    out, err = capfd.readouterr()
    assert out == "" and "checking" in err


def test_template_hook_output_goes_to_standard_error(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    template = make_user_template(tmp_path)
    (template / "hooks" / "pre_gen_project.py").write_text("print('pre hook says {{ cookiecutter.team }}')\n")
    chart.render_chart({"chart_name": "demo", "chart_version": "1.0.0", "team": "t1"}, template, tmp_path / "out")
    out, err = capfd.readouterr()
    assert out == ""
    assert "pre hook says t1" in err


def test_a_shell_hook_runs_as_an_executable(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    template = make_user_template(tmp_path, with_hook=False)
    (template / "hooks").mkdir()
    (template / "hooks" / "post_gen_project.sh").write_text(
        "#!/bin/sh\necho \"shell hook for {{ cookiecutter.chart_name }}\"\ntouch made-by-shell\n")
    chart_dir = chart.render_chart({"chart_name": "demo", "chart_version": "1.0.0"}, template, tmp_path / "out")
    assert (chart_dir / "made-by-shell").is_file()
    out, err = capfd.readouterr()
    assert out == "" and "shell hook for demo" in err


def test_template_hook_output_without_a_file_descriptor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    template = make_user_template(tmp_path)
    (template / "hooks" / "pre_gen_project.py").write_text("print('pre hook says hello')\n")
    chart.render_chart({"chart_name": "demo", "chart_version": "1.0.0"}, template, tmp_path / "out")
    out, err = capsys.readouterr()
    assert out == ""
    assert "pre_gen_project.py: pre hook says hello" in err


def test_template_errors_are_user_errors(tmp_path: Path) -> None:
    template = make_user_template(tmp_path, with_hook=False)
    (template / "{{cookiecutter.chart_name}}" / "values.yaml").write_text("x: {{ cookiecutter.nope }}\n")
    with pytest.raises(UserError, match=r"values.yaml: cannot be rendered: UndefinedError: .*nope"):
        chart.render_chart({}, template, tmp_path / "out")
    with pytest.raises(UserError, match="not a cookiecutter template"):
        chart.render_chart({}, tmp_path, tmp_path / "out")


def test_lint_errors_are_reported(tmp_path: Path) -> None:
    template = make_user_template(tmp_path, with_hook=False)
    project = template / "{{cookiecutter.chart_name}}"
    (project / "templates" / "broken.yaml").write_text("data: {{ .Values.missing.deeper }}\n")
    chart_dir = chart.render_chart({"chart_version": "1.0.0"}, template, tmp_path / "out")
    failing = [str(f) for f in chart.lint_findings(chart_dir, KUBE_VERSION) if f.failing]
    assert failing and failing[0].startswith("[ERROR] templates/: ") and "missing" in failing[0]
    with pytest.raises(ValidationError) as caught:
        chart.require_lint_clean(chart_dir, KUBE_VERSION, shown="dev/operator")
    # Named by env/component and the chart file, not by the (temporary) directory it was rendered in.
    assert caught.value.problems[0].path == "dev/operator"
    assert caught.value.problems[0].key == "demo/templates"
    assert str(tmp_path) not in str(caught.value)
    assert "helm lint error" in str(caught.value)

    # A bad version is a warning, which a strict lint counts as failing.
    (chart_dir / "templates" / "broken.yaml").unlink()
    meta = chart_dir / "Chart.yaml"
    meta.write_text(meta.read_text().replace("version: 1.0.0", 'version: "1.0"'))
    with pytest.raises(ValidationError, match="helm lint warning: version '1.0' is not a valid SemVerV2"):
        chart.require_lint_clean(chart_dir, KUBE_VERSION)
    missing = tmp_path / "no-chart"
    missing.mkdir()
    assert any(f.failing for f in chart.lint_findings(missing))


@pytest.mark.parametrize(("severity", "failing"), [(0, True), (1, False), (2, True), (3, True), (4, True)])
def test_the_lint_failure_rule(severity: int, failing: bool) -> None:
    assert chart.LintFinding(severity, "Chart.yaml", "x").failing is failing


def test_render_objects_errors(rendered) -> None:
    _, chart_dir = rendered[PAIRS[0]]
    with pytest.raises(UserError, match="release name 'Bad_Release'"):
        chart.render_objects(chart_dir, "Bad_Release", "ns")
    with pytest.raises(UserError, match="Helm cannot render the chart"):
        chart.render_objects(chart_dir.parent / "nothing-here", "rel", "ns")


@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not installed")
def test_wheel_ships_the_template(tmp_path: Path) -> None:
    subprocess.run(["uv", "build", "--wheel", "-q", "-o", str(tmp_path)],
                   cwd=REPO_ROOT / "dagger", check=True, capture_output=True)
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for source in config.EMBEDDED_TEMPLATE.rglob("*"):
        if source.is_file():
            assert f"faas_deployment/charts/template/{source.relative_to(config.EMBEDDED_TEMPLATE).as_posix()}" in names
    assert json.loads(zipfile.ZipFile(wheel).read("faas_deployment/charts/template/cookiecutter.json"))["chart_name"]


def _tree(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mode & 0o777)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("with_user_template", [False, True], ids=["embedded", "user-template"])
def test_generation_matches_cookiecutters_own_generate_files(tmp_path, with_user_template):
    """The one-pass generator writes, byte for byte and mode for mode, what cookiecutter's generate_files writes."""
    from cookiecutter.generate import generate_files

    from faas_deployment.door import Workspace

    template = make_user_template(tmp_path) if with_user_template else None
    source = copy_repo(tmp_path / "repo")
    if template is not None:
        for config_file in source.glob("env/*/*/cookiecutter-config.yaml"):
            config_file.write_text('default_context:\n  chart_name: "demo"\n  chart_version: "0.1.0"\n'
                                   '  team: "platform"\n')
    ws = Workspace(source, template)
    compared = 0
    for env, component in [("dev", "operator"), ("prod", "controller")]:
        context = ws.values(env, component)
        ours = chart.render_chart(context, ws.template_dir, tmp_path / "ours" / env / component)
        theirs_root = tmp_path / "theirs" / env / component
        from faas_deployment.charts.config import template_variables
        variables = template_variables(ws.template_dir.resolve())
        full = {**{k: v for k, v in variables.items() if k.startswith("_")}, **context}
        theirs = Path(generate_files(repo_dir=str(ws.template_dir.resolve()), context={"cookiecutter": full},
                                     output_dir=str(theirs_root)))
        assert _tree(ours) == _tree(theirs), f"{env}/{component}"
        compared += len(_tree(ours))
    assert compared >= 6
