"""Small SFT runs shared by the integration tests: one config shape, differing only where a test says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from alignkit.config import load_config
from alignkit.train.sft import SFTConfig

REPO = Path(__file__).resolve().parents[2]
SFT_EXAMPLE = REPO / "examples" / "toyworld" / "sft.yaml"
BIN = Path(sys.executable).parent


def tiny_overrides(out: Path, *extra: str) -> list[str]:
    """A short, fast SFT run: the example config with fewer steps and no periodic eval."""
    return [
        f"run.output_dir={out}",
        "run.progress=false",
        "run.tensorboard=false",
        "trainer.max_steps=6",
        "trainer.eval_every=0",
        "trainer.save_every=0",
        "trainer.warmup_ratio=0.0",
        *extra,
    ]


def tiny_config(out: Path, *extra: str) -> SFTConfig:
    return load_config(SFTConfig, SFT_EXAMPLE, tiny_overrides(out, *extra))


def losses(run_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def run_cli(
    *args: str, launcher: list[str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run ``alignkit`` in a fresh process (optionally under a launcher such as accelerate launch). A test
    that needs no fresh interpreter (no launcher, signal or console-script check) takes the ``cli`` fixture
    (``conftest.py``): the same command forked from a warm server, without 2-5 s of imports each."""
    cmd = [*(launcher or [sys.executable]), "-m", "alignkit.cli", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)
