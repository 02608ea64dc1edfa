"""The app around a fake Generator (no model): message handling, refusals, failures, moderation routing."""

from __future__ import annotations

import openai
import pytest

from alignkit.generate.base import Completion
from alignkit.score.moderation import SafetyVerdict
from alignkit.serve.app import ServerThread, create_app


class Echo:
    """Answers with the prompt's messages as 'role=content|...'; the prompt 'fail' raises."""

    def __init__(self) -> None:
        self.seen: list = []

    def generate(self, prompts, sampling, *, logprobs=False, seed=None):
        self.seen += prompts
        if any(p[-1]["content"] == "fail" for p in prompts):
            raise RuntimeError("the model fell over")
        text = ["|".join(f"{m['role']}={m['content']}" for m in p) for p in prompts]
        return [Completion(i, text[i]) for i in range(len(prompts)) for _ in range(sampling.n)]


class Flagger:
    def moderate(self, prompts, responses=None):
        return [
            SafetyVerdict(
                flagged="bomb" in p[-1]["content"], categories=("Violence",) * ("bomb" in p[-1]["content"])
            )
            for p in prompts
        ]


@pytest.fixture(scope="module")
def servers():
    echo = Echo()
    with (
        ServerThread(
            create_app(echo, api_key="k", moderator=Flagger(), moderation_categories=["Violence", "Fraud"])
        ) as a,
        ServerThread(create_app(Echo(), api_key="k")) as b,
    ):
        yield (
            echo,
            openai.OpenAI(api_key="k", base_url=a.base_url, max_retries=0),
            openai.OpenAI(api_key="k", base_url=b.base_url, max_retries=0),
        )


def test_a_bare_generator_is_served_as_alignkit_with_roles_and_text_parts_mapped(servers):
    echo, client, _ = servers
    assert [m.id for m in client.models.list().data] == ["alignkit"]
    messages = [
        {"role": "developer", "content": "be terse"},
        {"role": "user", "content": [{"type": "text", "text": "add "}, {"type": "text", "text": "1 and 2"}]},
    ]
    reply = client.chat.completions.create(model="alignkit", messages=messages)
    assert reply.choices[0].message.content == "system=be terse|user=add 1 and 2"
    assert reply.usage.completion_tokens == 0  # no tokenizer and no token ids: nothing to count with


def test_refused_fields_are_400s_naming_them(servers):
    _, client, _ = servers
    hi = [{"role": "user", "content": "hi"}]
    cases = {
        "top_logprobs": {"logprobs": True, "top_logprobs": 2},
        "tools": {"tools": [{"type": "function", "function": {"name": "f"}}]},
        "logit_bias": {"logit_bias": {"1": 5}},
        "stream_options": {"stream_options": {"include_usage": True}},
    }
    for param, extra in cases.items():
        with pytest.raises(openai.BadRequestError) as error:
            client.chat.completions.create(model="alignkit", messages=hi, **extra)
        assert error.value.param == param
    with pytest.raises(openai.BadRequestError, match="only text parts"):
        client.chat.completions.create(
            model="alignkit",
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
        )
    with pytest.raises(openai.BadRequestError, match="last message"):
        client.chat.completions.create(model="alignkit", messages=[{"role": "assistant", "content": "hi"}])


def test_a_failing_generator_is_a_500_and_the_next_request_is_served(servers):
    _, client, _ = servers
    with pytest.raises(openai.InternalServerError, match="the model fell over"):
        client.chat.completions.create(model="alignkit", messages=[{"role": "user", "content": "fail"}])
    ok = client.chat.completions.create(model="alignkit", messages=[{"role": "user", "content": "x"}])
    assert ok.choices[0].message.content == "user=x"


def test_moderations_use_the_moderators_verdicts_and_404_without_one(servers):
    _, client, bare = servers
    result = client.moderations.create(input=["how to build a bomb", "hello"]).results
    assert [r.flagged for r in result] == [True, False]
    extra = result[0].model_dump()
    assert extra["categories"]["Violence"] is True and extra["categories"]["Fraud"] is False
    assert extra["category_scores"]["Violence"] == 1.0
    with pytest.raises(openai.NotFoundError, match="no moderator"):
        bare.moderations.create(input="hello")
