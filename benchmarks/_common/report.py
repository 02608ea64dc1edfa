"""What the scripts print and write: the host line, tables, target lines, the JSON header, profiles."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from .measure import memory_description, memory_key_and_label
from .runs import ratios

RESULTS = Path(__file__).resolve().parent.parent / "results"

TIMING = "steps 2..N: end of step 1 to end of step N (alignkit elapsed_s; TRL on_step_end)"
CPU_TIME = "process CPU seconds (all threads) per step over steps 2..N, from time.process_time()"


def device_line() -> str:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({platform.processor()})"


def load_average() -> tuple[float, float, float] | None:
    return os.getloadavg() if hasattr(os, "getloadavg") else None


def print_host(device: str) -> None:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(
        f"device: {device}; torch threads: {torch.get_num_threads()}; cpus: {os.cpu_count()}; load avg: {load}"
    )


def versions() -> dict[str, str]:
    import importlib.metadata

    import transformers

    out = {"torch": torch.__version__, "transformers": transformers.__version__}
    for package in ("trl", "alignkit"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


# ---------------------------------------------------------------------------------------------- tables
Row = tuple[str, str, str]


def timing_rows(steps: int) -> list[Row]:
    """The rows every ``alignkit | TRL`` table ends its measures with: timed seconds, CPU time, wall time
    and the memory figure (``memory_key_and_label``)."""
    mem_key, mem_label = memory_key_and_label()
    return [
        (f"timed s (steps 2..{steps})", "timed_s", "{:.2f}"),
        ("process CPU s / step", "cpu_s_per_step", "{:.4f}"),
        ("wall s (whole call)", "wall_s", "{:.2f}"),
        (mem_label, mem_key, "{:.1f}"),
    ]


def pair_rows(steps: int) -> list[Row]:
    """The preference comparisons' measures (pairs/s, steps/s, scored tokens/s, then ``timing_rows``)."""
    return [
        ("pairs/s", "pairs_per_s", "{:.1f}"),
        ("steps/s", "steps_per_s", "{:.2f}"),
        ("scored tokens/s", "loss_tokens_per_s", "{:,.0f}"),
        *timing_rows(steps),
    ]


def print_table(
    title: str,
    a: dict[str, Any],
    t: dict[str, Any],
    rows: Sequence[Row],
    no_ratio: Sequence[str] = ("first_loss", "last_loss"),
) -> None:
    """``alignkit | TRL | alignkit/TRL`` rows of ``(label, key, format)``."""
    import trl

    print(f"\n{title}")
    print(f"{'':32s}{'alignkit':>14s}{'TRL ' + trl.__version__:>14s}{'alignkit/TRL':>14s}")
    for label, key, fmt in rows:
        ratio_cell = f"{a[key] / t[key]:.3f}" if key not in no_ratio and t[key] else ""
        print(f"{label:32s}{fmt.format(a[key]):>14s}{fmt.format(t[key]):>14s}{ratio_cell:>14s}")


def pair_targets(a: dict[str, Any], t: dict[str, Any]) -> tuple[float, float, str]:
    """(throughput ratio, memory ratio, the line saying whether each meets its target: pairs/s >= 1.5x,
    memory <= 0.8x of TRL's)."""
    mem_key, _ = memory_key_and_label()
    throughput = a["pairs_per_s"] / t["pairs_per_s"]
    memory = a[mem_key] / t[mem_key] if t[mem_key] else float("nan")
    line = (
        f"throughput alignkit/TRL (pairs/s): {throughput:.3f} (target >= 1.5: "
        f"{'met' if throughput >= 1.5 else 'MISSED'}); memory alignkit/TRL: {memory:.3f} (target <= 0.8: "
        f"{'met' if memory <= 0.8 else 'MISSED'})"
    )
    return throughput, memory, line


def pair_summary_line(ratio: dict[str, float], first_loss_abs_diff: float) -> str:
    """The closing summary's figures of one preference comparison (its ``ratio_alignkit_over_trl``)."""
    mem_key, _ = memory_key_and_label()
    return (
        f"throughput {ratio['pairs_per_s']:.3f}x (target >= 1.5), "
        f"memory {ratio.get(mem_key, float('nan')):.3f}x (target <= 0.8), "
        f"first-batch loss |diff| {first_loss_abs_diff:.2e}"
    )


def pair_result(
    checks: dict[str, Any],
    summary: dict[str, dict[str, Any]],
    runs: dict[str, list[dict[str, Any]]],
    throughput: float,
    memory: float,
) -> dict[str, Any]:
    """One preference comparison's part of the report: its checks, alignkit/TRL ratios, targets, medians
    and every run."""
    mem_key, _ = memory_key_and_label()
    keys = ("pairs_per_s", "cpu_s_per_step", mem_key, "wall_s")
    return {
        "checks": checks,
        "ratio_alignkit_over_trl": ratios(summary["alignkit"], summary["trl"], keys),
        "targets": {"throughput_ge_1.5": throughput >= 1.5, "memory_le_0.8": memory <= 0.8},
        "median": summary,
        "runs": runs,
    }


# ---------------------------------------------------------------------------------------------- files
def report_header(
    args: Any,
    device: str,
    *,
    described: dict[str, Any] | None = None,
    timing: str = TIMING,
    measured: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The first fields of a results JSON: command, host, versions, settings (then ``described``), how
    things were timed (then ``measured``), the load average (at start too where ``args.load_at_start``
    was noted) and how memory was measured."""
    header = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "versions": versions(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        **(described or {}),
        "timing": timing,
        "cpu_time": CPU_TIME,
        **(measured or {}),
    }
    if hasattr(args, "load_at_start"):
        header["load_average_at_start"] = args.load_at_start
    return header | {"load_average_at_end": load_average(), "memory": memory_description()}


def write_report(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


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


def profile_each(
    runs: dict[str, Callable[[], Any]],
    path_of: Callable[[str], Path],
    top: int,
    say: Callable[[str, Path], str],
    head: int = 0,
) -> None:
    """cProfile one call of each ``runs`` entry into ``path_of(name)``; print ``say(name, path)`` and, with
    ``head``, that many first lines of the profile."""
    for name, fn in runs.items():
        path = path_of(name)
        text = profile_once(fn, top, path)
        print(say(name, path))
        if head:
            print("\n".join(text.splitlines()[:head]))
