"""faas-deployment: deployment pipeline of the FaaS platform (Dagger module + CLI).

The Dagger main object is ``faas_deployment.main:FaasDeployment`` (the
``dagger.mod`` entry point in pyproject.toml); it is also reachable as
``faas_deployment.FaasDeployment``, imported lazily so that the CLI does not
load the Dagger SDK.
"""

from __future__ import annotations


def __getattr__(name: str) -> object:
    if name == "FaasDeployment":
        from .main import FaasDeployment

        return FaasDeployment
    raise AttributeError(name)
