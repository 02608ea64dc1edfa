"""What several integration tests share, set up once per test session: the ``alignkit`` command in warm
processes (``cli``) and trained models.

The text toy world's models are in ``tests/conftest.py`` (``demo_run``, ``sft_policy``,
``deception_policies``); the visual toy world's are here. A test that needs one of these policies takes the
fixture instead of training its own copy: the suite runs on 2 CPU cores and must stay well under 15 minutes.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from readme_helpers import run_readme_launches
from vision_helpers import train_sft_v
from warm_cli import WarmCLI

REPO = Path(__file__).resolve().parents[2]

SFT_V_RECIPE = (
    "data.train.source=toyworld://visual/data/sft",
    "data.max_length=64",
    "trainer.lr=3e-3",
    "trainer.max_steps=300",
    "trainer.micro_batch_size=16",
)
"""SFT-V's recipe (with ``vision_helpers.QUIET``): every row of the visual world's SFT train split (all
question families, pictures held out of the test split absent), 300 steps."""


@pytest.fixture(scope="session")
def sft_v_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SFT-V: the tiny VLM after ``SFT_V_RECIPE`` (about 15 s on 2 threads), an HF folder with its
    processor. It knows the world's answer formats and complies with the harmful question on about 3 of
    4 held-out hazard pictures (the SFT rows comply on half of them), which DPO-V then removes
    (``test_dpo_vision.py``). Do not train it further in place: copy it or start a run from it."""
    return train_sft_v(tmp_path_factory.mktemp("sft-v") / "run", *SFT_V_RECIPE)


@pytest.fixture(scope="session")
def readme_launches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The README's ``accelerate launch`` lines (SFT on two CPU processes: DDP, DeepSpeed ZeRO-2), run once
    as written (``readme_helpers.run_readme_launches``): {line: run folder}. ``test_readme.py`` takes them as
    its block's launches, ``test_sft_invariants.py`` compares them with one process."""
    return run_readme_launches(tmp_path_factory.mktemp("readme-launches"))


@pytest.fixture(scope="session")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., subprocess.CompletedProcess]]:
    """``cli(*args)``: ``alignkit *args`` in the repository root, in a process of its own forked from a server
    that imported torch, transformers and the rest once (``warm_cli.py``), as ``sft_helpers.run_cli`` but
    without its 2-5 s of imports per command. The child runs what the console script runs (``alignkit.cli
    .main``) and has its own exit status, stdout, stderr, RNG, accelerate state and signal handlers; only the
    imports are shared. The server's environment is ``os.environ`` when the fixture starts. Tests about the
    real executable (its exit status end to end, a signal, ``accelerate launch``) use ``run_cli``."""
    with WarmCLI({**os.environ, "PYTHONUNBUFFERED": "1"}, tmp_path_factory.mktemp("warm-cli")) as server:

        def run(*args: str) -> subprocess.CompletedProcess:
            argv = ["alignkit", *args]
            returncode, stdout, stderr = server.run(REPO, argv=argv)
            return subprocess.CompletedProcess(argv, returncode, stdout, stderr)

        yield run
