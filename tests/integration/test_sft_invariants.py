"""SFT invariants: accumulation, exact resume after kill -9, and multi-process runs equal one process.

Each compares losses step by step (and final weights) between two ways of running the same optimisation.
The two-process runs are the README's ``accelerate launch`` lines (DDP, DeepSpeed ZeRO-2), run once per
session by the ``readme_launches`` fixture, which the README test reads as well: starting two processes (and
DeepSpeed) costs far more than the 6 steps they train, and each launch proves both points.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from readme_helpers import LAUNCH_STEPS
from safetensors.torch import load_file
from sft_helpers import REPO, SFT_EXAMPLE, losses, tiny_config, tiny_overrides

from alignkit.config import load_config
from alignkit.train.sft import SFTConfig, train

pytestmark = pytest.mark.integration


def weights(run_dir):
    return load_file(str(run_dir / "final" / "model.safetensors"))


MULTI_PROCESS_WEIGHT_ATOL = 1e-4
"""Two processes sum gradients in another order than one; Adam divides by sqrt(v), so for weights whose
gradients are near zero that rounding noise becomes a visible update: after 6 steps weights differ by up to
3.4e-5 (losses by < 1e-5) with micro-batches of 4, the same at the last landed commit on this CPU; the
README's launches (micro-batches of 32, 6 steps) measured 1.2e-5 (losses 7e-7), DDP and ZeRO-2 alike."""


def assert_same_weights(a, b, atol):
    wa, wb = weights(a), weights(b)
    # DeepSpeed's gathered state dict also lists tied weights (lm_head = embed_tokens) under both names.
    assert set(wa) <= set(wb)
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], atol=atol, rtol=0, msg=key)


@pytest.fixture(scope="module")
def one_process_run(tmp_path_factory):
    """The tiny SFT run in one process, micro-batch 8: what accumulation and two processes must equal."""
    out = tmp_path_factory.mktemp("one") / "run"
    train(tiny_config(out, "trainer.micro_batch_size=8"))
    return out


def test_accumulation_4x2_equals_8x1(tmp_path, one_process_run):
    """8 examples per step either way; the loss is normalised by the tokens of the whole step. The 8x1 run
    is ``one_process_run`` (micro-batch 8, the example's one accumulation step)."""
    assert tiny_config(tmp_path / "8x1", "trainer.micro_batch_size=8").trainer.grad_accum_steps == 1
    train(tiny_config(tmp_path / "4x2", "trainer.micro_batch_size=4", "trainer.grad_accum_steps=2"))
    a, b = losses(one_process_run), losses(tmp_path / "4x2")
    assert len(a) == len(b) == 6
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-5
    assert a[-1] < a[0]  # it trained
    assert_same_weights(one_process_run, tmp_path / "4x2", atol=1e-5)


def test_resume_after_kill_minus_9_matches_uninterrupted_run(tmp_path, cli):
    """A real SIGKILL mid-run; the resumed run must end with the losses and weights of an uninterrupted one."""
    steps = ["trainer.max_steps=60", "trainer.save_every=10", "trainer.micro_batch_size=8"]
    full = tmp_path / "full"
    train(tiny_config(full, *steps))

    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "alignkit.cli", "train", "sft", "--config", str(SFT_EXAMPLE)]
    proc = subprocess.Popen(
        [*cmd, *tiny_overrides(killed, *steps)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    checkpoint = killed / "checkpoints" / "step-000020"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert checkpoint.exists(), (
        proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "no checkpoint"
    )
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, (
        "the run finished before it could be killed: the test proves nothing"
    )
    assert not (killed / "final").exists()

    resumed = cli(
        "train", "sft", "--config", str(SFT_EXAMPLE), *tiny_overrides(killed, *steps, "run.resume=true")
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "continuing from" in resumed.stdout + resumed.stderr
    a, b = losses(full), losses(killed)
    assert len(a) == len(b) == 60
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-6
    assert_same_weights(full, killed, atol=1e-6)


def test_a_run_never_overwrites_an_earlier_one(tmp_path, cli, one_process_run):
    out = tmp_path / "run"
    shutil.copytree(one_process_run, out)  # a finished run folder
    before = (out / "metrics.jsonl").read_text()
    result = cli("train", "sft", "--config", str(SFT_EXAMPLE), *tiny_overrides(out))
    assert result.returncode == 2
    assert "already holds a run" in result.stderr and "run.overwrite=true" in result.stderr
    assert (out / "metrics.jsonl").read_text() == before


def readme_launch(readme_launches, config_file):
    """The README's ``accelerate launch`` line with ``config_file``: its run folder and trainer state."""
    (line,) = [line for line in readme_launches if f"examples/accelerate/{config_file} " in line]
    out = readme_launches[line]
    state = json.loads((out / "final" / "trainer_state.json").read_text())
    # `accelerate launch --cpu` would silently start one process: make sure two really trained together.
    assert state["num_processes"] == 2 and state["global_batch"] == 2 * README_MICRO_BATCH, state
    return out, state


README_MICRO_BATCH = 32
"""``trainer.micro_batch_size`` of ``examples/toyworld/sft.yaml``, which the README's launches train."""


@pytest.fixture(scope="module")
def readme_one_process_run(tmp_path_factory):
    """What the README's two-process launches must equal: the same config and steps in one process, with
    the two processes' micro-batches as one."""
    out = tmp_path_factory.mktemp("one-readme") / "run"
    config = load_config(
        SFTConfig,
        SFT_EXAMPLE,
        [
            f"run.output_dir={out}",
            "run.progress=false",
            "run.tensorboard=false",
            f"trainer.max_steps={LAUNCH_STEPS}",
            f"trainer.micro_batch_size={2 * README_MICRO_BATCH}",
        ],
    )
    assert config.trainer.grad_accum_steps == 1
    train(config)
    return out


def assert_matches_one_process(one, out):
    a, b = losses(one), losses(out)
    assert len(a) == len(b) == LAUNCH_STEPS
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-5
    assert a[-1] < a[0]  # it trained
    assert_same_weights(one, out, atol=MULTI_PROCESS_WEIGHT_ATOL)


def test_two_gloo_ddp_processes_match_one_process(readme_launches, readme_one_process_run):
    """The README's DDP launch (``readme_launches``: 2 CPU processes over gloo, 6 steps)."""
    out, state = readme_launch(readme_launches, "ddp.yaml")
    assert state["distributed_type"].endswith("MULTI_CPU")
    assert_matches_one_process(readme_one_process_run, out)


@pytest.mark.slow
def test_deepspeed_zero2_on_two_cpu_processes_matches_one_process(readme_launches, readme_one_process_run):
    """The README's DeepSpeed ZeRO-2 launch (``readme_launches``: 2 CPU processes, 6 steps)."""
    pytest.importorskip("deepspeed")
    out, state = readme_launch(readme_launches, "deepspeed_zero2.yaml")
    assert state["distributed_type"].endswith("DEEPSPEED")
    assert_matches_one_process(readme_one_process_run, out)
