"""accelerate's ``save_state`` / ``load_state`` without a second copy of the weights.

A checkpoint holds each trained model in HF layout (loadable with ``from_pretrained``, mergeable with
``alignkit export``) *and* accelerate's state for exact resume. ``save_state`` would write every prepared
model's weights again (``model.safetensors`` under ``state/``): for full fine-tuning that doubles the
weights, for LoRA it adds the whole frozen base to every checkpoint. Here accelerate's pre-save hook
drops the weights of each model whose HF layout in the checkpoint holds all it needs, and the pre-load
hook loads them back from that layout; ``state/weights_in_layout.json`` records which ones, so
checkpoints written before this change (or with a model whose layout does not cover it) load as before.

What "covers" means, checked on the files just written (names and shapes, from the safetensors headers):

- a full model: every tensor of its state dict is in ``model*.safetensors`` or is tied to one that is
  (``lm_head`` sharing the embedding), and nothing of the prepared module lies outside it;
- a LoRA (PEFT) model: the adapter file holds exactly what PEFT saves, and every trainable parameter is
  in it; the frozen base is what the run loads from ``model.path`` on every start, as before.

Anything else (a merged LoRA score model, DeepSpeed / FSDP, whose engines write their own sharded
files, a format the check does not recognise) keeps accelerate's own copy: bigger, never inexact.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

MARKER = "weights_in_layout.json"
ADAPTER_FILE = "adapter_model.safetensors"


def _layout_owner(model: torch.nn.Module) -> tuple[str, torch.nn.Module]:
    """The module whose ``save_pretrained`` wrote the layout: the outermost one that has the method
    (the model itself, a PEFT wrapper, or e.g. the score model inside a value head wrapper)."""
    for name, module in model.named_modules():
        if hasattr(module, "save_pretrained"):
            return name, module
    return "", model


def _is_peft(module: torch.nn.Module) -> bool:
    return hasattr(module, "peft_config") and hasattr(module, "base_model")


def _file_shapes(files: Iterable[Path]) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                shapes[key] = tuple(f.get_slice(key).get_shape())
    return shapes


def _full_model_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("model*.safetensors"))


def _storage_ids(tensors: Iterable[torch.Tensor]) -> set[tuple[int, int]]:
    return {(t.untyped_storage().data_ptr(), t.storage_offset()) for t in tensors}


def layout_covers(model: torch.nn.Module, folder: Path) -> bool:
    """Whether the HF layout in ``folder`` holds everything ``load_state`` must restore of ``model``."""
    _, owner = _layout_owner(model)
    if _is_peft(owner):
        from peft import get_peft_model_state_dict

        expected = get_peft_model_state_dict(owner)
        file = folder / ADAPTER_FILE
        if not file.is_file():
            return False
        on_disk = _file_shapes([file])
        if on_disk != {k: tuple(v.shape) for k, v in expected.items()}:
            return False
        saved = _storage_ids(expected.values())
        return all(_storage_ids([p]) <= saved for p in model.parameters() if p.requires_grad)
    files = _full_model_files(folder)
    if not files:
        return False
    on_disk = _file_shapes(files)
    state = owner.state_dict()
    loaded = {k: v for k, v in state.items() if on_disk.get(k) == tuple(v.shape)}
    loaded_ids = _storage_ids(loaded.values())
    if any(k not in loaded and not _storage_ids([v]) <= loaded_ids for k, v in state.items()):
        return False
    if set(on_disk) - set(state):
        return False
    return _storage_ids(model.state_dict().values()) <= _storage_ids(state.values())


def load_layout(model: torch.nn.Module, folder: Path) -> None:
    """Load the weights ``layout_covers`` vouched for back into ``model`` (the unwrapped module)."""
    from safetensors.torch import load_file

    _, owner = _layout_owner(model)
    if _is_peft(owner):
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(owner, load_file(str(folder / ADAPTER_FILE)))
        unexpected = list(getattr(result, "unexpected_keys", []))
        if unexpected:
            raise RuntimeError(f"{folder / ADAPTER_FILE}: tensors the model does not have: {unexpected[:5]}")
        return
    tensors: dict[str, torch.Tensor] = {}
    for file in _full_model_files(folder):
        tensors.update(load_file(str(file)))
    missing, unexpected = owner.load_state_dict(tensors, strict=False)
    state = owner.state_dict()
    loaded_ids = _storage_ids(state[k] for k in tensors if k in state)
    untied = [k for k in missing if not _storage_ids([state[k]]) <= loaded_ids]
    if unexpected or untied:
        raise RuntimeError(
            f"{folder}: the checkpoint's weights do not fit the model (missing {untied[:5]}, "
            f"unexpected {list(unexpected)[:5]}); was model.path changed since the run started?"
        )


def save_state(accelerator: Any, checkpoint: Path, weights_in: Iterable[tuple[Any, str]]) -> None:
    """``accelerator.save_state(checkpoint / 'state')``, leaving out weights the checkpoint's layouts hold."""
    folders = {id(model): folder for model, folder in weights_in}

    def drop_covered(models: list[Any], weights: list[Any], output_dir: str) -> None:
        # Only the main process writes weights; with DeepSpeed / FSDP ``weights`` is empty (own files).
        if not accelerator.is_main_process or len(weights) != len(models):
            return
        dropped = []
        for i, model in enumerate(models):
            folder = folders.get(id(model))
            if folder is not None and layout_covers(accelerator.unwrap_model(model), checkpoint / folder):
                dropped.append({"index": i, "folder": folder})
        for entry in reversed(dropped):
            weights.pop(entry["index"])
        (Path(output_dir) / MARKER).write_text(json.dumps({"models": dropped}, indent=2) + "\n")

    handle = accelerator.register_save_state_pre_hook(drop_covered)
    try:
        accelerator.save_state(str(checkpoint / "state"))
    finally:
        handle.remove()


def load_state(accelerator: Any, checkpoint: Path) -> None:
    """``accelerator.load_state(checkpoint / 'state')``, taking the weights it left out from the layouts."""
    marker = checkpoint / "state" / MARKER
    entries = json.loads(marker.read_text())["models"] if marker.is_file() else []

    def load_from_layouts(models: list[Any], input_dir: str) -> None:
        for entry in sorted(entries, key=lambda e: e["index"], reverse=True):
            model = models.pop(entry["index"])
            load_layout(accelerator.unwrap_model(model), checkpoint / entry["folder"])

    handle = accelerator.register_load_state_pre_hook(load_from_layouts)
    try:
        accelerator.load_state(str(checkpoint / "state"))
    finally:
        handle.remove()
