"""What every configured ``alignkit`` command shares: exit statuses, the help epilog, ``--config`` /
``--show-config`` / ``key=value`` arguments, and running a config dataclass through its function (with the
``ALIGNKIT_MAX_STEPS`` cap). ``cli.py`` (train, data, demo ...) and ``cli_eval.py`` (eval) both build on it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
"""0: done; 1: a failure while running (Ctrl-C, a full disk, out of memory, a network error); 2: a mistake in
the command, config, paths or data, found before any work (nothing was written)."""

EPILOG = """exit status:
  0  done
  1  a failure while running (Ctrl-C, a full disk, out of memory, a network error ...); the message says
     what failed and, for a training run, where its last checkpoint is (resume with run.resume=true)
  2  a mistake in the command, config, a path or the data, found before any work; the message names
     the key, file or row and what to do

environment:
  ALIGNKIT_DEBUG=1     show the Python traceback of a failure
  ALIGNKIT_MAX_STEPS=N cap every training command at N steps (a quick tour of a recipe)"""

CONFIGURED_USAGE = (
    "--config FILE.yaml   YAML config (optional); then key.sub=value overrides, read as YAML values\n"
    "                     (null, false, 3e-4, [0.9, 0.95]) and applied after the file\n"
    "--show-config        print the resolved config as YAML (with every key's doc) and exit"
)


def add_config_arguments(parser: Any) -> None:
    """``--config``, ``--show-config`` and ``key=value`` overrides."""
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML config file")
    parser.add_argument(
        "--show-config", action="store_true", help="print the resolved config as YAML and exit"
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. trainer.lr=3e-4"
    )


def print_config(config: Any, prefix: str = "") -> None:
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
            print_config(value, prefix + "  ")
        else:
            print(f"{prefix}{f.name}: {yaml_inline(value)}  # {doc}")


def run_configured(config_cls: type, fn: Any, args: argparse.Namespace) -> int:
    from alignkit.config import load_config

    if args.show_config:  # show the keys even while required ones (e.g. reward.path) are still blank
        print_config(load_config(config_cls, args.config, args.overrides, validate=False))
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
