"""OpenAIGenerator against a real local HTTP server speaking a tiny, deterministic chat-completions dialect.

The fake server answers sample ``k`` of a prompt whose last message is ``X`` with the text ``X|k``,
finish_reason ``stop``/``length``/``content_filter`` for k = 0/1/2, and one logprob per word
(``-(j + 1) / 10 - k``). It returns the choices in reverse ``index`` order, sleeps when the message
says ``sleep:<seconds>``, and records every request so tests can check what was sent.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from alignkit.data.records import ContentPart, Message
from alignkit.generate import Completion, Generator, OpenAIGenerator, SamplingConfig

FINISH = ["stop", "length", "content_filter"]


class FakeChatServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FakeChatHandler)
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def bodies(self) -> list[dict]:
        """Request bodies ordered by their last message (requests arrive in any order)."""
        return sorted((r["body"] for r in self.requests), key=lambda b: str(b["messages"][-1]["content"]))


class FakeChatHandler(BaseHTTPRequestHandler):
    server: FakeChatServer

    def log_message(self, format, *args):  # noqa: A002 - silence the per-request stderr line
        pass

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server = self.server
        with server.lock:
            server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
        try:
            last = body["messages"][-1]["content"]
            if isinstance(last, str) and last.startswith("sleep:"):
                time.sleep(float(last.split(":")[1]))
            if last == "boom":
                self._send(500, {"error": {"message": "model exploded", "type": "InternalServerError"}})
                return
            if last == "no choices":
                self._send(200, {"object": "chat.completion", "id": "cmpl-1"})
                return
            choices = []
            for k in range(body.get("n", 1)):
                text = f"{last}|{k}" if isinstance(last, str) else f"media|{k}"
                choice = {"index": k, "message": {"role": "assistant", "content": f" {text} "}}
                choice["finish_reason"] = FINISH[k % 3]
                if body.get("logprobs"):
                    words = text.split()
                    choice["logprobs"] = {
                        "content": [{"token": w, "logprob": -(j + 1) / 10 - k} for j, w in enumerate(words)]
                    }
                choices.append(choice)
            self._send(200, {"object": "chat.completion", "choices": choices[::-1]})
        finally:
            with server.lock:
                server.in_flight -= 1


@pytest.fixture
def server():
    srv = FakeChatServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def user(text: str) -> list[Message]:
    return [Message("user", text)]


def test_is_a_generator(server):
    assert isinstance(OpenAIGenerator(server.root, "toy"), Generator)


def test_request_carries_the_sampling_config_and_messages(server):
    generator = OpenAIGenerator(server.root, "toy-model", api_key="secret")
    prompt = [Message("system", "be brief"), {"role": "user", "content": "hi"}]
    sampling = SamplingConfig(max_new_tokens=7, temperature=0.5, top_p=0.9, n=1)

    (completion,) = generator.generate([prompt], sampling)

    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer secret"
    assert request["body"] == {
        "model": "toy-model",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        "max_tokens": 7,
        "temperature": 0.5,
        "top_p": 0.9,
        "n": 1,
    }  # no top_k (0: off), no seed, no logprobs
    assert completion == Completion(prompt_index=0, text="hi|0", token_ids=None, logprobs=None)


def test_top_k_and_one_seed_per_prompt(server):
    generator = OpenAIGenerator(server.root, "toy")
    generator.generate([user("a"), user("b"), user("c")], SamplingConfig(top_k=5), seed=11)

    bodies = server.bodies()
    assert [b["messages"][-1]["content"] for b in bodies] == ["a", "b", "c"]
    assert [b["seed"] for b in bodies] == [11, 12, 13]
    assert all(b["top_k"] == 5 for b in bodies)


def test_completions_are_prompt_major_whatever_order_requests_finish(server):
    # prompt 0 answers last, and the server lists choices in reverse index order
    prompts = [user("sleep:0.3"), user("sleep:0.1"), user("sleep:0")]
    completions = OpenAIGenerator(server.root, "toy").generate(prompts, SamplingConfig(n=2))

    assert [c.prompt_index for c in completions] == [0, 0, 1, 1, 2, 2]
    assert [c.text for c in completions] == [
        "sleep:0.3|0",
        "sleep:0.3|1",
        "sleep:0.1|0",
        "sleep:0.1|1",
        "sleep:0|0",
        "sleep:0|1",
    ]
    assert all(b["n"] == 2 for b in server.bodies())


def test_requests_run_in_parallel_up_to_max_concurrency(server):
    prompts = [user(f"sleep:0.{3 + i}") for i in range(4)]
    OpenAIGenerator(server.root, "toy", max_concurrency=2).generate(prompts, SamplingConfig())

    assert len(server.requests) == 4
    assert server.max_in_flight == 2


def test_logprobs_and_finish_reasons(server):
    completions = OpenAIGenerator(server.root, "toy").generate(
        [user("one two")], SamplingConfig(n=3), logprobs=True
    )

    assert server.requests[0]["body"]["logprobs"] is True
    assert [c.logprobs for c in completions] == [
        pytest.approx((-0.1, -0.2)),
        pytest.approx((-1.1, -1.2)),
        pytest.approx((-2.1, -2.2)),
    ]
    # 'length' stays 'length'; 'stop' and anything else (content_filter) read as 'stop'
    assert [c.finish_reason for c in completions] == ["stop", "length", "stop"]


def test_token_ids_come_from_a_local_tokenizer(server):
    from alignkit.models.loading import load_tokenizer

    tokenizer = load_tokenizer("toyworld://models/tiny")
    (with_tok,) = OpenAIGenerator(server.root, "toy", tokenizer=tokenizer).generate(
        [user("hello world")], SamplingConfig()
    )
    (without,) = OpenAIGenerator(server.root, "toy").generate([user("hello world")], SamplingConfig())

    assert with_tok.text == "hello world|0"
    assert with_tok.token_ids == tuple(tokenizer.encode("hello world|0", add_special_tokens=False))
    assert len(with_tok.token_ids) > 1
    assert without.token_ids is None


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
def test_base_url_with_or_without_v1(server, suffix):
    OpenAIGenerator(server.root + suffix, "toy").generate([user("x")], SamplingConfig())
    assert server.requests[0]["path"] == "/v1/chat/completions"


def test_api_key_defaults_to_the_environment(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    OpenAIGenerator(server.root, "toy").generate([user("x")], SamplingConfig())
    monkeypatch.delenv("OPENAI_API_KEY")
    OpenAIGenerator(server.root, "toy").generate([user("y")], SamplingConfig())

    first, second = server.requests
    assert first["headers"]["Authorization"] == "Bearer from-env"
    assert "Authorization" not in second["headers"]


def test_media_parts_become_data_urls(server, tmp_path):
    png = b"\x89PNG\r\n\x1a\nfake"
    (tmp_path / "cat.png").write_bytes(png)
    prompt = [
        Message(
            "user",
            (
                ContentPart("text", text="what is this?"),
                ContentPart("image", path=str(tmp_path / "cat.png")),
                ContentPart("image", data=png),
            ),
        )
    ]
    OpenAIGenerator(server.root, "toy").generate([prompt], SamplingConfig())

    url = "data:image/png;base64," + base64.b64encode(png).decode()
    assert server.requests[0]["body"]["messages"][0]["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": url}},
        {"type": "image_url", "image_url": {"url": url}},
    ]


def test_no_prompts_sends_nothing(server):
    assert OpenAIGenerator(server.root, "toy").generate([], SamplingConfig()) == []
    assert server.requests == []


def test_http_error_names_url_status_and_server_message(server):
    generator = OpenAIGenerator(server.root, "toy")
    with pytest.raises(RuntimeError) as info:
        generator.generate([user("boom")], SamplingConfig())
    message = str(info.value)
    assert f"{server.root}/v1/chat/completions" in message
    assert "500" in message
    assert "model exploded" in message


def test_response_without_choices_says_what_came_back(server):
    with pytest.raises(RuntimeError, match=r"no 'choices'.*chat\.completion"):
        OpenAIGenerator(server.root, "toy").generate([user("no choices")], SamplingConfig())


def test_closed_port_says_to_check_the_server():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # nothing listens on `port` any more
    generator = OpenAIGenerator(f"http://127.0.0.1:{port}", "toy", timeout=5)
    with pytest.raises(RuntimeError) as info:
        generator.generate([user("x")], SamplingConfig())
    message = str(info.value)
    assert f"http://127.0.0.1:{port}/v1/chat/completions" in message
    assert "check the server is running" in message
