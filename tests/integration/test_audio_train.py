"""SFT and DPO on the tiny Qwen2-Audio: ``model.path`` at an audio-language model is all it takes.

Efficacy (SFT): the world's SFT rows (118 questions about 59 clips), 150 steps at lr 3e-3, judged by the
oracle on greedy answers about the 13 held-out clips (frequencies, amplitudes and timings never heard in
training). Measured on one thread (~10 s of training): "Is the tone high or low?" 0/13 -> 13/13 (chance
for a model that knows the answer form: 1/2); "How many beeps?" 0/13 -> 7/13 (chance 1/3).
Mechanics (DPO): 3 steps on the world's preference rows give finite losses, train the language model and
projector, keep the frozen audio tower bit-identical, and save a model that reloads with its processor.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from vision_helpers import QUIET

from alignkit.config import load_config
from alignkit.data import load_records
from alignkit.generate.base import SamplingConfig
from alignkit.generate.hf import HFGenerator
from alignkit.toyworld import resolve
from alignkit.toyworld.audio_world import is_correct, task_for
from alignkit.train import dpo, sft

pytestmark = [pytest.mark.integration]

ALM = "toyworld://audio/models/tiny-alm"


def held_out_accuracy(model: Path) -> dict[str, tuple[int, int]]:
    """Per question family: (right, asked) over greedy answers to the held-out clips."""
    prompts = [
        r.messages
        for r in load_records(str(resolve("toyworld://audio/data/prompts/test.jsonl")), "trl").records
    ]
    generator = HFGenerator.from_pretrained(str(model), device="cpu")
    found: dict[str, list[bool]] = {}
    for completion in generator.generate(
        [list(p) for p in prompts], SamplingConfig(temperature=0.0, max_new_tokens=8)
    ):
        turn = prompts[completion.prompt_index][-1]
        task = task_for(turn.media()[0].path, turn.text())
        found.setdefault(task.family, []).append(is_correct(task, completion.text))
    return {family: (sum(v), len(v)) for family, v in found.items()}


def tower(path: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(str(path / "model.safetensors")).items() if "audio_tower" in k}


def test_sft_on_the_tiny_alm_learns_the_pitch_of_held_out_clips(tmp_path: Path):
    before = held_out_accuracy(resolve(ALM))
    config = load_config(
        sft.SFTConfig,
        None,
        [
            f"model.path={ALM}",
            *QUIET,
            "data.train.source=toyworld://audio/data/sft",
            "trainer.max_steps=150",
            "trainer.lr=3e-3",
            "trainer.micro_batch_size=16",
            f"run.output_dir={tmp_path / 'run'}",
        ],
    )
    sft.train(config)
    final = tmp_path / "run" / "final"
    after = held_out_accuracy(final)
    print(f"held-out accuracy before {before}, after {after}")
    pitch_before, count_before = before["pitch"][0] / 13, before["count"][0] / 13
    pitch_after, count_after = after["pitch"][0] / 13, after["count"][0] / 13
    assert before["pitch"][1] == before["count"][1] == 13
    assert pitch_before <= 0.5 and count_before <= 1 / 3  # at most chance
    assert pitch_after >= 0.85, after
    assert count_after >= 5 / 13, after  # above chance (1/3); measured 7/13
    base, trained = tower(resolve(ALM)), tower(final)
    assert base and all(torch.equal(base[k], trained[k]) for k in base)  # model.freeze_vision (default)


def test_dpo_on_the_tiny_alm_keeps_the_audio_tower_and_saves_the_processor(tmp_path: Path):
    from alignkit.models.loading import load_causal_lm, load_processor, load_tokenizer

    config = load_config(
        dpo.DPOConfig,
        None,
        [
            f"model.path={ALM}",
            *QUIET,
            "data.train.source=toyworld://audio/data/dpo",
            "data.train.template=trl",
            "data.train.max_rows=32",
            "trainer.lr=1e-3",
            "trainer.max_steps=3",
            "trainer.micro_batch_size=4",
            f"run.output_dir={tmp_path / 'run'}",
        ],
    )
    dpo.train(config)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    final = tmp_path / "run" / "final"
    before, after = (
        load_file(str(resolve(ALM) / "model.safetensors")),
        load_file(str(final / "model.safetensors")),
    )
    audio = [k for k in before if "audio_tower" in k]
    assert audio and all(torch.equal(before[k], after[k]) for k in audio)
    moved = [k for k in before if k not in audio and not torch.equal(before[k], after[k])]
    assert any("projector" in k for k in moved) and any("language_model" in k for k in moved)
    processor = load_processor(str(final), load_tokenizer(str(final)))
    assert type(processor).__name__ == "Qwen2AudioProcessor"
    assert type(load_causal_lm(str(final))).__name__ == "Qwen2AudioForConditionalGeneration"


def test_audio_rows_for_a_text_model_are_refused_naming_the_row(tmp_path: Path):
    from alignkit.config import ConfigError

    config = load_config(
        sft.SFTConfig,
        None,
        ["model.path=toyworld://models/tiny", "data.train.source=toyworld://audio/data/sft"]
        + [f"run.output_dir={tmp_path / 'run'}"],
    )
    with pytest.raises(ConfigError, match=r"holds audio data \(.*train.jsonl row 1\).*text-only.*tiny-alm"):
        sft.train(config)
    assert not (tmp_path / "run").exists()
