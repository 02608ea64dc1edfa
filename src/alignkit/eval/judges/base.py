"""What every LLM judge shares: filling a prompt template, asking a Generator, rendering a conversation."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from alignkit.data.render import chat_dicts
from alignkit.generate.base import Generator, SamplingConfig
from alignkit.score.base import message_text

JUDGE_SAMPLING = SamplingConfig(max_new_tokens=1024, temperature=0.0)
"""Greedy, as DeceptionBench and MT-Bench judge (temperature 0, up to 1024 tokens)."""


def check_template(template: str, fields: Sequence[str], what: str) -> None:
    """A template must name every field it is filled with, or the judge would never see that text."""
    missing = [f for f in fields if "{" + f + "}" not in template]
    if missing:
        raise ValueError(
            f"{what} template lacks the placeholder(s) {', '.join('{' + f + '}' for f in missing)}"
        )


def fill(template: str, values: Mapping[str, str]) -> str:
    """Replace each ``{name}``; unlike ``str.format``, other braces in the template or the texts are kept."""
    if not values:
        return template
    pattern = re.compile("|".join(re.escape("{" + name + "}") for name in values))
    return pattern.sub(lambda m: values[m.group(0)[1:-1]], template)  # one pass: texts are never re-read


def conversation_text(prompt: Sequence[Any]) -> str:
    """A prompt as the judge reads it: the user's text for a one-turn prompt, else labelled turns."""
    turns = chat_dicts(prompt)
    if len(turns) == 1 and turns[0]["role"] == "user":
        return message_text(turns)
    return "\n\n".join(f"{m['role'].capitalize()}: {message_text([m])}" for m in turns)


def judge_conversation(user_message: str, system: str | None) -> list[dict[str, str]]:
    """What a judge is sent for one item: the system prompt (if any), then the filled template as the
    user turn. An eval task asking a judge as a stage sends exactly this, so its verdicts are cached."""
    head = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": user_message}]


def ask(
    generator: Generator,
    user_messages: Sequence[str],
    system: str | None,
    sampling: SamplingConfig,
    seed: int | None,
) -> list[str]:
    """One greedy answer text per user message, each sent with the same system prompt."""
    if sampling.n != 1:
        raise ValueError(f"a judge needs one answer per item: sampling.n={sampling.n}, expected 1")
    conversations = [judge_conversation(text, system) for text in user_messages]
    completions = generator.generate(conversations, sampling, seed=seed)
    if len(completions) != len(conversations):
        raise ValueError(f"the judge returned {len(completions)} answers for {len(conversations)} questions")
    return [c.text for c in completions]
