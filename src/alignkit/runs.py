"""The run folder: one per command, holding the resolved config, metrics, checkpoints and plots.

Layout::

    <output_dir>/config.yaml        the resolved config (what actually ran)
    <output_dir>/metrics.jsonl      one JSON object per logged step
    <output_dir>/data_report.json   rows skipped or truncated while reading data (never silent)
    <output_dir>/checkpoints/step-000010/   HF-layout model + trainer state, written atomically
    <output_dir>/final/             the final model (HF layout)
    <output_dir>/plots/*.png        curves drawn at the end
    <output_dir>/tensorboard/       event files

A run never overwrites an existing folder unless asked (``overwrite``), and ``resume`` continues one.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

CHECKPOINT_PREFIX = "step-"
TMP_PREFIX = ".tmp-"


class RunFolderError(RuntimeError):
    """The run folder cannot be used as asked (exists, or is not resumable)."""


def check_run_dir(path: str | Path, *, overwrite: bool, resume: bool) -> None:
    """Refuse, before any work or side effect, a run folder that holds an earlier run (unless asked)."""
    path = Path(path)
    if path.exists() and any(path.iterdir()) and not (overwrite or resume):
        raise RunFolderError(
            f"run folder {str(path)!r} already holds a run. Pass run.resume=true to continue it, "
            "run.overwrite=true to replace it, or choose another run.output_dir."
        )


def prepare_run_dir(path: str | Path, *, overwrite: bool, resume: bool) -> Path:
    """Create (or reuse, when resuming) the run folder; refuse to clobber an earlier run."""
    path = Path(path)
    check_run_dir(path, overwrite=overwrite, resume=resume)
    if path.exists() and any(path.iterdir()) and overwrite:
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


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
    curve of a resumed run is the curve of an uninterrupted one."""

    def __init__(self, path: Path, *, resume_step: int | None = None) -> None:
        self.path = path
        if resume_step is not None and path.exists():
            kept = [
                line
                for line in path.read_text().splitlines()
                if line and json.loads(line)["step"] <= resume_step
            ]
            path.write_text("".join(line + "\n" for line in kept))
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
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_metrics(
    records: Iterable[Mapping[str, Any]], out_dir: Path, groups: Mapping[str, list[str]]
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
        ax.set_xlabel("optimizer step")
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
    tmp.mkdir()
    write(tmp)
    replace_dir(tmp, final)
    return final


def write_checkpoint(
    accelerator: Any,
    run_dir: Path,
    step: int,
    keep: int,
    write: Callable[[Path, Any], None],
    gather: Callable[[], Any] = lambda: None,
) -> Path:
    """One checkpoint, the same way for every loop: accelerate's state (optimizers, schedules, RNG) plus
    what ``write`` puts in the folder, all in a temp folder renamed once complete; only the last ``keep``
    checkpoints stay. ``gather`` runs on every process (e.g. a ZeRO-3 state dict, a collective) and its
    result is handed to ``write``, which runs on the main process.
    """
    root = run_dir / "checkpoints"
    final = root / checkpoint_name(step)
    tmp = root / f"{TMP_PREFIX}{final.name}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp / "state"))
    gathered = gather()
    if accelerator.is_main_process:
        write(tmp, gathered)
        replace_dir(tmp, final)
        for old in checkpoint_dirs(run_dir)[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final
