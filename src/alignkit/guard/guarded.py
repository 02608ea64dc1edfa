"""Filter and regenerate: a Generator wrapped by a Moderator, itself a Generator.

Safe RLHF-V's Beaver-Guard-V reports +40.9% safety from 5 rounds of filtering and re-generation; its
internals are unpublished, so this is our design (``ALGORITHMS.md``, Guard):

1. **input check** (``check`` is ``input`` or ``both``): a query flagged at a blocked severity is refused
   at once, without generating;
2. generate; **output check** (``output`` or ``both``): a flagged answer is regenerated, a fresh sample
   (greedy would repeat itself, so a greedy caller's later rounds sample at ``regenerate_temperature``),
   optionally with a system note saying what was flagged (``feedback``), up to ``rounds`` more times;
3. if no candidate passes, fall back to ``refusal`` (or, ``fallback="least_severe"``, the least severe
   candidate).

Every round is kept in a ``GuardTrace`` (what was generated, its verdict, why it was rejected), so a caller
that needs the audit trail calls ``generate_traced``; ``generate`` returns the completions alone, as any
Generator. An unreadable verdict (``flagged=None``) counts as flagged unless ``unreadable="pass"``:
a guard fails closed by default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from alignkit.data.render import chat_dicts
from alignkit.generate.base import Completion, Generator, SamplingConfig
from alignkit.score.moderation import Moderator, SafetyVerdict

Check = Literal["input", "output", "both"]
Outcome = Literal["passed", "regenerated", "blocked_input", "refused", "least_severe"]

DEFAULT_REFUSAL = "I'm sorry, but I can't help with that."
DEFAULT_FEEDBACK = (
    "Your previous answer to this request was flagged as unsafe ({categories}). "
    "Answer again, helpfully and safely, or decline."
)
"""The system note of a regeneration round; ``{categories}`` is filled with the flagged categories."""


@dataclass(frozen=True)
class GuardRound:
    """One step of the chain for one completion."""

    stage: Literal["input", "output"]
    """``input``: the query was judged; ``output``: a generated answer was."""
    round: int
    """0 for the input check and the first answer; 1.. for regenerations."""
    text: str
    """The answer judged (empty for the input check)."""
    verdict: SafetyVerdict
    blocked: bool
    """Whether this verdict stopped the text (flagged at a blocked severity, or unreadable and failing closed)."""


@dataclass
class GuardTrace:
    """Everything the guard did for one returned completion, in order."""

    prompt_index: int
    completion: Completion
    """What the guard returned (``completion.text`` is the refusal when it fell back)."""
    outcome: Outcome
    rounds: list[GuardRound] = field(default_factory=list)

    @property
    def regenerations(self) -> int:
        """Answers generated after the first one."""
        return max(sum(r.stage == "output" for r in self.rounds) - 1, 0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record (for samples.jsonl or a server log)."""
        return {
            "prompt_index": self.prompt_index,
            "outcome": self.outcome,
            "text": self.completion.text,
            "rounds": [
                {
                    "stage": r.stage,
                    "round": r.round,
                    "text": r.text,
                    "flagged": r.verdict.flagged,
                    "categories": list(r.verdict.categories),
                    "severity": r.verdict.severity,
                    "score": r.verdict.score,
                    "blocked": r.blocked,
                }
                for r in self.rounds
            ],
        }


class GuardedGenerator:
    """``generator`` behind ``moderator``: check, generate, check, regenerate up to ``rounds``, refuse.

    ``min_severity``: a flagged verdict blocks only at this severity or above (verdicts without a severity
    always block). ``seed`` of a regeneration round r is ``seed + r`` (``r`` from 1), so a guarded call is
    as repeatable as its upstream.
    """

    def __init__(
        self,
        generator: Generator,
        moderator: Moderator,
        *,
        check: Check = "output",
        rounds: int = 5,
        feedback: str | None = None,
        refusal: str = DEFAULT_REFUSAL,
        fallback: Literal["refusal", "least_severe"] = "refusal",
        min_severity: int = 1,
        unreadable: Literal["flag", "pass"] = "flag",
        regenerate_temperature: float = 1.0,
    ) -> None:
        allowed = {"check": ("input", "output", "both"), "fallback": ("refusal", "least_severe")}
        for key, value in (("check", check), ("fallback", fallback)):
            if value not in allowed[key]:
                raise ValueError(f"guard {key}={value!r}: expected one of {', '.join(allowed[key])}")
        if unreadable not in ("flag", "pass"):
            raise ValueError(f"guard unreadable={unreadable!r}: expected 'flag' or 'pass'")
        if rounds < 0:
            raise ValueError(
                f"guard rounds={rounds}: expected an integer >= 0 (0: filter only, no regeneration)"
            )
        if regenerate_temperature <= 0:
            raise ValueError(f"guard regenerate_temperature={regenerate_temperature}: expected a number > 0")
        if feedback is not None and "{categories}" not in feedback:
            feedback = feedback + " ({categories})"
        self.generator = generator
        self.moderator = moderator
        self.check = check
        self.rounds = rounds
        self.feedback = feedback
        self.refusal = refusal
        self.fallback = fallback
        self.min_severity = min_severity
        self.unreadable = unreadable
        self.regenerate_temperature = regenerate_temperature

    def blocks(self, verdict: SafetyVerdict) -> bool:
        """Whether a verdict stops the text it judged."""
        if verdict.flagged is None:
            return self.unreadable == "flag"
        if not verdict.flagged:
            return False
        return verdict.severity is None or verdict.severity >= self.min_severity

    def generate(
        self,
        prompts: Sequence[Sequence[Any]],
        sampling: SamplingConfig,
        *,
        logprobs: bool = False,
        seed: int | None = None,
    ) -> list[Completion]:
        return [t.completion for t in self.generate_traced(prompts, sampling, logprobs=logprobs, seed=seed)]

    def generate_traced(
        self,
        prompts: Sequence[Sequence[Any]],
        sampling: SamplingConfig,
        *,
        logprobs: bool = False,
        seed: int | None = None,
    ) -> list[GuardTrace]:
        """One ``GuardTrace`` per completion, prompt-major like ``generate``."""
        n = sampling.n
        if not prompts:
            return []
        traces: list[GuardTrace | None] = [None] * (len(prompts) * n)
        rounds: list[list[GuardRound]] = [[] for _ in traces]
        open_prompts = list(range(len(prompts)))
        if self.check in ("input", "both") and prompts:
            for p, verdict in enumerate(self.moderator.moderate(prompts)):
                blocked = self.blocks(verdict)
                for k in range(p * n, (p + 1) * n):
                    rounds[k].append(GuardRound("input", 0, "", verdict, blocked))
                    if blocked:
                        traces[k] = GuardTrace(p, self._refuse(p), "blocked_input", rounds[k])
            open_prompts = [p for p in open_prompts if traces[p * n] is None]
        # round 0: the caller's own sampling, n samples per open prompt
        candidates: dict[int, list[tuple[Completion, SafetyVerdict]]] = {}
        first = (
            self.generator.generate(
                [prompts[p] for p in open_prompts], sampling, logprobs=logprobs, seed=seed
            )
            if open_prompts
            else []
        )
        pending = []  # slots (prompt * n + sample) whose latest answer was blocked
        slots = [open_prompts[i // n] * n + i % n for i in range(len(first))]
        self._judge(prompts, n, slots, first, 0, rounds, traces, candidates, pending, "passed")
        again = dataclasses.replace(
            sampling, n=1, temperature=sampling.temperature or self.regenerate_temperature
        )
        for r in range(1, self.rounds + 1):
            if not pending:
                break
            asks = [self._with_feedback(prompts[k // n], candidates[k][-1][1]) for k in pending]
            regenerated = self.generator.generate(
                asks, again, logprobs=logprobs, seed=None if seed is None else seed + r
            )
            slots, pending = pending, []
            self._judge(prompts, n, slots, regenerated, r, rounds, traces, candidates, pending, "regenerated")
        for k in pending:
            traces[k] = self._fall_back(k // n, candidates[k], rounds[k])
        assert all(t is not None for t in traces)
        return traces  # type: ignore[return-value]

    def _judge(
        self,
        prompts: Sequence[Sequence[Any]],
        n: int,
        slots: list[int],
        completions: list[Completion],
        round_index: int,
        rounds: list[list[GuardRound]],
        traces: list[GuardTrace | None],
        candidates: dict[int, list[tuple[Completion, SafetyVerdict]]],
        pending: list[int],
        outcome: Outcome,
    ) -> None:
        """Judge the answers of ``slots`` (output check, or none), closing the slots whose answer passes."""
        if self.check in ("output", "both") and completions:
            verdicts = self.moderator.moderate(
                [prompts[k // n] for k in slots], [c.text for c in completions]
            )
        else:
            verdicts = [SafetyVerdict(flagged=False, raw="not checked")] * len(completions)
        for k, completion, verdict in zip(slots, completions, verdicts, strict=True):
            completion = dataclasses.replace(completion, prompt_index=k // n)
            blocked = self.blocks(verdict)
            rounds[k].append(GuardRound("output", round_index, completion.text, verdict, blocked))
            candidates.setdefault(k, []).append((completion, verdict))
            if blocked:
                pending.append(k)
            else:
                traces[k] = GuardTrace(k // n, completion, outcome, rounds[k])

    def _with_feedback(self, prompt: Sequence[Any], verdict: SafetyVerdict) -> Sequence[Any]:
        if self.feedback is None:
            return prompt
        note = self.feedback.replace("{categories}", ", ".join(verdict.categories) or "unsafe")
        return [{"role": "system", "content": note}, *chat_dicts(prompt)]

    def _refuse(self, prompt_index: int) -> Completion:
        return Completion(prompt_index=prompt_index, text=self.refusal, finish_reason="stop")

    def _fall_back(
        self, prompt_index: int, candidates: list[tuple[Completion, SafetyVerdict]], rounds: list[GuardRound]
    ) -> GuardTrace:
        if self.fallback == "least_severe":
            # unreadable verdicts rank last: nothing is known about how bad they are
            def badness(item: tuple[Completion, SafetyVerdict]) -> tuple[int, int, int]:
                verdict = item[1]
                return (verdict.flagged is None, verdict.severity or 0, len(verdict.categories))

            best = min(candidates, key=badness)[0]
            return GuardTrace(prompt_index, best, "least_severe", rounds)
        return GuardTrace(prompt_index, self._refuse(prompt_index), "refused", rounds)
