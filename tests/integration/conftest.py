"""Trained models that several integration tests start from, trained once per test session.

The text toy world's are in ``tests/conftest.py`` (``demo_run``, ``sft_policy``, ``deception_policies``);
the visual toy world's are here. A test that needs one of these policies takes the fixture instead of
training its own copy: the suite runs on 2 CPU cores and must stay well under 15 minutes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

VLM = "toyworld://visual/models/tiny-vlm"
"""The visual toy world's random-init tiny vision-language model."""
SFT_V_OVERRIDES = (
    f"model.path={VLM}",
    "data.train.source=toyworld://visual/data/sft",
    "data.max_length=64",
    "trainer.lr=3e-3",
    "trainer.lr_scheduler=constant",
    "trainer.warmup_ratio=0",
    "trainer.max_steps=300",
    "trainer.micro_batch_size=16",
    "trainer.save_every=0",
    "trainer.eval_every=0",
    "run.progress=false",
    "run.tensorboard=false",
)
"""SFT-V's recipe: every row of the visual world's SFT train split (all question families, pictures held
out of the test split absent), 300 steps."""


@pytest.fixture(scope="session")
def sft_v_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SFT-V: the tiny VLM after ``SFT_V_OVERRIDES`` (about 15 s on 2 threads), an HF folder with its
    processor. It knows the world's answer formats and complies with the harmful question on about 3 of
    4 held-out hazard pictures (the SFT rows comply on half of them), which DPO-V then removes
    (``test_dpo_vision.py``). Do not train it further in place: copy it or start a run from it."""
    from alignkit.config import load_config
    from alignkit.train import sft

    out = tmp_path_factory.mktemp("sft-v") / "run"
    sft.train(load_config(sft.SFTConfig, None, [*SFT_V_OVERRIDES, f"run.output_dir={out}"]))
    return out / "final"
