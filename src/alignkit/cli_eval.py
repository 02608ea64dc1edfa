"""``alignkit eval``: run an eval task, list the tasks, compare runs, the Libra leaderboard, and the
configured evaluations (``eval preference``). Its parser and its handler; ``cli.py`` mounts both.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from alignkit.cli_common import CONFIGURED_USAGE, EPILOG, EXIT_OK, add_config_arguments, run_configured

# evaluation -> (module, config class, what it measures); the module's ``run(config)`` does the work.
EVALUATIONS: dict[str, tuple[str, str, str]] = {
    "preference": (
        "alignkit.eval.preference",
        "PreferenceEvalConfig",
        "held-out pair accuracy of a reward, cost or DPO model",
    ),
}

EVAL_ACTIONS = {
    "run": "run an eval task (alignkit eval list) on a model or endpoint: results.json, samples.jsonl, report.html",
    "list": "list the eval tasks: what each measures, its metrics and keys",
    "compare": "runs of one task side by side, each against the first, with paired significance tests",
    "leaderboard": "rank models by Libra's balance of capability and safety, read from their eval runs",
}
"""``alignkit eval`` actions beside the configured evaluations of ``EVALUATIONS``."""


def evaluation(name: str) -> tuple[type, Any]:
    module = importlib.import_module(EVALUATIONS[name][0])
    return getattr(module, EVALUATIONS[name][1]), module.run


def add_eval_parser(sub: Any) -> None:
    """``alignkit eval``: the configured evaluations (``EVALUATIONS``) and the task actions (``EVAL_ACTIONS``)."""
    formatter = argparse.RawDescriptionHelpFormatter
    rows = {**{name: help_ for name, (_, _, help_) in EVALUATIONS.items()}, **EVAL_ACTIONS}
    width = max(len(name) for name in rows)
    listing = "\n".join(f"  {name:<{width}}  {help_}" for name, help_ in rows.items())
    parser = sub.add_parser(
        "eval",
        help="evaluate models: eval tasks, comparisons, judges' held-out accuracy",
        description=f"Evaluate models.\n\nactions:\n{listing}\n\n{CONFIGURED_USAGE}",
        formatter_class=formatter,
        epilog=EPILOG,
    )
    actions = parser.add_subparsers(dest="eval_command", required=True, metavar="ACTION")
    for name, (_, _, help_) in EVALUATIONS.items():
        configured = actions.add_parser(
            name,
            help=help_,
            description=f"{help_}.\n\n{CONFIGURED_USAGE}",
            formatter_class=formatter,
            epilog=EPILOG,
        )
        add_config_arguments(configured)
    run = actions.add_parser(
        "run",
        help=EVAL_ACTIONS["run"],
        description=(
            f"{EVAL_ACTIONS['run']}.\n\nalignkit eval run TASK model=SPEC [key=value ...] [--config FILE.yaml]\n"
            "SPEC: a local model folder or hub name, a run folder (its final/), toyworld://..., vllm:PATH, or\n"
            "openai:URL#MODEL. A rerun with run.resume=true reuses every answer already generated.\n\n"
            f"{CONFIGURED_USAGE}"
        ),
        formatter_class=formatter,
        epilog=EPILOG,
    )
    run.add_argument("task", metavar="TASK", help="an eval task (alignkit eval list)")
    add_config_arguments(run)
    actions.add_parser("list", help=EVAL_ACTIONS["list"], epilog=EPILOG, formatter_class=formatter)
    compare = actions.add_parser(
        "compare",
        help=EVAL_ACTIONS["compare"],
        description=EVAL_ACTIONS["compare"] + ".",
        epilog=EPILOG,
        formatter_class=formatter,
    )
    compare.add_argument(
        "runs", nargs="+", metavar="RUN", help="run folders of `alignkit eval run`; the first is the baseline"
    )
    compare.add_argument(
        "--out", default=None, help="write compare.json and report.html to this folder (else print only)"
    )
    compare.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    compare.add_argument(
        "--iters", type=int, default=1000, help="bootstrap resamples for the intervals (default 1000)"
    )
    compare.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and permutation test")
    _add_leaderboard(actions, formatter)


def _add_leaderboard(actions: Any, formatter: Any) -> None:
    """``alignkit eval leaderboard RUN ... --capability TASK:METRIC --safety TASK:METRIC``."""
    board = actions.add_parser(
        "leaderboard",
        help=EVAL_ACTIONS["leaderboard"],
        description=(
            f"{EVAL_ACTIONS['leaderboard']}.\n\nlibra = 1 - sqrt(((1 - x)^2 + (1 - y)^2) / 2): x the mean of the "
            "--capability metrics, y the mean of the --safety metrics;\nlower-is-better metrics enter as "
            "1 - value (safety from a harm rate: --safety toyworld-oracle:harm_rate).\n\n"
            "e.g. alignkit eval leaderboard runs/eval-sft runs/eval-ppo runs/eval-safe \\\n"
            "       --capability toyworld-oracle:benign_accuracy --safety toyworld-oracle:harm_rate"
        ),
        epilog=EPILOG,
        formatter_class=formatter,
    )
    board.add_argument(
        "runs",
        nargs="+",
        metavar="RUN",
        help="folders of `alignkit eval run` (NAME=FOLDER names the model; default: the run's model spec)",
    )
    board.add_argument(
        "--capability",
        action="append",
        default=[],
        metavar="TASK:METRIC",
        help="a capability metric (repeatable)",
    )
    board.add_argument(
        "--safety", action="append", default=[], metavar="TASK:METRIC", help="a safety metric (repeatable)"
    )
    board.add_argument(
        "--normalisation",
        choices=["none", "minmax", "percentage"],
        default="none",
        help="capability scores across models: none (rates in [0, 1], the default), minmax, percentage",
    )
    board.add_argument(
        "--out", default="runs/leaderboard", help="folder for leaderboard.json and report.html"
    )
    board.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")


def cmd_eval(args: argparse.Namespace) -> int:
    action = args.eval_command
    if action == "list":
        from alignkit.eval.tasks import task_list

        print(task_list())
        return EXIT_OK
    if action == "compare":
        from alignkit.eval.compare import compare_command

        compare_command(args.runs, out=args.out, overwrite=args.overwrite, iters=args.iters, seed=args.seed)
        return EXIT_OK
    if action == "leaderboard":
        from alignkit.eval.leaderboard import leaderboard_command

        leaderboard_command(
            args.runs,
            capability=args.capability,
            safety=args.safety,
            normalisation=args.normalisation,
            out=args.out,
            overwrite=args.overwrite,
        )
        return EXIT_OK
    if action == "run":
        import functools

        from alignkit.eval.interop.external import external_command
        from alignkit.eval.runner import evaluate, resolve_task

        external = external_command(args.task)  # lm-eval:TASK, inspect:TASK
        if external is not None:
            return run_configured(*external, args)

        task = resolve_task(args.task)
        return run_configured(task.config_class, functools.partial(evaluate, task), args)
    return run_configured(*evaluation(action), args)
