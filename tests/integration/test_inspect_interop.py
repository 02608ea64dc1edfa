"""inspect_ai tasks on alignkit models (skipped where ``inspect_ai`` is not installed:
``pip install 'alignkit[inspect]'``).

A tiny inspect task is written here: three toy-world questions (a sound, a capital, a sum), solved by
``generate()`` and scored by ``includes()`` (the target appears in the answer). It runs

- from Python on ``WorldPolicy``, a real Generator that answers from the toy world's facts (sums one
  too many) and appends a second line the task's ``stop_seqs`` must cut: accuracy by hand 2/3;
- through ``alignkit eval run inspect:FILE@toy_facts model=openai:...`` on the loopback toy endpoint
  (``toy_endpoint.py``: right answers except sums, wrong by rule): accuracy 2/3.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("inspect_ai")

from toy_endpoint import ToyEndpoint  # noqa: E402

from alignkit.cli import main  # noqa: E402
from alignkit.eval.interop.external import InspectConfig  # noqa: E402
from alignkit.eval.task import EvalOutputConfig  # noqa: E402
from alignkit.generate.base import Completion  # noqa: E402
from alignkit.toyworld import find_task  # noqa: E402
from alignkit.toyworld.world import correct_response  # noqa: E402

pytestmark = [pytest.mark.integration]

TASK_FILE = """
from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import GenerateConfig
from inspect_ai.scorer import includes
from inspect_ai.solver import generate


@task
def toy_facts():
    samples = [
        Sample(input="Tell me the sound a cat makes.", target="meow", id="cat"),
        Sample(input="What is the capital of Zorbia?", target="Velmar", id="zorbia"),
        Sample(input="What is 2 plus 3?", target="5", id="sum"),
    ]
    return Task(
        dataset=MemoryDataset(samples),
        solver=generate(),
        scorer=includes(),
        config=GenerateConfig(stop_seqs=["\\n"], max_tokens=16),
    )
"""


class WorldPolicy:
    """The toy world's facts, sums off by one, each answer followed by a second line."""

    def __init__(self) -> None:
        self.asked: list[list[dict]] = []
        self.samplings: list = []

    def generate(self, prompts, sampling, *, logprobs=False, seed=None):
        self.asked += [list(p) for p in prompts]
        self.samplings.append(sampling)
        out = []
        for i, prompt in enumerate(prompts):
            task = find_task(prompt[-1]["content"])
            text = (
                f"The answer is {int(task.answer) + 1}." if task.family == "add" else correct_response(task)
            )
            out.append(Completion(i, text + "\nThe sum is 5."))  # the second line would match the sum
        return out


@pytest.fixture
def task_file(tmp_path):
    path = tmp_path / "toy_tasks.py"
    path.write_text(TASK_FILE)
    return path


def test_an_inspect_task_runs_on_an_alignkit_generator(task_file, tmp_path):
    from alignkit.eval.interop.inspect_provider import run_inspect

    policy = WorldPolicy()
    config = InspectConfig(run=EvalOutputConfig(output_dir=str(tmp_path / "run")))  # the model is given below
    results = run_inspect(f"{task_file}@toy_facts", config, generator=policy, log=lambda *a: None)
    entry = results["results"]["toy_facts"]
    # by hand: cat and Zorbia right; the sum answered 6, and the "5" of the second line was cut: 2/3
    assert entry["accuracy,includes"] == pytest.approx(2 / 3)
    assert entry["sample_len"] == 3 and "accuracy_stderr,includes" in entry
    assert sorted(p[-1]["content"] for p in policy.asked) == sorted(
        ["Tell me the sound a cat makes.", "What is the capital of Zorbia?", "What is 2 plus 3?"]
    )
    assert {(s.temperature, s.max_new_tokens) for s in policy.samplings} == {(0.0, 16)}  # the task's limit
    rows = {
        r["id"]: r for r in map(json.loads, (tmp_path / "run" / "samples.jsonl").read_text().splitlines())
    }
    assert rows["sum"]["output"] == "The answer is 6." and rows["sum"]["scores"]["includes"]["value"] == "I"
    assert rows["cat"]["scores"]["includes"]["value"] == "C"
    assert list((tmp_path / "run" / "inspect-logs").glob("*.json"))  # inspect's own log, for `inspect view`


def test_cli_runs_an_inspect_task_on_an_endpoint(task_file, tmp_path, capsys):
    out = tmp_path / "run"
    with ToyEndpoint() as server:
        argv = [
            "eval",
            "run",
            f"inspect:{task_file}@toy_facts",
            f"model={server.spec()}",
            f"run.output_dir={out}",
        ]
        assert main(argv) == 0
        asked = sorted(server.asked)
    assert "accuracy,includes" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["results"]["toy_facts"]["accuracy,includes"] == pytest.approx(2 / 3)  # the sum is wrong
    assert results["model_source"] == "alignkit" and results["n-samples"]["toy_facts"]["effective"] == 3
    assert asked == sorted(
        ["Tell me the sound a cat makes.", "What is the capital of Zorbia?", "What is 2 plus 3?"]
    )
