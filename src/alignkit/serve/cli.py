"""``alignkit serve``: the argparse set-up and the command, kept here so ``cli.py`` only registers them.

alignkit serve MODEL [--api-key KEY] [--host H] [--port P] [key=value ...]
alignkit serve --config serve.yaml [key=value ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
from typing import Any

from alignkit.config import ConfigError
from alignkit.generate.base import missing_backend

HELP = "serve a model (or a guarded / corrected chain) behind an OpenAI-compatible HTTP API"

DESCRIPTION = f"""{HELP}.

alignkit serve MODEL [--api-key KEY] [--port 8000] [key=value ...]
alignkit serve --config serve.yaml [key=value ...]

MODEL: a model spec (a local model folder, a run folder, toyworld://..., vllm:PATH, openai:URL#MODEL).
Endpoints: /v1/models, /v1/chat/completions, /v1/completions, /v1/moderations (with a moderator), /health.
Every /v1 request must send Authorization: Bearer KEY when a key is set (--api-key or ALIGNKIT_API_KEY).
Config keys (alignkit serve --show-config): model, name, wrappers, moderator, host, port, api_key, dtype,
max_batch_size, batch_wait_ms, max_model_len, default_max_tokens, max_body_bytes. See docs/serving.md."""


def add_parser(sub: Any, epilog: str = "") -> argparse.ArgumentParser:
    """Register ``serve`` on the CLI's subparsers."""
    parser = sub.add_parser(
        "serve",
        help=HELP,
        description=DESCRIPTION,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML serve config")
    parser.add_argument(
        "--show-config", action="store_true", help="print the resolved config as YAML and exit"
    )
    parser.add_argument(
        "--api-key", default=None, help="bearer token clients must send (default: $ALIGNKIT_API_KEY)"
    )
    parser.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="TCP port (default 8000; 0: any free port)")
    parser.add_argument(
        "overrides", nargs="*", metavar="[MODEL] [KEY=VALUE]", help="the model spec, then dotted overrides"
    )
    return parser


def load_serve_config(args: argparse.Namespace, *, validate: bool = True) -> Any:
    """The config file, then its ``key=value`` overrides, then the positional MODEL and the flags (taken
    verbatim, not read as YAML: an API key of digits stays a string)."""
    from alignkit.config import load_config
    from alignkit.serve.config import ServeConfig

    models = [item for item in args.overrides if "=" not in item]
    if len(models) > 1:
        raise ConfigError(f"alignkit serve takes one MODEL, got {models}; other arguments are KEY=VALUE")
    overrides = [item for item in args.overrides if "=" in item]
    config = load_config(ServeConfig, args.config, overrides, validate=False)
    flags = {
        "model": models[0] if models else None,
        "api_key": args.api_key,
        "host": args.host,
        "port": args.port,
    }
    config = dataclasses.replace(config, **{k: v for k, v in flags.items() if v is not None})
    if validate:
        config.validate("")
        for i, wrapper in enumerate(config.wrappers):
            wrapper.validate(f"wrappers[{i}].")
    return config


def run(args: argparse.Namespace, print_config: Any = None) -> int:
    """Load the config, then serve until Ctrl-C (or print the config with ``--show-config``)."""
    if args.show_config:
        config = load_serve_config(args, validate=False)
        if print_config is not None:
            print_config(config)
        else:
            from alignkit.config import dump_yaml

            print(dump_yaml(config))
        return 0
    config = load_serve_config(args)
    for package in ("fastapi", "uvicorn"):
        if importlib.util.find_spec(package) is None:
            raise ConfigError(str(missing_backend(package, "serve", "alignkit serve")))
    from alignkit.serve.app import serve

    serve(config)
    return 0
