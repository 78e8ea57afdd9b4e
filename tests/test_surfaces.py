"""The CLI and the Dagger module offer the same verbs and parameters.

The CLI's verbs and flags are read from its parser (``cli.build_parser``), the Dagger
functions and arguments from the module as the engine registers it
(``support.daggermod``). A flag ``--kebab-case`` is the argument ``kebab_case``; a verb
is one or more Dagger functions (:data:`VERBS`). What one side has and the other has
not is a finding, unless :data:`CLI_ONLY` or :data:`DAGGER_ONLY` lists it with its
reason.
"""

from __future__ import annotations

import argparse

import pytest

from faas_deployment import cli
from support import daggermod

#: CLI verb -> the Dagger functions (object, function) that offer it. ``--env`` and
#: ``--component`` choose the object (``env(name)``, ``component(name)``).
VERBS: dict[str, tuple[tuple[str, str], ...]] = {
    "artifact-objects": (("Environment", "artifact_objects"),),
    "build-image": (("Component", "build_image"),),
    "bundle": (("Environment", "bundle"),),
    "bump": (("Component", "bump"), ("Component", "bump_merge_request")),  # --merge-request: its own function
    "chart": (("Component", "chart"),),
    "check": (("FaasDeployment", "check"),),
    "config": (("Component", "config"),),
    "deploy": (("Environment", "deploy"), ("Component", "deploy")),  # without / with --component
    "flux": (("Environment", "flux"),),
    "objects": (("Component", "objects"),),
    "package": (("Component", "package"),),
    "plan": (("FaasDeployment", "plan"), ("FaasDeployment", "child_pipeline")),  # --child-pipeline FILE: its own
    # function
    "promote": (("FaasDeployment", "promote"),),
    "publish": (("Component", "publish"),),
    "publish-artifact": (("Environment", "publish_artifacts"), ("Component", "publish_artifact")),
    "publish-image": (("Component", "publish_image"),),
    "release": (("Environment", "release"),),
    "retire-artifact": (("Component", "retire_artifact"),),
    "upload-bundle": (("Environment", "upload_bundle"),),
    "wait": (("Environment", "wait"), ("Component", "wait"), ("Component", "wait_artifact")),  # --artifact:
    # its own function
}

#: Dagger functions that are no CLI verb, with the reason.
DAGGER_ONLY_FUNCTIONS = {
    ("FaasDeployment", "env"): "navigation: the CLI's --env",
    ("Environment", "component"): "navigation: the CLI's --component",
    ("Environment", "local_repository"): "the runtime's dist/charts/<env>/ is lost with it: returned as a Directory; "
                                         "the CLI's publish and release write it in place",
    ("FaasDeployment", "with_registry"): "the registry access of every registry verb, given once in the chain: "
                                         "the CLI's --username, --password, --plain-http, --ca-file (WITH_REGISTRY)",
}

#: The CLI flags of registry access that Dagger takes once in the chain, ``with-registry`` (the main
#: object's ``with_registry``), instead of on each function: flag -> its argument there.
WITH_REGISTRY = {"--username": "username", "--password": "password", "--plain-http": "plain_http",
                 "--ca-file": "ca_file"}
#: The CLI verbs that talk to a registry with those flags.
REGISTRY_VERBS = ("check", "deploy", "publish", "publish-artifact", "publish-image", "release", "retire-artifact")

#: Flag names that differ only in spelling: (verb or "*", CLI flag) -> Dagger argument.
RENAMES = {
    ("*", "--build-arg"): "build_args",  # a repeatable flag is a list argument
    ("*", "--label"): "labels",
    ("plan", "--branch-env"): "branch_envs",
    ("plan", "--output"): "format",  # dagger call owns --output; the CLI takes --format too
    ("wait", "--artifact"): "digest",
    ("wait", "--artifact-namespace"): "namespace",
}

#: CLI flags with no Dagger argument: (verb or "*", flag) -> reason.
CLI_ONLY = {
    ("*", "--source"): "the constructor's source Directory",
    ("*", "--template"): "the constructor's template Directory",
    ("*", "--output"): "dagger call owns --output; a Dagger function returns text (plan: format)",
    ("*", "--env"): "the object: env(name)",
    ("*", "--component"): "the object: component(name)",
    ("*", "--out"): "a Dagger function returns the File or Directory (dagger call --output / export)",
    ("*", "--report"): "a file on the caller's machine; a Dagger function returns its lines",
    ("*", "--merge-request"): "bump: the function bump_merge_request",
    ("bump", "--merge-request"): "the function bump_merge_request",
    ("plan", "--child-pipeline"): "the function child_pipeline returns the File",
    ("plan", "--head"): "the Dagger head is the checkout Directory as given",
    ("build-image", "--tag"): "build_image returns the Container: the caller tags it",
    ("publish-image", "--plain-http"): "the engine pushes (Container.publish): its transport is the engine's",
    ("publish-image", "--ca-file"): "the engine pushes (Container.publish): its CAs are the engine's",
    **{(verb, flag): "given once in the chain: with-registry" for verb in REGISTRY_VERBS for flag in WITH_REGISTRY
       if (verb, flag) not in (("publish-image", "--plain-http"), ("publish-image", "--ca-file"))},
    ("publish-image", "--timeout"): "the engine pushes (Container.publish), without a client deadline",
}

#: Dagger arguments with no CLI flag: (function or "*", argument) -> reason.
DAGGER_ONLY = {
    ("*", "checkout"): "the git checkout as a Directory (its .git read by the engine); the CLI reads --source",
    ("*", "pipeline_id"): "the job's CI_PIPELINE_ID: the runtime never sees the job's environment, the CLI reads it",
    ("*", "job_id"): "the job's CI_JOB_ID, as pipeline_id",
}


def cli_verbs() -> dict[str, set[str]]:
    """``{verb: {--flag, ...}}`` from the CLI's parser (help and --version left out; a flag by its first
    name, the older names of verbs and flags, ``cli.ALIASES`` and a flag's later option strings, left out)."""
    parser = cli.build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {name: {a.option_strings[0] for a in verb._actions if a.option_strings and a.dest != "help"}
            for name, verb in sub.choices.items() if name not in cli.ALIASES}


@pytest.fixture(scope="module")
def dagger_functions() -> dict[tuple[str, str], set[str]]:
    return {(obj, fn): set(f.params) for obj, fns in daggermod.objects().items() for fn, f in fns.items() if fn}


def _excepted(table: dict, verb_or_fn: str, name: str) -> bool:
    return (verb_or_fn, name) in table or ("*", name) in table


def findings(cli_side: dict[str, set[str]], dagger_side: dict[tuple[str, str], set[str]]) -> list[str]:
    """Every difference between the two surfaces not listed as intended, one line each."""
    found = [f"CLI verb {verb} has no Dagger function" for verb in sorted(set(cli_side) - set(VERBS))]
    mapped = {target for targets in VERBS.values() for target in targets}
    found += [f"Dagger {obj}.{fn} is no CLI verb" for obj, fn in sorted(set(dagger_side) - mapped)
              if (obj, fn) not in DAGGER_ONLY_FUNCTIONS]
    for verb, targets in sorted(VERBS.items()):
        flags = cli_side.get(verb, set())
        arguments = set().union(*(dagger_side.get(t, set()) for t in targets))
        found += [f"Dagger {obj}.{fn} is missing" for obj, fn in targets if (obj, fn) not in dagger_side]
        for flag in sorted(flags):
            if _excepted(CLI_ONLY, verb, flag):
                continue
            name = RENAMES.get((verb, flag)) or RENAMES.get(("*", flag)) or flag[2:].replace("-", "_")
            if name not in arguments:
                found.append(f"{verb} {flag}: no Dagger argument {name}")
        known = {RENAMES.get((verb, f)) or RENAMES.get(("*", f)) or f[2:].replace("-", "_") for f in flags}
        for obj, fn in targets:
            for argument in sorted(dagger_side.get((obj, fn), set()) - known):
                if not _excepted(DAGGER_ONLY, fn, argument):
                    found.append(f"{obj}.{fn} {argument}: no CLI flag on {verb}")
    return found


def test_the_cli_and_dagger_offer_the_same_verbs_and_parameters(dagger_functions):
    assert findings(cli_verbs(), dagger_functions) == []


#: CLI verbs whose --component is optional but Dagger offers on one object only, with the reason.
ONE_OBJECT: dict[str, str] = {}


def test_an_optional_component_is_offered_on_both_objects(dagger_functions):
    """A CLI verb of an environment taking an optional ``--component`` (every component without it) is a
    function of the Environment and of the Component (or listed in :data:`ONE_OBJECT`). ``promote``
    (``--component`` or ``--all``) is the main object's."""
    parser = cli.build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    optional = sorted(name for name, verb in sub.choices.items()
                      if any(a.option_strings == ["--component"] and not a.required for a in verb._actions)
                      and any(a.option_strings == ["--env"] for a in verb._actions))
    assert optional, "no verb with an optional --component: the check reads the parser wrongly"
    missing = [verb for verb in optional if verb not in ONE_OBJECT
               and {obj for obj, _ in VERBS[verb]} != {"Environment", "Component"}]
    assert missing == []


def test_every_verb_offered_by_both_deploys_with_the_same_arguments(dagger_functions):
    """``deploy`` with and without ``--component`` takes the same settings (the component is the object)."""
    env_deploy, component_deploy = dagger_functions["Environment", "deploy"], dagger_functions["Component", "deploy"]
    assert env_deploy == component_deploy
    assert {"receiver_url", "admin_url", "prerelease", "admin_token"} <= env_deploy


def test_the_parity_check_sees_each_kind_of_gap(dagger_functions):
    """A flag missing in Dagger, an argument missing in the CLI, a verb or function on one side only."""
    cli_side = cli_verbs()
    cli_side["flux"] = cli_side["flux"] | {"--namespace"}
    cli_side["made-up"] = {"--env"}
    dagger_side = dict(dagger_functions)
    dagger_side["Environment", "release"] = dagger_side["Environment", "release"] | {"extra"}
    dagger_side["Environment", "made_up"] = set()
    del dagger_side["Component", "chart"]
    assert findings(cli_side, dagger_side) == [
        "CLI verb made-up has no Dagger function",
        "Dagger Environment.made_up is no CLI verb",
        "Dagger Component.chart is missing",
        "flux --namespace: no Dagger argument namespace",
        "Environment.release extra: no CLI flag on release",
    ]


def test_the_registry_flags_are_given_once_through_with_registry(dagger_functions):
    """Every registry verb of the CLI takes --username/--password (and transport flags) itself; in Dagger
    ``with_registry`` takes them, with the host they are for, and no function of a registry verb repeats them."""
    cli_side = cli_verbs()
    assert all({"--username", "--password"} <= cli_side[verb] for verb in REGISTRY_VERBS)
    assert set(WITH_REGISTRY.values()) | {"address"} == dagger_functions["FaasDeployment", "with_registry"]
    repeated = {(obj, fn): sorted(args & set(WITH_REGISTRY.values()))
                for verb in REGISTRY_VERBS for obj, fn in VERBS[verb] if (args := dagger_functions[obj, fn])
                & set(WITH_REGISTRY.values())}
    assert repeated == {}


def test_every_listed_difference_is_real(dagger_functions):
    """A stale entry (the gap since closed, the name since gone) is removed from the lists."""
    cli_side = cli_verbs()
    all_flags = set().union(*cli_side.values())
    for verb, flag in (*CLI_ONLY, *RENAMES):
        assert flag in (all_flags if verb == "*" else cli_side[verb]), (verb, flag)
    all_arguments = set().union(*dagger_functions.values())
    for fn, argument in DAGGER_ONLY:
        assert argument in all_arguments, (fn, argument)
    for key in DAGGER_ONLY_FUNCTIONS:
        assert key in dagger_functions, key
