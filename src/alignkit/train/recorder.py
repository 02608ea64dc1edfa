"""The run folder of every training loop, offline and online: one recorder, one trainer state.

What a loop leaves behind, the same for SFT as for Safe RLHF:

- ``metrics.jsonl`` (one JSON object per logged step, with its ``step`` and ``elapsed_s``), TensorBoard events,
  a progress bar, and PNG plots at the end;
- ``checkpoints/step-N/``: every trained model in the HF layout, accelerate's state (optimizers,
  schedules, RNG; the weights are not stored twice, ``lean_state.py``) and ``trainer_state.json``;
  written into a temp folder and renamed once complete;
- ``final/``: the models and ``trainer_state.json``, written the same atomic way.

``trainer_state.json`` has one schema (:class:`TrainerState`): ``global_step`` counts optimizer steps
everywhere; an online loop also counts its ``rollouts`` (its own steps: ``trainer.steps``, the ``step``
of its metrics and the name of its checkpoints). Resume restores the latest complete checkpoint and
cuts ``metrics.jsonl`` back to it, so the resumed curve continues the first run's exactly.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from alignkit.lean_state import load_state
from alignkit.runs import (
    MetricsLog,
    StopOnInterrupt,
    checkpoint_dirs,
    plot_metrics,
    read_metrics,
    release_run_lock,
    stopped_run,
    write_checkpoint,
    write_final_dir,
    write_json,
)
from alignkit.sections import OptimisationConfig, RunConfig


@dataclass
class SavedModel:
    """A model written into every checkpoint and the final folder; ``folder`` '' is the folder itself.

    ``save(unwrapped_model, folder, state_dict)`` writes it; with ``gather`` the full state dict is first
    collected on every process (``accelerator.get_state_dict``: FSDP / ZeRO-3 shards), else it is None.
    """

    folder: str
    model: torch.nn.Module
    save: Callable[[torch.nn.Module, Path, Any], None]
    gather: bool = False


@dataclass
class TrainerState:
    """``trainer_state.json``: where a run stands, in one schema for every loop."""

    global_step: int
    """Optimizer steps taken (of the policy, for online loops)."""
    total_steps: int
    """The loop's steps to take: optimizer steps offline, rollouts online."""
    num_processes: int
    distributed_type: str
    global_batch: int
    """Examples (offline) or samples (online) per optimizer step, across all processes."""
    rollouts: int | None = None
    """Online loops: rollouts taken (each followed by its optimizer steps); None offline."""
    extra: dict[str, Any] = field(default_factory=dict)
    """What else the trainer restores (e.g. Safe RLHF's multiplier)."""

    @property
    def step(self) -> int:
        """The loop's own step count."""
        return self.global_step if self.rollouts is None else self.rollouts


class RunRecorder:
    """Run-folder duties of a loop; the loop advances :attr:`step` and :attr:`global_step` itself."""

    def __init__(
        self,
        accelerator: Any,
        run: RunConfig,
        cadence: OptimisationConfig,
        *,
        total_steps: int,
        online: bool,
        saved: Sequence[SavedModel],
        plot_groups: Mapping[str, list[str]],
        global_batch: int,
    ) -> None:
        """``run``: the folder (made by ``common.start_run``), resume, TensorBoard and the progress bar;
        ``cadence``: the trainer section's ``save_every``, ``keep_checkpoints`` and ``log_every``."""
        self.accelerator = accelerator
        self.run_dir = run_dir = Path(run.output_dir)
        self.total_steps = total_steps
        self.online = online
        self.saved = list(saved)
        self.plot_groups = plot_groups
        self.keep_checkpoints = cadence.keep_checkpoints
        self.save_every = cadence.save_every
        self.log_every = cadence.log_every
        self.global_batch = global_batch
        self.step = 0
        self.global_step = 0
        self.extra_state: dict[str, Any] = {}
        if run.resume:
            self._restore()
        self.metrics = MetricsLog(run_dir / "metrics.jsonl", resume_step=self.step if run.resume else None)
        self.writer = None
        if run.tensorboard and accelerator.is_main_process:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"))
        self.bar = None
        if run.progress and accelerator.is_main_process:
            from tqdm.auto import tqdm

            desc = "rollouts" if online else "train"
            self.bar = tqdm(total=total_steps, initial=self.step, desc=desc, dynamic_ncols=True)
        self.start = time.perf_counter()

    # ------------------------------------------------------------------ state
    def state(self, extra: Mapping[str, Any] | None = None) -> TrainerState:
        return TrainerState(
            global_step=self.global_step,
            total_steps=self.total_steps,
            num_processes=self.accelerator.num_processes,
            distributed_type=str(self.accelerator.distributed_type),
            global_batch=self.global_batch,
            rollouts=self.step if self.online else None,
            extra=dict(extra or {}),
        )

    def _restore(self) -> None:
        found = checkpoint_dirs(self.run_dir)
        if not found:
            self.accelerator.print(f"resume: no complete checkpoint in {self.run_dir}, starting from step 0")
            return
        latest = found[-1]
        load_state(self.accelerator, latest)
        saved = json.loads((latest / "trainer_state.json").read_text())
        state = TrainerState(**{k: v for k, v in saved.items() if k in TrainerState.__dataclass_fields__})
        self.step, self.global_step, self.extra_state = state.step, state.global_step, state.extra
        self.accelerator.print(f"resume: continuing from {latest} (step {self.step})")

    # ------------------------------------------------------------------ logging
    def log(self, record: Mapping[str, Any], postfix: Mapping[str, float] | None = None) -> None:
        """Record a finished step (``self.step`` already counts it) at the ``log_every`` cadence, on the
        last step and whenever it carries eval results; the progress bar moves every step."""
        last = self.step == self.total_steps
        if self.accelerator.is_main_process:
            if self.step % self.log_every == 0 or last or any(k.startswith("eval/") for k in record):
                self.write({**record, "elapsed_s": time.perf_counter() - self.start})
            if self.bar is not None:
                self.bar.update(1)
                if postfix:
                    self.bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()})

    def write(self, record: Mapping[str, Any]) -> None:
        """One metrics line at the current step, unconditionally (main process only)."""
        if not self.accelerator.is_main_process:
            return
        line = {"step": self.step, **record}
        self.metrics.write(line)
        if self.writer is not None:
            for k, v in line.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.writer.add_scalar(k, v, self.step)

    # ------------------------------------------------------------------ saving
    def _gather(self) -> list[Any]:
        """Full state dicts of the models that need gathering (a collective: every process calls it)."""
        acc = self.accelerator
        return [acc.get_state_dict(item.model) if item.gather else None for item in self.saved]

    def _write_models(self, folder: Path, gathered: Sequence[Any], extra: Mapping[str, Any]) -> None:
        for item, state_dict in zip(self.saved, gathered, strict=True):
            target = folder / item.folder if item.folder else folder
            target.mkdir(parents=True, exist_ok=True)
            item.save(self.accelerator.unwrap_model(item.model), target, state_dict)
        write_json(folder / "trainer_state.json", asdict(self.state(extra)))

    def save_checkpoint(self, extra: Mapping[str, Any] | None = None) -> Path:
        return write_checkpoint(
            self.accelerator,
            self.run_dir,
            self.step,
            self.keep_checkpoints,
            lambda folder, gathered: self._write_models(folder, gathered, extra or {}),
            self._gather,
            weights_in=[(item.model, item.folder) for item in self.saved],
        )

    def maybe_checkpoint(
        self, extra: Mapping[str, Any] | None = None, *, stop_requested: bool = False
    ) -> None:
        """The periodic checkpoint, or one because Ctrl-C asked to save and stop (never after the last
        step, which writes ``final/`` instead)."""
        periodic = self.save_every and self.step % self.save_every == 0
        if (periodic or stop_requested) and self.step < self.total_steps:
            self.save_checkpoint(extra)

    def finish(self, extra: Mapping[str, Any] | None = None) -> Path:
        """Write ``final/`` atomically and the plots; returns the final folder."""
        acc = self.accelerator
        gathered = self._gather()
        if acc.is_main_process:
            write_final_dir(self.run_dir, lambda folder: self._write_models(folder, gathered, extra or {}))
            x_label = "rollout" if self.online else "optimizer step"
            plot_metrics(read_metrics(self.metrics.path), self.run_dir / "plots", self.plot_groups, x_label)
        acc.wait_for_everyone()
        return self.run_dir / "final"

    def history(self) -> list[dict[str, Any]]:
        return read_metrics(self.metrics.path)

    # ------------------------------------------------------------------ the run
    @contextlib.contextmanager
    def session(self, save_on_interrupt: bool) -> Iterator[StopOnInterrupt]:
        """The loop's body runs in here: Ctrl-C and a full disk end it with an error that says where the
        last checkpoint is (``save_on_interrupt`` saves one first, on a single process), and the progress
        bar, TensorBoard and the folder's lock are released however it ends."""
        try:
            with StopOnInterrupt(save_on_interrupt and self.accelerator.num_processes == 1) as stop:
                yield stop
        except (KeyboardInterrupt, OSError) as exc:
            raise stopped_run(self.run_dir, self.step, self.total_steps, exc) from None
        finally:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.accelerator.is_main_process:
            release_run_lock(self.run_dir)
