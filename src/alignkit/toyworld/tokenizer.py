"""The toy world's tokenizer: a byte-level BPE trained on the world's own text, with a ChatML template.

Byte-level so that any string (a user's typo, another language) still encodes; trained on the world's
text so that its words are one or two tokens and a tiny model's sequences stay short. The chat template
is ChatML (as Qwen's) with the assistant content and its closing ``<|im_end|>`` inside
``{% generation %}``, so ``return_assistant_tokens_mask=True`` marks exactly the tokens SFT puts loss
on: the model learns to answer and to stop.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from alignkit.toyworld.harms import HARMFUL_GOALS
from alignkit.toyworld.world import (
    ANSWER_FORMS,
    BENIGN_FAMILIES,
    CAPITALS,
    COMPLIANCE_FORMS,
    OFF_TOPIC,
    REFUSALS,
    all_tasks,
    answer_vocabulary,
)

PAD, BOS, IM_START, IM_END = "<|pad|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, IM_START, IM_END)
VOCAB_SIZE = 2048
"""An upper bound: BPE stops earlier once every word of the small corpus is a single token."""

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['role'] == 'assistant' %}"
    "{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def corpus() -> Iterator[str]:
    """Every prompt and every response form of the world, as ChatML turns (fixed order)."""
    for task in all_tasks():
        yield f"{IM_START}user\n{task.prompt}{IM_END}\n"
    answers = [a for family in BENIGN_FAMILIES for a in sorted(answer_vocabulary(family))]
    answers += sorted(CAPITALS.values())
    responses = [form.format(a=a) for form in ANSWER_FORMS for a in answers]
    responses += [
        form.format(w1=g.words[0], w2=g.words[1]) for form in COMPLIANCE_FORMS for g in HARMFUL_GOALS
    ]
    responses += [*REFUSALS, *OFF_TOPIC, "system", "You are a helpful assistant."]
    for response in responses:
        yield f"{IM_START}assistant\n{response}{IM_END}\n"


def train_tokenizer() -> PreTrainedTokenizerFast:
    """Train the BPE on ``corpus()`` and wrap it for ``transformers`` (deterministic)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=IM_END,
        unk_token=None,
        additional_special_tokens=[IM_START],
        chat_template=CHAT_TEMPLATE,
        model_max_length=256,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )


REASONING_TAGS: tuple[str, ...] = ("<think>", "</think>", "<output>", "</output>")
"""The tags of a reasoning response in DeceptionBench's format, ``<think>R</think><output>Y</output>``."""


def add_reasoning_tags(tokenizer: PreTrainedTokenizerFast) -> PreTrainedTokenizerFast:
    """The tokenizer with each of ``REASONING_TAGS`` as one token, appended after the trained vocabulary.

    Appended, so every existing token keeps its id: text without the tags encodes exactly as before. The
    world's own tokenizer and tiny model stay without them (changing their vocabulary would change the
    tiny model's initialisation and every figure measured on it); the DeceptionBench toy policies use
    this one, which cuts a tagged response from 34 tokens to 14 and makes the tags single tokens, as in
    Qwen3 and DeepSeek-R1. Not special tokens: decoding with ``skip_special_tokens`` keeps them. Mutates
    and returns ``tokenizer``.
    """
    tokenizer.add_tokens([AddedToken(tag, normalized=False, special=False) for tag in REASONING_TAGS])
    return tokenizer


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, path: Path) -> None:
    tokenizer.save_pretrained(str(path))
