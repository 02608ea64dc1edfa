"""The FastAPI app over one served model, and running it with uvicorn (in the foreground or a thread).

``create_app`` takes a ``ServedModel`` (or any Generator) and an optional Moderator: nothing here loads
a model, so a test or a notebook can serve a Generator object it already holds. ``serve(config)`` is
``alignkit serve``: it loads what the config names and runs uvicorn until Ctrl-C. ``ServerThread`` runs
the same server in a background thread on a free port (tests, in-process evaluation).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import Depends, FastAPI

from alignkit.serve.auth import bearer_auth, resolve_api_key
from alignkit.serve.batching import Batcher
from alignkit.serve.chain import ServedModel
from alignkit.serve.errors import install_handlers
from alignkit.serve.routes import open_routes, v1


def create_app(
    model: ServedModel | Any,
    *,
    api_key: str | None = None,
    moderator: Any = None,
    moderation_categories: Sequence[str] = (),
    max_batch_size: int = 64,
    batch_wait_ms: float = 5.0,
    default_max_tokens: int = 256,
    max_body_bytes: int = 1_000_000,
) -> FastAPI:
    """An OpenAI-compatible app serving ``model`` (a bare Generator is served as ``alignkit``, with no
    tokenizer: usage then counts only the tokens the Generator reports). ``api_key`` None reads
    ``ALIGNKIT_API_KEY``; '' with that unset leaves ``/v1`` open."""
    if not isinstance(model, ServedModel):
        tokenizer, renderer = getattr(model, "tokenizer", None), getattr(model, "renderer", None)
        model = ServedModel(
            name="alignkit",
            generator=model,
            tokenizer=tokenizer,
            renderer=None if renderer is tokenizer else renderer,
        )
    batcher = Batcher(model.generator, max_batch_size=max_batch_size, wait_s=batch_wait_ms / 1000)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="alignkit", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.model = model
    app.state.batcher = batcher
    app.state.moderator = moderator
    app.state.moderator_name = getattr(moderator, "name", type(moderator).__name__)
    if not moderation_categories and moderator is not None:
        from alignkit.score.moderation import PKU_SAFERLHF_CATEGORIES

        moderation_categories = PKU_SAFERLHF_CATEGORIES
    app.state.moderation_categories = tuple(moderation_categories)
    app.state.default_max_tokens = default_max_tokens
    app.state.max_body_bytes = max_body_bytes
    install_handlers(app)
    app.include_router(open_routes)
    app.include_router(v1, dependencies=[Depends(bearer_auth(resolve_api_key(api_key)))])
    return app


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ServerThread:
    """``with ServerThread(app) as server:`` uvicorn serving ``app`` on ``server.base_url`` (``.../v1``)
    from a daemon thread; stopped, and its batcher with it, on exit."""

    def __init__(self, app: FastAPI, *, host: str = "127.0.0.1", port: int = 0, start_timeout: float = 30.0):
        import uvicorn

        self.host, self.port = host, port or free_port(host)
        config = uvicorn.Config(app, host=self.host, port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.start_timeout = start_timeout
        self._thread = threading.Thread(target=self.server.run, name="alignkit-serve", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def __enter__(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start on {self.url}")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)


def serve(config: Any) -> None:
    """``alignkit serve``: load the configured model (and chain, and moderator), then serve until Ctrl-C."""
    import uvicorn

    from alignkit.serve.chain import build_served_model, import_object

    moderator = None
    if config.moderator:  # before the model loads: a mistake here should not wait for the weights
        from alignkit.score.moderation import FunctionModerator, Moderator

        target = import_object(config.moderator, "moderator")
        moderator = target() if isinstance(target, type) else FunctionModerator(target)
        if not isinstance(moderator, Moderator):
            from alignkit.config import ConfigError

            raise ConfigError(
                f"moderator={config.moderator!r} built a {type(moderator).__name__}: no moderate()"
            )
    model = build_served_model(
        config.model,
        name=config.name,
        wrappers=[(w.use, w.options) for w in config.wrappers],
        dtype=config.dtype,
        batch_size=config.max_batch_size,
        max_model_len=config.max_model_len,
    )
    api_key = resolve_api_key(config.api_key)
    app = create_app(
        model,
        api_key=api_key,
        moderator=moderator,
        max_batch_size=config.max_batch_size,
        batch_wait_ms=config.batch_wait_ms,
        default_max_tokens=config.default_max_tokens,
        max_body_bytes=config.max_body_bytes,
    )
    port = config.port or free_port(config.host)
    auth = (
        "bearer key required" if api_key else "no API key (set --api-key or ALIGNKIT_API_KEY to require one)"
    )
    print(
        f"alignkit: serving {model.name!r} on http://{config.host}:{port}/v1 ({auth}); Ctrl-C stops",
        flush=True,
    )
    uvicorn.run(app, host=config.host, port=port, log_level="warning")
