"""The online (rollout) benchmarks' instruments: patching a method for the length of a run, phase timers,
the rollout recorder, one timed ``train(config)`` call, and the summary of a rollout run."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

from .measure import alignkit_step_log, cpu_clock_at_metrics_log, metered


@contextlib.contextmanager
def patched(owner: Any, name: str, wrap: Callable[[Any], Any]) -> Iterator[None]:
    """Replace ``owner.name`` by ``wrap(original)`` for the duration of the block."""
    original = getattr(owner, name)
    setattr(owner, name, wrap(original))
    try:
        yield
    finally:
        setattr(owner, name, original)


def timed(phases: dict[str, float], phase: str, fn: Any, when: Callable[..., bool] | None = None) -> Any:
    """``fn`` that adds its wall time to ``phases[phase]`` (only for calls where ``when(*args)`` holds)."""

    def wrapper(*a: Any, **k: Any) -> Any:
        if when is not None and not when(*a, **k):
            return fn(*a, **k)
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            phases[phase] = phases.get(phase, 0.0) + time.perf_counter() - t0

    return wrapper


def rollout_recorder(calls: list[dict[str, Any]]) -> Callable[[Any], Any]:
    """Wrap ``HFGenerator.generate``: per call, the prompts' user texts and each completion's token count."""
    from alignkit.score.base import message_text

    def wrap(generate: Any) -> Any:
        def recorded(self: Any, prompts: Any, sampling: Any, **kw: Any) -> Any:
            out = generate(self, prompts, sampling, **kw)
            calls.append(
                {
                    "prompts": [message_text(p, "user") for p in prompts],
                    "lengths": [len(c.token_ids or ()) for c in out],
                }
            )
            return out

        return recorded

    return wrap


def run_rollout_timed(train: Any, config: Any, steps: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One public ``train(config)`` of an online trainer under the memory meter, its generator's calls
    recorded: (its per-step metrics lines, the raw run: clocks, rewards, rollouts, wall time, memory)."""
    from alignkit.generate.hf import HFGenerator

    calls: list[dict[str, Any]] = []
    with (
        patched(HFGenerator, "generate", rollout_recorder(calls)),
        cpu_clock_at_metrics_log() as cpu_at_log,
        metered() as measured,
    ):
        result = train(config)
    steps_log = alignkit_step_log(result, steps, key="step")
    return steps_log, {
        "step_end_s": [r["elapsed_s"] for r in steps_log],
        "step_end_cpu_s": cpu_at_log[:steps],
        "rewards": [r["reward/score"] for r in steps_log],
        "calls": calls,
        **measured,
    }


def summarise_rollout_run(raw: dict[str, Any], steps: int) -> dict[str, Any]:
    """Times over steps 2..N (end of step 1 to end of step N); completions and tokens of those steps."""
    ends = raw["step_end_s"]
    assert len(ends) == steps, f"expected {steps} step timings, got {len(ends)}"
    seconds = ends[-1] - ends[0]
    cpu = raw["step_end_cpu_s"]
    timed_calls = raw["calls"][1:steps]
    completions = sum(len(c["lengths"]) for c in timed_calls)
    tokens = sum(sum(c["lengths"]) for c in timed_calls)
    return {
        "timed_steps": steps - 1,
        "timed_s": seconds,
        "s_per_step": seconds / (steps - 1),
        "steps_per_s": (steps - 1) / seconds,
        "cpu_s_per_step": (cpu[-1] - cpu[0]) / (steps - 1),
        "completions_per_step": completions / (steps - 1),
        "completions_per_s": completions / seconds,
        "mean_completion_tokens": tokens / max(completions, 1),
        "completion_tokens_per_s": tokens / seconds,
        "mean_reward": statistics.fmean(raw["rewards"][:steps]),
        "wall_s": raw["wall_s"],
        **{k: v for k, v in raw.items() if k.endswith("_mib")},
    }


def describe_rollout_run(r: dict[str, Any]) -> str:
    """A timed rollout run's line in the repeats log."""
    return (
        f"{r['s_per_step']:.4f} s/step {r['cpu_s_per_step']:.4f} CPU s/step  "
        f"{r['completions_per_step']:.0f} completions/step, mean {r['mean_completion_tokens']:.2f} tokens"
    )
