"""LoRA on the tiny Llama: what trains, the disabled-adapter reference, checkpointing, saving and loading."""

from __future__ import annotations

import json

import pytest
import torch

from alignkit.models.export import ExportError, export_merged, find_adapter
from alignkit.models.forward import response_logps
from alignkit.models.loading import load_causal_lm, save_pretrained
from alignkit.models.lora import (
    apply_lora,
    disabled_adapter,
    is_lora,
    prepare_trainable_model,
    trainable_summary,
    unwrap,
)
from alignkit.sections import LoraConfig, ModelConfig

LINEAR = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def perturb_adapters(model: torch.nn.Module, seed: int = 0) -> None:
    """LoRA starts with B = 0 (a no-op); give B values so the adapter changes the outputs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)


def logits(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def test_all_linear_adapts_every_block_linear_but_not_the_head(base_model):
    model = apply_lora(base_model, LoraConfig(r=4))
    assert is_lora(model) and not is_lora(load_causal_lm("toyworld://models/tiny"))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    adapted = {n.split(".")[-4] for n in trainable}
    assert adapted == LINEAR  # lm_head (tied to the embeddings) stays frozen and unadapted
    assert trainable_summary(model).startswith("LoRA: ")


def test_named_target_modules(base_model):
    model = apply_lora(base_model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    assert {n.split(".")[-4] for n, p in model.named_parameters() if p.requires_grad} == {"q_proj", "v_proj"}


def test_fresh_adapter_is_a_no_op(base_model, batch):
    expected = logits(base_model, batch)
    model = apply_lora(base_model, LoraConfig(r=4)).eval()
    torch.testing.assert_close(logits(model, batch), expected, atol=0, rtol=0)


def test_disabled_adapter_is_the_base_model(base_model, batch):
    model = apply_lora(base_model, LoraConfig(r=4)).eval()
    perturb_adapters(model)
    reference = load_causal_lm("toyworld://models/tiny").eval()
    ref_logps = response_logps(reference, batch).logps
    with torch.no_grad():
        adapted = response_logps(model, batch).logps
        with disabled_adapter(model):
            disabled = response_logps(model, batch).logps
        again = response_logps(model, batch).logps
    assert not torch.allclose(adapted, ref_logps, atol=1e-3)
    torch.testing.assert_close(disabled, ref_logps, atol=1e-6, rtol=0)
    torch.testing.assert_close(again, adapted, atol=0, rtol=0)  # the adapter is back on after the block


def test_disabled_adapter_through_ddp(base_model, batch):
    """A DDP-wrapped LoRA model (as accelerate.prepare returns it) is unwrapped, and the wrapper obeys."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    model = apply_lora(base_model, LoraConfig(r=4)).eval()
    perturb_adapters(model)
    expected = logits(load_causal_lm("toyworld://models/tiny").eval(), batch)
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        wrapped = DistributedDataParallel(model)
        assert unwrap(wrapped) is model and is_lora(wrapped)
        with disabled_adapter(wrapped):
            torch.testing.assert_close(logits(wrapped, batch), expected, atol=1e-6, rtol=0)
        assert not torch.allclose(logits(wrapped, batch), expected, atol=1e-3)
    finally:
        dist.destroy_process_group()


def test_disabled_adapter_refuses_a_full_model(base_model):
    with pytest.raises(TypeError, match="needs a LoRA model"), disabled_adapter(base_model):
        pass


def test_checkpointing_with_lora_still_trains_the_adapters(base_model, batch):
    cfg = ModelConfig(gradient_checkpointing=True, lora=LoraConfig(r=4))
    model = prepare_trainable_model(base_model, cfg).train()
    assert unwrap(model).get_base_model().model.gradient_checkpointing
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
    out.loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    # B = 0 at init, so only A's gradient is zero; every B must have received a gradient.
    assert all(g is not None for g in grads.values())
    assert all(g.abs().sum() > 0 for n, g in grads.items() if "lora_B" in n)
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)


def test_full_fine_tuning_keeps_every_weight_trainable(base_model):
    model = prepare_trainable_model(base_model, ModelConfig(gradient_checkpointing=True))
    assert not is_lora(model) and all(p.requires_grad for p in model.parameters())


def test_adapter_folder_loads_merged_and_chains(base_model, batch, tokenizer, tmp_path):
    """An adapter saves alone; load_causal_lm gives base + adapter; a second adapter on top names it as base."""
    first = apply_lora(base_model, LoraConfig(r=4)).eval()
    perturb_adapters(first, seed=1)
    save_pretrained(first, tokenizer, tmp_path / "sft", first.state_dict())
    assert (tmp_path / "sft" / "adapter_model.safetensors").is_file()
    assert not (tmp_path / "sft" / "model.safetensors").exists()

    merged = load_causal_lm(str(tmp_path / "sft")).eval()
    assert not is_lora(merged)
    torch.testing.assert_close(logits(merged, batch), logits(first, batch), atol=1e-5, rtol=0)

    second = apply_lora(merged, LoraConfig(r=2)).eval()
    perturb_adapters(second, seed=2)
    save_pretrained(second, tokenizer, tmp_path / "dpo")
    base = json.loads((tmp_path / "dpo" / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert base == str((tmp_path / "sft").resolve())
    with disabled_adapter(second):  # the reference of the second run is the first run's model
        torch.testing.assert_close(logits(second, batch), logits(first, batch), atol=1e-5, rtol=0)
    chained = load_causal_lm(str(tmp_path / "dpo")).eval()
    torch.testing.assert_close(logits(chained, batch), logits(second, batch), atol=1e-5, rtol=0)


def test_quantized_base_cannot_take_an_adapter_path(base_model, tokenizer, tmp_path):
    from alignkit.config import ConfigError

    save_pretrained(apply_lora(base_model, LoraConfig(r=2)), tokenizer, tmp_path / "a")
    with pytest.raises(ConfigError, match=r"alignkit export --merge"):
        load_causal_lm(str(tmp_path / "a"), quantize="4bit")


def test_export_refuses_what_it_cannot_merge(base_model, tokenizer, tmp_path):
    save_pretrained(base_model, tokenizer, tmp_path / "full")
    with pytest.raises(ExportError, match="full checkpoint, not a LoRA adapter"):
        find_adapter(tmp_path / "full")
    with pytest.raises(ExportError, match="no LoRA adapter"):
        find_adapter(tmp_path)
    save_pretrained(apply_lora(base_model, LoraConfig(r=2)), tokenizer, tmp_path / "run" / "final")
    assert find_adapter(tmp_path / "run") == tmp_path / "run" / "final"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("keep me")
    with pytest.raises(ExportError, match="--overwrite"):
        export_merged(tmp_path / "run", tmp_path / "out")


def test_score_model_trains_and_saves_its_head(tokenizer, tmp_path):
    """Reward/cost models (``*ForSequenceClassification``): the new score head trains and saves with the adapter."""
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification

    from alignkit.models.loading import resolve_path

    base = AutoModelForSequenceClassification.from_pretrained(
        resolve_path("toyworld://models/tiny"), num_labels=1
    )
    model = apply_lora(base, LoraConfig(r=4))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any(".score." in n for n in trainable)
    save_pretrained(model, tokenizer, tmp_path, model.state_dict())
    assert any("score" in k for k in load_file(tmp_path / "adapter_model.safetensors"))


@pytest.mark.parametrize("freeze_vision", [True, False])
def test_lora_on_a_vlm_leaves_a_frozen_vision_tower_alone(freeze_vision):
    """``all-linear`` names every linear layer, the vision tower's included: with ``model.freeze_vision``
    (the default) the tower gets no adapters and stays frozen, while the projector and the language model
    get theirs; without it the tower is adapted too."""
    from alignkit.models.loading import load_causal_lm
    from alignkit.toyworld import resolve

    vlm = str(resolve("toyworld://visual/models/tiny-vlm"))
    cfg = ModelConfig(path=vlm, freeze_vision=freeze_vision, lora=LoraConfig(r=2))
    model = prepare_trainable_model(load_causal_lm(vlm), cfg)
    adapted = {name.split(".lora_A")[0] for name, _ in model.named_parameters() if ".lora_A" in name}
    in_tower = [name for name in adapted if ".vision_tower." in name]
    assert any(".language_model." in name for name in adapted)
    assert any(".multi_modal_projector." in name for name in adapted)
    assert bool(in_tower) is not freeze_vision, in_tower[:3]
    trainable_in_tower = [n for n, p in model.named_parameters() if p.requires_grad and ".vision_tower." in n]
    assert bool(trainable_in_tower) is not freeze_vision
