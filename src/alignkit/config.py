"""Typed, validated configuration: a YAML file plus ``a.b=c`` overrides, checked before any work.

Every command has one dataclass tree (``SFTConfig`` and friends). Each field carries its documentation as
an attribute docstring right below it (CleanRL style), which ``field_docs`` reads back for help text.
Loading is strict on purpose: a typo in a key silently falling back to a default is the most expensive
kind of bug in a training run, so an unknown key or a value of the wrong type stops the command with a
message that names the key, the value, what is allowed and the closest valid key.
"""

from __future__ import annotations

import ast
import contextvars
import dataclasses
import difflib
import inspect
import textwrap
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config key or value is wrong; the message says which one and how to fix it."""


def load_config(
    cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = (), *, validate: bool = True
) -> T:
    """Read ``path`` (YAML), apply ``key.sub=value`` overrides, and build a validated ``cls``."""
    data: dict[str, Any] = {} if path is None else read_config_file(Path(path))
    for item in overrides:
        apply_override(data, item)
    token = _VALIDATE.set(validate)  # validate=False: keys and types still checked, constraints not
    try:
        return from_dict(cls, data)
    finally:
        _VALIDATE.reset(token)


def read_config_file(path: Path) -> dict[str, Any]:
    """The mapping in YAML file ``path``; a missing, unreadable or malformed file is a ``ConfigError``
    that names the file (and the line and column YAML stopped at), never a parser traceback."""
    if path.is_dir():
        raise ConfigError(f"config file {str(path)!r} is a folder; give --config the path of a YAML file")
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist (working directory: {Path.cwd()})")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"config file {str(path)!r} is not UTF-8 text (byte {err.start} is {err.object[err.start]:#04x}); "
            "save it as UTF-8 YAML"
        ) from None
    except OSError as err:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {err.strerror}") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {_yaml_problem(err)}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"config file {str(path)!r} must hold a mapping of keys at top level (e.g. `trainer:` then "
            f"`  lr: 1.0e-5`), got {type(loaded).__name__}"
        )
    return loaded


def _yaml_problem(err: yaml.YAMLError, *, where: bool = True) -> str:
    """YAML's complaint in one line, with the 1-based line and column where it stopped."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    context = getattr(err, "context", None)
    at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None and where else ""
    return f"{at}{problem}" + (f" ({context})" if context else "")


def parse_value(raw: str, item: str) -> Any:
    """A value typed on the command line, read by the same YAML rules as a config file (``null``,
    ``false``, ``3e-4``, ``[0.9, 0.95]``); a value YAML cannot read names the override."""
    if not raw.strip():
        return None
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(
            f"override {item!r}: the value is not valid YAML ({_yaml_problem(err, where=False)}); to pass "
            "it as text, quote it inside the shell's quotes, e.g. 'key=\"a: b\"'"
        ) from None


def apply_override(data: dict[str, Any], item: str) -> None:
    """Set ``a.b.c=value`` in the nested dict ``data``; the value is parsed as YAML (``1e-3``, ``[a, b]``)."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r} must look like key.sub=value (e.g. trainer.lr=3e-4)")
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override {item!r}: {part!r} holds a value, not a section")
        node = child
    node[parts[-1]] = parse_value(raw, item)


_VALIDATE: contextvars.ContextVar[bool] = contextvars.ContextVar("alignkit_config_validate", default=True)
"""Whether ``from_dict`` runs the ``validate`` constraints (off only to show a config with blanks in it)."""


def from_dict(cls: type[T], data: Mapping[str, Any] | None, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, validating every key and value against the type hints."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ConfigError(_unknown_key_message(cls, hints, prefix, str(unknown[0]), sorted(fields)))
    kwargs = {}
    for name, value in data.items():
        default = _default_of(fields[name])
        if isinstance(value, Mapping) and dataclasses.is_dataclass(default):
            # A partial section (`data.max_length=64`) overrides the command's own default section,
            # not a blank one: SFT's default data.train must survive an override of data.max_length.
            value = _deep_merge(to_dict(default), value)
        kwargs[name] = _coerce(value, hints[name], f"{prefix}{name}")
    missing = [
        name
        for name, f in fields.items()
        if name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"missing required key '{prefix}{missing[0]}': {_doc_of(cls, missing[0])}")
    obj = cls(**kwargs)
    if not _VALIDATE.get():
        return obj
    for name in fields:
        if name not in kwargs:  # a default section is checked too: PPO's default reward.path is '' (required)
            _validate_default(getattr(obj, name), f"{prefix}{name}.")
    validate = getattr(obj, "validate", None)
    if validate is not None:
        validate(prefix)
    return obj


def _validate_default(value: Any, prefix: str) -> None:
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        return
    for f in dataclasses.fields(value):
        _validate_default(getattr(value, f.name), f"{prefix}{f.name}.")
    validate = getattr(value, "validate", None)
    if validate is not None:
        validate(prefix)


def to_dict(obj: Any) -> Any:
    """The plain-data form of a config, as saved to ``config.yaml`` in the run folder."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False)


def yaml_inline(value: Any) -> str:
    """``value`` as one line of YAML that reads back as the same value (``null``, ``false``, ``2.0e-05``,
    ``[0.9, 0.95]``, ``{}``): what ``--show-config`` prints, so its output can be pasted into a config
    file or typed after ``key=`` on the command line."""
    text = yaml.safe_dump(to_dict(value), default_flow_style=True, width=2**31, sort_keys=False)
    return text.strip().removesuffix("...").strip()


def check(ok: bool, key: str, value: Any, expected: str) -> None:
    """Raise a ConfigError for ``key`` unless ``ok``: the one place constraint messages are worded."""
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: expected {expected}")


def field_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings of a dataclass: the string literal right below each field.

    Base classes count too (a subclass that overrides a few fields keeps the docs of the rest).
    """
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs.update(_own_field_docs(klass))
    return docs


def _own_field_docs(cls: type) -> dict[str, str]:
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    body = ast.parse(source).body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, after in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _default_of(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def _deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _doc_of(cls: type, name: str) -> str:
    return field_docs(cls).get(name, "")


# Names researchers bring from TRL / transformers: suggested as the alignkit key they mean.
ALIASES = {
    "learning_rate": "lr",
    "per_device_train_batch_size": "micro_batch_size",
    "batch_size": "micro_batch_size",
    "gradient_accumulation_steps": "grad_accum_steps",
    "num_train_epochs": "epochs",
    "max_seq_length": "max_length",
    "lr_scheduler_type": "lr_scheduler",
    "eval_steps": "eval_every",
    "save_steps": "save_every",
    "logging_steps": "log_every",
    "model_name_or_path": "path",
}


def _unknown_key_message(cls: type, hints: Mapping[str, Any], prefix: str, key: str, valid: list[str]) -> str:
    """Name the unknown key, the key the user most likely meant and why, and every valid key here.

    In order: a class's own ``KEY_HINTS`` (a key another command spells differently, e.g. the offline
    trainers' ``max_steps`` against the online ones' ``steps``), a key of a section one level down
    (``output_dir`` -> ``run.output_dir``), a key researchers bring from TRL / transformers (``ALIASES``),
    then the closest spelling.
    """
    own: dict[str, tuple[str, str]] = getattr(cls, "KEY_HINTS", {})
    nested = {
        sub.name: f"{name}.{sub.name}"
        for name in valid
        for section in _section_types(hints.get(name))
        for sub in dataclasses.fields(section)
    }
    if key in own:
        suggestion, reason = own[key]
        hint = f"; did you mean '{prefix}{suggestion}'? ({reason})"
    elif key in nested:
        hint = f"; did you mean '{prefix}{nested[key]}'?"
    else:
        aliases = {alias: target for alias, target in ALIASES.items() if target in valid}
        close = difflib.get_close_matches(key, valid + list(aliases), n=1, cutoff=0.5)
        suggestion = aliases.get(close[0], close[0]) if close else None
        hint = f"; did you mean '{prefix}{suggestion}'?" if suggestion else ""
    return f"unknown config key '{prefix}{key}'{hint} Valid keys here: {', '.join(prefix + v for v in valid)}"


def _section_types(tp: Any) -> list[type]:
    """The config sections (dataclasses) a field's type hint holds: ``LoraConfig | None`` -> [LoraConfig]."""
    if dataclasses.is_dataclass(tp):
        return [tp]
    return [arg for arg in get_args(tp) if dataclasses.is_dataclass(arg)]


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


YAML_BOOL_WORDS = {False: ("no", "off", "false", "n"), True: ("yes", "on", "true", "y")}
"""What YAML 1.1 turns into a boolean: ``mixed_precision=no`` arrives as False."""


def _yaml_bool_word(value: bool, allowed: Sequence[Any]) -> Any:
    """The choice a user meant when YAML read their word (no, off, yes ...) as a boolean."""
    words = YAML_BOOL_WORDS[value]
    return next((a for a in allowed if isinstance(a, str) and a.lower() in words), value)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against type ``tp``; convert only where YAML is ambiguous (``3e-4`` is a str to YAML)."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        if value == "None" and type(None) in args:  # Python's spelling, e.g. pasted from an old printout
            raise ConfigError(
                f"{key}='None' is not allowed: YAML reads None as the text 'None'; write null for no value"
            )
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        if len(errors) == 1:
            # ``Section | None``: the section's own message (unknown key 'model.lora.rr', did you mean ...)
            # says more than "expected LoraConfig or NoneType".
            raise ConfigError(errors[0])
        allowed = " or ".join(_type_name(a) for a in args)
        raise ConfigError(f"{key}={value!r} is not allowed: expected {allowed}")
    if origin is Literal:
        allowed = get_args(tp)
        if isinstance(value, bool) and value not in allowed:
            value = _yaml_bool_word(value, allowed)
        if value not in allowed:
            close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{key}={value!r} is not allowed: choose one of {', '.join(map(repr, allowed))}{hint}"
            )
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, prefix=f"{key}.")
    if origin in (list, tuple, Sequence):
        (item_tp, *_) = get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}={value!r} is not allowed: expected a list")
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}={value!r} is not allowed: expected a mapping")
        _, val_tp = get_args(tp) or (str, Any)
        return {str(k): _coerce(v, val_tp, f"{key}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}={value!r} is not allowed: expected true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}={value!r} is not allowed: expected an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}={value!r} is not allowed: expected a number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}={value!r} is not allowed: expected a string")
    raise ConfigError(f"{key}: unsupported config type {tp!r}")  # a programming error in a config class
