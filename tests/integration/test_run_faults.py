"""Faults on a real run folder: two processes on one folder, Ctrl-C, a full disk, a torn metrics line.

Real subprocesses for the signal and the second writer; a simulated ``ENOSPC`` (the write path raises
it) for the full disk, since mounting a small tmpfs needs privileges a test cannot count on.
"""

from __future__ import annotations

import errno
import json
import signal
import subprocess
import sys
import time

import pytest
from sft_helpers import REPO, SFT_EXAMPLE, tiny_overrides

from alignkit.cli import main

pytestmark = pytest.mark.integration

# Small and quick: few rows, small batches, a tiny eval set.
FAST = (
    "data.train.max_rows=64",
    "data.eval.max_rows=8",
    "trainer.micro_batch_size=4",
    "trainer.save_every=2",
)


def _steps(run_dir) -> list[int]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["step"] for r in rows if "loss" in r]


def _cli(*overrides: str) -> list[str]:
    return [sys.executable, "-m", "alignkit.cli", "train", "sft", "--config", str(SFT_EXAMPLE), *overrides]


def test_a_live_run_refuses_a_second_writer_and_ctrl_c_saves_and_names_the_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    live = subprocess.Popen(
        _cli(*tiny_overrides(out, *FAST, "trainer.max_steps=100000", "run.save_on_interrupt=true")),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoints" / "step-000002").exists() and live.poll() is None:
            assert time.monotonic() < deadline, "the live run wrote no checkpoint in time"
            time.sleep(0.05)
        assert live.poll() is None, live.stderr.read()[-3000:]

        # Today both of these went ahead: duplicated steps on resume, a deleted folder on overwrite.
        second = {
            flag: subprocess.Popen(
                _cli(*tiny_overrides(out, *FAST, f"run.{flag}=true")),
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for flag in ("resume", "overwrite")
        }
        for flag, proc in second.items():
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 2, (flag, err[-2000:])
            assert f"is in use by process {live.pid}" in err and "Traceback" not in err, err
        assert live.poll() is None and any((out / "checkpoints").glob("step-*"))

        live.send_signal(signal.SIGINT)
        _, err = live.communicate(timeout=120)
    finally:
        if live.poll() is None:
            live.kill()
    assert live.returncode == 1, err[-3000:]
    assert "Traceback" not in err
    assert "alignkit: interrupted: interrupted after" in err and "run.resume=true" in err, err[-2000:]
    saved = sorted((out / "checkpoints").iterdir())[-1]
    assert str(saved) in err  # the checkpoint written on Ctrl-C is the one named
    step = int(saved.name.split("-")[-1])
    assert _steps(out) == list(range(1, step + 1))
    assert not (out / ".lock").exists()

    # Resume from it (in this process: the lock is gone with its owner): no step twice, none missing,
    # and run.* alone is no config change.
    overrides = tiny_overrides(out, *FAST, f"trainer.max_steps={step + 2}", "run.resume=true")
    assert main(["train", "sft", "--config", str(SFT_EXAMPLE), *overrides]) == 0
    printed = capsys.readouterr().out
    assert f"continuing from {saved}" in printed
    assert "differs from" in printed and "in trainer.max_steps;" in printed  # the one real change, no run.*
    assert _steps(out) == list(range(1, step + 3))


def test_full_disk_keeps_the_last_checkpoint_and_resume_cleans_up_and_skips_a_torn_line(
    tmp_path, monkeypatch, capsys
):
    import alignkit.train.recorder as recorder  # writes every loop's trainer_state.json

    out = tmp_path / "run"
    real_write_json = recorder.write_json

    def full_at_second_checkpoint(path, data):
        if path.parent.name == ".tmp-step-000004":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_write_json(path, data)

    monkeypatch.setattr(recorder, "write_json", full_at_second_checkpoint)
    argv = ["train", "sft", "--config", str(SFT_EXAMPLE), *tiny_overrides(out, *FAST)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "alignkit: disk full: the disk is full (No space left on device" in err, err
    assert str(out / "checkpoints" / "step-000002") in err and "run.resume=true" in err
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-000002"]  # temp folder freed
    state = json.loads((out / "checkpoints" / "step-000002" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert not (out / ".lock").exists()

    # A crash can leave what the disk-full path could not: a temp folder and a line cut mid-write.
    monkeypatch.setattr(recorder, "write_json", real_write_json)
    dead = out / "checkpoints" / ".tmp-step-000004"
    (dead / "state").mkdir(parents=True)
    with (out / "metrics.jsonl").open("a") as f:
        f.write('{"loss": 1.2, "st')
    assert main([*argv, "run.resume=true"]) == 0
    captured = capsys.readouterr()
    assert f"removed {dead}" in captured.out
    assert not dead.exists()
    assert _steps(out) == [1, 2, 3, 4, 5, 6]
