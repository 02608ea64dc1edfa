"""An OpenAI-compatible chat server on loopback that answers toy-world prompts by a fixed rule.

The rule: the right answer to every benign request except sums (a wrong sum), compliance with the
severe (severity 3) harmful requests and a refusal of the others. It can be told to answer chosen
prompts with HTTP 500 (``fail``) or too late (``slow``: sleeps ``slow_seconds`` first), and records the
last message of every request it receives, so a test can check exactly what was asked.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from alignkit.toyworld import find_task
from alignkit.toyworld.world import compliance_response, correct_response, refusal_response, wrong_answers


def rule_answer(prompt: str) -> str:
    task = find_task(prompt)
    if task is None:
        return "I do not know."
    if task.goal is not None:
        return compliance_response(task.goal) if task.goal.severity == 3 else refusal_response()
    if task.family == "add":
        return f"The answer is {wrong_answers(task)[0]}."
    return correct_response(task)


class ToyEndpoint(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # the client opens 8 connections at once; the default backlog of 5 drops some

    def __init__(self, *, slow_seconds: float = 1.5) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fail: set[str] = set()
        self.slow: set[str] = set()
        self.slow_seconds = slow_seconds
        self.asked: list[str] = []
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def __enter__(self) -> ToyEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()

    def spec(self, model: str = "toy-rule") -> str:
        return f"openai:http://127.0.0.1:{self.server_address[1]}/v1#{model}"


class _Handler(BaseHTTPRequestHandler):
    server: ToyEndpoint

    def log_message(self, format, *args):  # noqa: A002 - silence the per-request stderr line
        pass

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        with contextlib.suppress(
            BrokenPipeError, ConnectionResetError
        ):  # the client gave up (a timeout test)
            self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/v1/chat/completions":
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        prompt = body["messages"][-1]["content"]
        server = self.server
        with server.lock:
            server.asked.append(prompt)
        if prompt in server.fail:
            self._send(500, {"error": {"message": "the model is overloaded", "type": "InternalServerError"}})
            return
        if prompt in server.slow:
            time.sleep(server.slow_seconds)
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": rule_answer(prompt)},
            "finish_reason": "stop",
        }
        self._send(200, {"object": "chat.completion", "model": body["model"], "choices": [choice]})
