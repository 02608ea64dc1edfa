"""Pieces shared by the ``*_vs_trl.py`` benchmarks: memory metering, step clocks, medians, profiling, tables.

Not a test helper and not part of alignkit: the scripts import it as ``_common`` (they run as
``python benchmarks/<name>.py``, which puts this folder first on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import platform
import statistics
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------------------- model
MODEL_SIZES = ("toy", "4m")
"""``--model-size``: ``toy`` is the toy world's own policy (hidden 128, 2 layers, ~0.5M parameters);
``4m`` is a Llama of hidden 256, 4 layers, 4 heads, intermediate 768 over the same tokenizer (~3.8M)."""


def sized_model(size: str) -> str:
    """A model path for ``--model-size``: the toy world's tiny Llama, or the ~3.8M one (built once, offline,
    from ``LlamaConfig`` with random init, seed 0, into ``$ALIGNKIT_HOME/bench-models/llama-4m``)."""
    if size == "toy":
        return "toyworld://models/tiny"
    if size != "4m":
        raise ValueError(f"unknown model size {size!r}; expected one of {MODEL_SIZES}")
    from alignkit.models.loading import load_tokenizer
    from alignkit.toyworld import resolve
    from alignkit.toyworld.model import TinyModelSpec, build_tiny_model, save_model

    world_model = Path(resolve("toyworld://models/tiny"))
    out = Path(os.environ.get("ALIGNKIT_HOME", Path.home() / ".cache/alignkit")) / "bench-models/llama-4m"
    if not (out / "config.json").is_file():
        tokenizer = load_tokenizer(str(world_model))
        spec = TinyModelSpec(hidden_size=256, num_layers=4, num_heads=4, intermediate_size=768)
        tmp = out.with_name(f".tmp-{out.name}-{os.getpid()}")
        save_model(build_tiny_model(tokenizer, seed=0, spec=spec), tokenizer, tmp)
        tmp.rename(out)
    return str(out)


def parameter_count(path: str) -> int:
    from transformers import AutoConfig, AutoModelForCausalLM

    from alignkit.models.loading import resolve_path

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(resolve_path(path)))
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------------------------ memory
def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


def _release_freed_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    # glibc keeps freed heap pages; hand them back so the next baseline is honest
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class MemoryMeter:
    """Peak memory of one call: CUDA allocations if there is a GPU, and host RSS growth always."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.cuda = torch.cuda.is_available()
        self._stop = threading.Event()
        self.rss_base = self.rss_peak = 0
        self.cuda_base = self.cuda_peak = 0

    def _sample(self) -> None:
        while not self._stop.is_set():
            rss = _rss_bytes()
            if rss is not None and rss > self.rss_peak:
                self.rss_peak = rss
            time.sleep(self.interval_s)

    def __enter__(self) -> MemoryMeter:
        _release_freed_memory()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.cuda_base = torch.cuda.memory_allocated()
        self.rss_base = self.rss_peak = _rss_bytes() or 0
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self.cuda:
            torch.cuda.synchronize()
            self.cuda_peak = torch.cuda.max_memory_allocated()

    def report(self) -> dict[str, float]:
        mib = 2**20
        out = {"rss_growth_mib": (self.rss_peak - self.rss_base) / mib, "rss_base_mib": self.rss_base / mib}
        if self.cuda:
            out.update(
                cuda_peak_mib=self.cuda_peak / mib,
                cuda_peak_growth_mib=(self.cuda_peak - self.cuda_base) / mib,
            )
        return out


def memory_key_and_label() -> tuple[str, str]:
    """The memory figure the report compares (CUDA peak allocation, or CPU peak RSS growth) and its label."""
    if torch.cuda.is_available():
        return "cuda_peak_mib", "CUDA peak alloc MiB"
    return "rss_growth_mib", "peak RSS growth MiB"


def memory_description() -> str:
    if torch.cuda.is_available():
        return "torch.cuda.max_memory_allocated over the call, reset before it"
    return "peak RSS (sampled every 5 ms) minus RSS before the call, after gc + malloc_trim"


# ------------------------------------------------------------------------------------------------ clocks
@contextlib.contextmanager
def cpu_clock_at_metrics_log() -> Iterator[list[float]]:
    """Process CPU time at each line alignkit's ``MetricsLog`` writes (one per logged step)."""
    from alignkit.runs import MetricsLog

    cpu_at_log: list[float] = []
    original_write = MetricsLog.write

    def write(self: MetricsLog, record: Any) -> None:
        cpu_at_log.append(time.process_time())
        original_write(self, record)

    MetricsLog.write = write  # type: ignore[method-assign]
    try:
        yield cpu_at_log
    finally:
        MetricsLog.write = original_write  # type: ignore[method-assign]


def alignkit_step_log(result: Any, steps: int) -> list[dict[str, Any]]:
    """The per-step lines of an alignkit ``LoopResult`` history, checked to be exactly steps 1..N."""
    steps_log = [r for r in result.history if "elapsed_s" in r and "loss" in r]
    assert [r["step"] for r in steps_log] == list(range(1, steps + 1)), "expected one log line per step"
    return steps_log


def step_clock_callback() -> Any:
    """A ``transformers.TrainerCallback`` noting wall time (from train begin) and CPU time at each step end."""
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self) -> None:
            self.start = 0.0
            self.ends: list[float] = []
            self.cpu_ends: list[float] = []

        def on_train_begin(self, *a: Any, **k: Any) -> None:
            self.start = time.perf_counter()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            self.ends.append(time.perf_counter() - self.start)
            self.cpu_ends.append(time.process_time())

    return StepClock()


def trl_optimizer_name(trainer: Any, default_optim: bool) -> str:
    opt = trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
    return type(opt).__name__ + ("(fused default)" if default_optim else "(as alignkit)")


# --------------------------------------------------------------------------------------------- reporting
def device_line() -> str:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({platform.processor()})"


def print_host(device: str) -> None:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(
        f"device: {device}; torch threads: {torch.get_num_threads()}; cpus: {os.cpu_count()}; load avg: {load}"
    )


def load_average() -> tuple[float, float, float] | None:
    return os.getloadavg() if hasattr(os, "getloadavg") else None


def versions() -> dict[str, str]:
    import transformers
    import trl

    return {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__}


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def median_summary(
    runs: dict[str, list[dict[str, Any]]], skip: Sequence[str] = ("timed_steps", "rss_base_mib")
) -> dict[str, dict[str, Any]]:
    """Per trainer: the median of every numeric field over its runs; ``first_loss``/``last_loss`` of run 1."""
    firsts = ("first_loss", "last_loss")
    return {
        name: {k: median_of(rs, k) for k in rs[0] if k not in (*skip, *firsts)}
        | {k: rs[0][k] for k in firsts if k in rs[0]}
        for name, rs in runs.items()
    }


def print_table(
    title: str,
    a: dict[str, Any],
    t: dict[str, Any],
    rows: Sequence[tuple[str, str, str]],
    no_ratio: Sequence[str] = ("first_loss", "last_loss"),
) -> None:
    """``alignkit | TRL | alignkit/TRL`` rows of ``(label, key, format)``."""
    import trl

    print(f"\n{title}")
    print(f"{'':32s}{'alignkit':>14s}{'TRL ' + trl.__version__:>14s}{'alignkit/TRL':>14s}")
    for label, key, fmt in rows:
        ratio_cell = f"{a[key] / t[key]:.3f}" if key not in no_ratio and t[key] else ""
        print(f"{label:32s}{fmt.format(a[key]):>14s}{fmt.format(t[key]):>14s}{ratio_cell:>14s}")


def profile_once(fn: Any, top: int, path: Path) -> str:
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    path.write_text(buf.getvalue())
    return buf.getvalue()
