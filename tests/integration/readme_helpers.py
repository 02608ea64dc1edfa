"""The README's command blocks, read as the README test runs them, and its several-process launches.

``test_readme.py`` runs every command of the README; the ``accelerate launch`` lines (two CPU processes
under DDP and DeepSpeed ZeRO-2) are also the two-process runs ``test_sft_invariants.py`` compares with one
process. Starting two processes (and DeepSpeed) costs far more than the steps they train, so the suite runs
each launch once, in ``run_readme_launches`` (the session fixture ``readme_launches``), and both tests read
its run folders.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

LAUNCH_STEPS = 6
"""Steps of each README launch (``ALIGNKIT_MAX_STEPS``; the README test caps its other commands at 2): the
number the invariant test compares step by step with one process, as it did with its own launches."""


def readme_block(heading: str, language: str) -> str:
    """The first ``language`` code block after ``heading`` in the README."""
    text = (REPO / "README.md").read_text()
    after = text[text.index(heading) :]
    match = re.search(rf"```{language}\n(.*?)```", after, flags=re.DOTALL)
    assert match, f"no {language} block after {heading!r}"
    return match.group(1)


def commands(heading: str = "## Using it") -> list[str]:
    """The block's command lines: no comments, none marked ``# hub`` (they need the network)."""
    lines = [line.strip() for line in readme_block(heading, "bash").splitlines()]
    return [line for line in lines if line and not line.startswith("#") and not line.endswith("# hub")]


def readme_env(max_steps: int) -> dict[str, str]:
    """The environment the README's commands run in: the venv's executables first, every training command
    capped at ``max_steps``."""
    return {
        **os.environ,
        "ALIGNKIT_MAX_STEPS": str(max_steps),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
    }


def is_launch(line: str) -> bool:
    return shlex.split(line, comments=True)[0] == "accelerate"


def output_dir(line: str) -> str:
    """The ``run.output_dir=`` a README line writes (every launch line names one)."""
    match = re.search(r"run\.output_dir=(\S+)", line)
    assert match, f"no run.output_dir= in {line!r}"
    return match.group(1)


def run_readme_launches(cwd: Path) -> dict[str, Path]:
    """Every ``accelerate launch`` line of the README's "Using it" block, as written, in ``cwd`` (with the
    repository's ``examples/`` copied there), ``LAUNCH_STEPS`` steps each; each must succeed without a
    traceback. Returns each line's run folder. None of them reads what the block's other commands write."""
    shutil.copytree(REPO / "examples", cwd / "examples")
    folders = {}
    for line in filter(is_launch, commands("## Using it")):
        argv = shlex.split(line, comments=True)
        result = subprocess.run(
            argv, cwd=cwd, env=readme_env(LAUNCH_STEPS), capture_output=True, text=True, timeout=900
        )
        assert result.returncode == 0, f"{line}\n{result.stderr[-3000:]}"
        assert "Traceback" not in result.stderr, line
        folders[line] = cwd / output_dir(line)
    return folders
