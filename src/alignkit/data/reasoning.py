"""Reasoning and answer: the two parts of a response from a model that thinks before it answers.

Reasoning models (Qwen3, DeepSeek-R1 and its distills) write ``<think>reasoning</think>answer``. Some
templates open the block in the prompt (DeepSeek-R1 distills end the generation prompt with
``<think>\\n``), so a sampled response may start *inside* the reasoning and carry only the closing tag.
Scorers that judge the answer (a reward model, a correctness rule) and monitors that read the reasoning
(DeceptionBench, chain-of-thought monitors) both need the split; it is one pure function so every
caller splits the same way.
"""

from __future__ import annotations

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
