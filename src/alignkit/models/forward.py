"""Forward passes that turn a causal LM and a labelled batch into the quantities losses take.

One place for "run the model, score the labelled tokens", shared by SFT, DPO (policy and reference),
preference evaluation and the online trainers' per-token log-probs, so the shift/mask convention cannot
drift between trainers.

**The LM head runs only where a token is scored.** A batch says which hidden states predict which
tokens: from ``labels`` (position ``t - 1`` predicts ``labels[t]``), or explicitly (``score_index``,
``score_target``, ``score_seq``: a flat position of the predicting hidden state, the token, and which
sequence's sum it belongs to; the shared-prompt DPO layout of ``data/pair_examples.py``). A forward
pre-hook on the model's output embeddings (``get_output_embeddings()``, found through PEFT, DDP and
DeepSpeed wrappers) hands the head only those hidden states, so ``(B, T, V)`` logits are never made for
prompt or padding positions. The model's own forward still runs end to end (DDP/FSDP/ZeRO hooks, LoRA,
and whatever the model does to its logits after the head: Gemma 2's soft-capping, Cohere's
``logit_scale``, all element-wise), so the numbers are the full forward's. When the head is not called
exactly once on ``(B, T, H)`` hidden states, or the logits do not come back as the selected rows, the
full logits are used instead (correct, just not cheaper).

**Layouts other than right padding.** ``position_ids`` (restarting per example) with no
``attention_mask`` is a *packed* batch: transformers' masking utilities (``find_packed_sequence_indices``)
then keep examples from attending to each other (``data/collate.py``, :func:`supports_packing`).
``segment_ids`` with ``prompt_segment_ids`` are shared-prompt rows (``data/collate.collate_shared_prefix``:
a DPO pair's prompt + chosen + rejected, a GRPO group's prompt + its G responses): a 4D mask is built here
so each response sees its prompt and itself only (:func:`supports_shared_prompt`). Per-token outputs of
such a batch land in the padded layout of its ``labels`` at ``score_place`` (flat positions), so losses
read ``(B, T)`` tensors whatever the layout. Trainers use a layout only after :func:`packing_is_exact` /
:func:`shared_prompt_is_exact` proved it on the model itself (a forward of a few tokens, laid out and
alone); otherwise they pad.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch

from alignkit.data.processor import MEDIA_KEYS
from alignkit.losses.logprobs import label_mask

MODEL_KEYS = ("input_ids", "attention_mask", "position_ids", *MEDIA_KEYS)
"""Batch keys handed to the model's forward: the ids' layout, and a multimodal batch's media tensors."""
SCORE_KEYS = ("score_index", "score_target", "score_seq", "score_counts")

PACKING_ATTENTION = ("sdpa", "eager", "flash_attention_2", "flash_attention_3")
"""Attention implementations whose transformers masking honours packed ``position_ids``."""
CUSTOM_MASK_ATTENTION = ("sdpa", "eager")
"""Attention implementations that take an arbitrary 4D mask."""


class ResponseLogps(NamedTuple):
    logps: torch.Tensor
    """(B,) log pi(response | prompt): summed over the labelled (response) tokens."""
    num_tokens: torch.Tensor
    """(B,) how many tokens were summed (for length-normalised losses)."""


# ------------------------------------------------------------------------------------------ the model
def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside DDP / DeepSpeed / compile wrappers (a PEFT model is kept: it forwards attributes)."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner


def _base_model(model: torch.nn.Module) -> Any:
    model = unwrap(model)
    get_base = getattr(model, "get_base_model", None)  # PEFT
    return get_base() if callable(get_base) else model


def _is_transformers_model(model: torch.nn.Module) -> bool:
    base = _base_model(model)
    return type(base).__module__.startswith("transformers.models.") and hasattr(base, "config")


def _attention(model: torch.nn.Module) -> str | None:
    return getattr(getattr(_base_model(model), "config", None), "_attn_implementation", None)


def supports_packing(model: torch.nn.Module) -> bool:
    """Whether packed rows (``position_ids`` restarting per example, no attention mask) keep the examples
    apart: a transformers model class (not remote code) whose attention reads packing from positions."""
    return _is_transformers_model(model) and _attention(model) in PACKING_ATTENTION


def supports_shared_prompt(model: torch.nn.Module) -> bool:
    """Whether a custom 4D mask is applied as given: eager/sdpa attention, and every layer full attention
    (sliding-window layers build their own masks, which a single 4D mask would replace)."""
    if not _is_transformers_model(model) or _attention(model) not in CUSTOM_MASK_ATTENTION:
        return False
    config = _base_model(model).config
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None:
        return all(t == "full_attention" for t in layer_types)
    return getattr(config, "sliding_window", None) is None


@torch.no_grad()
def _same_as_alone(
    model: torch.nn.Module, together: dict[str, torch.Tensor], parts: list[tuple[list[int], int, int]]
) -> bool:
    """Whether the one-row batch ``together`` gives, for each ``(tokens, start, offset)``, the logits that
    ``tokens`` alone give from position ``start`` on, at row positions ``offset...``: a tiny forward that
    proves on this very model that a layout keeps its parts apart."""
    inner = unwrap(model)
    device = inner.get_input_embeddings().weight.device
    tol = 1e-4 if inner.get_input_embeddings().weight.dtype == torch.float32 else 2e-2
    was_training = model.training
    model.eval()  # no dropout in the comparison
    try:
        logits = model(**{k: v.to(device) for k, v in together.items()}, use_cache=False).logits[0].float()
        for tokens, start, offset in parts:
            alone = model(input_ids=torch.tensor([tokens], device=device), use_cache=False).logits[0].float()
            got = logits[offset : offset + len(tokens) - start]
            if got.shape != alone[start:].shape or not torch.allclose(got, alone[start:], atol=tol, rtol=tol):
                return False
        return True
    finally:
        model.train(was_training)


def packing_is_exact(model: torch.nn.Module) -> bool:
    """:func:`supports_packing`, then proved on the model: two examples packed in one row give each the
    logits it has alone (else the trainer pads)."""
    if not supports_packing(model):
        return False
    a, b = [3, 4, 5, 6], [7, 8, 9]
    together = {"input_ids": torch.tensor([a + b]), "position_ids": torch.tensor([[0, 1, 2, 3, 0, 1, 2]])}
    return _same_as_alone(model, together, [(a, 0, 0), (b, 0, len(a))])


def shared_prompt_is_exact(model: torch.nn.Module) -> bool:
    """:func:`supports_shared_prompt`, then proved on the model: prompt + chosen + rejected in one row give
    the logits of prompt + chosen and of prompt + rejected alone (else the trainer pads pairs)."""
    if not supports_shared_prompt(model):
        return False
    prompt, chosen, rejected = [3, 4, 5], [6, 7], [8, 9, 10]
    segments = torch.tensor([[0, 0, 0, 1, 1, 2, 2, 2]])
    together = {
        "input_ids": torch.tensor([prompt + chosen + rejected]),
        "position_ids": torch.tensor([[0, 1, 2, 3, 4, 3, 4, 5]]),
        "attention_mask": shared_prompt_mask(model, segments, torch.zeros_like(segments)),
    }
    return _same_as_alone(model, together, [(prompt + chosen, 0, 0), (prompt + rejected, 3, 5)])


def shared_prompt_mask(
    model: torch.nn.Module, segment_ids: torch.Tensor, prompt_segment_ids: torch.Tensor
) -> torch.Tensor:
    """``(B, 1, T, T)`` mask of shared-prompt rows: causal, and a token sees its own segment and the segment
    ``prompt_segment_ids`` names for it (its block's prompt) only; padding (-1) sees only padding, so no
    softmax row is empty."""
    seg_q, seg_k = segment_ids.unsqueeze(-1), segment_ids.unsqueeze(-2)  # (B, T, 1), (B, 1, T)
    t = segment_ids.shape[-1]
    causal = torch.ones(t, t, dtype=torch.bool, device=segment_ids.device).tril()
    prompt_of_q = prompt_segment_ids.unsqueeze(-1)
    allowed = causal & ((seg_k == seg_q) | ((seg_k == prompt_of_q) & (seg_q >= 0)))
    allowed = allowed.unsqueeze(1)
    if _attention(model) == "sdpa":
        return allowed
    dtype = unwrap(model).get_input_embeddings().weight.dtype
    dtype = dtype if dtype.is_floating_point else torch.float32
    zero = torch.zeros((), dtype=dtype, device=segment_ids.device)
    return torch.where(allowed, zero, torch.finfo(dtype).min)


def model_inputs(model: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The keyword arguments of the model's forward for ``batch`` (a 4D mask for shared-prompt rows)."""
    inputs = {k: batch[k] for k in MODEL_KEYS if k in batch}
    if "segment_ids" in batch:
        if not supports_shared_prompt(model):
            raise ValueError(
                f"{type(_base_model(model)).__name__} ({_attention(model)} attention) cannot take a shared-prompt "
                "batch: its attention does not apply a custom 4D mask as given; collate padded pairs instead"
            )
        inputs["attention_mask"] = shared_prompt_mask(
            model, batch["segment_ids"], batch["prompt_segment_ids"]
        )
    return inputs


# ---------------------------------------------------------------------------------- scored positions
class ScoreSpec(NamedTuple):
    index: torch.Tensor
    """(N,) flat position (row * T + column) of the hidden state that predicts each scored token."""
    target: torch.Tensor
    """(N,) the scored token ids."""
    seq: torch.Tensor
    """(N,) which sequence each scored token is summed into."""
    counts: torch.Tensor
    """(S,) scored tokens per sequence (S sequences)."""


def score_spec(batch: Mapping[str, torch.Tensor]) -> ScoreSpec:
    """What to score: the explicit ``score_*`` tensors, or from ``labels`` (one sequence per row)."""
    if "score_index" in batch:
        return ScoreSpec(*(batch[k] for k in SCORE_KEYS))
    labels = batch["labels"]
    mask = label_mask(labels)  # (B, T): targets at t >= 1
    rows, cols = mask.nonzero(as_tuple=True)
    return ScoreSpec(rows * labels.shape[1] + cols - 1, labels[rows, cols], rows, mask.sum(dim=-1))


def output_head(model: torch.nn.Module) -> torch.nn.Module | None:
    get = getattr(unwrap(model), "get_output_embeddings", None)
    head = get() if callable(get) else None
    return head if isinstance(head, torch.nn.Module) else None


def selected_logits(
    model: torch.nn.Module,
    inputs: Mapping[str, torch.Tensor],
    index: torch.Tensor,
    on_hidden: Callable[[torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """``(N, V)`` logits of the hidden states at flat positions ``index`` (see the module docstring).

    ``on_hidden`` receives those ``(N, H)`` hidden states, inside the model's forward (a shared critic's
    value heads read them there); it is never called on the full-logits fallback, so a caller that needs
    it must check it was.
    """
    head = output_head(model)
    shape = inputs["input_ids"].shape
    calls: list[bool] = []

    def select(module: torch.nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        hidden = args[0] if args else None
        ok = not calls and isinstance(hidden, torch.Tensor) and tuple(hidden.shape[:2]) == tuple(shape)
        calls.append(ok)
        if not ok:
            return None
        selected = hidden.reshape(-1, hidden.shape[-1])[index]
        if on_hidden is not None:
            on_hidden(selected)
        return (selected, *args[1:])

    if head is not None:
        handle = head.register_forward_pre_hook(select)
        try:
            logits = model(**inputs, use_cache=False).logits
        finally:
            handle.remove()
        if calls == [True] and logits.shape[:-1] == index.shape:
            return logits
        if not any(calls) and logits.dim() == 3:  # the head was never given the hidden states
            return logits.flatten(0, 1)[index]
    logits = model(**inputs, use_cache=False).logits  # (B, T, V)
    return logits.flatten(0, 1)[index]


def target_logps(logits: torch.Tensor, target: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """``(N,)`` float32 ``log softmax(logits)[target]``; half-precision logits are upcast a chunk at a time."""
    if logits.dtype == torch.float32:
        return logits.gather(-1, target.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    parts = []
    for start in range(0, logits.shape[0], chunk):
        part = logits[start : start + chunk].float()
        picked = part.gather(-1, target[start : start + chunk].unsqueeze(-1)).squeeze(-1)
        parts.append(picked - torch.logsumexp(part, dim=-1))
    return torch.cat(parts) if parts else logits.new_zeros((0,), dtype=torch.float32)


def scored_logps(
    model: torch.nn.Module, batch: Mapping[str, torch.Tensor], temperature: float = 1.0
) -> tuple[torch.Tensor, ScoreSpec]:
    """``(N,)`` log-probs of every scored token (fp32, at ``temperature``) and the spec saying where they are."""
    spec = score_spec(batch)
    logits = selected_logits(model, model_inputs(model, batch), spec.index)
    return target_logps(tempered(logits, temperature), spec.target), spec


def response_logps(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> ResponseLogps:
    """Summed log-probs of each sequence's scored tokens (each row's ``labels != -100``), in one forward."""
    logps, spec = scored_logps(model, batch)
    sums = logps.new_zeros(spec.counts.shape[0]).index_add(0, spec.seq, logps)
    return ResponseLogps(sums, spec.counts)


def labelled_token_logps(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 1.0,
    media: Mapping[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """(B, T) log pi(token t | tokens < t) at each labelled position, 0 elsewhere (fp32).

    The per-token form of :func:`response_logps`, for losses that weigh tokens separately (PPO, GRPO).
    ``temperature`` scores under ``softmax(logits / temperature)``, the distribution RL samples from.
    ``media``: the rows' pictures (``pixel_values``...) for a vision-language model.
    """
    batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels, **(media or {})}
    return labelled_token_logps_and_entropy(model, batch, temperature, entropy=False).logps


class TokenLogps(NamedTuple):
    logps: torch.Tensor
    """(B, T) log-probs of the labelled tokens (fp32), 0 elsewhere; carries the gradient."""
    entropy: torch.Tensor | None
    """(B, T) entropy of the distribution that chose each labelled token (detached), 0 elsewhere."""
    readouts: torch.Tensor | None = None
    """(B, T, k) ``readout`` of the hidden state that chose each labelled token (0 elsewhere; carries the
    gradient): a shared critic's values, aligned with the tokens like the log-probs."""


def token_places(batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(index, target, place)`` of each labelled token: the flat position of the hidden state that
    predicts it, the token, and its flat position in ``labels``; explicit (``score_index``,
    ``score_target``, ``score_place``: a shared-prompt layout) or read off the padded ``labels``."""
    if "score_place" in batch:
        return batch["score_index"], batch["score_target"], batch["score_place"]
    labels = batch["labels"]
    rows, cols = label_mask(labels).nonzero(as_tuple=True)
    flat = rows * labels.shape[1] + cols
    return flat - 1, labels[rows, cols], flat


def labelled_token_logps_and_entropy(
    model: torch.nn.Module,
    batch: Mapping[str, torch.Tensor],
    temperature: float = 1.0,
    entropy: bool = True,
    readout: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> TokenLogps:
    """:func:`labelled_token_logps` and, from the same logits, the entropy at each labelled position: the
    policy forward of the online trainers (the LM head runs only on response positions, as everywhere).
    ``readout`` maps the ``(N, H)`` hidden states of those positions to ``(N, k)`` (value heads)."""
    from alignkit.losses.logprobs import entropy_from_logits

    labels = batch["labels"]
    index, target, place = token_places(batch)
    read: list[torch.Tensor] = []
    on_hidden = None if readout is None else (lambda hidden: read.append(readout(hidden)))
    logits = selected_logits(model, model_inputs(model, batch), index, on_hidden)
    logits = tempered(logits, temperature)
    where = (place,)
    logps = target_logps(logits, target)
    token = logps.new_zeros(labels.numel()).index_put(where, logps).view(labels.shape)
    readouts = None
    if readout is not None:
        if len(read) != 1:
            raise ValueError(
                f"{type(_base_model(model)).__name__} did not hand its output head the (B, T, H) hidden "
                "states, so no value head can read them; use a separate critic (critic.shared=false)"
            )
        k = read[0].shape[-1]
        flat = read[0].new_zeros(labels.numel(), k).index_put(where, read[0])
        readouts = flat.view(*labels.shape, k)
    if not entropy:
        return TokenLogps(token, None, readouts)
    with torch.no_grad():
        values = entropy_from_logits(logits.detach().unsqueeze(0)).squeeze(0)
    return TokenLogps(
        token, values.new_zeros(labels.numel()).index_put(where, values).view(labels.shape), readouts
    )


def media_inputs(batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The media tensors of a batch (``{}`` for text rows): what a forward over its rows must also get."""
    return {k: batch[k] for k in MEDIA_KEYS if k in batch}


def tempered(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``logits / temperature`` (the same tensor when it is 1)."""
    return logits if temperature == 1.0 else logits / temperature
