"""How a model's weights are held: the dtype names configs use, and quantization for QLoRA.

A module of its own so that loading (``models/loading.py``) and LoRA (``models/lora.py``) both use it
without importing each other.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from alignkit.config import ConfigError

DTYPES: dict[str, Any] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "auto": "auto",
}
"""``auto`` loads the weights in the dtype the checkpoint's config names (``torch_dtype``/``dtype``)."""


QUANTIZE_KEY = "model.lora.quantize"


def quantization_kwargs(quantize: str, dtype: str) -> dict[str, Any]:
    """Extra ``from_pretrained`` arguments that load the base quantized for QLoRA ({} for 'none').

    4-bit follows QLoRA (Dettmers et al., 2023): NF4 weights, double quantization, and matmuls in the
    model dtype (``model.dtype=bfloat16`` is the usual choice). The base goes straight to this process's
    GPU: accelerate cannot move quantized weights after loading.
    """
    if quantize == "none":
        return {}
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(
            f"{QUANTIZE_KEY}={quantize!r} loads the base through bitsandbytes, which is not installed. "
            "QLoRA needs an NVIDIA GPU with CUDA: run `pip install bitsandbytes` there, "
            f"or set {QUANTIZE_KEY}=none for plain LoRA (runs anywhere)."
        )
    if not torch.cuda.is_available():
        raise ConfigError(
            f"{QUANTIZE_KEY}={quantize!r} needs a CUDA GPU (bitsandbytes quantizes on the GPU) and none is "
            f"visible; run on a GPU machine or set {QUANTIZE_KEY}=none for plain LoRA."
        )
    from transformers import BitsAndBytesConfig

    if quantize == "4bit":
        bnb = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=DTYPES[dtype] if dtype != "auto" else torch.bfloat16,
        )
    else:
        bnb = BitsAndBytesConfig(load_in_8bit=True)
    return {"quantization_config": bnb, "device_map": {"": torch.cuda.current_device()}}
