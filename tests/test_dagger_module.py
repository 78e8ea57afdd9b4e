"""The Dagger module, offline: loaded through its entry point and introspected; engine-free calls made directly."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from dagger import dag

import daggermod
from faas_deployment.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent

#: function -> (return type, {param: (type, optional, default)}) for the chart-release chain.
EXPECTED = {
    "FaasDeployment": {
        "": ("FaasDeployment", {
            "source": ("dagger.Directory", True, None),
            "template": ("dagger.Directory | None", True, None),
        }),
        "env": ("Environment", {"name": ("str", False, None)}),
        "check": ("str", {
            "env": ("str", True, ""),
            "registry": ("str", True, ""),
            "username": ("str", True, ""),
            "password": ("dagger.Secret | None", True, None),
            "plain_http": ("bool", True, False),
            "ca_file": ("dagger.File | None", True, None),
            "timeout": ("float", True, 300.0),
            "base": ("str", True, ""),
            "repository": ("dagger.Directory", True, None),
        }),
        "plan": ("str", {
            "repository": ("dagger.Directory", True, None),
            "base": ("str", True, ""),
            "default_branch": ("str", True, "main"),
            "output": ("str", True, "table"),
        }),
        "pipeline": ("dagger.File", {
            "repository": ("dagger.Directory", True, None),
            "base": ("str", True, ""),
            "default_branch": ("str", True, "main"),
            "ref": ("str", True, ""),
            "merge_request": ("str", True, ""),
            "pipeline_iid": ("str", True, ""),
            "branch_envs": ("list[str]", True, ["dev"]),
        }),
    },
    "Environment": {
        "component": ("Component", {"name": ("str", False, None)}),
        "release": ("str", {
            "registry": ("str", False, None),
            "username": ("str", True, ""),
            "password": ("dagger.Secret | None", True, None),
            "plain_http": ("bool", True, False),
            "ca_file": ("dagger.File | None", True, None),
            "timeout": ("float", True, 300.0),
            "skip_image_check": ("bool", True, False),
        }),
        "local_repository": ("dagger.Directory", {}),
    },
    "Component": {
        "config": ("str", {}),
        "chart": ("dagger.Directory", {}),
        "package": ("dagger.File", {}),
        "publish": ("str", {
            "registry": ("str", False, None),
            "username": ("str", True, ""),
            "password": ("dagger.Secret | None", True, None),
            "plain_http": ("bool", True, False),
            "ca_file": ("dagger.File | None", True, None),
            "prerelease": ("str", True, ""),
            "timeout": ("float", True, 300.0),
        }),
    },
}


def test_module_metadata_matches_the_layout():
    manifest = json.loads((REPO_ROOT / "dagger.json").read_text())
    assert manifest["name"] == "faas-deployment"
    assert manifest["sdk"]["source"] == "python" and manifest["source"] == "dagger"
    cls, _ = daggermod.load()
    # The engine names the main object after the module: faas-deployment -> FaasDeployment.
    assert cls.__name__ == "FaasDeployment"


@pytest.mark.parametrize(
    ("obj", "fn"), [(o, f) for o, fns in EXPECTED.items() for f in fns], ids=lambda v: v or "constructor"
)
def test_chart_functions_have_the_contracted_signature(obj, fn):
    actual = daggermod.objects()[obj][fn]
    return_type, params = EXPECTED[obj][fn]
    if fn:
        assert actual.return_type.split(".")[-1] == return_type.split(".")[-1]
    assert set(actual.params) == set(params)
    for name, (type_, optional, default) in params.items():
        param = actual.params[name]
        assert (param.type, param.optional) == (type_, optional), name
        if optional and default is not None:
            assert param.default == default, name


def test_every_function_and_parameter_is_documented():
    for obj, fns in daggermod.objects().items():
        for name, fn in fns.items():
            if name:
                assert fn.doc and len(fn.doc) > 20, f"{obj}.{name} needs a docstring"
            for param in fn.params.values():
                assert param.doc, f"{obj}.{name or 'constructor'}({param.name}) needs a Doc()"




def test_the_chain_builds_without_an_engine():
    from faas_deployment.main import Component, Environment, FaasDeployment

    root = FaasDeployment(source=dag.directory(), template=None)
    env = root.env("dev")
    component = env.component("operator")
    assert isinstance(env, Environment) and env.name == "dev"
    assert isinstance(component, Component) and (component.env, component.name) == ("dev", "operator")
    assert component.source is root.source and component.template is None


def test_user_errors_become_clean_function_errors():
    from dagger.mod._exceptions import FunctionError

    from faas_deployment.main import _run

    def fails():
        raise UserError("env/dev/operator/cookiecutter-config.yaml: chart_version: bump it")

    with pytest.raises(FunctionError) as caught:
        anyio.run(_run, fails)
    assert str(caught.value) == "env/dev/operator/cookiecutter-config.yaml: chart_version: bump it"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__

