"""Any OpenAI-compatible ``/v1/chat/completions`` endpoint as a Generator (vLLM serve, SGLang, TGI, ...).

Standard library only (``urllib`` + ``json`` + a thread pool), so evaluating a served model or an API
judge needs no extra install. One request per prompt asks for all ``n`` samples at once (``n`` in the
body), and up to ``max_concurrency`` requests run in parallel: the server batches them, we only wait.

The server owns the chat template and the tokenizer, so ``Completion.token_ids`` is None unless a local
``tokenizer`` is given (then the response text is re-encoded, which matches the sampled tokens only when
that tokenizer is the server's). Log-probabilities are whatever the server reports for the sampled
tokens; vLLM reports raw (pre-temperature) values by default, other servers may not.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from alignkit.data.render import chat_dicts
from alignkit.generate.base import Completion, FinishReason, SamplingConfig

MEDIA_BLOCKS = {"image": "image_url", "video": "video_url", "audio": "audio_url"}
"""alignkit part type -> the OpenAI(-style) content block a server reads (video/audio: vLLM's extension)."""

_MAGIC = ((b"\x89PNG", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"))


def chat_completions_url(base_url: str) -> str:
    """``.../v1/chat/completions`` whether ``base_url`` names the server root or its ``/v1``."""
    base = base_url.rstrip("/")
    if not base.endswith("/v1"):
        base += "/v1"
    return base + "/chat/completions"


def _data_url(block: dict[str, Any]) -> str:
    if "path" in block:
        with open(block["path"], "rb") as f:
            data = f.read()
        mime = mimetypes.guess_type(block["path"])[0]
    else:
        data = base64.b64decode(block["base64"])
        mime = None
    if mime is None:
        mime = next((m for magic, m in _MAGIC if data.startswith(magic)), "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def openai_messages(messages: Sequence[Any]) -> list[dict[str, Any]]:
    """Chat dicts with media blocks (``path``/``base64``) turned into the data-URL blocks servers accept."""
    out = []
    for message in chat_dicts(messages):
        content = message.get("content")
        if isinstance(content, list):
            blocks = []
            for block in content:
                kind = MEDIA_BLOCKS.get(block.get("type", ""))
                if kind and ("path" in block or "base64" in block):
                    block = {"type": kind, kind: {"url": _data_url(block)}}
                blocks.append(block)
            message = {**message, "content": blocks}
        out.append(message)
    return out


def _error_message(body: bytes) -> str:
    """The server's own explanation from an error body (OpenAI, vLLM and FastAPI shapes), else the text."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        payload = json.loads(text)
    except ValueError:
        return text[:2000] or "(empty body)"
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict):
            for key in ("message", "detail"):
                if error.get(key):
                    return str(error[key])
        elif error:
            return str(error)
    return text[:2000]


class OpenAIGenerator:
    """Sample from a model behind an OpenAI-compatible chat-completions server."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_concurrency: int = 8,
        tokenizer: Any = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be a positive integer, got {max_concurrency}")
        self.url = chat_completions_url(base_url)
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout = timeout
        self.max_concurrency = max_concurrency
        self.tokenizer = tokenizer

    def generate(
        self,
        prompts: Sequence[Sequence[Any]],
        sampling: SamplingConfig,
        *,
        logprobs: bool = False,
        seed: int | None = None,
    ) -> list[Completion]:
        """``len(prompts) * sampling.n`` completions, prompt-major, whatever order the requests finish in.

        With a ``seed``, prompt ``i`` is sent ``seed + i``: prompts sample independently, reruns repeat
        (on servers that honour ``seed``).
        """
        bodies = [
            self.request_body(p, sampling, logprobs=logprobs, seed=None if seed is None else seed + i)
            for i, p in enumerate(prompts)
        ]
        if not bodies:
            return []
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(bodies))) as pool:
            responses = list(pool.map(self._post, bodies))
        completions: list[Completion] = []
        for index, response in enumerate(responses):
            completions += self._completions(index, response, sampling.n, logprobs)
        return completions

    def request_body(
        self, prompt: Sequence[Any], sampling: SamplingConfig, *, logprobs: bool, seed: int | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": openai_messages(prompt),
            "max_tokens": sampling.max_new_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "n": sampling.n,
        }
        if sampling.top_k > 0:
            body["top_k"] = sampling.top_k  # not in OpenAI's API; vLLM, SGLang and TGI read it
        if seed is not None:
            body["seed"] = seed
        if logprobs:
            body["logprobs"] = True
        return body

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode("utf-8"), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raise RuntimeError(
                f"POST {self.url} failed with HTTP {error.code}: {_error_message(error.read())}"
            ) from error
        except urllib.error.URLError as error:
            raise RuntimeError(
                f"could not reach {self.url} ({error.reason}); check the server is running and that "
                "base_url names its host and port"
            ) from error
        except TimeoutError as error:
            raise RuntimeError(f"POST {self.url} got no answer within timeout={self.timeout}s") from error
        try:
            return json.loads(raw)
        except ValueError as error:
            snippet = raw[:500].decode("utf-8", errors="replace")
            raise RuntimeError(f"POST {self.url} returned something that is not JSON: {snippet!r}") from error

    def _completions(self, index: int, response: Any, n: int, logprobs: bool) -> list[Completion]:
        choices = response.get("choices") if isinstance(response, dict) else None
        if not isinstance(choices, list):
            raise RuntimeError(
                f"POST {self.url} returned no 'choices' list; received: {json.dumps(response)[:500]}"
            )
        if len(choices) != n:
            raise RuntimeError(
                f"POST {self.url} returned {len(choices)} choices for n={n}; "
                "the server may not support n > 1 (use n=1 and repeat the prompt)"
            )
        out = []
        for choice in sorted(choices, key=lambda c: c.get("index", 0)):
            # Stripped like HFGenerator's decode, so every backend hands scorers the same text.
            text = ((choice.get("message") or {}).get("content") or "").strip()
            finish: FinishReason = "length" if choice.get("finish_reason") == "length" else "stop"
            token_ids = None
            if self.tokenizer is not None:
                token_ids = tuple(self.tokenizer.encode(text, add_special_tokens=False))
            out.append(
                Completion(
                    prompt_index=index,
                    text=text,
                    token_ids=token_ids,
                    logprobs=self._logprobs(choice) if logprobs else None,
                    finish_reason=finish,
                )
            )
        return out

    def _logprobs(self, choice: dict[str, Any]) -> tuple[float, ...]:
        content = (choice.get("logprobs") or {}).get("content")
        if content is None:
            raise RuntimeError(
                f"POST {self.url} was asked for logprobs but choice {choice.get('index')} has no "
                "logprobs.content; the server may not support them"
            )
        return tuple(float(entry["logprob"]) for entry in content)
