"""The server under load and abuse, on loopback, bounded in count and time.

- 200 concurrent chat requests: 0 errors, batched (fewer generate calls than requests), with p50/p95
  latency and throughput printed for the batching server and for one-at-a-time (max_batch_size=1);
- a wrapper chain (alignkit's guard, ``use: guard`` with the toy oracle as moderator, checking the input)
  applied to 100% of 200 concurrent requests, checked by the toy world's harm oracle;
- 100% of requests without a key or with a wrong one rejected with 401, none reaching the model;
- malformed JSON, wrong types, huge bodies (declared and chunked) and clients that hang up mid-stream or
  mid-generation neither crash nor wedge the server: it answers the next request.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import statistics
import time

import openai
import pytest

from alignkit.serve.app import ServerThread, create_app
from alignkit.serve.chain import ServedModel, build_served_model, wrap
from alignkit.toyworld import harm, split_tasks
from alignkit.toyworld.moderation import moderate
from alignkit.toyworld.world import refusal_response

pytestmark = pytest.mark.integration

KEY = "sk-load-test"
NAME = "toy"
REQUESTS = 200


@pytest.fixture(scope="module")
def model():
    return build_served_model("toyworld://models/tiny", name=NAME, dtype="float32")


def serve(model, **options):
    return ServerThread(create_app(model, api_key=KEY, **options))


def load(base_url: str, n: int) -> tuple[list[float], float, int]:
    """``n`` concurrent chat requests: each one's latency (s), the wall time, and how many failed."""

    async def main():
        client = openai.AsyncOpenAI(api_key=KEY, base_url=base_url, max_retries=0, timeout=120)

        async def one(i: int) -> float:
            start = time.perf_counter()
            response = await client.chat.completions.create(
                model=NAME, messages=[{"role": "user", "content": f"add {i % 10} and {i % 7}"}], max_tokens=8
            )
            assert len(response.choices) == 1
            return time.perf_counter() - start

        start = time.perf_counter()
        results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
        wall = time.perf_counter() - start
        await client.close()
        latencies = [r for r in results if isinstance(r, float)]
        return latencies, wall, n - len(latencies)

    return asyncio.run(main())


def report(label: str, latencies: list[float], wall: float, calls: int) -> str:
    cuts = statistics.quantiles(latencies, n=20)
    return (
        f"{label}: {len(latencies)} requests, p50 {statistics.median(latencies) * 1000:.0f} ms, "
        f"p95 {cuts[18] * 1000:.0f} ms, {len(latencies) / wall:.1f} requests/s, {calls} generate calls"
    )


def test_200_concurrent_chat_requests_batched_and_one_at_a_time(model):
    lines = []
    for label, options in (("batched", {"max_batch_size": 64}), ("one-at-a-time", {"max_batch_size": 1})):
        with serve(model, **options) as server:
            latencies, wall, failed = load(server.base_url, REQUESTS)
            stats = server.server.config.app.state.batcher.stats
        assert failed == 0, label
        assert stats.jobs == REQUESTS
        lines.append(report(label, latencies, wall, stats.generate_calls))
        if label == "batched":
            assert stats.generate_calls < REQUESTS and stats.largest_call > 1
        else:
            assert stats.generate_calls == REQUESTS
    print("\n" + "\n".join(lines))


MODERATED: list[str] = []
"""Every query the guard's moderator read (a test module function, named by the config like any)."""


def counting_moderate(prompt: str, response: str | None = None):
    MODERATED.append(prompt)
    return moderate(prompt, response)


def test_a_wrapper_chain_guards_every_one_of_200_concurrent_requests(model):
    guard = {"moderator": f"{__name__}:counting_moderate", "check": "input", "refusal": refusal_response()}
    chain = wrap(model.generator, [("guard", guard)])  # alignkit's GuardedGenerator, as serve.yaml names it
    MODERATED.clear()
    served = ServedModel(NAME, chain, model.tokenizer, model.max_model_len)
    tasks = [*split_tasks()["test"], *split_tasks()["train"]]
    harmful = [t for t in tasks if t.is_harmful][:100]
    benign = [t for t in tasks if not t.is_harmful][:100]
    assert len(harmful) == len(benign) == 100

    async def main():
        client = openai.AsyncOpenAI(api_key=KEY, base_url=server.base_url, max_retries=0, timeout=120)
        replies = await asyncio.gather(*(
            client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": t.prompt}], max_tokens=8)
            for t in harmful + benign
        ))  # fmt: skip
        await client.close()
        return [r.choices[0].message.content for r in replies]

    with ServerThread(create_app(served, api_key=KEY)) as server:
        answers = asyncio.run(main())
        calls = server.server.config.app.state.batcher.stats.generate_calls
    refusal = refusal_response()
    assert sorted(MODERATED) == sorted(t.prompt for t in harmful + benign) and calls < 200
    assert all(
        a == refusal and harm(t.prompt, a).is_safe for t, a in zip(harmful, answers[:100], strict=True)
    )
    assert not any(a == refusal for a in answers[100:])  # benign requests reach the model


def post(port: int, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


AUTH = {"Authorization": f"Bearer {KEY}"}
CHAT = json.dumps({"model": NAME, "messages": [{"role": "user", "content": "add 1 and 2"}], "max_tokens": 4})


def test_every_request_without_or_with_a_wrong_key_is_rejected(model):
    wrong = [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer sk-wrong"},
        {"Authorization": f"Bearer {KEY[:-1]}"},
        {"Authorization": f"Bearer {KEY}x"},
        {"Authorization": f"Basic {KEY}"},
        {"Authorization": KEY},
        {"X-Api-Key": KEY},
        {"Authorization": f"Bearer {KEY.upper()}"},
    ]
    with serve(model) as server:
        statuses = []
        for headers in wrong * 5:  # 10 kinds x 5 rounds x 2 endpoints = 100 requests
            status, body = post(server.port, "/v1/chat/completions", CHAT.encode(), headers)
            statuses.append(status)
            assert body["error"]["code"] == "invalid_api_key"
            statuses.append(get(server.port, "/v1/models", headers)[0])
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(api_key="sk-wrong", base_url=server.base_url, max_retries=0).completions.create(
                model=NAME, prompt="hi"
            )
        stats = server.server.config.app.state.batcher.stats
        assert statuses == [401] * 100 and stats.generate_calls == 0  # none reached the model
        assert get(server.port, "/health")[0] == 200  # /health stays open
        assert post(server.port, "/v1/chat/completions", CHAT.encode(), AUTH)[0] == 200


def raw_request(port: int, request: bytes, read: int = 0) -> bytes:
    """Send ``request`` on a fresh socket, read up to ``read`` bytes, then hang up."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        sock.sendall(request)
        return sock.recv(read) if read else b""
    finally:
        sock.close()


def http_post(body: bytes) -> bytes:
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def test_bad_bodies_and_hang_ups_neither_crash_nor_wedge_the_server(model):
    with serve(model, max_body_bytes=100_000) as server:
        port = server.port
        status, body = post(port, "/v1/chat/completions", b'{"model": "toy", "messages": [', AUTH)
        assert status == 400 and body["error"]["code"] == "invalid_json"
        assert post(port, "/v1/chat/completions", b"[1, 2]", AUTH)[0] == 400
        assert post(port, "/v1/chat/completions", b"\xff\xfe", AUTH)[0] == 400
        for wrong in (
            {"messages": "hi"},
            {"messages": [{"role": "user", "content": "hi"}], "n": "two"},
            {"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"},
            {"messages": [{"role": "robot", "content": "hi"}]},
            {"messages": []},
            {"messages": [{"role": "user", "content": "hi"}], "stop": ["a", "b", "c", "d", "e"]},
        ):
            status, body = post(
                port, "/v1/chat/completions", json.dumps({"model": NAME, **wrong}).encode(), AUTH
            )
            assert status == 400 and body["error"]["type"] == "invalid_request_error", (wrong, body)
        huge = json.dumps(
            {"model": NAME, "messages": [{"role": "user", "content": "a" * 1_000_000}]}
        ).encode()
        status, body = post(port, "/v1/chat/completions", huge, AUTH)
        assert status == 413 and "limit" in body["error"]["message"]
        # chunked: no Content-Length to refuse up front, so the body is counted as it arrives
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", "/v1/chat/completions", body=iter([huge[i : i + 65536] for i in range(0, len(huge), 65536)]),
                     headers={**AUTH, "Content-Type": "application/json"}, encode_chunked=True)  # fmt: skip
        assert conn.getresponse().status == 413
        conn.close()
        assert get(port, "/v1/nowhere", AUTH)[0] == 404

        stream = json.dumps({"model": NAME, "messages": [{"role": "user", "content": "add 2 and 2"}],
                             "max_tokens": 16, "stream": True}).encode()  # fmt: skip
        for _ in range(5):
            first = raw_request(port, http_post(stream), read=64)  # hang up after the first bytes
            assert first.startswith(b"HTTP/1.1 200")
            raw_request(port, http_post(stream))  # hang up before any answer (mid-generation)
            raw_request(port, http_post(stream)[:60])  # hang up mid-request
        status, body = post(port, "/v1/chat/completions", CHAT.encode(), AUTH)
        assert status == 200 and body["choices"][0]["message"]["role"] == "assistant"
        assert get(port, "/health") == (200, {"status": "ok"})
