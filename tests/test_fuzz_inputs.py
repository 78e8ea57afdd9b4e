"""Property-based fuzzing of every input the CLI reads (component configs, ``dynamic/``, bump).

Oracle (``support/fuzzing.py``): exit 0, or exit 1 naming the file; never a traceback, a
hang (the example deadline) or a write after a failed validation. Bounded for CI:
a fixed number of examples per property and a per-example deadline; the long run
is ``tests/bench/fuzz_inputs.py --examples 2000``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from support.fuzzing import CONFIG, DYNAMIC, REPO_ROOT, check_outcome, config_texts, dynamic_trees, run, workspace

BOUNDED = settings(max_examples=int(os.environ.get("FAAS_FUZZ_EXAMPLES", "40")), deadline=5000, derandomize=True,
                   suppress_health_check=list(HealthCheck), database=None)


@BOUNDED
@given(config_texts())
def test_any_config_text_gives_a_clean_answer(text: str) -> None:
    with workspace() as source:
        (source / CONFIG).write_text(text, encoding="utf-8", errors="surrogatepass")
        check_outcome(run("--source", str(source), "config", "--env", "dev", "--component", "operator"), CONFIG)


@BOUNDED
@given(config_texts())
def test_bump_never_writes_after_a_refusal(text: str) -> None:
    with workspace() as source:
        path = source / CONFIG
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        before = path.read_bytes()
        outcome = run("--source", str(source), "bump", "--env", "dev", "--component", "operator",
                      "--image-tag", "0f3c2d1")
        check_outcome(outcome, CONFIG)
        if outcome.code != 0:
            assert path.read_bytes() == before
        assert [p.name for p in path.parent.iterdir() if p.name.startswith(".bump-")] == []


@BOUNDED
@given(dynamic_trees())
def test_any_dynamic_tree_gives_a_clean_answer(files: dict[str, bytes]) -> None:
    with workspace() as source:
        dynamic = source / DYNAMIC
        for child in dynamic.iterdir():
            child.unlink()
        for name, data in files.items():
            (dynamic / name).parent.mkdir(parents=True, exist_ok=True)
            (dynamic / name).write_bytes(data)
        out = source / "build" / "dev.zip"
        outcome = run("--source", str(source), "bundle", "--env", "dev", "--out", str(out))
        check_outcome(outcome, "dynamic")
        assert out.exists() == (outcome.code == 0)


def test_a_few_hostile_inputs_through_a_real_process(tmp_path: Path) -> None:
    """The same oracle in a subprocess: a crash of the C YAML parser would show as a signal here."""
    faas_deploy = REPO_ROOT / "dagger" / ".venv" / "bin" / "faas-deploy"
    shutil.copytree(REPO_ROOT / "env", tmp_path / "env")
    deep = "apiVersion: v1\nkind: ConfigMap\ndata: " + "[" * 30000 + "]" * 30000 + "\n"
    (tmp_path / DYNAMIC / "deep.yaml").write_text(deep)
    (tmp_path / CONFIG).write_text("default_context:\n  # a bell \x07 in a comment\n  chart_name: x\n")
    for args in (["bundle", "--env", "dev", "--out", str(tmp_path / "dev.zip")],
                 ["check", "--env", "dev"],
                 ["bump", "--env", "dev", "--component", "operator", "--image-tag", "abc"]):
        done = subprocess.run([str(faas_deploy), "--source", str(tmp_path), *args], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 1, (args, done.returncode, done.stderr[-2000:])
        assert "Traceback" not in done.stderr and "env/dev/operator" in done.stderr
    assert not (tmp_path / "dev.zip").exists()
