"""Pictures through the server: a vision-language model (the visual toy world's tiny LLaVA) answers a chat
whose user turn carries an OpenAI ``image_url`` part (a base64 data URL), sent by the official client, as
it answers the same prompt called directly; URLs the server would have to fetch are refused."""

from __future__ import annotations

import base64

import openai
import pytest

from alignkit.data.records import ContentPart, Message
from alignkit.generate.base import SamplingConfig
from alignkit.serve.app import ServerThread, create_app
from alignkit.serve.chain import build_served_model
from alignkit.toyworld import resolve

pytestmark = pytest.mark.integration

KEY = "sk-test-images"
QUESTION = "What colour is the circle?"


def picture(key: str) -> str:
    return str(resolve("toyworld://visual/data/images") / f"{key}.png")


def data_url(path: str) -> str:
    with open(path, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode("ascii")


@pytest.fixture(scope="module")
def served():
    model = build_served_model("toyworld://visual/models/tiny-vlm", name="vlm", dtype="float32")
    with ServerThread(create_app(model, api_key=KEY, batch_wait_ms=2)) as running:
        yield model, openai.OpenAI(api_key=KEY, base_url=running.base_url, max_retries=0, timeout=60)


def test_a_picture_in_a_chat_reaches_the_model(served):
    model, client = served
    assert model.accepts_images
    keys = ("w-red.circle.0", "w-blue.circle.0")
    sampling = SamplingConfig(max_new_tokens=6, temperature=0.0)
    for key in keys:
        reply = client.chat.completions.create(
            model="vlm",
            messages=[{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": data_url(picture(key))}},
                {"type": "text", "text": QUESTION},
            ]}],
            max_tokens=6,
            temperature=0,
        )  # fmt: skip
        prompt = [
            Message("user", (ContentPart("image", path=picture(key)), ContentPart("text", text=QUESTION)))
        ]
        direct = model.generator.generate([prompt], sampling)[0]
        assert reply.choices[0].message.content == direct.text
        assert reply.usage.completion_tokens == len(direct.token_ids)
        assert reply.usage.prompt_tokens > 16  # the picture's 16 image tokens are counted


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://example.com/cat.png", "fetches no URLs"),
        ("/etc/passwd", "fetches no URLs"),
        ("data:image/png;base64,bm90IGFuIGltYWdl", "not a readable image"),
    ],
)
def test_urls_the_server_would_have_to_fetch_or_cannot_read_are_400(served, url, message):
    _, client = served
    with pytest.raises(openai.BadRequestError, match=message):
        client.chat.completions.create(
            model="vlm",
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}],
            max_tokens=2,
        )
