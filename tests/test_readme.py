"""The README's promises: short, every verb of the CLI once with its Dagger functions, links that
resolve, and the test command CI runs (``.ci/run``)."""

from __future__ import annotations

import re
from pathlib import Path

from faas_deployment.cli import VERBS
from support.dagger_engine import Engine

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
#: The Dagger objects a verb table cell names: "component `x`", "env `y`", neither for the main object.
SCOPES = {"component": ("Component",), "env": ("Environment",), "env and component": ("Environment", "Component")}


def verb_rows() -> list[list[str]]:
    """The cells of the README's verb table (the ``| verb | Dagger | does | more |`` table)."""
    section = README.split("\n## Verbs\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split(" | ") for line in section.splitlines() if line.startswith("| `")]
    assert rows, "README.md: no verb table under '## Verbs'"
    return rows


def test_the_readme_is_short():
    assert len(README.splitlines()) <= 200


def test_the_readme_lists_every_verb_once():
    listed = [re.fullmatch(r"`([a-z-]+)`", row[0].strip()).group(1) for row in verb_rows()]
    assert sorted(listed) == sorted(VERBS), set(listed) ^ set(VERBS)
    assert len(listed) == len(set(listed))


def test_every_dagger_function_the_readme_names_exists():
    with Engine(REPO) as engine:
        objects = engine.register()
    named = []
    for row in verb_rows():
        scope = ("FaasDeployment",)
        for where, function in re.findall(r"(env and component|component|env)|`([a-z-]+)`", row[1]):
            if where:
                scope = SCOPES[where]
                continue
            named += [(obj, function.replace("-", "_")) for obj in scope]  # the names register() gives
    missing = [f"{obj}.{name}" for obj, name in named if name not in objects[obj].functions]
    assert len(named) >= len(VERBS) and not missing, missing


def test_the_readme_links_resolve():
    links = re.findall(r"\]\(([^)#]+)\)", README)
    assert "docs/glossary.md" in links
    assert [link for link in links if not (REPO / link).is_file()] == []


def test_ci_runs_the_readmes_test_command():
    tests = README.split("\n## Tests\n", 1)[1].split("\n## ", 1)[0]
    command = re.search(r"```sh\n(.*?)\n```", tests, re.S).group(1).strip()
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci == f"bash .ci/setup && {command}"
