"""The one door: both front ends import only it; the layout; the CLI's global flags, --version, --output json,
Ctrl-C."""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from faas_deployment import cli, door
from faas_deployment.core import layout
from support import daggermod
from support.imports import PACKAGE, project_imports, source_modules
from support.repo_tree import config_file, copy_repo, get_scalar, set_scalar

FAAS_DEPLOY = Path(sys.executable).with_name("faas-deploy")

DAGGER_FRONT_END = daggermod.MODULES
#: What each front end may import from the project beside the door (``door`` and its modules): errors, secrets;
#: for Dagger, the engine's image chains, the error bridge and the Dagger front end's own modules.
ALLOWED = {
    "cli.py": {"core.errors", "core.secrets", "cli_flags"},
    "cli_flags.py": set(),
    **{name: {"core.errors", "core.secrets", "images.images_dagger", "_dagger_errors",
              *(Path(module).stem for module in DAGGER_FRONT_END)} for name in DAGGER_FRONT_END},
}
#: What the CLI and the door may load at start-up (module level, beside the door's own modules): light modules only.
LIGHT = {"core.layout", "core.errors", "core.progress", "core.names", "cli_flags"}
#: Modules a verb needs but ``--help`` must not load.
HEAVY = ("helm_python", "httpx", "yaml", "ruamel", "cookiecutter", "oras", "semver", "requests", "lightkube", "jinja2",
         "faas_deployment.charts.config", "faas_deployment.charts.chart", "faas_deployment.registry.publishing")


def test_every_dagger_module_is_a_front_end_module():
    """The Dagger front end's files are ``main.py`` and the ``dagger_*.py`` beside it, each held to the front
    ends' rules here (a new sibling module must be listed in ``support.daggermod.MODULES``)."""
    assert set(DAGGER_FRONT_END) == {"main.py", *(p.name for p in PACKAGE.glob("dagger_*.py"))}


@pytest.mark.parametrize("front_end", sorted(ALLOWED))
def test_front_ends_import_only_the_door(front_end):
    imported = project_imports(PACKAGE / front_end)
    assert "door" in imported or any(m.startswith("door.") for m in imported)
    beside = {m for m in imported if m != "door" and not m.startswith("door.")}
    assert beside <= ALLOWED[front_end], f"{front_end} imports {sorted(beside - ALLOWED[front_end])}"


def test_the_import_check_sees_every_form(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from .core import errors, secrets\nfrom .core.names import is_tag\n"
                     "import faas_deployment.core.urls\nfrom faas_deployment import door\n"
                     "from .door import Result, charts\nfrom faas_deployment.core.layout import discover\n"
                     "if TYPE_CHECKING:\n    from .core import deadline\ndef x():\n    from .core import progress\n")
    everything = {"core.errors", "core.secrets", "core.names", "core.urls", "door", "door.charts", "core.layout"}
    assert project_imports(probe, root=PACKAGE) == everything | {"core.deadline", "core.progress"}
    assert project_imports(probe, root=PACKAGE, runtime_only=True) == everything | {"core.progress"}
    assert project_imports(probe, root=PACKAGE, module_level_only=True) == everything


#: Door helpers a verb composes inside the door; the Dagger front end asks for the whole step
#: (``plan_against``, ``pipeline_against``, ``engine_base``, ``image_build``, ``image_recipe``).
DOOR_INTERNALS = {"plan_trees", "plan_result", "pipeline_context", "child_pipeline", "dagger_base_ref",
                  "dagger_base_is_merge_base", "is_sha", "build_options", "image_labels", "image_repository"}


#: Per front end, the inner steps it must not compose (the CLI builds its image options from flags).
COMPOSED = {**{name: DOOR_INTERNALS for name in DAGGER_FRONT_END},
            "cli.py": {"plan_trees", "plan_result", "pipeline_context", "child_pipeline", "dagger_base_ref"}}


@pytest.mark.parametrize("front_end", sorted(COMPOSED))
def test_the_front_ends_leave_orchestration_to_the_door(front_end):
    """The Dagger modules translate Dagger types (Directory, Secret, GitRef), cli.py flags, into one door call per
    step."""
    tree = ast.parse((PACKAGE / front_end).read_text())
    composed = sorted({f"{n.attr}:{n.lineno}" for n in ast.walk(tree)
                       if isinstance(n, ast.Attribute) and n.attr in COMPOSED[front_end]})
    assert composed == []


def environment_reads(path: Path) -> list[str]:
    """Where ``path`` reads the process environment: ``os.environ`` / ``os.getenv`` / ``os.environb``,
    ``from os import environ``, or a ``CI_*`` variable looked up (``x.get("CI_...")``, ``x["CI_..."]``).

    Building a mapping (``{"CI_JOB_ID": job_id}``) to pass explicitly is not reading.
    """
    tree = ast.parse(path.read_text(), str(path))
    found = []

    def ci_name(node: ast.AST) -> bool:
        return isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("CI_")

    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Attribute) and node.attr in {"environ", "environb", "getenv"} \
                and isinstance(node.value, ast.Name) and node.value.id == "os":
            found.append(f"{where} os.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os" \
                and {a.name for a in node.names} & {"environ", "environb", "getenv"}:
            found.append(f"{where} from os import")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and node.args and ci_name(node.args[0]):
            found.append(f"{where} get({node.args[0].value})")  # type: ignore[attr-defined]
        elif isinstance(node, ast.Subscript) and ci_name(node.slice):
            found.append(f"{where} [{node.slice.value}]")  # type: ignore[attr-defined]
    return found


@pytest.mark.parametrize("front_end", sorted(ALLOWED))
def test_front_ends_read_no_environment(front_end):
    """CI job defaults live behind the door (``door.workspace.CI_DEFAULTS``): a front end only translates."""
    assert environment_reads(PACKAGE / front_end) == []


def test_the_environment_check_sees_every_form(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import os\nfrom os import getenv\na = os.environ.get('X')\nb = os.getenv('Y')\n"
                     "c = env.get('CI_SERVER_URL', '')\nd = env['CI_PIPELINE_IID']\n"
                     "e = {'CI_JOB_ID': 1}\nf = os.path.join('a')\n")
    assert sorted(environment_reads(probe)) == [
        "probe.py:2 from os import", "probe.py:3 os.environ", "probe.py:4 os.getenv",
        "probe.py:5 get(CI_SERVER_URL)", "probe.py:6 [CI_PIPELINE_IID]"]


@pytest.mark.parametrize("module", ["cli.py", "cli_flags.py", "core/layout.py", *sorted(
    p.relative_to(PACKAGE).as_posix() for p in (PACKAGE / "door").glob("*.py"))])
def test_the_door_loads_only_light_modules_at_import(module):
    found = project_imports(PACKAGE / module, module_level_only=True, runtime_only=True)
    heavy = {m for m in found if m not in LIGHT and m != "door" and not m.startswith("door.")}
    assert heavy == set(), sorted(heavy)
    if module == "core/layout.py":
        assert found <= {"core.errors", "core.names"}


def test_help_loads_no_verb_dependency():
    code = (
        "import sys\nfrom faas_deployment import cli\ntry:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(m for m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(out.splitlines()[-1].split())
    assert "faas_deployment.cli" in loaded and "argparse" in loaded
    assert not [m for m in loaded if m.split(".")[0] in HEAVY or m in HEAVY]
    # --help needs only the CLI: not even the door, whose defaults a verb's own flags show.
    assert {m for m in loaded if m.startswith("faas_deployment")} == {"faas_deployment", "faas_deployment.cli",
                                                                      "faas_deployment.cli_flags"}


# --------------------------------------------------------------------------- layout


def test_one_local_repository_per_environment(tmp_path, capsys):
    """Releasing dev then prod: prod's versions are not compared with dev's (they share chart names)."""
    source = copy_repo(tmp_path / "src")
    dev, prod = config_file(source, "dev", "operator"), config_file(source, "prod", "operator")
    set_scalar(prod, "chart_name", get_scalar(dev, "chart_name"))
    set_scalar(dev, "chart_version", "2.0.0")
    set_scalar(prod, "chart_version", "1.0.0")
    assert cli.main(["--source", str(source), "release", "--env", "dev"]) == 0
    code = cli.main(["--source", str(source), "release", "--env", "prod"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.count("pushed ") == 4
    for env, version in (("dev", "2.0.0"), ("prod", "1.0.0")):
        index = yaml.safe_load((layout.local_repository(source, env) / "index.yaml").read_text())
        assert [e["version"] for e in index["entries"][get_scalar(dev, "chart_name")]] == [version]
    assert not (source / "dist" / "charts" / "index.yaml").exists()


def test_layout_paths():
    root = Path("/r")
    assert layout.local_repository(root, "dev") == Path("/r/dist/charts/dev")
    assert layout.default_bundle(root, "prod") == Path("/r/dist/manifests/prod.zip")
    assert layout.dynamic_dir(root, "dev") == Path("/r/env/dev/operator/dynamic")
    assert layout.settings_path(root, "dev") == Path("/r/env/dev/environment.yaml")


@pytest.mark.parametrize(("path", "expected"), [
    (lambda: layout.env_dir("dev"), "env/dev"),
    (lambda: layout.component_dir("dev", "operator"), "env/dev/operator"),
    (lambda: layout.config_file("prod", "controller"), "env/prod/controller/cookiecutter-config.yaml"),
    (lambda: layout.settings_file("prod"), "env/prod/environment.yaml"),
    (lambda: layout.dynamic_of("dev", "gateway"), "env/dev/gateway/dynamic"),
    (lambda: layout.hook_file("dev", "operator", "pre-deploy"), "env/dev/operator/hooks/pre-deploy"),
])
def test_every_repository_path_is_named_in_layout(path, expected):
    assert path() == Path(expected)


_PATH_RULES = re.compile(r'Path\("env"|/ "env"\b|"env" /|f"env/\{|^\s*(OPERATOR|HOOKS_DIR|DYNAMIC|ENVIRONMENT_SETTINGS|'
                         r'SETTINGS_NAME|CONFIG_NAME)\s*=', re.MULTILINE)


def test_no_module_but_layout_builds_repository_paths():
    """The env/ tree's paths and names (operator, hooks, dynamic, environment.yaml) are built in layout.py only."""
    found = {f"{name}: {match.group(0).strip()}" for name, module in source_modules().items() if name != "core.layout"
             for match in _PATH_RULES.finditer(module.read_text(encoding="utf-8"))}
    assert found == set()
    assert _PATH_RULES.search('x = Path("env", env)') and _PATH_RULES.search('OPERATOR = "operator"')


UNKNOWN_ENV = "unknown environment: 'nope'; known: dev, prod"


@pytest.mark.parametrize("verb", [
    ["config", "--component", "operator"], ["chart", "--component", "operator", "--out", "x"],
    ["objects", "--component", "operator"], ["package", "--component", "operator", "--out", "x"],
    ["publish", "--component", "operator"], ["release"], ["check"], ["bundle", "--out", "x.zip"],
    ["flux", "--out", "x"], ["artifact-objects", "--repository", "oci://127.0.0.1:1/x", "--out", "x"],
    ["bump", "--component", "operator", "--image-tag", "abc"],
    ["build-image", "--component", "operator", "--context", "."],
    ["publish-artifact", "--repository", "oci://127.0.0.1:1/x"],
    ["upload-bundle", "--admin-token", "env:NOPE"], ["wait"],
])
def test_an_unknown_environment_is_one_message_in_every_verb(tmp_path, capsys, verb):
    code = cli.main(["--source", str(Path(__file__).resolve().parent.parent), verb[0], "--env", "nope", *verb[1:]])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err == f"faas-deploy: error: {UNKNOWN_ENV}\n"
    assert not (tmp_path / "x").exists()


def test_an_unknown_component_is_one_message(capsys):
    root = str(Path(__file__).resolve().parent.parent)
    for verb in (["config"], ["publish"], ["bump", "--image-tag", "abc"], ["wait"], ["objects"]):
        assert cli.main(["--source", root, verb[0], "--env", "dev", "--component", "gateway", *verb[1:]]) == 1
        assert capsys.readouterr().err == (
            "faas-deploy: error: unknown component in environment 'dev': 'gateway'; known: controller, operator\n")


@pytest.mark.parametrize("verb", [["chart", "--component", "operator", "--out", ""],
                                  ["package", "--component", "operator", "--out", ""],
                                  ["flux", "--out", ""],
                                  ["build-image", "--component", "operator", "--context", "", "--out", "x.tar"]])
def test_an_empty_path_flag_is_one_message(capsys, verb):
    """A required path flag given empty is named (no traceback from a missing path)."""
    root = str(Path(__file__).resolve().parent.parent)
    assert cli.main(["--source", root, verb[0], "--env", "dev", *verb[1:]]) == 1
    flag = "--context" if verb[0] == "build-image" else "--out"
    assert capsys.readouterr().err == f"faas-deploy: error: {flag}: empty; give a path\n"


# --------------------------------------------------------------------------- CLI


def test_global_flags_before_or_after_the_verb(tmp_path, capsys):
    source = copy_repo(tmp_path / "src")
    assert cli.main(["--source", str(source), "config", "--env", "dev", "--component", "operator"]) == 0
    before = capsys.readouterr().out
    assert cli.main(["config", "--env", "dev", "--component", "operator", "--source", str(source)]) == 0
    assert capsys.readouterr().out == before
    assert cli.main(["--source", "/nowhere", "config", "--env", "dev", "--component", "operator",
                     "--source", str(source), "--output", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["chart_version"] == get_scalar(config_file(source, "dev", "operator"),
                                                                           "chart_version")


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("faas-deploy ") and out.split()[1][0].isdigit()


def test_output_json_for_results(tmp_path, capsys):
    source = copy_repo(tmp_path / "src")
    assert cli.main(["--source", str(source), "--output", "json", "release", "--env", "dev"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["outcome"] for r in results] == ["pushed", "pushed"]
    assert all(r["digest"].startswith("sha256:") and r["line"].startswith("pushed ") for r in results)
    assert cli.main(["--source", str(source), "release", "--env", "dev", "--output", "json"]) == 0
    assert [r["outcome"] for r in json.loads(capsys.readouterr().out)] == ["unchanged", "unchanged"]
    out = tmp_path / "dev.zip"
    assert cli.main(["--source", str(source), "--output", "json", "bundle", "--env", "dev", "--out", str(out)]) == 0
    bundle = json.loads(capsys.readouterr().out)
    assert bundle["path"] == str(out) and bundle["size"] == out.stat().st_size
    assert cli.main(["--source", str(source), "--output", "json", "check", "--env", "dev"]) == 0
    checked = json.loads(capsys.readouterr().out)
    assert {"env": "dev", "component": "operator"}.items() <= checked["charts"][1].items()


def test_objects_prints_the_rendered_objects(capsys):
    root = str(Path(__file__).resolve().parent.parent)
    assert cli.main(["--source", root, "objects", "--env", "dev", "--component", "operator"]) == 0
    documents = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    assert {"Deployment", "Service"} <= {d["kind"] for d in documents}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_exits_130_with_one_line(tmp_path, sig):
    """Ctrl-C (or a cancelled CI job) while waiting for the admin API: exit 130, one line, no traceback."""
    source = copy_repo(tmp_path / "src")
    proc = subprocess.Popen(
        [str(FAAS_DEPLOY), "--source", str(source), "upload-bundle", "--env", "dev", "--admin-token", "env:TOKEN",
         "--admin-url", f"http://127.0.0.1:{_free_port()}", "--timeout", "60", "--out", str(tmp_path / "b.zip")],
        env={**os.environ, "TOKEN": "t0ken"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "b.zip").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and out == ""
    assert err.endswith("faas-deploy: interrupted\n") and err.count("interrupted") == 1


@pytest.mark.parametrize("verb", sorted(cli.VERBS))
def test_every_verb_has_its_help(verb, capsys):
    """Each verb's flags are built when it is named (their defaults read through the door)."""
    with pytest.raises(SystemExit) as done:
        cli.main([verb, "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and out.startswith(f"usage: faas-deploy {verb} ")
    assert "--source" in out and "--output" in out


def test_an_unknown_output_form_is_refused_before_the_verb_runs(tmp_path, capsys):
    source = copy_repo(tmp_path / "src")
    assert cli.main(["--source", str(source), "--output", "yaml", "release", "--env", "dev"]) == 1
    assert capsys.readouterr().err == "faas-deploy: error: --output 'yaml': expected one of text, table, json\n"
    assert not (source / "dist").exists()


# --------------------------------------------------------------------------- CI job defaults


def test_ci_defaults_come_from_the_workspace_environ(tmp_path, monkeypatch):
    """The CLI's workspace reads the job's variables; the Dagger module's (``environ={}``) only explicit values."""
    for name, value in {"CI_COMMIT_REF_NAME": "feature", "CI_DEFAULT_BRANCH": "trunk", "CI_MERGE_REQUEST_IID": "7",
                        "CI_PIPELINE_IID": "12", "CI_SERVER_URL": "https://gitlab.example"}.items():
        monkeypatch.setenv(name, value)
    job = door.plan.pipeline_context(door.Workspace(tmp_path))
    assert (job.ref, job.default_branch, job.merge_request, job.pipeline_iid) == ("feature", "trunk", "7", "12")
    explicit = door.plan.pipeline_context(door.Workspace(tmp_path), "fix", "main", "", "3")
    assert (explicit.ref, explicit.default_branch, explicit.merge_request, explicit.pipeline_iid) == (
        "fix", "main", "7", "3")
    dagger_side = door.plan.pipeline_context(door.Workspace(tmp_path, environ={}))
    assert (dagger_side.ref, dagger_side.default_branch, dagger_side.merge_request) == ("", "main", "")
    assert door.Workspace(tmp_path, environ={}).ci_default("", "gitlab_url") == ""
    assert door.Workspace(tmp_path).ci_default("", "gitlab_url") == "https://gitlab.example"
    assert set(door.workspace.CI_DEFAULTS.values()) >= {"CI_SERVER_URL", "CI_PROJECT_ID", "CI_PIPELINE_URL"}


def test_every_module_constant_is_read_by_code():
    """A module-level UPPER_CASE constant that no code of the package reads is a second, dead home of a rule."""
    trees = {name: ast.parse(module.read_text(encoding="utf-8")) for name, module in source_modules().items()}
    read = {node.id for tree in trees.values() for node in ast.walk(tree)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
    read |= {node.attr for tree in trees.values() for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    read |= {alias.name for tree in trees.values() for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
             for alias in node.names}
    defined = {(name, target.id) for name, tree in trees.items() for statement in tree.body
               if isinstance(statement, (ast.Assign, ast.AnnAssign))
               for target in (statement.targets if isinstance(statement, ast.Assign) else [statement.target])
               if isinstance(target, ast.Name) and target.id.isupper()}
    assert len(defined) > 50
    assert sorted(f"{module}: {name}" for module, name in defined if name not in read) == []


def test_design_names_each_rule_home():
    """docs/design.md's table of rule homes names modules and functions that exist."""
    import importlib

    text = (Path(__file__).resolve().parent.parent / "docs" / "design.md").read_text(encoding="utf-8")
    section = text.split("## Each rule's home", 1)[1].split("\n## ", 1)[0]
    homes = re.findall(r"^\|[^|]+\| `([\w/]+)\.py` \(([^)]*)\) \|$", section, re.MULTILINE)
    assert {module for module, _ in homes} >= {"core/versions", "core/deadline", "core/repofiles", "core/names",
                                               "core/urls", "core/layout", "core/secrets"}
    for module, named in homes:
        loaded = importlib.import_module(f"faas_deployment.{module.replace('/', '.')}")
        for reference in re.findall(r"`(\w+)\.(\w+)`", named):
            assert reference[0] == module.rpartition("/")[2] and hasattr(loaded, reference[1]), reference
