"""Checkpoints keep the weights once: accelerate's state leaves out what the HF layout holds, and loads
it back from there exactly (full model with tied embeddings, LoRA adapter), or keeps its own copy when
the layout does not cover the model."""

from __future__ import annotations

import json

import pytest
import torch

from alignkit.lean_state import MARKER, load_state
from alignkit.runs import write_checkpoint
from alignkit.sections import TrainerConfig
from alignkit.train.common import make_accelerator


def _tiny_llama(lora: bool = False) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=True,
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
    return model


def _prepared(lora: bool) -> tuple[object, torch.nn.Module, torch.optim.Optimizer]:
    acc = make_accelerator(TrainerConfig())
    model = _tiny_llama(lora)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model, optimizer = acc.prepare(model, optimizer)
    return acc, model, optimizer


def _train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    optimizer.zero_grad()


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_weights_are_stored_once_and_resume_is_exact(tmp_path, lora):
    acc, model, optimizer = _prepared(lora)
    _train_step(model, optimizer)
    saved = write_checkpoint(
        acc, tmp_path, 1, 2, lambda folder, _: model.save_pretrained(folder), weights_in=[(model, "")]
    )
    state = saved / "state"
    assert not list(state.glob("model*.safetensors")), sorted(p.name for p in state.iterdir())
    assert json.loads((state / MARKER).read_text()) == {"models": [{"index": 0, "folder": ""}]}
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    _train_step(model, optimizer)  # what the resumed run must redo exactly
    after_one_more = {k: v.clone() for k, v in model.state_dict().items()}

    acc, fresh, fresh_optimizer = _prepared(lora)
    _train_step(fresh, fresh_optimizer)  # different weights and Adam moments than the checkpoint
    _train_step(fresh, fresh_optimizer)
    load_state(acc, saved)
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, expected[k]), k
    _train_step(fresh, fresh_optimizer)
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, after_one_more[k]), k


def test_a_layout_that_does_not_cover_the_model_keeps_accelerates_copy(tmp_path):
    acc, model, optimizer = _prepared(lora=False)
    _train_step(model, optimizer)
    saved = write_checkpoint(acc, tmp_path, 1, 2, lambda folder, _: None, weights_in=[(model, "")])
    assert (saved / "state" / "model.safetensors").is_file()
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    acc, fresh, fresh_optimizer = _prepared(lora=False)
    _train_step(fresh, fresh_optimizer)
    load_state(acc, saved)
    assert all(torch.equal(v, expected[k]) for k, v in fresh.state_dict().items())
