"""The toy world's policy: a random-init tiny Llama saved like any Hugging Face checkpoint.

Small enough that SFT from scratch learns the world in about a minute on two CPU threads, built from
the same ``LlamaForCausalLM`` class a real run loads, so every code path (``from_pretrained``,
``generate``, LoRA, value heads) is the real one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

ModelT = TypeVar("ModelT", bound=torch.nn.Module)


@dataclass(frozen=True)
class TinyModelSpec:
    """Shape of the tiny Llama; the defaults are what the learnability measurement used."""

    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 256
    max_positions: int = 256


def tiny_llama_config(tokenizer: PreTrainedTokenizerBase, spec: TinyModelSpec) -> LlamaConfig:
    """The tiny Llama's config, also the language model inside the tiny VLM and the tiny audio model."""
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        max_position_embeddings=spec.max_positions,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_tiny_model(
    tokenizer: PreTrainedTokenizerBase, seed: int, spec: TinyModelSpec | None = None
) -> LlamaForCausalLM:
    """A randomly initialised tiny Llama whose generation stops at the tokenizer's ``<|im_end|>``."""
    return seeded_model(
        LlamaForCausalLM, tiny_llama_config(tokenizer, spec or TinyModelSpec()), tokenizer, seed
    )


def seeded_model(model_class: Callable[[Any], ModelT], config: Any, tokenizer: Any, seed: int) -> ModelT:
    """``model_class(config)`` initialised from ``seed``, decoding greedily until ``<|im_end|>``.

    One function for the text, visual and audio toy models, so each one's weights depend on (config, seed)
    alone in the same way and all three decode alike (greedy, at most 32 new tokens).
    """
    # fork_rng: building the world must not move the caller's global random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=32,
    )
    return model


def model_manifest(model: torch.nn.Module) -> dict[str, Any]:
    """What a toy world's manifest says of its model, the same for all three worlds: class, parameters."""
    return {"class": type(model).__name__, "parameters": sum(p.numel() for p in model.parameters())}


def save_model(model: Any, tokenizer: Any, path: Path) -> None:
    """Model (safetensors) and its tokenizer, or its processor for the visual and audio models (tokenizer,
    media processor, chat template), in one folder, loadable with ``from_pretrained(path)``."""
    model.save_pretrained(str(path), safe_serialization=True)
    tokenizer.save_pretrained(str(path))
