"""The Dagger front end of the Flux OCI artifact verbs, introspected offline (see support/daggermod.py)."""

from __future__ import annotations

import pytest

from support import daggermod

REGISTRY = ("repository",)  # credentials, plain HTTP and CA: with-registry, once in the chain


@pytest.mark.parametrize(
    ("obj", "fn", "params", "returns", "cache"),
    [
        ("Component", "publish_artifact", {*REGISTRY, "objects", "revision", "source_url"}, "str", "never"),
        ("Component", "retire_artifact", set(REGISTRY), "str", "never"),
        ("Env", "publish_artifacts", {*REGISTRY, "revision", "source_url"}, "str", "never"),
        ("Env", "artifact_objects", {"repository", "name", "namespace", "target_namespace", "registry_secret",
                                     "receiver_secret", "plain_http"}, "Directory", None),
    ],
)
def test_artifact_functions(obj, fn, params, returns, cache):
    found = daggermod.objects().get(obj) or daggermod.objects()["Environment"]
    function = found[fn]
    assert set(function.params) == params
    assert function.return_type.split(".")[-1] == returns
    if fn == "artifact_objects":
        assert not function.params["repository"].optional
    else:  # default: artifact_repository of env/<env>/environment.yaml
        assert function.params["repository"].optional
    assert function.doc and all(p.doc for p in function.params.values())
    assert daggermod.cache_policy(obj if obj in daggermod.objects() else "Environment", fn) == cache
