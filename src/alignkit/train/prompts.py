"""Where an online step's prompts come from: any record with a prompt, a seeded order per step and
process, and the per-(step, process) sampling seed that makes a resumed run sample what the first did."""

from __future__ import annotations

from typing import Any

from alignkit.config import ConfigError
from alignkit.sections import DataConfig, DatasetConfig
from alignkit.train.common import DataReport, read_records
from alignkit.train.engine import global_batch_indices


def toyworld_prompts() -> DataConfig:
    """The toy world's RL prompts: train split to roll out from, held-out split for eval."""
    return DataConfig(
        train=DatasetConfig(source="toyworld://data/prompts", template="trl-prompt"),
        eval=DatasetConfig(source="toyworld://data/prompts", template="trl-prompt", split="test"),
    )


def prompt_messages(record: Any) -> list[Any]:
    """The conversation a policy answers, from any record that has one."""
    from alignkit.data.records import Conversation, Prompt

    if isinstance(record, Prompt):
        return list(record.messages)
    if isinstance(record, Conversation):
        messages = list(record.messages)
        while messages and messages[-1].role == "assistant":
            messages.pop()
        return messages
    prompt = getattr(record, "prompt", None)
    if prompt is None:
        raise ConfigError(
            f"{type(record).__name__} records carry no prompt to roll out from; choose a template whose "
            "records have one (e.g. trl-prompt, pku-saferlhf)"
        )
    return list(prompt)


def read_prompts(data: DataConfig, report: DataReport, *, media: bool = False) -> dict[str, list[list[Any]]]:
    """Prompts of data.train (and data.eval), from any template whose records have a prompt.

    ``media``: the policy takes pictures (a vision-language model), so prompts keep their image parts;
    otherwise a prompt holding one is refused, naming its row."""
    out = {}
    for name, ds in data.splits().items():
        records = read_records(ds, data, report, name, media=media)
        out[name] = [m for m in (prompt_messages(r) for r in records) if m]
        report.drop(name, len(records) - len(out[name]), "the record has an empty prompt to roll out from")
    return out


def step_prompt_indices(
    num_prompts: int, prompts_per_step: int, step: int, seed: int, world: int, rank: int
) -> list[int]:
    """This process's prompts of a step: a seeded permutation per pass over the prompts, cut in equal shares."""
    if num_prompts < prompts_per_step:
        raise ValueError(
            f"{num_prompts} training prompts are fewer than rollout.prompts_per_step={prompts_per_step}"
        )
    indices = global_batch_indices(num_prompts, prompts_per_step, step, seed)
    share = prompts_per_step // world
    return indices[rank * share : (rank + 1) * share]


SEED_MODULUS = 2**61 - 1
"""Derived seeds are reduced below this so ``torch.manual_seed`` accepts them."""


def sampling_seed(seed: int, step: int, rank: int) -> int:
    """Seed of one process's sampling at one step: resuming at step k samples what the first run did."""
    return ((seed * 1_000_003 + step) * 1_009 + rank) % SEED_MODULUS
