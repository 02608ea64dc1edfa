"""Model specs (parsing, checks, identity) and the generation cache (keys, write-through, torn lines)."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from alignkit.config import ConfigError
from alignkit.eval.cache import GenerationCache, generation_key
from alignkit.eval.models import check_model_spec, model_identity, parse_model_spec
from alignkit.generate.base import SamplingConfig
from alignkit.runs import RunFolderError


def fake_model(folder):
    """A folder check_model_source accepts as a model: config.json and a weights file."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(b"\0" * 16)
    return folder


@pytest.mark.parametrize(
    ("text", "backend", "path", "model"),
    [
        ("some/folder", "hf", "some/folder", ""),
        ("hf:some/folder", "hf", "some/folder", ""),
        ("vllm:/models/q", "vllm", "/models/q", ""),
        ("toyworld://models/tiny", "hf", "toyworld://models/tiny", ""),
        ("openai:http://127.0.0.1:8000/v1#org/name", "openai", "http://127.0.0.1:8000/v1", "org/name"),
    ],
)
def test_parse_model_spec(text, backend, path, model):
    spec = parse_model_spec(text, "model")
    assert (spec.backend, spec.path, spec.model) == (backend, path, model)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "model is empty"),
        ("foo:bar", "unknown model scheme 'foo:'"),
        ("http://host/v1", "write openai:http://host/v1#MODEL"),
        ("openai:http://host/v1", "openai:URL#MODEL"),
        ("openai:host/v1#m", "must start with http"),
        ("hf:", "give the model after 'hf:'"),
        ("python:Nothing-1", "none is registered"),
    ],
)
def test_a_bad_spec_is_a_config_error_saying_what_is_expected(text, message):
    with pytest.raises(ConfigError, match="model") as err:
        parse_model_spec(text, "model")
    assert message in str(err.value)


def test_check_model_spec_uses_a_run_folders_final_and_refuses_missing_paths(tmp_path):
    fake_model(tmp_path / "run" / "final")
    assert check_model_spec(str(tmp_path / "run"), "model").path == str(tmp_path / "run" / "final")
    with pytest.raises(ConfigError, match="no such folder"):
        check_model_spec(str(tmp_path / "gone"), "baseline")
    (tmp_path / "unfinished" / "checkpoints").mkdir(parents=True)
    with pytest.raises(ConfigError, match="unfinished run folder"):
        check_model_spec(str(tmp_path / "unfinished"), "model")
    if importlib.util.find_spec("vllm") is None:
        with pytest.raises(ConfigError, match="vLLM is not installed"):
            check_model_spec(f"vllm:{tmp_path / 'run' / 'final'}", "model")


def test_identity_follows_the_weights_not_the_path(tmp_path):
    folder = fake_model(tmp_path / "m")
    spec = parse_model_spec(str(folder), "model")
    first = model_identity(spec, "float32")
    assert model_identity(spec, "float32") == first
    assert model_identity(spec, "bfloat16") != first  # other numerics, other answers
    assert model_identity(parse_model_spec(f"vllm:{folder}", "model"), "float32") != first
    stat = (folder / "model.safetensors").stat()
    os.utime(folder / "model.safetensors", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # retrained
    assert model_identity(spec, "float32") != first
    endpoint = parse_model_spec("openai:http://h:1/v1#m", "model")
    assert model_identity(endpoint) == "openai:http://h:1/v1#m"


def test_keys_differ_by_model_conversation_sampling_and_seed():
    chat = [{"role": "user", "content": "hi"}]
    greedy = SamplingConfig(temperature=0.0)
    key = generation_key("m", chat, greedy, 0)
    assert key == generation_key("m", [dict(chat[0])], SamplingConfig(temperature=0.0), 0)
    others = [
        generation_key("m2", chat, greedy, 0),
        generation_key("m", [{"role": "user", "content": "hi!"}], greedy, 0),
        generation_key("m", chat, SamplingConfig(temperature=0.0, max_new_tokens=8), 0),
        generation_key("m", chat, greedy, 1),
    ]
    assert key not in others and len(set(others)) == 4


def test_cache_is_written_through_and_read_back(tmp_path):
    cache = GenerationCache(tmp_path, "hf:auto:abc", "my/model")
    cache.put("k1", [{"role": "user", "content": "q"}], "answer one", "stop")
    # on disk at once (a crash right now loses nothing), readable by a new instance
    again = GenerationCache(tmp_path, "hf:auto:abc", "my/model")
    assert again.get("k1")["text"] == "answer one" and again.get("k1")["finish_reason"] == "stop"
    assert again.get("k2") is None and len(again) == 1
    assert cache.path.name.startswith("my_model-")
    assert GenerationCache(tmp_path, "hf:auto:other", "my/model").get("k1") is None  # one file per model


def test_a_torn_last_line_is_dropped_and_the_file_repaired(tmp_path):
    cache = GenerationCache(tmp_path, "id", "m")
    cache.put("k1", [], "one", "stop")
    with cache.path.open("a") as f:
        f.write('{"key": "k2", "text": "tw')  # a crash mid-write
    repaired = GenerationCache(tmp_path, "id", "m")
    assert repaired.get("k1") is not None and repaired.get("k2") is None
    repaired.put("k3", [], "three", "length")
    lines = [json.loads(line) for line in cache.path.read_text().splitlines()]
    assert [line.get("key") for line in lines] == [None, "k1", "k3"]  # header, then whole entries


def test_a_damaged_line_in_the_middle_names_the_file_and_line(tmp_path):
    cache = GenerationCache(tmp_path, "id", "m")
    cache.put("k1", [], "one", "stop")
    cache.put("k2", [], "two", "stop")
    lines = cache.path.read_text().splitlines()
    lines[1] = "{garbage"
    cache.path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RunFolderError, match=r"line 2: not a JSON object"):
        GenerationCache(tmp_path, "id", "m")


def test_the_file_is_found_by_identity_whatever_the_label(tmp_path):
    GenerationCache(tmp_path, "hf:auto:abc", "runs/sft").put("k", [], "x", "stop")
    assert GenerationCache(tmp_path, "hf:auto:abc", "copy/of/sft").get("k")["text"] == "x"
    assert len(list(tmp_path.iterdir())) == 1
