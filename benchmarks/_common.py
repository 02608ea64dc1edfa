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
from collections.abc import Callable, Iterator, Sequence
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
    import importlib.metadata

    import transformers

    out = {"torch": torch.__version__, "transformers": transformers.__version__}
    for package in ("trl", "alignkit"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


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


# ------------------------------------------------------------------------------------ shared run set-up
def train_sft_policy(args: Any, out_dir: Path) -> str:
    """A starting policy: the toy SFT recipe (``examples/toyworld/sft.yaml``) on ``--model-size``'s model,
    shortened to ``--sft-steps`` (preference training never starts from random init)."""
    from alignkit.config import load_config
    from alignkit.train.sft import SFTConfig, train

    config = load_config(
        SFTConfig,
        REPO / "examples/toyworld/sft.yaml",
        [
            f"model.path={sized_model(args.model_size)}",
            f"trainer.max_steps={args.sft_steps}",
            "trainer.eval_every=0",
            "trainer.save_every=0",
            f"run.output_dir={out_dir}",
            "run.overwrite=true",
            "run.tensorboard=false",
            "run.progress=false",
        ],
    )
    t0 = time.perf_counter()
    result = train(config)
    losses = [r["loss"] for r in result.history if "loss" in r]
    print(
        f"SFT policy: {args.sft_steps} steps in {time.perf_counter() - t0:.1f} s, final loss {losses[-1]:.4f}"
    )
    return str(out_dir / "final")


def alignkit_trainer_section(args: Any, steps: int) -> dict[str, Any]:
    """alignkit's ``trainer`` section for a timed run: constant LR, no warm-up/eval/saves, log every step."""
    return {
        "lr": args.lr,
        "adam_betas": list(args.betas),
        "weight_decay": 0.0,
        "lr_scheduler": "constant",
        "warmup_ratio": 0.0,
        "max_steps": steps,
        "micro_batch_size": args.micro_batch,
        "grad_accum_steps": 1,
        "max_grad_norm": args.max_grad_norm,
        "eval_every": 0,
        "save_every": 0,
        "log_every": 1,
        "seed": args.seed,
        "mixed_precision": "no",
    }


def alignkit_common_sections(args: Any, model: str, steps: int, run_dir: Path) -> dict[str, Any]:
    """The config sections every alignkit run here shares: fp32 model, data, trainer, quiet run folder."""
    return {
        "model": {"path": model, "dtype": "float32", "gradient_checkpointing": False},
        "data": {
            "train": {"source": args.data, "template": args.template, "split": args.split},
            "max_length": args.max_length,
            "packing": not args.no_packing,
        },
        "trainer": alignkit_trainer_section(args, steps),
        "run": {"output_dir": str(run_dir), "overwrite": True, "tensorboard": False, "progress": False},
    }


def run_alignkit_timed(train: Any, config: Any, steps: int) -> dict[str, Any]:
    """One public ``train(config)`` call under the memory meter; per-step wall/CPU clocks from its metrics."""
    t0 = time.perf_counter()
    with cpu_clock_at_metrics_log() as cpu_at_log, MemoryMeter() as mem:
        result = train(config)
    wall = time.perf_counter() - t0
    steps_log = alignkit_step_log(result, steps)
    return {
        "step_end_s": [r["elapsed_s"] for r in steps_log],
        "step_end_cpu_s": cpu_at_log[:steps],
        "losses": [r["loss"] for r in steps_log],
        "units_logged": [r["units"] for r in steps_log],
        "first_step_metrics": {k: v for k, v in steps_log[0].items() if isinstance(v, float)},
        "wall_s": wall,
        **mem.report(),
    }


def trl_common_args(args: Any, steps: int, out_dir: Path) -> dict[str, Any]:
    """The TRL config keywords both comparisons share (the same optimisation and bookkeeping as alignkit)."""
    return {
        "output_dir": str(out_dir),
        "max_steps": steps,
        "per_device_train_batch_size": args.micro_batch,
        "gradient_accumulation_steps": 1,
        "learning_rate": args.lr,
        "adam_beta1": args.betas[0],
        "adam_beta2": args.betas[1],
        "weight_decay": 0.0,
        "max_grad_norm": args.max_grad_norm,
        "lr_scheduler_type": "constant",
        "warmup_steps": 0,
        "bf16": False,
        "fp16": False,
        "activation_checkpointing": False,
        "max_length": args.max_length,
        "padding_free": False,
        "logging_strategy": "steps",
        "logging_steps": 1,
        "eval_strategy": "no",
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "seed": args.seed,
        "use_cpu": not torch.cuda.is_available(),
    }


def trl_model_and_optimizers(args: Any, path: str) -> tuple[Any, Any, tuple[Any, Any]]:
    """(tokenizer, fp32 model on the device, optimizers): the ``torch.optim.AdamW`` alignkit builds, unless
    ``--trl-default-optim``."""
    from transformers import AutoModelForCausalLM

    from alignkit.models.loading import load_tokenizer, resolve_path

    tokenizer = load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(resolve_path(path), dtype=torch.float32)
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    optimizers: tuple[Any, Any] = (None, None)
    if not args.trl_default_optim:
        params = [p for p in model.parameters() if p.requires_grad]
        optimizers = (
            torch.optim.AdamW(params, lr=args.lr, betas=tuple(args.betas), weight_decay=0.0),
            None,
        )
    return tokenizer, model, optimizers


class StepLossRecorder:
    """Mixin for a TRL trainer: keeps each training micro-batch's loss (detached: no device sync) and the
    first training batch's inputs."""

    step_losses: list[torch.Tensor]
    first_batch: dict[str, torch.Tensor] | None = None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001, ANN201
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)  # type: ignore[misc]
        if model.training:
            if self.first_batch is None:
                self.first_batch = {
                    k: v.detach().cpu() for k, v in inputs.items() if isinstance(v, torch.Tensor)
                }
            self.step_losses.append((loss[0] if return_outputs else loss).detach())
        return loss


def labelled_split(example: Any) -> tuple[list[int], list[int]]:
    """``(prompt_ids, completion_ids)``: the unlabelled prefix and the labelled (scored) tokens after it."""
    labelled = [i for i, t in enumerate(example.labels) if t != -100]
    start, end = labelled[0], labelled[-1] + 1
    assert labelled == list(range(start, end)), "alignkit's labelled tokens are not one contiguous span"
    return list(example.input_ids[:start]), list(example.input_ids[start:end])


def labels_differ(trl_batch: dict[str, torch.Tensor], examples: list[Any]) -> bool:
    """TRL's labels (input ids where ``completion_mask``) vs alignkit's ``collate_pairs`` labels, same width."""
    from alignkit.data.pair_examples import collate_pairs

    ours = collate_pairs(examples, pad_token_id=0)["labels"]
    theirs = trl_batch["input_ids"].masked_fill(trl_batch["completion_mask"] == 0, -100)
    width = max(ours.shape[1], theirs.shape[1])
    ours = torch.nn.functional.pad(ours, (0, width - ours.shape[1]), value=-100)
    theirs = torch.nn.functional.pad(theirs, (0, width - theirs.shape[1]), value=-100)
    return not torch.equal(ours, theirs)


def train_trl_quietly(trainer: Any) -> None:
    """Quiet a TRL trainer (no stdout printer) and train it."""
    from transformers import PrinterCallback

    trainer.step_losses = []
    trainer.remove_callback(PrinterCallback)
    trainer.train()


def timed_summary(raw: dict[str, Any], steps: int) -> dict[str, Any]:
    """What both comparisons report of a run, timed over steps 2..N (end of step 1 to end of step N)."""
    ends = raw["step_end_s"]
    assert len(ends) == steps, f"expected {steps} step timings, got {len(ends)}"
    seconds = ends[-1] - ends[0]
    cpu = raw["step_end_cpu_s"]
    return {
        "timed_steps": steps - 1,
        "timed_s": seconds,
        "cpu_s_per_step": (cpu[-1] - cpu[0]) / (steps - 1),
        "steps_per_s": (steps - 1) / seconds,
        "first_loss": raw["losses"][0],
        "last_loss": raw["losses"][-1],
        "wall_s": raw["wall_s"],
        **{k: v for k, v in raw.items() if k.endswith("_mib")},
    }


def alternating_runs(
    once: Any, summarise: Any, args: Any, describe: Any, label: str = ""
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
    """A warm-up run of each trainer, then ``--repeats`` timed rounds alternating alignkit, TRL, ...

    ``once(name, steps, tag) -> raw``; ``summarise(raw) -> run``; ``describe(run) -> str`` for the line.
    Returns (summaries, raws) per trainer.
    """
    print(f"\n{label}warm-up: {args.warmup_steps} steps of each")
    for name in ("alignkit", "trl"):
        once(name, args.warmup_steps, "warmup")
    runs: dict[str, list[dict[str, Any]]] = {"alignkit": [], "trl": []}
    raws: dict[str, list[dict[str, Any]]] = {"alignkit": [], "trl": []}
    for i in range(args.repeats):
        for name in ("alignkit", "trl"):
            raws[name].append(once(name, args.steps, str(i)))
            runs[name].append(summarise(raws[name][-1]))
            print(f"  repeat {i + 1}/{args.repeats} {name:8s} {describe(runs[name][-1])}")
    return runs, raws


def loss_curve_diff(raws: dict[str, list[dict[str, Any]]]) -> float:
    """Max |alignkit - TRL| over the first timed run's per-step losses."""
    pairs = zip(raws["alignkit"][0]["losses"], raws["trl"][0]["losses"], strict=True)
    return max(abs(x - y) for x, y in pairs)


def add_common_arguments(p: Any, *, steps: int, warmup: int, micro_batch: int, lr: float) -> None:
    """The command-line options both comparisons share."""
    p.add_argument("--model-size", choices=MODEL_SIZES, default="toy", help="toy (~0.5M) or 4m (~3.8M Llama)")
    p.add_argument("--split", default="train")
    p.add_argument("--steps", type=int, default=steps, help="optimizer steps per timed run")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each trainer (median reported)")
    p.add_argument(
        "--warmup-steps", type=int, default=warmup, help="steps of the untimed warm-up run of each"
    )
    p.add_argument("--micro-batch", type=int, default=micro_batch)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--betas", type=float, nargs=2, default=[0.9, 0.95])
    p.add_argument("--max-grad-norm", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-packing", action="store_true", help="alignkit with data.packing=false (padded rows)")
    p.add_argument("--trl-default-optim", action="store_true", help="let TRL build its default (fused) AdamW")


def report_header(args: Any, device: str) -> dict[str, Any]:
    """The first fields of a results JSON: command, host, versions, settings, how things were measured."""
    import sys

    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "versions": versions(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "timing": "steps 2..N: end of step 1 to end of step N (alignkit elapsed_s; TRL on_step_end)",
        "cpu_time": "process CPU seconds (all threads) per step over steps 2..N, from time.process_time()",
        "load_average_at_start": getattr(args, "load_at_start", None),
        "load_average_at_end": load_average(),
        "memory": memory_description(),
    }


# ------------------------------------------------------------------------------ online trainers' instruments
@contextlib.contextmanager
def patched(owner: Any, name: str, wrap: Callable[[Any], Any]) -> Iterator[None]:
    """Replace ``owner.name`` by ``wrap(original)`` for the duration of the block."""
    original = getattr(owner, name)
    setattr(owner, name, wrap(original))
    try:
        yield
    finally:
        setattr(owner, name, original)


def timed(phases: dict[str, float], phase: str, fn: Any, when: Callable[..., bool] | None = None) -> Any:
    """``fn`` that adds its wall time to ``phases[phase]`` (only for calls where ``when(*args)`` holds)."""

    def wrapper(*a: Any, **k: Any) -> Any:
        if when is not None and not when(*a, **k):
            return fn(*a, **k)
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            phases[phase] = phases.get(phase, 0.0) + time.perf_counter() - t0

    return wrapper


def rollout_recorder(calls: list[dict[str, Any]]) -> Callable[[Any], Any]:
    """Wrap ``HFGenerator.generate``: per call, the prompts' user texts and each completion's token count."""
    from alignkit.score.base import message_text

    def wrap(generate: Any) -> Any:
        def recorded(self: Any, prompts: Any, sampling: Any, **kw: Any) -> Any:
            out = generate(self, prompts, sampling, **kw)
            calls.append(
                {
                    "prompts": [message_text(p, "user") for p in prompts],
                    "lengths": [len(c.token_ids or ()) for c in out],
                }
            )
            return out

        return recorded

    return wrap


def summarise_rollout_run(raw: dict[str, Any], steps: int) -> dict[str, Any]:
    """Times over steps 2..N (end of step 1 to end of step N); completions and tokens of those steps."""
    ends = raw["step_end_s"]
    assert len(ends) == steps, f"expected {steps} step timings, got {len(ends)}"
    seconds = ends[-1] - ends[0]
    cpu = raw["step_end_cpu_s"]
    timed_calls = raw["calls"][1:steps]
    completions = sum(len(c["lengths"]) for c in timed_calls)
    tokens = sum(sum(c["lengths"]) for c in timed_calls)
    return {
        "timed_steps": steps - 1,
        "timed_s": seconds,
        "s_per_step": seconds / (steps - 1),
        "steps_per_s": (steps - 1) / seconds,
        "cpu_s_per_step": (cpu[-1] - cpu[0]) / (steps - 1),
        "completions_per_step": completions / (steps - 1),
        "completions_per_s": completions / seconds,
        "mean_completion_tokens": tokens / max(completions, 1),
        "completion_tokens_per_s": tokens / seconds,
        "mean_reward": statistics.fmean(raw["rewards"][:steps]),
        "wall_s": raw["wall_s"],
        **{k: v for k, v in raw.items() if k.endswith("_mib")},
    }
