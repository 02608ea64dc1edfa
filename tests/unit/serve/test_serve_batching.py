"""The batcher: concurrent requests with equal settings share one generate call, others do not."""

from __future__ import annotations

import asyncio
import threading

from alignkit.generate.base import Completion, SamplingConfig
from alignkit.serve.batching import Batcher, Job, group_jobs, split_completions


class RecordingGenerator:
    """Answers prompt p with f"{p}#{k}" for sample k, and records each call's prompts and thread."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], SamplingConfig, int | None]] = []
        self.threads: set[str] = set()

    def generate(self, prompts, sampling, *, logprobs=False, seed=None):
        self.calls.append((list(prompts), sampling, seed))
        self.threads.add(threading.current_thread().name)
        return [Completion(i, f"{p}#{k}") for i, p in enumerate(prompts) for k in range(sampling.n)]


def run_concurrently(batcher: Batcher, requests):
    async def main():
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.generate(p, s, seed=seed) for p, s, seed in requests))
        finally:
            await batcher.stop()

    return asyncio.run(main())


def test_requests_with_equal_settings_share_one_call_and_get_their_own_answers_back():
    gen = RecordingGenerator()
    greedy = SamplingConfig(max_new_tokens=4, temperature=0, n=2)
    results = run_concurrently(Batcher(gen, wait_s=0.01), [(["a"], greedy, None), (["b", "c"], greedy, None)])
    assert [p for p, _, _ in gen.calls] == [["a", "b", "c"]]
    assert [c.text for c in results[0]] == ["a#0", "a#1"]
    # the second request's prompts are indices 0 and 1 of its own list again
    assert [(c.prompt_index, c.text) for c in results[1]] == [(0, "b#0"), (0, "b#1"), (1, "c#0"), (1, "c#1")]
    assert gen.threads == {"alignkit-generate_0"}  # off the event loop, on the one generation thread


def test_different_settings_and_seeded_requests_get_calls_of_their_own():
    gen = RecordingGenerator()
    a, b = SamplingConfig(max_new_tokens=4), SamplingConfig(max_new_tokens=8)
    requests = [(["1"], a, None), (["2"], b, None), (["3"], a, None), (["4"], a, 7), (["5"], a, 7)]
    run_concurrently(Batcher(gen, wait_s=0.01), requests)
    assert sorted((p, seed) for p, _, seed in gen.calls) == [
        (["1", "3"], None),
        (["2"], None),
        (["4"], 7),
        (["5"], 7),
    ]


def test_a_batch_holds_at_most_max_batch_size_rows():
    gen = RecordingGenerator()
    s = SamplingConfig(n=2)
    batcher = Batcher(gen, max_batch_size=4, wait_s=0.01)
    run_concurrently(batcher, [([str(i)], s, None) for i in range(5)])
    # 5 requests of 2 rows each, 4 rows per call: 2 + 2 + 1 requests
    assert [len(p) for p, _, _ in gen.calls] == [2, 2, 1]
    assert (batcher.stats.jobs, batcher.stats.generate_calls, batcher.stats.largest_call) == (5, 3, 4)


def test_a_failed_call_fails_its_requests_and_the_next_request_is_served():
    class Failing(RecordingGenerator):
        def generate(self, prompts, sampling, *, logprobs=False, seed=None):
            if prompts == ["boom"]:
                raise RuntimeError("boom")
            return super().generate(prompts, sampling, logprobs=logprobs, seed=seed)

    async def main():
        batcher = Batcher(Failing(), wait_s=0)
        batcher.start()
        try:
            try:
                await batcher.generate(["boom"], SamplingConfig())
            except RuntimeError as error:
                failed = str(error)
            return failed, await batcher.generate(["ok"], SamplingConfig())
        finally:
            await batcher.stop()

    failed, after = asyncio.run(main())
    assert failed == "boom" and [c.text for c in after] == ["ok#0"]


def test_group_and_split_by_hand():
    loop = asyncio.new_event_loop()
    s, t = SamplingConfig(), SamplingConfig(temperature=0)
    jobs = [
        Job(["x"], s, False, None, loop.create_future()),
        Job(["y"], t, False, None, loop.create_future()),
    ]
    jobs.append(Job(["z", "w"], s, False, None, loop.create_future()))
    assert group_jobs(jobs) == [[jobs[0], jobs[2]], [jobs[1]]]
    completions = [Completion(0, "x"), Completion(1, "z"), Completion(2, "w")]
    assert split_completions(completions, [jobs[0], jobs[2]]) == [
        [Completion(0, "x")],
        [Completion(0, "z"), Completion(1, "w")],
    ]
    loop.close()
