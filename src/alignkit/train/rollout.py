"""A step's samples: how they are drawn (``rollout.*``), laid out as training rows, scored, and re-read
by per-token forwards.

Why the rollout is re-read by a training forward: the generator's sampling runs in eval mode with a KV
cache; the log-probs PPO's ratio needs must come from the same computation as the update's forward,
or the ratio is not exactly 1 on the first mini-batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from alignkit.config import check
from alignkit.data.collate import ROW_TOKENS, collate_shared_prefix, pad_right
from alignkit.data.processor import collate_media, text_tokenizer
from alignkit.data.render import IGNORE_INDEX, render_prompt_inputs
from alignkit.generate.base import Generator, SamplingConfig
from alignkit.losses.logprobs import label_mask
from alignkit.models.score_model import closing_token_id
from alignkit.score.base import Scorer, as_response


@dataclass
class RolloutConfig:
    prompts_per_step: int = 32
    """Prompts sampled per step, across all processes (each process takes an equal share)."""
    samples_per_prompt: int = 1
    """Responses sampled per prompt (the group size G of GRPO and RLOO; 1 is usual for PPO)."""
    max_new_tokens: int = 32
    """Longest response, in tokens."""
    temperature: float = 1.0
    """Sampling temperature (> 0). The trainers score log-probs (policy, old, reference) at the same
    temperature, so the ratio and the gradient are those of the distribution that sampled (as TRL does);
    top_p / top_k (off by default) reshape sampling further without that correction."""
    top_p: float = 1.0
    """Nucleus sampling cut-off (1.0: off)."""
    top_k: int = 0
    """Top-k sampling cut-off (0: off)."""
    generation_batch_size: int = 64
    """Rows per generate call on each process (memory knob only; results do not depend on it)."""
    missing_eos_penalty: float | None = None
    """Subtracted from the reward of responses cut at max_new_tokens (null: no penalty)."""
    backend: Literal["hf", "vllm"] = "hf"
    """Who samples: 'hf' (the live policy through transformers) or 'vllm' (a vLLM engine on the GPU,
    the policy's weights pushed into it before every rollout; needs `pip install 'alignkit[vllm]'`)."""
    vllm_gpu_memory_utilization: float = 0.3
    """Fraction of GPU memory the vLLM engine may take (the rest is the trainer's)."""

    def validate(self, prefix: str) -> None:
        for name in ("prompts_per_step", "samples_per_prompt", "generation_batch_size"):
            check(getattr(self, name) > 0, f"{prefix}{name}", getattr(self, name), "a positive integer")
        self.sampling().validate(prefix)
        check(
            self.temperature > 0,
            f"{prefix}temperature",
            self.temperature,
            "a number > 0 (RL learns from sampled responses; greedy rollouts give identical samples)",
        )
        check(
            0 < self.vllm_gpu_memory_utilization < 1,
            f"{prefix}vllm_gpu_memory_utilization",
            self.vllm_gpu_memory_utilization,
            "a number in (0, 1)",
        )

    def sampling(self) -> SamplingConfig:
        return SamplingConfig(
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            n=self.samples_per_prompt,
        )

    @property
    def samples_per_step(self) -> int:
        return self.prompts_per_step * self.samples_per_prompt


@dataclass
class Rollout:
    """The samples of one step on this process, as right-padded training rows (prompt + response).

    Right padding puts every row's tokens at positions 0..len-1, the positions sampling used, so a
    training forward reproduces the sampling distribution exactly.
    """

    prompts: list[list[Any]]
    """The prompt of each sample (repeated for the samples of one prompt)."""
    texts: list[str]
    """Each response's text (without the end-of-turn token)."""
    input_ids: torch.Tensor
    """(B, T) prompt + response ids, right-padded."""
    attention_mask: torch.Tensor
    """(B, T)."""
    labels: torch.Tensor
    """(B, T): the response tokens (what the policy chose), -100 on prompt and padding."""
    finished: torch.Tensor
    """(B,) bool: the response ended its turn (not cut at max_new_tokens)."""
    token_logps: torch.Tensor | None = None
    """(B, T) log-probability of each response token under the sampling model at temperature 1, read off
    the sampling loop (0 off the response); None unless asked for and every completion carried them."""
    token_readouts: torch.Tensor | None = None
    """(B, T, k) the generator's readout (PPO's shared value heads) of the hidden state that chose each
    response token, read off the sampling loop (0 off the response); None unless every completion has one."""
    media: list[dict[str, torch.Tensor]] | None = None
    """Each sample's media tensors (its prompt's ``pixel_values``..., shared by the samples of one
    prompt), which every forward over its row needs (:meth:`rows`); None for text prompts."""
    prompt_index: torch.Tensor | None = None
    """(B,) which of the step's prompts each sample answers: samples of one prompt can share its
    computation (:meth:`rows` with ``shared_prompt``)."""

    @property
    def mask(self) -> torch.Tensor:
        """(B, T) bool: positions of response tokens (the actions)."""
        return label_mask(self.labels)

    def __len__(self) -> int:
        return len(self.texts)

    def rows(
        self,
        index: Sequence[int] | torch.Tensor,
        device: Any,
        shared_prompt: bool = False,
        per_token: Mapping[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """The tensors of some samples, on ``device``, trimmed to their longest row, with their prompts'
        media tensors in row order (a GRPO group's picture once per sample), and the step's ``(B, T, ...)``
        ``per_token`` tensors (advantages, log-probs...) of the same samples cut to the same width.

        ``shared_prompt`` (text rollouts; the trainer checked ``models.forward.shared_prompt_is_exact``):
        the samples of one prompt as one block, prompt once + their responses (:func:`shared_prompt_rows`),
        with ``labels`` still ``(n, T)`` in padded row order, where per-token outputs land."""
        index = torch.as_tensor(index, dtype=torch.long)
        attention = self.attention_mask[index]
        lengths = attention.sum(dim=1)
        width = int(lengths.max())
        extra = {k: v[index, :width].to(device) for k, v in (per_token or {}).items()}
        if shared_prompt and self.media is None and self.prompt_index is not None:
            labels = self.labels[index, :width]
            layout = shared_prompt_rows(
                self.input_ids[index, :width], labels, lengths, self.prompt_index[index]
            )
            return {**{k: v.to(device) for k, v in {**layout, "labels": labels}.items()}, **extra}
        rows = {
            "input_ids": self.input_ids[index, :width].to(device),
            "attention_mask": attention[:, :width].to(device),
            "labels": self.labels[index, :width].to(device),
        }
        if self.media is not None:
            media = collate_media([self.media[i] for i in index.tolist()])
            rows.update({k: v.to(device) for k, v in media.items()})
        rows.update(extra)
        return rows


def sampling_forward_is_exact(rollout: RolloutConfig, actor: torch.nn.Module, mixed_precision: str) -> bool:
    """Whether the sampling loop computes what a training forward of the policy does, so what it reads
    off (log-probs, a shared critic's values) can replace re-reading the rollout.

    It does when the live policy samples (hf backend: the same weights, the same code) in float32
    without autocast: then the numbers equal a training forward's up to KV-cache rounding (~1e-6). A
    vLLM engine or half precision computes visibly different numbers, so there the policy re-reads.
    """
    float32 = all(p.dtype == torch.float32 for p in actor.parameters())
    return rollout.backend == "hf" and float32 and mixed_precision == "no"


def rollout_logps_are_exact(rollout: RolloutConfig, actor: torch.nn.Module, mixed_precision: str) -> bool:
    """Whether the sampling loop's log-probs are PPO's old log-probs, so the old-policy forward can go:
    :func:`sampling_forward_is_exact` at temperature 1 (they are read before temperature; the loss scores
    at the sampling temperature)."""
    return rollout.temperature == 1.0 and sampling_forward_is_exact(rollout, actor, mixed_precision)


def build_rollout(
    generator: Generator,
    renderer: Any,
    prompts: Sequence[Sequence[Any]],
    sampling: SamplingConfig,
    seed: int,
    logprobs: bool = False,
) -> Rollout:
    """Sample ``sampling.n`` responses per prompt and lay them out as training rows (with the sampled
    tokens' log-probs when ``logprobs`` and the generator returns them for every response).

    ``renderer``: the run's tokenizer, or a vision-language model's processor, whose prompt rendering
    (image tokens expanded) and media tensors the rows then carry (``Rollout.media``).
    """
    completions = generator.generate(prompts, sampling, seed=seed, logprobs=logprobs)
    tokenizer = text_tokenizer(renderer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rendered = [render_prompt_inputs(renderer, p) for p in prompts]
    prompt_ids = [ids for ids, _ in rendered]
    prompt_media = [media for _, media in rendered]
    closing = closing_token_id(tokenizer)
    sequences, labels, sample_prompts, logps, reads = [], [], [], [], []
    for completion in completions:
        ids = prompt_ids[completion.prompt_index]
        if completion.token_ids is None:
            raise ValueError(
                "the generator returned text without token ids; online RL needs the sampled tokens "
                "(give OpenAIGenerator a tokenizer, or sample with rollout.backend=hf|vllm)"
            )
        response = list(completion.token_ids)
        if not response:
            response = [closing]  # an empty answer still ends its turn, with the template's own token
        sequences.append(ids + response)
        labels.append([IGNORE_INDEX] * len(ids) + response)
        sample_prompts.append(list(prompts[completion.prompt_index]))
        given = completion.logprobs
        exact = given is not None and len(given) == len(response)
        logps.append([0.0] * len(ids) + list(given) if exact else None)
        read = completion.readouts
        reads.append((len(ids), read) if read is not None and len(read) == len(response) else None)
    input_ids = pad_right(sequences, pad_id)
    token_logps = None
    if logprobs and all(row is not None for row in logps):
        token_logps = torch.zeros(input_ids.shape, dtype=torch.float32)
        for i, row in enumerate(logps):
            token_logps[i, : len(row)] = torch.tensor(row, dtype=torch.float32)
    token_readouts = None
    if reads and all(row is not None for row in reads):
        k = len(reads[0][1][0])
        token_readouts = torch.zeros((*input_ids.shape, k), dtype=torch.float32)
        for i, (start, read) in enumerate(reads):
            token_readouts[i, start : start + len(read)] = torch.tensor(read, dtype=torch.float32)
    return Rollout(
        prompts=sample_prompts,
        texts=[c.text for c in completions],
        input_ids=input_ids,
        attention_mask=pad_right([[1] * len(s) for s in sequences], 0),
        labels=pad_right(labels, IGNORE_INDEX),
        finished=torch.tensor([c.finish_reason == "stop" for c in completions]),
        token_logps=token_logps,
        token_readouts=token_readouts,
        media=[prompt_media[c.prompt_index] for c in completions] if any(prompt_media) else None,
        prompt_index=torch.tensor([c.prompt_index for c in completions], dtype=torch.long),
    )


def shared_prompt_rows(
    input_ids: torch.Tensor, labels: torch.Tensor, lengths: torch.Tensor, prompt_index: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Right-padded samples ``(n, T)`` laid out with each prompt once: one block per prompt, its prompt
    then the responses of its samples (``data/collate.collate_shared_prefix``), and where each labelled
    token is predicted (``score_index``), which it is (``score_target``) and its flat position in the
    padded ``(n, T)`` rows (``score_place``). A GRPO group of G samples of a p-token prompt computes
    ``p + sum of responses`` tokens instead of ``G x (p + longest response)``. A block is closed at
    ``collate.ROW_TOKENS`` (or one sample, when that is longer) and the prompt starts the next one again,
    so attention, quadratic in a row, never spans more than packed SFT rows do (long answers: one sample a
    block, packed without padding). Padding ids are 0 (seen by padding only, never scored)."""
    open_block: dict[int, int] = {}  # prompt -> the block its next sample may join
    blocks: list[tuple[list[int], list[list[int]]]] = []
    members: list[list[tuple[int, int]]] = []  # per block: (sample, prompt length)
    used: list[int] = []  # tokens per block
    id_rows, label_rows, ends = input_ids.tolist(), labels.tolist(), lengths.tolist()
    for j, (g, n) in enumerate(zip(prompt_index.tolist(), ends, strict=True)):
        row = label_rows[j]
        p = next((t for t in range(n) if row[t] != IGNORE_INDEX), n)  # the prompt: before the first label
        b = open_block.get(g)
        if b is not None and blocks[b][0] != id_rows[j][:p]:
            raise ValueError(
                f"rollout samples of prompt {g} start with different prompt tokens; each sample's prompt_index "
                "must name the prompt its row starts with"
            )
        if b is None or used[b] + n - p > ROW_TOKENS:
            b = open_block[g] = len(blocks)
            blocks.append((id_rows[j][:p], []))
            members.append([])
            used.append(p)
        blocks[b][1].append(id_rows[j][p:n])
        members[b].append((j, p))
        used[b] += n - p
    layout, where = collate_shared_prefix(blocks, pad_token_id=0)
    width = labels.shape[1]
    index, target, place = [], [], []
    for b, block in enumerate(members):
        for k, (j, p) in enumerate(block):
            row = label_rows[j]
            for t in range(max(p, 1), ends[j]):
                if row[t] != IGNORE_INDEX:
                    index.append(where[b][k][t - 1])
                    target.append(row[t])
                    place.append(j * width + t)
    as_long = {"dtype": torch.long}
    return {
        **layout,
        "score_index": torch.tensor(index, **as_long),
        "score_target": torch.tensor(target, **as_long),
        "score_place": torch.tensor(place, **as_long),
    }


def score_rollout(scorer: Scorer, rollout: Rollout, missing_eos_penalty: float | None = None) -> torch.Tensor:
    """(B,) scores of the rollout's responses; ``missing_eos_penalty`` is subtracted from cut ones."""
    scores = scorer.score(rollout.prompts, [as_response(t) for t in rollout.texts]).float()
    if missing_eos_penalty is not None:
        scores = scores - missing_eos_penalty * (~rollout.finished).float()
    return scores


def micro_batches(indices: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(indices), size):
        yield list(indices[start : start + size])


@torch.no_grad()
def per_token_forward(
    fn: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    rollout: Rollout,
    micro: int,
    device: Any,
    shared_prompt: bool = False,
) -> torch.Tensor:
    """Outputs of ``fn`` over the whole rollout, run ``micro`` rows at a time, gathered on the CPU.

    ``fn`` maps a batch to ``(b, t)`` or ``(b, t, k)``; the result is ``(B, T)`` or ``(B, T, k)``.
    ``shared_prompt``: the batches lay each prompt out once (:meth:`Rollout.rows`).
    """
    out: torch.Tensor | None = None
    for chunk in micro_batches(range(len(rollout)), micro):
        values = fn(rollout.rows(chunk, device, shared_prompt)).float().cpu()
        if out is None:
            out = torch.zeros((len(rollout), rollout.input_ids.shape[1], *values.shape[2:]))
        out[chunk, : values.shape[1]] = values
    assert out is not None
    return out
