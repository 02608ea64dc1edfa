"""Loading models and tokenizers through the real Hugging Face path (``from_pretrained``).

``toyworld://`` paths resolve to the offline toy world (built on first use); everything else goes to
``from_pretrained`` unchanged, so a config that names ``Qwen/Qwen2.5-7B-Instruct`` takes the same path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

TOYWORLD_SCHEME = "toyworld://"


def resolve_path(path: str) -> str:
    """Map ``toyworld://...`` to its local folder (building the world once); other paths pass through."""
    if path.startswith(TOYWORLD_SCHEME):
        from alignkit.toyworld import resolve

        return str(resolve(path))
    return path


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_tokenizer(path: str, *, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_path(path), trust_remote_code=trust_remote_code)
    if tokenizer.pad_token_id is None:
        # Padding is always masked out; reusing EOS is the common convention for decoder-only models.
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"tokenizer at {path!r} has no chat template; alignkit renders every record through one. "
            "Use an instruct/chat tokenizer or set tokenizer.chat_template before training."
        )
    return tokenizer


def load_causal_lm(path: str, *, dtype: str = "float32", trust_remote_code: bool = False) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        resolve_path(path), dtype=DTYPES[dtype], trust_remote_code=trust_remote_code
    )


def save_pretrained(model: Any, tokenizer: Any, out_dir: Path, state_dict: Any = None) -> None:
    """HF layout (safetensors + config + tokenizer), loadable with ``from_pretrained``."""
    model.save_pretrained(out_dir, state_dict=state_dict, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
