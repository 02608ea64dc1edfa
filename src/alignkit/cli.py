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
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alignkit.cli_common import (  # noqa: F401 - EXIT_* and step_cap_overrides are the CLI's interface
    CONFIGURED_USAGE,
    EPILOG,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    STEP_CAP_ENV,
    add_config_arguments,
    print_config,
    run_configured,
    step_cap_overrides,
)
from alignkit.cli_eval import EVAL_ACTIONS, EVALUATIONS, add_eval_parser, cmd_eval
from alignkit.train.registry import TRAINERS, trainer_for  # noqa: F401 - the CLI's registry of trainers

OTHER_COMMANDS = {
    "data inspect": "validate a dataset through a template; print counts and a sample",
    "data templates": "list the dataset templates",
    "demo": "the whole loop on the offline toy world (SFT, reward, cost, DPO, PPO, Safe RLHF, GRPO)",
    "export": "merge a LoRA run into a plain Hugging Face checkpoint",
    "serve": "serve a model (or a guarded / corrected chain) behind an OpenAI-compatible HTTP API",
    "toyworld build": "build the offline toy world (models and data used by toyworld:// paths)",
}


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
    add_config_arguments(parser)


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
    add_eval_parser(sub)

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
    demo.add_argument(
        "--modality",
        default="text",
        metavar="{text,image}",
        help="which toy world: text (default) or image (SFT-V, reward-V, cost-V, DPO-V, Safe RLHF-V on pictures)",
    )

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


def _cmd_train(args: argparse.Namespace) -> int:
    return run_configured(*trainer_for(args.algorithm), args)


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
    from alignkit.demo import plan_for, run_demo
    from alignkit.sections import check_output_dir

    plan_for(args.modality)  # an unknown modality is refused before anything else
    check_output_dir(args.out, "--out")
    step_cap_overrides(trainer_for("sft")[0])  # a bad ALIGNKIT_MAX_STEPS is refused before the demo starts
    run_demo(args.out, overwrite=args.overwrite, modality=args.modality, step_cap=step_cap_overrides)
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

    return run(args, print_config)


HANDLERS = {
    "train": _cmd_train,
    "eval": cmd_eval,
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
