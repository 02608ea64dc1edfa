"""The run folder: one per command, holding the resolved config, metrics, checkpoints and plots.

Layout (the lock is `alignkit.run_lock`)::

    <output_dir>/config.yaml        the resolved config (what actually ran)
    <output_dir>/metrics.jsonl      one JSON object per logged step
    <output_dir>/data_report.json   rows skipped or truncated while reading data (never silent)
    <output_dir>/checkpoints/step-000010/   HF-layout model + trainer state, written atomically
    <output_dir>/final/             the final model (HF layout)
    <output_dir>/plots/*.png        curves drawn at the end
    <output_dir>/tensorboard/       event files
    <output_dir>/.lock              who writes the folder now (pid + host); gone when the run ends

A run never overwrites an existing folder unless asked (``overwrite``), and ``resume`` continues one.
One folder has one writer: the process that prepares it holds ``.lock`` until it is done, so a second
process can neither resume nor overwrite a live run. A lock whose process is gone (``kill -9``, a crash)
is stale and is taken over.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from alignkit.run_lock import (  # noqa: F401 - the lock's names are part of the run-folder API
    LOCK_FILE,
    TMP_PREFIX,
    RunFolderError,
    acquire_run_lock,
    is_launch_main_process,
    lock_owner,
    refuse_if_locked,
    release_run_lock,
)

CHECKPOINT_PREFIX = "step-"
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class RunFailure(RuntimeError):
    """A run stopped by a fault rather than a user mistake (Ctrl-C, a full disk): the CLI exits 1."""


class RunInterrupted(RunFailure):
    """Ctrl-C stopped the run; the message says where the last checkpoint is and how to resume."""


class DiskFullError(RunFailure):
    """The disk filled up while the run wrote its folder; the message says what is still intact."""


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


# ----------------------------------------------------------------------------- preparing the folder


def check_run_dir(path: str | Path, *, overwrite: bool, resume: bool) -> None:
    """Refuse, before any work or side effect, a run folder that a live run is writing, or that holds an
    earlier run (unless asked to resume or overwrite it)."""
    path = Path(path)
    if is_launch_main_process():
        refuse_if_locked(path)
    if path.exists() and any(p.name != LOCK_FILE for p in path.iterdir()) and not (overwrite or resume):
        raise RunFolderError(
            f"run folder {str(path)!r} already holds a run. Pass run.resume=true to continue it, "
            "run.overwrite=true to replace it, or choose another run.output_dir."
        )


def prepare_run_dir(path: str | Path, *, overwrite: bool, resume: bool) -> Path:
    """Create (or reuse, when resuming) the run folder and take its lock; refuse to clobber an earlier
    run or to share a live one. Overwriting empties the folder only once the lock is ours."""
    path = Path(path)
    check_run_dir(path, overwrite=overwrite, resume=resume)
    path.mkdir(parents=True, exist_ok=True)
    acquire_run_lock(path)
    if overwrite:
        for child in path.iterdir():
            if child.name != LOCK_FILE:
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    if resume:
        for dead in remove_dead_temp_dirs(path):
            print(f"resume: removed {dead}, left unfinished by an interrupted save")
    return path


def remove_dead_temp_dirs(run_dir: Path) -> list[Path]:
    """Delete the temp folders of saves that never finished (a crash, a full disk); returns them.

    Called by the process that holds the lock, so no live save can own them.
    """
    dead = []
    for parent in (run_dir, run_dir / "checkpoints"):
        if parent.is_dir():
            dead += [p for p in parent.iterdir() if p.name.startswith(TMP_PREFIX) and p.is_dir()]
    for p in dead:
        shutil.rmtree(p, ignore_errors=True)
    return dead


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename) so a crash never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first. Temp folders from an interrupted save are ignored."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX)]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]))


def checkpoint_name(step: int) -> str:
    return f"{CHECKPOINT_PREFIX}{step:06d}"


class MetricsLog:
    """Append-only ``metrics.jsonl``; on resume, entries after the checkpoint's step are cut so the
    curve of a resumed run is the curve of an uninterrupted one (a last line torn by a crash mid-write
    goes too: it can only belong to a step after the checkpoint)."""

    def __init__(self, path: Path, *, resume_step: int | None = None) -> None:
        self.path = path
        if resume_step is not None and path.exists():
            kept = [r for r in read_metrics(path) if r.get("step", 0) <= resume_step]
            path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
        elif resume_step is None and path.exists():
            path.unlink()

    def write(self, record: Mapping[str, Any]) -> None:
        clean = {
            k: (v if not isinstance(v, float) or math.isfinite(v) else str(v)) for k, v in record.items()
        }
        with self.path.open("a") as f:
            f.write(json.dumps(clean, sort_keys=True) + "\n")
            f.flush()

    def read(self) -> list[dict[str, Any]]:
        return read_metrics(self.path)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl``. A torn *last* line (a write cut by a crash or a full disk) is
    left out; a bad line anywhere else means the file was damaged, and is an error naming it."""
    if not path.exists():
        return []
    lines = [(n, line) for n, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
    records = []
    for i, (n, line) in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if i == len(lines) - 1:
                break
            raise RunFolderError(
                f"{path}, line {n}: not a JSON object ({exc.msg}); only the last line can be cut short by a "
                "crash, so the file was edited or damaged. Fix or delete that line and run again."
            ) from None
    return records


def plot_metrics(
    records: Iterable[Mapping[str, Any]],
    out_dir: Path,
    groups: Mapping[str, list[str]],
    x_label: str = "optimizer step",
) -> list[Path]:
    """Draw one PNG per group of metric keys against ``step``; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = list(records)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, keys in groups.items():
        series = {k: [(r["step"], r[k]) for r in records if isinstance(r.get(k), (int, float))] for k in keys}
        series = {k: v for k, v in series.items() if v}
        if not series:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
        for key, points in series.items():
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, label=key, marker="o" if len(xs) < 20 else None, markersize=3)
        ax.set_xlabel(x_label)
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def replace_dir(tmp: Path, final: Path) -> None:
    """Put a completely written ``tmp`` folder in the place of ``final`` (the atomic step of a save)."""
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)


def write_final_dir(run_dir: Path, write: Callable[[Path], None]) -> Path:
    """``final/``, written into a temp folder by ``write`` and renamed once complete (main process only)."""
    final = run_dir / "final"
    tmp = run_dir / f"{TMP_PREFIX}final"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        write(tmp)
    except OSError as exc:
        if is_disk_full(exc):  # free what the failed save took; the previous final/ stays as it was
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, final)
    return final


def write_checkpoint(
    accelerator: Any,
    run_dir: Path,
    step: int,
    keep: int,
    write: Callable[[Path, Any], None],
    gather: Callable[[], Any] = lambda: None,
    weights_in: Iterable[tuple[Any, str]] = (),
) -> Path:
    """One checkpoint, the same way for every loop: what ``write`` puts in the folder (the HF-layout
    models and ``trainer_state.json``) plus accelerate's state (optimizers, schedules, RNG), all in a temp
    folder renamed once complete; only the last ``keep`` checkpoints stay. ``gather`` runs on every
    process (e.g. a ZeRO-3 state dict, a collective) and its result is handed to ``write``, which runs on
    the main process. ``weights_in`` pairs each prepared model with the subfolder ``write`` saves it to
    ('' for the checkpoint itself), so accelerate's state does not store those weights a second time.

    A full disk leaves no temp folder behind where it can be removed, and never touches the previous
    checkpoints: they are pruned only after the new one is complete.
    """
    from alignkit.lean_state import save_state

    root = run_dir / "checkpoints"
    final = root / checkpoint_name(step)
    tmp = root / f"{TMP_PREFIX}{final.name}"
    try:
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        accelerator.wait_for_everyone()
        gathered = gather()
        if accelerator.is_main_process:
            write(tmp, gathered)
        accelerator.wait_for_everyone()  # the weights are on disk before save_state leaves them out
        save_state(accelerator, tmp, weights_in)
    except OSError as exc:
        if is_disk_full(exc) and accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    if accelerator.is_main_process:
        replace_dir(tmp, final)
        for old in checkpoint_dirs(run_dir)[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


# ----------------------------------------------------------------------------- faults while running


def last_checkpoint_note(run_dir: Path) -> str:
    """Where a stopped run can continue from, in words a user can act on."""
    found = checkpoint_dirs(run_dir)
    if not found:
        return (
            f"No checkpoint of {str(run_dir)!r} was saved yet (trainer.save_every), so there is nothing to "
            "resume: run again with run.overwrite=true to start over."
        )
    latest = found[-1]
    step = int(latest.name[len(CHECKPOINT_PREFIX) :])
    return (
        f"The last complete checkpoint is {str(latest)!r} (step {step}): continue from it by running the "
        "same command with run.resume=true."
    )


class StopOnInterrupt:
    """Ctrl-C asks the loop to stop after the current step (``requested``) instead of stopping at once.

    Used when the run should save a checkpoint on Ctrl-C: only a step boundary has a consistent state
    (weights, optimizer, RNG), so the step in flight is finished first. A second Ctrl-C stops at once.
    Off (and a plain ``KeyboardInterrupt`` stops the loop where it is) unless ``enabled``.
    """

    def __init__(self, enabled: bool) -> None:
        import threading

        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> StopOnInterrupt:
        import signal

        if self.enabled:
            self._previous = signal.signal(signal.SIGINT, self._request)
        return self

    def _request(self, signum: int, frame: Any) -> None:
        import signal
        import sys

        self.requested = True
        signal.signal(signal.SIGINT, self._previous)
        print(
            "\nalignkit: Ctrl-C: saving a checkpoint after this step, then stopping (Ctrl-C again to stop "
            "now)",
            file=sys.stderr,
            flush=True,
        )

    def __exit__(self, *exc: object) -> None:
        import signal

        if self.enabled and not self.requested:
            signal.signal(signal.SIGINT, self._previous)


def stopped_run(run_dir: Path, step: int, total: int, exc: BaseException) -> BaseException:
    """What a training loop raises in place of ``exc`` (Ctrl-C, a full disk, anything else unchanged)."""
    if isinstance(exc, KeyboardInterrupt):
        return RunInterrupted(f"interrupted after {step} of {total} steps. {last_checkpoint_note(run_dir)}")
    if is_disk_full(exc):
        assert isinstance(exc, OSError)
        where = f" writing {exc.filename}" if exc.filename else ""
        return DiskFullError(
            f"the disk is full ({exc.strerror}{where}) after {step} of {total} steps. Checkpoints are written "
            "to a temp folder and renamed once whole, so the ones already there are intact. "
            f"{last_checkpoint_note(run_dir)} Free some space first."
        )
    return exc
