"""Requests batched across concurrent callers: a queue and one worker per model.

Each request is a job (its prompts and sampling settings) put on a queue. The worker takes every job
waiting (up to ``max_batch_size`` rows, a row being one prompt times ``n``), waiting ``wait_s`` after the
first so that callers arriving together share a batch, groups the jobs whose sampling settings are equal,
and makes one ``Generator.generate`` call per group. While a batch generates, new jobs queue up and form
the next one, so under load batches grow by themselves.

Generation runs on one worker thread (a model is not thread-safe, and one call at a time keeps its memory
bounded), so the event loop keeps accepting requests, answering ``/health`` and noticing clients that
hang up. A job whose caller has gone (its future cancelled) before its batch starts is dropped.

A request with a ``seed`` is generated on its own: ``HFGenerator`` draws a row's random numbers by its
position in the call, so sharing a call with strangers would make a seeded answer depend on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from alignkit.generate.base import Completion, SamplingConfig


@dataclass(eq=False)
class Job:
    prompts: list[Any]
    sampling: SamplingConfig
    logprobs: bool
    seed: int | None
    future: asyncio.Future = field(repr=False)

    @property
    def rows(self) -> int:
        return len(self.prompts) * self.sampling.n

    def key(self) -> tuple[Any, ...]:
        """Jobs with equal keys share one generate call; a seeded job's key is its own."""
        own = id(self) if self.seed is not None else None
        return (*dataclasses.astuple(self.sampling), self.logprobs, own)


@dataclass
class BatchStats:
    jobs: int = 0
    """Requests served (jobs whose batch ran)."""
    generate_calls: int = 0
    """Calls of Generator.generate: fewer than ``jobs`` when batching happened."""
    largest_call: int = 0
    """Most rows (prompts times n) in one call."""


def group_jobs(jobs: Sequence[Job]) -> list[list[Job]]:
    """Jobs grouped by ``Job.key``, groups in order of their first job, jobs in arrival order."""
    groups: dict[tuple[Any, ...], list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.key(), []).append(job)
    return list(groups.values())


def split_completions(completions: Sequence[Completion], jobs: Sequence[Job]) -> list[list[Completion]]:
    """One call's completions (prompt-major over the jobs' prompts, concatenated) back to each job, with
    ``prompt_index`` counted within the job again."""
    out, start = [], 0
    for job in jobs:
        mine = [c for c in completions if start <= c.prompt_index < start + len(job.prompts)]
        out.append([dataclasses.replace(c, prompt_index=c.prompt_index - start) for c in mine])
        start += len(job.prompts)
    return out


class Batcher:
    """Feeds one Generator from many concurrent requests (see the module docstring)."""

    def __init__(self, generator: Any, *, max_batch_size: int = 64, wait_s: float = 0.005) -> None:
        self.generator = generator
        self.max_batch_size = max_batch_size
        self.wait_s = wait_s
        self.stats = BatchStats()
        self._pending: deque[Job] = deque()
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    def start(self) -> None:
        """Start the worker on the running event loop."""
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alignkit-generate")
        self._worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        for job in self._pending:
            job.future.cancel()

    async def generate(
        self, prompts: list[Any], sampling: SamplingConfig, *, logprobs: bool = False, seed: int | None = None
    ) -> list[Completion]:
        """This request's completions (prompt-major, ``prompt_index`` within ``prompts``)."""
        if self._wake is None:
            raise RuntimeError("Batcher.start() was not called on this event loop")
        job = Job(prompts, sampling, logprobs, seed, asyncio.get_running_loop().create_future())
        self._pending.append(job)
        self._wake.set()
        return await job.future

    def _take(self) -> list[Job]:
        """Jobs from the front of the queue, up to ``max_batch_size`` rows (always at least one)."""
        taken, rows = [], 0
        while self._pending and (not taken or rows + self._pending[0].rows <= self.max_batch_size):
            job = self._pending.popleft()
            if job.future.done():  # the caller hung up while waiting
                continue
            taken.append(job)
            rows += job.rows
        return taken

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            while not self._pending:
                self._wake.clear()
                await self._wake.wait()
            if self.wait_s > 0 and sum(j.rows for j in self._pending) < self.max_batch_size:
                await asyncio.sleep(self.wait_s)
            for group in group_jobs(self._take()):
                try:
                    await self._generate(group)
                except Exception as error:  # a bug here must fail its requests, never stop the worker
                    for job in group:
                        if not job.future.done():
                            job.future.set_exception(error)

    async def _generate(self, jobs: list[Job]) -> None:
        jobs = [job for job in jobs if not job.future.done()]
        if not jobs:
            return
        first = jobs[0]
        call = functools.partial(
            self.generator.generate,
            [p for job in jobs for p in job.prompts],
            first.sampling,
            logprobs=first.logprobs,
            seed=first.seed,
        )
        self.stats.generate_calls += 1
        self.stats.jobs += len(jobs)
        self.stats.largest_call = max(self.stats.largest_call, sum(job.rows for job in jobs))
        try:
            completions = await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except Exception as error:  # one failed call fails its jobs, never the worker
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        for job, mine in zip(jobs, split_completions(completions, jobs), strict=True):
            if not job.future.done():
                job.future.set_result(mine)
