"""``alignkit export --merge``: a LoRA run's adapter folded into its base, as a plain HF checkpoint.

Serving stacks (vLLM, TGI, llama.cpp converters) and ``AutoModelForCausalLM.from_pretrained`` want one
set of weights, not base + adapter. Merging is ``W' = W + (alpha / r) B A`` per adapted layer, so the
merged model computes the same function as base + adapter (up to float rounding).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from alignkit.models.loading import (
    ADAPTER_CONFIG,
    adapter_base,
    load_causal_lm,
    resolve_path,
    save_pretrained,
)


class ExportError(ValueError):
    """The export cannot be done as asked; the message says why and what to pass instead."""


def find_adapter(source: str | Path) -> Path:
    """The adapter folder of ``source``: a checkpoint or ``final/`` itself, or a run folder's ``final/``."""
    source = Path(source)
    for candidate in (source, source / "final"):
        if (candidate / ADAPTER_CONFIG).is_file():
            return candidate
    if (source / "config.json").is_file() or (source / "final" / "config.json").is_file():
        raise ExportError(
            f"{source} is a full checkpoint, not a LoRA adapter: there is nothing to merge, "
            "it already loads with AutoModelForCausalLM.from_pretrained"
        )
    raise ExportError(
        f"no LoRA adapter ({ADAPTER_CONFIG}) in {source} or {source / 'final'}: pass a LoRA run folder, "
        "its final/ folder, or one of its checkpoints/step-N folders"
    )


def export_merged(
    source: str | Path, out: str | Path, *, dtype: str = "float32", overwrite: bool = False
) -> Path:
    """Write base + adapter of ``source`` merged into ``out`` (safetensors + config + tokenizer)."""
    adapter = find_adapter(source)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ExportError(f"{out} exists and is not empty; choose another --out or pass --overwrite")
        shutil.rmtree(out)
    model = load_causal_lm(str(adapter), dtype=dtype)
    # LoRA runs save their tokenizer next to the adapter; a bare adapter falls back to its base's.
    # AutoTokenizer, not load_tokenizer: exporting needs no chat template and must not add a pad token.
    from transformers import AutoTokenizer

    has_tokenizer = (adapter / "tokenizer_config.json").is_file()
    tokenizer_path = str(adapter) if has_tokenizer else resolve_path(str(adapter_base(str(adapter))))
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    model.name_or_path = str(out)
    model.config.name_or_path = str(out)
    save_pretrained(model, tokenizer, out)
    return out
