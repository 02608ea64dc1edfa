"""Measuring one call: peak memory (CUDA allocations, host RSS growth), wall time, and per-step clocks."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import torch


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


@contextlib.contextmanager
def metered() -> Iterator[dict[str, Any]]:
    """The block's ``wall_s`` (perf counter, the meter's own set-up and join included, as every script
    timed it) and its ``MemoryMeter.report()`` fields, filled into the yielded dict when the block ends."""
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    with MemoryMeter() as mem:
        yield out
    out["wall_s"] = time.perf_counter() - t0
    out.update(mem.report())


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


def alignkit_step_log(result: Any, steps: int, key: str = "loss") -> list[dict[str, Any]]:
    """The per-step lines (those with ``elapsed_s`` and ``key``) of an alignkit ``LoopResult`` history,
    checked to be exactly steps 1..N."""
    steps_log = [r for r in result.history if "elapsed_s" in r and key in r]
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

        def fields(self) -> dict[str, list[float]]:
            """The raw run's clock fields, named as alignkit's side names them."""
            return {"step_end_s": self.ends, "step_end_cpu_s": self.cpu_ends}

    return StepClock()
