"""Helpers of the online RL integration tests: small runs from the demo's models, compared run to run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from alignkit.cli import trainer_for
from alignkit.config import load_config
from alignkit.demo import RECIPES

SAMPLES_PER_STEP = 8
"""rollout.prompts_per_step below, one sample each."""


def small_run_overrides(demo_run, out: Path, *extra: str) -> list[str]:
    models = demo_run.out_dir
    return [
        f"model.path={models / 'sft' / 'final'}",
        f"reward.path={models / 'reward' / 'final'}",
        f"cost.path={models / 'cost' / 'final'}",
        "rollout.prompts_per_step=8",
        "rollout.max_new_tokens=16",
        "trainer.mini_batch_size=4",
        "trainer.update_epochs=2",
        "trainer.steps=4",
        "trainer.eval_every=0",
        "data.eval.max_rows=16",
        f"run.output_dir={out}",
        "run.progress=false",
        "run.tensorboard=false",
        *extra,
    ]


def safe_ppo(demo_run, out: Path, *extra: str):
    config_cls, train = trainer_for("safe-ppo")
    return train(
        load_config(config_cls, RECIPES / "safe-ppo.yaml", small_run_overrides(demo_run, out, *extra))
    )


def metric_rows(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    # wall-clock numbers (elapsed_s, timing/*) differ between any two runs; everything else must not
    return [{k: v for k, v in r.items() if k != "elapsed_s" and not k.startswith("timing/")} for r in rows]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def assert_same_run(
    a: Path, b: Path, atol: float, critics: tuple[str, ...] = ("critics/reward", "critics/cost")
) -> None:
    rows_a, rows_b = metric_rows(a), metric_rows(b)
    assert [r["step"] for r in rows_a] == [r["step"] for r in rows_b]
    for ra, rb in zip(rows_a, rows_b, strict=True):
        assert ra.keys() == rb.keys()
        for key in ra:
            if key.endswith("clipfrac") and "policy/response_length" in ra:
                # a count of tokens past a clip edge: fp32 noise may carry one token across it, no more
                one_token = 1 / (ra["policy/response_length"] * SAMPLES_PER_STEP)
                assert abs(ra[key] - rb[key]) <= one_token + 1e-9, (ra["step"], key)
                continue
            # relative too: explained variance divides by the small variance of the returns
            assert ra[key] == pytest.approx(rb[key], abs=atol, rel=1e-4), (ra["step"], key)
    for folder in ("", *critics):
        wa, wb = weights(a / "final" / folder), weights(b / "final" / folder)
        for name in wa:
            torch.testing.assert_close(wa[name], wb[name], atol=atol, rtol=0)
