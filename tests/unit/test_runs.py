"""The run folder's rules on tiny inputs: one writer (the lock), torn metrics lines, dead temp folders,
what a stopped run says, and the CLI's exit codes for faults."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from alignkit.runs import (
    LOCK_FILE,
    DiskFullError,
    MetricsLog,
    RunFolderError,
    RunInterrupted,
    StopOnInterrupt,
    check_run_dir,
    prepare_run_dir,
    read_metrics,
    release_run_lock,
    stopped_run,
)
from alignkit.train.common import changed_keys


def _lock(run_dir, pid: int, host: str | None = None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    owner = {"pid": pid, "host": host or socket.gethostname(), "started": "2026-01-01T00:00:00"}
    (run_dir / LOCK_FILE).write_text(json.dumps(owner))


@pytest.fixture
def live_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_a_live_lock_refuses_resume_and_overwrite_and_leaves_the_folder(tmp_path, live_pid):
    run = tmp_path / "run"
    _lock(run, live_pid)
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    for flags in ({"resume": True, "overwrite": False}, {"resume": False, "overwrite": True}):
        with pytest.raises(RunFolderError, match=f"in use by process {live_pid} on host") as err:
            prepare_run_dir(run, **flags)
        assert str(run / LOCK_FILE) in str(err.value)  # what to delete if that process is gone for good
    assert (run / "metrics.jsonl").read_text() == '{"step": 1}\n'


def test_a_lock_from_another_host_counts_as_live(tmp_path):
    _lock(tmp_path / "run", 1, host="some-other-host")
    with pytest.raises(RunFolderError, match="some-other-host"):
        check_run_dir(tmp_path / "run", overwrite=False, resume=True)


def test_a_stale_lock_is_taken_over_and_released(tmp_path):
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    run = tmp_path / "run"
    _lock(run, int(gone.stdout))  # a kill -9 leaves exactly this
    prepare_run_dir(run, overwrite=False, resume=True)
    assert json.loads((run / LOCK_FILE).read_text())["pid"] == os.getpid()
    prepare_run_dir(run, overwrite=False, resume=True)  # this process may take its own lock again
    release_run_lock(run)
    assert not (run / LOCK_FILE).exists()


def test_other_processes_of_a_launch_do_not_trip_on_their_main_process_lock(tmp_path, live_pid, monkeypatch):
    run = tmp_path / "run"
    _lock(run, live_pid)
    monkeypatch.setenv("RANK", "1")
    check_run_dir(run, overwrite=False, resume=True)  # rank 1 leaves the lock to rank 0
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(RunFolderError, match="in use"):
        check_run_dir(run, overwrite=False, resume=True)


def test_overwrite_empties_the_folder_but_keeps_its_new_lock(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints" / "step-000002").mkdir(parents=True)
    (run / "metrics.jsonl").write_text("{}\n")
    prepare_run_dir(run, overwrite=True, resume=False)
    assert [p.name for p in run.iterdir()] == [LOCK_FILE]
    release_run_lock(run)


def test_resume_removes_dead_temp_folders(tmp_path, capsys):
    run = tmp_path / "run"
    dead = [run / "checkpoints" / ".tmp-step-000004", run / ".tmp-final"]
    for d in dead:
        (d / "state").mkdir(parents=True)
    (run / "checkpoints" / "step-000002").mkdir()
    prepare_run_dir(run, overwrite=False, resume=True)
    release_run_lock(run)
    assert not any(d.exists() for d in dead) and (run / "checkpoints" / "step-000002").is_dir()
    assert all(f"removed {d}" in capsys.readouterr().out for d in dead[:1])


def test_a_torn_last_metrics_line_is_dropped_and_a_damaged_middle_line_is_named(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n{"step": 3, "lo')
    assert [r["step"] for r in read_metrics(path)] == [1, 2]
    MetricsLog(path, resume_step=2).write({"step": 3, "loss": 1.0})
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2, 3]

    path.write_text('{"step": 1}\n{"step": 2, "lo\n{"step": 3}\n')
    with pytest.raises(RunFolderError, match=r"metrics.jsonl, line 2: not a JSON object"):
        read_metrics(path)


def test_only_a_change_outside_run_is_a_config_change():
    saved = "model:\n  path: a\nrun:\n  resume: false\n  progress: true\n"
    assert changed_keys(saved, "model:\n  path: a\nrun:\n  resume: true\n  progress: false\n") == []
    assert changed_keys(saved, "model:\n  path: b\nrun:\n  resume: true\n") == ["model.path"]


def test_a_stopped_run_says_where_to_resume_from(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints" / "step-000020").mkdir(parents=True)
    (run / "checkpoints" / "step-000010").mkdir()
    stopped = stopped_run(run, 27, 60, KeyboardInterrupt())
    assert isinstance(stopped, RunInterrupted)
    assert "after 27 of 60 steps" in str(stopped) and str(run / "checkpoints" / "step-000020") in str(stopped)
    assert "run.resume=true" in str(stopped)
    full = stopped_run(run, 27, 60, OSError(errno.ENOSPC, "No space left on device", "x.bin"))
    assert isinstance(full, DiskFullError) and "disk is full" in str(full) and "step-000020" in str(full)
    other = ValueError("not a fault")
    assert stopped_run(run, 27, 60, other) is other
    nothing = stopped_run(tmp_path / "empty", 3, 60, KeyboardInterrupt())
    assert "nothing to resume" in str(nothing) and "run.overwrite=true" in str(nothing)


@pytest.fixture
def default_sigint():
    """Python's own SIGINT handler for the test, whatever ran before it in this process (the full suite
    leaves another one installed by the time this runs: see the closing note of stop 15), restored after."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_asks_to_stop_after_the_step_and_a_second_stops_at_once(default_sigint):
    with StopOnInterrupt(True) as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with StopOnInterrupt(False) as stop, pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (KeyboardInterrupt(), "alignkit: interrupted (Ctrl-C)."),
        (OSError(errno.ENOSPC, "No space left on device", "/data/x"), "alignkit: disk full: No space left"),
        (RunInterrupted("interrupted after 3 of 9 steps."), "alignkit: interrupted: interrupted after 3"),
    ],
)
def test_cli_exits_1_without_a_traceback_on_faults(fault, expected, monkeypatch, capsys):
    import alignkit.cli as cli

    def fails(args):
        raise fault

    monkeypatch.setitem(cli.HANDLERS, "toyworld", fails)
    assert cli.main(["toyworld", "build"]) == 1
    assert capsys.readouterr().err.startswith(expected)
