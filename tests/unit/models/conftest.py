"""The toy world's tiny Llama and a labelled batch for the model-layer tests."""

from __future__ import annotations

import pytest
import torch

from alignkit.data.collate import collate_lm
from alignkit.data.render import render_conversation
from alignkit.models.loading import load_causal_lm, load_tokenizer, resolve_path

TINY = "toyworld://models/tiny"


@pytest.fixture(scope="session")
def tokenizer():
    return load_tokenizer(TINY)


@pytest.fixture(scope="session")
def batch(tokenizer) -> dict[str, torch.Tensor]:
    """Four held-out toy-world chats, right-padded, labels on the assistant turns."""
    from alignkit.data import load_records

    records = load_records(resolve_path("toyworld://data/sft"), "trl-messages", split="test").records[:4]
    examples = [render_conversation(tokenizer, r.messages, 64) for r in records]
    return collate_lm(examples, tokenizer.pad_token_id)


@pytest.fixture
def base_model() -> torch.nn.Module:
    return load_causal_lm(TINY).eval()
