"""``data.packing`` changes how SFT lays out a micro-batch, never what it learns: same losses, same weights."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from alignkit.config import load_config
from alignkit.train.sft import SFTConfig, train

SFT_EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "toyworld" / "sft.yaml"


def run(out: Path, packing: bool) -> tuple[list[dict], dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    config = load_config(
        SFTConfig,
        SFT_EXAMPLE,
        [
            f"run.output_dir={out}",
            "run.progress=false",
            "run.tensorboard=false",
            "trainer.max_steps=3",
            "trainer.micro_batch_size=8",
            "trainer.grad_accum_steps=2",
            "trainer.eval_every=0",
            "trainer.save_every=0",
            "trainer.warmup_ratio=0.0",
            f"data.packing={str(packing).lower()}",
        ],
    )
    train(config)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return rows, load_file(str(out / "final" / "model.safetensors"))


def test_packed_sft_trains_exactly_as_padded_sft(tmp_path, capsys):
    padded_rows, padded_weights = run(tmp_path / "padded", packing=False)
    assert "padded rows" in capsys.readouterr().out
    packed_rows, packed_weights = run(tmp_path / "packed", packing=True)
    assert "packed rows" in capsys.readouterr().out
    assert [r["step"] for r in packed_rows] == [r["step"] for r in padded_rows]
    for packed, padded in zip(packed_rows, padded_rows, strict=True):
        assert packed.get("units") == padded.get("units")  # the normaliser: loss tokens of the step
        for key in ("loss", "eval/loss", "grad_norm"):
            if key in padded:
                assert abs(packed[key] - padded[key]) <= 1e-5, (key, packed, padded)
    # Losses and gradients agree to float rounding (other summation order); Adam divides by sqrt(v), so for
    # weights whose gradients are near zero that rounding becomes a visible update (as between one and two
    # processes: tests/integration/test_sft_invariants.py, MULTI_PROCESS_WEIGHT_ATOL).
    worst = max(float((packed_weights[k] - v).abs().max()) for k, v in padded_weights.items())
    assert worst < 1e-4, worst
