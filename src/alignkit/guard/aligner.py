"""Aligner: a trained corrector rewrites each upstream answer (arXiv 2402.02416).

The upstream is any Generator (a local model, vLLM, an HTTP endpoint); only its text is used, never its
weights or log-probabilities, which is the point of Aligner: one small corrector, trained once
(``alignkit train aligner``), plugs onto any model. The corrector is itself a Generator over a causal LM
trained with the same ``prompt`` (``alignkit.data.templates.aligner.ALIGNER_PROMPTS``): a checkpoint only
works with the prompt it was trained on. ``rounds > 1`` feeds a correction back as the next answer.

The corrector sees the question (the conversation's last user turn) and the answer, as in the paper's
single-turn data; the rest of a multi-turn conversation is not shown to it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from alignkit.data.templates.aligner import aligner_prompt, resolve_prompt
from alignkit.generate.base import Completion, Generator, SamplingConfig
from alignkit.score.base import message_text


@dataclass
class AlignerTrace:
    """One answer's path: what the upstream said and each round's correction."""

    prompt_index: int
    upstream: Completion
    corrections: list[str] = field(default_factory=list)
    completion: Completion | None = None
    """What the chain returned (the last correction)."""


class AlignerGenerator:
    """``upstream`` answers, ``corrector`` rewrites: ``μ(y_c | x, y_o)`` applied to every sample.

    ``corrector_sampling`` (default: greedy, as long as the caller allows the answer to be) decodes the
    corrections; the caller's sampling drives the upstream only.
    """

    def __init__(
        self,
        upstream: Generator,
        corrector: Generator,
        *,
        prompt: str = "aligner",
        corrector_sampling: SamplingConfig | None = None,
        rounds: int = 1,
    ) -> None:
        try:
            resolve_prompt(prompt, ("question", "answer"))
        except ValueError as error:
            raise ValueError(f"aligner prompt: {error}") from None
        if rounds < 1:
            raise ValueError(f"aligner rounds={rounds}: expected an integer >= 1")
        if corrector_sampling is not None and corrector_sampling.n != 1:
            raise ValueError(
                f"aligner corrector_sampling.n={corrector_sampling.n}: expected 1 (one correction per answer)"
            )
        self.upstream = upstream
        self.corrector = corrector
        self.prompt = prompt
        self.corrector_sampling = corrector_sampling
        self.rounds = rounds

    def generate(
        self,
        prompts: Sequence[Sequence[Any]],
        sampling: SamplingConfig,
        *,
        logprobs: bool = False,
        seed: int | None = None,
    ) -> list[Completion]:
        traces = self.generate_traced(prompts, sampling, logprobs=logprobs, seed=seed)
        return [t.completion for t in traces]  # type: ignore[misc]

    def generate_traced(
        self,
        prompts: Sequence[Sequence[Any]],
        sampling: SamplingConfig,
        *,
        logprobs: bool = False,
        seed: int | None = None,
    ) -> list[AlignerTrace]:
        """One ``AlignerTrace`` per sample, prompt-major like ``generate``."""
        if not prompts:
            return []
        answers = self.upstream.generate(prompts, sampling, seed=seed)
        traces = [AlignerTrace(a.prompt_index, a) for a in answers]
        questions = [message_text(prompts[t.prompt_index], "user") for t in traces]
        texts = [a.text for a in answers]
        correct = self.corrector_sampling or SamplingConfig(
            max_new_tokens=sampling.max_new_tokens, temperature=0.0
        )
        for r in range(self.rounds):
            requests = [
                [{"role": "user", "content": aligner_prompt(q, a, self.prompt)}]
                for q, a in zip(questions, texts, strict=True)
            ]
            corrected = self.corrector.generate(
                requests, correct, logprobs=logprobs, seed=None if seed is None else seed + r
            )
            texts = [c.text for c in corrected]
            for trace, completion in zip(traces, corrected, strict=True):
                trace.corrections.append(completion.text)
                trace.completion = dataclasses.replace(completion, prompt_index=trace.prompt_index)
        return traces
