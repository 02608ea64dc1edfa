"""The runner with a rule-answering Generator: two stages, the cache, counted failures, reruns, run folders.

``ShoutGenerator`` is a real Generator (it obeys the protocol and computes its answers: the prompt in
capitals), and it counts every prompt it is asked, so "a rerun generates nothing" is measured, not assumed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from alignkit.config import ConfigError
from alignkit.eval import run_task
from alignkit.eval.task import Metric, ModelTaskConfig, Sample, Scored, Stage, Task
from alignkit.generate.base import Completion, Generator
from alignkit.runs import RunFailure, RunFolderError, RunInterrupted


class ShoutGenerator:
    """Answers every prompt with its last message in capitals; raises (like an endpoint's 500) for the
    prompts in ``fail``, for the whole batch as ``OpenAIGenerator`` does."""

    cache_identity = "shout-rule-v1"

    def __init__(self, fail: set[str] | None = None) -> None:
        self.fail = set(fail or ())
        self.calls = 0
        self.asked: list[str] = []

    def generate(self, prompts, sampling, *, logprobs=False, seed=None):
        self.calls += 1
        out = []
        for i, prompt in enumerate(prompts):
            text = prompt[-1]["content"]
            self.asked.append(text)
            if text in self.fail:
                raise RuntimeError(f"POST http://fake/v1/chat/completions failed with HTTP 500 for {text!r}")
            out.append(Completion(prompt_index=i, text=text.upper(), finish_reason="stop"))
        return out


class Unidentified(ShoutGenerator):
    cache_identity = None


@dataclass
class ShoutConfig(ModelTaskConfig):
    words: list[str] = field(default_factory=lambda: ["a", "bb", "ccc", "dd"])
    """The prompts."""


class ShoutTask(Task):
    """The model must shout each word back, then repeat itself when asked again (two stages)."""

    name = "shout"
    config_class = ShoutConfig
    breakdowns = ("length",)
    metrics = (
        Metric("shouted", True, "the answer is the word in capitals"),
        Metric("repeated", True, "the second answer repeats the first"),
    )

    def samples(self):
        return [
            Sample(w, ({"role": "user", "content": w},), target=w.upper(), metadata={"length": len(w)})
            for w in self.config.words
        ]

    def stages(self):
        return [
            Stage("answer", lambda sample, outputs: sample.input),
            Stage(
                "again", lambda sample, outputs: [{"role": "user", "content": f"again: {outputs['answer']}"}]
            ),
        ]

    def score(self, samples, outputs):
        return [
            Scored(
                {
                    "shouted": float(o["answer"] == s.target),
                    "repeated": float(o["again"] == f"AGAIN: {o['answer']}"),
                },
                {"rule": o["answer"]},
            )
            for s, o in zip(samples, outputs, strict=True)
        ]


def quiet(*args):
    pass


def run(generator, out, **keys):
    return run_task(
        ShoutTask, model=generator, run={"output_dir": str(out), **keys.pop("run", {})}, log=quiet, **keys
    )


def samples_of(out):
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


def test_the_fake_is_a_generator():
    assert isinstance(ShoutGenerator(), Generator)


def test_a_run_writes_every_stage_verdict_and_score(tmp_path):
    generator = ShoutGenerator()
    results = run(generator, tmp_path / "r")
    assert generator.asked == ["a", "bb", "ccc", "dd", "again: A", "again: BB", "again: CCC", "again: DD"]
    assert (
        results["results"]["shout"]["shouted,none"] == 1.0
        and results["results"]["shout"]["repeated,none"] == 1.0
    )
    rows = samples_of(tmp_path / "r")
    assert rows[1]["id"] == "bb" and rows[1]["outputs"] == {"answer": "BB", "again": "AGAIN: BB"}
    assert rows[1]["verdicts"] == {"rule": "BB"} and rows[1]["scores"] == {"shouted": 1.0, "repeated": 1.0}
    assert rows[1]["error"] is None and rows[1]["metadata"] == {"length": 2}
    assert json.loads((tmp_path / "r" / "results.json").read_text()) == json.loads(json.dumps(results))
    assert "shout/length=2" in results["group_subtasks"]["shout"]
    report = (tmp_path / "r" / "report.html").read_text()
    assert "By length" in report and "data:image/png;base64," in report
    assert results["config"]["model_identity"] == {"model": "python:shout-rule-v1"}


def test_a_rerun_and_a_rescoring_generate_nothing(tmp_path):
    generator = ShoutGenerator()
    first = run(generator, tmp_path / "r")
    calls = generator.calls
    again = run(generator, tmp_path / "r", run={"resume": True})
    assert generator.calls == calls  # every answer came from the cache
    assert again["results"] == first["results"]
    rescored = run(generator, tmp_path / "other", cache_dir=str(tmp_path / "r" / "generations"))
    assert generator.calls == calls and rescored["results"] == first["results"]
    more = run(
        generator, tmp_path / "more", cache_dir=str(tmp_path / "r" / "generations"), words=["a", "new"]
    )
    assert generator.asked[-2:] == ["new", "again: NEW"]  # only what the cache lacks
    assert more["n-samples"]["shout"]["effective"] == 2


def test_failures_are_counted_kept_apart_and_a_rerun_fills_only_the_gaps(tmp_path, capsys):
    generator = ShoutGenerator(fail={"bb"})
    results = run(generator, tmp_path / "r")
    failures = results["alignkit"]["failures"]["shout"]
    assert (
        failures["count"] == 1
        and failures["by_stage"] == {"answer": 1}
        and failures["samples"][0]["id"] == "bb"
    )
    assert "HTTP 500" in failures["samples"][0]["message"]
    assert results["n-samples"]["shout"] == {"original": 4, "effective": 3}
    assert results["results"]["shout"]["sample_len"] == 3
    row = samples_of(tmp_path / "r")[1]
    assert row["error"]["stage"] == "answer" and row["scores"] == {} and row["outputs"] == {}
    assert "1 of 4 samples failed" in capsys.readouterr().err

    generator.fail.clear()  # the endpoint is back
    generator.asked.clear()
    fixed = run(generator, tmp_path / "r", run={"resume": True})
    assert generator.asked == ["bb", "again: BB"]  # the failed sample only; the rest came from the cache
    assert fixed["alignkit"]["failures"]["shout"]["count"] == 0
    assert fixed["n-samples"]["shout"]["effective"] == 4


def test_every_sample_failing_is_a_run_failure_with_the_record_kept(tmp_path):
    generator = ShoutGenerator(fail={"a", "bb", "ccc", "dd"})
    with pytest.raises(RunFailure, match="every one of the 4 samples failed"):
        run(generator, tmp_path / "r")
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["alignkit"]["failures"]["shout"]["count"] == 4
    assert results["results"]["shout"]["shouted,none"] is None


def test_a_generator_without_an_identity_is_never_cached(tmp_path):
    generator = Unidentified()
    run(generator, tmp_path / "r")
    calls = generator.calls
    run(generator, tmp_path / "r", run={"resume": True})
    assert generator.calls == 2 * calls
    assert not (tmp_path / "r" / "generations").exists()


def test_a_finished_run_is_never_overwritten_unless_asked(tmp_path):
    run(ShoutGenerator(), tmp_path / "r")
    before = (tmp_path / "r" / "results.json").read_text()
    with pytest.raises(RunFolderError, match="already holds a run"):
        run(ShoutGenerator(), tmp_path / "r", words=["x"])
    assert (tmp_path / "r" / "results.json").read_text() == before
    replaced = run(ShoutGenerator(), tmp_path / "r", words=["x"], run={"overwrite": True})
    assert replaced["n-samples"]["shout"]["original"] == 1


def test_api_errors_name_the_task_or_key(tmp_path):
    with pytest.raises(ConfigError, match="unknown eval task 'shout'.*toyworld-oracle"):
        run_task("shout", model="x")
    with pytest.raises(ConfigError, match="unknown config key 'wordz'"):
        run(ShoutGenerator(), tmp_path / "r", wordz=["a"])
    with pytest.raises(ConfigError, match="either config= or config keys"):
        run_task(ShoutTask, config=ShoutConfig(model="x"), limit=2)
    assert not (tmp_path / "r").exists()


class CtrlC(ShoutGenerator):
    """Stops (as Ctrl-C does) when asked its third prompt."""

    def generate(self, prompts, sampling, *, logprobs=False, seed=None):
        if len(self.asked) == 2:
            raise KeyboardInterrupt
        return super().generate(prompts, sampling, logprobs=logprobs, seed=seed)


def test_ctrl_c_keeps_the_answers_so_far_and_resume_continues(tmp_path):
    with pytest.raises(RunInterrupted, match="run.resume=true"):
        run(CtrlC(), tmp_path / "r", batch_size=1)
    assert not (tmp_path / "r" / "results.json").exists()
    generator = ShoutGenerator()
    results = run(generator, tmp_path / "r", batch_size=1, run={"resume": True})
    assert generator.asked[:2] == ["ccc", "dd"]  # a and bb were answered before the interruption
    assert results["n-samples"]["shout"]["effective"] == 4
