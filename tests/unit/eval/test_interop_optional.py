"""The interop extras stay optional: alignkit tasks never import lm_eval or inspect_ai, and asking for a
harness that is not installed says what to install (a config error, exit 2), whichever is installed here."""

from __future__ import annotations

import importlib
import sys

import pytest

from alignkit.cli import main
from alignkit.config import ConfigError
from alignkit.eval.interop.external import external_command, split_external

ADAPTERS = [
    ("alignkit.eval.interop.lm_harness", "lm_eval.api.model", "lm-eval"),
    ("alignkit.eval.interop.inspect_provider", "inspect_ai.model", "inspect"),
]


def test_task_names_route_to_alignkit_or_a_harness():
    assert external_command("deceptionbench") is None and split_external("toyworld-oracle") is None
    assert split_external("lm-eval: arc_easy") == ("lm-eval", "arc_easy")
    assert split_external("inspect:tasks.py@mine") == ("inspect", "tasks.py@mine")
    with pytest.raises(ConfigError, match="name the task after 'lm-eval:', e.g. lm-eval:arc_easy"):
        split_external("lm-eval:")


@pytest.mark.parametrize(("module", "dependency", "extra"), ADAPTERS)
def test_an_adapter_without_its_package_says_what_to_install(module, dependency, extra, monkeypatch):
    monkeypatch.setitem(sys.modules, dependency, None)  # as if not installed
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(ImportError, match=rf"pip install 'alignkit\[{extra}\]'"):
        importlib.import_module(module)


@pytest.mark.parametrize("prefix", ["lm-eval", "inspect"])
def test_the_cli_asks_for_the_extra_before_anything_else(prefix, monkeypatch, tmp_path, capsys):
    package = {"lm-eval": "lm_eval", "inspect": "inspect_ai"}[prefix]
    real = importlib.util.find_spec
    monkeypatch.setattr(
        "importlib.util.find_spec", lambda name, *a: None if name == package else real(name, *a)
    )
    out = tmp_path / "never"
    assert main(["eval", "run", f"{prefix}:some_task", "model=x", f"run.output_dir={out}"]) == 2
    assert f"pip install 'alignkit[{prefix}]'" in capsys.readouterr().err and not out.exists()


def test_alignkit_tasks_do_not_import_the_harnesses():
    import os
    import subprocess
    from pathlib import Path

    src = str(Path(__file__).parents[3] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    code = (
        "import sys, alignkit.cli, alignkit.eval.tasks.deceptionbench, alignkit.eval.interop.external; "
        "print(sorted(m for m in ('lm_eval', 'inspect_ai') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stderr
