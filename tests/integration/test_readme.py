"""The README's command blocks run top to bottom, as written, in a fresh folder.

Each line of the "Using it" block is run with ``ALIGNKIT_MAX_STEPS=2``, the step cap the README documents
for exactly this; every command must succeed and read what the commands above it wrote. Lines marked
``# hub`` download from the Hugging Face hub and cannot run offline; they are the only ones left out (with
commented lines). The Python example runs after the block, then the "Evaluate" block.

How, to keep it to minutes: ``accelerate launch`` lines and the block's first ``alignkit`` line run as real
processes of the installed executables; every other ``alignkit`` line and the Python example run in a
process forked from a server that has already imported torch, transformers and the rest (``warm_cli.py``):
the same ``alignkit.cli.main`` the console script calls, each in its own process, without ~5 s of imports
each. The Evaluate block reads the first block's reward and cost models, but the two policies it evaluates
(``runs/toyworld-sft``, ``runs/toyworld-safe-ppo``) are replaced by the demo fixture's SFT and Safe RLHF run
folders (the same trainers' run folders, trained to the end): after 2 steps a policy never ends an answer,
so every eval would generate to its token limit (DeceptionBench's is 1024 tokens, two stages). Run alone,
this test pays for the demo fixture; in the suite that fixture is shared with the tests that need it.

The block's ``accelerate launch`` lines (two CPU processes, DDP and DeepSpeed ZeRO-2) run as written in the
session fixture ``readme_launches`` (``readme_helpers.py``), 6 steps each, and their run folders are
copied in where the block has them: ``test_sft_invariants.py`` compares the same two runs with one process,
so the suite starts each launch once (they read nothing the block's other commands write). The forked
commands skip their PNG plots (``WarmCLI(plots=False)``, ~1 s of matplotlib each): nothing here reads them,
and ``test_cli.py`` checks that a run draws them.

Measured on the shared 2-core machine under a load of ~5.5 (toy world and DeepSpeed's op already built,
OMP_NUM_THREADS=1): 277 s wall / 276 s CPU before (every command a process of its own, the Evaluate block
on the 2-step policies), 115 s wall / 120 s CPU after.
Per command, a forked child against a fresh process: train cost 4.0 s vs 8.7 s, train dpo 5.9 s vs 11.0 s,
eval run toyworld-oracle 3.6 s vs 9.3 s; starting the server once costs 5 s.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from readme_helpers import REPO, commands, is_launch, output_dir, readme_block, readme_env
from warm_cli import WarmCLI

pytestmark = [pytest.mark.slow, pytest.mark.integration]

BLOCKS = ("## Using it", "## Evaluate", "## Pictures")


def test_the_readme_blocks_have_no_two_commands_writing_one_run_folder():
    lines = [line for heading in BLOCKS for line in commands(heading)]
    folders = [m for line in lines for m in re.findall(r"(?:run\.output_dir=|--out )(\S+)", line)]
    assert len(folders) == len(set(folders)), folders


def run_commands(
    heading: str,
    cwd: Path,
    env: dict[str, str],
    cli: WarmCLI,
    *,
    real_first: bool = False,
    launches: dict[str, Path] | None = None,
) -> None:
    """Every command of the README block under ``heading``, in order; each must succeed, no traceback.
    ``alignkit`` lines run in ``cli`` (the first one as a real process of the executable with
    ``real_first``); any other executable as a real process, except an ``accelerate launch`` line found in
    ``launches`` (the ``readme_launches`` fixture ran it as written): its run folder is copied in."""
    real = real_first
    for line in commands(heading):
        argv = shlex.split(line, comments=True)
        if launches is not None and is_launch(line):
            assert line in launches, f"the readme_launches fixture did not run {line!r}"
            shutil.copytree(launches[line], cwd / output_dir(line))
            continue
        if argv[0] == "alignkit" and not real:
            returncode, _, stderr = cli.run(cwd, argv=argv)
        else:
            result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
            returncode, stderr = result.returncode, result.stderr
            real = real and argv[0] != "alignkit"
        assert returncode == 0, f"{line}\n{stderr[-3000:]}"
        assert "Traceback" not in stderr, line


def use_demo_policies(runs: Path, demo_dir: Path) -> None:
    """The demo's SFT and Safe RLHF policies where the first block wrote its 2-step ones (module docstring)."""
    for readme_name, demo_name in (("toyworld-sft", "sft"), ("toyworld-safe-ppo", "safe-ppo")):
        shutil.move(runs / readme_name, runs / f"{readme_name}-2-steps")
        shutil.copytree(
            demo_dir / demo_name,
            runs / readme_name,
            ignore=shutil.ignore_patterns("checkpoints", "tensorboard"),
        )


def test_readme_commands_run_in_order_as_written(tmp_path, tmp_path_factory, demo_run, readme_launches):
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    env = readme_env(2)
    with WarmCLI(env, tmp_path_factory.mktemp("warm-cli"), plots=False) as cli:
        run_commands("## Using it", tmp_path, env, cli, real_first=True, launches=readme_launches)
        for run in ("toyworld-sft", "toyworld-reward", "toyworld-cost", "toyworld-ipo", "toyworld-dpo-safety",
                    "toyworld-dpo-lora", "toyworld-ppo", "toyworld-safe-ppo", "toyworld-rloo",
                    "toyworld-grpo-cost", "sft-ddp", "sft-zero2"):  # fmt: skip
            assert (tmp_path / "runs" / run / "final").is_dir(), run
        assert (tmp_path / "runs" / "toyworld-dpo-lora-merged" / "config.json").is_file()
        assert (tmp_path / "runs" / "eval-rm" / "report.json").is_file()

        returncode, _, stderr = cli.run(tmp_path, python=readme_block("The same run from Python", "python"))
        assert returncode == 0, stderr[-3000:]
        assert (tmp_path / "runs" / "sft-python" / "final").is_dir()

        use_demo_policies(tmp_path / "runs", demo_run.out_dir)
        run_commands("## Evaluate", tmp_path, env, cli)
        run_commands("## Pictures", tmp_path, env, cli)
        for run in ("sft-v", "cost-v", "dpo-v", "grpo-v"):
            assert (tmp_path / "runs" / run / "final" / "processor_config.json").is_file(), run
    for run in ("eval-sft", "eval-safe-ppo"):
        results = json.loads((tmp_path / "runs" / run / "results.json").read_text())["results"][
            "toyworld-oracle"
        ]
        assert results["benign_accuracy,none"] is not None and results["cost_model_score,none"] is not None, (
            run
        )
        assert (tmp_path / "runs" / run / "report.html").is_file()
    compare = json.loads((tmp_path / "runs" / "eval-sft-vs-safe-ppo" / "compare.json").read_text())
    assert compare["task"] == "toyworld-oracle" and len(compare["runs"]) == 2
    for run, task, metric in (
        ("eval-win-rate", "win-rate", "win_rate"),
        ("eval-safety", "safety", "harm_rate"),
        ("eval-judge-agreement", "judge-agreement", "accuracy"),
        ("eval-deceptionbench", "deceptionbench", "dtr"),
    ):
        results = json.loads((tmp_path / "runs" / run / "results.json").read_text())["results"][task]
        assert f"{metric},none" in results, (run, sorted(results))
    assert (tmp_path / "runs" / "leaderboard" / "leaderboard.json").is_file()
