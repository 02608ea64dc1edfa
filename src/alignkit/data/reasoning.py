"""Reasoning and answer: the two parts of a response from a model that thinks before it answers.

Reasoning models (Qwen3, DeepSeek-R1 and its distills) write ``<think>reasoning</think>answer``. Some
templates open the block in the prompt (DeepSeek-R1 distills end the generation prompt with
``<think>\\n``), so a sampled response may start *inside* the reasoning and carry only the closing tag.
Scorers that judge the answer (a reward model, a correctness rule) and monitors that read the reasoning
(DeceptionBench, chain-of-thought monitors) both need the split; it is one pure function so every
caller splits the same way. ``extract_cot_and_answer`` is DeceptionBench's more forgiving split (tags of
several families, then a paragraph guess) for models that may ignore the requested format.
"""

from __future__ import annotations

import re

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


def split_reasoning(text: str) -> tuple[str, str]:
    """``(reasoning, answer)`` of a response, each stripped of surrounding whitespace.

    - ``"<think>r</think>a"`` and ``"r</think>a"`` (the block opened by the prompt) -> ``("r", "a")``;
    - no tags -> ``("", text)``: the whole response is the answer;
    - ``"<think>r"`` with no closing tag (cut off while thinking) -> ``("r", "")``: no answer yet.
    """
    if THINK_CLOSE in text:
        head, _, answer = text.partition(THINK_CLOSE)
        return head.split(THINK_OPEN, 1)[-1].strip(), answer.strip()
    stripped = text.lstrip()
    if stripped.startswith(THINK_OPEN):
        return stripped[len(THINK_OPEN) :].strip(), ""
    return "", text.strip()


OUTPUT_OPEN = "<output>"
OUTPUT_CLOSE = "</output>"
START_THINKING = "<|START_THINKING|>"
END_THINKING = "<|END_THINKING|>"
_THINK_BLOCK = re.compile(re.escape(THINK_OPEN) + r"(.*?)" + re.escape(THINK_CLOSE), re.DOTALL)
_OUTPUT_BLOCK = re.compile(re.escape(OUTPUT_OPEN) + r"(.*?)" + re.escape(OUTPUT_CLOSE), re.DOTALL)
_START_THINKING_BLOCK = re.compile(re.escape(START_THINKING) + r"(.*?)" + re.escape(END_THINKING), re.DOTALL)


def _answer(text: str) -> str:
    return text.replace(OUTPUT_OPEN, "").replace(OUTPUT_CLOSE, "").strip()


def extract_cot_and_answer(text: str) -> tuple[str, str]:
    """``(reasoning, answer)`` by DeceptionBench's fallback chain: the first rule that applies wins.

    1. ``<think>R</think>`` and ``<output>Y</output>`` -> ``(R, Y)``;
    2. ``<think>R</think>`` alone -> R, and the text without its think blocks as the answer;
    3. ``<|START_THINKING|>R<|END_THINKING|>`` (Cohere's tags) -> the same with those tags;
    4. ``</think>`` without its opening tag (the prompt opened the block) -> what precedes the last
       ``</think>``, and what follows it;
    5. ``<output>`` -> what precedes the last ``<output>``, and what follows it;
    6. blank-line paragraphs -> all but the last, and the last paragraph;
    7. otherwise ``("", text)``: no reasoning, the whole text is the answer.

    Unlike ``split_reasoning`` (untagged text is all answer), rules 5-6 guess: a model that ignores the
    benchmark's format instruction usually still reasons first and concludes last. ``<output>`` tags
    never stay in an answer. (DeceptionBench's released code reads a variable before defining it in
    rule 2; this is the intended behaviour, re-implemented.)
    """
    think = _THINK_BLOCK.search(text)
    output = _OUTPUT_BLOCK.search(text)
    if think and output:
        return think.group(1).strip(), output.group(1).strip()
    if think:
        return think.group(1).strip(), _answer(_THINK_BLOCK.sub("", text))
    cohere = _START_THINKING_BLOCK.search(text)
    if cohere:
        return cohere.group(1).strip(), _answer(_START_THINKING_BLOCK.sub("", text))
    for marker in (THINK_CLOSE, OUTPUT_OPEN):
        if marker in text:
            head, _, tail = text.rpartition(marker)
            return head.replace(marker, "\n\n").replace(THINK_OPEN, "").strip(), _answer(tail)
    paragraphs = text.strip().split("\n\n")
    if len(paragraphs) > 1:
        return "\n\n".join(paragraphs[:-1]).strip(), _answer(paragraphs[-1])
    return "", text.strip()
