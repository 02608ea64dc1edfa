"""Loading models and tokenizers through the real Hugging Face path (``from_pretrained``).

``toyworld://`` paths resolve to the offline toy world (built on first use); everything else goes to
``from_pretrained`` unchanged, so a config that names ``Qwen/Qwen2.5-7B-Instruct`` takes the same path.
A local folder holding a LoRA adapter (a LoRA run's ``final/`` or checkpoint) loads as its base with the
adapter merged in, so a run can start from another run's output whether or not that run used LoRA.

A vision-language (or audio-language) checkpoint, one whose config has a ``vision_config`` or
``audio_config``, loads through ``AutoModelForMultimodalLM`` and brings its processor
(``load_processor``): ``model.path`` pointing at a VLM is all a run needs.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from alignkit.models.precision import DTYPES, quantization_kwargs

ADAPTER_CONFIG = "adapter_config.json"
CHAT_KWARGS_FILE = "chat_template_kwargs.json"
"""Saved beside the tokenizer: the chat-template variables the model was trained with."""
TOYWORLD_SCHEME = "toyworld://"

MODEL_FILES = ("config.json", ADAPTER_CONFIG)
"""A folder holding one of these is a model (or a LoRA adapter on one) ``from_pretrained`` can load."""
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt")
"""A folder holding one of these has a tokenizer ``AutoTokenizer`` can load."""
HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
"""What a Hugging Face hub repository name can look like (``gpt2``, ``Qwen/Qwen2.5-7B-Instruct``)."""


def resolve_path(path: str) -> str:
    """Map ``toyworld://...`` to its local folder (building the world once); other paths pass through."""
    if path.startswith(TOYWORLD_SCHEME):
        from alignkit.toyworld import resolve

        return str(resolve(path))
    return path


def check_model_source(
    path: str, key: str, *, files: tuple[str, ...] = MODEL_FILES, what: str = "model"
) -> None:
    """Refuse, before any run folder or download, a ``path`` that cannot load as a ``what``.

    A path must be a toyworld:// path, a local folder holding one of ``files``, or a hub name; a missing
    local path is reported as one (with the working directory it was looked up in), not handed on to
    ``from_pretrained``, which would read it as a hub name and fail with a network error. A hub name is
    checked against the local cache when the hub is switched off (``HF_HUB_OFFLINE``); online, the
    download itself is the check. ``key`` is the config key the path came from, named in every error.
    """
    from alignkit.config import ConfigError

    local = Path(resolve_path(path)).expanduser() if path else None
    if local is None:
        raise ConfigError(f"{key} is empty: give a local model folder, a hub name or a toyworld:// path")
    if local.is_dir():
        if not any((local / name).is_file() for name in files):
            raise ConfigError(_not_a_model_folder(path, key, local, files, what))
        base = adapter_base(str(local)) if files == MODEL_FILES else None
        if base is not None:  # a LoRA adapter loads with its base merged in: that base must be there too
            where = f"base_model_name_or_path (in {local / ADAPTER_CONFIG}, the LoRA adapter at {key})"
            check_model_source(base, where)
        return
    if local.exists():
        raise ConfigError(
            f"{key}={path!r} is a file, not a folder: give the folder that holds the {what} "
            f"({' or '.join(files)}), e.g. the final/ folder of a run, or a hub name"
        )
    if path.startswith(TOYWORLD_SCHEME):
        available = sorted(p.name for p in local.parent.iterdir()) if local.parent.is_dir() else []
        raise ConfigError(
            f"{key}={path!r}: the toy world has no such entry"
            + (f"; {TOYWORLD_SCHEME}{local.parent.name}/ holds {', '.join(available)}" if available else "")
        )
    where = f"no such folder (looked up from the working directory {Path.cwd()})"
    if not HUB_NAME.match(path):
        raise ConfigError(
            f"{key}={path!r}: {where}, and it is not a hub name either; check the path (a run's model is in "
            "its final/ folder)"
        )
    if hub_offline() and not _cached_on_hub(path, files):
        raise ConfigError(
            f"{key}={path!r}: {where}, and as a Hugging Face hub name it is not in the local cache while the "
            f"hub is switched off (HF_HUB_OFFLINE=1): give a local folder, or download it first where the hub "
            f"is reachable (huggingface-cli download {path})"
        )


def _not_a_model_folder(path: str, key: str, local: Path, files: tuple[str, ...], what: str) -> str:
    """Why a folder is no ``what``, and where the one the user meant probably is (a run's final/)."""
    inside = [name for name in ("final", "checkpoints") if (local / name).is_dir()]
    if "final" in inside:
        hint = f"it looks like a run folder: its trained model is in {str(local / 'final')!r}"
    elif inside:
        hint = (
            f"it looks like an unfinished run folder: its checkpoints are in {str(local / 'checkpoints')!r}"
        )
    elif what == "tokenizer":
        hint = "give a folder with a saved tokenizer, or name one with model.tokenizer=..."
    else:
        hint = "give the folder a model was saved to (save_pretrained), e.g. a run's final/"
    return f"{key}={path!r} is a folder without a {what} in it (no {' or '.join(files)}); {hint}"


def hub_offline() -> bool:
    """Whether the Hugging Face hub is switched off for this process (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)."""
    truthy = {"1", "ON", "YES", "TRUE"}
    return any(
        os.environ.get(name, "").upper() in truthy for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _cached_on_hub(name: str, files: tuple[str, ...]) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return any(isinstance(try_to_load_from_cache(name, file), str) for file in files)
    except ValueError:  # a name the hub's own validation refuses is in no cache
        return False


def load_tokenizer(
    path: str,
    *,
    trust_remote_code: bool = False,
    chat_template: str | None = None,
    template_kwargs: dict[str, Any] | None = None,
    reasoning_loss: bool = True,
) -> Any:
    """The tokenizer at ``path``, with a pad token, ready to render chats.

    ``chat_template`` replaces the tokenizer's template (a ``.jinja`` file or the template text): the fix
    for released templates that cannot yield an assistant mask (``alignkit.data.render``).
    ``template_kwargs`` are passed to every render (e.g. ``enable_thinking: false`` for Qwen3); when not
    given, those a run saved with the tokenizer (``CHAT_KWARGS_FILE``) apply, so a model trained without
    thinking is rendered the same way by every later command.
    """
    from transformers import AutoTokenizer

    from alignkit.data.render import ChatOptions, set_chat_options

    tokenizer = AutoTokenizer.from_pretrained(resolve_path(path), trust_remote_code=trust_remote_code)
    if tokenizer.pad_token_id is None:
        # Padding is always masked out; reusing EOS is the common convention for decoder-only models.
        tokenizer.pad_token = tokenizer.eos_token
    if chat_template:
        tokenizer.chat_template = read_chat_template(chat_template)
    if not getattr(tokenizer, "chat_template", None):
        from alignkit.data.render import ChatTemplateError

        raise ChatTemplateError(
            f"tokenizer at {path!r} has no chat template; alignkit renders every record through one. "
            "Use an instruct/chat tokenizer or set model.chat_template=PATH.jinja."
        )
    if template_kwargs is None:
        saved = Path(resolve_path(path)) / CHAT_KWARGS_FILE
        template_kwargs = json.loads(saved.read_text()) if saved.is_file() else {}
    set_chat_options(tokenizer, ChatOptions(dict(template_kwargs), reasoning_loss))
    return tokenizer


def read_chat_template(value: str) -> str:
    """A chat template given as a file path or as the template text itself."""
    if "{{" in value or "{%" in value:
        return value
    path = Path(value).expanduser()
    if not path.is_file():
        from alignkit.config import ConfigError

        raise ConfigError(
            f"model.chat_template={value!r} is neither a file nor Jinja template text; give the path of a "
            ".jinja file (e.g. one of TRL's trl/chat_templates/*_training.jinja) or the template itself"
        )
    return path.read_text(encoding="utf-8")


def adapter_base(path: str) -> str | None:
    """The base model a local PEFT adapter folder was trained on, or None when ``path`` is no adapter."""
    config = Path(path) / ADAPTER_CONFIG
    if not config.is_file():
        return None
    base = json.loads(config.read_text()).get("base_model_name_or_path")
    if not base:
        from alignkit.config import ConfigError

        raise ConfigError(
            f"{config} names no base_model_name_or_path, so its base model cannot be loaded; write the base "
            "model's folder or hub name there"
        )
    return str(base)


MULTIMODAL_CONFIG_KEYS = ("vision_config", "audio_config")
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")
"""A folder holding one of these has a multimodal processor ``AutoProcessor`` can load."""


def is_multimodal(path: str, *, trust_remote_code: bool = False) -> bool:
    """Whether the checkpoint at ``path`` is a vision- or audio-language model (its config nests one)."""
    local = Path(resolve_path(path))
    if local.is_dir() and (local / "config.json").is_file():
        config = json.loads((local / "config.json").read_text())
        return any(key in config for key in MULTIMODAL_CONFIG_KEYS)
    if local.is_dir():  # a LoRA adapter: its base decides
        base = adapter_base(str(local))
        return base is not None and is_multimodal(base, trust_remote_code=trust_remote_code)
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(local), trust_remote_code=trust_remote_code)
    return any(hasattr(config, key) for key in MULTIMODAL_CONFIG_KEYS)


def load_processor(path: str, tokenizer: Any, *, trust_remote_code: bool = False) -> Any | None:
    """The multimodal processor saved with the model at ``path``, or None for a text-only model.

    Its tokenizer is replaced by ``tokenizer`` (the run's, with its chat template and options), so a
    processor and a tokenizer never disagree on how a chat renders.
    """
    local = Path(resolve_path(path))
    if local.is_dir() and not any((local / name).is_file() for name in PROCESSOR_FILES):
        return None
    if not local.is_dir() and not is_multimodal(path, trust_remote_code=trust_remote_code):
        return None
    from transformers import AutoProcessor

    from alignkit.data.render import chat_options, set_chat_options

    processor = AutoProcessor.from_pretrained(str(local), trust_remote_code=trust_remote_code)
    processor.tokenizer = tokenizer
    processor.chat_template = tokenizer.chat_template
    set_chat_options(processor, chat_options(tokenizer))
    return processor


def load_causal_lm(
    path: str, *, dtype: str = "float32", trust_remote_code: bool = False, quantize: str = "none"
) -> Any:
    """A causal LM from a hub name, a local checkpoint, or a local LoRA adapter (merged into its base).

    ``quantize`` ('4bit'/'8bit') loads the weights through bitsandbytes for QLoRA; see
    ``alignkit.models.precision.quantization_kwargs``. A vision/audio-language checkpoint loads as
    ``AutoModelForMultimodalLM`` (a LLaVA-, Qwen-VL- or Qwen2-Audio-style model that generates text;
    a superset of ``AutoModelForImageTextToText``, which has no audio models).
    """
    from transformers import AutoModelForCausalLM, AutoModelForMultimodalLM

    local = resolve_path(path)
    if Path(local).is_dir():
        # Absolute, so an adapter trained on this model records a base path valid from any directory.
        local = str(Path(local).resolve())
        base = adapter_base(local)
        if base is not None:
            return _load_merged_adapter(local, base, dtype, trust_remote_code, quantize)
    auto = AutoModelForMultimodalLM if is_multimodal(local, trust_remote_code=trust_remote_code) else None
    return (auto or AutoModelForCausalLM).from_pretrained(
        local,
        dtype=DTYPES[dtype],
        trust_remote_code=trust_remote_code,
        **quantization_kwargs(quantize, dtype),
    )


def _load_merged_adapter(adapter: str, base: str, dtype: str, trust_remote_code: bool, quantize: str) -> Any:
    """Base + adapter folded into plain weights: what the adapter's run ended with, as a normal model.

    Merging (rather than training the same adapter further) keeps "the starting model" well defined: a
    new LoRA run on top gets a fresh adapter and its disabled-adapter reference is this merged model.
    """
    if quantize != "none":
        from alignkit.config import ConfigError

        raise ConfigError(
            f"model.path={adapter!r} holds a LoRA adapter, which cannot be merged into a {quantize} base "
            f"without loss. Merge it first (alignkit export --merge {adapter} --out DIR) and set model.path=DIR."
        )
    from peft import PeftModel

    # Recursive: the base may itself be an adapter (LoRA DPO on top of a LoRA SFT run).
    model = PeftModel.from_pretrained(
        load_causal_lm(base, dtype=dtype, trust_remote_code=trust_remote_code), adapter
    ).merge_and_unload()
    # An adapter trained on this model must name this folder (not the original base) as its base.
    model.name_or_path = adapter
    model.config.name_or_path = adapter
    return model


def save_pretrained(model: Any, tokenizer: Any, out_dir: Path, state_dict: Any = None) -> None:
    """HF layout, loadable with ``from_pretrained``: safetensors + config + tokenizer.

    A LoRA model (``peft.PeftModel``) saves only its adapter; PEFT picks the adapter's tensors out of a
    full ``state_dict`` (as ``accelerator.get_state_dict`` returns), so trainers need no special case.
    """
    from alignkit.models.value_heads import value_heads, without_heads

    if value_heads(model) is not None:  # PPO's shared critic: final/ stays a plain causal LM
        state_dict = without_heads(state_dict if state_dict is not None else model.state_dict())
    model.save_pretrained(out_dir, state_dict=state_dict, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    from alignkit.data.render import chat_options

    template_kwargs = dict(chat_options(tokenizer).template_kwargs)
    if template_kwargs:
        (Path(out_dir) / CHAT_KWARGS_FILE).write_text(json.dumps(template_kwargs, indent=2) + "\n")
