"""Stream Aligner: sentence-by-sentence correction while the upstream writes (arXiv 2501.05336).

Per round (at most ``max_rounds``, 16 in the paper), for every answer still open:

1. the upstream continues its assistant turn from the accepted prefix (``PrefillGenerator.continue_from``);
2. only the first sentence of the continuation is kept (``alignkit.data.sentences``);
3. the corrector rewrites it given (question, prefix, sentence) with the ``stream-aligner`` prompt;
4. the rewrite is appended to the prefix.

An empty first answer is corrected too (as Aligner corrects an empty answer); after that, an answer is
finished when the upstream writes nothing more, when the upstream's continuation ended right
after that sentence (its turn closed: nothing left to correct), when the corrector answers ``STREAM_END``
(the prefix is already complete: what follows is dropped), or after ``max_rounds`` or ``max_chars``.
Correcting early sentences steers what the upstream writes next, which whole-answer Aligner cannot; the
price is a corrector call per sentence, reported as latency per answer next to Aligner's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from alignkit.data.sentences import first_sentence
from alignkit.data.templates.aligner import STREAM_END, aligner_prompt, resolve_prompt
from alignkit.generate.base import Completion, Generator, SamplingConfig
from alignkit.guard.prefill import PrefillGenerator
from alignkit.score.base import message_text


@dataclass
class StreamStep:
    """One round of one answer: the upstream's sentence and what the corrector made of it."""

    sentence: str
    correction: str


@dataclass
class StreamTrace:
    prompt_index: int
    steps: list[StreamStep] = field(default_factory=list)
    stop: str = ""
    """Why the answer ended: ``upstream_end``, ``corrector_end``, ``max_rounds`` or ``max_chars``."""
    completion: Completion | None = None


class StreamAlignerGenerator:
    """``upstream`` (able to continue a pre-filled turn) corrected sentence by sentence by ``corrector``."""

    def __init__(
        self,
        upstream: PrefillGenerator,
        corrector: Generator,
        *,
        prompt: str = "stream-aligner",
        end_marker: str = STREAM_END,
        max_rounds: int = 16,
        max_chars: int = 4000,
        corrector_sampling: SamplingConfig | None = None,
    ) -> None:
        if not isinstance(upstream, PrefillGenerator):
            raise ValueError(
                f"Stream Aligner's upstream must continue a pre-filled assistant turn (a PrefillGenerator, "
                f"e.g. alignkit.guard.prefill.HFPrefillGenerator); got {type(upstream).__name__}"
            )
        try:
            resolve_prompt(prompt, ("question", "prefix", "last"))
        except ValueError as error:
            raise ValueError(f"stream aligner prompt: {error}") from None
        if max_rounds < 1 or max_chars < 1:
            raise ValueError(f"stream aligner max_rounds={max_rounds}, max_chars={max_chars}: expected >= 1")
        self.upstream = upstream
        self.corrector = corrector
        self.prompt = prompt
        self.end_marker = end_marker
        self.max_rounds = max_rounds
        self.max_chars = max_chars
        self.corrector_sampling = corrector_sampling

    def generate(
        self,
        prompts: Sequence[Sequence[Any]],
        sampling: SamplingConfig,
        *,
        logprobs: bool = False,
        seed: int | None = None,
    ) -> list[Completion]:
        """``logprobs`` are not available: the answer is stitched from two models' sentences."""
        return [t.completion for t in self.generate_traced(prompts, sampling, seed=seed)]  # type: ignore[misc]

    def generate_traced(
        self, prompts: Sequence[Sequence[Any]], sampling: SamplingConfig, *, seed: int | None = None
    ) -> list[StreamTrace]:
        """One ``StreamTrace`` per sample (``sampling.n`` per prompt, prompt-major)."""
        rows = [i for i in range(len(prompts)) for _ in range(sampling.n)]
        traces = [StreamTrace(i) for i in rows]
        prefixes = [""] * len(rows)
        questions = [message_text(prompts[i], "user") for i in rows]
        once = SamplingConfig(
            max_new_tokens=sampling.max_new_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
        )
        correct = self.corrector_sampling or SamplingConfig(
            max_new_tokens=sampling.max_new_tokens, temperature=0.0
        )
        open_rows = list(range(len(rows)))
        for r in range(self.max_rounds):
            if not open_rows:
                break
            round_seed = None if seed is None else seed + 1000 * r
            continued = self.upstream.continue_from(
                [prompts[rows[k]] for k in open_rows], [prefixes[k] for k in open_rows], once, seed=round_seed
            )
            asked, still_open = [], []
            for k, completion in zip(open_rows, continued, strict=True):
                sentence, rest = first_sentence(completion.text)
                if not sentence and prefixes[k]:
                    traces[k].stop = "upstream_end"
                    continue
                ended = completion.finish_reason == "stop" and not rest
                asked.append((k, sentence, ended))
            requests = [
                [{"role": "user", "content": aligner_prompt(questions[k], s, self.prompt, prefixes[k])}]
                for k, s, _ in asked
            ]
            corrected = self.corrector.generate(requests, correct, seed=round_seed) if requests else []
            for (k, sentence, ended), completion in zip(asked, corrected, strict=True):
                text = completion.text.strip()
                traces[k].steps.append(StreamStep(sentence, text))
                if text == self.end_marker or not text:
                    traces[k].stop = "corrector_end"
                    continue
                prefixes[k] = f"{prefixes[k]} {text}".strip()
                if ended:
                    traces[k].stop = "upstream_end"
                elif len(prefixes[k]) >= self.max_chars:
                    traces[k].stop = "max_chars"
                else:
                    still_open.append(k)
            open_rows = still_open
        for k in open_rows:
            traces[k].stop = "max_rounds"
        for trace, prefix in zip(traces, prefixes, strict=True):
            trace.completion = Completion(prompt_index=trace.prompt_index, text=prefix, finish_reason="stop")
        return traces
