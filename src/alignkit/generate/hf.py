"""A local Hugging Face causal LM as a Generator: batched sampling with the model's KV cache.

Prompts are rendered with the tokenizer's chat template (``render_prompt``, the same layout training
uses) and left-padded, so every row's next token sits at the end. A response is the generated tokens up
to and including the first stop token (the one that closes the assistant turn); everything after is
padding. Log-probabilities, when asked for, are read off the sampling loop's own logits (the sampled
token's log-softmax, one ``(B, T)`` tensor, never ``(B, T, V)`` logits): the same numbers a training
forward over prompt + response computes, up to the float rounding of a KV cache (~1e-6 in float32;
tested), at no extra forward. PPO takes them as its old log-probs. The ``model.generate`` fallback gets
them from one extra forward pass instead.

Sampling is a short loop over the model's forward (not ``model.generate``), because online RL calls it
every step and its overheads add up:

- the samples of one prompt share one prefill (the prompt's cache is computed once and copied to its
  ``n`` rows), which for GRPO's groups of ``n`` cuts prompt processing ``n``-fold;
- rows that have stopped leave the batch (the cache is compacted once a quarter of the rows are done),
  so the long tail of a few long answers runs on a few rows, not the whole batch;
- a token is drawn by inverse-CDF sampling with one uniform per row and position, drawn up front from
  the seeded RNG: one random number per row instead of the ``V`` that ``torch.multinomial`` draws, and a
  row's sample does not depend on which other rows share its batch (``batch_size`` is a memory knob);
- one host sync per token (how many rows are done), and the tokens come back to the host once.

The distribution is the policy's own softmax reshaped only by ``SamplingConfig`` (temperature, then
top-k, then top-p, as ``transformers`` orders them); nothing from the model's ``generation_config``
(e.g. a repetition penalty) is added, so HF sampling matches the vLLM backend and what PPO's ratio assumes.

The model is used as it is (the trainer's live policy, not a copy), so PPO and GRPO sample from the
current weights with no synchronisation step.

A vision-language model comes with its processor (``processor=``): prompts with pictures are rendered
through it (``render_prompt_inputs``: image tokens expanded) and the prefill is given the prompts'
``pixel_values``; the decoding steps need only the cache. Text prompts take the text path unchanged.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch

from alignkit.data.collate import pad_right
from alignkit.data.processor import collate_media
from alignkit.data.render import render_prompt_inputs
from alignkit.generate.base import Completion, SamplingConfig
from alignkit.generate.sampling import cut_at_stop, filter_logits, pad_left, sample_tokens, stop_token_ids
from alignkit.models.forward import labelled_token_logps


class CacheUnsupportedError(TypeError):
    """The model's forward hands back no KV cache whose rows can be selected (``reorder_cache``)."""


COMPACT_FRACTION = 0.25
"""Drop finished rows from the batch (and its cache) once at least this fraction of the rows is done."""


def forward_parameters(model: Any) -> set[str]:
    """Keyword names the model's forward takes (a PEFT wrapper passes everything on to its base model)."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return set(inspect.signature(base.forward).parameters)


class Sampled(NamedTuple):
    """What the KV-cache loop returns for a batch of rows (padded to ``max_new_tokens``)."""

    tokens: list[list[int]]
    logps: list[list[float]]
    readouts: list[list[list[float]]] | None


class HFGenerator:
    """Sample from a ``transformers`` causal LM (its current weights) in batches of ``batch_size`` rows."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        batch_size: int = 64,
        processor: Any = None,
        readout: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.model = model
        self.readout = readout
        """Maps the ``(B, H)`` hidden states the output head reads to ``(B, k)`` floats kept per sampled
        token (``Completion.readouts``); read in the KV-cache loop only."""
        self.tokenizer = tokenizer
        self.renderer = processor if processor is not None else tokenizer
        """What prompts are rendered with: the processor of a vision-language model, else the tokenizer."""
        self.batch_size = batch_size
        self.stops = stop_token_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stops[0]
        params = forward_parameters(model)
        # transformers 5 names the KV cache argument ``cache``; 4.x calls it ``past_key_values``
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self._fast = True  # the KV-cache loop; falls back to model.generate for caches it cannot drive
        self._keep_arg = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None)

    @classmethod
    def from_pretrained(
        cls, path: str, *, dtype: str = "float32", device: str | None = None, batch_size: int = 64
    ) -> HFGenerator:
        from alignkit.models.loading import load_causal_lm, load_processor, load_tokenizer

        model = load_causal_lm(path, dtype=dtype)
        model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        tokenizer = load_tokenizer(path)
        return cls(model, tokenizer, batch_size=batch_size, processor=load_processor(path, tokenizer))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[Sequence[Any]],
        sampling: SamplingConfig,
        *,
        logprobs: bool = False,
        seed: int | None = None,
    ) -> list[Completion]:
        """``len(prompts) * sampling.n`` completions, prompt-major; ``seed`` leaves the global RNG untouched."""
        rendered = [render_prompt_inputs(self.renderer, p) for p in prompts]
        prompt_ids = [ids for ids, _ in rendered]
        media = [m for _, m in rendered] if any(m for _, m in rendered) else None  # pictures, by prompt
        rows = [(i, ids) for i, ids in enumerate(prompt_ids) for _ in range(sampling.n)]
        was_training = self.model.training
        self.model.eval()
        device = self.device
        devices = [device] if device.type == "cuda" else []
        completions: list[Completion] = []
        try:
            with torch.random.fork_rng(devices=devices, enabled=seed is not None):
                if seed is not None:
                    torch.manual_seed(seed)
                # every random number of the call, up front: row r's token t uses uniforms[r, t]
                uniforms = (
                    None
                    if sampling.greedy
                    else torch.rand(len(rows), sampling.max_new_tokens, dtype=torch.float64, device=device)
                )
                for start in range(0, len(rows), self.batch_size):
                    stop = start + self.batch_size
                    completions += self._generate_batch(
                        rows[start:stop],
                        sampling,
                        logprobs,
                        None if uniforms is None else uniforms[start:stop],
                        media,
                    )
        finally:
            self.model.train(was_training)
        return completions

    def _generate_batch(
        self,
        rows: Sequence[tuple[int, list[int]]],
        sampling: SamplingConfig,
        logprobs: bool,
        uniforms: torch.Tensor | None,
        media: Sequence[dict[str, torch.Tensor]] | None = None,
    ) -> list[Completion]:
        sampled: Sampled | None = None
        try:
            sampled = self._sample(rows, sampling, uniforms, media) if self._fast else None
        except CacheUnsupportedError as error:
            warnings.warn(f"{error}; sampling with model.generate instead (slower)", stacklevel=3)
            self._fast = False
        stops = set(self.stops)
        readouts: list[tuple[tuple[float, ...], ...] | None] = [None] * len(rows)
        if sampled is not None:
            new_tokens, loop_logps, loop_readouts = sampled
            responses = [cut_at_stop(tokens, stops) for tokens in new_tokens]
            token_logps: list[tuple[float, ...] | None] = [
                tuple(lps[: len(tokens)]) if logprobs else None
                for lps, (tokens, _) in zip(loop_logps, responses, strict=True)
            ]
            if loop_readouts is not None:
                readouts = [
                    tuple(tuple(r) for r in read[: len(tokens)])
                    for read, (tokens, _) in zip(loop_readouts, responses, strict=True)
                ]
        else:
            new_tokens = self._sample_with_generate(rows, sampling, media)  # no readouts off generate
            responses = [cut_at_stop(tokens, stops) for tokens in new_tokens]
            token_logps = (
                list(self._logprobs(rows, [r for r, _ in responses], media))
                if logprobs
                else [None] * len(rows)
            )
        return [
            Completion(
                prompt_index=index,
                text=self.tokenizer.decode(
                    tokens[:-1] if stopped else tokens, skip_special_tokens=True
                ).strip(),
                token_ids=tuple(tokens),
                logprobs=lps,
                finish_reason="stop" if stopped else "length",
                readouts=read,
            )
            for (index, _), (tokens, stopped), lps, read in zip(
                rows, responses, token_logps, readouts, strict=True
            )
        ]

    def _forward(self, cache: Any = None, **inputs: Any) -> tuple[torch.Tensor, Any]:
        """Last-position logits ``(B, V)`` in float32, and the KV cache after this call."""
        if cache is not None:
            inputs[self._cache_arg] = cache
        out = self.model(**inputs, use_cache=True)
        cache = getattr(out, "cache", None)
        if cache is None:
            cache = getattr(out, "past_key_values", None)
        if isinstance(cache, tuple):  # transformers 4.x models may hand back the legacy tuple form
            from transformers import DynamicCache

            cache = DynamicCache.from_legacy_cache(cache)
        if not hasattr(cache, "reorder_cache"):
            raise CacheUnsupportedError(
                f"{type(self.model).__name__} returned no KV cache that can select rows: {cache!r}"
            )
        return out.logits[:, -1, :].float(), cache

    def _sample(
        self,
        rows: Sequence[tuple[int, list[int]]],
        sampling: SamplingConfig,
        uniforms: torch.Tensor | None,
        media: Sequence[dict[str, torch.Tensor]] | None = None,
    ) -> Sampled:
        """``(B, max_new_tokens)`` sampled tokens per row (the response, then padding after its stop token),
        each token's log-probability under the model before temperature and top-k/top-p, and the readouts
        of the hidden states that chose them (when ``self.readout``). ``media``: each prompt's pictures
        (by prompt index), given to the prefill only."""
        if self.readout is None:
            return self._sample_loop(rows, sampling, uniforms, None, media)
        from alignkit.models.forward import output_head

        head = output_head(self.model)
        if head is None:
            raise CacheUnsupportedError(
                f"{type(self.model).__name__} has no output head to read hidden states at"
            )
        read: list[torch.Tensor] = []

        def capture(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
            read.append(self.readout(args[0][:, -1]))  # type: ignore[misc]  # the position whose logits are kept

        handle = head.register_forward_pre_hook(capture)
        try:
            return self._sample_loop(rows, sampling, uniforms, read, media)
        finally:
            handle.remove()

    def _sample_loop(
        self,
        rows: Sequence[tuple[int, list[int]]],
        sampling: SamplingConfig,
        uniforms: torch.Tensor | None,
        read: list[torch.Tensor] | None,
        media: Sequence[dict[str, torch.Tensor]] | None = None,
    ) -> Sampled:
        device = self.device
        # One prefill per distinct prompt; its cache and logits are then copied to the prompt's rows.
        distinct = list(dict.fromkeys(index for index, _ in rows))
        slot = {index: k for k, index in enumerate(distinct)}
        prompt_of = dict(rows)
        prompts = [prompt_of[index] for index in distinct]
        attention_mask = pad_left([[1] * len(ids) for ids in prompts], 0).to(device)
        positions = (attention_mask.cumsum(dim=1) - 1).masked_fill_(attention_mask == 0, 1)
        logits, cache = self._forward(
            input_ids=pad_left(prompts, self.pad_id).to(device),
            attention_mask=attention_mask,
            position_ids=positions,
            **({self._keep_arg: 1} if self._keep_arg else {}),
            **self._media_inputs(media, distinct),
        )
        position = positions[:, -1]
        values = read.pop() if read else None  # (B, k): the readout beside each row's logits
        if len(distinct) < len(rows):
            expand = torch.tensor([slot[index] for index, _ in rows], device=device)
            cache.reorder_cache(expand)
            logits, attention_mask, position = logits[expand], attention_mask[expand], position[expand]
            values = None if values is None else values[expand]

        steps = sampling.max_new_tokens
        generated = torch.full((len(rows), steps), self.pad_id, dtype=torch.long, device=device)
        generated_logps = torch.zeros((len(rows), steps), dtype=torch.float32, device=device)
        generated_reads = None if values is None else values.new_zeros(len(rows), steps, values.shape[-1])
        stop_ids = torch.tensor(self.stops, device=device)
        active = torch.arange(len(rows), device=device)  # the row of each entry of the live batch
        done = torch.zeros(len(rows), dtype=torch.bool, device=device)
        for t in range(steps):
            if uniforms is None:
                tokens = logits.argmax(dim=-1)
            else:
                tokens = sample_tokens(filter_logits(logits, sampling), uniforms[active, t])
            tokens = tokens.masked_fill(done, self.pad_id)
            generated[active, t] = tokens
            generated_logps[active, t] = logits.log_softmax(dim=-1).gather(1, tokens.unsqueeze(1)).squeeze(1)
            if generated_reads is not None:
                generated_reads[active, t] = values
            done = done | torch.isin(tokens, stop_ids)
            if t == steps - 1:
                break
            num_done = int(done.sum())  # the one host sync per token
            if num_done == len(active):
                break
            if num_done >= COMPACT_FRACTION * len(active):
                keep = (~done).nonzero().squeeze(1)
                cache.reorder_cache(keep)
                active, tokens, done = active[keep], tokens[keep], done[keep]
                values = None if values is None else values[keep]
                attention_mask, position = attention_mask[keep], position[keep]
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones(len(active), 1)], dim=1)
            position = position + 1
            logits, cache = self._forward(
                cache,
                input_ids=tokens.unsqueeze(1),
                attention_mask=attention_mask,
                position_ids=position.unsqueeze(1),
            )
            values = read.pop() if read else None
        reads = None if generated_reads is None else generated_reads.float().tolist()
        return Sampled(generated.tolist(), generated_logps.tolist(), reads)

    def _media_inputs(
        self, media: Sequence[dict[str, torch.Tensor]] | None, prompt_indices: Sequence[int]
    ) -> dict[str, torch.Tensor]:
        """The pictures of these prompts, in row order, on the model's device (``{}`` without any)."""
        if not media:
            return {}
        batch = collate_media([media[i] for i in prompt_indices])
        dtype = next(self.model.parameters()).dtype
        return {
            k: v.to(self.device, dtype) if v.is_floating_point() else v.to(self.device)
            for k, v in batch.items()
        }

    def _sample_with_generate(
        self,
        rows: Sequence[tuple[int, list[int]]],
        sampling: SamplingConfig,
        media: Sequence[dict[str, torch.Tensor]] | None = None,
    ) -> list[list[int]]:
        """``model.generate`` for models whose cache the fast loop cannot drive (e.g. custom remote code).

        Same distribution, drawn with ``torch.multinomial``: seeded runs repeat, but a row's sample then
        depends on the batch it is in.
        """
        input_ids = pad_left([ids for _, ids in rows], self.pad_id).to(self.device)
        attention_mask = pad_left([[1] * len(ids) for _, ids in rows], 0).to(self.device)
        sample = not sampling.greedy
        output = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=sampling.max_new_tokens,
            do_sample=sample,
            temperature=sampling.temperature if sample else None,
            top_p=sampling.top_p if sample else None,
            top_k=sampling.top_k if sample else None,
            repetition_penalty=None,
            pad_token_id=self.pad_id,
            eos_token_id=self.stops,
            **self._media_inputs(media, [index for index, _ in rows]),
        )
        return output[:, input_ids.shape[1] :].tolist()

    def _logprobs(
        self,
        rows: Sequence[tuple[int, list[int]]],
        responses: Sequence[list[int]],
        media: Sequence[dict[str, torch.Tensor]] | None = None,
    ) -> list[tuple[float, ...]]:
        sequences = [ids + response for (_, ids), response in zip(rows, responses, strict=True)]
        labels = [[-100] * len(ids) + response for (_, ids), response in zip(rows, responses, strict=True)]
        token_logps = labelled_token_logps(
            self.model,
            pad_right(sequences, self.pad_id).to(self.device),
            pad_right([[1] * len(s) for s in sequences], 0).to(self.device),
            pad_right(labels, -100).to(self.device),
            media=self._media_inputs(media, [index for index, _ in rows]),
        ).cpu()
        return [
            tuple(token_logps[i, len(ids) : len(ids) + len(response)].tolist())
            for i, ((_, ids), response) in enumerate(zip(rows, responses, strict=True))
        ]
