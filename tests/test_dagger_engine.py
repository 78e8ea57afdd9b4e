"""The Dagger module as the engine runs it: registration, invocation, and every ``dagger call`` line.

Everything here goes through dagger-io's own registration (``Module._typedefs``)
and invocation (``Module.get_result``) code, with ``support.dagger_engine`` standing
in for the engine under the engine's rules (each cited there). No engine runs:
container builds and pushes are recorded, and the tests say so where they stop.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from faas_deployment import door
from faas_deployment.door import Workspace
from faas_deployment.flux import rollout_outcome
from support import ci_calls, dagger_engine, daggermod
from support.admin_api_server import AdminApiServer
from support.ci_checkout import clone_with_origin
from support.dagger_engine import CORE_TYPE_NAMES, Engine, EngineRefusal, FileObj, NotExecuted, export_file, ignored
from support.flux_doubles import HR, OCI, KubeApi, Receiver, deploy_succeeds
from support.gitlab_api_server import GitLabApi
from support.registry_proxy import registry_proxy
from support.tls import self_signed

REPO = dagger_engine.REPO

#: The Dagger contract, one row per function: (object, function) -> (return type, cache policy,
#: arguments in order as "name: type", '?' marking an optional type). NEVER: the function reaches a
#: registry, a cluster or an API, so the engine must not cache its result (the default policy caches
#: it for up to seven days); CACHED: a pure function of its inputs. A change to the module's surface
#: changes this table, in the same commit.
NEVER, CACHED = "never", "cached"
#: The arguments of ``deploy``, the same on Environment and Component (one engine-side signature).
DEPLOY_ARGS = (
    'kubeconfig: Secret',
    'receiver_token: Secret? = null',
    'trigger_api: boolean = false',
    'kube_context: string = ""',
    'registry: string = ""',
    'immutable_tags: boolean = false',
    'timeout: float = 0',
    'receiver_url: string = ""',
    'admin_token: Secret? = null',
    'admin_url: string = ""',
    'prerelease: string = ""',
    'pipeline_id: string = ""',
    'job_id: string = ""',
)
CONTRACT: dict[tuple[str, str], tuple[str, str, tuple[str, ...]]] = {
    ("Component", "build_image"): ("Container", CACHED, (
        'context: Directory',
        'dockerfile: string = "Dockerfile"',
        'build_args: list = []',
        'target: string = ""',
        'platform: string = "linux/amd64"',
        'revision: string = ""',
        'source_url: string = ""',
    )),
    ("Component", "bump"): ("File", CACHED, (
        'image_tag: string',
        'part: string = "patch"',
    )),
    ("Component", "bump_merge_request"): ("string", NEVER, (
        'image_tag: string',
        'gitlab_url: string',
        'gitlab_project: string',
        'gitlab_token: Secret',
        'checkout: Directory (default path /)',
        'part: string = "patch"',
        'target_branch: string = "main"',
        'remote: string = "origin"',
        'labels: list = ["bump"]',
        'author: string = "faas-deployment <faas-deployment@noreply.invalid>"',
        'pipeline_url: string = ""',
        'timeout: float = 0',
    )),
    ("Component", "chart"): ("Directory", CACHED, ()),
    ("Component", "config"): ("string", CACHED, ()),
    ("Component", "deploy"): ("string", NEVER, DEPLOY_ARGS),
    ("Component", "objects"): ("string", CACHED, ()),
    ("Component", "package"): ("File", CACHED, ()),
    ("Component", "publish"): ("string", NEVER, (
        'registry: string',
        'immutable_tags: boolean = false',
        'prerelease: string = ""',
        'timeout: float = 300.0',
    )),
    ("Component", "publish_artifact"): ("string", NEVER, (
        'repository: string = ""',
        'objects: Directory? = null',
        'revision: string = ""',
        'source_url: string = ""',
    )),
    ("Component", "publish_image"): ("string", NEVER, (
        'context: Directory',
        'tag: string',
        'dockerfile: string = "Dockerfile"',
        'build_args: list = []',
        'target: string = ""',
        'platform: string = "linux/amd64"',
        'revision: string = ""',
        'source_url: string = ""',
    )),
    ("Component", "retire_artifact"): ("string", NEVER, (
        'repository: string = ""',
    )),
    ("Component", "wait"): ("string", NEVER, (
        'kubeconfig: Secret',
        'kube_context: string = ""',
        'timeout: float = 0',
    )),
    ("Component", "wait_artifact"): ("string", NEVER, (
        'digest: string',
        'kubeconfig: Secret',
        'namespace: string = "flux-system"',
        'kube_context: string = ""',
        'timeout: float = 0',
    )),
    ("Environment", "artifact_objects"): ("Directory", CACHED, (
        'repository: string',
        'name: string = ""',
        'namespace: string = "flux-system"',
        'target_namespace: string = ""',
        'registry_secret: string = ""',
        'receiver_secret: string = "faas-receiver-token"',
        'plain_http: boolean = false',
    )),
    ("Environment", "component"): ("Component", CACHED, (
        'name: string',
    )),
    ("Environment", "deploy"): ("string", NEVER, DEPLOY_ARGS),
    ("Environment", "wait"): ("string", NEVER, (
        'kubeconfig: Secret',
        'kube_context: string = ""',
        'timeout: float = 0',
    )),
    ("Environment", "flux"): ("Directory", CACHED, (
        'registry_secret: string = ""',
        'plain_http: boolean = false',
    )),
    ("Environment", "local_repository"): ("Directory", CACHED, ()),
    ("Environment", "bundle"): ("File", CACHED, ()),
    ("Environment", "publish_artifacts"): ("string", NEVER, (
        'repository: string = ""',
        'revision: string = ""',
        'source_url: string = ""',
    )),
    ("Environment", "release"): ("string", NEVER, (
        'registry: string',
        'immutable_tags: boolean = false',
        'timeout: float = 300.0',
        'skip_image_check: boolean = false',
    )),
    ("Environment", "upload_bundle"): ("string", NEVER, (
        'admin_token: Secret',
        'admin_url: string = ""',
        'ready_path: string = "/healthz"',
        'upload_path: string = "/admin/manifests"',
        'timeout: float = 300.0',
    )),
    ("FaasDeployment", "check"): ("string", NEVER, (
        'checkout: Directory (default path /)',
        'env: string = ""',
        'registry: string = ""',
        'timeout: float = 300.0',
        'base: string = ""',
    )),
    ("FaasDeployment", "env"): ("Environment", CACHED, (
        'name: string',
    )),
    ("FaasDeployment", "child_pipeline"): ("File", CACHED, (
        'checkout: Directory (default path /)',
        'base: string = ""',
        'default_branch: string = "main"',
        'ref: string = ""',
        'merge_request: string = ""',
        'pipeline_iid: string = ""',
        'branch_envs: list = ["dev"]',
    )),
    ("FaasDeployment", "plan"): ("string", CACHED, (
        'checkout: Directory (default path /)',
        'base: string = ""',
        'default_branch: string = "main"',
        'format: string = "table"',
    )),
    ("FaasDeployment", "with_registry"): ("FaasDeployment", CACHED, (
        'address: string',
        'username: string = ""',
        'password: Secret? = null',
        'plain_http: boolean = false',
        'ca_file: File? = null',
    )),
    ("FaasDeployment", "promote"): ("string", NEVER, (
        'checkout: Directory (default path /)',
        'component: string = ""',
        'all: boolean = false',
        'source_status: File? = null',
        'merge_request: boolean = false',
        'gitlab_url: string = ""',
        'gitlab_project: string = ""',
        'gitlab_token: Secret? = null',
        'target_branch: string = "main"',
        'remote: string = "origin"',
        'labels: list = ["promotion"]',
        'author: string = "faas-deployment <faas-deployment@noreply.invalid>"',
        'pipeline_url: string = ""',
        'kubeconfig: Secret? = null',
        'kube_context: string = ""',
        'from: string = ""',
        'to: string = ""',
        'allow_prerelease: boolean = false',
        'timeout: float = 0',
    )),
}


@pytest.fixture(scope="module")
def registered() -> dict[str, dagger_engine.ObjectDef]:
    with Engine(REPO) as engine:
        return engine.register()


@pytest.fixture()
def checkout(tmp_path: Path) -> Path:
    """A caller's checkout: dagger.json, env/ and some clutter the default source must not upload."""
    repo = tmp_path / "checkout"
    shutil.copytree(REPO / "env", repo / "env")
    shutil.copy(REPO / "dagger.json", repo / "dagger.json")
    for clutter in (".git/objects/pack", "dist/old", "node_modules/x", "dagger/.venv/lib", ".gitlab-ci-local/x"):
        (repo / clutter).mkdir(parents=True)
        (repo / clutter / "big.bin").write_bytes(b"\0" * 1024)
    return repo


# --------------------------------------------------------------------------- registration


def test_module_registers_with_no_core_type_name(registered):
    assert set(registered) == {"FaasDeployment", "Environment", "Component"}
    assert not set(registered) & CORE_TYPE_NAMES
    assert "Env" in CORE_TYPE_NAMES  # the guard knows the name that once collided
    env = registered["FaasDeployment"].functions["env"]
    assert (env.returns.kind, env.returns.name) == ("OBJECT_KIND", "Environment")


def test_every_function_and_argument_is_documented(registered):
    for obj in registered.values():
        assert obj.doc, obj.name
        for fn in [*obj.functions.values(), *([obj.constructor] if obj.constructor else [])]:
            if fn.name:
                assert fn.doc and len(fn.doc) > 20, f"{obj.name}.{fn.name} needs a docstring"
            for arg in fn.args.values():
                assert arg.doc, f"{obj.name}.{fn.name or 'constructor'}({arg.name}) needs a Doc()"


def _type(ref: dagger_engine.TypeRef) -> str:
    return (ref.name or ref.kind.removesuffix("_KIND").lower()) + ("?" if ref.optional else "")


def _arg(arg: dagger_engine.ArgDef) -> str:
    shown = f"{arg.name}: {_type(arg.type)}"
    if arg.has_default:
        shown += f" = {json.dumps(arg.default)}"
    return shown + (f" (default path {arg.default_path})" if arg.default_path else "")


def test_the_module_is_exactly_the_contract_table(registered):
    actual = {
        (obj.name, name): (_type(fn.returns), NEVER if fn.cache_policy == "Never" else CACHED,
                           tuple(_arg(a) for a in fn.args.values()))
        for obj in registered.values() for name, fn in obj.functions.items()
    }
    assert sorted(actual) == sorted(CONTRACT)
    for key, row in CONTRACT.items():
        assert actual[key] == row, key


def test_functions_that_talk_to_the_outside_are_never_cached(registered):
    """The rule behind the table's cache column: a Secret, a registry or an admin URL means it talks
    (``with_registry`` only keeps the access for the functions after it: it reads no Secret, talks to nothing)."""
    for (obj, name), (_, cache, args) in CONTRACT.items():
        talks = name != "with_registry" and any("Secret" in a or a.startswith(("registry:", "admin_url:"))
                                                for a in args)
        if talks:
            assert cache == NEVER, f"{obj}.{name} talks to the outside: cache='never'"
        assert registered[obj].functions[name].cache_policy in (None, "Never")


def test_default_source_uploads_only_env(registered, checkout, tmp_path):
    source = registered["FaasDeployment"].constructor.args["source"]
    assert source.default_path == "/"
    copy = tmp_path / "uploaded"
    dagger_engine.filtered_copy(checkout, copy, source.ignore)
    assert sorted(p.name for p in copy.iterdir()) == ["env"]
    assert (copy / "env" / "dev" / "operator" / "dynamic").is_dir()


def _mutant_package(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the package with ``old`` replaced by ``new`` in every Dagger module holding it."""
    root = tmp_path / "mutant"
    shutil.copytree(REPO / "dagger" / "src" / "faas_deployment", root / "faas_deployment")
    mutated = 0
    for name in daggermod.MODULES:
        module = root / "faas_deployment" / name
        text = module.read_text()
        if old in text:
            module.write_text(text.replace(old, new))
            mutated += 1
    assert mutated, f"{old!r} is in no Dagger module"
    return root


def _refusal_of_mutant(tmp_path: Path, old: str, new: str) -> str:
    """Register a mutated copy of the package in a fresh process; the harness's refusal ('' if none)."""
    root = _mutant_package(tmp_path, old, new)
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from support.dagger_engine import Engine, EngineRefusal, REPO\n"
        "import faas_deployment, os\n"
        "assert faas_deployment.__file__.startswith(sys.argv[2]), faas_deployment.__file__\n"
        "try:\n"
        "    with Engine(REPO) as e: e.register()\n"
        "except EngineRefusal as exc: print(exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run([sys.executable, "-c", script, str(REPO / "tests"), str(root)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_a_class_named_like_a_core_type_is_refused(tmp_path):
    # Re-introduce ``class Env`` in a copy of the package and register it in a fresh process.
    assert _refusal_of_mutant(tmp_path, "Environment", "Env") == 'type "Env" is already defined by module "daggercore"'


#: Mutations of the Dagger modules the engine (or the Dagger CLI) refuses, with its message; each rule cited in
#: support/dagger_engine.py. The SDK itself accepts every one of them: only the harness's rules catch them.
ENGINE_MUTANTS = {
    "field-named-id": ('    name: Annotated[str, Doc("component name (env/<env>/<component>/)")]',
                       '    id: Annotated[str, Doc("component name")] = dagger.field(default="")',
                       'cannot define field with reserved name "id" on object "Component"'),
    "function-named-id": ("    async def config(self) -> str:", "    async def id(self) -> str:",
                          'cannot define function with reserved name "id" on object "Component"'),
    "ignore-on-a-string": ("PlanBase = Annotated[str, Doc(", 'PlanBase = Annotated[str, Ignore(["x"]), Doc(',
                           "can only set ignore for Object type, not STRING_KIND"),
    "ignore-on-a-file": ("CaFileArg = Annotated[dagger.File | None, Doc(",
                         'CaFileArg = Annotated[dagger.File | None, Ignore(["x"]), Doc(',
                         "can only set ignore for Directory type, not File"),
    "default-path-on-a-string": ('        image_tag: Annotated[str, '
                                 'Doc("the new image tag, typically the commit SHA")],\n'
                                 '        part:',
                                 '        image_tag: Annotated[str, DefaultPath("/"), Doc("the new image tag")],\n'
                                 '        part:',
                                 "can only set default path for Object, not STRING_KIND"),
    "default-path-on-a-secret": ("KubeconfigArg = Annotated[dagger.Secret, Doc(",
                                 'KubeconfigArg = Annotated[dagger.Secret, DefaultPath("/kube"), Doc(',
                                 "cannot set default path for Secret"),
    "default-path-and-a-default": ('        objects: Annotated[dagger.Directory | None, Doc(',
                                   '        objects: Annotated[dagger.Directory | None, DefaultPath("/"), Doc(',
                                   "cannot set more than one default value"),
    "argument-named-output": ("        format: Annotated[str,", "        output: Annotated[str,",
                              "flag already exists: output"),
    "argument-named-mod": ("        checkout: PlanCheckout,\n        base: PlanBase = \"\",\n"
                           "        default_branch: DefaultBranch = defaults.DEFAULT_BRANCH,\n        format",
                           "        mod: PlanCheckout,\n        base: PlanBase = \"\",\n"
                           "        default_branch: DefaultBranch = defaults.DEFAULT_BRANCH,\n        format",
                           "flag already exists: mod"),
    "constructor-argument-named-json": ("    source_date_epoch: Annotated[str, Doc(\n",
                                        "    json: Annotated[str, Doc(\n", "flag already exists: json"),
}


@pytest.mark.parametrize("mutant", sorted(ENGINE_MUTANTS))
def test_the_harness_refuses_what_the_engine_refuses(tmp_path, mutant):
    old, new, refusal = ENGINE_MUTANTS[mutant]
    assert _refusal_of_mutant(tmp_path, old, new) == refusal


def test_the_persistent_flags_of_dagger_call_are_all_known():
    """Each group of ``CALL_PERSISTENT_FLAGS`` as read from cmd/dagger (v0.21): root, call, function command."""
    flags = dagger_engine.CALL_PERSISTENT_FLAGS
    assert {"output", "json"} <= flags and {"mod", "no-mod", "allow-llm", "eager-runtime"} <= flags
    assert {"workdir", "verbose", "quiet", "silent", "debug", "progress", "interactive", "web", "help"} <= flags


# --------------------------------------------------------------------------- engine rules (unit)


@pytest.mark.parametrize(("path", "local"), [
    ("faas-scratch/a/chart", True), ("a/../b", True), ("", False), ("/scratch/x", False),
    ("/tmp/faas-source-1/dist", False), ("../x", False), ("a/../../x", False), (".", True),
])
def test_workdir_paths_follow_go_filepath_islocal(path, local):
    assert dagger_engine._is_local(path) is local


@pytest.mark.parametrize(("path", "patterns", "left_out"), [
    (".git/HEAD", ["*", "!env"], True),
    ("env", ["*", "!env"], False),
    ("env/dev/operator/cookiecutter-config.yaml", ["*", "!env"], False),
    ("dagger.json", ["*", "!env"], True),
    ("env/dev/__pycache__/x.pyc", ["*", "!env", "env/**/__pycache__"], True),
    ("dagger/.venv/lib/x.py", ["dagger/.venv"], True),
    ("a/b/c.txt", ["**/c.txt"], True),
])
def test_ignore_patterns_follow_dockerignore(path, patterns, left_out):
    assert ignored(path, patterns) is left_out


def test_file_export_follows_the_engine_path_rules(tmp_path):
    source = tmp_path / "pkg.tgz"
    source.write_bytes(b"x")
    obj = FileObj(source, "faas-operator-1.0.3.tgz")
    # A trailing slash on a path that does not exist: the file is written AT the cleaned path.
    assert export_file(obj, tmp_path, "dist/charts/dev/", False) == tmp_path / "dist" / "charts" / "dev"
    assert (tmp_path / "dist" / "charts" / "dev").is_file()
    (tmp_path / "out").mkdir()
    with pytest.raises(EngineRefusal, match="is a directory"):
        export_file(obj, tmp_path, "out", False)
    assert export_file(obj, tmp_path, "out/", True) == tmp_path / "out" / "faas-operator-1.0.3.tgz"


# --------------------------------------------------------------------------- invocation


def test_absolute_workdir_paths_are_refused(checkout, monkeypatch):
    from faas_deployment import dagger_runtime

    monkeypatch.setattr(dagger_runtime, "workdir_path", lambda path: str(Path(path).resolve()))
    with Engine(checkout) as engine, pytest.raises(EngineRefusal, match="escapes workdir"):
        engine.call("dagger call env --name dev local-repository export --path dist/charts/dev")


def test_a_user_error_is_the_core_message_without_a_traceback(checkout, caplog, capfd):
    config = checkout / "env" / "dev" / "operator" / "cookiecutter-config.yaml"
    config.write_text(config.read_text().replace('chart_version: "', 'chart_version: "x'))
    with Engine(checkout) as engine, pytest.raises(EngineRefusal) as caught:
        engine.call("dagger call env --name dev component --name operator config")
    from faas_deployment.core.errors import UserError
    from faas_deployment.door import Workspace

    with pytest.raises(UserError) as core:
        door.charts.config(Workspace(checkout), "dev", "operator")
    # The user sees the core's message, word for word, and nothing else.
    assert str(caught.value) == str(core.value)
    assert "env/dev/operator/cookiecutter-config.yaml: default_context.chart_version:" in str(caught.value)
    assert "Traceback" not in caplog.text + capfd.readouterr().err


def test_immutable_tags_reach_the_door_through_the_engine(registry, checkout):
    """``publish --immutable-tags`` through the engine, against a registry refusing overwrites:
    the first push makes the 8 requests of a registry-arbitrated push (no lease), then a rerun is
    ``unchanged``."""
    line = (f"dagger call with-registry --address {{host}} --username {registry.username} "
            "--password env:CHART_REGISTRY_PASSWORD --plain-http "
            "env --name dev component --name operator publish --registry oci://{host}/charts --immutable-tags")
    with registry_proxy(registry.url) as (host, faults), \
            Engine(checkout, env={"CHART_REGISTRY_PASSWORD": registry.password}) as engine:
        faults.lie = "put-immutable"
        first = engine.call(line.format(host=host))
        made = len(faults.log)
        again = engine.call(line.format(host=host))
    assert first.startswith("pushed ") and again.startswith("unchanged "), (first, again)
    assert made == 8 and faults.count(path="/lease-") == 0, faults.log


def test_with_registry_gives_the_chain_its_credentials_once(registry, checkout):
    """``with-registry`` on the main object, then ``env``, ``component``, ``publish`` against the
    authenticated loopback registry: the access reaches ``publish`` through two objects (a Secret
    field carried by its ID), and ``release`` of another chain as well; the password is never printed."""
    chain = (f"dagger call with-registry --address {registry.host} --username {registry.username} "
             "--password env:CHART_REGISTRY_PASSWORD --plain-http env --name dev ")
    with Engine(checkout, env={"CHART_REGISTRY_PASSWORD": registry.password}) as engine:
        published = engine.call(chain + f"component --name operator publish --registry oci://{registry.host}/charts")
        released = engine.call(chain + f"release --registry oci://{registry.host}/charts --skip-image-check")
    assert published.startswith(f"pushed {registry.host}/charts/faas-operator:"), published
    assert released.splitlines()[0].startswith("pushed ") and "unchanged " in released, released
    assert registry.password not in published + released
    assert engine.executed[:5] == ["FaasDeployment.constructor", "FaasDeployment.with_registry", "FaasDeployment.env",
                                   "Environment.component", "Component.publish"]


def test_with_registry_credentials_reach_their_host_only(registry, checkout, tmp_path, monkeypatch):
    """Access given for host A (the loopback registry behind a plain-HTTP proxy) is not sent to host B
    (the same registry behind an HTTPS proxy whose certificate the process trusts, as a public registry's
    would be): B is asked anonymously, never with an ``Authorization`` header, and the call fails saying
    the registry needs credentials; A is not contacted. The same chain to A itself is authenticated."""
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # requests' trust store: B is a trusted TLS registry
    with registry_proxy(registry.url) as (host_a, seen_a), \
            registry_proxy(registry.url, tls=(cert, key)) as (host_b, seen_b), \
            Engine(checkout, env={"PW": registry.password}) as engine:
        chain = (f"dagger call with-registry --address {host_a} --username {registry.username} --password env:PW "
                 "--plain-http env --name dev component --name operator ")
        with pytest.raises(EngineRefusal) as refused:
            engine.call(chain + f"publish --registry oci://{host_b}/charts")
        assert seen_b.log and seen_a.log == []
        assert {scheme for *_, scheme in seen_b.log} == {""}, seen_b.log
        assert "needs credentials" in str(refused.value) and registry.password not in str(refused.value)
        assert engine.call(chain + f"publish --registry oci://{host_a}/charts").startswith("pushed ")
        assert "Basic" in {scheme for *_, scheme in seen_a.log}


def test_with_registry_refuses_an_address_that_is_no_host(checkout):
    with Engine(checkout, env={"PW": "pw-0123"}) as engine:
        for address, message in (("oci://registry.example.org/charts", "expected a registry HOST"),
                                 ("https://registry.example.org", "expected a registry HOST")):
            with pytest.raises(EngineRefusal, match=message):
                engine.call(f"dagger call with-registry --address {address} --username ci --password env:PW "
                            "env --name dev component --name operator config")
        with pytest.raises(EngineRefusal, match="--username and --password go together"):
            engine.call("dagger call with-registry --address registry.example.org --username ci "
                        "env --name dev component --name operator config")


def test_publish_image_sends_with_registry_credentials_to_their_host_only(checkout):
    """The engine's push (``withRegistryAuth``) carries the chain's credentials only when given for the
    image_repository's host (registry.example.org here)."""
    context = "https://git.example.org/x/y.git#" + "0f3c2d1e5b7a9c4d6e8f0a1b2c3d4e5f6a7b8c9d"
    steps = {}
    with Engine(checkout, env={"P": "img-secret-0123"}) as engine:
        for address in ("registry.example.org", "other.example.org"):
            with pytest.raises(NotExecuted) as stop:
                engine.call(f"dagger call with-registry --address {address} --username ci --password env:P "
                            f"env --name dev component --name controller publish-image --context {context} --tag v1")
            steps[address] = dict(stop.value.steps)
    assert steps["registry.example.org"]["withRegistryAuth"]["username"] == "ci"
    assert "withRegistryAuth" not in steps["other.example.org"]
    assert steps["other.example.org"]["publish"]["address"] == "registry.example.org/eo4eu-faas/faas-controller:v1"


def test_functions_chain_object_state_as_the_engine_does(checkout):
    with Engine(checkout) as engine:
        out = engine.call("dagger call env --name prod component --name controller config")
    assert out.startswith("default_context:") and "chart_name:" in out
    assert engine.executed == ["FaasDeployment.constructor", "FaasDeployment.env", "Environment.component",
                               "Component.config"]


def test_the_lock_installs_on_the_engine_runtime():
    """Every runtime dependency has a wheel for the runtime image (python:<.python-version>-slim, glibc)
    on x86_64 and aarch64, or is pure Python."""
    python = (REPO / "dagger" / ".python-version").read_text().strip()
    cp = "cp" + python.replace(".", "")
    lock = tomllib.loads((REPO / "dagger" / "uv.lock").read_text())
    packages = {p["name"]: p for p in lock["package"]}
    root = next(p for p in lock["package"] if p.get("source", {}).get("editable") == ".")
    seen: set[str] = set()
    todo = list(root.get("dependencies", []))
    while todo:
        dep = todo.pop()
        marker = dep.get("marker", "")
        if re.search(r"sys_platform == '(win32|darwin)'|platform_system == '(Windows|Darwin)'", marker):
            continue
        if dep["name"] not in seen:
            seen.add(dep["name"])
            todo += packages[dep["name"]].get("dependencies", [])

    def installable(package: dict, arch: str) -> bool:
        for wheel in package.get("wheels", []):
            py, abi, platform = wheel["url"].rsplit("/", 1)[-1][: -len(".whl")].split("-")[-3:]
            if platform == "any":
                return True
            pythons = py.split(".")
            if arch in platform and "manylinux" in platform and (cp in pythons or abi == "abi3" or "py3" in pythons):
                return True
        return False

    missing = [f"{n} ({arch})" for n in sorted(seen) for arch in ("x86_64", "aarch64")
               if not installable(packages[n], arch)]
    assert not missing, f"no wheel for the Dagger runtime image: {missing}"
    assert {"dagger-io", "helm-python-sdk", "oras"} <= seen


UV_RUNTIME = REPO / ".ci" / "uv-runtime" / "bin" / "uv"


@pytest.mark.skipif(not UV_RUNTIME.exists() and not os.environ.get("CI"), reason="run .ci/setup to install uv 0.10.3")
def test_the_lock_is_accepted_by_the_uv_the_runtime_pins(tmp_path):
    """The Python runtime runs ``uv lock`` then ``uv sync`` with uv 0.10.3 (sdk/python/runtime)."""
    project = tmp_path / "dagger"
    shutil.copytree(REPO / "dagger", project, ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    version = subprocess.run([UV_RUNTIME, "--version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("uv 0.10.3")
    out = subprocess.run([UV_RUNTIME, "lock", "--check", "--project", str(project)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr


# --------------------------------------------------------------------------- every dagger call line


def doc_files() -> list[Path]:
    """README.md, then every ``docs/*.md`` page in name order (the order their lines run in)."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def readme_lines() -> list[str]:
    """Every ``dagger call`` command of the ``sh`` blocks of README.md and docs/*.md (continuations joined)."""
    text = "\n".join(path.read_text() for path in doc_files())
    lines = []
    for block in re.findall(r"^\s*```sh\n(.*?)```", text, re.S | re.M):
        for command in block.replace("\\\n", " ").splitlines():
            command = re.sub(r"\s+#.*$", "", command).strip()
            if "dagger call" in command:
                lines.append(re.sub(r"\s+", " ", command))
    return lines


def _registry_line(line: str, registry) -> str:
    """Point the example chart and artifact registry at the loopback one (plain HTTP, the fixture's user); the
    with-registry access of those lines follows it (an image line's stays with the image_repository's host)."""
    if "oci://registry.example.org/" not in line:
        return line
    line = line.replace("oci://registry.example.org/eo4eu-faas/charts", f"oci://{registry.host}/eo4eu-faas/charts")
    line = line.replace("oci://registry.example.org/eo4eu-faas/manifests", f"oci://{registry.host}/eo4eu-faas/manifests")
    return line.replace("with-registry --address registry.example.org ",
                        f"with-registry --address {registry.host} --plain-http ")


def _run_shell_prefix(line: str, cwd: Path) -> str:
    """``mkdir -p DIR && dagger call ...``: do the mkdir (the one shell step the docs use)."""
    while (m := re.match(r"mkdir -p (\S+) && (.*)", line)) or (m := re.match(r"mkdir -p (\S+)$", line)):
        (cwd / m.group(1)).mkdir(parents=True, exist_ok=True)
        line = m.group(2) if m.lastindex == 2 else ""
    return line


def _publish_then_remove(checkout: Path, registry, component: str) -> None:
    """Publish ``component``'s dev artifact to the README's artifact repository, then remove it from ``env/dev/``."""
    from faas_deployment.cli import main
    from support.repo_tree import set_scalar

    directory = checkout / "env" / "dev" / component
    shutil.copytree(checkout / "env" / "dev" / "controller", directory)
    set_scalar(directory / "cookiecutter-config.yaml", "chart_name", f"faas-{component}")
    os.environ["README_OLD_PASSWORD"] = registry.password
    try:
        assert main(["--source", str(checkout), "publish-artifact", "--env", "dev", "--component", component,
                     *_registry_line("--repository oci://registry.example.org/eo4eu-faas/manifests", registry).split(),
                     "--plain-http",
                     "--username", registry.username, "--password", "env:README_OLD_PASSWORD",
                     "--revision", "main@sha1:" + "0" * 40, "--source-url", "https://git.example.org/x.git"]) == 0
    finally:
        del os.environ["README_OLD_PASSWORD"]
    shutil.rmtree(directory)


def test_every_readme_line_runs(registry, checkout, tmp_path):
    lines = readme_lines()
    assert len(lines) >= 12
    template = checkout / "my-template"
    shutil.copytree(REPO / "dagger" / "src" / "faas_deployment" / "charts" / "template", template)
    secrets = {"CHART_REGISTRY_PASSWORD": registry.password, "OPERATOR_ADMIN_TOKEN": "tok-readme-0123",
               "IMAGE_REGISTRY_PASSWORD": "img-secret-4567"}
    not_executed = []
    _publish_then_remove(checkout, registry, "old")  # what the README's retire-artifact lines retire
    with AdminApiServer("tok-readme-0123") as api, Engine(checkout, env=secrets) as engine:
        for raw in lines:
            line = _run_shell_prefix(_registry_line(raw, registry), checkout)
            line = line.replace("https://faas-operator.dev.example.org", api.url)
            try:
                out = engine.call(line)
            except NotExecuted as stop:
                steps = dict(stop.steps)
                assert stop.what == "Container.publish", raw
                assert steps["git"]["url"].endswith("#0f3c2d1e5b7a9c4d6e8f0a1b2c3d4e5f6a7b8c9d")
                assert steps["dockerBuild"]["platform"] == "linux/amd64"
                assert "withRegistryAuth" in steps and steps["publish"]["address"].endswith(":0f3c2d1")
                not_executed.append(raw)
                continue
            for secret in secrets.values():
                assert secret not in out
            if " publish " in f"{line} " or " release " in f"{line} ":
                assert out.strip() and all(row.startswith("pushed ") for row in out.splitlines()), out
            elif "publish-artifact" in line:
                assert out.strip() and all(row.startswith(("pushed ", "unchanged ")) for row in out.splitlines()), out
            elif "retire-artifact" in line:
                assert out.startswith("retired "), out
            elif "upload-bundle" in line:
                assert out.startswith("uploaded "), out
            elif line.startswith("dagger call check"):
                assert "ok dev/operator" in out
            elif line.startswith("dagger call promote"):
                assert out.startswith("would promote dev -> prod controller") and "+  image_tag:" in out, out
        assert len(api.accepted) == 1
    # The exported files carry the names the docs promise.
    assert (checkout / "build" / "chart" / "Chart.yaml").is_file()
    assert [p.name for p in (checkout / "build").glob("*.tgz")] == ["faas-operator-1.0.3.tgz"]
    assert (checkout / "build" / "dev.zip").is_file()
    flux_objects = sorted(p.name for p in (checkout / "build" / "flux-dev").iterdir())
    assert flux_objects and all(name.endswith(".yaml") for name in flux_objects), flux_objects
    assert sorted(p.name for p in (checkout / "build" / "flux").iterdir()) == [
        "receiver.yaml", "resourceset.yaml", "resourcesetinputprovider.yaml"]
    assert sorted(p.name for p in (checkout / "dist" / "charts" / "dev").iterdir()) == [
        "faas-controller-0.4.1.tgz", "faas-operator-1.0.3.tgz", "index.yaml"]
    assert 'image_tag: "0f3c2d1"' in (checkout / "env" / "dev" / "controller" / "cookiecutter-config.yaml").read_text()
    # Only the image build and push need an engine; everything else ran.
    assert len(not_executed) == 1 and "publish-image" in not_executed[0]


def test_a_short_sha_in_a_git_context_is_refused(checkout):
    with Engine(checkout, env={"P": "x"}) as engine, pytest.raises(EngineRefusal, match="not a full commit SHA"):
        engine.call("dagger call with-registry --address registry.example.org --username ci --password env:P "
                    "env --name dev component --name controller publish-image "
                    "--context https://git.example.org/x/y.git#0f3c2d1 --tag 0f3c2d1")


KUBE_TOKEN = "kube-token-" + "3" * 16
CI_EPOCH = "1700000000"
RECEIVER_TOKEN = "receiver-token-" + "1" * 16
CI_SECRETS = {
    "CHART_REGISTRY_READ_PASSWORD": None, "CHART_REGISTRY_PASSWORD_DEV": None, "CHART_REGISTRY_PASSWORD_PROD": None,
    "OPERATOR_ADMIN_TOKEN_DEV": "tok-dev-0123", "OPERATOR_ADMIN_TOKEN_PROD": "tok-prod-4567",
    "IMAGE_REGISTRY_PASSWORD": "img-secret-89ab", "GITLAB_TOKEN": "glpat-ci-cdef",
}


def _run_job(name: str, job: dict, checkout: Path, variables: dict[str, str], outcomes: dict[str, str]) -> None:
    with Engine(checkout, env=variables) as engine:
        for line in job.get("script", []):
            line = _run_shell_prefix(line, checkout)
            if not line:
                continue
            assert line.startswith("dagger call"), f"{name}: {line}"
            if " deploy " in line:  # the loopback chart registry speaks HTTP
                line = line.replace(" with-registry ", " with-registry --plain-http ", 1)
            try:
                outcomes[name] = engine.call(line)
            except NotExecuted as stop:
                assert name in ("build_image", "publish_image"), (name, stop)
                assert dict(stop.steps)["dockerBuild"]["platform"] == "linux/amd64"
                outcomes[name] = f"not executed: {stop.what}"


def _dev_cluster(checkout: Path, registry, api: KubeApi, receiver: Receiver) -> None:
    """Point dev's ``environment.yaml`` at the loopback registry and Receiver (committed, as a project would)."""
    env_file = checkout / "env" / "dev" / "environment.yaml"
    env_file.write_text(env_file.read_text()
                        .replace("oci://registry.example.org/eo4eu-faas/charts/dev", f"oci://{registry.host}/charts/dev")
                        .replace("https://flux-webhook.dev.example.org", receiver.url))
    for kind in (HR, OCI):
        api.put(kind, "faas-dev", "faas-operator", {"metadata": {"generation": 1}, "status": {"observedGeneration": 1}})
    (checkout.parent / "kubeconfig-dev").write_text(api.kubeconfig())


def test_component_deploy_takes_the_receiver_url_through_the_engine(registry, checkout):
    """``deploy --receiver-url`` (the CLI's flag, now a Dagger argument too): the Receiver at the
    given URL is notified, not environment.yaml's (which names an unresolvable example host)."""
    expected: dict[str, rollout_outcome.Expected] = {}

    with KubeApi(KUBE_TOKEN) as api, \
            Receiver(RECEIVER_TOKEN, "faas-dev", "faas-dev", on_hook=deploy_succeeds(api, expected)) as receiver:
        for kind in (HR, OCI):
            api.put(kind, "faas-dev", "faas-operator",
                    {"metadata": {"generation": 1}, "status": {"observedGeneration": 1}})
        expected["operator"] = door.deploy.expected_for(Workspace(checkout), "dev", "operator")
        env = {"RX": RECEIVER_TOKEN, "KC": api.kubeconfig(), "PW": registry.password}
        with Engine(checkout, env=env) as engine:
            out = engine.call(
                f"dagger call with-registry --address {registry.host} --username {registry.username} --password env:PW "
                "--plain-http env --name dev component --name operator deploy "
                f"--registry oci://{registry.host}/charts/dev --receiver-token env:RX "
                f"--receiver-url {receiver.url} --kubeconfig env:KC --timeout 30")
    assert receiver.hits == 1, out
    assert f"deployed {expected['operator'].chart}@{expected['operator'].version} to faas-dev/faas-operator" in out


def test_environment_wait_waits_for_every_component_through_the_engine(checkout):
    """``env wait`` (the CLI's ``wait`` without ``--component``): every component is waited for;
    releases that never move end in one timeout naming each."""
    with KubeApi(KUBE_TOKEN) as api:
        for name in ("faas-operator", "faas-controller"):
            for kind in (HR, OCI):
                api.put(kind, "faas-dev", name, {"metadata": {"generation": 1}, "status": {"observedGeneration": 1}})
        with Engine(checkout, env={"KC": api.kubeconfig()}) as engine, pytest.raises(EngineRefusal) as refused:
            engine.call("dagger call env --name dev wait --kubeconfig env:KC --timeout 2")
    message = str(refused.value)
    assert "faas-dev/faas-operator" in message and "faas-dev/faas-controller" in message, message
    assert KUBE_TOKEN not in message


def test_every_gitlab_ci_line_runs(registry, checkout):
    """Each job's script as the runner would run it, then every job of the child pipeline the plan job wrote.

    The child's deploy job talks to the loopback Receiver (HMAC checked) and
    Kubernetes API doubles: Flux's side plays a successful upgrade once notified.
    """
    ci = ci_calls.load()
    jobs = ci_calls.jobs(ci)
    expected: dict[str, rollout_outcome.Expected] = {}

    with KubeApi(KUBE_TOKEN) as api, \
            Receiver(RECEIVER_TOKEN, "faas-dev", "faas-dev", on_hook=deploy_succeeds(api, expected)) as receiver, \
            AdminApiServer("tok-dev-0123") as dev_api, AdminApiServer("tok-prod-4567") as prod_api:
        _dev_cluster(checkout, registry, api, receiver)
        origin, before = clone_with_origin(checkout)
        # The job sets SOURCE_DATE_EPOCH: the deploy job's package must be the bytes the CLI makes there.
        expected["operator"] = door.deploy.expected_for(Workspace(checkout, source_date_epoch=CI_EPOCH), "dev",
                                                        "operator")
        with GitLabApi(CI_SECRETS["GITLAB_TOKEN"], project_id=42, remote=origin) as gitlab:
            _run_all_jobs(ci, jobs, checkout, registry, before, dev_api, prod_api, gitlab, receiver, api, expected)
            merge_requests = {mr["source_branch"]: mr for mr in gitlab.open()}
            sent = json.dumps([{k: v for k, v in r.items() if k != "headers"} for r in gitlab.requests])
    bump_diff = subprocess.run(["git", "-C", str(origin), "diff", "main", "bump/dev/operator-1.0.5"],
                               capture_output=True, text=True, check=True).stdout
    # The bump job opens a merge request; the promote job one per component prod lags dev on.
    assert set(merge_requests) == {"bump/dev/operator-1.0.5", "promote/prod/operator-1.0.4",
                                   "promote/prod/controller-0.4.1"}
    assert '+  image_tag: "v1.4.0"' in bump_diff and '+  chart_version: "1.0.5"' in bump_diff
    assert "pipelines/9" in merge_requests["promote/prod/controller-0.4.1"]["description"]
    assert CI_SECRETS["GITLAB_TOKEN"] not in sent


def _run_all_jobs(ci, jobs, checkout, registry, before, dev_api, prod_api, gitlab, receiver, api, expected) -> None:
    """The plan job, the child pipeline it wrote, then the parent's other jobs, with GitLab's variables."""
    variables = {
        **{k: v["value"] for k, v in ci["variables"].items()},
        **{k: v or registry.password for k, v in CI_SECRETS.items()},
        "CHART_REGISTRY": f"oci://{registry.host}/charts",
        "CHART_REGISTRY_USER_DEV": registry.username, "CHART_REGISTRY_USER_PROD": registry.username,
        "IMAGE_REGISTRY": "registry.example.org", "IMAGE_REGISTRY_USER": "ci",
        "OPERATOR_ADMIN_URL_DEV": dev_api.url, "OPERATOR_ADMIN_URL_PROD": prod_api.url,
        "COMPONENT": "operator", "ENVIRONMENT": "dev",
        "PROMOTE_ALLOW_PRERELEASE": "true",  # dev runs rc images: the person running the promote job asks for it
        "SOURCE_REF": "https://gitlab.example.org/eo4eu-faas/faas-operator.git#v1.4.0", "IMAGE_TAG": "v1.4.0",
        # GitLab's predefined variables (a push to the default branch); the server is the
        # loopback double of its merge request API.
        "CI_SERVER_URL": gitlab.url, "CI_PROJECT_ID": "42", "CI_DEFAULT_BRANCH": "main",
        "CI_COMMIT_REF_NAME": "main", "CI_COMMIT_BEFORE_SHA": before, "CI_MERGE_REQUEST_DIFF_BASE_SHA": "",
        "CI_MERGE_REQUEST_IID": "", "CI_PIPELINE_IID": "9", "SOURCE_DATE_EPOCH": CI_EPOCH,
        "CI_PIPELINE_URL": "https://gitlab.example.org/eo4eu-faas/faas-deployment/-/pipelines/9",
        # The child's deploy jobs: the Receiver token (masked variable) and the
        # kubeconfig (file variable: its value is the path of a file).
        "FLUX_RECEIVER_TOKEN_DEV": RECEIVER_TOKEN, "KUBECONFIG_DEV": str(checkout.parent / "kubeconfig-dev"),
    }
    outcomes: dict[str, str] = {}
    # The plan job, then the child pipeline it wrote (the trigger job), then the rest;
    # bump and promote last: they open merge requests after the pipeline's deploys.
    _run_job("plan", jobs["plan"], checkout, variables, outcomes)
    child = ci_calls.load(checkout / "child-pipeline.yml")
    child_jobs = ci_calls.jobs(child)
    assert set(child_jobs) == {"operator_deploy_dev", "operator_upload_bundle_dev"}
    assert child_jobs["operator_upload_bundle_dev"]["needs"] == ["operator_deploy_dev"]
    for name in ("operator_deploy_dev", "operator_upload_bundle_dev"):  # the order needs: imposes
        _run_job(name, child_jobs[name], checkout, variables, outcomes)
    ready = api.ready_times["faas-operator"]
    assert len(dev_api.accepted) == 1 and dev_api.accepted[0].at > ready  # the new operator got the bundle
    assert "script" not in jobs["deploy"]
    for name in sorted(set(jobs) - {"plan", "deploy"}, key=lambda n: (n in ("bump", "promote"), n)):
        _run_job(name, jobs[name], checkout, variables, outcomes)
    assert len(dev_api.accepted) == 1 and len(prod_api.accepted) == 0
    for name, out in outcomes.items():
        for secret in (registry.password, RECEIVER_TOKEN, KUBE_TOKEN, *[v for v in CI_SECRETS.values() if v]):
            assert secret not in out, name
    deployed = outcomes["operator_deploy_dev"]
    exp = expected["operator"]
    assert deployed.startswith("pushed ") and f":{exp.version}@{exp.digest}" in deployed and exp.version == "1.0.4"
    assert receiver.hits == 1
    assert f"deployed {exp.chart}@1.0.4 to faas-dev/faas-operator in " in deployed
    assert outcomes["operator_upload_bundle_dev"].startswith("uploaded ")
    assert "ok dev/operator" in outcomes["check"]
    assert outcomes["build_image"] == "not executed: Container sync"
    assert outcomes["publish_image"] == "not executed: Container.publish"


def _product(matrix: dict) -> list[tuple]:
    import itertools

    return list(itertools.product(*[v if isinstance(v, list) else [v] for v in matrix.values()]))
