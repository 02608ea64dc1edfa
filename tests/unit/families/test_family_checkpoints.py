"""Real checkpoints' quirks, on tiny random models of the families: padding sides, tokenizers without a pad
token, tied embeddings, the checkpoint's own dtype, and remote code only when asked."""

from __future__ import annotations

import json

import pytest
import torch
from family_models import FAMILIES, family_model, family_tokenizer, save_family

from alignkit.data.collate import collate_lm
from alignkit.data.render import render_conversation
from alignkit.generate.base import SamplingConfig
from alignkit.generate.hf import HFGenerator
from alignkit.losses.logprobs import token_logps
from alignkit.models.loading import load_causal_lm, load_tokenizer

PROMPTS = [
    [{"role": "user", "content": "hi"}],
    [{"role": "user", "content": "add 3 and 4 and then reverse the word cat please"}],
    [{"role": "user", "content": "name a color"}],
]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    return {
        name: save_family(FAMILIES[name], root / name)
        for name in ("llama3.1", "mistral", "qwen2.5", "gemma2")
    }


@pytest.mark.parametrize("name", ["llama3.1", "mistral", "qwen2.5"])
@pytest.mark.parametrize("fast", [True, False], ids=["kv-cache-loop", "model.generate"])
def test_generation_left_pads_and_a_batch_equals_each_prompt_alone(saved, name, fast):
    """Prompts of different lengths in one left-padded batch decode exactly as each prompt alone; Llama 3
    and Mistral ship no pad token, so EOS pads (and must not stop or shift anything)."""
    generator = HFGenerator.from_pretrained(str(saved[name]), device="cpu")
    generator._fast = fast
    tokenizer = generator.tokenizer
    if name in ("llama3.1", "mistral"):
        assert tokenizer.pad_token_id == tokenizer.eos_token_id  # set by load_tokenizer
    greedy = SamplingConfig(temperature=0, max_new_tokens=6)
    batch = generator.generate(PROMPTS, greedy, logprobs=True)
    alone = [generator.generate([p], greedy, logprobs=True)[0] for p in PROMPTS]
    assert [c.token_ids for c in batch] == [c.token_ids for c in alone]
    for a, b in zip(batch, alone, strict=True):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)


@pytest.mark.parametrize("name", ["llama3.1", "gemma2"])
def test_training_batches_pad_right_and_a_row_scores_as_it_does_alone(saved, name):
    tokenizer = load_tokenizer(str(saved[name]))
    model = load_causal_lm(str(saved[name])).eval()
    examples = [
        render_conversation(tokenizer, [p[0], {"role": "assistant", "content": a}], 256)
        for p, a in zip(PROMPTS, ["hello", "tac", "blue is a color"], strict=True)
    ]
    batch = collate_lm(examples, tokenizer.pad_token_id)
    for i, example in enumerate(examples):
        n = len(example.input_ids)
        assert batch["input_ids"][i, :n].tolist() == example.input_ids  # tokens first, padding after
        assert batch["attention_mask"][i, n:].sum() == 0
    with torch.no_grad():
        padded = token_logps(
            model(**{k: batch[k] for k in ("input_ids", "attention_mask")}).logits, batch["labels"]
        )
        for i, example in enumerate(examples):
            ids = torch.tensor([example.input_ids])
            alone = token_logps(model(input_ids=ids).logits, torch.tensor([example.labels]))
            n = len(example.input_ids)
            torch.testing.assert_close(padded[i, :n], alone[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["gemma2", "qwen2.5", "mistral"])
def test_tied_embeddings_survive_save_and_load(saved, name, tmp_path):
    family = FAMILIES[name]
    model = load_causal_lm(str(saved[name]))
    tied = model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    assert tied == family.tied
    model.save_pretrained(tmp_path / "again")
    again = load_causal_lm(str(tmp_path / "again"))
    ids = torch.tensor([[1, 2, 3, 4]])
    torch.testing.assert_close(again(input_ids=ids).logits, model(input_ids=ids).logits)
    assert (
        again.get_output_embeddings().weight.data_ptr() == again.get_input_embeddings().weight.data_ptr()
    ) == tied


def test_dtype_auto_loads_the_dtype_the_checkpoint_names(tmp_path):
    family = FAMILIES["qwen2.5"]
    tokenizer = family_tokenizer(family)
    family_model(family, tokenizer).to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    config = json.loads((tmp_path / "bf16" / "config.json").read_text())
    assert "bfloat16" in (config.get("dtype"), config.get("torch_dtype"))
    assert next(load_causal_lm(str(tmp_path / "bf16"), dtype="auto").parameters()).dtype == torch.bfloat16
    assert next(load_causal_lm(str(tmp_path / "bf16")).parameters()).dtype == torch.float32


def test_remote_code_runs_only_when_asked(tmp_path):
    """A checkpoint whose config points at its own Python code: without trust_remote_code the code is
    never imported (the marker file it would write stays absent) and loading stops with the reason."""
    folder = tmp_path / "custom"
    folder.mkdir()
    marker = tmp_path / "remote-code-ran"
    (folder / "configuration_custom.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from transformers import PretrainedConfig\n"
        "class CustomConfig(PretrainedConfig):\n    model_type = 'alignkit_custom'\n"
    )
    (folder / "config.json").write_text(
        json.dumps(
            {"model_type": "alignkit_custom", "auto_map": {"AutoConfig": "configuration_custom.CustomConfig"}}
        )
    )
    with pytest.raises(Exception, match="trust_remote_code"):
        load_causal_lm(str(folder))
    assert not marker.exists()


@pytest.mark.parametrize("command", ["sft", "reward", "dpo"])
def test_a_template_that_cannot_mark_turns_stops_the_cli_before_any_side_effect(
    saved, tmp_path, capsys, command
):
    """Mistral's released template moves a system message into the newest user turn, so a multi-turn chat
    with one cannot be masked: exit 2, a message naming the turn and the fix, and no run folder."""
    from alignkit.cli import main

    system = {"role": "system", "content": "Be brief."}
    turns = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "again"},
    ]
    data = tmp_path / "data.jsonl"
    row = (
        {"messages": [system, *turns, {"role": "assistant", "content": "hello again"}]}
        if command == "sft"
        else {
            "prompt": [system, *turns],
            "chosen": [{"role": "assistant", "content": "hello again"}],
            "rejected": [{"role": "assistant", "content": "no"}],
        }
    )
    data.write_text(json.dumps(row) + "\n")
    out = tmp_path / "run"
    code = main(
        [
            "train",
            command,
            f"model.path={saved['mistral']}",
            f"data.train.source={data}",
            "data.eval=null",
            *([] if command == "sft" else ["data.train.template=trl"]),
            f"run.output_dir={out}",
            "run.progress=false",
        ]  # fmt: skip
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "chat template" in err and "assistant turn 1" in err and "model.chat_template" in err
    assert "Traceback" not in err
    assert not out.exists()
