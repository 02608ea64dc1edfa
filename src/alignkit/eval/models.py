"""Models under test: a spec string -> a Generator, and the identity its cached answers are filed under.

The spec syntax and its Generators live in ``alignkit.generate.specs`` (serving reads them too) and are
re-exported here. A spec is one string, so the same key (``model=``, ``baseline=``, ``judge=``) takes any
backend:

==============================  =====================================================================
spec                            Generator
==============================  =====================================================================
``PATH`` or ``hf:PATH``         ``HFGenerator``: a local Hugging Face folder, a hub name, or toyworld://
``RUN_FOLDER``                  the same, on the run's ``final/`` (a folder holding a run, not a model)
``vllm:PATH``                   ``VLLMGenerator`` (needs ``pip install 'alignkit[vllm]'`` and a GPU)
``openai:URL#MODEL``            ``OpenAIGenerator``: any OpenAI-compatible ``/v1/chat/completions``
                                server; the key comes from ``OPENAI_API_KEY``
``python:NAME``                 a Generator object handed to ``run_task`` in this process
                                (:func:`in_process_spec`); never typed by hand
==============================  =====================================================================

Everything is checked when the config is read (:func:`check_model_spec`): a path that does not exist,
a run folder without ``final/``, a scheme alignkit does not know, an ``openai:`` spec without ``#MODEL``.

The **identity** of a model (:func:`model_identity`) names what answered, for the generation cache:
the backend, the dtype and a fingerprint of the local weights (file names, sizes and modification times,
plus ``config.json``), so retraining into the same folder never serves stale answers, while a rerun of
the same model reuses them. An endpoint's identity is its URL and model name: the server is trusted to
serve the same model under the same name (use another ``cache_dir`` when it does not). An in-process
Generator is cached only when it names its own identity (a ``cache_identity`` attribute): alignkit cannot
tell whether a live object's weights changed since it last answered.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from alignkit.generate.specs import (
    IN_PROCESS,
    SCHEMES,
    Backend,
    ModelSpec,
    build_generator,
    check_model_spec,
    parse_model_spec,
    run_model_folder,
)

__all__ = [
    "IN_PROCESS",
    "SCHEMES",
    "Backend",
    "ModelSpec",
    "build_generator",
    "check_model_spec",
    "in_process_spec",
    "model_identity",
    "parse_model_spec",
    "run_model_folder",
]
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def _fingerprint(folder: Path) -> str:
    """A digest of what makes a local model answer as it does: config.json and the adapter config as
    text, every weight file by name, size and modification time (hashing gigabytes would cost minutes)."""
    digest = hashlib.sha256()
    for name in ("config.json", "adapter_config.json", "generation_config.json", "chat_template_kwargs.json"):
        if (folder / name).is_file():
            digest.update(name.encode() + b"\0" + (folder / name).read_bytes())
    for file in sorted(folder.rglob("*")):
        if file.is_file() and file.name.endswith(WEIGHT_SUFFIXES):
            stat = file.stat()
            digest.update(f"{file.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _local_folder(path: str) -> Path | None:
    """The folder a local path or a cached hub model lives in, or None (a hub model not downloaded)."""
    from alignkit.models.loading import resolve_path

    local = Path(resolve_path(path)).expanduser()
    if local.is_dir():
        return local
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(path, "config.json")
    except (ImportError, ValueError):
        return None
    return Path(found).parent if isinstance(found, str) else None


def in_process_spec(generator: Any) -> str:
    """Register a Generator object under a ``python:`` spec for one ``run_task`` call (see ``IN_PROCESS``)."""
    name = f"python:{type(generator).__name__}-{id(generator):x}"
    IN_PROCESS[name] = generator
    return name


def model_identity(spec: ModelSpec, dtype: str = "auto") -> str | None:
    """What answered (see the module docstring): equal identities give equal answers to equal requests.
    None: the model cannot be identified (an in-process object without ``cache_identity``): no caching."""
    if spec.backend == "python":
        own = getattr(IN_PROCESS.get(spec.path), "cache_identity", None)
        return f"python:{own}" if own else None
    if spec.backend == "openai":
        return f"openai:{spec.path}#{spec.model}"
    folder = _local_folder(spec.path)
    weights = _fingerprint(folder) if folder is not None else f"hub:{spec.path}"
    return f"{spec.backend}:{dtype}:{weights}"
