"""Hypothesis strategies and the oracle of the input fuzz suite (CI test and bench script).

The oracle, for any input: the CLI (driven in-process through
``faas_deployment.cli.main``) exits 0, or exits 1 with a message naming the file
it refuses; it never raises (a traceback), never takes longer than the example
deadline, and writes nothing after a failed validation (``bump`` leaves the file
byte for byte; ``manifests --out`` writes no bundle).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import string
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from hypothesis import strategies as st

from faas_deployment import cli

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG = "env/dev/operator/cookiecutter-config.yaml"
DYNAMIC = "env/dev/operator/dynamic"
EXAMPLE_CONFIG = (REPO_ROOT / CONFIG).read_text(encoding="utf-8")
EXAMPLE_MANIFEST = (REPO_ROOT / DYNAMIC / "service.yaml").read_text(encoding="utf-8")

# Characters that break YAML readers: controls, a BOM, surrogates' neighbours, YAML indicators.
NASTY = (
    "".join(chr(c) for c in [*range(0, 32), 0x7F, 0x85, 0xA0, 0xFEFF, 0x1B, 0x2028, 0xFFFE]) + "&*!|>%@`{}[]:,#'\"-?"
)


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def run(*argv: str) -> Outcome:
    """``faas-deploy ARGV`` in-process; any exception escaping ``main`` fails the oracle."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:  # argparse
            code = int(exc.code or 0)
    return Outcome(code, out.getvalue(), err.getvalue())


def check_outcome(outcome: Outcome, names: str) -> None:
    """Exit 0, or exit 1 naming ``names``; never a traceback."""
    assert outcome.code in (0, 1), outcome
    assert "Traceback" not in outcome.err
    if outcome.code == 1:
        assert names in outcome.err, outcome.err[:2000]


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    """A fresh copy of the repository's ``env/`` in a temporary source directory."""
    with tempfile.TemporaryDirectory(prefix="faas-fuzz-") as tmp:
        source = Path(tmp) / "src"
        shutil.copytree(REPO_ROOT / "env", source / "env")
        yield source


# -- strategies -----------------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
    st.text(max_size=40), st.text(alphabet=NASTY + string.ascii_letters, max_size=20),
    st.sampled_from(["yes", "no", "1.0.3", "{{ cookiecutter.chart_name }}", "IfNotPresent", "", "~", "0x1F"]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=12) | st.sampled_from(["data", "secret_key", "chart_name"]), inner, max_size=4), max_leaves=12)
keys = st.sampled_from(list(yaml.safe_load(EXAMPLE_CONFIG)["default_context"])) | st.text(max_size=15)


@st.composite
def config_texts(draw: st.DrawFn) -> str:
    """A config text: the example config edited as data, spliced with nasty characters, or built from scratch."""
    kind = draw(st.sampled_from(["values", "splice", "raw", "deep", "aliases"]))
    if kind == "values":
        data = yaml.safe_load(EXAMPLE_CONFIG)
        for key, value in draw(st.dictionaries(keys, values, max_size=4)).items():
            data["default_context"][key] = value
        return yaml.safe_dump(data, allow_unicode=draw(st.booleans()))
    if kind == "splice":
        text = EXAMPLE_CONFIG
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(st.text(alphabet=NASTY, min_size=1, max_size=5)) + text[at:]
        return text
    if kind == "raw":
        return draw(st.text(alphabet=NASTY + string.ascii_letters + " \n", max_size=200))
    if kind == "deep":
        depth = draw(st.integers(50, 3000))
        opener, closer = draw(st.sampled_from([("[", "]"), ("{a: ", "}"), ("- ", "")]))
        return "default_context:\n  chart_description: " + opener * depth + "x" + closer * depth + "\n"
    width = draw(st.integers(2, 12))
    lines = ["a: &a [" + ", ".join(["lol"] * width) + "]"]
    for level in range(draw(st.integers(1, 9))):
        lines.append(f"x{level}: &{'b' * (level + 1)} [" + ", ".join([f"*{'b' * level or 'a'}"] * width) + "]")
    return "default_context:\n  chart_description: x\n" + "\n".join("  " + line for line in lines) + "\n"


@st.composite
def dynamic_trees(draw: st.DrawFn) -> dict[str, bytes]:
    """Relative path -> bytes of a ``dynamic/`` tree: the example manifest edited, nested, or garbage."""
    files: dict[str, bytes] = {}
    for index in range(draw(st.integers(1, 4))):
        depth = draw(st.integers(0, 3))
        name = "/".join(draw(st.lists(st.sampled_from(["a", "b", ".hidden", "x~"]), min_size=depth, max_size=depth)))
        name = f"{name}/m{index}.yaml" if name else f"m{index}.yaml"
        kind = draw(st.sampled_from(["example", "splice", "values", "deep", "dup", "bytes"]))
        if kind == "example":
            text = EXAMPLE_MANIFEST
        elif kind == "splice":
            at = draw(st.integers(0, len(EXAMPLE_MANIFEST)))
            text = EXAMPLE_MANIFEST[:at] + draw(st.text(alphabet=NASTY, min_size=1, max_size=6)) + EXAMPLE_MANIFEST[at:]
        elif kind == "values":
            text = yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "data": draw(values)})
        elif kind == "deep":
            depth = draw(st.integers(50, 40000))
            text = "apiVersion: v1\nkind: ConfigMap\ndata: " + "[" * depth + "]" * depth + "\n"
        elif kind == "dup":
            text = "apiVersion: v1\nkind: ConfigMap\nkind: Secret\n"
        else:
            files[name] = draw(st.binary(max_size=64))
            continue
        files[name] = text.encode("utf-8", "surrogatepass")
    return files
