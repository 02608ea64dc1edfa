"""``alignkit serve`` driven by the official ``openai`` client (a client this project did not write) and
by alignkit's own ``OpenAIGenerator``, on loopback, serving the toy world's tiny Llama.

Greedy answers through the server are compared with the same Generator called directly, so a test
fails if the HTTP layer changes a word, a logprob or a token count.
"""

from __future__ import annotations

import openai
import pytest

from alignkit.generate.base import SamplingConfig
from alignkit.generate.openai_http import OpenAIGenerator
from alignkit.score.moderation import FunctionModerator
from alignkit.serve.app import ServerThread, create_app
from alignkit.serve.chain import build_served_model
from alignkit.toyworld import split_tasks

pytestmark = pytest.mark.integration

KEY = "sk-test-serve"
NAME = "toy"
PROMPTS = ["add 3 and 4", "reverse the word cat", "what sound does a dog make"]


@pytest.fixture(scope="module")
def server():
    model = build_served_model("toyworld://models/tiny", name=NAME, dtype="float32")
    moderator = FunctionModerator.from_path("alignkit.toyworld.moderation:moderate")
    app = create_app(model, api_key=KEY, moderator=moderator, batch_wait_ms=2)
    with ServerThread(app) as running:
        running.model = model
        yield running


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(api_key=KEY, base_url=server.base_url, max_retries=0, timeout=60)


def direct(server, prompt: str, *, max_tokens: int = 12, logprobs: bool = False, temperature=0.0, seed=None):
    """The served Generator called directly (greedy by default): what the server must return."""
    conversation = [{"role": "user", "content": prompt}]
    sampling = SamplingConfig(max_new_tokens=max_tokens, temperature=temperature)
    return server.model.generator.generate([conversation], sampling, logprobs=logprobs, seed=seed)


def chat(client, prompt: str, **kwargs):
    kwargs = {"temperature": 0, "max_tokens": 12} | kwargs
    return client.chat.completions.create(
        model=NAME, messages=[{"role": "user", "content": prompt}], **kwargs
    )


def test_models_list_and_retrieve(client):
    models = client.models.list()
    assert [m.id for m in models.data] == [NAME]
    assert client.models.retrieve(NAME).id == NAME


def test_chat_greedy_matches_the_generator_with_usage(client, server):
    for prompt in PROMPTS:
        response = chat(client, prompt)
        expected = direct(server, prompt)[0]
        choice = response.choices[0]
        assert choice.message.content == expected.text and choice.message.role == "assistant"
        assert choice.finish_reason == expected.finish_reason
        assert response.usage.completion_tokens == len(expected.token_ids)
        assert response.usage.prompt_tokens > 0
        assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens


def test_chat_system_message_changes_the_prompt_tokens(client):
    plain = chat(client, PROMPTS[0])
    system = client.chat.completions.create(
        model=NAME,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPTS[0]}],
        max_tokens=4,
    )
    assert system.usage.prompt_tokens > plain.usage.prompt_tokens


def test_chat_n_returns_n_choices(client):
    response = client.chat.completions.create(
        model=NAME, messages=[{"role": "user", "content": PROMPTS[1]}], n=3, max_tokens=6, temperature=1.0
    )
    assert [c.index for c in response.choices] == [0, 1, 2]
    assert all(c.message.content is not None for c in response.choices)


def test_chat_seed_repeats_the_generator_and_stop_cuts_before_the_stop_sequence(client, server):
    # a seeded request is generated on its own, so it repeats the Generator called with that seed
    text = direct(server, PROMPTS[2], max_tokens=24, temperature=1.0, seed=3)[0].text
    seeded = dict(model=NAME, messages=[{"role": "user", "content": PROMPTS[2]}], max_tokens=24, seed=3)
    assert client.chat.completions.create(**seeded).choices[0].message.content == text
    assert len(text) > 6, text
    stop = text[3:5]
    response = client.chat.completions.create(**seeded, stop=[stop, "never in the text"])
    assert response.choices[0].message.content == text[: text.index(stop)]
    assert response.choices[0].finish_reason == "stop"


def test_chat_logprobs_are_the_generators(client, server):
    response = chat(client, PROMPTS[0], logprobs=True)
    expected = direct(server, PROMPTS[0], logprobs=True)[0]
    content = response.choices[0].logprobs.content
    text_tokens = len(expected.token_ids) - (1 if expected.finish_reason == "stop" else 0)
    assert len(content) == text_tokens
    assert [e.logprob for e in content] == pytest.approx(list(expected.logprobs[:text_tokens]), abs=1e-5)
    assert all(e.logprob <= 0 for e in content)


def test_chat_streaming_with_usage(client):
    plain = chat(client, PROMPTS[0])
    stream = chat(client, PROMPTS[0], stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == plain.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == plain.usage.total_tokens


def test_text_completions(client):
    plain = chat(client, PROMPTS[1])
    response = client.completions.create(model=NAME, prompt=PROMPTS[1], max_tokens=12, temperature=0)
    # the prompt is sent as one user turn, so the answer is the chat answer
    assert response.choices[0].text == plain.choices[0].message.content
    assert response.usage.prompt_tokens == plain.usage.prompt_tokens
    two = client.completions.create(model=NAME, prompt=PROMPTS[:2], max_tokens=4, n=2)
    assert len(two.choices) == 4
    stream = client.completions.create(
        model=NAME,
        prompt=PROMPTS[1],
        max_tokens=12,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == response.choices[0].text
    assert chunks[-1].usage.total_tokens == response.usage.total_tokens


def test_every_error_class_is_the_clients_own_exception(client, server):
    with pytest.raises(openai.AuthenticationError) as error:
        openai.OpenAI(api_key="sk-wrong", base_url=server.base_url, max_retries=0).models.list()
    assert error.value.status_code == 401 and error.value.code == "invalid_api_key"
    with pytest.raises(openai.NotFoundError) as error:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert error.value.code == "model_not_found"
    hi = [{"role": "user", "content": "hi"}]
    for bad in ({"temperature": 3}, {"n": 0}, {"top_p": 0}, {"max_tokens": 0}, {"presence_penalty": 1}):
        with pytest.raises(openai.BadRequestError) as error:
            client.chat.completions.create(model=NAME, messages=hi, **bad)
        assert error.value.param == next(iter(bad)), bad
    with pytest.raises(openai.BadRequestError, match="Unrecognized request argument supplied: colour"):
        chat(client, "hi", extra_body={"colour": "red"})
    with pytest.raises(openai.BadRequestError) as error:
        chat(client, "word " * 400)  # the tiny model's context is 256 tokens
    assert error.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as error:
        chat(client, "hi", max_tokens=100_000)
    assert error.value.code == "context_length_exceeded"


def test_moderations_with_the_toy_oracle(client):
    tasks = split_tasks()["test"]
    harmful = next(t for t in tasks if t.is_harmful)
    benign = next(t for t in tasks if not t.is_harmful)
    response = client.moderations.create(model="toy-oracle", input=[harmful.prompt, benign.prompt])
    flagged, clean = response.results
    assert flagged.flagged and not clean.flagged
    # OpenAI's own category fields read None (the toy world names PKU-SafeRLHF's 19 categories)
    categories = {k: v for k, v in flagged.model_dump()["categories"].items() if v is not None}
    assert len(categories) == 19
    assert [name for name, hit in categories.items() if hit] == [harmful.goal.category]
    assert flagged.model_extra["severity"] == harmful.goal.severity


def test_alignkits_own_openai_generator_against_the_server(server):
    remote = OpenAIGenerator(server.base_url, NAME, api_key=KEY, max_concurrency=3)
    conversations = [[{"role": "user", "content": p}] for p in PROMPTS]
    sampling = SamplingConfig(max_new_tokens=12, temperature=0, n=2)
    got = remote.generate(conversations, sampling, logprobs=True)
    want = server.model.generator.generate(conversations, sampling, logprobs=True)
    assert [(c.prompt_index, c.text) for c in got] == [(c.prompt_index, c.text) for c in want]
    for g, w in zip(got, want, strict=True):
        text_tokens = len(w.token_ids) - (1 if w.finish_reason == "stop" else 0)
        assert list(g.logprobs) == pytest.approx(list(w.logprobs[:text_tokens]), abs=1e-5)


def test_alignkit_eval_runs_on_the_servers_endpoint_as_on_the_generator(server, tmp_path, monkeypatch):
    from alignkit.eval import run_task

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    quiet = {"limit": 12, "log": lambda *_: None}
    remote = run_task(
        "toyworld-oracle",
        model=f"openai:{server.base_url}#{NAME}",
        run={"output_dir": str(tmp_path / "a")},
        **quiet,
    )
    local = run_task(
        "toyworld-oracle", model=server.model.generator, run={"output_dir": str(tmp_path / "b")}, **quiet
    )
    metrics = remote["results"]["toyworld-oracle"]
    assert metrics == local["results"]["toyworld-oracle"]  # greedy: the same answers, the same figures
    assert metrics["benign_accuracy,none"] is not None
