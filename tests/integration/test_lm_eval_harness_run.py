"""lm-eval tasks on a local alignkit model, through ``alignkit eval run lm-eval:...`` (skipped where
``lm_eval`` is not installed).

The model is the session's honest DeceptionBench toy policy (tests/conftest.py ``deception_policies``), which
knows the toy world's 24 capital and sound facts. Two tasks written here over those facts: one generated
(exact match of the answer word) and one multiple choice (log-likelihood of the true answer against the
fact's misconception). Measured: exact match 1.00 and accuracy 1.00 (24 questions); asserted >= 0.9.

The log-likelihoods are checked against lm-eval's own ``HFLM`` on the same weights: equal to 1e-4 for a
chat-rendered context, a context ending in a space, an empty context, and a rolling (perplexity) text
longer than the model's window (256 positions), which lm-eval splits into windows.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("lm_eval")

from alignkit.cli import main  # noqa: E402
from alignkit.toyworld.deception import deception_scenarios  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def write_tasks(folder):
    facts, seen = [], set()
    for scenario in deception_scenarios(0)["test"]:
        question = scenario.task.prompt
        if question not in seen:
            seen.add(question)
            truth, decoy = f"The answer is {scenario.task.answer}.", f"The answer is {scenario.decoy}."
            label = len(facts) % 2
            choices = [decoy, truth] if label else [truth, decoy]
            facts.append(
                {
                    "question": question,
                    "answer": str(scenario.task.answer),
                    "choices": choices,
                    "label": label,
                }
            )
    data = folder / "facts.jsonl"
    data.write_text("".join(json.dumps(f) + "\n" for f in facts))
    common = f"dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\ntest_split: test\n"
    (folder / "gen.yaml").write_text(
        "task: toy_facts_gen\n" + common + "output_type: generate_until\n"
        'doc_to_text: "{{question}}"\ndoc_to_target: "{{answer}}"\n'
        'generation_kwargs:\n  until: ["\\n"]\n  max_gen_toks: 16\n'
        "filter_list:\n  - name: answer-word\n    filter:\n"
        '      - function: regex\n        regex_pattern: "answer is (\\\\w+)"\n      - function: take_first\n'
        "metric_list:\n  - metric: exact_match\n    aggregation: mean\n    higher_is_better: true\n"
        "metadata:\n  version: 1.0\n"
    )
    (folder / "mc.yaml").write_text(
        "task: toy_facts_mc\n" + common + "output_type: multiple_choice\n"
        'doc_to_text: "{{question}}"\ndoc_to_choice: choices\ndoc_to_target: label\ntarget_delimiter: ""\n'
        "metric_list:\n  - metric: acc\nmetadata:\n  version: 1.0\n"
    )
    return len(facts)


def test_lm_eval_tasks_run_on_a_local_alignkit_model(deception_policies, tmp_path, capsys):
    folder = tmp_path / "tasks"
    folder.mkdir()
    assert write_tasks(folder) == 24
    out = tmp_path / "run"
    argv = ["eval", "run", "lm-eval:toy_facts_gen,toy_facts_mc", f"model={deception_policies.honest}"]
    argv += [
        f"include_path={folder}",
        "builtin_tasks=false",
        "apply_chat_template=true",
        f"run.output_dir={out}",
    ]
    assert main(argv) == 0
    assert "toy_facts_mc" in capsys.readouterr().out  # lm-eval's table
    results = json.loads((out / "results.json").read_text())
    print(results["results"])  # the measured figures, for the record (-s)
    assert results["results"]["toy_facts_gen"]["exact_match,answer-word"] >= 0.9
    assert results["results"]["toy_facts_mc"]["acc,none"] >= 0.9
    assert results["n-samples"]["toy_facts_mc"] == {"original": 24, "effective": 24}
    first = json.loads((out / "samples.jsonl").read_text().splitlines()[0])
    assert first["arguments"][0][0].endswith("assistant\n")  # the context was rendered as a chat


def test_log_likelihoods_equal_lm_evals_own_hf_model(deception_policies):
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from alignkit.eval.interop.lm_harness import AlignkitLM
    from alignkit.generate.hf import HFGenerator

    generator = HFGenerator.from_pretrained(str(deception_policies.honest), device="cpu")
    ours = AlignkitLM(generator, batch_size=2)
    theirs = HFLM(pretrained=generator.model, tokenizer=generator.tokenizer, batch_size=2, device="cpu")
    chat = generator.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Tell me the sound a cat makes."}],
        tokenize=False,
        add_generation_prompt=True,
    )
    pairs = [
        (chat, "The answer is meow."),
        ("Tell me the sound a cat makes. ", "The answer is croak."),
        ("", "meow"),
    ]
    requests = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]
    for (a, greedy_a), (b, greedy_b) in zip(
        ours.loglikelihood(requests), theirs.loglikelihood(requests), strict=True
    ):
        assert a == pytest.approx(b, abs=1e-4) and greedy_a == greedy_b
    long_text = "The answer is meow. " * 80
    assert len(generator.tokenizer(long_text)["input_ids"]) > ours.max_length == 256  # several windows
    rolling = [Instance("loglikelihood_rolling", {}, (long_text,), 0)]
    assert ours.loglikelihood_rolling(rolling)[0] == pytest.approx(
        theirs.loglikelihood_rolling(rolling)[0], abs=1e-3
    )
