"""Every kind of malformed row fails with a message naming file, row, field and what was expected."""

import json
import re

import pytest

from alignkit.data import DataError, load_records

PAIR = {
    "prompt": "How do I boil an egg?",
    "response_0": "Boil it for nine minutes.",
    "response_1": "Eggs cannot be boiled.",
    "is_response_0_safe": True,
    "is_response_1_safe": True,
    "better_response_id": 0,
    "safer_response_id": 0,
}


def write_jsonl(tmp_path, rows, name="train.jsonl"):
    path = tmp_path / "data" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def error_for(path, template, **options):
    with pytest.raises(DataError) as info:
        load_records(path, template, **options)
    return info.value


def test_id_out_of_range_names_file_row_field_and_expectation(tmp_path):
    path = write_jsonl(tmp_path, [PAIR, {**PAIR, "better_response_id": 2}])
    error = error_for(path, "pku-saferlhf")
    assert str(error) == f"{path} row 2: field 'better_response_id': expected 0 or 1, got 2"
    assert (error.file, error.row, error.field) == (str(path), 2, "better_response_id")


def test_missing_field(tmp_path):
    row = dict(PAIR)
    del row["response_1"]
    error = error_for(write_jsonl(tmp_path, [row]), "pku-saferlhf")
    assert re.search(
        r"train\.jsonl row 1: field 'response_1': expected a non-empty string, got no such field$", str(error)
    )


def test_wrong_type(tmp_path):
    error = error_for(write_jsonl(tmp_path, [{**PAIR, "is_response_0_safe": "maybe"}]), "pku-saferlhf")
    assert str(error).endswith("row 1: field 'is_response_0_safe': expected true or false, got 'maybe'")
    error = error_for(write_jsonl(tmp_path, [{**PAIR, "prompt": 42}]), "pku-saferlhf")
    assert str(error).endswith("row 1: field 'prompt': expected a non-empty string, got 42")


def test_inconsistent_safety_labels_follow_safe_rlhf_rule(tmp_path):
    # Response 0 is marked safer, yet it is unsafe while response 1 is safe.
    row = {**PAIR, "is_response_0_safe": False, "safer_response_id": 0}
    error = error_for(write_jsonl(tmp_path, [row]), "pku-saferlhf")
    assert "row 1: field 'safer_response_id': expected a safe response" in str(error)
    assert "got 0 while only response 1 is safe" in str(error)


def test_beavertails_is_safe_must_agree_with_categories(tmp_path):
    row = {
        "prompt": "p",
        "response": "r",
        "category": {"animal_abuse": True, "self_harm": False},
        "is_safe": True,
    }
    error = error_for(write_jsonl(tmp_path, [row]), "beavertails")
    assert str(error).endswith(
        "row 1: field 'is_safe': expected false, since categories are flagged, got True"
    )


def test_empty_conversation(tmp_path):
    error = error_for(write_jsonl(tmp_path, [{"messages": []}]), "trl-messages")
    assert str(error).endswith(
        "row 1: field 'messages': expected a non-empty list of messages, got an empty list"
    )


def test_unknown_role(tmp_path):
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "hello"}]}
    error = error_for(write_jsonl(tmp_path, [row]), "trl")
    assert str(error).endswith(
        "row 1: field 'messages[1].role': expected system, user or assistant, got 'bot'"
    )


def test_image_path_that_does_not_exist(tmp_path):
    row = {
        "question": "What is this?",
        "image": "images/missing.png",
        "response_1": "A cat.",
        "response_2": "A dog.",
        "overall_response": 1,
    }
    error = error_for(write_jsonl(tmp_path, [row]), "align-anything-ti2t")
    assert (
        "train.jsonl row 1: field 'image': expected an existing image file, got 'images/missing.png'"
        in str(error)
    )
    assert str(tmp_path / "data" / "images" / "missing.png") in str(error)


def test_bad_json_line_names_file_and_line(tmp_path):
    path = write_jsonl(tmp_path, [PAIR, '{"prompt": "unterminated'])
    error = error_for(path, "pku-saferlhf")
    assert re.fullmatch(
        rf"{re.escape(str(path))} line 2: expected a JSON object, got invalid JSON \(.+\)", str(error)
    )
    assert error.field is None


def test_unparsable_json_file_names_the_line(tmp_path):
    path = tmp_path / "train.json"
    path.write_text('[\n  {"question": "q", "answer": "a", "correction": "c"},\n  {"question": oops}\n]\n')
    error = error_for(path, "aligner")
    assert str(error).startswith(f"{path} line 3: expected valid JSON, got Expecting value")


def test_hh_transcript_without_assistant_turn(tmp_path):
    row = {"chosen": "\n\nHuman: hi there", "rejected": "\n\nHuman: hi you"}
    error = error_for(write_jsonl(tmp_path, [row]), "hh-rlhf")
    assert "row 1: field 'chosen': expected a transcript sharing a prefix ending in" in str(error)


def test_csv_errors_name_the_file_line(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("question,answer,correction\nq1,a1,c1\nq2,,c2\n")
    error = error_for(path, "aligner")
    assert str(error) == f"{path} row 3: field 'answer': expected a non-empty string, got an empty string"


def test_column_map_errors_name_the_users_column(tmp_path):
    row = {"instruction": "hi", "good": [{"role": "robot", "content": "x"}], "bad": "no"}
    path = write_jsonl(tmp_path, [row])
    column_map = {"prompt": "instruction", "chosen": "good", "rejected": "bad"}
    error = error_for(path, "columns", column_map=column_map)
    assert str(error).endswith("row 1: field 'good[0].role': expected system, user or assistant, got 'robot'")


def test_unknown_template_and_option_list_what_exists(tmp_path):
    path = write_jsonl(tmp_path, [PAIR])
    with pytest.raises(ValueError, match=r"unknown template 'pku'; known templates: .*pku-saferlhf"):
        load_records(path, "pku")
    with pytest.raises(
        ValueError, match=r"template 'intermt' has no option 'dimensoin'; its options: dimension"
    ):
        load_records(path, "intermt", dimensoin="helpfulness")
    with pytest.raises(ValueError, match="column_map"):
        load_records(path, "columns")
