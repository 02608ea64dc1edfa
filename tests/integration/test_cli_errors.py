"""A user's mistakes through the real CLI: one paragraph naming the key, file or path, the right exit status,
no traceback, and nothing written.

The table runs in-process through ``alignkit.cli.main(argv)`` (the function the ``alignkit`` script calls),
because a fresh interpreter per case costs seconds; a handful of cases run again as real subprocesses to
show the exit status and the absence of a traceback end to end. Every case must fail before a model is
loaded or anything trains, so the whole file stays well under a minute.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from sft_helpers import REPO, run_cli

from alignkit.cli import EVALUATIONS, TRAINERS, main
from alignkit.config import load_config

pytestmark = pytest.mark.integration

FIXTURES = REPO / "tests" / "fixtures" / "data"
TINY = "toyworld://models/tiny"


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[str, Path]:
    """Bad inputs a user could point a command at, and one real reward model to mix up with a cost model."""
    from alignkit.models.loading import load_tokenizer, save_pretrained
    from alignkit.models.score_model import new_score_model

    root = tmp_path_factory.mktemp("bad-inputs")
    (root / "bad.yaml").write_text("trainer:\n  lr: [1, 2\n")
    (root / "latin1.yaml").write_bytes("run:\n  output_dir: caf\xe9\n".encode("latin-1"))
    (root / "list.yaml").write_text("- lr: 1\n")
    (root / "a_file").write_text("not a model\n")
    (root / "empty").mkdir()
    (root / "run_folder" / "final").mkdir(parents=True)
    (root / "used_run").mkdir()
    (root / "used_run" / "config.yaml").write_text("{}\n")
    (root / "adapter").mkdir()
    (root / "adapter" / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": "/gone/base"})
    )
    tokenizer = load_tokenizer(TINY)
    save_pretrained(new_score_model(TINY, tokenizer, "reward"), tokenizer, root / "rm" / "final")
    names = ("bad.yaml", "latin1.yaml", "list.yaml", "a_file", "empty", "run_folder", "used_run", "adapter")
    return {name.replace(".", "_"): root / name for name in names} | {
        "reward_model": root / "rm" / "final",
        "root": root,
    }


def _cases() -> list[tuple[str, list[str], int, list[str]]]:
    """(id, argv with {placeholders}, exit status, texts the message must hold)."""
    ppo = ["train", "ppo", "reward.path=alignkit.toyworld.oracle:helpfulness"]
    grpo = ["train", "grpo", "reward.path=alignkit.toyworld.oracle:helpfulness"]
    dpo = ["train", "dpo", f"model.path={TINY}"]
    eval_rm = ["eval", "preference", "model.path={reward_model}"]
    return [
        # --- the config file
        ("config-missing", ["train", "sft", "--config", "{root}/nope.yaml"], 2, ["nope.yaml", "does not exist"]),
        ("config-folder", ["train", "sft", "--config", "{empty}"], 2, ["is a folder"]),
        ("config-yaml-syntax", ["train", "sft", "--config", "{bad_yaml}"], 2, ["bad.yaml", "not valid YAML", "line"]),
        ("config-not-utf8", ["train", "sft", "--config", "{latin1_yaml}"], 2, ["latin1.yaml", "not UTF-8"]),
        ("config-not-mapping", ["train", "sft", "--config", "{list_yaml}"], 2, ["list.yaml", "mapping"]),
        # --- overrides: keys, types, values
        ("override-bad-yaml", ["train", "sft", "trainer.lr=[1,"], 2, ["trainer.lr=[1,", "not valid YAML"]),
        ("override-no-key", ["train", "sft", "=3"], 2, ["key.sub=value"]),
        ("override-into-value", ["train", "sft", "trainer.lr.x=1"], 2, ["trainer.lr=", "a number"]),
        ("unknown-section", ["train", "sft", "trainr.lr=1"], 2, ["trainr", "did you mean 'trainer'"]),
        ("key-in-wrong-section", ["train", "sft", "max_steps=3"], 2, ["did you mean 'trainer.max_steps'"]),
        ("offline-steps-key", ["train", "sft", "trainer.steps=3"], 2, ["'trainer.max_steps'", "online"]),
        ("online-max-steps-key", [*ppo, "trainer.max_steps=3"], 2, ["did you mean 'trainer.steps'", "offline"]),
        ("online-epochs-key", [*grpo, "trainer.epochs=2"], 2, ["'trainer.steps'"]),
        ("trl-alias", ["train", "sft", "trainer.learning_rate=1e-3"], 2, ["did you mean 'trainer.lr'"]),
        ("wrong-type", ["train", "reward", "trainer.micro_batch_size=four"], 2, ["micro_batch_size", "integer"]),
        ("choice-typo", ["train", "cost", "trainer.lr_scheduler=cosin"], 2, ["did you mean 'cosine'"]),
        ("python-none", ["train", "sft", "model.tokenizer=None"], 2, ["model.tokenizer", "null"]),
        ("adam-beta-range", ["train", "sft", "trainer.adam_betas=[1.5,0.9]"], 2, ["trainer.adam_betas", "[0, 1)"]),
        ("adam-beta-count", ["train", "dpo", "trainer.adam_betas=[0.9]"], 2, ["trainer.adam_betas"]),
        ("online-adam-beta", [*grpo, "trainer.adam_betas=[0.9,1.0]"], 2, ["trainer.adam_betas"]),
        ("seed-negative-sft", ["train", "sft", "trainer.seed=-1"], 2, ["trainer.seed=-1"]),
        ("seed-negative-dpo", [*dpo, "trainer.seed=-1"], 2, ["trainer.seed=-1"]),
        ("seed-negative-reward", ["train", "reward", "trainer.seed=-1"], 2, ["trainer.seed=-1"]),
        ("seed-too-big-online", [*ppo, "trainer.seed=4294967296"], 2, ["trainer.seed"]),
        ("lr-zero", ["train", "sft", "trainer.lr=0"], 2, ["trainer.lr=0"]),
        ("warmup-range", ["train", "sft", "trainer.warmup_ratio=1.5"], 2, ["trainer.warmup_ratio"]),
        ("resume-and-overwrite", ["train", "sft", "run.resume=true", "run.overwrite=true"], 2, ["run.resume"]),
        ("output-dir-is-file", ["train", "sft", "run.output_dir={a_file}"], 2, ["run.output_dir", "is a file"]),
        ("output-dir-in-file", ["train", "sft", "run.output_dir={a_file}/run"], 2, ["run.output_dir", "a_file"]),
        ("eval-output-dir-file", [*eval_rm, "run.output_dir={a_file}"], 2, ["run.output_dir", "is a file"]),
        ("eval-old-output-key", [*eval_rm, "output_dir=x"], 2, ["did you mean 'run.output_dir'"]),
        ("eval-no-resume", [*eval_rm, "run.resume=true"], 2, ["run.resume"]),
        ("template-unknown", ["train", "sft", "data.train.template=nosuch"], 2, ["data.train.template='nosuch'"]),
        ("template-typo", ["train", "reward", "data.train.template=pku_saferlhf"], 2, ["did you mean 'pku-saferlhf'"]),
        ("template-online-eval", [*ppo, "data.eval.template=nosuch"], 2, ["data.eval.template"]),
        ("template-eval-cmd", [*eval_rm, "data.template=nosuch"], 2, ["data.template"]),
        ("max-length-zero", ["train", "sft", "data.max_length=0"], 2, ["data.max_length"]),
        ("max-rows-zero", ["train", "sft", "data.train.max_rows=0"], 2, ["data.train.max_rows"]),
        ("dpo-needs-model", ["train", "dpo"], 2, ["model.path", "alignkit train sft"]),
        ("dpo-beta", [*dpo, "beta=-1"], 2, ["beta=-1"]),
        ("dpo-smoothing-loss", [*dpo, "loss=ipo", "label_smoothing=0.1"], 2, ["label_smoothing"]),
        ("ppo-needs-reward", ["train", "ppo"], 2, ["reward.path"]),
        ("safe-ppo-needs-cost", ["train", "safe-ppo", "reward.path=a:b"], 2, ["cost"]),
        ("eval-needs-model", ["eval", "preference"], 2, ["model.path"]),
        ("eval-kind-typo", [*eval_rm, "kind=rewards"], 2, ["kind", "did you mean 'reward'"]),
        # --- model, tokenizer, scorer and critic paths (checked before any run folder)
        ("model-missing", ["train", "sft", "model.path={root}/nope"], 2, ["model.path=", "no such folder"]),
        ("model-is-file", ["train", "sft", "model.path={a_file}"], 2, ["model.path=", "is a file"]),
        ("model-empty-folder", ["train", "reward", "model.path={empty}"], 2, ["model.path=", "without a model"]),
        ("model-run-folder", [*dpo[:2], "model.path={run_folder}"], 2, ["model.path=", "final"]),
        ("model-relative-hub-offline", ["train", "sft", "model.path=my-runs/sft"], 2, ["model.path=", "HF_HUB_OFFLINE"]),
        ("model-hub-offline", ["train", "cost", "model.path=Qwen/Qwen2.5-0.5B-Instruct"], 2, ["HF_HUB_OFFLINE"]),
        ("model-relative-path", ["train", "sft", "model.path=runs/nope/final"], 2, ["no such folder", "working"]),
        ("model-toyworld-typo", ["train", "sft", "model.path=toyworld://models/tinyy"], 2, ["toy world", "tiny"]),
        ("adapter-base-missing", ["train", "sft", "model.path={adapter}"], 2, ["base_model_name_or_path", "/gone/base"]),
        ("tokenizer-empty", ["train", "sft", "model.tokenizer={empty}"], 2, ["model.tokenizer=", "tokenizer"]),
        ("chat-template-missing", ["train", "sft", "model.chat_template=nope.jinja"], 2, ["model.chat_template"]),
        ("dpo-reference-missing", [*dpo, "ref_model_path={root}/nope"], 2, ["ref_model_path="]),
        ("online-model-missing", [*ppo, "model.path={empty}"], 2, ["model.path="]),
        ("reward-path-missing", ["train", "ppo", "reward.path={root}/nope"], 2, ["reward.path="]),
        ("reward-fn-no-module", ["train", "ppo", "reward.path=nosuchmodule:fn"], 2, ["reward.path", "nosuchmodule"]),
        ("reward-fn-no-function", ["train", "grpo", "reward.path=alignkit.toyworld.oracle:nope"], 2, ["reward.path"]),
        ("reward-is-causal-lm", ["train", "ppo", f"reward.path={TINY}"], 2, ["reward.path=", "score_kind"]),
        ("cost-is-reward-model", [*ppo, "cost.path={reward_model}"], 2, ["cost.path=", "belongs in reward.path"]),
        ("safe-ppo-cost-kind", ["train", "safe-ppo", *ppo[2:], "cost.path={reward_model}"], 2, ["cost.path="]),
        ("monitor-empty", [*grpo, "monitor.path={empty}"], 2, ["monitor.path="]),
        ("critic-missing", [*ppo, "critic.path={root}/nope"], 2, ["critic.path="]),
        ("eval-model-missing", ["eval", "preference", "model.path={root}/nope"], 2, ["model.path="]),
        ("eval-kind-mismatch", [*eval_rm, "kind=cost"], 2, ["reward model", "set kind=reward"]),
        ("eval-dpo-reference", ["eval", "preference", f"model.path={TINY}", "kind=dpo", "reference={a_file}"], 2, ["reference="]),
        # --- data that does not fit the command or the model (read before the run folder is made)
        (
            "images-to-text-model",
            ["train", "sft", f"data.train.source={FIXTURES}/intermt_conversations.jsonl", "data.train.template=intermt"],
            2,
            ["data.train.source", "image", "row 1"],
        ),
        (
            "images-to-reward-model",
            ["train", "reward", f"data.train.source={FIXTURES}/align_anything_ti2t.jsonl",
             "data.train.template=align-anything-ti2t", "data.eval=null"],
            2,
            ["data.train.source", "image"],
        ),
        (
            "images-to-eval",
            [*eval_rm, f"data.source={FIXTURES}/align_anything_ti2t.jsonl", "data.template=align-anything-ti2t",
             "data.split=train"],
            2,
            ["data.source", "image"],
        ),
        ("sft-fewer-than-batch", ["train", "sft", "data.train.max_rows=3", "data.eval=null"], 2, ["3 training examples", "global batch"]),
        ("reward-fewer-than-batch", ["train", "reward", "data.train.max_rows=4", "trainer.grad_accum_steps=2"], 2, ["global batch of 16"]),
        ("dpo-fewer-than-batch", [*dpo, "data.train.max_rows=2", "data.eval=null"], 2, ["global batch"]),
        ("sft-wrong-records", ["train", "sft", "data.train.source=toyworld://data/safe_pref", "data.train.template=pku-saferlhf"], 2, ["needs Conversation"]),
        ("reward-wrong-records", ["train", "reward", "data.train.source=toyworld://data/sft", "data.train.template=trl", "data.eval=null"], 2, ["Preference"]),
        ("online-batch-split", [*ppo, "rollout.prompts_per_step=3", "trainer.mini_batch_size=2"], 2, ["trainer.mini_batch_size=2"]),
        ("online-too-few-prompts", [*grpo, "data.train.max_rows=3"], 2, ["rollout.prompts_per_step"]),
        ("online-vllm-with-lora", [*grpo, "rollout.backend=vllm", "model.lora.r=8"], 2, ["rollout.backend=vllm", "model.lora"]),
        ("run-folder-used", ["train", "sft", "run.output_dir={used_run}"], 2, ["run.overwrite=true"]),
        # --- the command line itself
        ("no-command", [], 2, ["COMMAND"]),
        ("unknown-algorithm", ["train", "sftt"], 2, ["invalid choice", "sftt"]),
        ("stray-argument", ["train", "sft", "oops"], 2, ["'oops'", "key.sub=value"]),
        ("inspect-template", ["data", "inspect", "toyworld://data/sft", "--template", "nosuch"], 2, ["--template"]),
        ("inspect-column", ["data", "inspect", "x.csv", "--template", "columns", "--column", "prompt"], 2, ["--column"]),
        ("demo-out-is-file", ["demo", "--out", "{a_file}"], 2, ["--out=", "is a file"]),
        ("export-out-is-file", ["export", "--merge", "{empty}", "--out", "{a_file}"], 2, ["--out=", "is a file"]),
        ("toyworld-out-in-file", ["toyworld", "build", "--out", "{a_file}/world"], 2, ["--out=", "a_file"]),
        ("export-no-adapter", ["export", "--merge", "{empty}", "--out", "{root}/merged"], 2, ["export"]),
    ]  # fmt: skip


CASES = _cases()


def _fill(argv: list[str], paths: dict[str, Path]) -> list[str]:
    return [item.format(**paths) for item in argv]


def _with_output_dir(argv: list[str], out: Path) -> list[str]:
    """Train and eval cases write (if they wrongly got that far) into ``out`` unless they name a folder."""
    if argv[:1] in (["train"], ["eval"]) and not any(a.startswith("run.output_dir=") for a in argv):
        return [*argv, f"run.output_dir={out}"]
    return argv


def test_the_table_has_at_least_fifty_cases():
    assert len(CASES) >= 50
    assert len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize(("argv", "status", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_mistake_exits_with_one_clear_paragraph_and_writes_nothing(
    paths, tmp_path, capsys, argv, status, expected
):
    out = tmp_path / "out"
    before = sorted(p.relative_to(paths["root"]) for p in paths["root"].rglob("*"))
    code = main(_with_output_dir(_fill(argv, paths), out))
    err = capsys.readouterr().err
    assert code == status, err
    assert "Traceback" not in err
    message = [line for line in err.splitlines() if line.startswith("alignkit")]
    assert len(message) == 1, err  # one paragraph, on one line
    for text in expected:
        assert text in err, f"{text!r} not in: {err}"
    assert not out.exists()  # checked before any side effect
    assert sorted(p.relative_to(paths["root"]) for p in paths["root"].rglob("*")) == before


def test_a_failure_while_running_exits_1_in_one_paragraph_and_debug_shows_the_traceback(monkeypatch, capsys):
    import alignkit.cli as cli

    def boom(args):
        raise RuntimeError("CUDA out of memory.\nTried to allocate 2 GiB")

    monkeypatch.setitem(cli.HANDLERS, "demo", boom)
    assert main(["demo"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "alignkit: failed: RuntimeError: CUDA out of memory. Tried to allocate 2 GiB" in err
    assert "ALIGNKIT_DEBUG=1" in err
    monkeypatch.setenv("ALIGNKIT_DEBUG", "1")
    with pytest.raises(RuntimeError, match="out of memory"):
        main(["demo"])


@pytest.mark.parametrize(
    ("command", "name"), [("train", n) for n in TRAINERS] + [("eval", n) for n in EVALUATIONS]
)
def test_show_config_prints_yaml_that_reads_back_as_the_same_config(tmp_path, capsys, command, name):
    """Pasted into a file, --show-config's output is the config it showed (null stays None, false False)."""
    assert main([command, name, "--show-config"]) == 0
    text = capsys.readouterr().out
    assert ": None  #" not in text and ": False  #" not in text and ": True  #" not in text
    path = tmp_path / "shown.yaml"
    path.write_text(text)
    table = TRAINERS if command == "train" else EVALUATIONS
    import importlib

    cls = getattr(importlib.import_module(table[name][0]), table[name][1])
    shown = load_config(cls, path, validate=False)
    assert dataclasses.asdict(shown) == dataclasses.asdict(load_config(cls, None, validate=False))
    # A value typed after key= follows the same rules: null is None, the word None is refused above.
    assert load_config(cls, None, ["model.tokenizer=null"], validate=False).model.tokenizer is None


def test_help_lists_every_command_in_plain_text_with_the_exit_statuses(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in TRAINERS:
        assert f"alignkit train {name} " in out
    for name in EVALUATIONS:
        assert f"alignkit eval {name} " in out
    for command in ("data inspect", "data templates", "demo", "export", "toyworld build"):
        assert f"alignkit {command} " in out
    assert "``" not in out and "{" not in out
    assert "exit status" in out and "  2  a mistake" in out and "  1  a failure" in out


def test_eval_prints_its_figures(paths, tmp_path, capsys):
    out = tmp_path / "eval"
    argv = ["eval", "preference", f"model.path={paths['reward_model']}", "data.max_rows=8", "max_length=64"]
    assert main([*argv, f"run.output_dir={out}"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert f"rewards/accuracy  {report['metrics']['rewards/accuracy']:.4f}" in printed
    assert "n_pairs" in printed and str(out / "report.json") in printed


SUBPROCESS_CASES = [
    "config-yaml-syntax",
    "model-relative-hub-offline",
    "online-too-few-prompts",
    "eval-kind-mismatch",
    "images-to-text-model",
]
"""One per stage a mistake can be found at: the config file, a path, the data, a model's kind, the prompts."""


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_real_process_exit_status_and_no_traceback(paths, tmp_path, case_id):
    _, argv, status, expected = next(c for c in CASES if c[0] == case_id)
    out = tmp_path / "out"
    result = run_cli(*_with_output_dir(_fill(argv, paths), out), timeout=120)
    assert result.returncode == status, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in result.stderr
    assert not out.exists()
