"""Eval of an online policy: greedy answers to held-out prompts, scored by the run's scorers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from alignkit.generate.base import Generator, SamplingConfig
from alignkit.score.base import Scorer, as_response
from alignkit.train.cross_process import reduce_sum


def evaluate_prompts(
    accelerator: Any,
    generator: Generator,
    tokenizer: Any,
    prompts: Sequence[Sequence[Any]],
    scorers: Mapping[str, Scorer],
    max_new_tokens: int,
) -> dict[str, float]:
    """Mean scores of greedy answers to held-out prompts (sharded over processes): ``eval/<name>``."""
    if not prompts:
        return {}
    mine = list(prompts)[accelerator.process_index :: accelerator.num_processes]
    completions = generator.generate(mine, SamplingConfig(max_new_tokens=max_new_tokens, temperature=0.0))
    texts = [as_response(c.text) for c in completions]
    names = sorted(scorers)
    sums = [float(scorers[n].score(mine, texts).sum()) if mine else 0.0 for n in names]
    lengths = float(sum(len(c.token_ids or ()) for c in completions))
    totals = reduce_sum(accelerator, [*sums, lengths, float(len(mine))]).tolist()
    count = max(totals[-1], 1.0)
    out = {f"eval/{n}": t / count for n, t in zip(names, totals, strict=False)}
    out["eval/response_length"] = totals[-2] / count
    return out
