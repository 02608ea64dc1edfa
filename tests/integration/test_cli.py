"""The CLI end to end: train sft on a tiny config, data inspect, and errors that stop before any work.

Each command runs in a process of its own forked from a warm server (the ``cli`` fixture); the console
script as a fresh interpreter is ``test_cli_errors.py``'s and ``test_readme.py``'s (its first command)."""

from __future__ import annotations

import json

import pytest
import yaml
from sft_helpers import REPO, SFT_EXAMPLE, tiny_overrides

pytestmark = pytest.mark.integration


def test_train_sft_writes_a_complete_run_folder(tmp_path, cli):
    out = tmp_path / "run"
    result = cli(
        "train",
        "sft",
        "--config",
        str(SFT_EXAMPLE),
        *tiny_overrides(out, "trainer.lr=1e-3", "trainer.save_every=3"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["trainer"]["lr"] == pytest.approx(1e-3)  # the resolved config, overrides applied
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4, 5, 6]
    assert any("eval/loss" in r for r in rows)
    assert (out / "checkpoints" / "step-000003" / "model.safetensors").exists()
    assert (out / "checkpoints" / "step-000003" / "state").is_dir()
    assert (out / "final" / "model.safetensors").exists() and (out / "final" / "tokenizer.json").exists()
    assert (out / "plots" / "loss.png").stat().st_size > 1000
    assert json.loads((out / "data_report.json").read_text())["read"] == {"train": 1780, "eval": 356}

    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoModelForCausalLM.from_pretrained(out / "final")
    AutoTokenizer.from_pretrained(out / "final")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("trainer.learnig_rate=1e-3", "did you mean 'trainer.lr'"),
        ("trainer.lr_scheduler=cosin", "choose one of 'cosine', 'linear', 'constant'"),
        (
            "trainer.micro_batch_size=0",
            "trainer.micro_batch_size=0 is not allowed: expected a positive integer",
        ),
        ("data.max_lenght=12", "did you mean 'data.max_length'"),
    ],
)
def test_bad_config_stops_before_any_work(tmp_path, cli, override, expected):
    out = tmp_path / "run"
    result = cli("train", "sft", "--config", str(SFT_EXAMPLE), f"run.output_dir={out}", override)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "config error" in result.stderr
    assert not out.exists()


def test_bad_data_row_names_file_row_and_field(tmp_path, cli):
    bad = tmp_path / "train.jsonl"
    bad.write_text(
        json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}) + "\n"
        + json.dumps({"messages": [{"role": "wizard", "content": "hi"}]}) + "\n"
    )  # fmt: skip
    out = tmp_path / "run"
    args = [
        "train",
        "sft",
        "--config",
        str(SFT_EXAMPLE),
        *tiny_overrides(out, f"data.train.source={bad}", "data.eval=null"),
    ]
    result = cli(*args)
    assert result.returncode == 2
    assert "train.jsonl" in result.stderr and "row 2" in result.stderr and "role" in result.stderr

    skipped = cli(
        *args,
        "data.skip_invalid=true",
        "trainer.micro_batch_size=1",
        "trainer.max_steps=1",
        "run.overwrite=true",
    )
    assert skipped.returncode == 0, skipped.stderr[-2000:]
    report = json.loads((out / "data_report.json").read_text())
    assert report["read"]["train"] == 1 and len(report["skipped"]) == 1
    assert report["skipped"][0]["row"] == 2
    assert "skipped 1 invalid rows" in skipped.stdout


def test_data_inspect_prints_counts_and_a_sample(cli):
    result = cli(
        "data", "inspect", "toyworld://data/safe_pref", "--template", "pku-saferlhf", "--split", "test"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "SafetyPreference" in result.stdout and "356" in result.stdout


def test_data_inspect_reports_a_bad_fixture_row(tmp_path, cli):
    rows = [
        json.loads(line)
        for line in (REPO / "tests/fixtures/data/pku_saferlhf.jsonl").read_text().splitlines()
    ]
    rows[0]["better_response_id"] = 7
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = cli("data", "inspect", str(path), "--template", "pku-saferlhf")
    assert "better_response_id" in result.stdout + result.stderr
    assert "row 1" in result.stdout + result.stderr
