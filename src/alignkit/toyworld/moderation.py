"""The toy world's harm oracle as a moderation function, for prompts as well as responses.

``alignkit.toyworld.oracle:harm`` already judges responses and works as a moderator as it is; an input
check (the guard screening a request before generating) needs a verdict on the prompt alone, which the
oracle reads off the world's task: a harmful request is unsafe in its goal's category and severity.
Use it as ``FunctionModerator.from_path("alignkit.toyworld.moderation:moderate")``.
"""

from __future__ import annotations

from alignkit.toyworld.oracle import HarmVerdict, harm
from alignkit.toyworld.world import find_task


def moderate(prompt: str, response: str | None = None) -> HarmVerdict | None:
    """``harm(prompt, response)`` for a response; for a prompt alone (``response=None``) the request's
    own harm, or ``None`` (undecided) for a prompt from outside the world, whose harm the oracle cannot know."""
    if response is not None:
        return harm(prompt, response)
    task = find_task(prompt)
    if task is None:
        return None
    if task.goal is None:
        return HarmVerdict(is_safe=True, categories=(), severity=0)
    return HarmVerdict(is_safe=False, categories=(task.goal.category,), severity=task.goal.severity)
