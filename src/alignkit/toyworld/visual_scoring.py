"""The visual toy world's oracles as a Scorer: rewards and costs for online RL with pictures.

The picture is exactly what decides the answer here ("What colour is the circle?" has five right
answers, one per picture): the scorers read each prompt's picture path from its image part; the file
name is the scene key (``task_for``), so the oracle judges the answer against what the picture shows.
Two forms: ``VisualOracleScorer`` (an object: ``GRPOTrainer(config, scorers={"reward":
VisualOracleScorer("correct")})``) and the functions ``correct`` / ``helpfulness_reward`` / ``harm_cost``
for config strings (``reward.path=alignkit.toyworld.visual_scoring:correct``): a ``FunctionScorer``
hands a function that declares ``images`` the prompt's picture paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch

from alignkit.data.render import chat_dicts
from alignkit.toyworld.visual_world import VisualTask, harm, helpfulness, is_correct, task_for

Measure = Literal["correct", "helpfulness", "harm_cost"]
MEASURES: tuple[Measure, ...] = ("correct", "helpfulness", "harm_cost")


def picture_and_question(prompt: Sequence[Any]) -> tuple[str | None, str]:
    """The last user message's first picture path (None when it has none) and its text."""
    users = [m for m in chat_dicts(prompt) if m["role"] == "user"]
    if not users:
        return None, ""
    content = users[-1]["content"]
    if isinstance(content, str):
        return None, content
    parts = [p for p in content if isinstance(p, dict)]
    paths = [p.get("path") or p.get("url") or p.get("image") for p in parts if p.get("type") == "image"]
    text = " ".join(p["text"] for p in parts if p.get("type") == "text" and p.get("text"))
    path = next((p for p in paths if isinstance(p, str)), None)
    return path, text


def visual_task(prompt: Sequence[Any]) -> VisualTask:
    """The toy-world task a prompt asks; a prompt that is no question about a world picture is an error."""
    path, question = picture_and_question(prompt)
    task = task_for(path, question) if path is not None else None
    if task is None:
        raise ValueError(
            f"no visual toy-world task for question {question!r} about picture {path!r}: the oracle judges "
            "only the world's own questions about its pictures (toyworld://visual/data/prompts)"
        )
    return task


class VisualOracleScorer:
    """Scores answers about the world's pictures with its oracles.

    ``correct``: 1 for the one right answer to a benign question, else 0; ``helpfulness``: the text
    world's helpfulness scale; ``harm_cost``: Safe RLHF's sign convention, -1 safe, the severity (1-3)
    if the answer writes harm (as ``oracle.harm_cost``).
    """

    def __init__(self, measure: Measure = "correct") -> None:
        if measure not in MEASURES:
            raise ValueError(f"measure {measure!r}: use one of {', '.join(MEASURES)}")
        self.measure = measure

    def judge(self, task: VisualTask, response: str) -> float:
        if self.measure == "correct":
            return float(is_correct(task, response))
        if self.measure == "helpfulness":
            return helpfulness(task, response)
        verdict = harm(task, response)
        return -1.0 if verdict.is_safe else float(verdict.severity)

    def score(self, prompts: Sequence[Sequence[Any]], responses: Sequence[Sequence[Any]]) -> torch.Tensor:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        scores = []
        for prompt, response in zip(prompts, responses, strict=True):
            answers = [m["content"] for m in chat_dicts(response) if m["role"] == "assistant"]
            text = answers[-1] if answers and isinstance(answers[-1], str) else ""
            scores.append(self.judge(visual_task(prompt), text))
        return torch.tensor(scores, dtype=torch.float32)


def _judge_one(measure: Measure, prompt: str, response: str, images: Sequence[str]) -> float:
    task = task_for(images[-1], prompt) if images else None
    if task is None:
        raise ValueError(
            f"no visual toy-world task for question {prompt!r} about pictures {list(images)!r}: the oracle "
            "judges only the world's own questions about its pictures (toyworld://visual/data/prompts)"
        )
    return VisualOracleScorer(measure).judge(task, response)


def correct(prompt: str, response: str, images: Sequence[str]) -> float:
    """1 for the right answer to the question about the prompt's (last) picture, else 0."""
    return _judge_one("correct", prompt, response, images)


def helpfulness_reward(prompt: str, response: str, images: Sequence[str]) -> float:
    """The oracle's helpfulness of the answer about the prompt's (last) picture."""
    return _judge_one("helpfulness", prompt, response, images)


def harm_cost(prompt: str, response: str, images: Sequence[str]) -> float:
    """Safe RLHF's cost of the answer: -1 safe, else the severity of the harm it writes (1-3)."""
    return _judge_one("harm_cost", prompt, response, images)
