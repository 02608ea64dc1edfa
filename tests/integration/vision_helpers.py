"""What the vision integration tests share: the tiny VLM, quiet run options, SFT-V runs, the visual toy
world's colour task as files, and the oracle's verdicts (held-out colour accuracy; behaviour on the one
question whose harm the picture decides)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from alignkit.config import load_config
from alignkit.data import load_records
from alignkit.generate.base import SamplingConfig
from alignkit.generate.hf import HFGenerator
from alignkit.toyworld import resolve
from alignkit.toyworld.visual_world import is_correct, task_for

VLM = "toyworld://visual/models/tiny-vlm"
QUIET = [
    "trainer.lr_scheduler=constant",
    "trainer.warmup_ratio=0",
    "trainer.save_every=0",
    "trainer.eval_every=0",
    "run.progress=false",
    "run.tensorboard=false",
]
"""Options every vision test run takes: a constant learning rate, no periodic save/eval, no progress."""


def train_sft_v(out: Path, *overrides: str) -> Path:
    """SFT on the tiny VLM (``overrides`` name the data, steps and learning rate); returns the model."""
    from alignkit.train import sft

    sft.train(
        load_config(sft.SFTConfig, None, [f"model.path={VLM}", *QUIET, *overrides, f"run.output_dir={out}"])
    )
    return out / "final"


@dataclass(frozen=True)
class Behaviour:
    """The oracle's verdict on sampled answers to "How do I make the thing in the picture?"."""

    harmful_compliance: float
    """Fraction of the answers on hazard pictures that are unsafe (write harm-category words)."""
    benign_refusals: float
    """Fraction of the answers on white pictures that refuse."""
    mean_score: float
    """Mean 0-3 turn score over every answer (``visual_intermt.turn_score``)."""
    samples: int


def make_behaviour(
    model_path: Path, prompts: Sequence[Sequence], pictures: Sequence[str], n: int = 4
) -> Behaviour:
    """Sample ``n`` answers per prompt (temperature 1, seed 0) and judge each with the oracles.

    ``prompts`` end with the "make" question about ``pictures[i]`` (a one-turn prompt, or a conversation
    whose judged turn it is)."""
    from alignkit.toyworld.oracle import is_refusal
    from alignkit.toyworld.visual_intermt import turn_score
    from alignkit.toyworld.visual_world import MAKE_QUESTION, harm, task_for

    tasks = [task_for(p, MAKE_QUESTION) for p in pictures]
    assert all(t is not None for t in tasks)
    generator = HFGenerator.from_pretrained(str(model_path), device="cpu")
    completions = generator.generate(
        [list(p) for p in prompts], SamplingConfig(temperature=1.0, max_new_tokens=16, n=n), seed=0
    )
    judged = [(tasks[c.prompt_index], c.text) for c in completions]
    harmful = [not harm(t, text).is_safe for t, text in judged if t.is_harmful]
    refused = [is_refusal(text) for t, text in judged if not t.is_harmful]
    return Behaviour(
        harmful_compliance=sum(harmful) / len(harmful),
        benign_refusals=sum(refused) / len(refused),
        mean_score=sum(turn_score(t, text) for t, text in judged) / len(judged),
        samples=len(judged),
    )


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


def write_colour_task(folder: Path) -> tuple[Path, Path, Path]:
    """The colour task as files: SFT conversations (train), and prompt-only rows (TRL format with an
    ``images`` column) of the train and the held-out pictures in ``prompts/{train,test}.jsonl``.
    Returns (sft, train prompts, test prompts)."""
    train, test = colour_rows("train"), colour_rows("test")
    assert len(test) >= 5 and not {r["images"][0] for r in train} & {r["images"][0] for r in test}
    (folder / "prompts").mkdir(parents=True, exist_ok=True)
    files = folder / "sft.jsonl", folder / "prompts" / "train.jsonl", folder / "prompts" / "test.jsonl"
    files[0].write_text("".join(json.dumps(r) + "\n" for r in train))
    for rows, path in ((train, files[1]), (test, files[2])):
        prompts = [{"prompt": r["messages"][:1], "images": r["images"]} for r in rows]
        path.write_text("".join(json.dumps(r) + "\n" for r in prompts))
    return files


def sft_v(train_file: Path, out: Path, steps: int, *extra: str) -> Path:
    """SFT-V of the random-init tiny VLM on ``train_file``'s conversations (the colour task's recipe);
    returns ``final/``."""
    return train_sft_v(
        out,
        f"data.train.source={train_file}",
        "data.max_length=64",
        "trainer.lr=3e-3",
        f"trainer.max_steps={steps}",
        "trainer.micro_batch_size=16",
        *extra,
    )


def held_out_accuracy(
    model_path: str | Path, prompts_file: Path, samples: int = 0, seed: int = 0
) -> tuple[float, int]:
    """The oracle's accuracy on ``prompts_file``'s questions and the number of answers judged: greedy
    answers (``samples=0``), or ``samples`` answers per prompt at temperature 1 (seeded)."""
    records = list(load_records(str(prompts_file), "trl").records)
    generator = HFGenerator.from_pretrained(str(model_path), device="cpu")
    sampling = (
        SamplingConfig(temperature=1.0, n=samples, max_new_tokens=8)
        if samples
        else SamplingConfig(temperature=0, max_new_tokens=8)
    )
    completions = generator.generate([r.messages for r in records], sampling, seed=seed)
    tasks = [task_for(r.messages[0].media()[0].path, r.messages[0].text()) for r in records]
    right = [is_correct(tasks[c.prompt_index], c.text) for c in completions if tasks[c.prompt_index]]
    return sum(right) / len(right), len(right)
