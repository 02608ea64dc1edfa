"""SFT-V: ``alignkit train sft`` with ``model.path`` at the tiny VLM learns to read pictures it never saw.

The run is the real trainer (records with image parts -> processor render -> pixel values in the batch
-> the VLM's forward) on the visual toy world's colour questions about one-shape pictures; the judge is
the world's oracle on greedy answers to the held-out pictures (colour x shape x place combinations
absent from training). Measured (2 threads): the random-init model answers none of them (chance for a
model that knows the answer format: 1 in 5 colours); after 300 steps (~40 s) it answers 7 of 7.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from vision_helpers import VLM, held_out_accuracy, sft_v, write_colour_task

from alignkit.config import load_config
from alignkit.toyworld import resolve
from alignkit.train import sft

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_sft_v_learns_the_colours_of_held_out_pictures(tmp_path: Path):
    train, _, test_prompts = write_colour_task(tmp_path)
    before, n = held_out_accuracy(resolve(VLM), test_prompts)
    final = sft_v(train, tmp_path / "run", steps=300)
    after, _ = held_out_accuracy(final, test_prompts)
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
