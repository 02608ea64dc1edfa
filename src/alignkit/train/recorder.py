"""The run folder of an online trainer: metrics, progress, checkpoints with exact resume, ``final/``."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from alignkit.lean_state import load_state
from alignkit.runs import (
    MetricsLog,
    checkpoint_dirs,
    plot_metrics,
    read_metrics,
    release_run_lock,
    write_checkpoint,
    write_final_dir,
    write_json,
)
from alignkit.sections import OnlineTrainerConfig, RunConfig


@dataclass
class SavedModel:
    """A model written into every checkpoint and the final folder; ``folder`` '' is the folder itself."""

    folder: str
    model: torch.nn.Module
    save: Callable[[torch.nn.Module, Path], None]


class OnlineRun:
    """Run-folder duties of an online trainer: metrics, progress, checkpoints with exact resume, plots.

    A checkpoint holds every trained model (HF layout), accelerate's state (optimizers, schedules, RNG)
    and ``trainer_state.json`` (the step and anything else the trainer keeps, e.g. lambda). Rollouts are
    seeded by (seed, step, rank), so a resumed run samples exactly what the first run would have.
    """

    def __init__(
        self,
        accelerator: Any,
        run_dir: Path,
        trainer: OnlineTrainerConfig,
        run: RunConfig,
        saved: Sequence[SavedModel],
        plot_groups: Mapping[str, list[str]],
    ) -> None:
        self.accelerator = accelerator
        self.run_dir = run_dir
        self.cfg = trainer
        self.run = run
        self.saved = list(saved)
        self.plot_groups = plot_groups
        self.step = 0
        self.extra_state: dict[str, Any] = {}
        if run.resume:
            self.step, self.extra_state = self._restore()
        self.metrics = MetricsLog(run_dir / "metrics.jsonl", resume_step=self.step if run.resume else None)
        self.writer = None
        if run.tensorboard and accelerator.is_main_process:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"))
        self.bar = None
        if run.progress and accelerator.is_main_process:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=trainer.steps, initial=self.step, desc="rollouts", dynamic_ncols=True)
        self.start = time.perf_counter()

    def _restore(self) -> tuple[int, dict[str, Any]]:
        import json

        found = checkpoint_dirs(self.run_dir)
        if not found:
            self.accelerator.print(f"resume: no complete checkpoint in {self.run_dir}, starting from step 0")
            return 0, {}
        latest = found[-1]
        load_state(self.accelerator, latest)
        state = json.loads((latest / "trainer_state.json").read_text())
        self.accelerator.print(f"resume: continuing from {latest} (step {state['global_step']})")
        return int(state["global_step"]), state.get("extra", {})

    def log(self, record: dict[str, Any], postfix: Mapping[str, float] | None = None) -> None:
        """Record a finished step (``self.step`` already counts it)."""
        last = self.step == self.cfg.steps
        if self.accelerator.is_main_process:
            if self.step % self.cfg.log_every == 0 or last or any(k.startswith("eval/") for k in record):
                record = {"step": self.step, **record, "elapsed_s": time.perf_counter() - self.start}
                self.metrics.write(record)
                if self.writer is not None:
                    for k, v in record.items():
                        if k != "step" and isinstance(v, (int, float)):
                            self.writer.add_scalar(k, v, self.step)
            if self.bar is not None:
                self.bar.update(1)
                if postfix:
                    self.bar.set_postfix({k: f"{v:.3f}" for k, v in postfix.items()})

    def _write_models(self, folder: Path, extra: Mapping[str, Any]) -> None:
        for item in self.saved:
            target = folder / item.folder if item.folder else folder
            target.mkdir(parents=True, exist_ok=True)
            item.save(self.accelerator.unwrap_model(item.model), target)
        write_json(
            folder / "trainer_state.json",
            {
                "global_step": self.step,
                "total_steps": self.cfg.steps,
                "num_processes": self.accelerator.num_processes,
                "distributed_type": str(self.accelerator.distributed_type),
                "extra": dict(extra),
            },
        )

    def save_checkpoint(self, extra: Mapping[str, Any]) -> Path:
        return write_checkpoint(
            self.accelerator,
            self.run_dir,
            self.step,
            self.cfg.keep_checkpoints,
            lambda folder, _: self._write_models(folder, extra),
            weights_in=[(item.model, item.folder) for item in self.saved],
        )

    def maybe_checkpoint(self, extra: Mapping[str, Any], *, stop_requested: bool = False) -> None:
        """The periodic checkpoint, or one because Ctrl-C asked to save and stop (never after the last
        step, which writes ``final/`` instead)."""
        periodic = self.cfg.save_every and self.step % self.cfg.save_every == 0
        if (periodic or stop_requested) and self.step < self.cfg.steps:
            self.save_checkpoint(extra)

    def close(self) -> None:
        """Progress bar, TensorBoard and the folder's lock: released however the run ended."""
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()
        if self.accelerator.is_main_process:
            release_run_lock(self.run_dir)

    def finish(self, extra: Mapping[str, Any]) -> Path:
        """Write ``final/`` atomically and the plots; returns the final folder."""
        acc = self.accelerator
        final_dir = self.run_dir / "final"
        if acc.is_main_process:
            write_final_dir(self.run_dir, lambda folder: self._write_models(folder, extra))
            plot_metrics(read_metrics(self.metrics.path), self.run_dir / "plots", self.plot_groups)
        acc.wait_for_everyone()
        return final_dir
