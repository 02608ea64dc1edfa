"""LoRA and QLoRA: train a small adapter on a frozen base, so a 7B policy and its reference fit one GPU.

Every trainer goes through the same two calls: ``load_trainable_causal_lm(model_cfg)`` (or its own
loader plus ``quantization_kwargs``) and ``prepare_trainable_model(model, model_cfg)``. Choices, and why:

- **The reference is the base with the adapter switched off.** LoRA computes ``W x + (alpha / r) B A x``
  with ``W`` frozen, so ``disabled_adapter`` gives exactly the starting model's outputs with no second
  copy in memory (DPO's pi_ref, PPO's KL anchor).
- **Checkpoints hold only the adapter** (``adapter_config.json`` + ``adapter_model.safetensors``): megabytes
  instead of the whole model, loadable with ``peft.PeftModel.from_pretrained`` and
  ``AutoPeftModelForCausalLM``; ``alignkit export --merge`` turns one into a plain checkpoint.
- **bitsandbytes is imported only when asked for.** It needs CUDA; asking for 4/8-bit on a machine
  without it stops before any work with what to install, instead of a deep import error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # the models layer never imports train/ at run time
    from alignkit.sections import LoraConfig, ModelConfig


def model_quantize(model_cfg: ModelConfig) -> str:
    """The quantization a model config asks for: only a LoRA run can train on a quantized base."""
    return model_cfg.lora.quantize if model_cfg.lora is not None else "none"


def apply_lora(model: torch.nn.Module, lora_cfg: LoraConfig, *, skip_media_towers: bool = False) -> Any:
    """Wrap ``model`` in a ``peft.PeftModel`` whose only trainable weights are the new adapters.

    The task type follows the model class, so a reward/cost model (``*ForSequenceClassification``) also
    trains and saves its freshly initialised score head (PEFT's ``modules_to_save``).
    ``skip_media_towers``: no adapters inside a vision/audio encoder (``MEDIA_TOWERS``), which
    ``all-linear`` would otherwise wrap too: a frozen tower (``model.freeze_vision``) stays frozen under
    LoRA, and the adapters go to the projector and the language model.
    """
    from peft import LoraConfig as PeftLoraConfig
    from peft import TaskType, get_peft_model

    is_classifier = type(model).__name__.endswith("ForSequenceClassification")
    targets = lora_cfg.target_modules
    peft_cfg = PeftLoraConfig(
        r=lora_cfg.r,
        lora_alpha=lora_cfg.alpha,
        lora_dropout=lora_cfg.dropout,
        target_modules=targets if isinstance(targets, str) else list(targets),
        task_type=TaskType.SEQ_CLS if is_classifier else TaskType.CAUSAL_LM,
        exclude_modules=MEDIA_TOWER_MODULES if skip_media_towers and media_towers(model) else None,
    )
    return get_peft_model(model, peft_cfg)


def prepare_trainable_model(model: torch.nn.Module, model_cfg: ModelConfig) -> torch.nn.Module:
    """What every trainer does between loading and ``accelerator.prepare``: checkpointing, then LoRA.

    With a frozen base the embeddings' outputs need no gradient, so under activation checkpointing the
    recomputed blocks would see inputs that do not require grad and the adapters would get none;
    ``enable_input_require_grads`` keeps the graph connected (peft and transformers do the same).
    """
    if model_cfg.freeze_vision:
        freeze_media_towers(model)
    quantized = model_quantize(model_cfg) != "none"
    if quantized:
        from peft import prepare_model_for_kbit_training

        # Casts the few non-quantized weights (norms) to fp32 for stable training, freezes the base.
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=model_cfg.gradient_checkpointing
        )
    elif model_cfg.gradient_checkpointing:
        enable = getattr(model, "activation_checkpointing_enable", None)
        if enable is not None:  # transformers >= 5.x; gradient_checkpointing_enable is its deprecated alias
            enable({"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if model_cfg.gradient_checkpointing:
        model.config.use_cache = False
    if model_cfg.lora is None:
        return model
    if model_cfg.gradient_checkpointing:
        model.enable_input_require_grads()
    return apply_lora(model, model_cfg.lora, skip_media_towers=model_cfg.freeze_vision)


MEDIA_TOWERS = ("vision_tower", "visual", "vision_model", "audio_tower")
"""Names under which transformers' multimodal models hold their vision or audio encoder (LLaVA,
Qwen2-VL, Idefics/SmolVLM, Qwen2-Audio); the projector and the language model are not among them."""
MEDIA_TOWER_MODULES = rf"(.*\.)?({'|'.join(MEDIA_TOWERS)})(\..*)?"
"""PEFT's ``exclude_modules`` pattern (matched against whole module names) for everything inside a tower."""


def media_towers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The vision/audio encoders of ``model`` (none for a text model)."""
    return [module for name, module in model.named_modules() if name.rsplit(".", 1)[-1] in MEDIA_TOWERS]


def freeze_media_towers(model: torch.nn.Module) -> int:
    """Stop gradients into every vision/audio encoder of ``model``; returns the parameters frozen (0 for a
    text model). A frozen tower keeps the pretrained features a projector was aligned to, and saves
    its optimizer state and backward."""
    frozen = 0
    for module in media_towers(model):
        for p in module.parameters():
            frozen += p.numel() if p.requires_grad else 0
            p.requires_grad_(False)
    return frozen


def load_trainable_causal_lm(model_cfg: ModelConfig) -> torch.nn.Module:
    """The policy as configured: loaded (quantized for QLoRA), checkpointing set, LoRA applied if asked."""
    from alignkit.models.loading import load_causal_lm

    model = load_causal_lm(
        model_cfg.path,
        dtype=model_cfg.dtype,
        trust_remote_code=model_cfg.trust_remote_code,
        quantize=model_quantize(model_cfg),
    )
    return prepare_trainable_model(model, model_cfg)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside DDP / DeepSpeed / FSDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        inner = getattr(model, "module", None)
        if not isinstance(inner, torch.nn.Module):
            inner = getattr(model, "_orig_mod", None)
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner


def is_lora(model: torch.nn.Module) -> bool:
    """Whether ``model`` (wrapped or not) trains a PEFT adapter on a frozen base."""
    from peft import PeftModel

    return isinstance(unwrap(model), PeftModel)


@contextmanager
def disabled_adapter(model: torch.nn.Module) -> Iterator[None]:
    """Run ``model`` (or its DDP/DeepSpeed wrapper) as the frozen base inside the block: the reference.

    The wrapper's forward calls the inner model, so either may be called inside the block.
    """
    inner = unwrap(model)
    if not is_lora(inner):
        raise TypeError(
            f"disabled_adapter needs a LoRA model (peft.PeftModel), got {type(inner).__name__}; "
            "without model.lora the reference must be a separately loaded model"
        )
    with inner.disable_adapter():
        yield


def trainable_summary(model: torch.nn.Module) -> str:
    """One line for the run log: how much of the model the optimizer actually updates."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    kind = "LoRA" if is_lora(model) else "full fine-tuning"
    return f"{kind}: {trainable:,} of {total:,} parameters trainable ({100 * trainable / max(total, 1):.2f}%)"
