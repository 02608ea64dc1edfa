"""SFT-V: ``alignkit train sft`` with ``model.path`` at the tiny VLM learns to read pictures it never saw.

The run is the real trainer (records with image parts -> processor render -> pixel values in the batch
-> the VLM's forward) on the visual toy world's colour questions about one-shape pictures; the judge is
the world's oracle on greedy answers to the held-out pictures (colour x shape x place combinations
absent from training). Measured (2 threads): the random-init model answers none of them (chance for a
model that knows the answer format: 1 in 5 colours); after 300 steps (~40 s) it answers 7 of 7.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from vision_helpers import VLM, train_sft_v

from alignkit.config import load_config
from alignkit.data import load_records
from alignkit.generate.base import SamplingConfig
from alignkit.generate.hf import HFGenerator
from alignkit.toyworld import resolve
from alignkit.toyworld.visual_world import is_correct, task_for
from alignkit.train import sft

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def colour_rows(split: str) -> list[dict]:
    """The world's SFT rows asking the colour of a lone shape, image paths made absolute."""
    folder = resolve("toyworld://visual/data/sft")
    rows = []
    for line in (folder / f"{split}.jsonl").read_text().splitlines():
        row = json.loads(line)
        image = str((folder / row["images"][0]).resolve())
        task = task_for(image, row["messages"][0]["content"][1]["text"])
        if task is not None and task.family == "colour" and len(task.scene.shapes) == 1:
            rows.append({**row, "images": [image]})
    return rows


def held_out_accuracy(model_path: str | Path, prompts_file: Path) -> tuple[float, int]:
    records = list(load_records(str(prompts_file), "trl").records)
    generator = HFGenerator.from_pretrained(str(model_path), device="cpu")
    completions = generator.generate(
        [r.messages for r in records], SamplingConfig(temperature=0, max_new_tokens=8)
    )
    tasks = [task_for(r.messages[0].media()[0].path, r.messages[0].text()) for r in records]
    right = [is_correct(t, c.text) for t, c in zip(tasks, completions, strict=True) if t is not None]
    return sum(right) / len(right), len(right)


def test_sft_v_learns_the_colours_of_held_out_pictures(tmp_path: Path):
    train, test = colour_rows("train"), colour_rows("test")
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    prompts = [{"prompt": r["messages"][:1], "images": r["images"]} for r in test]
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in prompts))
    train_pictures = {r["images"][0] for r in train}
    assert len(test) >= 5 and not train_pictures & {r["images"][0] for r in test}

    before, n = held_out_accuracy(resolve(VLM), tmp_path / "prompts.jsonl")
    train_sft_v(
        tmp_path / "run",
        f"data.train.source={tmp_path / 'train.jsonl'}",
        "data.max_length=64",
        "trainer.lr=3e-3",
        "trainer.max_steps=300",
        "trainer.micro_batch_size=16",
    )
    after, _ = held_out_accuracy(tmp_path / "run" / "final", tmp_path / "prompts.jsonl")
    print(f"held-out colour accuracy {before:.2f} -> {after:.2f} on {n} pictures")
    assert before <= 0.2, before  # at most chance (1 of 5 colours)
    assert after >= 0.85, (after, n)


def test_pictures_for_a_text_model_are_refused_naming_the_row(tmp_path: Path):
    from alignkit.config import ConfigError

    config = load_config(
        sft.SFTConfig,
        None,
        [
            "model.path=toyworld://models/tiny",
            "data.train.source=toyworld://visual/data/sft",
            f"run.output_dir={tmp_path / 'run'}",
        ],
    )
    with pytest.raises(ConfigError, match=r"holds image data \(.*train.jsonl row 1\).*text-only.*model.path"):
        sft.train(config)
    assert not (tmp_path / "run").exists()
