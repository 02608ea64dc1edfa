"""The ``alignkit`` command: ``alignkit train|data|demo|toyworld|export ... --config file.yaml key=value ...``.

Every ``train`` command is a config dataclass plus a ``train(config)`` function; the CLI only parses,
validates and reports errors in words a user can act on: exit status 2 for bad input (config, data, run
folder), 1 for a run stopped by a fault (Ctrl-C, a full disk), never a traceback for either.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

# command -> (module, config class). Adding a trainer is one line here plus its module.
TRAINERS: dict[str, tuple[str, str]] = {
    "sft": ("alignkit.train.sft", "SFTConfig"),
    "reward": ("alignkit.train.reward", "RewardConfig"),
    "cost": ("alignkit.train.cost", "CostConfig"),
    "dpo": ("alignkit.train.dpo", "DPOConfig"),
    "ppo": ("alignkit.train.ppo", "PPOConfig"),
    "safe-ppo": ("alignkit.train.safe_ppo", "SafePPOConfig"),
    "grpo": ("alignkit.train.grpo", "GRPOConfig"),
}


# evaluation -> (module, config class); the module's ``run(config)`` does the work.
EVALUATIONS: dict[str, tuple[str, str]] = {
    "preference": ("alignkit.eval.preference", "PreferenceEvalConfig"),
}


def trainer_for(name: str) -> tuple[type, Any]:
    module = importlib.import_module(TRAINERS[name][0])
    return getattr(module, TRAINERS[name][1]), module.train


def _evaluation(name: str) -> tuple[type, Any]:
    module = importlib.import_module(EVALUATIONS[name][0])
    return getattr(module, EVALUATIONS[name][1]), module.run


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alignkit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model")
    train.add_argument("algorithm", choices=sorted(TRAINERS))
    train.add_argument("--config", help="YAML config file")
    train.add_argument(
        "--show-config", action="store_true", help="print the resolved config and every key's doc"
    )
    train.add_argument("overrides", nargs="*", help="dotted overrides, e.g. trainer.lr=3e-4")

    evaluate = sub.add_parser("eval", help="evaluate a model; writes report.json and plots")
    evaluate.add_argument("evaluation", choices=sorted(EVALUATIONS))
    evaluate.add_argument("--config", help="YAML config file")
    evaluate.add_argument(
        "--show-config", action="store_true", help="print the resolved config and every key's doc"
    )
    evaluate.add_argument("overrides", nargs="*", help="dotted overrides, e.g. model.path=runs/reward/final")

    data = sub.add_parser("data", help="inspect and validate datasets")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    inspect = data_sub.add_parser("inspect", help="validate a dataset and print counts and a sample")
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
    data_sub.add_parser("templates", help="list dataset templates")

    demo = sub.add_parser("demo", help="the whole loop on the offline toy world")
    demo.add_argument("--out", default="runs/demo", help="run folder for the demo")
    demo.add_argument("--overwrite", action="store_true", help="replace an earlier demo run in --out")

    export = sub.add_parser("export", help="write a LoRA run as a plain Hugging Face checkpoint")
    export.add_argument(
        "--merge",
        required=True,
        metavar="ADAPTER",
        help="LoRA run folder, its final/ or a checkpoints/step-N folder: the adapter to merge into its base",
    )
    export.add_argument("--out", required=True, help="folder for the merged checkpoint")
    export.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    export.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")

    toy = sub.add_parser("toyworld", help="build the offline toy world")
    toy.add_argument("action", choices=["build"])
    toy.add_argument("--out", default=None, help="folder (default: the cache used by toyworld:// paths)")
    return parser


def _print_config(config: Any, prefix: str = "") -> None:
    import dataclasses

    from alignkit.config import field_docs

    docs = field_docs(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            print(f"{prefix}{f.name}:  # {docs.get(f.name, '')}")
            _print_config(value, prefix + "  ")
        else:
            print(f"{prefix}{f.name}: {value!r}  # {docs.get(f.name, '')}")


def _run_configured(config_cls: type, fn: Any, args: argparse.Namespace) -> int:
    from alignkit.config import load_config

    if args.show_config:  # show the keys even while required ones (e.g. reward.path) are still blank
        _print_config(load_config(config_cls, args.config, args.overrides, validate=False))
        return 0
    config = load_config(config_cls, args.config, args.overrides)
    fn(config)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    return _run_configured(*trainer_for(args.algorithm), args)


def _cmd_eval(args: argparse.Namespace) -> int:
    return _run_configured(*_evaluation(args.evaluation), args)


def _cmd_data(args: argparse.Namespace) -> int:
    import dataclasses

    import yaml

    from alignkit.data import TEMPLATES, get_template, inspect_dataset
    from alignkit.models.loading import resolve_path

    if args.data_command == "templates":
        for name in sorted(TEMPLATES):
            options = [f"{f.name}={f.default!r}" for f in dataclasses.fields(TEMPLATES[name])]
            print(f"{name}  (options: {', '.join(options)})" if options else name)
        return 0
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
    return 0


def _pairs(items: Sequence[str], flag: str, example: str) -> dict[str, str]:
    """``KEY=VALUE`` arguments as a dict; one without ``=`` is a data error naming the flag."""
    from alignkit.data.errors import TemplateError

    bad = [item for item in items if "=" not in item or item.startswith("=")]
    if bad:
        raise TemplateError(f"{flag} {bad[0]!r}: expected NAME=VALUE, e.g. {flag} {example}")
    return dict(item.split("=", 1) for item in items)


def _cmd_demo(args: argparse.Namespace) -> int:
    from alignkit.demo import run_demo

    run_demo(args.out, overwrite=args.overwrite)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from alignkit.models.export import ExportError, export_merged

    try:
        out = export_merged(args.merge, args.out, dtype=args.dtype, overwrite=args.overwrite)
    except ExportError as exc:
        print(f"alignkit: export: {exc}", file=sys.stderr)
        return 2
    print(f"merged checkpoint written to {out}")
    return 0


def _cmd_toyworld(args: argparse.Namespace) -> int:
    from pathlib import Path

    from alignkit import toyworld

    world = toyworld.build(Path(args.out)) if args.out else toyworld.resolve("toyworld://")
    print(f"toy world ready in {getattr(world, 'root', world)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from alignkit.config import ConfigError
    from alignkit.runs import RunFailure, RunFolderError

    parser = _build_parser()
    # Overrides may come before or after --config; argparse leaves the later ones over, so collect them.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command not in ("train", "eval") or any(
            "=" not in item or item.startswith("-") for item in extra
        ):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    handlers = {
        "train": _cmd_train,
        "eval": _cmd_eval,
        "data": _cmd_data,
        "demo": _cmd_demo,
        "toyworld": _cmd_toyworld,
        "export": _cmd_export,
    }
    from alignkit.data.errors import DataError
    from alignkit.data.render import ChatTemplateError

    user_errors: tuple[type[BaseException], ...] = (ConfigError, RunFolderError, DataError, ChatTemplateError)
    try:
        return handlers[args.command](args)
    except user_errors as exc:
        kind = {
            "ConfigError": "config error",
            "RunFolderError": "run folder",
            "DataError": "data error",
            "ChatTemplateError": "chat template",
        }
        name = next(
            (c.__name__ for c in type(exc).__mro__ if c.__name__ in kind), ""
        )  # TemplateError: a DataError
        print(f"alignkit: {kind.get(name, 'error')}: {exc}", file=sys.stderr)
        return 2
    except (RunFailure, KeyboardInterrupt, OSError) as exc:
        message = _fault_message(exc)
        if message is None:
            raise
        print(f"alignkit: {message}", file=sys.stderr)
        return 1


def _fault_message(exc: BaseException) -> str | None:
    """The line for a run stopped by a fault, or None for an error that is not one (it propagates).

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
    if is_disk_full(exc):
        assert isinstance(exc, OSError)
        where = f" while writing {exc.filename}" if exc.filename else ""
        return f"disk full: {exc.strerror}{where}. Free some space and run the command again."
    return None


if __name__ == "__main__":
    sys.exit(main())
