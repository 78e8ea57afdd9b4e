"""The Dagger module, offline: loaded through its entry point and introspected; engine-free calls made directly."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from dagger import dag
from faas_deployment.core.errors import UserError
from support import daggermod

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_module_metadata_matches_the_layout():
    manifest = json.loads((REPO_ROOT / "dagger.json").read_text())
    assert manifest["name"] == "faas-deployment"
    assert manifest["sdk"]["source"] == "python" and manifest["source"] == "dagger"
    cls, _ = daggermod.load()
    # The engine names the main object after the module: faas-deployment -> FaasDeployment.
    assert cls.__name__ == "FaasDeployment"


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

    from faas_deployment.dagger_runtime import run

    def fails():
        raise UserError("env/dev/operator/cookiecutter-config.yaml: chart_version: bump it")

    with pytest.raises(FunctionError) as caught:
        anyio.run(run, fails)
    assert str(caught.value) == "env/dev/operator/cookiecutter-config.yaml: chart_version: bump it"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__

