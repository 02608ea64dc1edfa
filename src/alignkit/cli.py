"""The ``alignkit`` command line: train, evaluate, inspect data, run the demo, export, build the toy world.

Every ``train`` and ``eval`` command is a config dataclass plus a function; the CLI only parses, checks
and reports. A failure never ends in a Python traceback: a mistake in the command, a config, a path or the
data exits with status 2 and one paragraph naming the key, file or row and what to do; a run stopped by a
fault (Ctrl-C, a full disk) or failing while running exits with status 1 and says what failed and, for a
training run, where its last checkpoint is (``ALIGNKIT_DEBUG=1`` re-raises with the traceback).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alignkit.train.registry import TRAINERS, trainer_for  # noqa: F401 - the CLI's registry of trainers

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
"""0: done; 1: a failure while running (Ctrl-C, a full disk, out of memory, a network error); 2: a mistake in
the command, config, paths or data, found before any work (nothing was written)."""

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

OTHER_COMMANDS = {
    "data inspect": "validate a dataset through a template; print counts and a sample",
    "data templates": "list the dataset templates",
    "demo": "the whole loop on the offline toy world (SFT, reward, cost, DPO, PPO, Safe RLHF, GRPO)",
    "export": "merge a LoRA run into a plain Hugging Face checkpoint",
    "serve": "serve a model (or a guarded / corrected chain) behind an OpenAI-compatible HTTP API",
    "toyworld build": "build the offline toy world (models and data used by toyworld:// paths)",
}

EPILOG = """exit status:
  0  done
  1  a failure while running (Ctrl-C, a full disk, out of memory, a network error ...); the message says
     what failed and, for a training run, where its last checkpoint is (resume with run.resume=true)
  2  a mistake in the command, config, a path or the data, found before any work; the message names
     the key, file or row and what to do

environment:
  ALIGNKIT_DEBUG=1     show the Python traceback of a failure
  ALIGNKIT_MAX_STEPS=N cap every training command at N steps (a quick tour of a recipe)"""


def _evaluation(name: str) -> tuple[type, Any]:
    module = importlib.import_module(EVALUATIONS[name][0])
    return getattr(module, EVALUATIONS[name][1]), module.run


def _command_list() -> str:
    """Every command with one plain line of text: the top of ``alignkit --help``."""
    rows = [(f"train {name}", help_) for name, (_, _, help_) in TRAINERS.items()]
    rows += [(f"eval {name}", help_) for name, (_, _, help_) in EVALUATIONS.items()]
    rows += [(f"eval {name}", help_) for name, help_ in EVAL_ACTIONS.items()]
    rows += list(OTHER_COMMANDS.items())
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  alignkit {name:<{width}}  {help_}" for name, help_ in rows)


def _choices_text(table: dict[str, tuple[str, str, str]]) -> str:
    width = max(len(name) for name in table)
    return "\n".join(f"  {name:<{width}}  {help_}" for name, (_, _, help_) in table.items())


CONFIGURED_USAGE = (
    "--config FILE.yaml   YAML config (optional); then key.sub=value overrides, read as YAML values\n"
    "                     (null, false, 3e-4, [0.9, 0.95]) and applied after the file\n"
    "--show-config        print the resolved config as YAML (with every key's doc) and exit"
)


def _add_configured(
    sub: Any, name: str, help_: str, table: dict[str, tuple[str, str, str]], what: str
) -> None:
    """``train`` and ``eval``: a choice of command, ``--config``, ``--show-config`` and overrides."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = sub.add_parser(
        name,
        help=help_,
        description=f"{help_}.\n\n{what}s:\n{_choices_text(table)}\n\n{CONFIGURED_USAGE}",
        formatter_class=formatter,
        epilog=EPILOG,
    )
    parser.add_argument(what, choices=list(table), metavar=what.upper(), help=f"one of: {', '.join(table)}")
    _add_config_arguments(parser)


def _add_config_arguments(parser: Any) -> None:
    """``--config``, ``--show-config`` and ``key=value`` overrides."""
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML config file")
    parser.add_argument(
        "--show-config", action="store_true", help="print the resolved config as YAML and exit"
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. trainer.lr=3e-4"
    )


def _add_eval(sub: Any) -> None:
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
        _add_config_arguments(configured)
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
    _add_config_arguments(run)
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


def _build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="alignkit",
        description="Align language models with human feedback.\n\ncommands:\n" + _command_list(),
        epilog=EPILOG,
        formatter_class=formatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_configured(sub, "train", "train a model", TRAINERS, "algorithm")
    _add_eval(sub)

    data = sub.add_parser(
        "data", help="inspect and validate datasets", epilog=EPILOG, formatter_class=formatter
    )
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    inspect = data_sub.add_parser("inspect", help=OTHER_COMMANDS["data inspect"])
    inspect.add_argument("source", help="hub name, local file or folder, or toyworld:// path")
    inspect.add_argument("--template", required=True, help="template name (see `alignkit data templates`)")
    inspect.add_argument("--split", default="train")
    inspect.add_argument(
        "--skip-invalid", action="store_true", help="count bad rows instead of stopping at the first"
    )
    inspect.add_argument(
        "--column", action="append", default=[], metavar="FIELD=COLUMN", help="for template 'columns'"
    )
    inspect.add_argument("--subset", default=None, help="the hub dataset's subset (config), e.g. alpaca-7b")
    inspect.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a template option, e.g. dimension=helpfulness (VALUE is read as YAML)",
    )
    data_sub.add_parser("templates", help=OTHER_COMMANDS["data templates"])

    demo = sub.add_parser("demo", help=OTHER_COMMANDS["demo"], epilog=EPILOG, formatter_class=formatter)
    demo.add_argument("--out", default="runs/demo", help="run folder for the demo")
    demo.add_argument("--overwrite", action="store_true", help="replace an earlier demo run in --out")

    export = sub.add_parser("export", help=OTHER_COMMANDS["export"], epilog=EPILOG, formatter_class=formatter)
    export.add_argument(
        "--merge",
        required=True,
        metavar="ADAPTER",
        help="LoRA run folder, its final/ or a checkpoints/step-N folder: the adapter to merge into its base",
    )
    export.add_argument("--out", required=True, help="folder for the merged checkpoint")
    export.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    export.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")

    from alignkit.serve.cli import add_parser as add_serve

    add_serve(sub, EPILOG)

    toy = sub.add_parser(
        "toyworld", help=OTHER_COMMANDS["toyworld build"], epilog=EPILOG, formatter_class=formatter
    )
    toy.add_argument("action", choices=["build"], metavar="build")
    toy.add_argument("--out", default=None, help="folder (default: the cache used by toyworld:// paths)")
    return parser


def _print_config(config: Any, prefix: str = "") -> None:
    """The config as YAML that reads back as the same config (``null``, ``false``), each key's doc as a
    comment: paste it into a file for ``--config``, or a value after ``key=`` on the command line."""
    import dataclasses

    from alignkit.config import field_docs, yaml_inline

    docs = field_docs(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        doc = docs.get(f.name, "")
        if dataclasses.is_dataclass(value):
            print(f"{prefix}{f.name}:  # {doc}")
            _print_config(value, prefix + "  ")
        else:
            print(f"{prefix}{f.name}: {yaml_inline(value)}  # {doc}")


def _run_configured(config_cls: type, fn: Any, args: argparse.Namespace) -> int:
    from alignkit.config import load_config

    if args.show_config:  # show the keys even while required ones (e.g. reward.path) are still blank
        _print_config(load_config(config_cls, args.config, args.overrides, validate=False))
        return EXIT_OK
    config = load_config(config_cls, args.config, [*args.overrides, *step_cap_overrides(config_cls)])
    fn(config)
    return EXIT_OK


STEP_CAP_ENV = "ALIGNKIT_MAX_STEPS"
"""Environment variable capping every training command's steps: a quick tour of a recipe or the README."""


def step_cap_overrides(config_cls: type) -> list[str]:
    """``ALIGNKIT_MAX_STEPS=N`` as the override of the command's own step key (offline trainers count
    ``trainer.max_steps``, online ones ``trainer.steps``); applied last, so it is what the run's
    config.yaml records. Commands without steps (eval) are left alone."""
    from alignkit.config import ConfigError

    value = os.environ.get(STEP_CAP_ENV, "").strip()
    if not value:
        return []
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(
            f"{STEP_CAP_ENV}={value!r} is not allowed: expected a positive integer, or unset it"
        )
    trainer = {f.name: f for f in dataclasses.fields(config_cls)}.get("trainer")
    if trainer is None:
        return []
    keys = {f.name for f in dataclasses.fields(trainer.default_factory())}  # type: ignore[misc]
    key = next((k for k in ("max_steps", "steps") if k in keys), None)
    return [f"trainer.{key}={int(value)}"] if key else []


def _cmd_train(args: argparse.Namespace) -> int:
    return _run_configured(*trainer_for(args.algorithm), args)


def _cmd_eval(args: argparse.Namespace) -> int:
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
            return _run_configured(*external, args)

        task = resolve_task(args.task)
        return _run_configured(task.config_class, functools.partial(evaluate, task), args)
    return _run_configured(*_evaluation(action), args)


def _cmd_data(args: argparse.Namespace) -> int:
    import yaml

    from alignkit.data import TEMPLATES, get_template, inspect_dataset
    from alignkit.models.loading import resolve_path
    from alignkit.sections import check_template_name

    if args.data_command == "templates":
        for name in sorted(TEMPLATES):
            options = [f"{f.name}={f.default!r}" for f in dataclasses.fields(TEMPLATES[name])]
            print(f"{name}  (options: {', '.join(options)})" if options else name)
        return EXIT_OK
    check_template_name(args.template, "--template")
    column_map = _pairs(args.column, "--column", "prompt=instruction") or None
    options = _pairs(args.option, "--option", "dimension=helpfulness")
    template = get_template(args.template, **{name: yaml.safe_load(value) for name, value in options.items()})
    report = inspect_dataset(
        resolve_path(args.source),
        template,
        split=args.split,
        skip_invalid=args.skip_invalid,
        column_map=column_map,
        subset=args.subset,
    )
    print(report.format())
    return EXIT_OK


def _pairs(items: Sequence[str], flag: str, example: str) -> dict[str, str]:
    """``KEY=VALUE`` arguments as a dict; one without ``=`` is a data error naming the flag."""
    from alignkit.data.errors import TemplateError

    bad = [item for item in items if "=" not in item or item.startswith("=")]
    if bad:
        raise TemplateError(f"{flag} {bad[0]!r}: expected NAME=VALUE, e.g. {flag} {example}")
    return dict(item.split("=", 1) for item in items)


def _cmd_demo(args: argparse.Namespace) -> int:
    from alignkit.demo import run_demo
    from alignkit.sections import check_output_dir

    check_output_dir(args.out, "--out")
    run_demo(args.out, overwrite=args.overwrite)
    return EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    from alignkit.models.export import export_merged
    from alignkit.sections import check_output_dir

    check_output_dir(args.out, "--out")
    out = export_merged(args.merge, args.out, dtype=args.dtype, overwrite=args.overwrite)
    print(f"merged checkpoint written to {out}")
    return EXIT_OK


def _cmd_toyworld(args: argparse.Namespace) -> int:
    from alignkit import toyworld
    from alignkit.sections import check_output_dir

    if args.out:
        check_output_dir(args.out, "--out")
    folder = toyworld.build(Path(args.out)).root if args.out else toyworld.resolve("toyworld://")
    print(f"toy world ready in {folder}")
    return EXIT_OK


def _cmd_serve(args: argparse.Namespace) -> int:
    from alignkit.serve.cli import run

    return run(args, _print_config)


HANDLERS = {
    "train": _cmd_train,
    "eval": _cmd_eval,
    "data": _cmd_data,
    "demo": _cmd_demo,
    "toyworld": _cmd_toyworld,
    "export": _cmd_export,
    "serve": _cmd_serve,
}


def user_errors() -> dict[type[BaseException], str]:
    """Exception type -> the word printed before its message: mistakes a user makes, exit status 2."""
    from alignkit.config import ConfigError
    from alignkit.data.errors import DataError
    from alignkit.data.render import ChatTemplateError
    from alignkit.models.export import ExportError
    from alignkit.runs import RunFolderError

    return {
        ConfigError: "config error",
        RunFolderError: "run folder",
        DataError: "data error",
        ChatTemplateError: "chat template",
        ExportError: "export",
    }


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    # Overrides may come before or after --config; argparse leaves the later ones over, so collect them.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if getattr(args, "overrides", None) is None or any(
            "=" not in item or item.startswith("-") for item in extra
        ):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    return args


def one_paragraph(text: str) -> str:
    """A message as one paragraph: libraries' multi-line messages joined, runs of blanks squeezed."""
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 done, 1 failed while running, 2 a user's mistake)."""
    parser = _build_parser()
    try:
        args = _parse(parser, argv)
    except SystemExit as stop:  # --help (0), or a usage error argparse has already explained (2)
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    known = user_errors()
    try:
        return HANDLERS[args.command](args)
    except tuple(known) as exc:
        kind = next(label for cls, label in known.items() if isinstance(exc, cls))
        print(f"alignkit: {kind}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (Exception, KeyboardInterrupt) as exc:  # the one place every other failure is put in words
        if os.environ.get("ALIGNKIT_DEBUG"):
            raise
        message = _fault_message(exc)
        if message is None:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            message = (
                f"failed: {type(exc).__name__}: {one_paragraph(str(exc)) or '(no message)'} "
                f"[raised in {Path(where.filename).name}:{where.lineno}; ALIGNKIT_DEBUG=1 shows the traceback]"
            )
        print(f"alignkit: {message}", file=sys.stderr)
        return EXIT_FAILED


def _fault_message(exc: BaseException) -> str | None:
    """The line for a run stopped by a fault, or None for any other failure.

    Training loops raise ``RunInterrupted`` / ``DiskFullError`` with the last checkpoint in the message;
    this also covers Ctrl-C and a full disk outside a loop (loading, evaluation, the demo's reports).
    """
    from alignkit.runs import DiskFullError, RunFailure, RunInterrupted, is_disk_full

    if isinstance(exc, RunInterrupted):
        return f"interrupted: {exc}"
    if isinstance(exc, DiskFullError):
        return f"disk full: {exc}"
    if isinstance(exc, RunFailure):
        return f"error: {exc}"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)."
    if isinstance(exc, OSError) and is_disk_full(exc):
        where = f" while writing {exc.filename}" if exc.filename else ""
        return f"disk full: {exc.strerror}{where}. Free some space and run the command again."
    return None


if __name__ == "__main__":
    sys.exit(main())
