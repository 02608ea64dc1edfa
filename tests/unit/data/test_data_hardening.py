"""Splits are real, compressed inputs read, and the degenerate-row checks refuse only what they should."""

from __future__ import annotations

import gzip
import json

import pytest

from alignkit.data import DataError, Preference, Prompt, load_records

ROWS = [
    {"question": "What is 2+2?", "answer": "5", "correction": "4"},
    {"question": "Capital of Peru?", "answer": "Quito", "correction": "Lima"},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_single_file_is_train_or_the_split_its_name_says(tmp_path):
    pairs = write_jsonl(tmp_path / "pairs.jsonl", ROWS)
    assert len(load_records(pairs, "aligner")) == 2
    with pytest.raises(DataError) as info:
        load_records(pairs, "aligner", split="test")
    assert str(info.value).startswith(f"{pairs}: expected a source holding split 'test', got a single file")
    test = write_jsonl(tmp_path / "test.jsonl", ROWS[:1])
    assert len(load_records(test, "aligner", split="test")) == 1
    shard = write_jsonl(tmp_path / "validation-00000-of-00001.jsonl", ROWS)
    assert len(load_records(shard, "aligner", split="validation")) == 2


def test_gzip_files_read_like_plain_ones_with_the_same_row_numbers(tmp_path):
    text = "".join(json.dumps(r) + "\n" for r in ROWS)
    (tmp_path / "train.jsonl.gz").write_bytes(gzip.compress(text.encode()))
    (tmp_path / "test.csv.gz").write_bytes(gzip.compress(b"question,answer,correction\nq,a,c\n"))
    from_gzip = load_records(tmp_path / "train.jsonl.gz", "aligner")
    assert [(r.correction, r.origin.row) for r in from_gzip] == [("4", 1), ("Lima", 2)]
    assert [r.origin.row for r in load_records(tmp_path, "aligner", split="test")] == [2]  # found in a folder


def test_ultrafeedback_ties_are_left_out_and_reported_without_skip_invalid(tmp_path):
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    worse = [chat[0], {"role": "assistant", "content": "Go away"}]
    row = {"prompt": "Hi", "chosen": chat, "rejected": worse, "score_chosen": 7, "score_rejected": 3}
    path = write_jsonl(tmp_path / "train.jsonl", [row, {**row, "score_rejected": "7.0"}])
    result = load_records(path, "ultrafeedback-binarized")
    assert len(result) == 1
    (tie,) = result.skipped
    assert (tie.row, tie.field, tie.kind) == (2, "score_chosen", "excluded")
    assert "tie: score_chosen equals score_rejected" in tie.reason


def test_a_single_reply_may_quote_a_short_prompt(tmp_path):
    # One side starting with the prompt is a reply that quotes it; both sides doing so is the prompt left in.
    path = write_jsonl(
        tmp_path / "train.jsonl", [{"prompt": "Hi", "chosen": "Hi! How can I help?", "rejected": "Bye."}]
    )
    (record,) = load_records(path, "trl").records
    assert isinstance(record, Preference) and record.chosen[0].content == "Hi! How can I help?"


def test_a_real_prompt_only_row_is_still_a_prompt(tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", [{"prompt": "Say hi.", "source": "x", "id": 3}])
    (record,) = load_records(path, "trl").records
    assert isinstance(record, Prompt)


def test_multi_turn_hh_transcripts_that_differ_only_in_the_last_reply_still_read(tmp_path):
    shared = "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Name a colour\n\nAssistant:"
    path = write_jsonl(tmp_path / "train.jsonl", [{"chosen": shared + " Blue.", "rejected": shared + " No."}])
    (record,) = load_records(path, "hh-rlhf").records
    assert [m.role for m in record.prompt] == ["user", "assistant", "user"]
    assert (record.chosen[0].content, record.rejected[0].content) == ("Blue.", "No.")


def test_embedded_image_bytes_that_are_not_an_image_are_refused(tmp_path):
    row = {
        "question": "What is this?",
        "image": {"bytes": list(b"not a png at all"), "path": None},
        "response_1": "A cat.",
        "response_2": "A dog.",
        "overall_response": 1,
    }
    with pytest.raises(DataError, match=r"row 1: field 'image.bytes': expected an image PIL can read"):
        load_records(write_jsonl(tmp_path / "train.jsonl", [row]), "align-anything-ti2t")


def test_system_turns_may_be_empty(tmp_path):
    messages = [
        {"role": "system", "content": ""},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
    ]
    (record,) = load_records(write_jsonl(tmp_path / "train.jsonl", [{"messages": messages}]), "trl").records
    assert len(record.messages) == 3
