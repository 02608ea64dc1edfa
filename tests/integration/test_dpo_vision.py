"""DPO on the tiny VLM: ``model.path`` at a vision-language model and BeaverTails-V rows are all it takes.

Mechanics, not efficacy (see docs/multimodal.md for what is not shown yet): the pairs render through the
processor with their pictures, a batch carries one picture per row (chosen rows, then rejected rows),
the run trains the language model and projector, and the frozen vision tower (``model.freeze_vision``,
the default) is saved unchanged.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from alignkit.config import load_config
from alignkit.data.pair_examples import collate_pairs, tokenize_pairs
from alignkit.toyworld import resolve
from alignkit.train import dpo

pytestmark = [pytest.mark.integration]

VLM = "toyworld://visual/models/tiny-vlm"


def test_dpo_trains_a_vlm_on_beavertails_v(tmp_path: Path):
    config = load_config(
        dpo.DPOConfig,
        None,
        [
            f"model.path={VLM}",
            "data.train.source=toyworld://visual/data/beavertails_v",
            "data.train.template=beavertails-v",
            "data.train.max_rows=64",
            "data.max_length=64",
            "preference=safety",
            "trainer.lr=1e-3",
            "trainer.warmup_ratio=0",
            "trainer.max_steps=3",
            "trainer.micro_batch_size=4",
            "trainer.save_every=0",
            "trainer.eval_every=0",
            f"run.output_dir={tmp_path / 'run'}",
            "run.progress=false",
            "run.tensorboard=false",
        ],
    )
    dpo.train(config)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)

    before = load_file(str(resolve(VLM) / "model.safetensors"))
    after = load_file(str(tmp_path / "run" / "final" / "model.safetensors"))
    tower = [k for k in before if "vision_tower" in k]
    language = [k for k in before if "language_model" in k or "multi_modal_projector" in k]
    assert tower and all(torch.equal(before[k], after[k]) for k in tower)
    assert any(not torch.equal(before[k], after[k]) for k in language)
    # The trained folder is a VLM with its processor again: the next stage can start from it.
    assert (tmp_path / "run" / "final" / "processor_config.json").is_file()


def test_a_pair_batch_carries_one_picture_per_row():
    from alignkit.data import load_records
    from alignkit.models.loading import load_processor, load_tokenizer

    processor = load_processor(VLM, load_tokenizer(VLM))
    records = list(
        load_records(str(resolve("toyworld://visual/data/beavertails_v")), "beavertails-v").records
    )[:3]
    examples, _, dropped = tokenize_pairs(records, processor, 64, "safety")
    assert dropped == 0
    batch = collate_pairs(examples, pad_token_id=0)
    assert tuple(batch["pixel_values"].shape) == (6, 3, 32, 32)  # 3 chosen rows, then 3 rejected rows
    # A pair's two rows show the same picture.
    assert torch.equal(batch["pixel_values"][0], batch["pixel_values"][3])
