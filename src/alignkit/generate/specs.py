"""Model specs: one string names any Generator (a local model, vLLM, an OpenAI-compatible endpoint).

A spec is one string, so the same key (eval's ``model=`` / ``baseline=`` / ``judge=``, ``alignkit serve
MODEL``) takes any backend:

==============================  =====================================================================
spec                            Generator
==============================  =====================================================================
``PATH`` or ``hf:PATH``         ``HFGenerator``: a local Hugging Face folder, a hub name, or toyworld://
``RUN_FOLDER``                  the same, on the run's ``final/`` (a folder holding a run, not a model)
``vllm:PATH``                   ``VLLMGenerator`` (needs ``pip install 'alignkit[vllm]'`` and a GPU)
``openai:URL#MODEL``            ``OpenAIGenerator``: any OpenAI-compatible ``/v1/chat/completions``
                                server; the key comes from ``OPENAI_API_KEY``
``python:NAME``                 a Generator object registered in this process (``IN_PROCESS``, e.g. by
                                ``alignkit.eval.models.in_process_spec``); never typed by hand
==============================  =====================================================================

Everything is checked when the config is read (:func:`check_model_spec`): a path that does not exist,
a run folder without ``final/``, a scheme alignkit does not know, an ``openai:`` spec without ``#MODEL``.
Evaluation adds the identity its answer cache is filed under (``alignkit.eval.models``); serving builds
the Generator and puts it behind HTTP (``alignkit.serve``). Both read specs here, below them.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from alignkit.config import ConfigError

Backend = Literal["hf", "vllm", "openai", "python"]
SCHEMES: dict[str, str] = {
    "hf": "hf:PATH (a local Hugging Face model, the default for a bare path)",
    "vllm": "vllm:PATH (the same model served by vLLM, where installed)",
    "openai": "openai:URL#MODEL (an OpenAI-compatible server, e.g. openai:http://localhost:8000/v1#my-model)",
}
IN_PROCESS: dict[str, Any] = {}
"""``python:NAME`` -> a Generator object of this process (eval's ``run_task`` registers the one it was given
and removes it when the run ends)."""
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec."""

    text: str
    """As the user wrote it."""
    backend: Backend
    path: str
    """hf / vllm: the model folder or hub name (a run folder's final/); openai: the server's base URL."""
    model: str = ""
    """openai: the model name the server serves."""

    @property
    def label(self) -> str:
        """A short readable name: the last parts of the path, or the endpoint's model name."""
        if self.backend in ("openai", "python"):
            return self.model
        parts = [p for p in re.split(r"[\\/]", self.path.rstrip("/\\")) if p and p != "final"]
        return "-".join(parts[-2:]) or self.path


def _expected() -> str:
    return "; ".join(SCHEMES.values()) + "; or a run folder (its final/ is used) or toyworld://..."


def parse_model_spec(text: str, key: str) -> ModelSpec:
    """Split a spec into backend and location (no file system checks); a bad spec is a ``ConfigError``."""
    if not text:
        raise ConfigError(f"{key} is empty: give the model to evaluate: {_expected()}")
    if text.startswith("toyworld://"):
        return ModelSpec(text, "hf", text)
    match = _SCHEME.match(text)
    scheme = match.group(1) if match else None
    if scheme is None or Path(text).exists():  # a local path that happens to hold a colon
        return ModelSpec(text, "hf", text)
    rest = text[len(scheme) + 1 :]
    if scheme == "openai":
        url, sep, model = rest.rpartition("#")
        if not sep or not model or not url:
            raise ConfigError(
                f"{key}={text!r}: an openai: spec names the server and the model: openai:URL#MODEL, "
                "e.g. openai:http://localhost:8000/v1#Qwen/Qwen2.5-7B-Instruct"
            )
        if not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"{key}={text!r}: the server URL must start with http:// or https://, got {url!r}"
            )
        return ModelSpec(text, "openai", url, model)
    if scheme == "python":
        if text not in IN_PROCESS:
            raise ConfigError(
                f"{key}={text!r}: python: names a Generator object handed to alignkit.eval.run_task in the "
                f"same process; none is registered under that name. Expected: {_expected()}"
            )
        return ModelSpec(text, "python", text, type(IN_PROCESS[text]).__name__)
    if scheme in ("hf", "vllm"):
        if not rest:
            raise ConfigError(f"{key}={text!r}: give the model after '{scheme}:' ({SCHEMES[scheme]})")
        return ModelSpec(text, scheme, rest)  # type: ignore[arg-type]
    hint = ""
    if scheme in ("http", "https"):
        hint = f" To evaluate a server, write openai:{text}#MODEL."
    raise ConfigError(
        f"{key}={text!r}: unknown model scheme '{scheme}:' (and no such local path).{hint} "
        f"Expected: {_expected()}"
    )


def run_model_folder(path: str) -> str:
    """A run folder (no model of its own, a ``final/`` holding one) -> its ``final/``; else ``path``."""
    from alignkit.models.loading import MODEL_FILES, resolve_path

    local = Path(resolve_path(path)).expanduser()
    holds_model = any((local / name).is_file() for name in MODEL_FILES)
    if local.is_dir() and not holds_model and (local / "final").is_dir():
        return str(local / "final")
    return path


def check_model_spec(text: str, key: str) -> ModelSpec:
    """Parse ``text`` and check it can load, before any run folder: the path exists and holds a model (or
    is a run folder with a finished ``final/``), a hub name is cached when offline, vLLM is installed."""
    from alignkit.models.loading import check_model_source

    spec = parse_model_spec(text, key)
    if spec.backend in ("openai", "python"):
        return spec
    if spec.backend == "vllm" and importlib.util.find_spec("vllm") is None:
        raise ConfigError(
            f"{key}={text!r}: vLLM is not installed here; install it (pip install 'alignkit[vllm]', needs a "
            f"GPU) or evaluate the same model with {key}={spec.path}"
        )
    path = run_model_folder(spec.path)
    check_model_source(path, key)
    return ModelSpec(text, spec.backend, path, spec.model)


def build_generator(
    spec: ModelSpec,
    *,
    dtype: str = "auto",
    batch_size: int = 32,
    timeout: float = 60.0,
    max_concurrency: int = 8,
    seed: int = 0,
) -> Any:
    """The Generator a spec names (loaded now: call it only when something is left to generate)."""
    if spec.backend == "python":
        return IN_PROCESS[spec.path]
    if spec.backend == "openai":
        from alignkit.generate.openai_http import OpenAIGenerator

        return OpenAIGenerator(spec.path, spec.model, timeout=timeout, max_concurrency=max_concurrency)
    if spec.backend == "vllm":
        from alignkit.generate.vllm_engine import VLLMGenerator

        return VLLMGenerator(spec.path, dtype=dtype, seed=seed)
    from alignkit.generate.hf import HFGenerator

    return HFGenerator.from_pretrained(spec.path, dtype=dtype, batch_size=batch_size)
