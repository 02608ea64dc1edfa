"""The Generator protocol: conversations in, sampled assistant responses out.

One small interface for every backend (a local Hugging Face model, a vLLM engine, an OpenAI-compatible
HTTP endpoint, and later chains such as a guard or an Aligner), so training, evaluation and serving take
any of them. A prompt is a conversation (``Message`` records or ``{"role", "content"}`` dicts) ending
where the assistant should speak.

Ordering contract: with ``n`` samples per prompt the completions come back *prompt-major*: the ``n``
samples of prompt 0, then those of prompt 1, ... (the order ``repeat_interleave`` gives), which is the
grouping GRPO and RLOO assume.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from alignkit.config import check
from alignkit.data.reasoning import split_reasoning

FinishReason = Literal["stop", "length"]


@dataclass
class SamplingConfig:
    max_new_tokens: int = 64
    """Longest response, in tokens; a response cut here has finish_reason 'length'."""
    temperature: float = 1.0
    """Softmax temperature; 0 means greedy decoding."""
    top_p: float = 1.0
    """Nucleus sampling: sample from the smallest token set with this much probability (1.0: off)."""
    top_k: int = 0
    """Sample from the k most likely tokens only (0: off)."""
    n: int = 1
    """Samples per prompt, returned prompt-major (all samples of prompt 0 first)."""

    def validate(self, prefix: str) -> None:
        check(self.max_new_tokens > 0, f"{prefix}max_new_tokens", self.max_new_tokens, "a positive integer")
        check(self.temperature >= 0, f"{prefix}temperature", self.temperature, "a number >= 0 (0: greedy)")
        check(0 < self.top_p <= 1, f"{prefix}top_p", self.top_p, "a number in (0, 1]")
        check(self.top_k >= 0, f"{prefix}top_k", self.top_k, "an integer >= 0 (0: off)")
        check(self.n > 0, f"{prefix}n", self.n, "a positive integer")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True)
class Completion:
    """One sampled response to one prompt."""

    prompt_index: int
    """Index of its prompt in the list given to ``generate``."""
    text: str
    """The response text, without the tokens that close the turn."""
    token_ids: tuple[int, ...] | None = None
    """The sampled tokens, including the end-of-turn token when the response stopped by itself.
    None when the backend does not expose tokens (an HTTP endpoint without a local tokenizer)."""
    logprobs: tuple[float, ...] | None = None
    """log pi(token | prefix) of each sampled token under the model, before temperature and top-p
    reshape the distribution (so it is comparable with a training forward). None unless asked for."""
    finish_reason: FinishReason = "stop"
    """'stop': the model ended its turn; 'length': cut at max_new_tokens."""
    readouts: tuple[tuple[float, ...], ...] | None = None
    """Per sampled token, a caller's readout of the hidden state that chose it (``HFGenerator(readout=)``:
    PPO's shared value heads, read off the sampling loop). None otherwise."""

    @property
    def reasoning(self) -> str:
        """The ``<think>`` block's text of a reasoning model's response ('' when it has none)."""
        return split_reasoning(self.text)[0]

    @property
    def answer(self) -> str:
        """The response after its reasoning: what the user reads and a correctness check judges."""
        return split_reasoning(self.text)[1]


@runtime_checkable
class Generator(Protocol):
    """Anything that answers conversations. Backends: ``HFGenerator``, ``VLLMGenerator``, ``OpenAIGenerator``."""

    def generate(
        self,
        prompts: Sequence[Sequence[Any]],
        sampling: SamplingConfig,
        *,
        logprobs: bool = False,
        seed: int | None = None,
    ) -> list[Completion]:
        """``len(prompts) * sampling.n`` completions, prompt-major. ``seed`` makes sampling repeatable."""
        ...


def missing_backend(package: str, extra: str, purpose: str) -> ImportError:
    """The error an optional backend raises when its package is absent: what to install, and why."""
    return ImportError(
        f"{purpose} needs the '{package}' package, which is not installed. "
        f"Install it with `pip install 'alignkit[{extra}]'` (or `pip install {package}`)."
    )
