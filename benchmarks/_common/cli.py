"""The command-line options the scripts share, their checks, and quieting the libraries' output."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from .alignkit_side import MODEL_SIZES
from .report import device_line, load_average, print_host


def benchmark_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser described by the first paragraph of the script's docstring."""
    return argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])


def add_policy_arguments(p: argparse.ArgumentParser) -> None:
    """``--model`` (a trained policy) or ``--sft-steps`` of the toy SFT that makes one."""
    p.add_argument(
        "--model", default=None, help="the SFT policy (folder, hub name); default: train a toy one"
    )
    p.add_argument(
        "--sft-steps", type=int, default=200, help="steps of the toy SFT when --model is not given"
    )


def add_model_size_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-size", choices=MODEL_SIZES, default="toy", help="toy (~0.5M) or 4m (~3.8M Llama)")


def add_common_arguments(
    p: argparse.ArgumentParser, *, steps: int, warmup: int, micro_batch: int, lr: float
) -> None:
    """The command-line options the offline comparisons (SFT, DPO) share."""
    add_model_size_argument(p)
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
    add_trl_optim_argument(p)


def add_trl_optim_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trl-default-optim", action="store_true", help="let TRL build its default (fused) AdamW")


def add_prompt_arguments(p: argparse.ArgumentParser) -> None:
    """The online comparisons' prompts and rule reward: ``--model-size`` .. ``--reward``."""
    add_model_size_argument(p)
    p.add_argument("--data", default="toyworld://data/prompts", help="prompt dataset")
    p.add_argument("--template", default="trl-prompt", help="alignkit data template for --data")
    p.add_argument("--split", default="train")
    p.add_argument(
        "--reward", default="alignkit.toyworld.oracle:ideal_reward", help="rule reward 'module:function'"
    )


def add_rollout_arguments(
    p: argparse.ArgumentParser, *, prompts_help: str, group_help: str, steps_help: str, lr_help: str | None
) -> None:
    """The online comparisons' rollout shape and run schedule: ``--prompts-per-step`` .. ``--lr``."""
    p.add_argument("--prompts-per-step", type=int, default=16, help=prompts_help)
    p.add_argument("--group-size", type=int, default=8, help=group_help)
    p.add_argument("--max-new-tokens", type=int, default=32, help="longest completion")
    p.add_argument("--micro-batch", type=int, default=32, help="samples per forward/backward")
    p.add_argument("--steps", type=int, default=11, help=steps_help)
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each trainer (median reported)")
    p.add_argument("--warmup-steps", type=int, default=2, help="steps of the untimed warm-up run of each")
    p.add_argument("--lr", type=float, default=1e-4, help=lr_help)


def add_adam_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--betas", type=float, nargs=2, default=[0.9, 0.95], help="AdamW betas")
    p.add_argument("--max-grad-norm", type=float, default=1.0)


def parse_checked(p: argparse.ArgumentParser) -> Any:
    """Parse the command line; refuse fewer than 2 steps (steps 2..N are timed)."""
    args = p.parse_args()
    if args.steps < 2:
        p.error("--steps must be at least 2 (steps 2..N are timed)")
    return args


def check_rollout_divides(p: argparse.ArgumentParser, args: Any, message: str) -> None:
    """Refuse a micro-batch that does not divide the rollout (one optimizer step per rollout)."""
    if (args.prompts_per_step * args.group_size) % args.micro_batch:
        p.error(message)


def quiet_libraries(progress_bars: bool = True) -> None:
    """transformers' warnings off; with ``progress_bars``, its, datasets' and tqdm's progress bars too
    (``TQDM_DISABLE``: TRL's reference-precompute bar)."""
    import transformers

    transformers.logging.set_verbosity_error()
    if progress_bars:
        import datasets

        transformers.utils.logging.disable_progress_bar()
        datasets.disable_progress_bars()
        os.environ.setdefault("TQDM_DISABLE", "1")


def start_run(args: Any, prefix: str, note_load: bool = True) -> tuple[str, Path]:
    """The device line, printed with the host's threads and load (noted as ``args.load_at_start`` for the
    report unless ``note_load`` is off), and a fresh scratch folder ``<tmp>/<prefix>*``."""
    device = device_line()
    if note_load:
        args.load_at_start = load_average()
    print_host(device)
    return device, Path(tempfile.mkdtemp(prefix=prefix))
