"""Tiny random models of released families, each with the family's own chat template and special tokens.

The architecture comes from the family's ``transformers`` config class (so its quirks are real: Gemma's
scaled embeddings and soft-capping, Phi-3's fused projections, tied or untied embeddings as the released
checkpoints have them); the tokenizer is the toy world's byte-level BPE plus the family's special tokens,
with BOS/EOS/PAD set as the released tokenizer sets them (Llama 3 and Mistral have no pad token; Phi-3's
EOS is not its end-of-turn token; Gemma's generation_config lists ``<end_of_turn>`` beside EOS) and a
post-processor that adds BOS on ``encode`` where the released one does. The chat templates are the
released ones, read from the copies TRL ships (``trl/chat_templates``) or ``tests/fixtures/chat_templates``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tokenizers import processors
from transformers import GenerationConfig, PreTrainedTokenizerFast

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "chat_templates"


def trl_template(name: str) -> str:
    import trl

    path = Path(trl.__file__).parent / "chat_templates" / name
    return path.read_text() if path.is_file() else (FIXTURES / name).read_text()


@dataclass(frozen=True)
class Family:
    name: str
    template: str
    """File name of the released template."""
    training_template: str | None
    """TRL's ``{% generation %}``-tagged copy of it, where one exists."""
    config: Callable[[dict[str, Any]], Any]
    specials: tuple[str, ...]
    eot: str
    """The token that must close every assistant turn."""
    bos: str | None = None
    eos: str = ""
    pad: str | None = None
    generation_eos: tuple[str, ...] = ()
    """Extra stop tokens the released generation_config lists."""
    adds_bos: bool = False
    """The released tokenizer adds BOS when it encodes text."""
    tied: bool = False
    template_kwargs: dict[str, Any] = field(default_factory=dict)
    thinking: bool = False
    """The template renders a <think> block in the newest assistant turn."""


def _llama(kw):
    from transformers import LlamaConfig

    return LlamaConfig(**kw)


def _qwen2(kw):
    from transformers import Qwen2Config

    return Qwen2Config(**kw)


def _qwen3(kw):
    from transformers import Qwen3Config

    return Qwen3Config(**kw, head_dim=16)


def _gemma2(kw):
    from transformers import Gemma2Config

    return Gemma2Config(**kw, head_dim=16, query_pre_attn_scalar=16, sliding_window=32)


def _gemma3(kw):
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(**kw, head_dim=16, query_pre_attn_scalar=16, sliding_window=32)


def _mistral(kw):
    from transformers import MistralConfig

    return MistralConfig(**kw, sliding_window=None)


def _phi3(kw):
    from transformers import Phi3Config

    return Phi3Config(**kw)


LLAMA3_SPECIALS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|python_tag|>",
)
CHATML = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
GEMMA = ("<bos>", "<eos>", "<pad>", "<start_of_turn>", "<end_of_turn>")
PHI3 = ("<s>", "<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>")
DEEPSEEK = ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>")
THINK = ("<think>", "</think>")

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family(
            "llama3.1",
            "llama3_1.jinja",
            None,
            _llama,
            LLAMA3_SPECIALS,
            eot="<|eot_id|>",
            bos="<|begin_of_text|>",
            eos="<|eot_id|>",
            generation_eos=("<|end_of_text|>", "<|eom_id|>"),
            adds_bos=True,
        ),
        Family(
            "llama3",
            "llama3.jinja",
            "llama3_training.jinja",
            _llama,
            LLAMA3_SPECIALS,
            eot="<|eot_id|>",
            bos="<|begin_of_text|>",
            eos="<|eot_id|>",
            adds_bos=True,
            tied=True,
        ),
        Family(
            "qwen2.5",
            "qwen2_5.jinja",
            "qwen2_5_training.jinja",
            _qwen2,
            CHATML,
            eot="<|im_end|>",
            eos="<|im_end|>",
            pad="<|endoftext|>",
            generation_eos=("<|endoftext|>",),
            tied=True,
        ),
        Family(
            "qwen3",
            "qwen3.jinja",
            "qwen3_training.jinja",
            _qwen3,
            CHATML + THINK,
            eot="<|im_end|>",
            eos="<|im_end|>",
            pad="<|endoftext|>",
            tied=True,
            thinking=True,
        ),
        Family(
            "qwen3-nothink",
            "qwen3.jinja",
            "qwen3_training.jinja",
            _qwen3,
            CHATML + THINK,
            eot="<|im_end|>",
            eos="<|im_end|>",
            pad="<|endoftext|>",
            tied=True,
            template_kwargs={"enable_thinking": False},
        ),
        Family(
            "gemma2",
            "gemma.jinja",
            "gemma_training.jinja",
            _gemma2,
            GEMMA,
            eot="<end_of_turn>",
            bos="<bos>",
            eos="<eos>",
            pad="<pad>",
            generation_eos=("<end_of_turn>",),
            adds_bos=True,
            tied=True,
        ),
        Family(
            "gemma3",
            "gemma3.jinja",
            "gemma3_training.jinja",
            _gemma3,
            GEMMA,
            eot="<end_of_turn>",
            bos="<bos>",
            eos="<eos>",
            pad="<pad>",
            generation_eos=("<end_of_turn>",),
            adds_bos=True,
            tied=True,
        ),
        Family(
            "mistral",
            "mistral.jinja",
            None,
            _mistral,
            ("<s>", "</s>", "[INST]", "[/INST]"),
            eot="</s>",
            bos="<s>",
            eos="</s>",
            adds_bos=True,
        ),
        Family(
            "phi3",
            "phi3.jinja",
            "phi3_training.jinja",
            _phi3,
            PHI3,
            eot="<|end|>",
            bos="<s>",
            eos="<|endoftext|>",
            pad="<|endoftext|>",
            generation_eos=("<|end|>",),
            adds_bos=True,
        ),
        Family(
            "phi3.5",
            "phi3_5.jinja",
            "phi3_5_training.jinja",
            _phi3,
            PHI3,
            eot="<|end|>",
            bos="<s>",
            eos="<|endoftext|>",
            pad="<|endoftext|>",
            adds_bos=True,
        ),
        Family(
            "deepseek-r1-distill",
            "deepseek_r1_distill_training.jinja",
            None,
            _qwen2,
            DEEPSEEK + THINK,
            eot="<｜end▁of▁sentence｜>",
            bos="<｜begin▁of▁sentence｜>",
            eos="<｜end▁of▁sentence｜>",
            adds_bos=True,
            thinking=True,
        ),
    ]
}


def family_tokenizer(family: Family, *, template: str | None = None) -> PreTrainedTokenizerFast:
    """The toy world's BPE with the family's special tokens, BOS/EOS/PAD and released template."""
    from alignkit.models.loading import load_tokenizer

    toy = load_tokenizer("toyworld://models/tiny")
    backend = toy.backend_tokenizer.__class__.from_str(toy.backend_tokenizer.to_str())
    # Reasoning tags are ordinary added tokens in Qwen3 and DeepSeek-R1 (decoded even when specials are skipped).
    backend.add_special_tokens([t for t in family.specials if t not in THINK])
    backend.add_tokens([t for t in family.specials if t in THINK])
    if family.adds_bos:
        bos_id = backend.token_to_id(family.bos)
        backend.post_processor = processors.TemplateProcessing(
            single=f"{family.bos} $A", pair=f"{family.bos} $A $B", special_tokens=[(family.bos, bos_id)]
        )
    else:
        backend.post_processor = None
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=family.bos,
        eos_token=family.eos,
        pad_token=family.pad,
        chat_template=trl_template(template or family.template),
        clean_up_tokenization_spaces=False,
    )


def family_model(family: Family, tokenizer: Any, seed: int = 0) -> Any:
    """A tiny random causal LM of the family's architecture (about 0.3M parameters)."""
    from transformers import AutoModelForCausalLM

    ids = tokenizer.convert_tokens_to_ids
    kw = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=family.tied,
        bos_token_id=ids(family.bos) if family.bos else None,
        eos_token_id=ids(family.eos),
        pad_token_id=ids(family.pad) if family.pad else None,
    )
    config = family.config(kw)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    stops = [ids(family.eos)] + [ids(t) for t in family.generation_eos]
    model.generation_config = GenerationConfig(
        bos_token_id=kw["bos_token_id"], eos_token_id=stops, pad_token_id=kw["pad_token_id"]
    )
    return model


def save_family(family: Family, out: Path, seed: int = 0) -> Path:
    """A checkpoint folder (``from_pretrained`` layout) of the family's tiny model and tokenizer."""
    tokenizer = family_tokenizer(family)
    family_model(family, tokenizer, seed).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


ANSWERS = {
    "say hello": "hello there",
    "add 3 and 4": "The answer is 7.",
    "reverse the word cat": "tac",
    "name a color": "blue",
}
"""A tiny task each family's model memorises in a few dozen SFT steps."""


def answer_reward(prompt: str, response: str) -> float:
    """1 for the memorised answer to the prompt (after any reasoning), else 0: a rule reward for GRPO."""
    from alignkit.data.reasoning import split_reasoning

    answer = split_reasoning(response)[1]
    return float(any(q in prompt and answer == a for q, a in ANSWERS.items()))


def write_family_data(out: Path, *, thinking: bool = False) -> dict[str, Path]:
    """SFT conversations and preference pairs over ``ANSWERS``, in TRL's conversational formats.

    ``thinking``: answers open with a reasoning block, as a reasoning model's data does (DeepSeek-R1
    distills' prompts open the block, so data without one would never match what they generate from).
    """
    import json

    out.mkdir(parents=True, exist_ok=True)
    sft, pairs = [], []
    for question, answer in ANSWERS.items():
        user = {"role": "user", "content": question}
        if thinking:
            answer = f"<think>\nLet me think.\n</think>\n\n{answer}"
        sft.append({"messages": [user, {"role": "assistant", "content": answer}]})
        pairs.append(
            {
                "prompt": [user],
                "chosen": [{"role": "assistant", "content": answer}],
                "rejected": [{"role": "assistant", "content": "I do not know"}],
            }
        )
    files = {"sft": out / "sft.jsonl", "pairs": out / "pairs.jsonl"}
    for name, rows in (("sft", sft * 8), ("pairs", pairs * 8)):
        files[name].write_text("".join(json.dumps(r) + "\n" for r in rows))
    return files
