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
