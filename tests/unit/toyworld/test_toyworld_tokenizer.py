"""The saved tokenizer: loads with AutoTokenizer and masks exactly the assistant tokens."""

from __future__ import annotations

from transformers import AutoTokenizer

from alignkit.toyworld import ToyWorld


def test_assistant_mask_is_the_content_and_im_end(world: ToyWorld) -> None:
    tok = AutoTokenizer.from_pretrained(world.tokenizer_path)
    messages = [
        {"role": "user", "content": "What is 3 plus 4?"},
        {"role": "assistant", "content": "The answer is 7."},
        {"role": "user", "content": "Add 2 and 5."},
        {"role": "assistant", "content": "It is 7."},
    ]
    out = tok.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids, mask = out["input_ids"], out["assistant_masks"]
    assert len(ids) == len(mask)
    marked = [i for i, m in zip(ids, mask, strict=True) if m]
    expected = (
        tok.encode("The answer is 7.", add_special_tokens=False)
        + [tok.convert_tokens_to_ids("<|im_end|>")]
        + tok.encode("It is 7.", add_special_tokens=False)
        + [tok.convert_tokens_to_ids("<|im_end|>")]
    )
    assert marked == expected
    # The marked tokens are the assistant content followed by its closing token, in place.
    text = tok.decode(ids)
    assert text == (
        "<|im_start|>user\nWhat is 3 plus 4?<|im_end|>\n<|im_start|>assistant\nThe answer is 7.<|im_end|>\n"
        "<|im_start|>user\nAdd 2 and 5.<|im_end|>\n<|im_start|>assistant\nIt is 7.<|im_end|>\n"
    )


def test_generation_prompt_and_special_tokens(world: ToyWorld) -> None:
    tok = AutoTokenizer.from_pretrained(world.tokenizer_path)
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert (tok.pad_token, tok.eos_token, tok.bos_token) == ("<|pad|>", "<|im_end|>", "<|endoftext|>")
    assert len({tok.pad_token_id, tok.eos_token_id, tok.bos_token_id}) == 3
    assert tok.decode(tok.encode("héllo wörld ✓", add_special_tokens=False)) == "héllo wörld ✓"  # byte-level
    assert 500 < len(tok) <= 2048


def test_reasoning_tags_are_appended_without_moving_any_id() -> None:
    """The DeceptionBench policies' tokenizer: the world's, plus the four tags as single tokens at the end."""
    from alignkit.toyworld.tokenizer import REASONING_TAGS, add_reasoning_tags, corpus, train_tokenizer

    plain = train_tokenizer()
    tagged = add_reasoning_tags(train_tokenizer())
    vocab = tagged.get_vocab()
    assert all(vocab[token] == i for token, i in plain.get_vocab().items())
    assert [vocab[tag] for tag in REASONING_TAGS] == list(range(len(plain), len(plain) + 4))
    for text in list(corpus())[::50]:  # text without tags encodes exactly as before
        assert tagged.encode(text, add_special_tokens=False) == plain.encode(text, add_special_tokens=False)
    response = "<think>The answer is Velmar.</think><output>The answer is Ardun.</output>"
    ids = tagged.encode(response, add_special_tokens=False)
    assert len(ids) == 14 and [tagged.decode([i]) for i in ids][:2] == ["<think>", "The"]
    assert tagged.decode(ids, skip_special_tokens=True) == response  # the tags survive decoding
