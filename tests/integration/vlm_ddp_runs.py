"""The runs that ``test_vlm_ddp.py`` makes in one process and, through this file under ``accelerate
launch``, in two gloo processes, in three groups:
- ``vlm``: on the tiny VLM, SFT with the vision tower frozen and unfrozen, and DPO;
- ``grpo``: GRPO on the tiny VLM with pictures in most prompts (two processes only: each process samples
  its own share with its own seed, so one process cannot reproduce it exactly);
- ``audio``: SFT on the tiny Qwen2-Audio-style model (audio tower frozen).

The data mixes rows with a picture and text-only rows, placed (through the loop's pure batch order,
``engine.global_batch_indices``) so that the hard cases for DDP happen on known steps:
- step 0: rank 0's micro-batch has pictures, rank 1's has none (its projector gets no gradient);
- step 1: the other way round;
- step 2: no picture on any rank (the projector gets no gradient anywhere, as in one process);
Rows outside those steps have a picture (a clip for ``audio``). GRPO's prompts are placed the same way
(``prompts.step_prompt_indices`` cuts the same permutation into the same shares).

Usage (what the test runs): ``accelerate launch --config_file examples/accelerate/ddp.yaml
tests/integration/vlm_ddp_runs.py FOLDER [GROUP]`` (GROUP ``vlm``, the default, ``grpo`` or ``audio``);
the runs land in ``FOLDER/ddp-<name>``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
from vision_helpers import QUIET, VLM

from alignkit.toyworld import resolve

SEED = 0
SFT_ROWS, SFT_GLOBAL = 64, 8
AUDIO_ROWS = 24  # 3 steps x 8: one pass, and fewer clips for each process to read
DPO_ROWS, DPO_GLOBAL = 32, 4
STEPS = 3
GRPO_ROWS, GRPO_PROMPTS, GRPO_STEPS = 16, 4, 2
ALM = "toyworld://audio/models/tiny-alm"
GROUPS = ("vlm", "grpo", "audio")


def text_only_indices(num_rows: int, global_batch: int) -> set[int]:
    """Rows that get no picture: rank 1's half of step 0, rank 0's half of step 1, all of step 2 (two
    processes, one micro-batch each: rank r takes chunk r of a step's indices)."""
    from alignkit.train.engine import global_batch_indices

    half = global_batch // 2
    steps = [global_batch_indices(num_rows, global_batch, s, SEED) for s in range(3)]
    return set(steps[0][half:]) | set(steps[1][:half]) | set(steps[2])


def _user(text: str, media: str | None, kind: str = "image") -> dict:
    if media is None:
        return {"role": "user", "content": text}
    return {"role": "user", "content": [{"type": kind, "path": media}, {"type": "text", "text": text}]}


def write_data(folder: Path) -> tuple[Path, Path]:
    """SFT conversations and preference pairs from the visual toy world, some rows text-only (see the
    module docstring); returns (sft file, dpo file)."""
    world = resolve("toyworld://visual/data")
    folder.mkdir(parents=True, exist_ok=True)

    sft_rows, text = [], text_only_indices(SFT_ROWS, SFT_GLOBAL)
    lines = (world / "sft" / "train.jsonl").read_text().splitlines()[:SFT_ROWS]
    for i, line in enumerate(lines):
        row = json.loads(line)
        image = str((world / "sft" / row["images"][0]).resolve())
        question = next(p["text"] for p in row["messages"][0]["content"] if p["type"] == "text")
        user = _user(question, None if i in text else image)
        sft_rows.append({"messages": [user, row["messages"][1]]})

    dpo_rows, text = [], text_only_indices(DPO_ROWS, DPO_GLOBAL)
    lines = (world / "beavertails_v" / "train.jsonl").read_text().splitlines()[:DPO_ROWS]
    for i, line in enumerate(lines):
        row = json.loads(line)
        image = str((world / "beavertails_v" / row["image"]).resolve())
        safer = row["safer_response_id"]
        chosen, rejected = row[f"response_{safer}"], row[f"response_{3 - int(safer)}"]
        dpo_rows.append(
            {
                "prompt": [_user(row["question"], None if i in text else image)],
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}],
            }
        )
    grpo_rows, text = [], text_only_indices(GRPO_ROWS, GRPO_PROMPTS)
    lines = (world / "prompts" / "train.jsonl").read_text().splitlines()[:GRPO_ROWS]
    for i, line in enumerate(lines):
        row = json.loads(line)
        image = str((world / "prompts" / row["images"][0]).resolve())
        question = next(p["text"] for p in row["prompt"][0]["content"] if p["type"] == "text")
        grpo_rows.append({"prompt": [_user(question, None if i in text else image)]})

    audio_rows, text = [], text_only_indices(AUDIO_ROWS, SFT_GLOBAL)
    sounds = resolve("toyworld://audio/data/sft")
    for i, line in enumerate((sounds / "train.jsonl").read_text().splitlines()[:AUDIO_ROWS]):
        row = json.loads(line)
        parts = row["messages"][0]["content"]
        clip = str((sounds / next(p["path"] for p in parts if p["type"] == "audio")).resolve())
        question = next(p["text"] for p in parts if p["type"] == "text")
        audio_rows.append(
            {"messages": [_user(question, None if i in text else clip, "audio"), row["messages"][1]]}
        )

    files = folder / "sft.jsonl", folder / "dpo.jsonl"
    named = (*files, folder / "grpo.jsonl", folder / "audio.jsonl")
    for rows, path in zip((sft_rows, dpo_rows, grpo_rows, audio_rows), named, strict=True):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return files


class AnswerLength:
    """GRPO's reward here: the answer's length in characters / 10. It reads no picture, so text-only
    prompts can be scored (the visual oracle needs a picture); the rewards differ within a group, so the
    policy gets a gradient on every rank."""

    def score(self, prompts: Any, responses: Any) -> torch.Tensor:
        from alignkit.data.chat_template import chat_dicts

        return torch.tensor(
            [
                len(next((m["content"] for m in chat_dicts(r)[::-1] if m["role"] == "assistant"), "")) / 10
                for r in responses
            ],
            dtype=torch.float32,
        )


def run_overrides(folder: Path, processes: int, group: str = "vlm") -> dict[str, tuple[str, list[str]]]:
    """name -> (trainer module, overrides) of every run of a group, with the same global batch in 1 or 2
    processes."""
    if group not in GROUPS:
        raise ValueError(f"group {group!r}: use one of {', '.join(GROUPS)}")
    sft_file, dpo_file = folder / "sft.jsonl", folder / "dpo.jsonl"
    common = [f"model.path={VLM}", *QUIET, "data.eval=null", "data.max_length=64", f"trainer.seed={SEED}"]
    prefix = "ddp" if processes == 2 else "one"
    if group == "grpo":
        grpo = [*common, f"data.train.source={folder / 'grpo.jsonl'}", "data.train.template=trl"]
        grpo += ["reward.path=given:AnswerLength", f"rollout.prompts_per_step={GRPO_PROMPTS}"]
        grpo += ["rollout.samples_per_prompt=2", "rollout.max_new_tokens=6", f"trainer.steps={GRPO_STEPS}"]
        grpo += [
            f"trainer.mini_batch_size={2 * GRPO_PROMPTS}",
            f"trainer.micro_batch_size={GRPO_PROMPTS // 2}",
        ]
        grpo += ["trainer.lr=1e-3", "beta=0", f"run.output_dir={folder / f'{prefix}-grpo'}"]
        return {"grpo": ("grpo", grpo)}
    common += [f"trainer.max_steps={STEPS}"]
    if group == "audio":
        audio = [*common[1:], f"model.path={ALM}", f"data.train.source={folder / 'audio.jsonl'}"]
        audio += [
            "data.train.template=trl",
            "trainer.lr=3e-3",
            f"trainer.micro_batch_size={SFT_GLOBAL // processes}",
        ]
        return {"audio-sft": ("sft", [*audio, f"run.output_dir={folder / f'{prefix}-audio-sft'}"])}
    sft = [*common, f"data.train.source={sft_file}", "data.train.template=trl", "trainer.lr=3e-3"]
    sft += [f"trainer.micro_batch_size={SFT_GLOBAL // processes}"]
    dpo = [*common, f"data.train.source={dpo_file}", "data.train.template=trl", "trainer.lr=1e-3"]
    dpo += [f"trainer.micro_batch_size={DPO_GLOBAL // processes}"]
    return {
        name: (module, [*overrides, f"run.output_dir={folder / f'{prefix}-{name}'}"])
        for name, module, overrides in (
            ("sft-frozen", "sft", sft),
            ("sft-unfrozen", "sft", [*sft, "model.freeze_vision=false"]),
            ("dpo-frozen", "dpo", dpo),
        )
    }


def run_all(folder: Path, processes: int, group: str = "vlm") -> None:
    """Every run of a group in this process (the launched processes each call it with ``processes=2``)."""
    from alignkit.config import load_config
    from alignkit.train import dpo, sft
    from alignkit.train.grpo import GRPOConfig, GRPOTrainer

    def grpo(config: GRPOConfig) -> None:
        GRPOTrainer(config, scorers={"reward": AnswerLength()}).run()

    trainers = {
        "sft": (sft.SFTConfig, sft.train),
        "dpo": (dpo.DPOConfig, dpo.train),
        "grpo": (GRPOConfig, grpo),
    }
    for module, overrides in run_overrides(folder, processes, group).values():
        config_class, train = trainers[module]
        train(load_config(config_class, None, overrides))


if __name__ == "__main__":
    run_all(Path(sys.argv[1]), processes=2, group=sys.argv[2] if len(sys.argv) > 2 else "vlm")
