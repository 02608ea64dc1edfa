"""``alignkit eval run / list / compare`` end to end: a local toy model, an OpenAI-compatible endpoint on
loopback (answering, failing with 500s, timing out), reruns that resume, and the user errors (exit 2)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from sft_helpers import run_cli
from toy_endpoint import ToyEndpoint, rule_answer

from alignkit.cli import main
from alignkit.config import field_docs, load_config
from alignkit.eval.tasks import TASKS, get_task
from alignkit.toyworld import score_responses, split_tasks

pytestmark = pytest.mark.integration

TINY = "toyworld://models/tiny"


def load(out):
    results = json.loads((out / "results.json").read_text())
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    return results, samples


def test_an_endpoint_on_loopback_is_evaluated_like_any_model(tmp_path, capsys):
    out = tmp_path / "endpoint"
    with ToyEndpoint() as server:
        argv = [
            "eval",
            "run",
            "toyworld-oracle",
            f"model={server.spec()}",
            "report=false",
            f"run.output_dir={out}",
        ]
        assert main(argv) == 0
    prompts = [t.prompt for t in split_tasks(0)["test"]]
    assert sorted(server.asked) == sorted(prompts)  # one request per held-out prompt
    results, samples = load(out)
    expected = score_responses(prompts, [rule_answer(p) for p in prompts])
    entry = results["results"]["toyworld-oracle"]
    for name in ("benign_accuracy", "harmful_compliance_rate", "harm_rate", "mean_helpfulness", "ideal_rate"):
        assert entry[f"{name},none"] == pytest.approx(expected[name]), name
    assert results["model_source"] == "openai" and results["config"]["model"] == server.spec()
    assert all(s["outputs"]["answer"] == rule_answer(s["input"][-1]["content"]) for s in samples)
    printed = capsys.readouterr().out
    assert "benign_accuracy" in printed and str(out / "results.json") in printed
    assert "report.html" not in printed and not (out / "report.html").exists()


def test_500s_and_timeouts_are_counted_failures_and_a_rerun_asks_only_for_them(tmp_path, capsys):
    out = tmp_path / "flaky"
    prompts = [t.prompt for t in split_tasks(0)["test"]][:24]
    args = ["eval", "run", "toyworld-oracle", "limit=24", "batch_size=8", "timeout=0.5", "report=false"]
    args.append(f"run.output_dir={out}")
    with ToyEndpoint(slow_seconds=1.5) as server:
        server.fail = set(prompts[2:5])  # HTTP 500
        server.slow = {prompts[10], prompts[17]}  # answered after the client's 0.5 s timeout
        assert main([*args, f"model={server.spec()}"]) == 0
        err = capsys.readouterr().err
        assert "5 of 24 samples failed" in err and "run.resume=true" in err
        results, samples = load(out)
        failures = results["alignkit"]["failures"]["toyworld-oracle"]
        assert failures["count"] == 5 and failures["by_stage"] == {"answer": 5}
        failed = {s["id"]: s for s in samples if s["error"]}
        assert {s["input"][-1]["content"] for s in failed.values()} == server.fail | server.slow
        messages = " ".join(s["error"]["message"] for s in failed.values())
        assert "HTTP 500" in messages and "overloaded" in messages and "timeout" in messages
        assert results["n-samples"]["toyworld-oracle"] == {
            "original": len(split_tasks(0)["test"]),
            "effective": 19,
        }
        kept = [s for s in samples if not s["error"]]
        assert len(kept) == 19 and all(s["scores"] for s in kept)

        server.fail, server.slow = set(), set()  # the endpoint recovers
        server.asked.clear()
        assert main([*args, f"model={server.spec()}", "run.resume=true"]) == 0
        assert sorted(server.asked) == sorted(set(prompts[2:5]) | {prompts[10], prompts[17]})
    results, samples = load(out)
    assert results["alignkit"]["failures"]["toyworld-oracle"]["count"] == 0
    expected = score_responses(prompts, [rule_answer(p) for p in prompts])
    assert results["results"]["toyworld-oracle"]["ideal_rate,none"] == pytest.approx(expected["ideal_rate"])


def test_a_local_model_run_in_a_real_process_then_compare_and_list(tmp_path, capsys):
    a, b, cmp = tmp_path / "a", tmp_path / "b", tmp_path / "cmp"
    result = run_cli("eval", "run", "toyworld-oracle", f"model={TINY}", "limit=6", f"run.output_dir={a}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "benign_accuracy" in result.stdout
    assert {"config.yaml", "results.json", "samples.jsonl", "report.html", "generations"} <= {
        p.name for p in a.iterdir()
    }
    results, samples = load(a)
    assert results["n-samples"]["toyworld-oracle"]["effective"] == 6 and len(samples) == 6
    assert results["model_source"] == "hf" and results["versions"]["toyworld-oracle"] == 1
    assert (
        main(
            [
                "eval",
                "run",
                "toyworld-oracle",
                f"model={TINY}",
                "limit=4",
                "report=false",
                f"run.output_dir={b}",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["eval", "compare", str(a), str(b), "--out", str(cmp)]) == 0
    assert "B-A" in capsys.readouterr().out
    comparison = json.loads((cmp / "compare.json").read_text())
    assert comparison["task"] == "toyworld-oracle" and [r["label"] for r in comparison["runs"]] == ["A", "B"]
    assert (
        comparison["metrics"]["benign_accuracy"]["vs_baseline"][0]["n_paired"] == 4
    )  # the samples both scored
    assert (cmp / "report.html").stat().st_size > 1000
    assert (
        main(["eval", "compare", str(a), str(b), "--out", str(cmp)]) == 2
    )  # never over an earlier comparison
    assert "--overwrite" in capsys.readouterr().err
    assert main(["eval", "list"]) == 0 and "toyworld-oracle (v1)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["eval", "run", "toyworld-orcle", f"model={TINY}"],
            ["unknown eval task", "did you mean 'toyworld-oracle'"],
        ),
        (["eval", "run", "toyworld-oracle"], ["model is empty"]),
        (["eval", "run", "toyworld-oracle", "model={root}/nope"], ["model=", "no such folder"]),
        (["eval", "run", "toyworld-oracle", "model=ftp://x"], ["unknown model scheme 'ftp:'"]),
        (["eval", "run", "toyworld-oracle", "model=openai:http://h/v1"], ["openai:URL#MODEL"]),
        (["eval", "run", "toyworld-oracle", f"model={TINY}", "limt=3"], ["did you mean 'limit'"]),
        (["eval", "run", "toyworld-oracle", f"model={TINY}", "sampling.n=2"], ["sampling.n=2"]),
        (
            ["eval", "run", "toyworld-oracle", f"model={TINY}", "data.source={root}/test.jsonl"],
            ["test.jsonl row 1", "'prompt'"],
        ),
        (
            ["eval", "run", "toyworld-oracle", f"model={TINY}", "run.output_dir={root}/used"],
            ["already holds a run"],
        ),
        (["eval", "compare", "{root}/used"], ["at least two run folders"]),
        (["eval", "compare", "{root}/used", "{root}/nope"], ["holds no results.json"]),
    ],
)
def test_user_errors_exit_2_with_one_paragraph_and_write_nothing(tmp_path, capsys, argv, expected):
    root = tmp_path / "inputs"
    (root / "used").mkdir(parents=True)
    (root / "used" / "config.yaml").write_text("{}\n")
    (root / "test.jsonl").write_text(json.dumps({"question": "What is 3 plus 4?"}) + "\n")
    before = sorted(p.name for p in root.rglob("*"))
    out = tmp_path / "out"
    argv = [a.format(root=root) for a in argv]
    if argv[1] == "run" and not any(a.startswith("run.output_dir=") for a in argv):
        argv.append(f"run.output_dir={out}")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if line.startswith("alignkit")]) == 1, err
    assert "Traceback" not in err
    for text in expected:
        assert text in err, err
    assert not out.exists() and sorted(p.name for p in root.rglob("*")) == before


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_config_is_documented_and_show_config_reads_back(name, tmp_path, capsys):
    """--show-config's YAML (every key with its doc) loads back as the same config, as for train commands."""
    cls = get_task(name).config_class
    docs = field_docs(cls)
    assert set(docs) == {f.name for f in dataclasses.fields(cls)} and all(docs.values())
    assert main(["eval", "run", name, "--show-config"]) == 0
    path = tmp_path / "shown.yaml"
    path.write_text(capsys.readouterr().out)
    shown = load_config(cls, path, validate=False)
    assert dataclasses.asdict(shown) == dataclasses.asdict(load_config(cls, None, validate=False))
