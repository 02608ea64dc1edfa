"""lm-evaluation-harness interop (skipped where ``lm_eval`` is not installed: ``pip install 'alignkit[lm-eval]'``).

1. alignkit's results.json is read by lm-eval's own tooling: its table writer (``make_table``), its results
   schema (``lm_eval.result_schema.EvalResults``, checked with pydantic) and its ``EvaluationTracker``
   (saves the dict in its layout, where its file helpers find it again).
2. lm-eval tasks run on an alignkit Generator through ``AlignkitLM``: a tiny local task (YAML + jsonl
   written here) answered by ``WorldPolicy``, a real Generator that answers the toy world's questions from
   the world's facts (sounds right, capitals with a fixed wrong city), so exact match is known by hand.
"""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import pytest

pytest.importorskip("lm_eval")

from alignkit.cli import main  # noqa: E402
from alignkit.config import ConfigError, from_dict  # noqa: E402
from alignkit.eval import run_task  # noqa: E402
from alignkit.eval.interop.external import LMEvalConfig  # noqa: E402
from alignkit.eval.interop.lm_harness import AlignkitLM, cut_at, run_lm_eval  # noqa: E402
from alignkit.generate.base import Completion  # noqa: E402
from alignkit.toyworld import find_task  # noqa: E402
from alignkit.toyworld.deception import deception_scenarios, deceptive_response, honest_response  # noqa: E402
from alignkit.toyworld.world import correct_response  # noqa: E402

QUESTIONS = [  # (question, answer): 3 sounds, 2 capitals
    ("Tell me the sound a cat makes.", "meow"),
    ("What sound does a bee make?", "buzz"),
    ("What does a snake say?", "hiss"),
    ("What is the capital of Zorbia?", "Velmar"),
    ("Name the capital of Quandor.", "Triskel"),
]


class WorldPolicy:
    """Answers toy-world questions: the truth for sounds, "Nowhere" for capitals, and a second line after
    every answer (which lm-eval's ``until: ["\\n"]`` must cut). Counts the prompts it is asked."""

    def __init__(self) -> None:
        self.asked: list[list[dict]] = []
        self.samplings: list = []

    def generate(self, prompts, sampling, *, logprobs=False, seed=None):
        self.asked += [list(p) for p in prompts]
        self.samplings.append(sampling)
        out = []
        for i, prompt in enumerate(prompts):
            task = find_task(prompt[-1]["content"])
            answer = correct_response(task) if task.family == "sound" else "The answer is Nowhere."
            out.append(Completion(i, answer + "\nAnything else?"))
        return out


@pytest.fixture
def tasks(tmp_path):
    """A generate_until task and a multiple-choice one over QUESTIONS, as lm-eval YAMLs in a folder."""
    folder = tmp_path / "lm_tasks"
    folder.mkdir()
    data = folder / "facts.jsonl"
    data.write_text(
        "".join(
            json.dumps({"question": q, "answer": a, "choices": [a, "Nowhere"], "label": 0}) + "\n"
            for q, a in QUESTIONS
        )
    )
    common = f"dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\ntest_split: test\n"
    (folder / "facts_gen.yaml").write_text(
        "task: toy_facts_gen\n" + common + "output_type: generate_until\n"
        'doc_to_text: "{{question}}"\ndoc_to_target: "{{answer}}"\n'
        'generation_kwargs:\n  until: ["\\n"]\n  max_gen_toks: 16\n'
        "filter_list:\n  - name: answer-word\n    filter:\n"
        '      - function: regex\n        regex_pattern: "answer is (\\\\w+)"\n      - function: take_first\n'
        "metric_list:\n  - metric: exact_match\n    aggregation: mean\n    higher_is_better: true\n"
        "metadata:\n  version: 1.0\n"
    )
    (folder / "facts_mc.yaml").write_text(
        "task: toy_facts_mc\n" + common + "output_type: multiple_choice\n"
        'doc_to_text: "{{question}}"\ndoc_to_choice: choices\ndoc_to_target: label\n'
        "metric_list:\n  - metric: acc\nmetadata:\n  version: 1.0\n"
    )
    return folder


def config(tasks, out, **keys):
    base = {
        "model": "openai:http://127.0.0.1:9/v1#world-policy",  # a spec only: the LM is given below
        "include_path": str(tasks),
        "builtin_tasks": False,
        "bootstrap_iters": 0,
        "run": {"output_dir": str(out)},
    }
    return from_dict(LMEvalConfig, {**base, **keys})


def test_an_lm_eval_task_runs_on_an_alignkit_generator(tasks, tmp_path):
    policy = WorldPolicy()
    lm = AlignkitLM(policy, name="world-policy")
    results = run_lm_eval(["toy_facts_gen"], config(tasks, tmp_path / "run"), lm=lm, log=lambda *a: None)
    # by hand: the 3 sound answers are right, the 2 capitals wrong ("Nowhere"): 3/5
    assert results["results"]["toy_facts_gen"]["exact_match,answer-word"] == pytest.approx(3 / 5)
    assert results["model_name"] == "world-policy" and "samples" not in results
    # each question asked once, as one user turn; lm-eval's gen_kwargs as greedy decoding of 16 tokens
    assert sorted(p[0]["content"] for p in policy.asked) == sorted(q for q, _ in QUESTIONS)
    assert all(len(p) == 1 and p[0]["role"] == "user" for p in policy.asked)
    assert {(s.temperature, s.max_new_tokens) for s in policy.samplings} == {(0.0, 16)}
    rows = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    cat = next(r for r in rows if r["doc"]["question"].startswith("Tell me the sound"))
    assert cat["task"] == "toy_facts_gen" and cat["resps"] == [["The answer is meow."]]  # cut at "\n"
    assert json.loads((tmp_path / "run" / "results.json").read_text())["results"] == results["results"]

    # a rerun in the same folder asks the model nothing (lm-eval's request cache lives in the run folder)
    asked = len(policy.asked)
    again = run_lm_eval(
        ["toy_facts_gen"],
        config(tasks, tmp_path / "run", run={"output_dir": str(tmp_path / "run"), "resume": True}),
        lm=AlignkitLM(policy, name="world-policy"),
        log=lambda *a: None,
    )
    assert len(policy.asked) == asked
    assert again["results"]["toy_facts_gen"]["exact_match,answer-word"] == pytest.approx(3 / 5)


def test_log_likelihood_tasks_need_a_local_model(tasks, tmp_path):
    lm = AlignkitLM(WorldPolicy(), name="an endpoint")
    with pytest.raises(ConfigError, match="needs a local Hugging Face model.*an endpoint is generation-only"):
        run_lm_eval(["toy_facts_mc"], config(tasks, tmp_path / "mc"), lm=lm, log=lambda *a: None)
    assert not (tmp_path / "mc").exists()  # found before the run folder


def test_an_unknown_task_is_a_config_error_with_the_closest_names(tasks, tmp_path, capsys):
    argv = ["eval", "run", "lm-eval:toy_facts_gne", "model=openai:http://127.0.0.1:9/v1#m"]
    argv += [f"include_path={tasks}", "builtin_tasks=false", f"run.output_dir={tmp_path / 'never'}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "lm-eval has no task 'toy_facts_gne' (did you mean toy_facts_gen" in err
    assert not (tmp_path / "never").exists()


def test_stop_strings_cut_the_answer():
    assert cut_at("a\nb.c", ["\n", "."]) == "a"
    assert cut_at("abc", []) == "abc" and cut_at("abc", ["x"]) == "abc"


# ----------------------------------------------------------------------------- results.json read by lm-eval


class ScenarioPolicy:
    """Answers the toy world's DeceptionBench scenarios: the truth to inner prompts, and under pressure
    honestly except in Sycophancy scenarios, where the answer gives in (24 of 120: DTR 0.2 by hand)."""

    def __init__(self) -> None:
        self.outer = {}
        for s in deception_scenarios(0)["test"]:
            respond = deceptive_response if s.category == "Sycophancy" else honest_response
            self.outer[s.outer_user_prompt] = respond(s)

    def generate(self, prompts, sampling, *, logprobs=False, seed=None):
        texts = [p[-1]["content"] for p in prompts]
        return [
            Completion(i, self.outer.get(t) or correct_response(find_task(t))) for i, t in enumerate(texts)
        ]


def test_alignkit_results_json_is_read_by_lm_eval_tooling(tmp_path):
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.result_schema import EvalResults
    from lm_eval.utils import get_results_filenames, make_table
    from pydantic import TypeAdapter

    out = tmp_path / "run"
    run_task(
        "deceptionbench",
        model=ScenarioPolicy(),
        judge="fn:alignkit.toyworld.deception_oracle:agrees",
        bootstrap_iters=50,
        report=False,
        run={"output_dir": str(out)},
        log=lambda *a: None,
    )
    results = json.loads((out / "results.json").read_text())
    assert results["results"]["deceptionbench"]["dtr,none"] == pytest.approx(24 / 120)

    # lm-eval's table: one row per metric (name, version, filter, n-shot, metric, direction, value, ±, stderr);
    # the task's name on its first row, each breakdown value a nested subtask
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in make_table(results).splitlines()[2:]]
    top = list(itertools.takewhile(lambda cells: not cells[0].startswith("-"), rows))
    assert (top[0][0], top[0][1]) == ("deceptionbench", "1")  # name and version
    dtr = next(cells for cells in top if cells[4] == "dtr")
    stderr = results["results"]["deceptionbench"]["dtr_stderr,none"]
    assert (dtr[2], dtr[5], dtr[7]) == ("none", "↓", "±")
    assert float(dtr[6]) == pytest.approx(0.2, abs=0.005) and float(dtr[8]) == pytest.approx(
        stderr, abs=0.005
    )
    assert any(cells[0].endswith("category=Sycophancy") for cells in rows[len(top) :])

    # lm-eval's results schema: everything but `configs`/`config`, whose values lm-eval types as flat
    # strings although its own runs write ints and nested dicts there (num_fewshot, metadata, gen_kwargs)
    TypeAdapter(EvalResults).validate_python(
        {k: v for k, v in results.items() if k not in ("configs", "config")}
    )

    tracker = EvaluationTracker(output_path=str(tmp_path / "lm-eval-out"))
    tracker.general_config_tracker.model_name_sanitized = "alignkit__scenario-policy"
    tracker.save_results_aggregated(results=copy.deepcopy(results), samples=None)
    saved = [str(p) for p in (tmp_path / "lm-eval-out").rglob("*.json")]
    (found,) = get_results_filenames(saved)
    assert json.loads(Path(found).read_text())["results"] == results["results"]
